/* api_secret: shared secrets of a TURN key (issue 15), v4 envelope:
 *   POST   /client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/shared_secrets
 *   GET    /client/v4/accounts/{account_id}/calls/turn_keys/{key_id}/shared_secrets
 *   GET    …/shared_secrets/{id}
 *   DELETE …/shared_secrets/{id}
 * The secret is in the POST answer only; GET never shows it, nor does the audit log.
 * Writes need calls:write, reads calls:read or calls:write. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

enum { E_AUTH = 10000, E_VALIDATION = 10001, E_LIMIT = 10002, E_NOT_FOUND = 10004 };
enum { E_INTERNAL = 10500 };

static json_t *secret_json(const store_shared_secret *s, bool with_secret)
{
    char created[32], suffix[STORE_ID_LEN + 2];
    util_rfc3339_ms(s->created, created);
    snprintf(suffix, sizeof suffix, "~%s", s->key_uid);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "id", s->id, "key_id", s->key_uid,
                          "algorithm", store_secret_alg_name(s->alg), "max_ttl",
                          (json_int_t)s->max_ttl, "created", created, "username_suffix", suffix);
    if (with_secret)
        json_object_set_new(o, "secret", json_string(s->secret));
    return o;
}

/* What the audit log keeps: never the secret. */
static json_t *secret_audit(const store_shared_secret *s)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "id", s->id, "key_id", s->key_uid, "algorithm",
                     store_secret_alg_name(s->alg), "max_ttl", (json_int_t)s->max_ttl);
}

static void internal_error(api_response *r)
{
    api__error(r, 500, E_INTERNAL, "Internal server error", NULL);
}

/* The body's algorithm and max_ttl (both optional). 0, or -1 with the error written. */
static int parse_body(json_t *body, int *alg, int64_t *max_ttl, api_response *r)
{
    *alg = STORE_SECRET_SHA1;
    *max_ttl = 0;
    json_t *v = body ? json_object_get(body, "algorithm") : NULL;
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || !(*alg = store_secret_alg_parse(json_string_value(v))))) {
        api__error(r, 400, E_VALIDATION, "algorithm must be \"sha1\" or \"sha256\"", "/algorithm");
        return -1;
    }
    v = body ? json_object_get(body, "max_ttl") : NULL;
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < STORE_SHARED_TTL_MIN ||
            json_integer_value(v) > STORE_SHARED_TTL_MAX) {
            char msg[96];
            snprintf(msg, sizeof msg, "max_ttl must be an integer from %d to %d seconds",
                     STORE_SHARED_TTL_MIN, STORE_SHARED_TTL_MAX);
            api__error(r, 400, E_VALIDATION, msg, "/max_ttl");
            return -1;
        }
        *max_ttl = json_integer_value(v);
    }
    return 0;
}

static void create(api_server *a, const api_request *req, const store_token *tok, const char *acct,
                   const char *uid, json_t *body, int64_t now, api_response *r)
{
    int alg;
    int64_t max_ttl;
    if (parse_body(body, &alg, &max_ttl, r) != 0)
        return;
    store_shared_secret s;
    int rc = store_secret_add(a->st, acct, uid, alg, max_ttl, now, &s);
    if (rc == STORE_NOT_FOUND) {
        api__error(r, 404, E_NOT_FOUND, "TURN key not found", NULL);
    } else if (rc == STORE_LIMIT) {
        char msg[96];
        snprintf(msg, sizeof msg, "shared secret limit reached: at most %d per TURN key",
                 STORE_SHARED_SECRET_MAX);
        api__error(r, 400, E_LIMIT, msg, NULL);
    } else if (rc != STORE_OK) {
        internal_error(r);
    } else {
        keycache_refresh(a->keys, uid); /* this node's relay at once: the key (a new one is */
        keycache_secrets_refresh(a->keys, uid); /* cached by the feed only) and its secrets */
        json_t *nv = secret_audit(&s);
        api__audit(a, req, "user", tok->id, acct, "create", "turn_key_shared_secret", s.id, NULL,
                   nv, now);
        json_decref(nv);
        api__ok(r, 201, secret_json(&s, true), NULL);
    }
    OPENSSL_cleanse(&s, sizeof s);
}

