/* api_policy: a TURN key's policy (issue 14 §4), v4 envelope:
 *   GET    /client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/policy
 *   PUT    …/policy   the whole document (policy_parse), stored normalized
 *   PATCH  …/policy   an RFC 7396 merge patch over the stored one (null clears a field)
 *   DELETE …/policy   clears it (200 even when there was none)
 * Every answer is {"policy": {…}, "modified": RFC 3339 | null, "status": {"tripped": […],
 * "budgets": […]}}. Reads need calls:read or calls:write, writes calls:write; every write
 * that changes something is audit-logged (resource type turn_key_policy, the documents as
 * old/new value) and reaches this node's key cache at once (the next mint sees it), the
 * other nodes' through the change feed. Writes of one node are serialized (a PATCH reads,
 * merges and writes under the api's policy mutex). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/policy.h"
#include "turnkey/util.h"

enum {
    E_AUTH = 10000,
    E_VALIDATION = 10001,
    E_NOT_FOUND = 10004,
    E_CONFLICT = 10409,
    E_INTERNAL = 10500
};

static void internal_error(api_response *r)
{
    api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
}

/* 400 with policy_parse's message, made printable ASCII first (it quotes a field name the
 * caller sent, cut to a length that may split a UTF-8 sequence). */
static void invalid(api_response *r, char *err)
{
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    api__error(r, 400, E_VALIDATION, err, NULL);
}

static json_t *budget_json(const store_budget *b, bool trip_shape)
{
    char start[32], end[32];
    util_rfc3339(b->period_start, start);
    util_rfc3339(b->period_end, end);
    const char *period = b->period == STORE_BUDGET_DAY ? "day" : "month";
    json_t *cid = b->custom_id[0] ? json_string(b->custom_id) : json_null();
    if (trip_shape)
        return json_pack("{s:o, s:s, s:s, s:s}", "customIdentifier", cid, "period", period, "until",
                         end, "action", policy_action_name(b->tripped));
    return json_pack("{s:o, s:s, s:s, s:s, s:I, s:i, s:o}", "customIdentifier", cid, "period",
                     period, "periodStart", start, "periodEnd", end, "limitBytes",
                     (json_int_t)b->limit_bytes, "level", b->level, "tripped",
                     b->tripped ? json_string(policy_action_name(b->tripped)) : json_null());
}

/* {"tripped": [...], "budgets": [...]} of the key's budget rows of the current periods. */
static json_t *status_json(store *st, const char *uid, int64_t now_s)
{
    store_budget *b = NULL;
    size_t n = 0;
    if (store_budget_list(st, uid, now_s, false, &b, &n) != STORE_OK)
        return NULL;
    json_t *tripped = json_array(), *budgets = json_array();
    for (size_t i = 0; i < n; i++) {
        if (b[i].tripped)
            json_array_append_new(tripped, budget_json(&b[i], true));
        json_array_append_new(budgets, budget_json(&b[i], false));
    }
    free(b);
    return json_pack("{s:o, s:o}", "tripped", tripped, "budgets", budgets);
}

/* The stored document as JSON (an empty object when the key has none); NULL: a store
 * fault or an unreadable row. *modified_ms = 0 when there is none. */
