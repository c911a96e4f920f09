/* Store conformance for the usage ops (issue 14): the same checks on SQLite and PostgreSQL. */
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"

#define ACC "0000000000000000000000000000000a"
#define ACC2 "0000000000000000000000000000000b"
#define KA "000000000000000000000000000000a1"
#define KB "000000000000000000000000000000b1"
#define T0 1700000040 /* a minute boundary (T0 % 60 == 0), not an hour boundary */

static store_usage_delta delta(int64_t minute, const char *key, const char *cid, const char *user,
                               const char *node, uint64_t e, uint64_t i, uint64_t a, uint64_t p)
{
    store_usage_delta d;
    memset(&d, 0, sizeof d);
    d.minute = minute;
    snprintf(d.account_id, sizeof d.account_id, "%s", ACC);
    snprintf(d.key_uid, sizeof d.key_uid, "%s", key);
    snprintf(d.custom_id, sizeof d.custom_id, "%s", cid);
    snprintf(d.username, sizeof d.username, "%s", user);
    snprintf(d.node, sizeof d.node, "%s", node);
    d.egress_bytes = e;
    d.ingress_bytes = i;
    d.alloc_ms = a;
    d.peak_allocs = p;
    return d;
}

static store_usage_filter filter(int64_t since, int64_t until, int64_t step, unsigned group_by)
{
    store_usage_filter f;
    memset(&f, 0, sizeof f);
    f.account_id = ACC;
    f.since = since;
    f.until = until;
    f.step = step;
    f.group_by = group_by;
    return f;
}

/* Seeds: two minutes, two keys, two nodes, two usernames. */
static int seed(store *s)
{
    store_usage_delta d[] = {
        delta(T0, KA, "c1", "u1", "n1", 100, 10, 60000, 1),
        delta(T0, KA, "c1", "u2", "n1", 200, 20, 30000, 2),
        delta(T0, KA, "c1", "u1", "n2", 1000, 100, 60000, 3),
        delta(T0 + 60, KA, "c2", "u1", "n1", 5, 1, 1000, 1),
        delta(T0 + 60, KB, "", "u3", "n1", 7, 3, 2000, 4),
    };
    return store_usage_add(s, d, sizeof d / sizeof d[0]);
}

static void t_add_sums_and_merges_peaks(void)
{
    store *s = open_fresh();
    CHECK(s);
    CHECK_INT(seed(s), STORE_OK);
    /* the same row again: sums add, the peak merges by max */
    store_usage_delta again[] = {delta(T0, KA, "c1", "u1", "n1", 1, 2, 3, 0),
                                 delta(T0, KA, "c1", "u1", "n1", 1, 2, 3, 5)};
    CHECK_INT(store_usage_add(s, again, 2), STORE_OK);
    store_usage_filter f = filter(T0, T0 + 60, 60,
                                  STORE_USAGE_BY_KEY | STORE_USAGE_BY_CUSTOM_ID |
                                      STORE_USAGE_BY_USERNAME | STORE_USAGE_BY_NODE);
    store_usage_row *r;
    size_t n, total;
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 3);
    CHECK_INT(total, 3);
    /* ordered by (bucket, key, custom_id, username, node) */
    CHECK_STR(r[0].username, "u1");
    CHECK_STR(r[0].node, "n1");
    CHECK_INT(r[0].bucket, T0);
    CHECK_INT(r[0].egress_bytes, 102);
    CHECK_INT(r[0].ingress_bytes, 14);
    CHECK_INT(r[0].alloc_ms, 60006);
    CHECK_INT(r[0].peak_allocs, 5);
    CHECK_STR(r[1].node, "n2");
    CHECK_STR(r[2].username, "u2");
    free(r);
    store_close(s);
}

static void t_groups_steps_and_filters(void)
{
    store *s = open_fresh();
    CHECK(s);
    CHECK_INT(seed(s), STORE_OK);
    store_usage_row *r;
    size_t n, total;
    /* one bucket over everything: nodes and dimensions add up */
    store_usage_filter f = filter(T0, T0 + 3600, 0, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].bucket, T0);
    CHECK_INT(r[0].egress_bytes, 1312);
    CHECK_INT(r[0].ingress_bytes, 134);
    CHECK_INT(r[0].alloc_ms, 153000);
    /* peak: per minute the rows add up (1+2+3 = 6 at T0; 1+4 = 5 at T0+60); the max */
    CHECK_INT(r[0].peak_allocs, 6);
    CHECK_STR(r[0].key_uid, "");
    free(r);
    /* by key, per minute */
    f = filter(T0, T0 + 3600, 60, STORE_USAGE_BY_KEY);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 3);
    CHECK_STR(r[0].key_uid, KA);
    CHECK_INT(r[0].bucket, T0);
    CHECK_INT(r[0].egress_bytes, 1300);
    CHECK_INT(r[1].bucket, T0 + 60);
    CHECK_STR(r[1].key_uid, KA);
    CHECK_INT(r[1].egress_bytes, 5);
    CHECK_STR(r[2].key_uid, KB);
    CHECK_INT(r[2].peak_allocs, 4);
    free(r);
    /* hourly buckets start at the hour */
    f = filter(T0, T0 + 3600, 3600, STORE_USAGE_BY_CUSTOM_ID);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 3); /* "", c1, c2 */
    CHECK_INT(r[0].bucket, T0 - T0 % 3600);
    CHECK_STR(r[0].custom_id, "");
    CHECK_STR(r[1].custom_id, "c1");
    CHECK_INT(r[1].egress_bytes, 1300);
    free(r);
    /* filters: key, custom id, username, time */
    f = filter(T0, T0 + 3600, 0, 0);
    f.key_uid = KA;
    f.username = "u1";
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].egress_bytes, 1105);
    free(r);
    f = filter(T0 + 60, T0 + 120, 0, 0);
    f.custom_id = "";
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].egress_bytes, 7);
    free(r);
    /* until is exclusive; another account sees nothing */
    f = filter(T0 - 60, T0, 0, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 0);
    free(r);
    f = filter(T0, T0 + 3600, 0, 0);
    f.account_id = ACC2;
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 0);
    CHECK_INT(total, 0);
    free(r);
    /* a bad step is refused */
    f = filter(T0, T0 + 3600, 120, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_ERROR);
    store_close(s);
}

