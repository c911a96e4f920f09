/* api: routing, v4 envelope, authentication and the TURN-keys control plane.
 * Checks run in the order the product spec fixes: route, method, authentication,
 * identifier format, authorization (account + permission), body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "turnkey/util.h"

/* Error codes (docs/api.md). */
enum {
    E_INVALID_TOKEN = 1000, /* /user/tokens/verify */
    E_BAD_HEADERS = 6003,   /* + error_chain 6111 / 6103 */
    E_BAD_AUTH_FORMAT = 6111,
    E_BAD_JSON = 6007,
    E_NO_ROUTE = 7000,
    E_BAD_IDENTIFIER = 7003,
    E_MISSING_AUTH = 9106,
    E_AUTH = 10000,
    E_VALIDATION = 10001,
    E_KEY_LIMIT = 10002,
    E_TOO_LARGE = 10003,
    E_NOT_FOUND = 10004,
    E_METHOD = 10005,
    E_INTERNAL = 10500,
};

api_server *api_new(store *st, const api_config *cfg, const api_hooks *hooks)
{
    api_server *a = util_xcalloc(1, sizeof *a);
    a->st = st;
    a->cfg = *cfg;
    if (a->cfg.max_keys == 0)
        a->cfg.max_keys = 1000;
    if (a->cfg.max_revocations == 0)
        a->cfg.max_revocations = 100000;
    if (hooks)
        a->hooks = *hooks;
    a->keys = cfg->keys;
    if (!a->keys) {
        a->keys = keycache_new(st);
        a->own_keys = true;
    }
    a->limiter = policy_limiter_new();
    pthread_mutex_init(&a->policy_mu, NULL);
    return a;
}

void api_free(api_server *a)
{
    if (!a)
        return;
    if (a->own_keys)
        keycache_free(a->keys);
    policy_limiter_free(a->limiter);
    pthread_mutex_destroy(&a->policy_mu);
    free(a);
}

void api_response_clear(api_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* --- envelope ------------------------------------------------------------------------ */

static json_t *error_item(int code, const char *msg, const char *pointer)
{
    json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
    if (pointer)
        json_object_set_new(e, "source", json_pack("{s:s}", "pointer", pointer));
    return e;
}

static void respond(api_response *r, int status, json_t *doc)
{
    r->status = status;
    r->body = json_dumps(doc, JSON_COMPACT);
    if (!r->body)
        abort(); /* only on OOM: every string put in doc is valid UTF-8 */
    r->content_type = "application/json";
    json_decref(doc);
}

static void respond_errors(api_response *r, int status, json_t *errors)
{
    respond(
        r, status,
        json_pack("{s:b, s:o, s:[], s:n}", "success", 0, "errors", errors, "messages", "result"));
}

void api__error(api_response *r, int status, int code, const char *msg, const char *pointer)
{
    respond_errors(r, status, json_pack("[o]", error_item(code, msg, pointer)));
}

static void error_with_chain(api_response *r, int status, int code, const char *msg, int chain_code,
                             const char *chain_msg)
{
    json_t *e = error_item(code, msg, NULL);
    json_object_set_new(e, "error_chain",
                        json_pack("[o]", error_item(chain_code, chain_msg, NULL)));
    respond_errors(r, status, json_pack("[o]", e));
}

void api__ok(api_response *r, int status, json_t *result, json_t *messages)
{
    respond(r, status,
            json_pack("{s:b, s:[], s:o, s:o}", "success", 1, "errors", "messages",
                      messages ? messages : json_array(), "result", result));
}

void api__ok_info(api_response *r, json_t *result, json_t *result_info)
{
    respond(r, 200,
            json_pack("{s:b, s:[], s:[], s:o, s:o}", "success", 1, "errors", "messages", "result",
                      result, "result_info", result_info));
}

static void internal_error(api_response *r)
{
    api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
}

/* --- path and header parsing --------------------------------------------------------- */

static void split_path(const char *path, api__path *p)
{
    memset(p, 0, sizeof *p);
    const char *s = path;
    if (*s == '/')
        s++;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (!slash && len == 0)
            break;
        if (p->n == API__MAX_SEGS) {
            p->too_many = true;
            return;
        }
        p->seg[p->n] = s;
        p->len[p->n] = len;
        p->n++;
        if (!slash)
            break;
        s = slash + 1;
    }
}

