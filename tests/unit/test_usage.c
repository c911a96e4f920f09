/* usage: the worker carry, the ring (a tiny ring loses nothing), the main thread's
 * aggregator (minute rows, peaks across workers, failed flushes kept, the pending bound). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/usage.h"

#define KEY "000000000000000000000000000000a1"
#define ACC "0000000000000000000000000000000a"
#define T0 1700000040000LL /* ms, a minute boundary */

typedef struct sums {
    uint64_t egress, ingress, ms;
    size_t records;
    usage_record last;
} sums;

static void add_up(void *arg, const usage_record *r)
{
    sums *s = arg;
    s->egress += r->egress_bytes;
    s->ingress += r->ingress_bytes;
    s->ms += r->alloc_ms;
    s->records++;
    s->last = *r;
}

static void add_user(usage_carry *c, const char *user, uint64_t e, uint64_t i, bool live)
{
    usage_carry_add(c, KEY, "cid", (const uint8_t *)user, strlen(user), e, i, 1000, live);
}

static void t_tiny_ring_loses_nothing(void)
{
    usage_carry *c = usage_carry_new();
    usage_ring *q = usage_ring_new(2);
    char user[16];
    usage_carry_begin(c);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof user, "u%d", i);
        add_user(c, user, 100, 10, true);
    }
    CHECK_INT(usage_carry_push(c, q, T0, false), 2); /* the ring is full after two */
    CHECK(usage_ring_refused(q) >= 1);
    /* the next sample adds more before the rest went out: it all stays together */
    usage_carry_begin(c);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof user, "u%d", i);
        add_user(c, user, 1, 1, true);
    }
    sums s = {0};
    for (int round = 0; round < 10; round++) {
        usage_ring_drain(q, add_up, &s);
        usage_carry_push(c, q, T0 + 1000, false);
    }
    usage_ring_drain(q, add_up, &s);
    CHECK_INT(s.egress, 5 * 101);
    CHECK_INT(s.ingress, 5 * 11);
    CHECK_INT(s.ms, 10 * 1000);
    CHECK_INT(usage_carry_size(c), 5); /* still alive */
    /* they end: remainders go, then the identities are forgotten */
    usage_carry_begin(c);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof user, "u%d", i);
        add_user(c, user, 7, 0, false);
    }
    sums e = {0};
    for (int round = 0; round < 10; round++) {
        usage_carry_push(c, q, T0 + 2000, false);
        usage_ring_drain(q, add_up, &e);
    }
    CHECK_INT(e.egress, 35);
    CHECK_INT(e.last.live, 0);
    CHECK_INT(e.last.conc, 1);
    CHECK_INT(usage_carry_size(c), 0);
    usage_carry_free(c);
    usage_ring_free(q);
}

static void t_final_push_spills(void)
{
    usage_carry *c = usage_carry_new();
    usage_ring *q = usage_ring_new(1);
    char user[16];
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof user, "u%d", i);
        add_user(c, user, 3, 2, false);
    }
    CHECK_INT(usage_carry_push(c, q, T0, true), 20);
    CHECK_INT(usage_carry_size(c), 0);
    sums s = {0};
    CHECK_INT(usage_ring_drain(q, add_up, &s), 20);
    CHECK_INT(s.egress, 60);
    CHECK_INT(s.ingress, 40);
    usage_carry_free(c);
    usage_ring_free(q);
}

static void t_bad_username_is_hex_and_keyless_is_skipped(void)
{
    usage_carry *c = usage_carry_new();
    usage_ring *q = usage_ring_new(8);
    const uint8_t bad[] = {'a', '\n', 0xff};
    usage_carry_add(c, KEY, "", bad, sizeof bad, 1, 1, 1, false);
    usage_carry_add(c, "", "", (const uint8_t *)"x", 1, 1, 1, 1, false);
    CHECK_INT(usage_carry_size(c), 1);
    usage_carry_push(c, q, T0, false);
    sums s = {0};
    usage_ring_drain(q, add_up, &s);
    CHECK_STR(s.last.username, "0x610aff");
    usage_carry_free(c);
    usage_ring_free(q);
}

/* --- the aggregator ------------------------------------------------------------------- */

static int account_of(void *ctx, const char *key_id, char account_id[STORE_ID_LEN + 1])
{
    int *calls = ctx;
    (*calls)++;
    if (strcmp(key_id, KEY) != 0)
        return -1;
    snprintf(account_id, STORE_ID_LEN + 1, "%s", ACC);
    return 0;
}

