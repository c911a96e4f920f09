/* store: backend-independent front — generates ids and secrets, hashes them, dispatches
 * to the backend's ops table. See include/turnkey/store.h. */
#include "turnkey/store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/util.h"

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

bool store_is_remote(const char *where)
{
    return has_prefix(where, "postgres://") || has_prefix(where, "postgresql://");
}

/* Where the SQLite file of a non-remote location is: NULL for ":memory:". */
static char *sqlite_file(const char *where, bool *is_dir)
{
    *is_dir = false;
    if (strcmp(where, ":memory:") == 0 || strcmp(where, "sqlite::memory:") == 0)
        return util_xstrdup(":memory:");
    if (has_prefix(where, "sqlite:"))
        return util_xstrdup(where + strlen("sqlite:"));
    *is_dir = true;
    return util_xasprintf("%s/turnkey.db", where);
}

store *store_open(const char *where, char **err)
{
    *err = NULL;
    void *ctx = NULL;
    const store_ops *ops = NULL;
    if (store_is_remote(where)) {
        ctx = store__pg_open(where, err);
        ops = store__pg_ops();
    } else if (has_prefix(where, "sqlite:") && !where[strlen("sqlite:")]) {
        *err = util_xstrdup("--store sqlite: needs a file name (sqlite:/path/turnkey.db)");
    } else if (strstr(where, "://")) {
        *err = util_xasprintf("unknown store URL scheme in '%s' (postgres://, postgresql://, "
                              "sqlite:PATH or a data directory)",
                              where);
    } else {
        bool is_dir;
        char *file = sqlite_file(where, &is_dir);
        ctx = store__sqlite_open(file, is_dir ? where : NULL, err);
        ops = store__sqlite_ops();
        free(file);
    }
    if (!ctx)
        return NULL;
    store *s = util_xcalloc(1, sizeof *s);
    s->ops = ops;
    s->ctx = ctx;
    return s;
}

bool store_exists(const char *where)
{
    if (store_is_remote(where))
        return true;
    bool is_dir;
    char *file = sqlite_file(where, &is_dir);
    bool ok = strcmp(file, ":memory:") != 0 && store__sqlite_exists(file);
    free(file);
    return ok;
}

char *store_describe(const char *where)
{
    if (!store_is_remote(where))
        return util_xstrdup(where);
    /* scheme://user:password@host/... -> scheme://user:***@host/... */
    const char *auth = strstr(where, "://") + 3;
    const char *at = strchr(auth, '@');
    const char *colon = strchr(auth, ':');
    if (!at || !colon || colon > at)
        return util_xstrdup(where);
    return util_xasprintf("%.*s***%s", (int)(colon + 1 - where), where, at);
}

void store_close(store *s)
{
    if (!s)
        return;
    s->ops->close(s->ctx);
    free(s);
}

void store_free_err(char *err)
{
    free(err);
}

bool store__key_admit(size_t existing, size_t max_keys)
{
    return existing < max_keys;
}

bool store__revoke_admit(size_t live, size_t max)
{
    return live < max;
}

int64_t store__next_modified(int64_t prev, int64_t now)
{
    return now > prev ? now : prev + 1;
}

/* Ids are 32 lowercase hex: anything else names no record (and never reaches a backend). */
static bool valid_id(const char *id)
{
    return id && strlen(id) == STORE_ID_LEN && util_is_lower_hex(id, STORE_ID_LEN);
}

int store_account_create(store *s, const char *name, int64_t now, store_account *out)
{
    memset(out, 0, sizeof *out);
    util_random_hex(STORE_ID_LEN / 2, out->id);
    out->name = util_xstrdup(name ? name : "");
    out->created = now;
    int rc = s->ops->account_create(s->ctx, out);
    if (rc != STORE_OK)
        store_account_clear(out);
    return rc;
}

int store_account_get(store *s, const char *id, store_account *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_id(id))
        return STORE_NOT_FOUND;
    return s->ops->account_get(s->ctx, id, out);
}

int store_account_list(store *s, store_account **out, size_t *n)
{
    return s->ops->account_list(s->ctx, out, n);
}

