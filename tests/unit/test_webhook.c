/* webhook (issue 14): URL validation, the signature, the backoff, and the main thread's
 * side — events built from allocation ends and the spend guard's hook, their accounts, the
 * bounded in-memory batch and its write into the store's queue (no worker started here). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tk_test.h"
#include "turnkey/metrics.h"
#include "turnkey/store.h"
#include "turnkey/util.h"
#include "turnkey/webhook.h"

static void t_url_check(void)
{
    const char *good[] = {"http://127.0.0.1:8080/hook",         "https://example.com",
                          "HTTPS://Example.COM/a/b?c=d&e=%20f", "http://[::1]:9/x",
                          "http://my_host.internal/",           "https://a.b?x=y"};
    const char *bad[] = {"",
                         "ftp://example.com/",
                         "example.com/hook",
                         "javascript:alert(1)",
                         "http://",
                         "http:///x",
                         "http://:80/",
                         "http://u:p@example.com/",
                         "http://example.com:0/",
                         "http://example.com:65536/",
                         "http://example.com:/",
                         "http://example.com:1234567/",
                         "http://exa mple.com/",
                         "http://example.com/\x01",
                         "http://ex\xc3\xa9.com/",
                         "http://example.com/#f",
                         "http://[::1/",
                         "http://[]/",
                         "http://[zz]/",
                         "http://a!b.com/"};
    char err[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (webhook_url_check(good[i], err, sizeof err) != 0)
            fprintf(stderr, "  refused %s: %s\n", good[i], err);
        CHECK_INT(webhook_url_check(good[i], err, sizeof err), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (webhook_url_check(bad[i], err, sizeof err) == 0)
            fprintf(stderr, "  accepted %s\n", bad[i]);
        CHECK_INT(webhook_url_check(bad[i], err, sizeof err), -1);
        CHECK(strlen(err) > 5);
    }
    char longurl[WEBHOOK_URL_MAX + 2] = "http://a/";
    memset(longurl + 9, 'x', sizeof longurl - 10);
    longurl[sizeof longurl - 1] = '\0';
    CHECK_INT(webhook_url_check(longurl, err, sizeof err), -1);
    longurl[WEBHOOK_URL_MAX] = '\0';
    CHECK_INT(webhook_url_check(longurl, err, sizeof err), 0);
}

static void t_kinds_sign_backoff(void)
{
    CHECK_INT(webhook_kind_parse("allocation.ended"), STORE_WEBHOOK_ALLOCATION_ENDED);
    CHECK_INT(webhook_kind_parse("budget.threshold"), STORE_WEBHOOK_BUDGET_THRESHOLD);
    CHECK_INT(webhook_kind_parse("budget.exceeded"), STORE_WEBHOOK_BUDGET_EXCEEDED);
    CHECK_INT(webhook_kind_parse("budget"), 0);
    CHECK_STR(webhook_kind_name(STORE_WEBHOOK_BUDGET_EXCEEDED), "budget.exceeded");
    CHECK_STR(webhook_kind_name(3), "");
    /* HMAC-SHA256 under the 64 ASCII bytes of the secret of "1700000000.{"x":1}" (Python's
     * hmac module gives the same) */
    char secret[65], sig[65];
    memset(secret, 'a', 64);
    secret[64] = '\0';
    webhook_sign(secret, 1700000000, "{\"x\":1}", 7, sig);
    CHECK_STR(sig, "647f8f9f5e2d2d62e84c50490b9bda400f8050d2e673d71c230beac370096ea7");
    webhook_sign(secret, 1700000001, "{\"x\":1}", 7, sig);
    CHECK(strcmp(sig, "647f8f9f5e2d2d62e84c50490b9bda400f8050d2e673d71c230beac370096ea7") != 0);
    /* 1 s, 2 s, 4 s ... each between half and all of its step; capped */
    int64_t cap = 600000;
    for (int f = 1; f <= 40; f++) {
        int64_t step = f <= 20 ? (1000LL << (f - 1)) : cap;
        if (step > cap)
            step = cap;
        CHECK_INT(webhook_backoff_ms(f, cap, 0), step / 2);
        CHECK_INT(webhook_backoff_ms(f, cap, 0xffffffffu) <= step, 1);
        CHECK_INT(webhook_backoff_ms(f, cap, 12345) >= step / 2, 1);
    }
    CHECK_INT(webhook_backoff_ms(1, cap, 500), 1000); /* 500 + 500 % 501 */
    CHECK_INT(webhook_backoff_ms(1000000, 1000, 7), 500 + 7);
}