static usage_record rec(const char *user, int64_t at_ms, uint64_t e, uint32_t conc, uint32_t live)
{
    usage_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.key_id, sizeof r.key_id, "%s", KEY);
    snprintf(r.custom_id, sizeof r.custom_id, "cid");
    snprintf(r.username, sizeof r.username, "%s", user);
    r.at_ms = at_ms;
    r.egress_bytes = e;
    r.ingress_bytes = e / 2;
    r.alloc_ms = 1000;
    r.conc = conc;
    r.live = live;
    return r;
}

static int query(store *s, int64_t step, unsigned group, store_usage_row **rows, size_t *n)
{
    store_usage_filter f = {.account_id = ACC,
                            .since = T0 / 1000 - 3600,
                            .until = T0 / 1000 + 3600,
                            .step = step,
                            .group_by = group};
    size_t total;
    return store_usage_query(s, &f, rows, n, &total);
}

static void t_agg_rows_peaks_and_flush(void)
{
    int calls = 0;
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    usage_agg *a = usage_agg_new(&(usage_agg_config){
        .n_workers = 2, .node = "n1", .account_of = account_of, .ctx = &calls, .as_of_lag = 1000});
    /* two workers carry allocations of the same identity: peaks add up across them */
    usage_record r1 = rec("u", T0 + 1000, 100, 2, 2), r2 = rec("u", T0 + 1100, 50, 1, 1);
    usage_agg_add(a, 0, &r1);
    usage_agg_add(a, 1, &r2);
    usage_agg_peaks(a);
    /* later only worker 1 reports: worker 0's live count still stands */
    usage_record r3 = rec("u", T0 + 2000, 10, 3, 3);
    usage_agg_add(a, 1, &r3);
    usage_agg_peaks(a);
    /* the next minute */
    usage_record r4 = rec("u", T0 + 61000, 1, 1, 0), r5 = rec("u", T0 + 61000, 1, 3, 0);
    usage_agg_add(a, 0, &r4);
    usage_agg_add(a, 1, &r5);
    usage_agg_peaks(a);
    CHECK_INT(calls, 1); /* the account is asked once */
    CHECK_INT(usage_agg_flush(a, s, T0 + 62000), STORE_OK);
    CHECK_INT(usage_agg_as_of(a), T0 + 61000);
    store_usage_row *rows;
    size_t n;
    CHECK_INT(query(s, 60, STORE_USAGE_BY_NODE | STORE_USAGE_BY_USERNAME, &rows, &n), STORE_OK);
    CHECK_INT(n, 2);
    CHECK_INT(rows[0].bucket, T0 / 1000);
    CHECK_INT(rows[0].egress_bytes, 160);
    CHECK_INT(rows[0].ingress_bytes, 80);
    CHECK_INT(rows[0].alloc_ms, 3000);
    CHECK_INT(rows[0].peak_allocs, 5); /* 2 (worker 0) + 3 (worker 1) */
    CHECK_STR(rows[0].node, "n1");
    CHECK_INT(rows[1].egress_bytes, 2);
    CHECK_INT(rows[1].peak_allocs, 4);
    free(rows);
    usage_agg_stats st;
    usage_agg_stats_read(a, &st);
    CHECK_INT(st.flushes, 1);
    CHECK_INT(st.rows_written, 2);
    CHECK_INT(st.pending_rows, 0);
    usage_agg_free(a);
    store_close(s);
}

static const store_ops no_usage_ops = {0}; /* usage_add absent: every write fails */

