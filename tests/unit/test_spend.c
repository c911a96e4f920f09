/* The spend guard (issue 14 §4) on a real store: levels and trips recorded once, the
 * webhook events it emits, and what the key cache then tells the mint and the relay. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test.h"
#include "turnkey/keycache.h"
#include "turnkey/policy.h"
#include "turnkey/spend.h"
#include "turnkey/util.h"

#define NOW 1765800000 /* 2025-12-15T12:00:00Z */

typedef struct world {
    store *st;
    store_account a;
    store_key k;
    keycache *kc;
    spend *g;
    int n_events;
    char types[16][32];
    char data[16][512];
} world;

static void on_event(void *ctx, const char *type, const char *json)
{
    world *w = ctx;
    if (w->n_events < 16) {
        snprintf(w->types[w->n_events], sizeof w->types[0], "%s", type);
        snprintf(w->data[w->n_events], sizeof w->data[0], "%s", json);
    }
    w->n_events++;
}

static void world_open(world *w, const char *policy_json)
{
    memset(w, 0, sizeof *w);
    char *err = NULL, bearer[65];
    w->st = store_open(":memory:", &err);
    store_free_err(err);
    CHECK_INT(store_account_create(w->st, "a", 1, &w->a), STORE_OK);
    CHECK_INT(store_key_create(w->st, w->a.id, "k", 10, 1, &w->k, bearer), STORE_OK);
    store_policy sp;
    CHECK_INT(store_policy_put(w->st, w->a.id, w->k.uid, policy_json, 1, &sp), STORE_OK);
    store_policy_clear(&sp);
    w->kc = keycache_new(w->st);
    CHECK_INT(keycache_load_all(w->kc, NOW), 0);
    w->g = spend_new(&(spend_config){.st = w->st, .kc = w->kc, .on_event = on_event, .ctx = w});
}

static void world_close(world *w)
{
    spend_free(w->g);
    keycache_free(w->kc);
    store_key_clear(&w->k);
    store_account_clear(&w->a);
    store_close(w->st);
}

static void add_usage(world *w, int64_t minute, const char *cid, uint64_t egress)
{
    store_usage_delta d = {
        .minute = minute - minute % 60, .egress_bytes = egress, .ingress_bytes = 7};
    memcpy(d.account_id, w->a.id, sizeof d.account_id);
    memcpy(d.key_uid, w->k.uid, sizeof d.key_uid);
    snprintf(d.custom_id, sizeof d.custom_id, "%s", cid);
    snprintf(d.username, sizeof d.username, "u");
    snprintf(d.node, sizeof d.node, "n1");
    CHECK_INT(store_usage_add(w->st, &d, 1), STORE_OK);
}

static int json_int(const char *doc, const char *field)
{
    json_t *o = json_loads(doc, 0, NULL);
    int v = (int)json_integer_value(json_object_get(o, field));
    json_decref(o);
    return v;
}

static void t_thresholds_then_trip(void)
{
    world w;
    world_open(&w, "{\"daily_bytes\":1000,\"action\":\"end_allocations\",\"thresholds\":[50,80]}");
    CHECK_INT(spend_run(w.g, NOW), 0); /* no usage yet */
    add_usage(&w, NOW - 600, "", 600);
    CHECK_INT(spend_run(w.g, NOW), 1);
    CHECK_INT(w.n_events, 1);
    CHECK_STR(w.types[0], "budget.threshold");
    CHECK_INT(json_int(w.data[0], "percentage"), 50);
    CHECK_INT(json_int(w.data[0], "usedBytes"), 600);
    CHECK_INT(json_int(w.data[0], "limitBytes"), 1000);
    CHECK(strstr(w.data[0], "\"period\":\"day\""));
    CHECK(strstr(w.data[0], w.k.uid));
    CHECK_INT(spend_run(w.g, NOW + 10), 0); /* nothing new: no second event */
    CHECK_INT(w.n_events, 1);

    keycache_policy v;
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW, &v);
    CHECK_INT(v.tripped, 0);
    add_usage(&w, NOW - 60, "", 450); /* 1050 >= 1000 (ingress is not counted) */
    CHECK_INT(spend_run(w.g, NOW + 20), 1);
    CHECK_INT(w.n_events, 2);
    CHECK_STR(w.types[1], "budget.exceeded");
    CHECK_INT(json_int(w.data[1], "percentage"), 100);
    CHECK(strstr(w.data[1], "\"action\":\"end_allocations\""));
    keycache_policy_view(w.kc, w.k.uid, "any-cid", NOW + 20, &v);
    CHECK_INT(v.tripped, POLICY_END_ALLOCATIONS);
    CHECK_INT(v.tripped_until, NOW - NOW % 86400 + 86400);
    /* the next UTC day starts afresh */
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW - NOW % 86400 + 86400, &v);
    CHECK_INT(v.tripped, 0);
    CHECK_INT(spend_run(w.g, NOW + 30), 0);
    CHECK_INT(w.n_events, 2);

    /* a raised budget clears the trip (the store logs the change, the cache follows) */
    store_policy sp;
    CHECK_INT(store_policy_put(w.st, w.a.id, w.k.uid, "{\"daily_bytes\":5000}", 2, &sp), STORE_OK);
    store_policy_clear(&sp);
    CHECK_INT(keycache_policy_refresh(w.kc, w.k.uid, NOW + 40), 0);
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW + 40, &v);
    CHECK_INT(v.tripped, 0);
    CHECK_INT(spend_run(w.g, NOW + 40), 0); /* 1050 of 5000: below 80 % */
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW + 40, &v);
    CHECK_INT(v.tripped, 0);
    world_close(&w);
}