static void t_pagination(void)
{
    store *s = open_fresh();
    CHECK(s);
    store_usage_delta d[30];
    for (int i = 0; i < 30; i++) {
        char user[16];
        snprintf(user, sizeof user, "user%02d", i);
        d[i] = delta(T0, KA, "", user, "n1", (uint64_t)i, 0, 0, 1);
    }
    CHECK_INT(store_usage_add(s, d, 30), STORE_OK);
    store_usage_filter f = filter(T0, T0 + 60, 60, STORE_USAGE_BY_USERNAME);
    f.offset = 25;
    f.limit = 10;
    store_usage_row *r;
    size_t n, total;
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 5);
    CHECK_INT(total, 30);
    CHECK_STR(r[0].username, "user25");
    CHECK_INT(r[4].egress_bytes, 29);
    free(r);
    f.offset = 40;
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 0);
    CHECK_INT(total, 30);
    free(r);
    store_close(s);
}

static void t_rollup_keeps_totals(void)
{
    store *s = open_fresh();
    CHECK(s);
    int64_t hour = T0 - T0 % 3600;
    store_usage_delta d[] = {
        delta(hour + 60, KA, "c", "u", "n1", 10, 1, 100, 2),
        delta(hour + 120, KA, "c", "u", "n1", 20, 2, 200, 3),
        delta(hour + 3600 + 60, KA, "c", "u", "n1", 40, 4, 400, 1),
        delta(hour - 3600, KA, "c", "u", "n1", 1, 1, 1, 1),
    };
    CHECK_INT(store_usage_add(s, d, 4), STORE_OK);
    size_t rolled = 0;
    CHECK_INT(store_usage_rollup(s, hour + 3600, 0, &rolled), STORE_OK);
    CHECK_INT(rolled, 3);
    store_usage_row *r;
    size_t n, total;
    store_usage_filter f = filter(hour, hour + 7200, 60, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 2);
    CHECK_INT(r[0].bucket, hour); /* the hour row */
    CHECK_INT(r[0].egress_bytes, 30);
    CHECK_INT(r[0].alloc_ms, 300);
    CHECK_INT(r[0].peak_allocs, 3);
    CHECK_INT(r[1].bucket, hour + 3660); /* still a minute row */
    free(r);
    /* a late delta for a rolled-up hour folds into the same hour row */
    store_usage_delta late = delta(hour + 180, KA, "c", "u", "n1", 5, 0, 0, 4);
    CHECK_INT(store_usage_add(s, &late, 1), STORE_OK);
    CHECK_INT(store_usage_rollup(s, hour + 3600, 0, &rolled), STORE_OK);
    CHECK_INT(rolled, 1);
    f = filter(hour, hour + 3600, 3600, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].egress_bytes, 35);
    CHECK_INT(r[0].peak_allocs, 4);
    free(r);
    /* hour rows older than drop_before go */
    CHECK_INT(store_usage_rollup(s, hour + 3600, hour, &rolled), STORE_OK);
    CHECK_INT(rolled, 0);
    f = filter(hour - 3600, hour + 7200, 0, 0);
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].egress_bytes, 75); /* 35 + 40; the hour before is gone */
    free(r);
    store_close(s);
}

static void t_reopen_keeps_usage(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    CHECK_INT(seed(s), STORE_OK);
    store_close(s);
    s = open_at(where);
    CHECK(s);
    CHECK_INT(seed(s), STORE_OK);
    store_usage_filter f = filter(T0, T0 + 120, 0, 0);
    store_usage_row *r;
    size_t n, total;
    CHECK_INT(store_usage_query(s, &f, &r, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(r[0].egress_bytes, 2 * 1312);
    free(r);
    store_close(s);
}

int main(void)
{
    TK_RUN_BOTH(t_add_sums_and_merges_peaks);
    TK_RUN_BOTH(t_groups_steps_and_filters);
    TK_RUN_BOTH(t_pagination);
    TK_RUN_BOTH(t_rollup_keeps_totals);
    TK_RUN_BOTH(t_reopen_keeps_usage);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
