/* api_cred: the credential plane (rtc.live-compatible).
 *   POST /v1/turn/keys/{key_id}/credentials/generate-ice-servers   201 {"iceServers":[…]}
 *   POST /v1/turn/keys/{key_id}/credentials/generate               201 {"iceServers":{…}}
 *   POST /v1/turn/keys/{key_id}/credentials/{username}/revoke      204
 * Authenticated by "Authorization: Bearer <the key's 64-hex key>". Minting writes nothing. */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "turnkey/cred.h"
#include "turnkey/util.h"

enum {
    E_AUTH = 10000,
    E_VALIDATION = 10001,
    E_NOT_FOUND = 10004,
    E_METHOD = 10005,
    E_REVOKE_LIMIT = 10006,
    E_BUDGET = 10403,    /* the key's policy: a budget tripped (stop_minting or end_allocations) */
    E_MINT_RATE = 10404, /* the key's policy: mint rate limit */
};

static void unauthorized(api_response *r)
{
    api__error(r, 401, E_AUTH, "Authentication error: invalid or missing TURN key bearer token",
               NULL);
    r->www_authenticate = "Bearer";
}

/* Loads the key named by the path (from the key cache) and checks the bearer against its
 * hash. Every failure (malformed id, unknown or deleted key, wrong or missing bearer) gives
 * the same 401, and the work is the same whether or not the key exists: once the cache is
 * complete (the change feed follows the store) an unknown id is answered from memory like a
 * wrong bearer, never by a store query. */
static int authenticate_key(api_server *a, const api_request *req, const api__path *p,
                            char uid[STORE_ID_LEN + 1], uint8_t secret[STORE_SECRET_LEN],
                            api_response *r)
{
    char seg[64], presented[65], key_hash[65];
    static const char dummy_hash[65] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    const char *tok = NULL;
    size_t len = 0;
    bool have_bearer = req->authorization && api__bearer(req->authorization, &tok, &len) == 0;
    util_sha256_hex(have_bearer ? tok : "", have_bearer ? len : 0, presented);
    int rc = -1;
    if (api__decode_segment(p->seg[3], p->len[3], seg, sizeof seg) == 0 &&
        util_is_lower_hex(seg, STORE_ID_LEN))
        rc = keycache_peek(a->keys, seg, secret, key_hash); /* memory only, found or not */
    if (rc == -2) {
        api__error(r, 500, 10500, "Internal server error", NULL);
        return -1;
    }
    bool match = util_ct_equal(presented, rc == 0 ? key_hash : dummy_hash, 64);
    if (rc != 0 || !have_bearer || !match) {
        OPENSSL_cleanse(secret, STORE_SECRET_LEN);
        unauthorized(r);
        return -1;
    }
    memcpy(uid, seg, STORE_ID_LEN + 1);
    return 0;
}

/* Body {"ttl"?: int 1..172800, "customIdentifier"?: string}; cid "" when absent; *ttl_given
 * false when ttl is absent (the default applies). */
static int parse_mint_body(const api_request *req, int64_t *ttl, bool *ttl_given,
                           char cid[CRED_CID_MAX + 1], api_response *r)
{
    json_t *body = NULL;
    *ttl = API_TTL_DEFAULT;
    *ttl_given = false;
    cid[0] = '\0';
    if (api__parse_body(req, &body, r) != 0)
        return -1;
    if (!body)
        return 0;
    int rc = -1;
    json_t *v = json_object_get(body, "ttl");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > API_TTL_MAX) {
            api__error(r, 400, E_VALIDATION,
                       "ttl must be an integer number of seconds from 1 to 172800", "/ttl");
            goto out;
        }
        *ttl = json_integer_value(v);
        *ttl_given = true;
    }
    v = json_object_get(body, "customIdentifier");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !cred_cid_valid(json_string_value(v), json_string_length(v))) {
            api__error(r, 400, E_VALIDATION,
                       "customIdentifier must be a string of 1 to 64 characters from "
                       "[A-Za-z0-9._:-]",
                       "/customIdentifier");
            goto out;
        }
        snprintf(cid, CRED_CID_MAX + 1, "%s", json_string_value(v));
    }
    rc = 0;
out:
    json_decref(body);
    return rc;
}

static json_t *url_array(const char *const *urls, size_t n, json_t *arr)
{
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(urls[i]));
    return arr;
}