/* API tokens: 40 chars of base64url (30 random bytes = 240 bits), like Cloudflare's. */
static void random_token(char out[STORE_TOKEN_LEN + 1])
{
    uint8_t raw[30];
    unsigned char b64[45];
    util_random(raw, sizeof raw);
    EVP_EncodeBlock(b64, raw, sizeof raw);
    for (int i = 0; i < STORE_TOKEN_LEN; i++) {
        char c = (char)b64[i];
        out[i] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[STORE_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(b64, sizeof b64);
}

int store_token_create(store *s, const char *account_id, const char *name, unsigned perms,
                       int64_t expires, int64_t now, store_token *out,
                       char token_out[STORE_TOKEN_LEN + 1])
{
    memset(out, 0, sizeof *out);
    if (!valid_id(account_id))
        return STORE_NOT_FOUND;
    util_random_hex(STORE_ID_LEN / 2, out->id);
    snprintf(out->account_id, sizeof out->account_id, "%s", account_id);
    out->name = util_xstrdup(name ? name : "");
    out->perms = perms;
    out->created = now;
    out->expires = expires;
    random_token(token_out);
    util_sha256_hex(token_out, STORE_TOKEN_LEN, out->token_hash);
    int rc = s->ops->token_create(s->ctx, out);
    if (rc != STORE_OK) {
        OPENSSL_cleanse(token_out, STORE_TOKEN_LEN);
        store_token_clear(out);
    }
    return rc;
}

int store_token_by_secret(store *s, const char *token, size_t len, store_token *out)
{
    char hash[65];
    memset(out, 0, sizeof *out);
    util_sha256_hex(token, len, hash);
    return s->ops->token_by_hash(s->ctx, hash, out);
}

int store_token_list(store *s, const char *account_id, store_token **out, size_t *n)
{
    if (account_id && !valid_id(account_id)) {
        *out = NULL;
        *n = 0;
        return STORE_OK;
    }
    return s->ops->token_list(s->ctx, account_id, out, n);
}

int store_token_revoke(store *s, const char *id, int64_t now)
{
    if (!valid_id(id))
        return STORE_NOT_FOUND;
    return s->ops->token_revoke(s->ctx, id, now);
}

int store_key_create(store *s, const char *account_id, const char *name, size_t max_keys,
                     int64_t now, store_key *out, char key_out[65])
{
    memset(out, 0, sizeof *out);
    if (!valid_id(account_id))
        return STORE_NOT_FOUND;
    util_random_hex(STORE_ID_LEN / 2, out->uid);
    snprintf(out->account_id, sizeof out->account_id, "%s", account_id);
    out->name = util_xstrdup(name ? name : "");
    out->created = out->modified = now;
    util_random_hex(32, key_out);
    util_sha256_hex(key_out, 64, out->key_hash);
    util_random(out->secret, sizeof out->secret);
    int rc = s->ops->key_create(s->ctx, out, max_keys);
    if (rc != STORE_OK) {
        OPENSSL_cleanse(key_out, 64);
        store_key_clear(out);
    }
    return rc;
}

int store_key_get(store *s, const char *account_id, const char *uid, store_key *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_id(account_id) || !valid_id(uid))
        return STORE_NOT_FOUND;
    return s->ops->key_get(s->ctx, account_id, uid, out);
}

int store_key_by_uid(store *s, const char *uid, store_key *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_id(uid))
        return STORE_NOT_FOUND;
    return s->ops->key_by_uid(s->ctx, uid, out);
}

int store_key_list(store *s, const char *account_id, store_key **out, size_t *n)
{
    if (!valid_id(account_id)) {
        *out = NULL;
        *n = 0;
        return STORE_OK;
    }
    return s->ops->key_list(s->ctx, account_id, out, n);
}

int store_key_rename(store *s, const char *account_id, const char *uid, const char *name,
                     int64_t now, store_key *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_id(account_id) || !valid_id(uid))
        return STORE_NOT_FOUND;
    return s->ops->key_rename(s->ctx, account_id, uid, name, now, out);
}

int store_key_delete(store *s, const char *account_id, const char *uid, store_key *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_id(account_id) || !valid_id(uid))
        return STORE_NOT_FOUND;
    return s->ops->key_delete(s->ctx, account_id, uid, out);
}

