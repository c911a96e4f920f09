/* log: see include/turnkey/log.h. The level is the one piece of process-wide state
 * (set once at start-up, read atomically). */
#include "turnkey/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int current_level = LOG_INFO;

void log_set_level(enum log_level lvl)
{
    atomic_store(&current_level, (int)lvl);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_parse_level(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void vwrite(enum log_level lvl, const char *module, unsigned suppressed, const char *fmt,
                   va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ level=%s module=%s msg=\"",
                  ts.tv_nsec / 1000000, names[lvl], module);
    if (n < (int)sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (suppressed && n < (int)sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, " (%u similar messages suppressed)",
                 suppressed);
    fprintf(stderr, "%s\"\n", line);
}

void log_write(enum log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(lvl, module, 0, fmt, ap);
    va_end(ap);
}

void log_write_rl(enum log_level lvl, const char *module, unsigned suppressed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(lvl, module, suppressed, fmt, ap);
    va_end(ap);
}

void log_limiter_init(log_limiter *l)
{
    atomic_flag_clear(&l->busy);
    l->window_start = INT64_MIN;
    l->in_window = l->suppressed = 0;
}

bool log_limiter_admit_at(log_limiter *l, int64_t now_ms, unsigned *suppressed)
{
    while (atomic_flag_test_and_set_explicit(&l->busy, memory_order_acquire))
        ; /* a few instructions under the flag: spinning is cheaper than a mutex here */
    if (l->window_start == INT64_MIN || now_ms - l->window_start >= LOG_RL_WINDOW_MS) {
        l->window_start = now_ms;
        l->in_window = 0;
    }
    bool ok = l->in_window < LOG_RL_BURST;
    if (ok) {
        l->in_window++;
        *suppressed = l->suppressed;
        l->suppressed = 0;
    } else if (l->suppressed + 1 != 0) {
        l->suppressed++;
    }
    atomic_flag_clear_explicit(&l->busy, memory_order_release);
    return ok;
}

bool log_limiter_admit(log_limiter *l, unsigned *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return log_limiter_admit_at(l, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, suppressed);
}