static bool seg_is(const api__path *p, size_t i, const char *lit)
{
    return i < p->n && p->len[i] == strlen(lit) && memcmp(p->seg[i], lit, p->len[i]) == 0;
}

int api__decode_segment(const char *seg, size_t len, char *out, size_t cap)
{
    return util_percent_decode(seg, len, false, out, cap);
}

int api__bearer(const char *h, const char **tok, size_t *len)
{
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -1;
    const char *s = h + 6;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *e = s;
    while (*e && (strchr("._~+/=-", *e) || (*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'z') ||
                  (*e >= 'A' && *e <= 'Z')))
        e++;
    const char *t = e;
    while (*t == ' ' || *t == '\t')
        t++;
    if (e == s || *t != '\0' || e - s > 512)
        return -1;
    *tok = s;
    *len = (size_t)(e - s);
    return 0;
}

/* A printable-ASCII copy of the raw path for messages (JSON strings must be UTF-8). */
static void printable_path(const char *path, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *s = path; *s && o + 1 < cap; s++)
        out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    out[o] = '\0';
}

static void bad_identifier(api_response *r, const char *path)
{
    char pp[256], msg[400];
    printable_path(path, pp, sizeof pp);
    snprintf(msg, sizeof msg, "Could not route to %s, perhaps your object identifier is invalid?",
             pp);
    respond_errors(r, 400,
                   json_pack("[o,o]", error_item(E_BAD_IDENTIFIER, msg, NULL),
                             error_item(E_NO_ROUTE, "No route for that URI", NULL)));
}

static void no_route(api_response *r)
{
    api__error(r, 400, E_NO_ROUTE, "No route for that URI", NULL);
}

static void method_not_allowed(api_response *r, const char *allow)
{
    api__error(r, 405, E_METHOD, "Method not allowed for this route", NULL);
    r->allow = allow;
}

void api__method_not_allowed(api_response *r, const char *allow)
{
    method_not_allowed(r, allow);
}

int api__parse_body(const api_request *req, json_t **obj, api_response *r)
{
    *obj = NULL;
    if (req->body_too_large) {
        api__error(r, 413, E_TOO_LARGE, "Request body too large (limit 65536 bytes)", NULL);
        return -1;
    }
    if (req->body_len == 0)
        return 0;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->body_len,
                             JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!doc) {
        api__error(r, 400, E_BAD_JSON, "Malformed JSON in request body", NULL);
        return -1;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        api__error(r, 400, E_BAD_JSON, "Malformed JSON in request body: expected a JSON object",
                   NULL);
        return -1;
    }
    *obj = doc;
    return 0;
}

/* --- authentication ------------------------------------------------------------------ */

/* Control-plane authentication: fills *tok on success; otherwise writes the error. */
static int authenticate(api_server *a, const api_request *req, int64_t now_ms, store_token *tok,
                        api_response *r, bool verify_style)
{
    const char *t;
    size_t len;
    if (!req->authorization) {
        if (req->x_auth_key || req->x_auth_email)
            error_with_chain(r, 400, E_BAD_HEADERS,
                             "Invalid request headers: only API tokens are accepted "
                             "(Authorization: Bearer <token>); X-Auth-Key/X-Auth-Email are not "
                             "supported",
                             6103, "Invalid format for X-Auth-Key header");
        else
            api__error(r, 400, E_MISSING_AUTH,
                       "Missing X-Auth-Key, X-Auth-Email or Authorization headers", NULL);
        return -1;
    }
    if (api__bearer(req->authorization, &t, &len) != 0) {
        error_with_chain(r, 400, E_BAD_HEADERS, "Invalid request headers", E_BAD_AUTH_FORMAT,
                         "Invalid format for Authorization header");
        return -1;
    }
    int rc = store_token_by_secret(a->st, t, len, tok);
    if (rc == STORE_ERROR) {
        internal_error(r);
        return -1;
    }
    bool ok =
        rc == STORE_OK && tok->revoked == 0 && (tok->expires == 0 || tok->expires > now_ms / 1000);
    if (!ok) {
        store_token_clear(tok);
        if (verify_style) {
            api__error(r, 401, E_INVALID_TOKEN, "Invalid API Token", NULL);
            r->www_authenticate = "Bearer";
        } else {
            api__error(r, 403, E_AUTH, "Authentication error", NULL);
        }
        return -1;
    }
    return 0;
}