static void t_custom_identifier_budgets(void)
{
    world w;
    world_open(&w, "{\"custom_identifier_monthly_bytes\":100,\"action\":\"stop_minting\"}");
    add_usage(&w, NOW - 86400 * 0, "room-a", 150);
    add_usage(&w, NOW - 3600, "room-b", 10);
    add_usage(&w, NOW - 3600, "", 100000); /* no customIdentifier: not a cid budget */
    CHECK_INT(spend_run(w.g, NOW), 1);
    CHECK_INT(w.n_events, 1);
    CHECK(strstr(w.data[0], "\"customIdentifier\":\"room-a\""));
    CHECK(strstr(w.data[0], "\"period\":\"month\""));
    keycache_policy v;
    keycache_policy_view(w.kc, w.k.uid, "room-a", NOW, &v);
    CHECK_INT(v.tripped, POLICY_STOP_MINTING);
    keycache_policy_view(w.kc, w.k.uid, "room-b", NOW, &v);
    CHECK_INT(v.tripped, 0);
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW, &v);
    CHECK_INT(v.tripped, 0);
    world_close(&w);
}

/* A customIdentifier's month adds its days (rows of several days and of other cids mixed). */
static void t_custom_identifier_month_adds_days(void)
{
    world w;
    world_open(&w, "{\"custom_identifier_monthly_bytes\":100,\"action\":\"stop_minting\"}");
    add_usage(&w, NOW - 86400 * 2, "room-z", 60);
    add_usage(&w, NOW - 86400 * 2, "room-a", 50); /* below 80 %: no event */
    add_usage(&w, NOW - 3600, "room-y", 1);
    add_usage(&w, NOW - 3600, "room-z", 50); /* 110 over two days */
    CHECK_INT(spend_run(w.g, NOW), 1);
    CHECK_INT(w.n_events, 1);
    CHECK(strstr(w.data[0], "\"customIdentifier\":\"room-z\""));
    CHECK_INT(json_int(w.data[0], "usedBytes"), 110);
    keycache_policy v;
    keycache_policy_view(w.kc, w.k.uid, "room-z", NOW, &v);
    CHECK_INT(v.tripped, POLICY_STOP_MINTING);
    keycache_policy_view(w.kc, w.k.uid, "room-a", NOW, &v);
    CHECK_INT(v.tripped, 0);
    world_close(&w);
}

static void t_notify_never_trips(void)
{
    world w;
    world_open(&w, "{\"monthly_bytes\":10}");
    add_usage(&w, NOW - 86400 * 3, "", 11); /* earlier this month: counts for the month */
    CHECK_INT(spend_run(w.g, NOW), 1);
    CHECK_STR(w.types[0], "budget.exceeded");
    keycache_policy v;
    keycache_policy_view(w.kc, w.k.uid, NULL, NOW, &v);
    CHECK_INT(v.tripped, 0);
    spend_stats s;
    spend_stats_read(w.g, &s);
    CHECK_INT(s.notified, 1);
    CHECK_INT(s.tripped, 0);
    CHECK_INT(s.runs, 1);
    world_close(&w);
}

static void t_levels(void)
{
    policy p;
    policy_init(&p);
    CHECK_INT(policy_level(&p, 0, 100), 0);
    CHECK_INT(policy_level(&p, 79, 100), 0);
    CHECK_INT(policy_level(&p, 80, 100), 80);
    CHECK_INT(policy_level(&p, 100, 100), 100);
    CHECK_INT(policy_level(&p, UINT64_MAX / 2, UINT64_MAX / 2 + 1), 80); /* no overflow */
    int64_t a, b;
    policy_month(1767225599, &a, &b); /* 2025-12-31T23:59:59Z */
    CHECK_INT(a, 1764547200);         /* 2025-12-01 */
    CHECK_INT(b, 1767225600);         /* 2026-01-01 */
    policy_day(1767225599, &a, &b);
    CHECK_INT(a, 1767139200);
    CHECK_INT(b, 1767225600);
}

int main(void)
{
    TK_RUN(t_thresholds_then_trip);
    TK_RUN(t_custom_identifier_budgets);
    TK_RUN(t_custom_identifier_month_adds_days);
    TK_RUN(t_notify_never_trips);
    TK_RUN(t_levels);
    return tk_test_summary();
}
