/* log: leveled, one line per record, to stderr. The level is tested before formatting. */
#ifndef TURNKEY_LOG_H
#define TURNKEY_LOG_H

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

#endif
