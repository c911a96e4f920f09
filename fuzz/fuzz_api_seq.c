/* libFuzzer target: sequences of HTTP API requests through api_handle against the real store
 * (SQLite, ":memory:") and key cache, checked after every step against a model the harness
 * keeps of what the answers so far imply.
 *
 * Input: lines "OP N N ... [TEXT]" (numbers are taken modulo the table they index; a missing
 * number is 0). A = account (N_ACCOUNTS), T = API token (the tokens[] table: several per
 * account, read/write, read-only, expiring in an hour), K / B = a TURN key of any account,
 * live or deleted, in creation order (B: the key whose bearer is presented), C = a minted
 * credential, in mint order:
 *   create A T [NAME]     POST   /client/v4/accounts/A/calls/turn_keys {"name":NAME}
 *   list A T              GET    .../turn_keys
 *   get A T K             GET    .../turn_keys/K
 *   rename A T K NAME     PUT    .../turn_keys/K {"name":NAME}
 *   delete A T K          DELETE .../turn_keys/K
 *   mint K B TTL          POST   /v1/turn/keys/K/credentials/generate-ice-servers {"ttl":TTL}
 *   revoke K B C          POST   /v1/turn/keys/K/credentials/C/revoke
 *   verify T              GET    /client/v4/user/tokens/verify
 *   tokrevoke T           the token is revoked in the store (turnkey token revoke)
 *   clock S               S seconds pass (revocations past their expiry are purged)
 * NAME = the rest of the line, printable ASCII only (other bytes become '_'), at most 64.
 *
 * Each answer must be the one the model predicts (status; the created key's name and a fresh
 * uid and bearer; 404 for a key of another account or a deleted one; 403 for a wrong,
 * read-only, revoked or expired token; 401 for a wrong bearer; the limit at MAX_KEYS).
 * Invariants after every step: for every account, what GET .../turn_keys returns (through
 * an admin token) is exactly the model's keys and names and what the store holds, at most
 * MAX_KEYS; a deleted key never comes back (store, key cache, list, and its credentials no
 * longer verify); a revoked credential stays revoked until it expires (key cache, store, and
 * cred_verify through the relay's cached lookup); an unrevoked unexpired credential of a live
 * key verifies; the hooks saw exactly the deletes and revocations that were answered. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/api.h"
#include "turnkey/cred.h"
#include "turnkey/keycache.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_ACCOUNTS 3
#define MAX_KEYS 4
#define MAX_STEPS 64
#define MAX_KEYS_EVER 64
#define MAX_CREDS 64
#define NAME_MAX_LEN 64
#define T0_S 1700000000LL

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct tok_rec {
    int account;
    unsigned perms;
    int64_t expires; /* 0 never */
    bool revoked;
    char id[STORE_ID_LEN + 1];
    char secret[STORE_TOKEN_LEN + 1];
} tok_rec;

/* account, perms, expires in (s, 0 = never) */
static const struct {
    int account;
    unsigned perms;
    int64_t expires_in;
} tok_spec[] = {
    {0, STORE_PERM_READ | STORE_PERM_WRITE, 0},    {0, STORE_PERM_READ, 0},
    {1, STORE_PERM_READ | STORE_PERM_WRITE, 0},    {0, STORE_PERM_READ | STORE_PERM_WRITE, 3600},
    {2, STORE_PERM_READ | STORE_PERM_WRITE, 3600}, {1, STORE_PERM_WRITE, 0},
};
#define N_TOKENS (sizeof tok_spec / sizeof tok_spec[0])

typedef struct key_rec {
    int account;
    bool deleted;
    int64_t deleted_at; /* model seconds */
    char uid[STORE_ID_LEN + 1];
    char bearer[65];
    char name[NAME_MAX_LEN + 1];
} key_rec;

typedef struct cred_rec {
    int key;
    int64_t expires;
    bool revoked;
    char user[CRED_USERNAME_MAX];
} cred_rec;

