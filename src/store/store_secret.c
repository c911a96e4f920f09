/* store: the shared-secret dispatchers (issue 15): validation, ids and secrets are drawn
 * here, above the ops table, so both backends behave identically. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/store.h"
#include "turnkey/util.h"

static bool id_ok(const char *id)
{
    return id && strlen(id) == STORE_ID_LEN && util_is_lower_hex(id, STORE_ID_LEN);
}

const char *store_secret_alg_name(int alg)
{
    return alg == STORE_SECRET_SHA1 ? "sha1" : alg == STORE_SECRET_SHA256 ? "sha256" : "?";
}

int store_secret_alg_parse(const char *name)
{
    if (name && !strcmp(name, "sha1"))
        return STORE_SECRET_SHA1;
    if (name && !strcmp(name, "sha256"))
        return STORE_SECRET_SHA256;
    return 0;
}

int store_secret_add(store *s, const char *account_id, const char *key_uid, int alg,
                     int64_t max_ttl, int64_t now_ms, store_shared_secret *out)
{
    memset(out, 0, sizeof *out);
    if (!s->ops->secret_add)
        return STORE_ERROR;
    if (max_ttl == 0)
        max_ttl = STORE_SHARED_TTL_DEFAULT;
    if ((alg != STORE_SECRET_SHA1 && alg != STORE_SECRET_SHA256) ||
        max_ttl < STORE_SHARED_TTL_MIN || max_ttl > STORE_SHARED_TTL_MAX)
        return STORE_INVALID;
    if (!id_ok(account_id) || !id_ok(key_uid))
        return STORE_NOT_FOUND;
    util_random_hex(STORE_ID_LEN / 2, out->id);
    memcpy(out->key_uid, key_uid, STORE_ID_LEN + 1);
    memcpy(out->account_id, account_id, STORE_ID_LEN + 1);
    util_random_hex(STORE_SHARED_SECRET_TEXT / 2, out->secret);
    out->alg = alg;
    out->max_ttl = max_ttl;
    out->created = now_ms;
    int rc = s->ops->secret_add(s->ctx, out, STORE_SHARED_SECRET_MAX);
    if (rc != STORE_OK)
        OPENSSL_cleanse(out, sizeof *out);
    return rc;
}

int store_secret_list(store *s, const char *key_uid, store_shared_secret **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->ops->secret_list)
        return STORE_ERROR;
    if (!id_ok(key_uid))
        return STORE_OK; /* no such key: no secrets */
    return s->ops->secret_list(s->ctx, key_uid, out, n);
}

int store_secret_delete(store *s, const char *account_id, const char *key_uid, const char *id,
                        store_shared_secret *out)
{
    memset(out, 0, sizeof *out);
    if (!s->ops->secret_delete)
        return STORE_ERROR;
    if (!id_ok(account_id) || !id_ok(key_uid) || !id_ok(id))
        return STORE_NOT_FOUND;
    return s->ops->secret_delete(s->ctx, account_id, key_uid, id, out);
}

int store_secret_list_all(store *s, store_shared_secret **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->ops->secret_list_all)
        return STORE_ERROR;
    return s->ops->secret_list_all(s->ctx, out, n);
}

void store_secret_array_free(store_shared_secret *a, size_t n)
{
    if (!a)
        return;
    OPENSSL_cleanse(a, n * sizeof *a);
    free(a);
}