#define ACC_NAME "hooks"

typedef struct env {
    store *s;
    char account[STORE_ID_LEN + 1], key[STORE_ID_LEN + 1];
} env;

static int env_open(env *e)
{
    char *err = NULL;
    if (!(e->s = store_open(":memory:", &err))) {
        store_free_err(err);
        return -1;
    }
    store_account a;
    store_key k;
    char bearer[65];
    if (store_account_create(e->s, ACC_NAME, 1, &a) != STORE_OK)
        return -1;
    memcpy(e->account, a.id, sizeof e->account);
    store_account_clear(&a);
    if (store_key_create(e->s, e->account, "k", 10, 1, &k, bearer) != STORE_OK)
        return -1;
    memcpy(e->key, k.uid, sizeof e->key);
    store_key_clear(&k);
    store_webhook w;
    bool created;
    if (store_webhook_put(e->s, e->account, "http://127.0.0.1:9/", STORE_WEBHOOK_ALL, false, 1, &w,
                          &created) != STORE_OK)
        return -1;
    store_webhook_clear(&w);
    return 0;
}

static json_t *claim_all(store *s, size_t *n)
{
    store_webhook_event *ev;
    json_t *arr = json_array();
    if (store_webhook_claim(s, util_now_ms() + 1000, util_now_ms() + 60000, 100, &ev, n) !=
        STORE_OK)
        return arr;
    for (size_t i = 0; i < *n; i++) {
        json_t *doc = json_loads(ev[i].body, 0, NULL);
        if (doc && strcmp(json_string_value(json_object_get(doc, "id")), ev[i].id) == 0)
            json_array_append_new(arr, doc);
        else
            json_decref(doc);
    }
    store_webhook_event_array_free(ev, *n);
    return arr;
}

static uint64_t metric(webhook *wh, const char *sample)
{
    metrics_buf b;
    metrics_init(&b);
    webhook_metrics(wh, &b);
    char *text = metrics_take(&b);
    char line[128];
    snprintf(line, sizeof line, "\n%s", sample); /* a sample line, not # HELP / # TYPE */
    char *at = strstr(text, line);
    uint64_t v = at ? strtoull(at + strlen(line), NULL, 10) : UINT64_MAX;
    free(text);
    return v;
}