/* --- control plane: TURN keys -------------------------------------------------------- */

static json_t *key_json(const store_key *k, const char *bearer)
{
    char created[32], modified[32];
    util_rfc3339_ms(k->created, created);
    util_rfc3339_ms(k->modified, modified);
    json_t *o = json_object();
    json_object_set_new(o, "uid", json_string(k->uid));
    json_object_set_new(o, "name", json_string(k->name ? k->name : ""));
    json_object_set_new(o, "created", json_string(created));
    json_object_set_new(o, "modified", json_string(modified));
    if (bearer)
        json_object_set_new(o, "key", json_string(bearer));
    return o;
}

/* name: absent/null → *present = false; otherwise a validated string. */
static int parse_name(json_t *body, const char **name, bool *present, api_response *r)
{
    *present = false;
    *name = "";
    json_t *v = body ? json_object_get(body, "name") : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        api__error(r, 400, E_VALIDATION, "name must be a string", "/name");
        return -1;
    }
    size_t len = json_string_length(v);
    if (len > API_MAX_NAME) {
        api__error(r, 400, E_VALIDATION, "name must be at most 1024 bytes", "/name");
        return -1;
    }
    if (!util_utf8_valid_no_cc(json_string_value(v), len)) {
        api__error(r, 400, E_VALIDATION, "name must not contain control characters", "/name");
        return -1;
    }
    *name = json_string_value(v);
    *present = true;
    return 0;
}

static void key_not_found(api_response *r)
{
    api__error(r, 404, E_NOT_FOUND, "TURN key not found", NULL);
}

/* What the audit log keeps of a key: never the bearer key or the secret. */
static json_t *key_audit(const store_key *k)
{
    return json_pack("{s:s, s:s}", "uid", k->uid, "name", k->name ? k->name : "");
}

static void keys_create(api_server *a, const api_request *req, const store_token *tok,
                        const char *acct, json_t *body, int64_t now, api_response *r)
{
    const char *name;
    bool present;
    if (parse_name(body, &name, &present, r) != 0)
        return;
    store_key k;
    char bearer[65];
    int rc = store_key_create(a->st, acct, name, a->cfg.max_keys, now, &k, bearer);
    if (rc == STORE_LIMIT) {
        char msg[128];
        snprintf(msg, sizeof msg, "TURN key limit reached: at most %zu keys per account",
                 a->cfg.max_keys);
        api__error(r, 400, E_KEY_LIMIT, msg, NULL);
        return;
    }
    if (rc != STORE_OK) {
        internal_error(r);
        return;
    }
    keycache_add(a->keys, &k); /* it mints at once, before the feed brings it */
    json_t *nv = key_audit(&k);
    api__audit(a, req, "user", tok->id, acct, "create", "turn_key", k.uid, NULL, nv, now);
    json_decref(nv);
    api__ok(r, 201, key_json(&k, bearer), NULL);
    explicit_bzero(bearer, sizeof bearer);
    store_key_clear(&k);
}

static void keys_list(api_server *a, const char *acct, api_response *r)
{
    store_key *keys;
    size_t n;
    if (store_key_list(a->st, acct, &keys, &n) != STORE_OK) {
        internal_error(r);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, key_json(&keys[i], NULL));
    store_key_array_free(keys, n);
    api__ok(r, 200, arr, NULL);
}

