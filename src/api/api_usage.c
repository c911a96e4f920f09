/* api_usage: the REST usage API (issue 14), v4 envelope, page/per_page pagination:
 *   GET /client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/usage
 *   GET /client/v4/accounts/{account_id}/calls/usage            (account-wide; keyId groups)
 * Readable with calls:read, calls:write or analytics:read. A key deleted later keeps its
 * usage: the key is not looked up, its rows are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/usage.h"
#include "turnkey/util.h"

enum { E_AUTH = 10000, E_VALIDATION = 10001, E_INTERNAL = 10500 };

/* A JSON string of s, or "" should s not be valid UTF-8 (never aborts the response). */
static json_t *text(const char *s)
{
    json_t *v = json_string(s);
    return v ? v : json_string("");
}

static json_t *time_of(int64_t unix_s)
{
    char buf[32];
    util_rfc3339(unix_s, buf);
    return json_string(buf);
}

static json_t *row_json(const store_usage_row *u, const usage_params *p, bool key_known)
{
    json_t *o = json_object();
    json_object_set_new(o, "start", time_of(u->bucket));
    json_object_set_new(o, "end", time_of(u->bucket + p->f.step));
    if (key_known || (p->f.group_by & STORE_USAGE_BY_KEY))
        json_object_set_new(o, "keyId", text(key_known ? p->f.key_uid : u->key_uid));
    if (p->f.group_by & STORE_USAGE_BY_CUSTOM_ID)
        json_object_set_new(o, "customIdentifier", text(u->custom_id));
    if (p->f.group_by & STORE_USAGE_BY_USERNAME)
        json_object_set_new(o, "username", text(u->username));
    json_object_set_new(o, "egressBytes", json_integer((json_int_t)u->egress_bytes));
    json_object_set_new(o, "ingressBytes", json_integer((json_int_t)u->ingress_bytes));
    json_object_set_new(o, "allocationMilliseconds", json_integer((json_int_t)u->alloc_ms));
    json_object_set_new(o, "peakConcurrentAllocations", json_integer((json_int_t)u->peak_allocs));
    return o;
}

/* The time up to which this node's numbers are complete (its last batch), in ms. */
static int64_t as_of_ms(const api_server *a, int64_t now_ms)
{
    int64_t t = a->cfg.usage_as_of ? a->cfg.usage_as_of(a->cfg.usage_ctx) : 0;
    return t > 0 ? t : now_ms - a->cfg.usage_lag_ms;
}

static json_t *result_info(const usage_params *p, size_t count, size_t total, int64_t as_of)
{
    char buf[32];
    util_rfc3339_ms(as_of, buf);
    size_t pages = (total + p->per_page - 1) / p->per_page;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "page", (json_int_t)p->page, "per_page",
                     (json_int_t)p->per_page, "count", (json_int_t)count, "total_count",
                     (json_int_t)total, "total_pages", (json_int_t)pages, "as_of", buf);
}

static void answer(api_server *a, const api_request *req, const char *acct, const char *key,
                   int64_t now_ms, api_response *r)
{
    usage_params up;
    char err[160];
    if (usage_params_parse(req->query, now_ms / 1000, key == NULL, &up, err, sizeof err) != 0) {
        api__error(r, 400, E_VALIDATION, err, NULL);
        return;
    }
    up.f.account_id = acct;
    up.f.key_uid = key;
    int64_t as_of = as_of_ms(a, now_ms); /* read before the query: never later than its data */
    store_usage_row *rows;
    size_t n, total;
    if (store_usage_query(a->st, &up.f, &rows, &n, &total) != STORE_OK) {
        api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, row_json(&rows[i], &up, key != NULL));
    free(rows);
    api__ok_info(r, arr, result_info(&up, n, total, as_of));
}

void api__route_usage(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                      api_response *r)
{
    if (strcmp(req->method, "GET") != 0) {
        api__method_not_allowed(r, "GET");
        return;
    }
    store_token tok;
    if (api__authenticate(a, req, now_ms, &tok, r) != 0)
        return;
    bool per_key = p->n == 8;
    char acct[64], key[64];
    bool ids_ok = api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) == 0 &&
                  api__account_id_ok(acct);
    if (ids_ok && per_key)
        ids_ok = api__decode_segment(p->seg[6], p->len[6], key, sizeof key) == 0 &&
                 util_is_lower_hex(key, 32);
    if (!ids_ok)
        api__bad_identifier(r, req->path);
    else if (strcmp(tok.account_id, acct) != 0 ||
             !(tok.perms & (STORE_PERM_READ | STORE_PERM_WRITE | STORE_PERM_ANALYTICS_READ)))
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    else
        answer(a, req, acct, per_key ? key : NULL, now_ms, r);
    store_token_clear(&tok);
}