/* The source address the mint rate limit counts by: an IPv4 address (also when mapped into
 * IPv6) as is, an IPv6 address by its /64 (one subscriber's usual allocation, so a host
 * cannot escape the limit by rotating through its own addresses). */
static void mint_source(const char *addr, char *out, size_t cap)
{
    struct in6_addr a6;
    snprintf(out, cap, "%s", addr ? addr : "");
    if (!addr || inet_pton(AF_INET6, addr, &a6) != 1)
        return;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a6.s6_addr, mapped, 12) == 0) {
        inet_ntop(AF_INET, a6.s6_addr + 12, out, (socklen_t)cap);
        return;
    }
    memset(a6.s6_addr + 8, 0, 8);
    char net[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a6, net, sizeof net);
    snprintf(out, cap, "%s/64", net);
}

/* The key's policy (issue 14 §4), from the key cache: max_ttl (an explicit larger ttl is
 * 400; the default is lowered to it), a tripped budget (403 10403), the mint rate limits
 * (403 10404: not 429, which the SDKs retry). 0 mint, or -1 with the error written. */
static int policy_check(api_server *a, const api_request *req, const char *uid, const char *cid,
                        int64_t *ttl, bool ttl_given, int64_t now_ms, api_response *r)
{
    keycache_policy v;
    keycache_policy_view(a->keys, uid, cid, now_ms / 1000, &v);
    char msg[160];
    if (v.p.max_ttl && *ttl > v.p.max_ttl && ttl_given) {
        snprintf(msg, sizeof msg, "ttl exceeds the key's policy max_ttl (%lld)",
                 (long long)v.p.max_ttl);
        api__error(r, 400, E_VALIDATION, msg, "/ttl");
        return -1;
    }
    if (v.p.max_ttl && *ttl > v.p.max_ttl)
        *ttl = v.p.max_ttl;
    if (v.tripped == POLICY_STOP_MINTING || v.tripped == POLICY_END_ALLOCATIONS) {
        char until[32];
        util_rfc3339(v.tripped_until, until);
        snprintf(msg, sizeof msg, "TURN key budget exceeded (until %s)", until);
        api__error(r, 403, E_BUDGET, msg, NULL);
        return -1;
    }
    char src[INET6_ADDRSTRLEN + 8];
    mint_source(req->remote_addr, src, sizeof src);
    int lim = policy_limiter_take(a->limiter, uid, src, &v.p, now_ms);
    if (lim != 0) {
        api__error(r, 403, E_MINT_RATE,
                   lim == 1 ? "mint rate limit exceeded (per key)"
                            : "mint rate limit exceeded (per source)",
                   NULL);
        return -1;
    }
    return 0;
}

static void mint(api_server *a, const api_request *req, const char *uid, const uint8_t *secret,
                 bool legacy, int64_t now_ms, api_response *r)
{
    int64_t ttl;
    bool ttl_given;
    char cid[CRED_CID_MAX + 1];
    char user[CRED_USERNAME_MAX], pass[CRED_PASSWORD_MAX];
    if (parse_mint_body(req, &ttl, &ttl_given, cid, r) != 0 ||
        policy_check(a, req, uid, cid, &ttl, ttl_given, now_ms, r) != 0)
        return;
    if (cred_mint(uid, secret, now_ms / 1000 + ttl, cid, user, pass) != CRED_OK) {
        api__error(r, 500, 10500, "Internal server error", NULL);
        return;
    }
    json_t *doc;
    if (legacy) {
        json_t *urls = url_array(a->cfg.turn_urls, a->cfg.n_turn,
                                 url_array(a->cfg.stun_urls, a->cfg.n_stun, json_array()));
        doc = json_pack("{s:{s:o, s:s, s:s}}", "iceServers", "urls", urls, "username", user,
                        "credential", pass);
    } else {
        /* an entry with no URL is refused by RTCPeerConnection: list only what exists */
        json_t *servers = json_array();
        if (a->cfg.n_stun)
            json_array_append_new(
                servers, json_pack("{s:o}", "urls",
                                   url_array(a->cfg.stun_urls, a->cfg.n_stun, json_array())));
        if (a->cfg.n_turn)
            json_array_append_new(
                servers, json_pack("{s:o, s:s, s:s}", "urls",
                                   url_array(a->cfg.turn_urls, a->cfg.n_turn, json_array()),
                                   "username", user, "credential", pass));
        doc = json_pack("{s:o}", "iceServers", servers);
    }
    OPENSSL_cleanse(pass, sizeof pass);
    atomic_fetch_add_explicit(&a->ctr.minted[legacy ? 1 : 0], 1, memory_order_relaxed);
    r->status = 201;
    r->body = json_dumps(doc, JSON_COMPACT);
    r->content_type = "application/json";
    json_decref(doc);
}

