/* api: /readyz reasons, /metrics through the obs hook (and without one), the HTTP request
 * counters by templated route, and the audit query parser. */
#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/api.h"
#include "turnkey/audit.h"
#include "turnkey/log.h"
#include "turnkey/metrics.h"
#include "turnkey/obs.h"

typedef struct fake_obs {
    bool ready;
    const char *reason;
    int metrics_calls;
} fake_obs;

static bool f_ready(void *ctx, char *reason, size_t cap)
{
    fake_obs *f = ctx;
    snprintf(reason, cap, "%s", f->reason ? f->reason : "");
    return f->ready;
}

static char *f_metrics(void *ctx)
{
    fake_obs *f = ctx;
    f->metrics_calls++;
    char *s = malloc(32);
    snprintf(s, 32, "x_total 1\n");
    return s;
}

static api_response get(api_server *a, const char *path)
{
    api_request req = {.method = "GET", .path = path};
    api_response r;
    api_handle(a, &req, 1700000000000LL, &r);
    return r;
}

static void t_readyz_reasons(void)
{
    char *err = NULL;
    store *st = store_open(":memory:", &err);
    CHECK(st != NULL);
    fake_obs fo = {.ready = false, .reason = "store unavailable"};
    api_obs hooks = {.metrics = f_metrics, .ready = f_ready, .ctx = &fo};
    api_config cfg = {.obs = &hooks};
    api_server *a = api_new(st, &cfg, NULL);
    api_response r = get(a, "/readyz");
    CHECK_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"not ready\",\"reason\":\"store unavailable\"}");
    api_response_clear(&r);
    r = get(a, "/healthz");
    CHECK_INT(r.status, 200); /* liveness is not readiness */
    api_response_clear(&r);
    fo.ready = true;
    r = get(a, "/readyz");
    CHECK_INT(r.status, 200);
    CHECK_STR(r.route, "/readyz");
    api_response_clear(&r);
    api_set_draining(a);
    r = get(a, "/readyz");
    CHECK_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"draining\"}");
    api_response_clear(&r);
    api_free(a);
    store_close(st);
}

static void t_metrics_route_and_http_counters(void)
{
    char *err = NULL;
    store *st = store_open(":memory:", &err);
    CHECK(st != NULL);
    fake_obs fo = {.ready = true};
    api_obs hooks = {.metrics = f_metrics, .ready = f_ready, .ctx = &fo};
    api_config cfg = {.obs = &hooks};
    api_server *a = api_new(st, &cfg, NULL);
    api_response r = get(a, "/metrics");
    CHECK_INT(r.status, 200);
    CHECK_STR(r.content_type, METRICS_CONTENT_TYPE);
    CHECK_STR(r.body, "x_total 1\n");
    CHECK_INT(fo.metrics_calls, 1);
    api_response_clear(&r);
    r = get(a, "/client/v4/accounts/abc/calls/turn_keys/0123");
    CHECK_STR(r.route, "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}");
    api_observe(a, "GET", &r, 1500);
    api_response_clear(&r);
    r = get(a, "/no/such/route");
    CHECK_STR(r.route, "other");
    CHECK_INT(r.status, 400);
    api_observe(a, "BREW", &r, 2);
    api_response_clear(&r);
    metrics_buf b;
    metrics_init(&b);
    api_metrics(a, &b);
    char *text = metrics_take(&b);
    CHECK(strstr(text, "turnkey_http_requests_total{route=\"/client/v4/accounts/{account_id}/"
                       "calls/turn_keys/{key_id}\",method=\"GET\",code=\"4xx\"} 1\n") != NULL);
    CHECK(strstr(text, "turnkey_http_requests_total{route=\"other\",method=\"other\","
                       "code=\"4xx\"} 1\n") != NULL);
    CHECK(
        strstr(text,
               "turnkey_http_request_duration_seconds_bucket{route=\"other\",le=\"0.0005\"} 1\n") !=
        NULL);
    CHECK(strstr(text, "abc") == NULL); /* never the id */
    free(text);
    api_free(a);
    store_close(st);
}

static void t_audit_time_and_params(void)
{
    int64_t ms;
    CHECK_INT(audit_parse_time("2019-04-30", &ms), 0);
    CHECK_INT(ms, 1556582400000LL);
    CHECK_INT(audit_parse_time("2019-04-30T01:02:03.5+01:00", &ms), 0);
    CHECK_INT(ms, 1556582400000LL + 2 * 60000 + 3500);
    CHECK_INT(audit_parse_time("2019-04-30T01:02:03", &ms), -1); /* no zone */
    CHECK_INT(audit_parse_time("2019-13-01", &ms), -1);
    audit_params p;
    char err[128];
    CHECK_INT(audit_params_parse("action.type=dele%74e&per_page=20&page=3&direction=asc&x=1",
                                 "acct", &p, err, sizeof err),
              0);
    CHECK_STR(p.q.action, "delete");
    CHECK_INT(p.q.limit, 20);
    CHECK_INT(p.q.offset, 40);
    CHECK(p.q.ascending);
    CHECK_INT(audit_params_parse("per_page=1001", "acct", &p, err, sizeof err), -1);
    CHECK_STR(err, "invalid value for the query parameter per_page");
    CHECK_INT(audit_params_parse("since=2020-01-02&before=2020-01-01", "a", &p, err, sizeof err),
              -1);
    CHECK_INT(audit_params_parse("id=%zz", "a", &p, err, sizeof err), -1);
}

static void t_audit_store_roundtrip(void)
{
    char *err = NULL;
    store *st = store_open(":memory:", &err);
    CHECK(st != NULL);
    audit_actor who = {.type = "user", .id = "tok", .ip = "192.0.2.1", .interface = "API"};
    json_t *nv = json_pack("{s:s}", "name", "a");
    for (int i = 0; i < 5; i++)
        CHECK_INT(audit_record(st, &who, "acct", i % 2 ? "delete" : "create", "turn_key",
                               i == 4 ? "last" : "k", NULL, nv, 1000 + i),
                  STORE_OK);
    CHECK_INT(audit_record(st, &who, "other", "create", "turn_key", "k", NULL, nv, 1), 0);
    json_decref(nv);
    store_audit_query q = {.account_id = "acct", .limit = 2};
    store_audit *rows;
    size_t n, total;
    CHECK_INT(store_audit_list(st, &q, &rows, &n, &total), STORE_OK);
    CHECK_INT(total, 5);
    CHECK_INT(n, 2);
    CHECK_STR(rows[0].resource_id, "last"); /* newest first */
    CHECK_INT(rows[0].when, 1004);
    CHECK_STR(rows[0].new_value, "{\"name\":\"a\"}");
    store_audit_array_free(rows, n);
    q = (store_audit_query){.account_id = "acct", .action = "delete", .since = 1002};
    CHECK_INT(store_audit_list(st, &q, &rows, &n, &total), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(rows[0].when, 1003);
    store_audit_array_free(rows, n);
    size_t purged = 0;
    CHECK_INT(store_audit_purge(st, 1003, &purged), STORE_OK);
    CHECK_INT(purged, 4); /* 1000, 1001, 1002 of acct and the one of "other" */
    store_close(st);
}

int main(void)
{
    log_set_level(LOG_WARN); /* the audit lines are checked elsewhere */
    TK_RUN(t_readyz_reasons);
    TK_RUN(t_metrics_route_and_http_counters);
    TK_RUN(t_audit_time_and_params);
    TK_RUN(t_audit_store_roundtrip);
    return tk_test_summary();
}