static void t_failed_flush_keeps_rows(void)
{
    int calls = 0;
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    store broken = {.ops = &no_usage_ops, .ctx = NULL};
    usage_agg *a = usage_agg_new(
        &(usage_agg_config){.n_workers = 1, .node = "n1", .account_of = account_of, .ctx = &calls});
    usage_record r1 = rec("u", T0, 100, 1, 1);
    usage_agg_add(a, 0, &r1);
    CHECK_INT(usage_agg_flush(a, &broken, T0 + 1000), STORE_ERROR);
    CHECK_INT(usage_agg_as_of(a), 0);
    usage_record r2 = rec("u", T0 + 500, 11, 1, 1);
    usage_agg_add(a, 0, &r2);
    CHECK_INT(usage_agg_flush(a, &broken, T0 + 2000), STORE_ERROR);
    usage_agg_stats st;
    usage_agg_stats_read(a, &st);
    CHECK_INT(st.flush_failures, 2);
    CHECK_INT(st.pending_rows, 1);
    CHECK_INT(usage_agg_flush(a, s, T0 + 3000), STORE_OK);
    store_usage_row *rows;
    size_t n;
    CHECK_INT(query(s, 0, 0, &rows, &n), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(rows[0].egress_bytes, 111);
    free(rows);
    usage_agg_free(a);
    store_close(s);
}

static void t_pending_bound(void)
{
    int calls = 0;
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    usage_agg *a = usage_agg_new(&(usage_agg_config){
        .n_workers = 1, .node = "n1", .max_rows = 2, .account_of = account_of, .ctx = &calls});
    usage_record m0 = rec("u", T0, 1, 1, 1), m1 = rec("u", T0 + 60000, 2, 1, 1),
                 m2 = rec("u", T0 + 120000, 4, 1, 1), other = rec("v", T0, 8, 1, 1);
    usage_agg_add(a, 0, &m0);
    usage_agg_add(a, 0, &m1);
    usage_agg_add(a, 0, &m2);    /* no third row: it joins the identity's latest one */
    usage_agg_add(a, 0, &other); /* a new identity at the bound: dropped and counted */
    usage_agg_stats st;
    usage_agg_stats_read(a, &st);
    CHECK_INT(st.pending_rows, 2);
    CHECK_INT(st.dropped_bytes, 8 + 4);
    CHECK_INT(usage_agg_flush(a, s, T0 + 130000), STORE_OK);
    store_usage_row *rows;
    size_t n;
    CHECK_INT(query(s, 60, 0, &rows, &n), STORE_OK);
    CHECK_INT(n, 2);
    CHECK_INT(rows[0].egress_bytes, 1);
    CHECK_INT(rows[1].egress_bytes, 6); /* 2 + 4: exact, one minute early */
    free(rows);
    /* an unknown key is never written, and counted */
    usage_record stranger = rec("u", T0, 5, 1, 1);
    snprintf(stranger.key_id, sizeof stranger.key_id, "000000000000000000000000000000ff");
    usage_agg_add(a, 0, &stranger);
    CHECK_INT(usage_agg_flush(a, s, T0 + 140000), STORE_OK);
    usage_agg_stats_read(a, &st);
    CHECK_INT(st.unattributed_bytes, 7);
    usage_agg_free(a);
    store_close(s);
}

/* A producer thread (the worker) and this thread (main) through a tiny ring: exact totals
 * (and a clean run under ThreadSanitizer). */
#define ROUNDS 2000

typedef struct duo {
    usage_ring *q;
    _Atomic int done;
} duo;

static void *producer(void *arg)
{
    duo *d = arg;
    usage_carry *c = usage_carry_new();
    char user[16];
    for (int i = 0; i < ROUNDS; i++) {
        usage_carry_begin(c);
        snprintf(user, sizeof user, "u%d", i % 7);
        add_user(c, user, 3, 1, i < ROUNDS - 7 ? true : false);
        usage_carry_push(c, d->q, T0 + i, false);
    }
    usage_carry_push(c, d->q, T0 + ROUNDS, true);
    usage_carry_free(c);
    atomic_store(&d->done, 1);
    return NULL;
}

static void t_threads_exact_totals(void)
{
    duo d = {.q = usage_ring_new(3)};
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, producer, &d), 0);
    sums s = {0};
    while (!atomic_load(&d.done))
        usage_ring_drain(d.q, add_up, &s);
    pthread_join(th, NULL);
    usage_ring_drain(d.q, add_up, &s);
    CHECK_INT(s.egress, 3 * ROUNDS);
    CHECK_INT(s.ingress, ROUNDS);
    CHECK_INT(s.ms, 1000 * ROUNDS);
    usage_ring_free(d.q);
}

int main(void)
{
    TK_RUN(t_tiny_ring_loses_nothing);
    TK_RUN(t_final_push_spills);
    TK_RUN(t_bad_username_is_hex_and_keyless_is_skipped);
    TK_RUN(t_agg_rows_peaks_and_flush);
    TK_RUN(t_failed_flush_keeps_rows);
    TK_RUN(t_pending_bound);
    TK_RUN(t_threads_exact_totals);
    return tk_test_summary();
}