typedef struct model {
    store *st;
    keycache *kc;
    api_server *api;
    int64_t now_s;
    char account[N_ACCOUNTS][STORE_ID_LEN + 1];
    char admin[N_ACCOUNTS][STORE_TOKEN_LEN + 1]; /* never revoked: for the list invariant */
    tok_rec tokens[N_TOKENS];
    key_rec keys[MAX_KEYS_EVER];
    size_t n_keys;
    cred_rec creds[MAX_CREDS];
    size_t n_creds;
    size_t hook_deleted, hook_revoked; /* hook calls seen */
    size_t want_deleted, want_revoked; /* answered deletes / revocations */
    char last_deleted[STORE_ID_LEN + 1];
} model;

static void hook_key_deleted(void *ctx, const char *uid)
{
    model *m = ctx;
    m->hook_deleted++;
    snprintf(m->last_deleted, sizeof m->last_deleted, "%s", uid);
}

static void hook_revoked(void *ctx, const char *key_uid, const char *username, int64_t expires)
{
    model *m = ctx;
    (void)key_uid;
    (void)username;
    (void)expires;
    m->hook_revoked++;
}

static const char *const turn_urls[] = {"turn:turn.example.test:3478?transport=udp"};

static void setup(model *m)
{
    char *err = NULL;
    memset(m, 0, sizeof *m);
    m->now_s = T0_S;
    m->st = store_open(":memory:", &err);
    REQUIRE(m->st != NULL);
    for (int a = 0; a < N_ACCOUNTS; a++) {
        store_account acc;
        store_token t;
        REQUIRE(store_account_create(m->st, "fuzz", T0_S, &acc) == STORE_OK);
        memcpy(m->account[a], acc.id, sizeof m->account[a]);
        store_account_clear(&acc);
        REQUIRE(store_token_create(m->st, m->account[a], "admin", STORE_PERM_READ, 0, T0_S, &t,
                                   m->admin[a]) == STORE_OK);
        store_token_clear(&t);
    }
    for (size_t i = 0; i < N_TOKENS; i++) {
        tok_rec *r = &m->tokens[i];
        store_token t;
        r->account = tok_spec[i].account;
        r->perms = tok_spec[i].perms;
        r->expires = tok_spec[i].expires_in ? T0_S + tok_spec[i].expires_in : 0;
        REQUIRE(store_token_create(m->st, m->account[r->account], "fuzz", r->perms, r->expires,
                                   T0_S, &t, r->secret) == STORE_OK);
        memcpy(r->id, t.id, sizeof r->id);
        store_token_clear(&t);
    }
    m->kc = keycache_new(m->st);
    REQUIRE(m->kc && keycache_preload(m->kc) == 0);
    api_config cfg = {.max_keys = MAX_KEYS, .turn_urls = turn_urls, .n_turn = 1, .keys = m->kc};
    api_hooks hooks = {
        .key_deleted = hook_key_deleted, .credential_revoked = hook_revoked, .ctx = m};
    m->api = api_new(m->st, &cfg, &hooks);
    REQUIRE(m->api != NULL);
}

