/* log: rate-limited records (log_warn_rl) let a burst through per window, count the rest,
 * and report the count on the next record written. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tk_test.h"
#include "turnkey/log.h"

static void t_limiter_window(void)
{
    log_limiter l;
    log_limiter_init(&l);
    unsigned sup = 99, admitted = 0;
    for (int i = 0; i < 1000; i++)
        if (log_limiter_admit_at(&l, 5000 + i / 10, &sup)) /* 100 ms of a flood */
            admitted++;
    CHECK_INT(admitted, LOG_RL_BURST);
    CHECK(!log_limiter_admit_at(&l, 5000 + LOG_RL_WINDOW_MS - 1, &sup));
    CHECK(log_limiter_admit_at(&l, 5000 + LOG_RL_WINDOW_MS, &sup));
    CHECK_INT(sup, 1000 - LOG_RL_BURST + 1); /* everything dropped since the last one written */
    CHECK(log_limiter_admit_at(&l, 5000 + LOG_RL_WINDOW_MS + 1, &sup));
    CHECK_INT(sup, 0);
}

/* Runs fn with stderr sent to a temporary file; returns what was written (free it). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    char *out = calloc(1, (size_t)n + 1);
    rewind(tmp);
    if (fread(out, 1, (size_t)n, tmp) != (size_t)n)
        out[0] = '\0';
    fclose(tmp);
    return out;
}

static void flood(void)
{
    log_limiter l;
    log_limiter_init(&l);
    for (int i = 0; i < 10000; i++)
        log_warn_rl(&l, "test", "accept failed: %d", i);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void t_flood_is_bounded(void)
{
    /* 10,000 records in a tight loop: at most a burst per window gets written, not 10,000
     * (a loop of this length takes well under the several windows that would allow more). */
    char *out = capture_stderr(flood);
    int lines = count_lines(out);
    free(out);
    CHECK(lines >= LOG_RL_BURST);
    CHECK(lines <= 4 * LOG_RL_BURST);
}

static void suppressed_note(void)
{
    log_limiter l;
    log_limiter_init(&l);
    unsigned sup;
    for (int i = 0; i < LOG_RL_BURST + 7; i++)
        (void)log_limiter_admit_at(&l, 100, &sup); /* the burst, then 7 dropped */
    CHECK(log_limiter_admit_at(&l, 100 + LOG_RL_WINDOW_MS, &sup));
    log_write_rl(LOG_WARN, "test", sup, "again %s", "x");
}

static void t_suppressed_count_reported(void)
{
    char *out = capture_stderr(suppressed_note);
    int ok = strstr(out, "msg=\"again x (7 similar messages suppressed)\"") != NULL;
    free(out);
    CHECK(ok);
}

static void t_level_filters_first(void)
{
    log_limiter l;
    log_limiter_init(&l);
    log_set_level(LOG_ERROR);
    for (int i = 0; i < 100; i++)
        log_warn_rl(&l, "test", "hidden %d", i);
    log_set_level(LOG_INFO);
    unsigned sup = 1;
    CHECK(log_limiter_admit(&l, &sup)); /* below the level nothing was counted or admitted */
    CHECK_INT(sup, 0);
}

int main(void)
{
    TK_RUN(t_limiter_window);
    TK_RUN(t_flood_is_bounded);
    TK_RUN(t_suppressed_count_reported);
    TK_RUN(t_level_filters_first);
    return tk_test_summary();
}