/* The key's account owns the record; the actor is the key (its bearer authenticated). */
static void audit_revoke(api_server *a, const api_request *req, const char *uid, const char *user,
                         int64_t expires, int64_t now_ms)
{
    store_key k;
    if (store_key_by_uid(a->st, uid, &k) != STORE_OK)
        return;
    char exp[32];
    util_rfc3339(expires, exp);
    json_t *nv = json_pack("{s:s, s:s, s:s}", "key_uid", uid, "username", user, "expires", exp);
    api__audit(a, req, "turn_key", uid, k.account_id, "revoke", "turn_credential", user, NULL, nv,
               now_ms);
    json_decref(nv);
    store_key_clear(&k);
}

/* 409, not 429 or 5xx: clients retry those, and this answer stays until credentials expire. */
static void revoke_limit(api_server *a, api_response *r)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "Revocation limit reached: this key already has %zu revoked credentials that have "
             "not expired; a revocation is dropped when its credential expires",
             a->cfg.max_revocations);
    api__error(r, 409, E_REVOKE_LIMIT, msg, NULL);
}

static void revoke(api_server *a, const api_request *req, const api__path *p, const char *uid,
                   const uint8_t *secret, int64_t now_ms, api_response *r)
{
    char user[CRED_USERNAME_MAX];
    cred_info info;
    if (api__decode_segment(p->seg[5], p->len[5], user, sizeof user) != 0 ||
        cred_parse(user, strlen(user), &info) != CRED_OK) {
        api__error(r, 400, E_VALIDATION, "username is not a TURN credential username", NULL);
        return;
    }
    if (strcmp(info.key_id, uid) != 0 ||
        cred_check(user, strlen(user), secret, NULL, NULL) != CRED_OK) {
        api__error(r, 404, E_NOT_FOUND, "No credential with this username was minted by this key",
                   NULL);
        return;
    }
    if (info.expires > now_ms / 1000) {
        int rc = store_revoke_add_capped(a->st, uid, user, info.expires, a->cfg.max_revocations,
                                         now_ms / 1000);
        if (rc == STORE_LIMIT) {
            revoke_limit(a, r);
            return;
        }
        if (rc != STORE_OK) {
            api__error(r, 500, 10500, "Internal server error", NULL);
            return;
        }
        keycache_revoke(a->keys, user, strlen(user), info.expires);
        atomic_fetch_add_explicit(&a->ctr.revoked, 1, memory_order_relaxed);
        audit_revoke(a, req, uid, user, info.expires, now_ms);
        if (a->hooks.credential_revoked)
            a->hooks.credential_revoked(a->hooks.ctx, uid, user, info.expires);
    }
    r->status = 204; /* already expired: nothing left to revoke, same answer */
}

void api__cred_route(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                     api_response *r)
{
    /* v1 turn keys {key_id} credentials generate-ice-servers|generate
       v1 turn keys {key_id} credentials {username} revoke */
    bool is_mint = p->n == 6 && p->len[4] == 11 && memcmp(p->seg[4], "credentials", 11) == 0 &&
                   ((p->len[5] == 20 && memcmp(p->seg[5], "generate-ice-servers", 20) == 0) ||
                    (p->len[5] == 8 && memcmp(p->seg[5], "generate", 8) == 0));
    bool is_revoke = p->n == 7 && p->len[4] == 11 && memcmp(p->seg[4], "credentials", 11) == 0 &&
                     p->len[6] == 6 && memcmp(p->seg[6], "revoke", 6) == 0;
    if (!is_mint && !is_revoke) {
        api__error(r, 404, 7000, "No route for that URI", NULL);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        api__error(r, 405, E_METHOD, "Method not allowed for this route", NULL);
        r->allow = "POST";
        return;
    }
    char uid[STORE_ID_LEN + 1];
    uint8_t secret[STORE_SECRET_LEN];
    if (authenticate_key(a, req, p, uid, secret, r) != 0)
        return;
    if (is_mint)
        mint(a, req, uid, secret, p->len[5] == 8, now_ms, r);
    else
        revoke(a, req, p, uid, secret, now_ms, r);
    OPENSSL_cleanse(secret, sizeof secret);
}
