/* Key policies and budget states (issue 14 §4) in the store: the conformance tests run on
 * SQLite and on PostgreSQL (store_fixture.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"

static int count_changes(store *s, int kind)
{
    store_change *c;
    size_t n;
    store_feed f;
    int found = 0;
    if (store_changes_since(s, 0, 1000, &c, &n, &f) != STORE_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        found += c[i].kind == kind;
    free(c);
    return found;
}

typedef struct world {
    store *s;
    store_account a, b;
    store_key k, k2;
} world;

static void world_open(world *w)
{
    char bearer[65];
    w->s = open_fresh();
    CHECK(w->s);
    CHECK_INT(store_account_create(w->s, "a", 1, &w->a), STORE_OK);
    CHECK_INT(store_account_create(w->s, "b", 1, &w->b), STORE_OK);
    CHECK_INT(store_key_create(w->s, w->a.id, "k", 10, 1, &w->k, bearer), STORE_OK);
    CHECK_INT(store_key_create(w->s, w->a.id, "k2", 10, 1, &w->k2, bearer), STORE_OK);
}

static void world_close(world *w)
{
    store_key_clear(&w->k);
    store_key_clear(&w->k2);
    store_account_clear(&w->a);
    store_account_clear(&w->b);
    store_close(w->s);
}

static store_budget budget(const char *key, const char *cid, int level, int tripped)
{
    store_budget b = {.period = STORE_BUDGET_DAY,
                      .period_start = 86400 * 100,
                      .period_end = 86400 * 101,
                      .limit_bytes = 1000,
                      .level = level,
                      .tripped = tripped};
    snprintf(b.key_uid, sizeof b.key_uid, "%s", key);
    snprintf(b.custom_id, sizeof b.custom_id, "%s", cid);
    return b;
}

static void t_put_get_delete(void)
{
    world w;
    world_open(&w);
    store_policy p, got;
    CHECK_INT(store_policy_get(w.s, w.k.uid, &got), STORE_NOT_FOUND);
    CHECK_INT(store_policy_put(w.s, w.a.id, w.k.uid, "{\"max_ttl\":60}", 5000, &p), STORE_OK);
    store_policy_clear(&p);
    CHECK_INT(store_policy_put(w.s, w.a.id, w.k.uid, "{\"max_ttl\":70}", 6000, &p), STORE_OK);
    store_policy_clear(&p);
    CHECK_INT(store_policy_get(w.s, w.k.uid, &got), STORE_OK);
    CHECK_STR(got.json, "{\"max_ttl\":70}");
    CHECK_STR(got.account_id, w.a.id);
    CHECK_INT(got.modified, 6000);
    store_policy_clear(&got);
    CHECK_INT(count_changes(w.s, STORE_CHANGE_POLICY), 2);

    /* another account's key, an unknown key, too large a document: nothing changes */
    CHECK_INT(store_policy_put(w.s, w.b.id, w.k.uid, "{}", 1, &p), STORE_NOT_FOUND);
    CHECK_INT(store_policy_put(w.s, w.a.id, "0123456789abcdef0123456789abcdef", "{}", 1, &p),
              STORE_NOT_FOUND);
    char *big = calloc(1, 5000);
    memset(big, ' ', 4999);
    CHECK_INT(store_policy_put(w.s, w.a.id, w.k.uid, big, 1, &p), STORE_INVALID);
    free(big);
    CHECK_INT(store_policy_delete(w.s, w.b.id, w.k.uid), STORE_NOT_FOUND);
    CHECK_INT(count_changes(w.s, STORE_CHANGE_POLICY), 2);

    CHECK_INT(store_policy_put(w.s, w.a.id, w.k2.uid, "{\"max_ttl\":9}", 1, &p), STORE_OK);
    store_policy_clear(&p);
    store_policy *all;
    size_t n;
    CHECK_INT(store_policy_list_all(w.s, &all, &n), STORE_OK);
    CHECK_INT(n, 2);
    store_policy_array_free(all, n);

    CHECK_INT(store_policy_delete(w.s, w.a.id, w.k.uid), STORE_OK);
    CHECK_INT(store_policy_delete(w.s, w.a.id, w.k.uid), STORE_NOT_FOUND);
    CHECK_INT(store_policy_get(w.s, w.k.uid, &got), STORE_NOT_FOUND);
    /* deleting the key deletes its policy */
    store_key gone;
    CHECK_INT(store_key_delete(w.s, w.a.id, w.k2.uid, &gone), STORE_OK);
    store_key_clear(&gone);
    CHECK_INT(store_policy_list_all(w.s, &all, &n), STORE_OK);
    CHECK_INT(n, 0);
    store_policy_array_free(all, n);
    world_close(&w);
}

