/* api_audit: GET /client/v4/accounts/{account_id}/audit_logs (Cloudflare's audit-log API
 * v1 shape, v4 envelope, page/per_page pagination), and the audit records of the api's own
 * control-plane changes. Readable with calls:read, calls:write or audit:read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/audit.h"

enum { E_AUTH = 10000, E_VALIDATION = 10001, E_INTERNAL = 10500 };

void api__audit(api_server *a, const api_request *req, const char *actor_type, const char *actor_id,
                const char *account_id, const char *action, const char *resource_type,
                const char *resource_id, json_t *old_value, json_t *new_value, int64_t now_ms)
{
    audit_actor who = {
        .type = actor_type, .id = actor_id, .ip = req->remote_addr, .interface = "API"};
    audit_record(a->st, &who, account_id, action, resource_type, resource_id, old_value, new_value,
                 now_ms);
}

static json_t *result_info(const audit_params *p, size_t count, size_t total)
{
    size_t pages = (total + p->per_page - 1) / p->per_page;
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "page", (json_int_t)p->page, "per_page",
                     (json_int_t)p->per_page, "count", (json_int_t)count, "total_count",
                     (json_int_t)total, "total_pages", (json_int_t)pages);
}

static void list(api_server *a, const api_request *req, const char *acct, api_response *r)
{
    audit_params ap;
    char err[128];
    if (audit_params_parse(req->query, acct, &ap, err, sizeof err) != 0) {
        api__error(r, 400, E_VALIDATION, err, NULL);
        return;
    }
    store_audit *rows;
    size_t n, total;
    if (store_audit_list(a->st, &ap.q, &rows, &n, &total) != STORE_OK) {
        api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, audit_to_json(&rows[i]));
    store_audit_array_free(rows, n);
    api__ok_info(r, arr, result_info(&ap, n, total));
}

void api__route_audit(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                      api_response *r)
{
    if (strcmp(req->method, "GET") != 0) {
        api__method_not_allowed(r, "GET");
        return;
    }
    store_token tok;
    if (api__authenticate(a, req, now_ms, &tok, r) != 0)
        return;
    char acct[64];
    if (api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) != 0 ||
        !api__account_id_ok(acct))
        api__bad_identifier(r, req->path);
    else if (strcmp(tok.account_id, acct) != 0 ||
             !(tok.perms & (STORE_PERM_READ | STORE_PERM_WRITE | STORE_PERM_AUDIT_READ)))
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    else
        list(a, req, acct, r);
    store_token_clear(&tok);
}
