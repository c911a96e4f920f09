/* metrics: a writer of the Prometheus text exposition format (version 0.0.4) and the
 * process metrics read from /proc/self. Callers pass label strings built only from fixed
 * value sets (never a username, customIdentifier, address or id). */
#ifndef TURNKEY_METRICS_H
#define TURNKEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metrics_buf {
    char *p;
    size_t n, cap;
} metrics_buf;

void metrics_init(metrics_buf *b);
/* Hands the text over (NUL-terminated; free()); b is empty afterwards. */
char *metrics_take(metrics_buf *b);
void metrics_free(metrics_buf *b);
void metrics_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* # HELP and # TYPE lines (type: counter, gauge, histogram). */
void metrics_family(metrics_buf *b, const char *name, const char *type, const char *help);
/* One sample; labels is `a="x",b="y"` or NULL. */
void metrics_u64(metrics_buf *b, const char *name, const char *labels, uint64_t v);
void metrics_f64(metrics_buf *b, const char *name, const char *labels, double v);
/* A histogram's samples: counts[i] observations in bucket i (not cumulative), n bounds
 * (ascending, seconds) and counts[n] for +Inf; sum in the unit of the bounds. */
void metrics_histogram(metrics_buf *b, const char *name, const char *labels, const double *bounds,
                       const uint64_t *counts, size_t n, double sum);
/* Writes a label value escaped as the format wants (\\, ", newline) into out. */
void metrics_escape(const char *v, char *out, size_t cap);
/* turnkey_process_{cpu_seconds_total,resident_memory_bytes,open_fds,max_fds,
 * start_time_seconds} from /proc/self. */
void metrics_process(metrics_buf *b);

#endif
