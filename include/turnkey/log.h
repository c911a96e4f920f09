/* log: leveled, one line per record, to stderr. The level is tested before formatting. */
#ifndef TURNKEY_LOG_H
#define TURNKEY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
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

#endif