static void key_item(api_server *a, const api_request *req, const store_token *tok,
                     const char *acct, const char *uid, json_t *body, int64_t now, api_response *r)
{
    const char *method = req->method;
    store_key k;
    json_t *old = NULL;
    int rc;
    if (strcmp(method, "GET") == 0) {
        rc = store_key_get(a->st, acct, uid, &k);
    } else if (strcmp(method, "PUT") == 0) {
        const char *name;
        bool present;
        if (parse_name(body, &name, &present, r) != 0)
            return;
        store_key before;
        if (present && store_key_get(a->st, acct, uid, &before) == STORE_OK) {
            old = key_audit(&before);
            store_key_clear(&before);
        }
        rc = present ? store_key_rename(a->st, acct, uid, name, now, &k)
                     : store_key_get(a->st, acct, uid, &k);
        if (rc == STORE_OK && present) {
            json_t *nv = key_audit(&k);
            api__audit(a, req, "user", tok->id, acct, "update", "turn_key", uid, old, nv, now);
            json_decref(nv);
        }
    } else {
        rc = store_key_delete(a->st, acct, uid, &k);
        if (rc == STORE_OK) {
            keycache_forget_at(a->keys, uid, now / 1000);
            if (a->hooks.key_deleted)
                a->hooks.key_deleted(a->hooks.ctx, uid);
            old = key_audit(&k);
            api__audit(a, req, "user", tok->id, acct, "delete", "turn_key", uid, old, NULL, now);
        }
    }
    json_decref(old);
    if (rc == STORE_NOT_FOUND) {
        key_not_found(r);
        return;
    }
    if (rc != STORE_OK) {
        internal_error(r);
        return;
    }
    api__ok(r, 200, key_json(&k, NULL), NULL);
    store_key_clear(&k);
}

static bool valid_account_id(const char *s);

int api__authenticate(api_server *a, const api_request *req, int64_t now_ms, store_token *tok,
                      api_response *r)
{
    return authenticate(a, req, now_ms, tok, r, false);
}

bool api__account_id_ok(const char *s)
{
    return valid_account_id(s);
}

void api__bad_identifier(api_response *r, const char *path)
{
    bad_identifier(r, path);
}

static bool valid_account_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* /client/v4/accounts/{account_id}/calls/turn_keys[/{key_id}] ; p->seg[0..1] = client,v4 */
static void route_turn_keys(api_server *a, const api_request *req, const api__path *p, int64_t now,
                            api_response *r)
{
    bool item = p->n == 7;
    const char *m = req->method;
    bool allowed = item ? (!strcmp(m, "GET") || !strcmp(m, "PUT") || !strcmp(m, "DELETE"))
                        : (!strcmp(m, "GET") || !strcmp(m, "POST"));
    if (!allowed) {
        method_not_allowed(r, item ? "GET, PUT, DELETE" : "GET, POST");
        return;
    }
    store_token tok;
    if (authenticate(a, req, now, &tok, r, false) != 0)
        return;
    char acct[64], uid[64];
    bool ids_ok =
        api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) == 0 && valid_account_id(acct);
    if (ids_ok && item)
        ids_ok = api__decode_segment(p->seg[6], p->len[6], uid, sizeof uid) == 0 &&
                 util_is_lower_hex(uid, 32);
    bool writes = strcmp(m, "GET") != 0;
    unsigned need = writes ? STORE_PERM_WRITE : (STORE_PERM_READ | STORE_PERM_WRITE);
    json_t *body = NULL;
    if (!ids_ok) {
        bad_identifier(r, req->path);
    } else if (strcmp(tok.account_id, acct) != 0 || !(tok.perms & need)) {
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    } else if ((!strcmp(m, "POST") || !strcmp(m, "PUT")) && api__parse_body(req, &body, r) != 0) {
        /* error written */
    } else if (!item) {
        if (!strcmp(m, "POST"))
            keys_create(a, req, &tok, acct, body, now, r);
        else
            keys_list(a, acct, r);
    } else {
        key_item(a, req, &tok, acct, uid, body, now, r);
    }
    json_decref(body);
    store_token_clear(&tok);
}

static void route_verify(api_server *a, const api_request *req, const api__path *p, int64_t now,
                         api_response *r)
{
    (void)p;
    if (strcmp(req->method, "GET") != 0) {
        method_not_allowed(r, "GET");
        return;
    }
    store_token tok;
    if (authenticate(a, req, now, &tok, r, true) != 0)
        return;
    json_t *res = json_pack("{s:s, s:s}", "id", tok.id, "status", "active");
    if (tok.expires) {
        char exp[32];
        util_rfc3339(tok.expires, exp);
        json_object_set_new(res, "expires_on", json_string(exp));
    }
    api__ok(r, 200, res,
            json_pack("[{s:i, s:s, s:n}]", "code", 10000, "message",
                      "This API Token is valid and active", "type"));
    store_token_clear(&tok);
}

