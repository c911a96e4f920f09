/* policy_limiter (src/policy/policy_limiter.c): token buckets per key and per (key,
 * source), driven by a fake clock (the now_ms argument). */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>

#include "tk_test.h"
#include "turnkey/policy.h"

/* The sanitizer runtimes (asan, tsan) count the heap themselves; glibc's mallinfo2 does
 * not see their allocator. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

static const char K1[] = "0123456789abcdef0123456789abcdef";
static const char K2[] = "fedcba9876543210fedcba9876543210";

static policy rates(uint32_t per_key, uint32_t per_source)
{
    policy p;
    memset(&p, 0, sizeof p);
    p.mint_rate_key = per_key;
    p.mint_rate_source = per_source;
    return p;
}

/* 60 per minute: a burst of 60, then one per second (not sooner), a full burst again
 * after a minute of silence; a policy without rates never limits. */
static void t_key_rate(void)
{
    policy_limiter *l = policy_limiter_new();
    policy p = rates(60, 0);
    int64_t t = 1000000;
    for (int i = 0; i < 60; i++)
        CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t), 1);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.99", &p, t), 1); /* any source */
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t + 999), 1);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t + 1000), 0);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t + 1000), 1);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t + 1500), 1);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t + 2000), 0);
    /* another key has its own bucket */
    CHECK_INT(policy_limiter_take(l, K2, "192.0.2.1", &p, t + 2000), 0);
    /* a minute later: exactly a full burst again, not more */
    int64_t t2 = t + 2000 + 60000;
    for (int i = 0; i < 60; i++)
        CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t2), 0);
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t2), 1);
    /* the clock going back refills nothing */
    CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &p, t), 1);
    /* no rate set: never limited; a malformed uid is not limited (nothing to key it by) */
    policy none = rates(0, 0);
    for (int i = 0; i < 1000; i++)
        CHECK_INT(policy_limiter_take(l, K1, "192.0.2.1", &none, t2), 0);
    CHECK_INT(policy_limiter_take(l, "short", "192.0.2.1", &p, t2), 0);
    policy_limiter_free(l);
}

/* Per source: each address of a key has its own bucket, each key its own per address; a
 * refusal takes nothing (the key's token stays for the next source). */
static void t_source_rate(void)
{
    policy_limiter *l = policy_limiter_new();
    policy p = rates(0, 2);
    int64_t t = 5000;
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.7", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.7", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.7", &p, t), 2);
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.8", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K2, "198.51.100.7", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.7", &p, t + 29999), 2);
    CHECK_INT(policy_limiter_take(l, K1, "198.51.100.7", &p, t + 30000), 0); /* 2/min */
    /* NULL source: one shared bucket for every caller without an address */
    CHECK_INT(policy_limiter_take(l, K1, NULL, &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, NULL, &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, NULL, &p, t), 2);

    /* both limits: key 2/min, source 1/min */
    policy both = rates(2, 1);
    CHECK_INT(policy_limiter_take(l, K2, "a", &both, t), 0);
    CHECK_INT(policy_limiter_take(l, K2, "a", &both, t), 2); /* key token not taken... */
    CHECK_INT(policy_limiter_take(l, K2, "b", &both, t), 0); /* ...so b still gets it */
    CHECK_INT(policy_limiter_take(l, K2, "c", &both, t), 1); /* now the key is out */
    policy_limiter_free(l);
}

/* The bound: 100,000 distinct sources (and 20,000 distinct keys) allocate nothing, and a
 * source the limit is holding back stays held back through the flood. */
static void t_bounded(void)
{
    policy_limiter *l = policy_limiter_new();
    policy p = rates(0, 5), pk = rates(3, 0);
    int64_t t = 777000;
    for (int i = 0; i < 5; i++)
        CHECK_INT(policy_limiter_take(l, K1, "203.0.113.5", &p, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "203.0.113.5", &p, t), 2);
    size_t before = heap_in_use();
    char src[64], uid[33];
    for (int i = 0; i < 100000; i++) {
        snprintf(src, sizeof src, "2001:db8::%x:%x", i >> 16, i & 0xffff);
        CHECK_INT(policy_limiter_take(l, K1, src, &p, t + i / 100), 0);
    }
    for (int i = 0; i < 20000; i++) {
        snprintf(uid, sizeof uid, "%032x", i);
        CHECK_INT(policy_limiter_take(l, uid, "192.0.2.1", &pk, t), 0);
    }
    size_t after = heap_in_use();
    CHECK(after <= before + 1024);
    CHECK_INT(policy_limiter_take(l, K1, "203.0.113.5", &p, t + 1000), 2);
    CHECK_INT(policy_limiter_take(l, K1, "203.0.113.5", &p, t + 12000), 0); /* 5/min */
    policy_limiter_free(l);
}

/* A changed rate: raising it gives the extra burst at once, lowering it caps the bucket. */
static void t_rate_change(void)
{
    policy_limiter *l = policy_limiter_new();
    policy p2 = rates(2, 0), p5 = rates(5, 0), p1 = rates(1, 0);
    int64_t t = 90000;
    CHECK_INT(policy_limiter_take(l, K1, "s", &p2, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "s", &p2, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "s", &p2, t), 1);
    for (int i = 0; i < 3; i++)
        CHECK_INT(policy_limiter_take(l, K1, "s", &p5, t), 0);
    CHECK_INT(policy_limiter_take(l, K1, "s", &p5, t), 1);
    /* a minute later the bucket is full at 5; lowered to 1, only one is left */
    CHECK_INT(policy_limiter_take(l, K1, "s", &p1, t + 60000), 0);
    CHECK_INT(policy_limiter_take(l, K1, "s", &p1, t + 60000), 1);
    policy_limiter_free(l);
}

typedef struct worker {
    policy_limiter *l;
    const policy *p;
    int allowed;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    char src[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(src, sizeof src, "10.0.%d.%d", (i >> 8) & 255, i & 255);
        if (policy_limiter_take(w->l, K1, src, w->p, 42000) == 0)
            w->allowed++;
    }
    return NULL;
}

/* Four threads at one instant: exactly the burst is allowed in all. */
static void t_threads(void)
{
    policy_limiter *l = policy_limiter_new();
    policy p = rates(1000, 0);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){l, &p, 0};
        CHECK_INT(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    CHECK_INT(total, 1000);
    policy_limiter_free(l);
}

int main(void)
{
    TK_RUN(t_key_rate);
    TK_RUN(t_source_rate);
    TK_RUN(t_bounded);
    TK_RUN(t_rate_change);
    TK_RUN(t_threads);
    return tk_test_summary();
}