static void teardown(model *m)
{
    api_free(m->api);
    keycache_free(m->kc);
    store_close(m->st);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

typedef struct answer {
    int status;
    json_t *doc; /* parsed body, NULL for 204 */
} answer;

static answer call(model *m, const char *method, const char *path, const char *bearer, json_t *body)
{
    char auth[128];
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    snprintf(auth, sizeof auth, "Bearer %s", bearer);
    api_request req = {.method = method,
                       .path = path,
                       .authorization = auth,
                       .body = (const uint8_t *)b,
                       .body_len = b ? strlen(b) : 0};
    api_response r;
    api_handle(m->api, &req, m->now_s * 1000, &r);
    if (getenv("FUZZ_API_VERBOSE"))
        fprintf(stderr, "%s %s -> %d %s\n", method, path, r.status, r.body ? r.body : "");
    answer a = {.status = r.status};
    REQUIRE(r.status < 500);
    if (r.status == 204) {
        REQUIRE(r.body == NULL);
    } else {
        json_error_t e;
        REQUIRE(r.body != NULL);
        a.doc = json_loads(r.body, 0, &e);
        REQUIRE(json_is_object(a.doc));
    }
    api_response_clear(&r);
    free(b);
    json_decref(body);
    return a;
}

static void keys_path(const model *m, int account, const key_rec *k, char *out, size_t cap)
{
    snprintf(out, cap, "/client/v4/accounts/%s/calls/turn_keys%s%s", m->account[account],
             k ? "/" : "", k ? k->uid : "");
}

static json_t *result(const answer *a)
{
    REQUIRE(json_is_true(json_object_get(a->doc, "success")));
    return json_object_get(a->doc, "result");
}

/* May token t act on account a (write = a method other than GET)? */
static bool token_ok(const model *m, const tok_rec *t, int a, bool write)
{
    if (t->revoked || (t->expires && t->expires <= m->now_s) || t->account != a)
        return false;
    return write ? (t->perms & STORE_PERM_WRITE) != 0 : (t->perms != 0);
}

static size_t live_keys(const model *m, int a)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_keys; i++)
        n += m->keys[i].account == a && !m->keys[i].deleted;
    return n;
}

