/* libFuzzer target for the HTTP API's request handling (src/api, sans-I/O): arbitrary
 * requests through api_handle against one in-memory store, with invariants enforced by
 * abort().
 *
 * Input: METHOD '\n' PATH '\n' AUTHORIZATION '\n' BODY (BODY = every remaining byte, may be
 * binary). Missing parts are empty; an empty AUTHORIZATION means "no header".
 *   METHOD ending in '!'   → the '!' is dropped and body_too_large is set (the HTTP layer
 *                            discarded a body over 64 KiB).
 *   AUTHORIZATION          "TOKEN"  → "Bearer <read/write API token>"
 *                          "RTOKEN" → "Bearer <read-only API token>"
 *                          "ETOKEN" → "Bearer <expired API token>"
 *                          "OTOKEN" → "Bearer <read/write token of another account>"
 *                          "ATOKEN" → "Bearer <analytics:read API token>"
 *                          "KEY"    → "Bearer <the TURN key's 64-hex bearer>"
 *                          "XKEY:…" → no Authorization; X-Auth-Key = "…"
 *                          "XMAIL:…"→ no Authorization; X-Auth-Email = "…"
 *                          otherwise the bytes as is, with "{T}" / "{K}" replaced by the
 *                          token / key bearer.
 *   PATH                   "{A}" → the account id, "{O}" → the other account's id,
 *                          "{K}" → the TURN key uid, "{U}" → a username minted for that key.
 *   BODY                   of POST /client/v4/graphql only: "{A}" → the account id.
 *
 * Invariants: status in a known set and never 5xx; body NULL exactly for 204; a body is
 * valid JSON (jansson), content type set; errors use the v4 envelope with codes >= 1000;
 * 405 sets Allow; 401 sets WWW-Authenticate; nothing but /healthz and /readyz succeeds
 * without a valid credential of the right account and permission (may_succeed); a 201 mint returns a credential that verifies under the key's
 * secret with the key's id; key objects carry only uid/name/created/modified (+ a fresh key
 * on create) — never the secret. Set FUZZ_API_VERBOSE=1 to print each request's answer. The store is capped (max_keys 50) and rebuilt when the fuzzer
 * deletes the TURN key. /client/v4/graphql answers GraphQL's shape instead: {"data", "errors"},
 * data null with at least one error message on failure, errors null on success (only with
 * the analytics token). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "turnkey/api.h"
#include "turnkey/cred.h"
#include "turnkey/log.h"
#include "turnkey/metrics.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_NOW_MS 1700000000000LL
#define FZ_NOW_S (FZ_NOW_MS / 1000)

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fz_state {
    store *st;
    api_server *api;
    char account[STORE_ID_LEN + 1];
    char other_account[STORE_ID_LEN + 1];
    char token[STORE_TOKEN_LEN + 1];
    char ro_token[STORE_TOKEN_LEN + 1];
    char expired_token[STORE_TOKEN_LEN + 1];
    char other_token[STORE_TOKEN_LEN + 1];
    char analytics_token[STORE_TOKEN_LEN + 1];
    char key_uid[STORE_ID_LEN + 1];
    char key[65];
    uint8_t secret[STORE_SECRET_LEN];
    char username[CRED_USERNAME_MAX];
} fz_state;

static fz_state S;

static const char *const stun_urls[] = {"stun:turn.example.test:3478"};
static const char *const turn_urls[] = {"turn:turn.example.test:3478?transport=udp",
                                        "turn:turn.example.test:3478?transport=tcp",
                                        "turns:turn.example.test:5349?transport=tcp"};

static void make_token(const char *account, unsigned perms, int64_t expires, char *out)
{
    store_token t;
    REQUIRE(store_token_create(S.st, account, "fuzz", perms, expires, FZ_NOW_S - 10, &t, out) ==
            STORE_OK);
    store_token_clear(&t);
}

static void setup(void)
{
    char *err = NULL;
    S.st = store_open(":memory:", &err);
    if (!S.st) {
        fprintf(stderr, "fuzz_api: store_open: %s\n", err ? err : "?");
        abort();
    }
    store_account a;
    REQUIRE(store_account_create(S.st, "fuzz", FZ_NOW_S - 10, &a) == STORE_OK);
    memcpy(S.account, a.id, sizeof S.account);
    store_account_clear(&a);
    REQUIRE(store_account_create(S.st, "other", FZ_NOW_S - 10, &a) == STORE_OK);
    memcpy(S.other_account, a.id, sizeof S.other_account);
    store_account_clear(&a);
    make_token(S.account, STORE_PERM_READ | STORE_PERM_WRITE, 0, S.token);
    make_token(S.account, STORE_PERM_READ, 0, S.ro_token);
    make_token(S.account, STORE_PERM_READ | STORE_PERM_WRITE, FZ_NOW_S - 1, S.expired_token);
    make_token(S.other_account, STORE_PERM_READ | STORE_PERM_WRITE, 0, S.other_token);
    make_token(S.account, STORE_PERM_ANALYTICS_READ, 0, S.analytics_token);
    store_key k;
    REQUIRE(store_key_create(S.st, S.account, "fuzz-key", 50, FZ_NOW_MS - 10000, &k, S.key) ==
            STORE_OK);
    memcpy(S.key_uid, k.uid, sizeof S.key_uid);
    memcpy(S.secret, k.secret, sizeof S.secret);
    store_key_clear(&k);
    char pw[CRED_PASSWORD_MAX];
    REQUIRE(cred_mint(S.key_uid, S.secret, FZ_NOW_S + 3600, "fuzz", S.username, pw) == CRED_OK);
    api_config cfg = {.max_keys = 50,
                      .stun_urls = stun_urls,
                      .n_stun = sizeof stun_urls / sizeof stun_urls[0],
                      .turn_urls = turn_urls,
                      .n_turn = sizeof turn_urls / sizeof turn_urls[0]};
    S.api = api_new(S.st, &cfg, NULL);
}

static void teardown(void)
{
    api_free(S.api);
    store_close(S.st);
    memset(&S, 0, sizeof S);
}

/* The secret an Authorization header presents, read independently of src/api: the scheme
 * "Bearer" (any case), blanks, one token, optional trailing blanks. NULL if none. */
