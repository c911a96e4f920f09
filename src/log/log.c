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
static _Atomic int current_format = LOG_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

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
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static void timestamp(char ts[32])
{
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, 32 - n, ".%03ldZ", t.tv_nsec / 1000000);
}

static void vwrite(enum log_level lvl, const char *module, unsigned suppressed, const char *fmt,
                   va_list ap)
{
    char msg[1024], ts[32], line[4096];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (suppressed && n >= 0 && n < (int)sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, " (%u similar messages suppressed)", suppressed);
    timestamp(ts);
    log_format_event(line, sizeof line, (enum log_format)atomic_load(&current_format), ts, lvl,
                     module, 0, msg, NULL, 0);
    fputs(line, stderr);
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

void log_set_format(enum log_format f)
{
    atomic_store(&current_format, (int)f);
}

int log_parse_format(const char *s)
{
    return !strcmp(s, "text") ? LOG_TEXT : !strcmp(s, "json") ? LOG_JSON : -1;
}

void log_event(enum log_level lvl, const char *module, unsigned suppressed, const char *msg,
               const log_field *f, size_t n)
{
    char ts[32], line[4096];
    timestamp(ts);
    log_format_event(line, sizeof line, (enum log_format)atomic_load(&current_format), ts, lvl,
                     module, suppressed, msg, f, n);
    fputs(line, stderr);
}

/* An output buffer that never overflows: content stays within lim = cap - 3, which keeps
 * room for the closing "}" (JSON), "\n" and the NUL. Pieces are written whole or not at
 * all, so a record that does not fit is cut between escapes, never inside one, and every
 * quoted value still gets its closing quote. */
typedef struct obuf {
    char *p;
    size_t lim, n;
} obuf;

static bool fits(const obuf *b, size_t len, size_t keep)
{
    return b->n + len + keep <= b->lim;
}

static bool put(obuf *b, const char *s, size_t len, size_t keep)
{
    if (!fits(b, len, keep))
        return false;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    return true;
}

static bool puts_(obuf *b, const char *s)
{
    return put(b, s, strlen(s), 0);
}

/* A value inside double quotes: text escapes \\ " and every byte outside printable ASCII
 * as \\xHH (\\n, \\r, \\t by name); JSON escapes as JSON does (bytes >= 0x80 as
 * \\u00HH). Stops (cut) where the next escape and the closing quote no longer fit. */
static void put_escaped(obuf *b, enum log_format fmt, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c, e[2] = 0;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\', e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', e[2] = 0;
        } else if (c < 0x20 || c >= 0x7f) {
            if (fmt == LOG_JSON)
                snprintf(e, sizeof e, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            else
                snprintf(e, sizeof e, "\\x%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            e[0] = (char)c, e[1] = 0;
        }
        if (!put(b, e, strlen(e), 1))
            return;
    }
}

static void put_str(obuf *b, enum log_format fmt, const char *key, const char *s, size_t len)
{
    char head[80];
    snprintf(head, sizeof head, fmt == LOG_JSON ? ",\"%s\":\"" : " %s=\"", key);
    if (!put(b, head, strlen(head), 1))
        return;
    put_escaped(b, fmt, s, len);
    b->p[b->n++] = '"'; /* kept free by every put above */
}

static void put_num(obuf *b, enum log_format fmt, const char *key, const char *num)
{
    char f[112];
    snprintf(f, sizeof f, fmt == LOG_JSON ? ",\"%s\":%s" : " %s=%s", key, num);
    puts_(b, f);
}

size_t log_format_event(char *out, size_t cap, enum log_format fmt, const char *ts,
                        enum log_level lvl, const char *module, unsigned suppressed,
                        const char *msg, const log_field *f, size_t n)
{
    if (cap < 16)
        return 0;
    obuf b = {.p = out, .lim = cap - 3};
    const char *lv = level_names[(unsigned)lvl < 4 ? lvl : 0];
    if (fmt == LOG_JSON) {
        if (put(&b, "{\"ts\":\"", 7, 1)) {
            put_escaped(&b, fmt, ts, strlen(ts));
            b.p[b.n++] = '"';
        }
        put_str(&b, fmt, "level", lv, strlen(lv));
    } else {
        put_escaped(&b, fmt, ts, strlen(ts));
        if (puts_(&b, " level="))
            puts_(&b, lv);
    }
    put_str(&b, fmt, "module", module, strlen(module));
    put_str(&b, fmt, "msg", msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        char num[24];
        switch (f[i].kind) {
        case LOG_F_STR:
            put_str(&b, fmt, f[i].key, f[i].str ? f[i].str : "", f[i].str ? strlen(f[i].str) : 0);
            break;
        case LOG_F_BYTES: put_str(&b, fmt, f[i].key, f[i].str, f[i].str ? f[i].len : 0); break;
        case LOG_F_INT:
            snprintf(num, sizeof num, "%lld", (long long)f[i].i);
            put_num(&b, fmt, f[i].key, num);
            break;
        default:
            snprintf(num, sizeof num, "%llu", (unsigned long long)f[i].u);
            put_num(&b, fmt, f[i].key, num);
            break;
        }
    }
    if (suppressed) {
        char num[24];
        snprintf(num, sizeof num, "%u", suppressed);
        put_num(&b, fmt, "suppressed", num);
    }
    if (fmt == LOG_JSON)
        b.p[b.n++] = '}';
    b.p[b.n++] = '\n';
    b.p[b.n] = '\0';
    return b.n;
}