static void clean_name(const char *s, char out[NAME_MAX_LEN + 1])
{
    size_t n = 0;
    for (; s && s[n] && n < NAME_MAX_LEN; n++)
        out[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '_';
    out[n] = '\0';
}

/* ---- control plane -------------------------------------------------------------------- */

static void op_create(model *m, int a, const tok_rec *t, const char *text)
{
    char path[160], name[NAME_MAX_LEN + 1];
    clean_name(text, name);
    keys_path(m, a, NULL, path, sizeof path);
    answer r = call(m, "POST", path, t->secret, json_pack("{s:s}", "name", name));
    if (!token_ok(m, t, a, true)) {
        REQUIRE(r.status == 403);
    } else if (live_keys(m, a) >= MAX_KEYS) {
        REQUIRE(r.status == 400);
    } else {
        REQUIRE(r.status == 201);
        json_t *res = result(&r);
        const char *uid = json_string_value(json_object_get(res, "uid"));
        const char *bearer = json_string_value(json_object_get(res, "key"));
        const char *got = json_string_value(json_object_get(res, "name"));
        REQUIRE(uid && strlen(uid) == STORE_ID_LEN && bearer && strlen(bearer) == 64);
        REQUIRE(got && strcmp(got, name) == 0);
        for (size_t i = 0; i < m->n_keys; i++) /* never a uid or bearer seen before */
            REQUIRE(strcmp(m->keys[i].uid, uid) != 0 && strcmp(m->keys[i].bearer, bearer) != 0);
        if (m->n_keys < MAX_KEYS_EVER) {
            key_rec *k = &m->keys[m->n_keys++];
            k->account = a;
            k->deleted = false;
            snprintf(k->uid, sizeof k->uid, "%s", uid);
            snprintf(k->bearer, sizeof k->bearer, "%s", bearer);
            snprintf(k->name, sizeof k->name, "%s", name);
        } else { /* the model is full: forget it again so the model stays exact */
            char p2[160];
            key_rec tmp = {.account = a};
            snprintf(tmp.uid, sizeof tmp.uid, "%s", uid);
            keys_path(m, a, &tmp, p2, sizeof p2);
            json_decref(call(m, "DELETE", p2, m->tokens[0].secret, NULL).doc);
            m->want_deleted++;
        }
    }
    json_decref(r.doc);
}

/* A GET / PUT / DELETE of key k under account a. */
static void op_item(model *m, const char *method, int a, const tok_rec *t, key_rec *k,
                    const char *text)
{
    char path[160], name[NAME_MAX_LEN + 1];
    bool write = strcmp(method, "GET") != 0;
    bool put = strcmp(method, "PUT") == 0;
    clean_name(text, name);
    keys_path(m, a, k, path, sizeof path);
    answer r = call(m, method, path, t->secret, put ? json_pack("{s:s}", "name", name) : NULL);
    if (!token_ok(m, t, a, write)) {
        REQUIRE(r.status == 403);
    } else if (k->deleted || k->account != a) {
        REQUIRE(r.status == 404);
    } else {
        REQUIRE(r.status == 200);
        json_t *res = result(&r);
        const char *got = json_string_value(json_object_get(res, "name"));
        REQUIRE(strcmp(json_string_value(json_object_get(res, "uid")), k->uid) == 0);
        if (put)
            snprintf(k->name, sizeof k->name, "%s", name);
        REQUIRE(got && strcmp(got, k->name) == 0);
        REQUIRE(json_object_get(res, "key") == NULL); /* the bearer is shown once only */
        if (strcmp(method, "DELETE") == 0) {
            k->deleted = true;
            k->deleted_at = m->now_s;
            m->want_deleted++;
            REQUIRE(m->hook_deleted == m->want_deleted && !strcmp(m->last_deleted, k->uid));
        }
    }
    json_decref(r.doc);
}

static void op_verify(model *m, const tok_rec *t)
{
    answer r = call(m, "GET", "/client/v4/user/tokens/verify", t->secret, NULL);
    bool ok = !t->revoked && (!t->expires || t->expires > m->now_s);
    REQUIRE(r.status == (ok ? 200 : 401));
    if (ok)
        REQUIRE(strcmp(json_string_value(json_object_get(result(&r), "id")), t->id) == 0);
    json_decref(r.doc);
}

/* ---- credential plane ----------------------------------------------------------------- */

static void op_mint(model *m, const key_rec *k, const key_rec *b, long ttl)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/turn/keys/%s/credentials/generate-ice-servers", k->uid);
    answer r = call(m, "POST", path, b->bearer, json_pack("{s:I}", "ttl", (json_int_t)ttl));
    if (k->deleted || k != b) {
        REQUIRE(r.status == 401);
    } else if (ttl < 1 || ttl > API_TTL_MAX) {
        REQUIRE(r.status == 400);
    } else {
        REQUIRE(r.status == 201);
        json_t *ice = json_array_get(json_object_get(r.doc, "iceServers"), 0);
        const char *user = json_string_value(json_object_get(ice, "username"));
        cred_info info;
        REQUIRE(user && cred_parse(user, strlen(user), &info) == CRED_OK);
        REQUIRE(strcmp(info.key_id, k->uid) == 0 && info.expires == m->now_s + ttl);
        if (m->n_creds < MAX_CREDS) {
            cred_rec *c = &m->creds[m->n_creds++];
            c->key = (int)(k - m->keys);
            c->expires = info.expires;
            c->revoked = false;
            snprintf(c->user, sizeof c->user, "%s", user);
        }
    }
    json_decref(r.doc);
}

static void op_revoke(model *m, const key_rec *k, const key_rec *b, cred_rec *c)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/turn/keys/%s/credentials/%s/revoke", k->uid, c->user);
    answer r = call(m, "POST", path, b->bearer, NULL);
    if (k->deleted || k != b) {
        REQUIRE(r.status == 401);
    } else if (&m->keys[c->key] != k) {
        REQUIRE(r.status == 404);
    } else {
        REQUIRE(r.status == 204);
        if (c->expires > m->now_s) {
            m->want_revoked++;
            c->revoked = true;
        }
        REQUIRE(m->hook_revoked == m->want_revoked);
    }
    json_decref(r.doc);
}

/* ---- invariants ----------------------------------------------------------------------- */

