/* Store conformance for the webhook queue ops (issue 14): the same checks on SQLite and
 * PostgreSQL. */
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define ACC "0000000000000000000000000000000a"
#define ACC2 "0000000000000000000000000000000b"
#define T0 1700000000000LL /* ms */

static store_webhook_event event(const char *acct, unsigned kind, int n)
{
    store_webhook_event e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%032x", n);
    snprintf(e.account_id, sizeof e.account_id, "%s", acct);
    e.kind = kind;
    e.created = T0 + n;
    e.next_at = T0;
    e.body = util_xasprintf("{\"n\":%d}", n);
    return e;
}

static void free_events(store_webhook_event *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].body);
}

static void t_put_get_rotate_delete(void)
{
    store *s = open_fresh();
    CHECK(s);
    store_webhook w, g;
    bool created;
    CHECK_INT(store_webhook_get(s, ACC, &g), STORE_NOT_FOUND);
    CHECK_INT(store_webhook_put(s, ACC, "http://127.0.0.1:9/a", STORE_WEBHOOK_ALL, false, T0, &w,
                                &created),
              STORE_OK);
    CHECK(created);
    CHECK(util_is_lower_hex(w.secret, STORE_WEBHOOK_SECRET_LEN));
    CHECK_STR(w.url, "http://127.0.0.1:9/a");
    CHECK_INT(w.events, STORE_WEBHOOK_ALL);
    CHECK_INT(w.created, T0);
    char first[STORE_WEBHOOK_SECRET_LEN + 1];
    memcpy(first, w.secret, sizeof first);
    store_webhook_clear(&w);
    /* a second put keeps the secret and the creation time */
    CHECK_INT(store_webhook_put(s, ACC, "https://example.com/b", STORE_WEBHOOK_BUDGET_EXCEEDED,
                                false, T0 + 5, &w, &created),
              STORE_OK);
    CHECK(!created);
    CHECK_STR(w.secret, first);
    CHECK_STR(w.url, "https://example.com/b");
    CHECK_INT(w.events, STORE_WEBHOOK_BUDGET_EXCEEDED);
    CHECK_INT(w.created, T0);
    CHECK_INT(w.modified, T0 + 5);
    store_webhook_clear(&w);
    /* rotate: a new secret */
    CHECK_INT(store_webhook_put(s, ACC, "https://example.com/b", STORE_WEBHOOK_ALL, true, T0 + 6,
                                &w, &created),
              STORE_OK);
    CHECK(!created);
    CHECK(strcmp(w.secret, first) != 0);
    CHECK_INT(store_webhook_get(s, ACC, &g), STORE_OK);
    CHECK_STR(g.secret, w.secret);
    CHECK_STR(g.url, "https://example.com/b");
    store_webhook_clear(&g);
    store_webhook_clear(&w);
    /* delete takes the queued events with it */
    store_webhook_event e = event(ACC, STORE_WEBHOOK_ALLOCATION_ENDED, 1);
    size_t queued, dropped, count;
    CHECK_INT(store_webhook_enqueue(s, &e, 1, 100, &queued, &dropped), STORE_OK);
    CHECK_INT(queued, 1);
    CHECK_INT(store_webhook_count(s, &count), STORE_OK);
    CHECK_INT(count, 1);
    CHECK_INT(store_webhook_delete(s, ACC, &g), STORE_OK);
    CHECK_STR(g.url, "https://example.com/b");
    store_webhook_clear(&g);
    CHECK_INT(store_webhook_count(s, &count), STORE_OK);
    CHECK_INT(count, 0);
    CHECK_INT(store_webhook_delete(s, ACC, &g), STORE_NOT_FOUND);
    CHECK_INT(store_webhook_get(s, ACC, &g), STORE_NOT_FOUND);
    free_events(&e, 1);
    store_close(s);
}