/* GET of the list (id NULL) or of one. */
static void read_secrets(api_server *a, const char *acct, const char *uid, const char *id,
                         api_response *r)
{
    store_key k;
    int rc = store_key_get(a->st, acct, uid, &k);
    if (rc == STORE_NOT_FOUND) {
        api__error(r, 404, E_NOT_FOUND, "TURN key not found", NULL);
        return;
    }
    store_key_clear(&k);
    store_shared_secret *list = NULL;
    size_t n = 0;
    if (rc != STORE_OK || store_secret_list(a->st, uid, &list, &n) != STORE_OK) {
        internal_error(r);
        return;
    }
    json_t *res = id ? NULL : json_array();
    for (size_t i = 0; i < n; i++)
        if (!id)
            json_array_append_new(res, secret_json(&list[i], false));
        else if (!strcmp(list[i].id, id))
            res = secret_json(&list[i], false);
    store_secret_array_free(list, n);
    if (res)
        api__ok(r, 200, res, NULL);
    else
        api__error(r, 404, E_NOT_FOUND, "shared secret not found", NULL);
}

static void delete_one(api_server *a, const api_request *req, const store_token *tok,
                       const char *acct, const char *uid, const char *id, int64_t now,
                       api_response *r)
{
    store_shared_secret s;
    int rc = store_secret_delete(a->st, acct, uid, id, &s);
    if (rc == STORE_NOT_FOUND) {
        api__error(r, 404, E_NOT_FOUND, "shared secret not found", NULL);
    } else if (rc != STORE_OK) {
        internal_error(r);
    } else {
        keycache_secrets_refresh(a->keys, uid);
        if (a->hooks.secret_deleted)
            a->hooks.secret_deleted(a->hooks.ctx, id);
        json_t *old = secret_audit(&s);
        api__audit(a, req, "user", tok->id, acct, "delete", "turn_key_shared_secret", id, old, NULL,
                   now);
        json_decref(old);
        api__ok(r, 200, secret_json(&s, false), NULL);
    }
    OPENSSL_cleanse(&s, sizeof s);
}

static bool methods_ok(bool item, const char *m, api_response *r)
{
    bool ok = item ? (!strcmp(m, "GET") || !strcmp(m, "DELETE"))
                   : (!strcmp(m, "GET") || !strcmp(m, "POST"));
    if (!ok)
        api__method_not_allowed(r, item ? "GET, DELETE" : "GET, POST");
    return ok;
}

/* p->seg: client v4 accounts {acct} calls turn_keys {key} shared_secrets [{id}] */
void api__route_secrets(api_server *a, const api_request *req, const api__path *p, int64_t now,
                        api_response *r)
{
    bool item = p->n == 9;
    const char *m = req->method;
    if (!methods_ok(item, m, r))
        return;
    store_token tok;
    if (api__authenticate(a, req, now, &tok, r) != 0)
        return;
    char acct[64], uid[64], id[64] = "";
    bool ids_ok = api__decode_segment(p->seg[3], p->len[3], acct, sizeof acct) == 0 &&
                  api__account_id_ok(acct) &&
                  api__decode_segment(p->seg[6], p->len[6], uid, sizeof uid) == 0 &&
                  strlen(uid) == STORE_ID_LEN && util_is_lower_hex(uid, STORE_ID_LEN);
    if (ids_ok && item)
        ids_ok = api__decode_segment(p->seg[8], p->len[8], id, sizeof id) == 0 &&
                 strlen(id) == STORE_ID_LEN && util_is_lower_hex(id, STORE_ID_LEN);
    bool writes = strcmp(m, "GET") != 0;
    unsigned need = writes ? STORE_PERM_WRITE : (STORE_PERM_READ | STORE_PERM_WRITE);
    json_t *body = NULL;
    if (!ids_ok)
        api__bad_identifier(r, req->path);
    else if (strcmp(tok.account_id, acct) != 0 || !(tok.perms & need))
        api__error(r, 403, E_AUTH, "Authentication error", NULL);
    else if (!strcmp(m, "POST") && api__parse_body(req, &body, r) != 0)
        ; /* error written */
    else if (!strcmp(m, "POST"))
        create(a, req, &tok, acct, uid, body, now, r);
    else if (!strcmp(m, "DELETE"))
        delete_one(a, req, &tok, acct, uid, id, now, r);
    else
        read_secrets(a, acct, uid, item ? id : NULL, r);
    json_decref(body);
    store_token_clear(&tok);
}