static const key_rec *model_key(const model *m, int a, const char *uid)
{
    for (size_t i = 0; i < m->n_keys; i++)
        if (m->keys[i].account == a && !m->keys[i].deleted && !strcmp(m->keys[i].uid, uid))
            return &m->keys[i];
    return NULL;
}

static void check_account(model *m, int a)
{
    char path[160];
    keys_path(m, a, NULL, path, sizeof path);
    answer r = call(m, "GET", path, m->admin[a], NULL);
    REQUIRE(r.status == 200);
    json_t *arr = result(&r);
    size_t n = live_keys(m, a);
    REQUIRE(json_is_array(arr) && json_array_size(arr) == n && n <= MAX_KEYS);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const key_rec *k = model_key(m, a, json_string_value(json_object_get(o, "uid")));
        REQUIRE(k != NULL); /* listed keys are distinct (n equal), live, of this account */
        REQUIRE(strcmp(json_string_value(json_object_get(o, "name")), k->name) == 0);
    }
    json_decref(r.doc);
    store_key *keys;
    size_t sn;
    REQUIRE(store_key_list(m->st, m->account[a], &keys, &sn) == STORE_OK && sn == n);
    for (size_t j = 0; j < sn; j++)
        REQUIRE(model_key(m, a, keys[j].uid) != NULL);
    store_key_array_free(keys, sn);
}

static void check_creds(model *m)
{
    cred_lookup lk = keycache_lookup_cached(m->kc);
    for (size_t i = 0; i < m->n_creds; i++) {
        const cred_rec *c = &m->creds[i];
        const key_rec *k = &m->keys[c->key];
        int rc = cred_verify(&lk, c->user, strlen(c->user), m->now_s, NULL, NULL);
        bool revoked_in_store = false;
        if (k->deleted) /* remembered as deleted while a credential of it could be valid */
            REQUIRE(rc == (m->now_s < k->deleted_at + KEYCACHE_DEAD_KEEP ? CRED_E_KEY_DELETED
                                                                         : CRED_E_UNKNOWN_KEY));
        else if (c->expires <= m->now_s)
            REQUIRE(rc == CRED_E_EXPIRED);
        else if (c->revoked)
            REQUIRE(rc == CRED_E_REVOKED && keycache_is_revoked(m->kc, c->user, strlen(c->user)));
        else
            REQUIRE(rc == CRED_OK);
        if (!k->deleted && c->revoked && c->expires > m->now_s) {
            REQUIRE(store_revoke_check(m->st, k->uid, c->user, &revoked_in_store) == STORE_OK);
            REQUIRE(revoked_in_store);
        }
    }
}

static void check_state(model *m)
{
    for (int a = 0; a < N_ACCOUNTS; a++)
        check_account(m, a);
    for (size_t i = 0; i < m->n_keys; i++) {
        if (!m->keys[i].deleted)
            continue;
        store_key k;
        uint8_t secret[STORE_SECRET_LEN];
        REQUIRE(store_key_by_uid(m->st, m->keys[i].uid, &k) == STORE_NOT_FOUND);
        REQUIRE(keycache_get(m->kc, m->keys[i].uid, secret, NULL) == -1);
        REQUIRE(keycache_get_cached(m->kc, m->keys[i].uid, secret) ==
                (m->now_s < m->keys[i].deleted_at + KEYCACHE_DEAD_KEEP ? KEYCACHE_DELETED : -1));
    }
    check_creds(m);
    REQUIRE(m->hook_deleted == m->want_deleted && m->hook_revoked == m->want_revoked);
}

/* ---- input ---------------------------------------------------------------------------- */

/* Up to 3 numbers after the op word; *rest = the text after them (NAME). */
static void parse_args(const char *s, long n[3], const char **rest)
{
    n[0] = n[1] = n[2] = 0;
    for (int i = 0; i < 3; i++) {
        while (*s == ' ')
            s++;
        if (!(*s >= '0' && *s <= '9') && *s != '-')
            break;
        char *end;
        n[i] = strtol(s, &end, 10);
        if (end == s)
            break;
        s = end;
    }
    while (*s == ' ')
        s++;
    *rest = s;
}

