/* log: leveled, one line per record, to stderr. The level is tested before formatting. */
#ifndef TURNKEY_LOG_H
#define TURNKEY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; -1 if unknown. */
int log_parse_level(const char *s);
void log_write(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, mod, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) <= log_get_level())                                                              \
            log_write((lvl), (mod), __VA_ARGS__);                                                  \
    } while (0)
#define log_error(mod, ...) LOG_AT(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) LOG_AT(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) LOG_AT(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) LOG_AT(LOG_DEBUG, mod, __VA_ARGS__)

/* Rate-limited records, for every line a remote party can trigger: a log_limiter (one per
 * call site, owned by the caller's object; thread-safe) lets LOG_RL_BURST records through per
 * LOG_RL_WINDOW_MS and counts the rest; the next record written carries
 * " (N similar messages suppressed)". */
#define LOG_RL_BURST 5
#define LOG_RL_WINDOW_MS 1000
typedef struct log_limiter {
    atomic_flag busy;
    int64_t window_start; /* monotonic ms */
    unsigned in_window;
    unsigned suppressed;
} log_limiter;
void log_limiter_init(log_limiter *l);
/* true if a record may be written at now_ms (monotonic); *suppressed = records dropped since
 * the last one let through (reset by this call when it returns true). */
bool log_limiter_admit_at(log_limiter *l, int64_t now_ms, unsigned *suppressed);
bool log_limiter_admit(log_limiter *l, unsigned *suppressed);
void log_write_rl(enum log_level lvl, const char *module, unsigned suppressed, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_AT_RL(lim, lvl, mod, ...)                                                              \
    do {                                                                                           \
        unsigned log__sup;                                                                         \
        if ((lvl) <= log_get_level() && log_limiter_admit((lim), &log__sup))                       \
            log_write_rl((lvl), (mod), log__sup, __VA_ARGS__);                                     \
    } while (0)
#define log_error_rl(lim, mod, ...) LOG_AT_RL(lim, LOG_ERROR, mod, __VA_ARGS__)
#define log_warn_rl(lim, mod, ...) LOG_AT_RL(lim, LOG_WARN, mod, __VA_ARGS__)
#define log_info_rl(lim, mod, ...) LOG_AT_RL(lim, LOG_INFO, mod, __VA_ARGS__)

/* Output format (--log-format): text (key=value, values quoted and escaped) or JSON (one
 * object per line). Either way every value is escaped: a value holding quotes, newlines or
 * other control bytes cannot end the line or forge a field. */
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };
void log_set_format(enum log_format f);
int log_parse_format(const char *s); /* "text" | "json"; -1 if unknown */

/* Structured records: a message and typed fields. */
enum { LOG_F_STR = 0, LOG_F_BYTES, LOG_F_INT, LOG_F_UINT };
typedef struct log_field {
    const char *key; /* [a-z0-9_]+ (a literal) */
    int kind;
    const char *str; /* LOG_F_STR (NUL-terminated) / LOG_F_BYTES (len bytes) */
    size_t len;
    int64_t i;
    uint64_t u;
} log_field;
#define LOG_S(k, v) ((log_field){.key = (k), .kind = LOG_F_STR, .str = (v)})
#define LOG_B(k, p, n)                                                                             \
    ((log_field){.key = (k), .kind = LOG_F_BYTES, .str = (const char *)(p), .len = (n)})
#define LOG_I(k, v) ((log_field){.key = (k), .kind = LOG_F_INT, .i = (int64_t)(v)})
#define LOG_U(k, v) ((log_field){.key = (k), .kind = LOG_F_UINT, .u = (uint64_t)(v)})
/* Writes one record (suppressed: the rate limiter's count, 0 = none). */
void log_event(enum log_level lvl, const char *module, unsigned suppressed, const char *msg,
               const log_field *f, size_t n);
/* Formats one record into out (cap bytes, NUL-terminated, newline included); its length. */
size_t log_format_event(char *out, size_t cap, enum log_format fmt, const char *ts,
                        enum log_level lvl, const char *module, unsigned suppressed,
                        const char *msg, const log_field *f, size_t n);
#define log_fields(lvl, mod, msg, ...)                                                             \
    do {                                                                                           \
        if ((lvl) <= log_get_level()) {                                                            \
            const log_field log__f[] = {__VA_ARGS__};                                              \
            log_event((lvl), (mod), 0, (msg), log__f, sizeof log__f / sizeof log__f[0]);           \
        }                                                                                          \
    } while (0)
#define log_fields_rl(lim, lvl, mod, msg, ...)                                                     \
    do {                                                                                           \
        unsigned log__sup;                                                                         \
        if ((lvl) <= log_get_level() && log_limiter_admit((lim), &log__sup)) {                     \
            const log_field log__f[] = {__VA_ARGS__};                                              \
            log_event((lvl), (mod), log__sup, (msg), log__f, sizeof log__f / sizeof log__f[0]);    \
        }                                                                                          \
    } while (0)

#endif