/* --- the route table ------------------------------------------------------------------
 * Segments are literals or "*" (one segment of any value); a prefix route matches any path
 * that starts with its segments (its handler answers the rest). First match wins. The
 * template names the route in metrics (never the values: they are unbounded). */
typedef void (*route_fn)(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                         api_response *r);

typedef struct route {
    const char *segs[9];
    size_t n;
    bool prefix;
    route_fn fn;
} route;

static void route_no_route(api_server *a, const api_request *req, const api__path *p,
                           int64_t now_ms, api_response *r)
{
    (void)a, (void)req, (void)p, (void)now_ms;
    no_route(r);
}

/* Indexed like api__route_names (the last name, "other", has no entry). */
static const route routes[API__N_ROUTES - 1] = {
    {{"client", "v4", "accounts", "*", "calls", "turn_keys"}, 6, false, route_turn_keys},
    {{"client", "v4", "accounts", "*", "calls", "turn_keys", "*"}, 7, false, route_turn_keys},
    {{"client", "v4", "user", "tokens", "verify"}, 5, false, route_verify},
    {{"client", "v4", "accounts", "*", "audit_logs"}, 5, false, api__route_audit},
    {{"client", "v4", "accounts", "*", "calls", "turn_keys", "*", "usage"},
     8,
     false,
     api__route_usage},
    {{"client", "v4", "accounts", "*", "calls", "usage"}, 6, false, api__route_usage},
    {{"client", "v4", "graphql"}, 3, false, api__route_graphql},
    {{"client", "v4", "accounts", "*", "calls", "turn_keys", "*", "shared_secrets"},
     8,
     false,
     api__route_secrets},
    {{"client", "v4", "accounts", "*", "calls", "turn_keys", "*", "shared_secrets", "*"},
     9,
     false,
     api__route_secrets},
    {{"client", "v4", "accounts", "*", "calls", "webhook"}, 6, false, api__route_webhook},
    {{"client", "v4", "accounts", "*", "calls", "turn_keys", "*", "policy"},
     8,
     false,
     api__route_policy},
    {{"client", "v4"}, 2, true, route_no_route},
    {{"v1", "turn", "keys"}, 3, true, api__cred_route},
    {{"healthz"}, 1, false, api__route_health},
    {{"readyz"}, 1, false, api__route_health},
    {{"metrics"}, 1, false, api__route_metrics},
};

const char *const api__route_names[API__N_ROUTES] = {
    "/client/v4/accounts/{account_id}/calls/turn_keys",
    "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}",
    "/client/v4/user/tokens/verify",
    "/client/v4/accounts/{account_id}/audit_logs",
    "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/usage",
    "/client/v4/accounts/{account_id}/calls/usage",
    "/client/v4/graphql",
    "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/shared_secrets",
    "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/shared_secrets/{id}",
    "/client/v4/accounts/{account_id}/calls/webhook",
    "/client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/policy",
    "/client/v4/other",
    "/v1/turn/keys/{key_id}/credentials",
    "/healthz",
    "/readyz",
    "/metrics",
    "other",
};

static bool route_match(const route *rt, const api__path *p)
{
    if (p->n < rt->n || (!rt->prefix && p->n != rt->n))
        return false;
    for (size_t i = 0; i < rt->n; i++)
        if (strcmp(rt->segs[i], "*") != 0 && !seg_is(p, i, rt->segs[i]))
            return false;
    return true;
}

void api_handle(api_server *a, const api_request *req, int64_t now_ms, api_response *out)
{
    memset(out, 0, sizeof *out);
    out->route = api__route_names[API__N_ROUTES - 1];
    api__path p;
    split_path(req->path, &p);
    bool health = p.n == 1 && (seg_is(&p, 0, "healthz") || seg_is(&p, 0, "readyz"));
    if (p.too_many || (a->cfg.health_only && !health)) { /* a relay-role node: health only */
        no_route(out);
        return;
    }
    for (size_t i = 0; i < API__N_ROUTES - 1; i++)
        if (route_match(&routes[i], &p)) {
            out->route = api__route_names[i];
            routes[i].fn(a, req, &p, now_ms, out);
            return;
        }
    no_route(out);
}