static size_t pick(long v, size_t n)
{
    return (size_t)((v % (long)n + (long)n) % (long)n);
}

static bool word(const char *line, const char *w, const char **after)
{
    size_t n = strlen(w);
    if (strncmp(line, w, n) != 0 || (line[n] != ' ' && line[n] != '\0'))
        return false;
    *after = line + n;
    return true;
}

static void control_step(model *m, const char *line)
{
    const char *s, *rest;
    long n[3];
    if (word(line, "create", &s)) {
        parse_args(s, n, &rest);
        op_create(m, (int)pick(n[0], N_ACCOUNTS), &m->tokens[pick(n[1], N_TOKENS)], rest);
        return;
    }
    static const char *const items[][2] = {{"get", "GET"}, {"rename", "PUT"}, {"delete", "DELETE"}};
    for (size_t i = 0; i < 3; i++)
        if (word(line, items[i][0], &s) && m->n_keys) {
            parse_args(s, n, &rest);
            op_item(m, items[i][1], (int)pick(n[0], N_ACCOUNTS), &m->tokens[pick(n[1], N_TOKENS)],
                    &m->keys[pick(n[2], m->n_keys)], rest);
            return;
        }
    if (word(line, "list", &s)) {
        parse_args(s, n, &rest);
        int a = (int)pick(n[0], N_ACCOUNTS);
        const tok_rec *t = &m->tokens[pick(n[1], N_TOKENS)];
        char path[160];
        keys_path(m, a, NULL, path, sizeof path);
        answer r = call(m, "GET", path, t->secret, NULL);
        REQUIRE(r.status == (token_ok(m, t, a, false) ? 200 : 403));
        json_decref(r.doc);
    }
}

static void step(model *m, const char *line)
{
    const char *s, *rest;
    long n[3];
    if (word(line, "mint", &s) && m->n_keys) {
        parse_args(s, n, &rest);
        op_mint(m, &m->keys[pick(n[0], m->n_keys)], &m->keys[pick(n[1], m->n_keys)], n[2]);
    } else if (word(line, "revoke", &s) && m->n_keys && m->n_creds) {
        parse_args(s, n, &rest);
        op_revoke(m, &m->keys[pick(n[0], m->n_keys)], &m->keys[pick(n[1], m->n_keys)],
                  &m->creds[pick(n[2], m->n_creds)]);
    } else if (word(line, "verify", &s)) {
        parse_args(s, n, &rest);
        op_verify(m, &m->tokens[pick(n[0], N_TOKENS)]);
    } else if (word(line, "tokrevoke", &s)) {
        parse_args(s, n, &rest);
        tok_rec *t = &m->tokens[pick(n[0], N_TOKENS)];
        /* a token already revoked is not found again (the CLI says so) */
        REQUIRE(store_token_revoke(m->st, t->id, m->now_s) ==
                (t->revoked ? STORE_NOT_FOUND : STORE_OK));
        t->revoked = true;
    } else if (word(line, "clock", &s)) {
        parse_args(s, n, &rest);
        m->now_s += (int64_t)pick(n[0], 200000);
        keycache_purge(m->kc, m->now_s); /* what the server does every minute */
    } else {
        control_step(m, line);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model *m = util_xmalloc(sizeof *m);
    setup(m);
    char *text = util_xstrndup((const char *)data, size); /* stops at a NUL byte */
    char *save = NULL;
    int steps = 0;
    for (char *line = strtok_r(text, "\n", &save); line && steps < MAX_STEPS;
         line = strtok_r(NULL, "\n", &save), steps++) {
        step(m, line);
        check_state(m);
    }
    free(text);
    teardown(m);
    free(m);
    return 0;
}