static void t_events_into_the_queue(void)
{
    env e;
    CHECK_INT(env_open(&e), 0);
    webhook *wh = webhook_new(&(webhook_config){.st = e.s});
    relay_ended r = {.transport = TURN_PROTO_UDP,
                     .family = AF_INET6,
                     .start_ms = 1700000000000,
                     .end_ms = 1700000001500,
                     .reason = TURN_END_REVOKED};
    snprintf(r.key_id, sizeof r.key_id, "%s", e.key);
    snprintf(r.custom_id, sizeof r.custom_id, "cid-1");
    snprintf(r.username, sizeof r.username, "1700009999:\xff\x01");
    r.traffic.client_rx.bytes = 11;
    r.traffic.client_tx.bytes = 22;
    r.traffic.peer_rx.bytes = 33;
    r.traffic.peer_tx.packets = 4;
    webhook_allocation_ended(wh, &r);
    char budget[200];
    snprintf(budget, sizeof budget, "{\"keyId\":\"%s\",\"percent\":80}", e.key);
    webhook_emit(wh, "budget.threshold", budget);
    snprintf(budget, sizeof budget, "{\"accountId\":\"%s\",\"limit\":5}", e.account);
    webhook_emit(wh, "budget.exceeded", budget);
    /* unattributed: unknown type, not an object, no account, an unknown key */
    webhook_emit(wh, "budget.nope", budget);
    webhook_emit(wh, "budget.exceeded", "[1]");
    webhook_emit(wh, "budget.exceeded", "{\"limit\":5}");
    webhook_emit(wh, "budget.exceeded", "{\"keyId\":\"ffffffffffffffffffffffffffffffff\"}");
    snprintf(r.key_id, sizeof r.key_id, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    webhook_allocation_ended(wh, &r);
    CHECK_INT(metric(wh, "turnkey_webhook_dropped_total{reason=\"unattributed\"} "), 5);
    CHECK_INT(metric(wh, "turnkey_webhook_pending_events "), 3);
    webhook_tick(wh);
    CHECK_INT(metric(wh, "turnkey_webhook_pending_events "), 0);
    CHECK_INT(metric(wh, "turnkey_webhook_events_queued_total "), 3);
    CHECK_INT(metric(wh, "turnkey_webhook_queue_events "), 3);
    size_t n;
    json_t *arr = claim_all(e.s, &n);
    CHECK_INT(n, 3);
    CHECK_INT(json_array_size(arr), 3);
    json_t *a0 = json_array_get(arr, 0), *d = json_object_get(a0, "data");
    CHECK_STR(json_string_value(json_object_get(a0, "type")), "allocation.ended");
    CHECK_STR(json_string_value(json_object_get(a0, "accountId")), e.account);
    CHECK(util_is_lower_hex(json_string_value(json_object_get(a0, "id")), 32));
    CHECK_STR(json_string_value(json_object_get(d, "keyId")), e.key);
    CHECK_STR(json_string_value(json_object_get(d, "customIdentifier")), "cid-1");
    CHECK_STR(json_string_value(json_object_get(d, "username")), "0x313730303030393939393aff01");
    CHECK_STR(json_string_value(json_object_get(d, "family")), "ipv6");
    CHECK_STR(json_string_value(json_object_get(d, "reason")), "revoked");
    CHECK_STR(json_string_value(json_object_get(d, "start")), "2023-11-14T22:13:20.000Z");
    CHECK_INT(json_integer_value(json_object_get(d, "durationMs")), 1500);
    json_t *bytes = json_object_get(d, "bytes");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(bytes, "client"), "rx")), 11);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(bytes, "client"), "tx")), 22);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(bytes, "peer"), "rx")), 33);
    CHECK_INT(json_integer_value(
                  json_object_get(json_object_get(json_object_get(d, "packets"), "peer"), "tx")),
              4);
    json_t *a1 = json_array_get(arr, 1), *a2 = json_array_get(arr, 2);
    CHECK_STR(json_string_value(json_object_get(a1, "type")), "budget.threshold");
    CHECK_STR(json_string_value(json_object_get(a1, "accountId")), e.account);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(a1, "data"), "percent")), 80);
    CHECK_STR(json_string_value(json_object_get(a2, "type")), "budget.exceeded");
    CHECK(strcmp(json_string_value(json_object_get(a1, "id")),
                 json_string_value(json_object_get(a2, "id"))) != 0);
    json_decref(arr);
    webhook_free(wh);
    store_close(e.s);
}

/* A deleted key's allocations still reach its account (the account was seen before). */
static void t_deleted_key_keeps_its_account(void)
{
    env e;
    CHECK_INT(env_open(&e), 0);
    webhook *wh = webhook_new(&(webhook_config){.st = e.s});
    relay_ended r = {.start_ms = 1, .end_ms = 2, .reason = TURN_END_CLIENT};
    snprintf(r.key_id, sizeof r.key_id, "%s", e.key);
    webhook_allocation_ended(wh, &r);
    store_key k;
    CHECK_INT(store_key_delete(e.s, e.account, e.key, &k), STORE_OK);
    store_key_clear(&k);
    r.reason = TURN_END_KEY_DELETED;
    webhook_allocation_ended(wh, &r);
    webhook_tick(wh);
    size_t n;
    json_t *arr = claim_all(e.s, &n);
    CHECK_INT(n, 2);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(arr, 1), "data"), "reason")),
              "key_deleted");
    json_decref(arr);
    webhook_free(wh);
    store_close(e.s);
}