static const char *presented(const char *auth, size_t *len)
{
    if (!auth || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
        return NULL;
    const char *t = auth + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strcspn(t, " \t");
    const char *rest = t + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (n == 0 || *rest)
        return NULL;
    *len = n;
    return t;
}

static bool is(const char *t, size_t n, const char *secret)
{
    return t && strlen(secret) == n && memcmp(t, secret, n) == 0;
}

/* True if path is "/client/v4/accounts/<acct>" or continues with '/' or '?'. */
static bool under_account(const char *path, const char *acct)
{
    static const char pre[] = "/client/v4/accounts/";
    size_t n = sizeof pre - 1, al = strlen(acct);
    return strncmp(path, pre, n) == 0 && strncmp(path + n, acct, al) == 0 &&
           (path[n + al] == '/' || path[n + al] == '?' || path[n + al] == '\0');
}

/* The only requests that may get a 2xx: the health checks; token verify with a valid
 * (unexpired) API token; the account's routes with its read/write token, or its read-only
 * token on GET; the account's usage (REST) and GraphQL with its analytics token; the other
 * account's routes with its own token; the credential plane with the TURN key's bearer. An expired token, another account's token or the wrong kind of secret
 * never succeeds. */
static bool may_succeed_norm(const char *method, const char *path, const char *auth)
{
    size_t n = 0;
    const char *t = presented(auth, &n);
    if (strstr(path, "healthz") || strstr(path, "readyz"))
        return true;
    if (strncmp(path, "/client/v4/user/tokens/verify", 29) == 0)
        return is(t, n, S.token) || is(t, n, S.ro_token) || is(t, n, S.other_token) ||
               is(t, n, S.analytics_token);
    if (strncmp(path, "/client/v4/graphql", 18) == 0)
        return is(t, n, S.analytics_token);
    if (under_account(path, S.account))
        return is(t, n, S.token) || (is(t, n, S.ro_token) && strcmp(method, "GET") == 0) ||
               (is(t, n, S.analytics_token) && strcmp(method, "GET") == 0 &&
                strstr(path, "/usage")); /* analytics:read reads usage only */
    if (under_account(path, S.other_account))
        return is(t, n, S.other_token);
    if (strncmp(path, "/v1/turn/keys/", 14) == 0)
        return is(t, n, S.key);
    return false;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The path as the router reads it (independently written): the leading '/' is optional and
 * %XX escapes stand for their byte. out holds at least strlen(path) + 2 bytes. */
static void normalise(const char *path, char *out)
{
    size_t o = 0;
    if (path[0] != '/')
        out[o++] = '/';
    for (size_t i = 0; path[i]; i++) {
        int hi = path[i] == '%' && path[i + 1] ? hexval(path[i + 1]) : -1;
        int lo = hi >= 0 && path[i + 2] ? hexval(path[i + 2]) : -1;
        if (lo >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = path[i];
        }
    }
    out[o] = '\0';
}

static bool may_succeed(const char *method, const char *raw_path, const char *auth)
{
    char *path = util_xmalloc(strlen(raw_path) + 2);
    normalise(raw_path, path);
    bool ok = may_succeed_norm(method, path, auth);
    free(path);
    return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR); /* no "applied schema migration" line per store rebuild */
    setup();
    return 0;
}

/* Growable string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = util_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* Copies s[0..len) (up to the first NUL) replacing the placeholders. */
static char *expand(const char *s, size_t len, const char *const *from, const char *const *to,
                    size_t n)
{
    sbuf b = {0};
    sb_add(&b, "", 0);
    size_t i = 0;
    while (i < len && s[i]) {
        bool hit = false;
        for (size_t j = 0; j < n; j++) {
            size_t fl = strlen(from[j]);
            if (len - i >= fl && memcmp(s + i, from[j], fl) == 0) {
                sb_add(&b, to[j], strlen(to[j]));
                i += fl;
                hit = true;
                break;
            }
        }
        if (!hit)
            sb_add(&b, s + i++, 1);
    }
    return b.p;
}

static bool part_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static bool status_known(int st)
{
    static const int ok[] = {200, 201, 204, 400, 401, 403, 404, 405, 413};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (st == ok[i])
            return true;
    return false;
}

/* A 201 from the credential plane: the credential must verify under the key's secret. */
static void check_minted(json_t *doc)
{
    json_t *ice = json_object_get(doc, "iceServers");
    REQUIRE(ice != NULL);
    json_t *entry = json_is_array(ice) ? json_array_get(ice, 1) : ice;
    REQUIRE(json_is_object(entry));
    const char *user = json_string_value(json_object_get(entry, "username"));
    const char *cred = json_string_value(json_object_get(entry, "credential"));
    REQUIRE(user && cred);
    cred_info info;
    char pw[CRED_PASSWORD_MAX];
    REQUIRE(cred_check(user, strlen(user), S.secret, &info, pw) == CRED_OK);
    REQUIRE(strcmp(info.key_id, S.key_uid) == 0);
    REQUIRE(strcmp(pw, cred) == 0);
    REQUIRE(info.expires > FZ_NOW_S && info.expires <= FZ_NOW_S + API_TTL_MAX);
}

/* A key object has exactly uid, name, created, modified (+ key, only from create): the
 * credential secret never leaves the server and the bearer is shown once. */
static void check_key_object(json_t *o, bool created)
{
    REQUIRE(json_is_object(o));
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool known = !strcmp(k, "uid") || !strcmp(k, "name") || !strcmp(k, "created") ||
                     !strcmp(k, "modified") || (created && !strcmp(k, "key"));
        if (!known) {
            fprintf(stderr, "unexpected key-object field '%s'\n", k);
            abort();
        }
        REQUIRE(json_is_string(v));
    }
    const char *uid = json_string_value(json_object_get(o, "uid"));
    REQUIRE(uid && strlen(uid) == STORE_ID_LEN && util_is_lower_hex(uid, STORE_ID_LEN));
    if (created) {
        const char *key = json_string_value(json_object_get(o, "key"));
        REQUIRE(key && strlen(key) == 64 && util_is_lower_hex(key, 64));
        REQUIRE(strcmp(key, S.key) != 0); /* a new key, never the fixture's bearer again */
    }
}