static void t_budget_mark(void)
{
    world w;
    world_open(&w);
    unsigned adv;
    store_budget b = budget(w.k.uid, "", 80, 0);
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, STORE_BUDGET_NOTIFY);
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK); /* the same level again */
    CHECK_INT(adv, 0);
    b.level = 50; /* lower: nothing */
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, 0);
    b.level = 100;
    b.tripped = 3;
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, STORE_BUDGET_NOTIFY | STORE_BUDGET_TRIP);
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, 0);
    CHECK_INT(count_changes(w.s, STORE_CHANGE_BUDGET_TRIPPED), 1);

    /* a customIdentifier's budget is its own row; notify-only marks never trip */
    store_budget c = budget(w.k.uid, "room-1", 100, 0);
    CHECK_INT(store_budget_mark(w.s, &c, &adv), STORE_OK);
    CHECK_INT(adv, STORE_BUDGET_NOTIFY);
    CHECK_INT(count_changes(w.s, STORE_CHANGE_BUDGET_TRIPPED), 1);

    store_budget *l;
    size_t n;
    CHECK_INT(store_budget_list(w.s, w.k.uid, 86400 * 100, true, &l, &n), STORE_OK);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(l[0].custom_id, "");
        CHECK_INT(l[0].tripped, 3);
        CHECK_INT(l[0].level, 100);
        CHECK_INT(l[0].period_end, 86400 * 101);
    }
    free(l);
    CHECK_INT(store_budget_list(w.s, NULL, 86400 * 100, false, &l, &n), STORE_OK);
    CHECK_INT(n, 2);
    free(l);
    CHECK_INT(store_budget_list(w.s, NULL, 86400 * 101, false, &l, &n), STORE_OK);
    CHECK_INT(n, 0); /* the period is over */
    free(l);

    /* a policy change clears the trips but keeps the levels: the guard re-trips without a
     * second notification */
    store_policy p;
    CHECK_INT(store_policy_put(w.s, w.a.id, w.k.uid, "{}", 1, &p), STORE_OK);
    store_policy_clear(&p);
    CHECK_INT(store_budget_list(w.s, w.k.uid, 86400 * 100, true, &l, &n), STORE_OK);
    CHECK_INT(n, 0);
    free(l);
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, STORE_BUDGET_TRIP);
    /* a new limit starts afresh */
    b.limit_bytes = 2000;
    b.level = 80;
    b.tripped = 0;
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    CHECK_INT(adv, STORE_BUDGET_NOTIFY);

    /* bad input and an unknown key change nothing */
    store_budget bad = budget(w.k.uid, "", 101, 0);
    CHECK_INT(store_budget_mark(w.s, &bad, &adv), STORE_INVALID);
    bad = budget(w.k.uid, "", 50, 0);
    bad.period = 9;
    CHECK_INT(store_budget_mark(w.s, &bad, &adv), STORE_INVALID);
    bad = budget("0123456789abcdef0123456789abcdef", "", 50, 0);
    CHECK_INT(store_budget_mark(w.s, &bad, &adv), STORE_NOT_FOUND);

    size_t purged;
    CHECK_INT(store_budget_purge(w.s, 86400 * 101 + 1, &purged), STORE_OK);
    CHECK_INT(purged, 3);
    /* deleting the key deletes its rows */
    b.limit_bytes = 1000;
    CHECK_INT(store_budget_mark(w.s, &b, &adv), STORE_OK);
    store_key gone;
    CHECK_INT(store_key_delete(w.s, w.a.id, w.k.uid, &gone), STORE_OK);
    store_key_clear(&gone);
    CHECK_INT(store_budget_list(w.s, NULL, 0, false, &l, &n), STORE_OK);
    CHECK_INT(n, 0);
    free(l);
    world_close(&w);
}

/* Several connections marking the same budget at once advance it exactly once. */
typedef struct racer {
    const char *where;
    store_budget b;
    int notified, tripped;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char *err = NULL;
    store *s = store_open(r->where, &err);
    store_free_err(err);
    for (int level = 10; s && level <= 100; level += 10) {
        unsigned adv;
        r->b.level = level;
        r->b.tripped = level == 100 ? 2 : 0;
        if (store_budget_mark(s, &r->b, &adv) == STORE_OK) {
            r->notified += (adv & STORE_BUDGET_NOTIFY) != 0;
            r->tripped += (adv & STORE_BUDGET_TRIP) != 0;
        }
    }
    if (s)
        store_close(s);
    return NULL;
}

static void t_parallel_marks_advance_once(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_account a;
    store_key k;
    char bearer[65];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    racer r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){.where = where, .b = budget(k.uid, "", 0, 0)};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    int notified = 0, tripped = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        notified += r[i].notified;
        tripped += r[i].tripped;
    }
    CHECK(notified >= 1 && notified <= 10); /* each level at most once */
    CHECK_INT(tripped, 1);
    CHECK_INT(count_changes(s, STORE_CHANGE_BUDGET_TRIPPED), 1);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(s);
}