/* The in-memory batch is bounded: while the store fails, the oldest events go (counted). */
static void t_pending_is_bounded(void)
{
    env e;
    CHECK_INT(env_open(&e), 0);
    webhook *wh = webhook_new(&(webhook_config){.st = e.s, .max_pending = 2});
    char js[160];
    for (int i = 0; i < 5; i++) {
        snprintf(js, sizeof js, "{\"accountId\":\"%s\",\"n\":%d}", e.account, i);
        webhook_emit(wh, "budget.exceeded", js);
    }
    CHECK_INT(metric(wh, "turnkey_webhook_dropped_total{reason=\"pending_full\"} "), 3);
    webhook_tick(wh);
    size_t n;
    json_t *arr = claim_all(e.s, &n);
    CHECK_INT(n, 2);
    CHECK_INT(
        json_integer_value(json_object_get(json_object_get(json_array_get(arr, 0), "data"), "n")),
        3);
    json_decref(arr);
    webhook_free(wh);
    store_close(e.s);
}

/* A store whose webhook_enqueue fails until told otherwise, and remembers what it got. */
static int fake_fail = 1, fake_seen[16], fake_n;

static int fake_enqueue(void *ctx, const store_webhook_event *e, size_t n, size_t max,
                        size_t *queued, size_t *dropped)
{
    (void)ctx, (void)max;
    if (fake_fail)
        return STORE_ERROR;
    for (size_t i = 0; i < n && fake_n < 16; i++) {
        json_t *d = json_loads(e[i].body, 0, NULL);
        fake_seen[fake_n++] =
            (int)json_integer_value(json_object_get(json_object_get(d, "data"), "n"));
        json_decref(d);
    }
    *queued = n;
    *dropped = 0;
    return STORE_OK;
}

/* A batch the store refused goes back in front of newer events; the bound still holds. */
static void t_failed_write_is_kept(void)
{
    static const store_ops ops = {.webhook_enqueue = fake_enqueue};
    store fake = {.ops = &ops, .ctx = NULL};
    webhook *wh = webhook_new(&(webhook_config){.st = &fake, .max_pending = 3});
    char js[160];
    for (int i = 0; i < 5; i++) {
        snprintf(js, sizeof js, "{\"accountId\":\"%032d\",\"n\":%d}", 7, i);
        webhook_emit(wh, "budget.exceeded", js);
        if (i == 1)
            webhook_tick(wh); /* fails: 0 and 1 stay */
    }
    /* 0, 1 back in front, then 2, 3, 4: the oldest (0, 1) went to keep three */
    CHECK_INT(metric(wh, "turnkey_webhook_dropped_total{reason=\"pending_full\"} "), 2);
    CHECK_INT(metric(wh, "turnkey_webhook_pending_events "), 3);
    webhook_tick(wh);
    CHECK_INT(fake_n, 0);
    fake_fail = 0;
    webhook_tick(wh);
    CHECK_INT(fake_n, 3);
    CHECK_INT(fake_seen[0], 2);
    CHECK_INT(fake_seen[1], 3);
    CHECK_INT(fake_seen[2], 4);
    CHECK_INT(metric(wh, "turnkey_webhook_pending_events "), 0);
    webhook_free(wh);
}

int main(void)
{
    TK_RUN(t_url_check);
    TK_RUN(t_kinds_sign_backoff);
    TK_RUN(t_events_into_the_queue);
    TK_RUN(t_deleted_key_keeps_its_account);
    TK_RUN(t_pending_is_bounded);
    TK_RUN(t_failed_write_is_kept);
    return tk_test_summary();
}