/* Revocations are stored by SHA-256 hex of the username: the store never holds one. */
int store_revoke_add_capped(store *s, const char *key_uid, const char *username, int64_t expires,
                            size_t max_per_key, int64_t now)
{
    char h[65];
    if (!valid_id(key_uid))
        return STORE_NOT_FOUND;
    util_sha256_hex(username, strlen(username), h);
    return s->ops->revoke_add(s->ctx, key_uid, h, expires, now, max_per_key);
}

int store_revoke_add(store *s, const char *key_uid, const char *username, int64_t expires)
{
    return store_revoke_add_capped(s, key_uid, username, expires, STORE_NO_LIMIT, 0);
}

int store_revoke_check(store *s, const char *key_uid, const char *username, bool *revoked)
{
    char h[65];
    *revoked = false;
    if (!valid_id(key_uid))
        return STORE_OK;
    util_sha256_hex(username, strlen(username), h);
    return s->ops->revoke_check(s->ctx, key_uid, h, revoked);
}

int store_revoke_purge(store *s, int64_t now, size_t *purged)
{
    if (purged)
        *purged = 0;
    return s->ops->revoke_purge(s->ctx, now, purged);
}

typedef struct each_adapter {
    void (*fn)(void *arg, const char *username_hash, int64_t expires);
    void *arg;
} each_adapter;

static void each_one(void *arg, const char *key_uid, const char *username_hash, int64_t expires)
{
    (void)key_uid;
    each_adapter *ad = arg;
    ad->fn(ad->arg, username_hash, expires);
}

int store_revoke_each(store *s, int64_t now,
                      void (*fn)(void *arg, const char *username_hash, int64_t expires), void *arg)
{
    each_adapter ad = {.fn = fn, .arg = arg};
    return s->ops->revoke_each(s->ctx, now, each_one, &ad);
}

int store_key_list_all(store *s, store_key **out, size_t *n)
{
    return s->ops->key_list_all(s->ctx, out, n);
}

int store_changes_since(store *s, int64_t after, size_t max, store_change **out, size_t *n,
                        store_feed *feed)
{
    *out = NULL;
    *n = 0;
    memset(feed, 0, sizeof *feed);
    return s->ops->changes_since(s->ctx, after, max, out, n, feed);
}

int store_changes_prune(store *s, int64_t before, size_t *pruned)
{
    if (pruned)
        *pruned = 0;
    return s->ops->changes_prune(s->ctx, before, pruned);
}

int store_changes_wait(store *s, int timeout_ms)
{
    return s->ops->changes_wait(s->ctx, timeout_ms);
}

void store_account_clear(store_account *a)
{
    free(a->name);
    a->name = NULL;
}

void store_token_clear(store_token *t)
{
    free(t->name);
    t->name = NULL;
}

void store_key_clear(store_key *k)
{
    free(k->name);
    k->name = NULL;
    OPENSSL_cleanse(k->secret, sizeof k->secret);
}

void store_account_array_free(store_account *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_account_clear(&a[i]);
    free(a);
}

void store_token_array_free(store_token *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_token_clear(&t[i]);
    free(t);
}

void store_key_array_free(store_key *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_key_clear(&k[i]);
    free(k);
}

/* The permission names, in the order store_perms_format writes them. */
static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"calls:read", STORE_PERM_READ},
    {"calls:write", STORE_PERM_WRITE},
    {"audit:read", STORE_PERM_AUDIT_READ},
    {"analytics:read", STORE_PERM_ANALYTICS_READ},
};

static unsigned perm_bit(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof perm_names / sizeof perm_names[0]; i++)
        if (strlen(perm_names[i].name) == len && strncmp(p, perm_names[i].name, len) == 0)
            return perm_names[i].bit;
    return 0;
}

unsigned store_perms_parse(const char *s)
{
    unsigned perms = 0;
    if (!s || !*s)
        return 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        unsigned bit = perm_bit(p, len);
        if (!bit)
            return 0;
        perms |= bit;
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return 0; /* trailing comma */
    }
    return perms;
}

void store_perms_format(unsigned perms, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof perm_names / sizeof perm_names[0]; i++) {
        if (!(perms & perm_names[i].bit) || n >= cap)
            continue;
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", perm_names[i].name);
        n += w > 0 ? (size_t)w : 0;
    }
}