/* The raw path routes to `route` (segments compared undecoded, as the router does). */
static bool routes_to(const char *p, const char *route)
{
    p += *p == '/';
    size_t n = strlen(p);
    n -= n > 0 && p[n - 1] == '/';
    return n == strlen(route) && memcmp(p, route, n) == 0;
}

static bool is_graphql(const char *p)
{
    return routes_to(p, "client/v4/graphql");
}

static void check_graphql(const api_response *r, json_t *doc, bool real_credential)
{
    json_t *data = json_object_get(doc, "data"), *errs = json_object_get(doc, "errors");
    REQUIRE(data && errs && json_object_size(doc) == 2);
    if (r->status == 200) {
        REQUIRE(real_credential && json_is_object(data) && json_is_null(errs));
        return;
    }
    REQUIRE(r->status >= 400 && json_is_null(data));
    REQUIRE(json_is_array(errs) && json_array_size(errs) == 1);
    json_t *e = json_array_get(errs, 0);
    REQUIRE(json_is_string(json_object_get(e, "message")));
    REQUIRE(json_is_string(json_object_get(json_object_get(e, "extensions"), "timestamp")));
    if (r->status == 405)
        REQUIRE(r->allow != NULL);
    if (r->status == 401)
        REQUIRE(r->www_authenticate != NULL);
}