/* A conditional write: only over the document that was read. */
static void t_replace(void)
{
    world w;
    world_open(&w);
    store_policy p, got;
    CHECK_INT(store_policy_replace(w.s, w.a.id, w.k.uid, "{\"max_ttl\":1}", NULL, 1, &p), STORE_OK);
    store_policy_clear(&p);
    CHECK_INT(store_policy_replace(w.s, w.a.id, w.k.uid, "{\"max_ttl\":2}", NULL, 2, &p),
              STORE_CONFLICT);
    CHECK_INT(
        store_policy_replace(w.s, w.a.id, w.k.uid, "{\"max_ttl\":2}", "{\"max_ttl\":9}", 2, &p),
        STORE_CONFLICT);
    CHECK_INT(store_policy_get(w.s, w.k.uid, &got), STORE_OK);
    CHECK_STR(got.json, "{\"max_ttl\":1}"); /* nothing written by the refused ones */
    store_policy_clear(&got);
    CHECK_INT(count_changes(w.s, STORE_CHANGE_POLICY), 1);
    CHECK_INT(
        store_policy_replace(w.s, w.a.id, w.k.uid, "{\"max_ttl\":2}", "{\"max_ttl\":1}", 3, &p),
        STORE_OK);
    store_policy_clear(&p);
    world_close(&w);
}

/* Read-merge-write with retries from several connections loses no update. */
typedef struct incr {
    const char *where, *account, *key;
    int done;
} incr;

static void *increment(void *arg)
{
    incr *x = arg;
    char *err = NULL;
    store *s = store_open(x->where, &err);
    store_free_err(err);
    for (int i = 0; s && i < 10; i++) {
        for (int tries = 0; tries < 1000; tries++) {
            store_policy cur, put;
            int n = 0;
            char *expect = NULL, doc[64];
            if (store_policy_get(s, x->key, &cur) == STORE_OK) {
                sscanf(cur.json, "{\"max_ttl\":%d}", &n);
                expect = cur.json;
            }
            snprintf(doc, sizeof doc, "{\"max_ttl\":%d}", n + 1);
            int rc = store_policy_replace(s, x->account, x->key, doc, expect, 1, &put);
            store_policy_clear(&put);
            store_policy_clear(&cur);
            if (rc == STORE_OK) {
                x->done++;
                break;
            }
        }
    }
    if (s)
        store_close(s);
    return NULL;
}

static void t_parallel_replace_loses_nothing(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_account a;
    store_key k;
    char bearer[65];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    incr x[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        x[i] = (incr){.where = where, .account = a.id, .key = k.uid};
        pthread_create(&th[i], NULL, increment, &x[i]);
    }
    int done = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        done += x[i].done;
    }
    CHECK_INT(done, 40);
    store_policy got;
    CHECK_INT(store_policy_get(s, k.uid, &got), STORE_OK);
    CHECK_STR(got.json, "{\"max_ttl\":40}");
    store_policy_clear(&got);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(s);
}

/* store_copy carries policies across (SQLite to the backend under test), idempotently. */
static void t_copy(void)
{
    char *err = NULL, bearer[65];
    store *from = store_open(":memory:", &err);
    store_free_err(err);
    store *to = open_fresh();
    CHECK(from && to);
    store_account a;
    store_key k;
    store_policy p, got;
    CHECK_INT(store_account_create(from, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(from, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    CHECK_INT(store_policy_put(from, a.id, k.uid, "{\"daily_bytes\":5}", 77, &p), STORE_OK);
    store_policy_clear(&p);
    store_copy_counts c;
    CHECK_INT(store_copy(from, to, 1000, &c, &err), STORE_OK);
    CHECK_INT(c.policies, 1);
    CHECK_INT(store_policy_get(to, k.uid, &got), STORE_OK);
    CHECK_STR(got.json, "{\"daily_bytes\":5}");
    CHECK_INT(got.modified, 77);
    store_policy_clear(&got);
    CHECK_INT(store_copy(from, to, 1000, &c, &err), STORE_OK);
    CHECK_INT(c.copied, 0);
    CHECK_INT(c.policies, 1);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(from);
    store_close(to);
}

int main(void)
{
    TK_RUN_BOTH(t_put_get_delete);
    TK_RUN_BOTH(t_budget_mark);
    TK_RUN_BOTH(t_parallel_marks_advance_once);
    TK_RUN_BOTH(t_copy);
    TK_RUN_BOTH(t_replace);
    TK_RUN_BOTH(t_parallel_replace_loses_nothing);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
