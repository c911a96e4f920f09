/* Minimal unit-test harness: each tests/unit/test_*.c is one binary.
 *
 *   static void t_something(void) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   int main(void) { TK_RUN(t_something); return tk_test_summary(); }
 *
 * A failed CHECK prints file:line and returns from the test function. The binary ends
 * with "N passed, N failed" (tests/run.sh adds these up) and exits non-zero on failure. */
#ifndef TK_TEST_H
#define TK_TEST_H

#include <stdio.h>
#include <string.h>

static int tk__passed, tk__failed, tk__cur_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            tk__cur_failed = 1;                                                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long tk__a = (long long)(a), tk__b = (long long)(b);                                  \
        if (tk__a != tk__b) {                                                                      \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,  \
                    tk__a, #b, tk__b);                                                             \
            tk__cur_failed = 1;                                                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *tk__a = (a), *tk__b = (b);                                                     \
        if (!tk__a || !tk__b || strcmp(tk__a, tk__b) != 0) {                                       \
            fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,    \
                    tk__a ? tk__a : "(null)", tk__b ? tk__b : "(null)");                           \
            tk__cur_failed = 1;                                                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define TK_RUN(fn)                                                                                 \
    do {                                                                                           \
        tk__cur_failed = 0;                                                                        \
        fn();                                                                                      \
        if (tk__cur_failed) {                                                                      \
            tk__failed++;                                                                          \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            tk__passed++;                                                                          \
        }                                                                                          \
    } while (0)

static inline int tk_test_summary(void)
{
    printf("%d passed, %d failed\n", tk__passed, tk__failed);
    return tk__failed ? 1 : 0;
}

#endif
