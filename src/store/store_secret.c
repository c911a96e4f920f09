/* store: the shared-secret dispatchers (issue 15): validation, ids and secrets are drawn
 * here, above the ops table, so both backends behave identically. */
#include <openssl/crypto.h>
#include <stdint.h>
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

/* One shared secret is in the target as in the source. */
static bool same_secret(const store_shared_secret *a, const store_shared_secret *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->key_uid, b->key_uid) &&
           !strcmp(a->account_id, b->account_id) && !strcmp(a->secret, b->secret) &&
           a->alg == b->alg && a->max_ttl == b->max_ttl && a->created == b->created;
}

int store__copy_secrets(store *from, store *to, const char *key_uid, size_t *copied,
                        size_t *verified)
{
    store_shared_secret *src = NULL, *dst = NULL;
    size_t ns = 0, nd = 0;
    if (!from->ops->secret_list || !to->ops->secret_list)
        return STORE_OK; /* a backend without them holds none */
    int rc = from->ops->secret_list(from->ctx, key_uid, &src, &ns);
    if (rc == STORE_OK)
        rc = to->ops->secret_list(to->ctx, key_uid, &dst, &nd);
    for (size_t i = 0; rc == STORE_OK && i < ns; i++) {
        const store_shared_secret *there = NULL;
        for (size_t j = 0; j < nd && !there; j++)
            if (!strcmp(dst[j].id, src[i].id))
                there = &dst[j];
        if (!there) { /* the record as is: same id, secret and time */
            rc = to->ops->secret_add(to->ctx, &src[i], SIZE_MAX);
            *copied += rc == STORE_OK;
        } else if (!same_secret(there, &src[i])) {
            rc = STORE_ERROR;
        }
    }
    store_secret_array_free(dst, nd);
    dst = NULL;
    nd = 0;
    if (rc == STORE_OK) /* verify: every source secret is now in the target */
        rc = to->ops->secret_list(to->ctx, key_uid, &dst, &nd);
    for (size_t i = 0; rc == STORE_OK && i < ns; i++) {
        bool found = false;
        for (size_t j = 0; j < nd && !found; j++)
            found = same_secret(&dst[j], &src[i]);
        rc = found ? STORE_OK : STORE_ERROR;
        *verified += found;
    }
    store_secret_array_free(src, ns);
    store_secret_array_free(dst, nd);
    return rc;
}