static void check_response(const api_response *r, const api_request *req, bool real_credential)
{
    const char *path = req->path;
    REQUIRE(status_known(r->status));
    REQUIRE(r->status < 500);
    if (r->status == 204) {
        REQUIRE(r->body == NULL);
        return;
    }
    REQUIRE(r->body != NULL);
    if (routes_to(path, "metrics") && r->status == 200) { /* public, Prometheus text */
        REQUIRE(r->content_type && strcmp(r->content_type, METRICS_CONTENT_TYPE) == 0);
        return;
    }
    REQUIRE(r->content_type != NULL && strcmp(r->content_type, "application/json") == 0);
    json_error_t jerr;
    json_t *doc = json_loads(r->body, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "invalid JSON body (%s): %s\n", jerr.text, r->body);
        abort();
    }
    REQUIRE(json_is_object(doc));
    if (is_graphql(path)) {
        check_graphql(r, doc, real_credential);
        json_decref(doc);
        return;
    }
    bool is_health = strstr(path, "healthz") || strstr(path, "readyz");
    bool is_cred_plane = json_object_get(doc, "iceServers") != NULL;
    if (r->status >= 400) {
        REQUIRE(json_is_false(json_object_get(doc, "success")));
        json_t *errs = json_object_get(doc, "errors");
        REQUIRE(json_is_array(errs) && json_array_size(errs) >= 1);
        for (size_t i = 0; i < json_array_size(errs); i++) {
            json_t *e = json_array_get(errs, i);
            REQUIRE(json_integer_value(json_object_get(e, "code")) >= 1000);
            REQUIRE(json_is_string(json_object_get(e, "message")));
        }
        REQUIRE(json_is_null(json_object_get(doc, "result")));
        REQUIRE(json_is_array(json_object_get(doc, "messages")));
        if (r->status == 405)
            REQUIRE(r->allow != NULL);
        if (r->status == 401)
            REQUIRE(r->www_authenticate != NULL);
    } else {
        /* success without a real credential only for the health checks */
        REQUIRE(real_credential || is_health);
        if (is_cred_plane) {
            REQUIRE(r->status == 201);
            check_minted(doc);
        } else if (!is_health) {
            REQUIRE(json_is_true(json_object_get(doc, "success")));
            REQUIRE(json_object_get(doc, "result") != NULL);
            json_t *res = json_object_get(doc, "result");
            if (json_is_array(res)) {
                size_t i;
                json_t *o;
                json_array_foreach(res, i, o) check_key_object(o, false);
            } else if (json_object_get(res, "uid")) {
                check_key_object(res, r->status == 201);
            }
        }
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *part[3] = {"", "", ""};
    size_t plen[3] = {0, 0, 0};
    size_t pos = 0;
    for (int i = 0; i < 3; i++) {
        const char *nl = pos < size ? memchr(in + pos, '\n', size - pos) : NULL;
        size_t end = nl ? (size_t)(nl - in) : size;
        part[i] = in + pos;
        plen[i] = end - pos;
        pos = nl ? end + 1 : size;
    }
    const uint8_t *body = data + pos;
    size_t body_len = size - pos;

    /* method */
    bool too_large = plen[0] > 0 && part[0][plen[0] - 1] == '!';
    char *method = util_xstrndup(part[0], too_large ? plen[0] - 1 : plen[0]);

    /* path */
    const char *pfrom[] = {"{A}", "{O}", "{K}", "{U}"};
    const char *pto[] = {S.account, S.other_account, S.key_uid, S.username};
    char *path = expand(part[1], plen[1], pfrom, pto, 4);

    /* authorization */
    char *auth = NULL, *xkey = NULL, *xmail = NULL;
    const char *a = part[2];
    size_t al = plen[2];
    char bearer[128];
    const char *lit = NULL;
    if (part_is(a, al, "TOKEN"))
        lit = S.token;
    else if (part_is(a, al, "RTOKEN"))
        lit = S.ro_token;
    else if (part_is(a, al, "ETOKEN"))
        lit = S.expired_token;
    else if (part_is(a, al, "OTOKEN"))
        lit = S.other_token;
    else if (part_is(a, al, "KEY"))
        lit = S.key;
    else if (part_is(a, al, "ATOKEN"))
        lit = S.analytics_token;
    if (lit) {
        snprintf(bearer, sizeof bearer, "Bearer %s", lit);
        auth = util_xstrdup(bearer);
    } else if (al >= 5 && memcmp(a, "XKEY:", 5) == 0) {
        xkey = util_xstrndup(a + 5, al - 5);
    } else if (al >= 6 && memcmp(a, "XMAIL:", 6) == 0) {
        xmail = util_xstrndup(a + 6, al - 6);
    } else if (al > 0) {
        const char *afrom[] = {"{T}", "{K}"};
        const char *ato[] = {S.token, S.key};
        auth = expand(a, al, afrom, ato, 2);
    }
    /* May this request succeed at all (a valid credential of the right kind)? */
    bool real = may_succeed(method, path, auth);

    char *gql_body = NULL; /* a GraphQL query names the account in its text */
    if (is_graphql(path)) {
        const char *bfrom[] = {"{A}"}, *bto[] = {S.account};
        gql_body = expand((const char *)body, body_len, bfrom, bto, 1);
        body = (const uint8_t *)gql_body;
        body_len = strlen(gql_body);
    }
    api_request req = {.method = method,
                       .path = path,
                       .authorization = auth,
                       .x_auth_key = xkey,
                       .x_auth_email = xmail,
                       .body = body,
                       .body_len = body_len,
                       .body_too_large = too_large};
    api_response resp;
    api_handle(S.api, &req, FZ_NOW_MS, &resp);
    if (getenv("FUZZ_API_VERBOSE")) /* replaying seeds: show what each one got */
        fprintf(stderr, "%s %s -> %d %s\n", method, path, resp.status, resp.body ? resp.body : "");
    check_response(&resp, &req, real);
    api_response_clear(&resp);
    REQUIRE(resp.body == NULL && resp.status == 0);

    free(method);
    free(path);
    free(auth);
    free(xkey);
    free(xmail);
    free(gql_body);

    /* Keep the fixture usable: rebuild the store if the fuzzer deleted the TURN key. */
    store_key k;
    int rc = store_key_by_uid(S.st, S.key_uid, &k);
    REQUIRE(rc == STORE_OK || rc == STORE_NOT_FOUND);
    if (rc == STORE_OK) {
        store_key_clear(&k);
    } else {
        teardown();
        setup();
    }
    return 0;
}