static void t_enqueue_filters_and_caps(void)
{
    store *s = open_fresh();
    CHECK(s);
    store_webhook w;
    bool created;
    CHECK_INT(store_webhook_put(s, ACC, "http://127.0.0.1:9/",
                                STORE_WEBHOOK_ALLOCATION_ENDED | STORE_WEBHOOK_BUDGET_EXCEEDED,
                                false, T0, &w, &created),
              STORE_OK);
    store_webhook_clear(&w);
    store_webhook_event e[8];
    for (int i = 0; i < 6; i++)
        e[i] = event(ACC, i == 1 ? STORE_WEBHOOK_BUDGET_THRESHOLD : STORE_WEBHOOK_ALLOCATION_ENDED,
                     i + 1);
    e[6] = event(ACC2, STORE_WEBHOOK_ALLOCATION_ENDED, 7); /* no webhook: skipped */
    e[7] = event(ACC, STORE_WEBHOOK_BUDGET_EXCEEDED, 8);
    size_t queued, dropped, count, n;
    /* 7 subscribed events of ACC, at most 4 kept: the 3 oldest go */
    CHECK_INT(store_webhook_enqueue(s, e, 8, 4, &queued, &dropped), STORE_OK);
    CHECK_INT(queued, 6);
    CHECK_INT(dropped, 2);
    CHECK_INT(store_webhook_count(s, &count), STORE_OK);
    CHECK_INT(count, 4);
    store_webhook_event *c;
    CHECK_INT(store_webhook_claim(s, T0, T0 + 1000, 10, &c, &n), STORE_OK);
    CHECK_INT(n, 4);
    const char *want[] = {"00000000000000000000000000000004", "00000000000000000000000000000005",
                          "00000000000000000000000000000006", "00000000000000000000000000000008"};
    for (size_t i = 0; i < 4; i++)
        CHECK_STR(c[i].id, want[i]);
    CHECK_INT(c[3].kind, STORE_WEBHOOK_BUDGET_EXCEEDED);
    CHECK_STR(c[3].body, "{\"n\":8}");
    CHECK_STR(c[3].url, "http://127.0.0.1:9/");
    CHECK_INT(c[3].created, T0 + 8);
    CHECK(util_is_lower_hex(c[3].secret, STORE_WEBHOOK_SECRET_LEN));
    store_webhook_event_array_free(c, n);
    free_events(e, 8);
    store_close(s);
}

static void t_claim_lease_retry_done(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_webhook w;
    bool created;
    CHECK_INT(store_webhook_put(s, ACC, "http://127.0.0.1:9/", STORE_WEBHOOK_ALL, false, T0, &w,
                                &created),
              STORE_OK);
    store_webhook_clear(&w);
    store_webhook_event e[4];
    for (int i = 0; i < 4; i++)
        e[i] = event(ACC, STORE_WEBHOOK_ALLOCATION_ENDED, i + 1);
    e[3].next_at = T0 + 5000; /* not due yet */
    size_t queued, dropped, n, m;
    CHECK_INT(store_webhook_enqueue(s, e, 4, 100, &queued, &dropped), STORE_OK);
    store_webhook_event *a, *b;
    CHECK_INT(store_webhook_claim(s, T0, T0 + 1000, 2, &a, &n), STORE_OK);
    CHECK_INT(n, 2);
    CHECK_STR(a[0].id, e[0].id);
    CHECK_STR(a[1].id, e[1].id);
    /* a second claimer (another connection, as another node) gets only the free one */
    store *s2 = open_at(where);
    CHECK(s2);
    CHECK_INT(store_webhook_claim(s2, T0, T0 + 1000, 10, &b, &m), STORE_OK);
    CHECK_INT(m, 1);
    CHECK_STR(b[0].id, e[2].id);
    store_webhook_event_array_free(b, m);
    /* a failed delivery: not due until next_at; the attempt count is kept */
    CHECK_INT(store_webhook_retry(s, a[0].seq, 3, T0 + 2000), STORE_OK);
    CHECK_INT(store_webhook_done(s, a[1].seq), STORE_OK);
    CHECK_INT(store_webhook_done(s, a[1].seq), STORE_OK); /* already gone: fine */
    CHECK_INT(store_webhook_claim(s2, T0 + 999, T0 + 3000, 10, &b, &m), STORE_OK);
    CHECK_INT(m, 0);
    store_webhook_event_array_free(b, m);
    /* after the lease ran out (a node died mid-delivery) the event is claimed again */
    CHECK_INT(store_webhook_claim(s2, T0 + 1000, T0 + 3000, 10, &b, &m), STORE_OK);
    CHECK_INT(m, 1);
    CHECK_STR(b[0].id, e[2].id);
    store_webhook_event_array_free(b, m);
    CHECK_INT(store_webhook_claim(s2, T0 + 5000, T0 + 9000, 10, &b, &m), STORE_OK);
    CHECK_INT(m, 3); /* the retried one, the one whose lease ran out again, the late one */
    CHECK_STR(b[0].id, e[0].id);
    CHECK_INT(b[0].attempts, 3);
    CHECK_INT(b[0].next_at, T0 + 2000);
    CHECK_STR(b[1].id, e[2].id);
    CHECK_STR(b[2].id, e[3].id);
    store_webhook_event_array_free(b, m);
    store_webhook_event_array_free(a, n);
    store_close(s2);
    store_close(s);
    /* the queue survives a reopen */
    s = open_at(where);
    CHECK(s);
    size_t count;
    CHECK_INT(store_webhook_count(s, &count), STORE_OK);
    CHECK_INT(count, 3);
    free_events(e, 4);
    store_close(s);
}

int main(void)
{
    TK_RUN_BOTH(t_put_get_rotate_delete);
    TK_RUN_BOTH(t_enqueue_filters_and_caps);
    TK_RUN_BOTH(t_claim_lease_retry_done);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
