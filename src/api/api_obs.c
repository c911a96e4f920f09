/* api_obs: GET /metrics, /healthz, /readyz, and the api's own counters (HTTP requests by
 * templated route x method x status class, their durations, credentials minted/revoked).
 * Counters are relaxed atomics: the HTTP server calls api_observe from several threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/metrics.h"
#include "turnkey/util.h"

static const double dur_bounds[API__N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                  0.025,  0.05,  0.1,    0.25,  1.0};
static const char *const method_names[API__N_METHODS] = {"GET",    "POST", "PUT",  "PATCH",
                                                         "DELETE", "HEAD", "other"};

void api_set_draining(api_server *a)
{
    atomic_store(&a->draining, true);
}

static void respond_json(api_response *r, int status, json_t *doc)
{
    r->status = status;
    r->body = json_dumps(doc, JSON_COMPACT);
    if (!r->body)
        abort();
    r->content_type = "application/json";
    json_decref(doc);
}

void api__route_health(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                       api_response *r)
{
    (void)now_ms;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        api__method_not_allowed(r, "GET");
        return;
    }
    bool readyz = p->len[0] == 6 && memcmp(p->seg[0], "readyz", 6) == 0;
    char reason[256] = "";
    const char *why = NULL;
    if (readyz && atomic_load(&a->draining))
        respond_json(r, 503, json_pack("{s:s}", "status", "draining")); /* the reason */
    else if (readyz && a->cfg.store_problem &&
             (why = a->cfg.store_problem(a->cfg.store_problem_ctx)) != NULL)
        respond_json(r, 503, json_pack("{s:s,s:s}", "status", "unavailable", "reason", why));
    else if (readyz && a->cfg.obs && a->cfg.obs->ready &&
             !a->cfg.obs->ready(a->cfg.obs->ctx, reason, sizeof reason))
        respond_json(r, 503, json_pack("{s:s, s:s}", "status", "not ready", "reason", reason));
    else
        respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api__route_metrics(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r)
{
    (void)p;
    (void)now_ms;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        api__method_not_allowed(r, "GET");
        return;
    }
    char *text = a->cfg.obs && a->cfg.obs->metrics ? a->cfg.obs->metrics(a->cfg.obs->ctx) : NULL;
    if (!text) {
        metrics_buf b;
        metrics_init(&b);
        api_metrics(a, &b); /* without the relay: the api's own metrics */
        text = metrics_take(&b);
    }
    r->status = 200;
    r->body = text;
    r->content_type = METRICS_CONTENT_TYPE;
}

static size_t route_index(const char *route)
{
    for (size_t i = 0; i < API__N_ROUTES; i++)
        if (route == api__route_names[i])
            return i;
    return API__N_ROUTES - 1;
}

static size_t method_index(const char *m)
{
    for (size_t i = 0; i < API__N_METHODS - 1; i++)
        if (m && strcmp(m, method_names[i]) == 0)
            return i;
    return API__N_METHODS - 1;
}

void api_observe(api_server *a, const char *method, const api_response *r, int64_t duration_us)
{
    size_t ri = route_index(r->route), mi = method_index(method);
    int cls = r->status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    atomic_fetch_add_explicit(&a->ctr.http[ri][mi][cls - 1], 1, memory_order_relaxed);
    double s = (double)duration_us / 1e6;
    size_t b = 0;
    while (b < API__N_BUCKETS && s > dur_bounds[b])
        b++;
    atomic_fetch_add_explicit(&a->ctr.dur[ri][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->ctr.dur_sum_us[ri], (uint64_t)(duration_us > 0 ? duration_us : 0),
                              memory_order_relaxed);
}

static uint64_t ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void http_metrics(api_server *a, metrics_buf *b)
{
    char lab[256];
    metrics_family(b, "turnkey_http_requests_total", "counter",
                   "HTTP API requests by templated route, method and status class.");
    for (size_t ri = 0; ri < API__N_ROUTES; ri++)
        for (size_t mi = 0; mi < API__N_METHODS; mi++)
            for (int c = 0; c < 5; c++) {
                uint64_t v = ld(&a->ctr.http[ri][mi][c]);
                if (!v)
                    continue; /* only combinations that happened (the set stays bounded) */
                snprintf(lab, sizeof lab, "route=\"%s\",method=\"%s\",code=\"%dxx\"",
                         api__route_names[ri], method_names[mi], c + 1);
                metrics_u64(b, "turnkey_http_requests_total", lab, v);
            }
    metrics_family(b, "turnkey_http_request_duration_seconds", "histogram",
                   "Time to answer an HTTP API request, by templated route.");
    for (size_t ri = 0; ri < API__N_ROUTES; ri++) {
        uint64_t counts[API__N_BUCKETS + 1], n = 0;
        for (size_t i = 0; i <= API__N_BUCKETS; i++)
            n += counts[i] = ld(&a->ctr.dur[ri][i]);
        if (!n)
            continue;
        snprintf(lab, sizeof lab, "route=\"%s\"", api__route_names[ri]);
        metrics_histogram(b, "turnkey_http_request_duration_seconds", lab, dur_bounds, counts,
                          API__N_BUCKETS, (double)ld(&a->ctr.dur_sum_us[ri]) / 1e6);
    }
}

void api_metrics(api_server *a, metrics_buf *b)
{
    http_metrics(a, b);
    metrics_family(b, "turnkey_credentials_minted_total", "counter",
                   "TURN credentials minted, by endpoint.");
    metrics_u64(b, "turnkey_credentials_minted_total", "endpoint=\"generate-ice-servers\"",
                ld(&a->ctr.minted[0]));
    metrics_u64(b, "turnkey_credentials_minted_total", "endpoint=\"generate\"",
                ld(&a->ctr.minted[1]));
    metrics_family(b, "turnkey_credentials_revoked_total", "counter", "TURN credentials revoked.");
    metrics_u64(b, "turnkey_credentials_revoked_total", NULL, ld(&a->ctr.revoked));
}
