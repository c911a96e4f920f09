/* api_webhook: the account's webhook (issue 14), v4 envelope:
 *   GET|PUT|DELETE /client/v4/accounts/{account_id}/calls/webhook
 * PUT {"url": "https://…", "events": ["allocation.ended", …], "rotate_secret": false}
 * creates (201) or replaces (200) it; the signing secret is generated on creation (or with
 * rotate_secret) and shown only in that answer. calls:read reads, calls:write changes; every
 * change is audit-logged (never the secret). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"
#include "turnkey/webhook.h"

enum { E_AUTH = 10000, E_VALIDATION = 10001, E_NOT_FOUND = 10004, E_INTERNAL = 10500 };

static json_t *events_json(unsigned events)
{
    json_t *a = json_array();
    for (unsigned k = 1; k <= STORE_WEBHOOK_ALL; k <<= 1)
        if (events & k)
            json_array_append_new(a, json_string(webhook_kind_name(k)));
    return a;
}

/* What the audit log keeps: never the secret. */
static json_t *hook_audit(const store_webhook *w)
{
    return json_pack("{s:s, s:o}", "url", w->url, "events", events_json(w->events));
}

static json_t *hook_json(const store_webhook *w, bool with_secret)
{
    char created[32], modified[32];
    util_rfc3339_ms(w->created, created);
    util_rfc3339_ms(w->modified, modified);
    json_t *o = json_pack("{s:s, s:o, s:s, s:s}", "url", w->url, "events", events_json(w->events),
                          "created", created, "modified", modified);
    if (with_secret)
        json_object_set_new(o, "secret", json_string(w->secret));
    return o;
}

static int bad(api_response *r, const char *msg, const char *pointer)
{
    api__error(r, 400, E_VALIDATION, msg, pointer);
    return -1;
}

static int parse_events(json_t *v, unsigned *events, api_response *r)
{
    *events = STORE_WEBHOOK_ALL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(r, "events must be a non-empty array of event types", "/events");
    *events = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        unsigned k = json_is_string(x) ? webhook_kind_parse(json_string_value(x)) : 0;
        if (!k)
            return bad(r,
                       "events: each must be allocation.ended, budget.threshold or "
                       "budget.exceeded",
                       "/events");
        *events |= k;
    }
    return 0;
}

/* The PUT body: url (required), events, rotate_secret; nothing else. */
static int parse_put(json_t *body, const char **url, unsigned *events, bool *rotate,
                     api_response *r)
{
    if (!body)
        return bad(r, "a JSON body with url is required", NULL);
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "url") && strcmp(k, "events") && strcmp(k, "rotate_secret")) {
            char msg[96];
            snprintf(msg, sizeof msg, "unknown field '%.40s' (url, events, rotate_secret)", k);
            return bad(r, util_utf8_valid_no_cc(k, strlen(k)) ? msg : "unknown field", NULL);
        }
    }
    json_t *u = json_object_get(body, "url");
    if (!json_is_string(u))
        return bad(r, "url must be a string", "/url");
    char err[128];
    if (webhook_url_check(json_string_value(u), err, sizeof err) != 0)
        return bad(r, err, "/url");
    *url = json_string_value(u);
    json_t *rs = json_object_get(body, "rotate_secret");
    if (rs && !json_is_boolean(rs))
        return bad(r, "rotate_secret must be true or false", "/rotate_secret");
    *rotate = rs && json_is_true(rs);
    return parse_events(json_object_get(body, "events"), events, r);
}

static void hook_put(api_server *a, const api_request *req, const store_token *tok,
                     const char *acct, int64_t now, api_response *r)
{
    json_t *body;
    const char *url;
    unsigned events;
    bool rotate, created;
    if (api__parse_body(req, &body, r) != 0)
        return;
    if (parse_put(body, &url, &events, &rotate, r) != 0) {
        json_decref(body);
        return;
    }
    store_webhook old, w;
    json_t *ov = store_webhook_get(a->st, acct, &old) == STORE_OK ? hook_audit(&old) : NULL;
    if (ov)
        store_webhook_clear(&old);
    if (store_webhook_put(a->st, acct, url, events, rotate, now, &w, &created) != STORE_OK) {
        api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
    } else {
        json_t *nv = hook_audit(&w);
        if (rotate)
            json_object_set_new(nv, "secret_rotated", json_true());
        api__audit(a, req, "user", tok->id, acct, created ? "create" : "update", "webhook", acct,
                   ov, nv, now);
        json_decref(nv);
        api__ok(r, created ? 201 : 200, hook_json(&w, created || rotate), NULL);
        store_webhook_clear(&w);
    }
    json_decref(ov);
    json_decref(body);
}

static void hook_get_delete(api_server *a, const api_request *req, const store_token *tok,
                            const char *acct, int64_t now, api_response *r)
{
    bool del = !strcmp(req->method, "DELETE");
    store_webhook w;
    int rc = del ? store_webhook_delete(a->st, acct, &w) : store_webhook_get(a->st, acct, &w);
    if (rc == STORE_NOT_FOUND) {
        api__error(r, 404, E_NOT_FOUND, "No webhook is set for this account", NULL);
        return;
    }
    if (rc != STORE_OK) {
        api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
        return;
    }
    if (del) {
        json_t *ov = hook_audit(&w);
        api__audit(a, req, "user", tok->id, acct, "delete", "webhook", acct, ov, NULL, now);
        json_decref(ov);
    }
    api__ok(r, 200, hook_json(&w, false), NULL);
    store_webhook_clear(&w);
}

void api__route_webhook(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r)
{
    const char *m = req->method;
    if (strcmp(m, "GET") && strcmp(m, "PUT") && strcmp(m, "DELETE")) {
        api__method_not_allowed(r, "GET, PUT, DELETE");
        return;
    }
    store_token tok;
    if (api__authenticate(a, req, now_ms, &tok, r) != 0)
        return;
    char acct[64];
    unsigned need = strcmp(m, "GET") ? STORE_PERM_WRITE : (STORE_PERM_READ | STORE_PERM_WRITE);
    if (api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) != 0 ||
        !api__account_id_ok(acct))
        api__bad_identifier(r, req->path);
    else if (strcmp(tok.account_id, acct) != 0 || !(tok.perms & need))
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    else if (!strcmp(m, "PUT"))
        hook_put(a, req, &tok, acct, now_ms, r);
    else
        hook_get_delete(a, req, &tok, acct, now_ms, r);
    store_token_clear(&tok);
}