static json_t *stored_doc(store *st, const char *uid, int64_t *modified_ms)
{
    store_policy sp;
    *modified_ms = 0;
    int rc = store_policy_get(st, uid, &sp);
    if (rc == STORE_NOT_FOUND)
        return json_object();
    if (rc != STORE_OK)
        return NULL;
    json_t *doc = json_loads(sp.json, JSON_REJECT_DUPLICATES, NULL);
    *modified_ms = sp.modified;
    store_policy_clear(&sp);
    if (!json_is_object(doc)) {
        log_error("api", "key %s: the stored policy is not a JSON object", uid);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* 200 with the key's policy and status as they are now. */
json_t *api_policy_result(store *st, const char *key_uid, int64_t now_s)
{
    int64_t modified;
    json_t *doc = stored_doc(st, key_uid, &modified);
    json_t *status = doc ? status_json(st, key_uid, now_s) : NULL;
    if (!status) {
        json_decref(doc);
        return NULL;
    }
    char when[32];
    util_rfc3339_ms(modified, when);
    return json_pack("{s:o, s:o, s:o}", "policy", doc, "modified",
                     modified ? json_string(when) : json_null(), "status", status);
}

static void answer(api_server *a, const char *uid, int64_t now, api_response *r)
{
    json_t *result = api_policy_result(a->st, uid, now / 1000);
    if (!result) {
        internal_error(r);
        return;
    }
    api__ok(r, 200, result, NULL);
}

/* The body as text (an empty body is the empty document). */
static void body_text(const api_request *req, const char **s, size_t *len)
{
    *s = req->body_len ? (const char *)req->body : "{}";
    *len = req->body_len ? req->body_len : 2;
}

/* Validates the request body before anything is read or written (the check order puts
 * the body before the key's state): PUT a whole document, PATCH a patch whose members
 * are each valid (a merge with any valid document then is). 0, or -1 with the 400 written. */
static int validate_body(const api_request *req, api_response *r)
{
    json_t *obj;
    if (api__parse_body(req, &obj, r) != 0) /* 413 and malformed JSON, as everywhere */
        return -1;
    json_decref(obj);
    const char *s;
    size_t len;
    body_text(req, &s, &len);
    char err[200], *merged = NULL;
    policy p;
    int rc = !strcmp(req->method, "PUT") ? policy_parse(s, len, &p, err, sizeof err)
                                         : policy_patch(NULL, s, len, &merged, err, sizeof err);
    free(merged);
    if (rc != 0)
        invalid(r, err);
    return rc;
}

/* The new document of a PUT or PATCH over old (NULL: none): allocated, or NULL and the 400
 * written. */
static char *new_document(const api_request *req, const char *old, api_response *r)
{
    const char *s;
    size_t len;
    body_text(req, &s, &len);
    char err[200], *out = NULL;
    policy p;
    if (!strcmp(req->method, "PUT")) {
        if (policy_parse(s, len, &p, err, sizeof err) == 0)
            return policy_to_json(&p);
    } else if (policy_patch(old, s, len, &out, err, sizeof err) == 0) {
        return out;
    }
    invalid(r, err);
    return NULL;
}

static json_t *parse_doc(const char *s)
{
    return s ? json_loads(s, 0, NULL) : NULL;
}

/* One attempt of a write: reads the stored document into *old (*had), computes *doc and
 * writes it only if the store still holds what was read (another node may have written in
 * between: STORE_CONFLICT, the caller tries again). *changed: something was written. */
static int attempt(api_server *a, const api_request *req, const char *acct, const char *uid,
                   int64_t now, api_response *r, store_policy *old, bool *had, char **doc,
                   bool *changed)
{
    int rc = store_policy_get(a->st, uid, old);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return STORE_ERROR;
    *had = rc == STORE_OK;
    bool del = !strcmp(req->method, "DELETE");
    if (del) {
        rc = *had ? store_policy_delete(a->st, acct, uid) : STORE_OK;
        *changed = *had && rc == STORE_OK;
        return rc == STORE_NOT_FOUND && *had ? STORE_CONFLICT : rc; /* deleted meanwhile */
    }
    if (!(*doc = new_document(req, *had ? old->json : NULL, r)))
        return STORE_INVALID;
    if (*had && strcmp(old->json, *doc) == 0)
        return STORE_OK; /* the same document: nothing to change, nothing to log */
    store_policy put = {0};
    rc = store_policy_replace(a->st, acct, uid, *doc, *had ? old->json : NULL, now, &put);
    store_policy_clear(&put);
    *changed = rc == STORE_OK;
    return rc;
}

#define WRITE_ATTEMPTS 5

/* PUT / PATCH / DELETE under a->policy_mu (one node's writes in turn; other nodes' are
 * caught by the conditional write); the audit record and the cache refresh follow a write
 * that changed something. 0 (answer now), or -1 with the error written. */
static int write_locked(api_server *a, const api_request *req, const store_token *tok,
                        const char *acct, const char *uid, int64_t now, api_response *r)
{
    store_policy old = {0};
    bool had = false, changed = false;
    char *doc = NULL;
    int rc = STORE_CONFLICT;
    for (int i = 0; i < WRITE_ATTEMPTS && rc == STORE_CONFLICT; i++) {
        store_policy_clear(&old);
        free(doc);
        doc = NULL;
        rc = attempt(a, req, acct, uid, now, r, &old, &had, &doc, &changed);
    }
    if (rc == STORE_NOT_FOUND)
        api__error(r, 404, E_NOT_FOUND, "TURN key not found", NULL);
    else if (rc == STORE_CONFLICT)
        api__error(r, 409, E_CONFLICT, "the policy kept changing meanwhile; try again", NULL);
    else if (rc != STORE_OK && rc != STORE_INVALID) /* INVALID: the 400 is written */
        internal_error(r);
    if (changed) {
        bool del = !strcmp(req->method, "DELETE");
        if (keycache_policy_refresh(a->keys, uid, now / 1000) != 0)
            log_warn("api", "key %s: policy cache refresh failed (the change feed follows)", uid);
        json_t *ov = parse_doc(had ? old.json : NULL), *nv = parse_doc(doc);
        api__audit(a, req, "user", tok->id, acct,
                   del   ? "delete"
                   : had ? "update"
                         : "create",
                   "turn_key_policy", uid, ov, nv, now);
        json_decref(ov);
        json_decref(nv);
    }
    store_policy_clear(&old);
    free(doc);
    return rc == STORE_OK ? 0 : -1;
}

static void dispatch(api_server *a, const api_request *req, const store_token *tok,
                     const char *acct, const char *uid, int64_t now, api_response *r)
{
    bool reads = !strcmp(req->method, "GET");
    if (!reads && strcmp(req->method, "DELETE") && validate_body(req, r) != 0)
        return;
    store_key k;
    int rc = store_key_get(a->st, acct, uid, &k);
    if (rc == STORE_NOT_FOUND) {
        api__error(r, 404, E_NOT_FOUND, "TURN key not found", NULL);
        return;
    }
    if (rc != STORE_OK) {
        internal_error(r);
        return;
    }
    store_key_clear(&k);
    if (!reads) {
        pthread_mutex_lock(&a->policy_mu);
        rc = write_locked(a, req, tok, acct, uid, now, r);
        pthread_mutex_unlock(&a->policy_mu);
        if (rc != 0)
            return;
    }
    answer(a, uid, now, r);
}

/* p->seg: client v4 accounts {acct} calls turn_keys {key} policy */
void api__route_policy(api_server *a, const api_request *req, const api__path *p, int64_t now,
                       api_response *r)
{
    const char *m = req->method;
    if (strcmp(m, "GET") && strcmp(m, "PUT") && strcmp(m, "PATCH") && strcmp(m, "DELETE")) {
        api__method_not_allowed(r, "GET, PUT, PATCH, DELETE");
        return;
    }
    store_token tok;
    if (api__authenticate(a, req, now, &tok, r) != 0)
        return;
    char acct[64], uid[64];
    bool ids_ok = api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) == 0 &&
                  api__account_id_ok(acct) &&
                  api__decode_segment(p->seg[6], p->len[6], uid, sizeof uid) == 0 &&
                  strlen(uid) == STORE_ID_LEN && util_is_lower_hex(uid, STORE_ID_LEN);
    unsigned need = strcmp(m, "GET") ? STORE_PERM_WRITE : (STORE_PERM_READ | STORE_PERM_WRITE);
    if (!ids_ok)
        api__bad_identifier(r, req->path);
    else if (strcmp(tok.account_id, acct) != 0 || !(tok.perms & need))
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    else
        dispatch(a, req, &tok, acct, uid, now, r);
    store_token_clear(&tok);
}
