/* relay_secret: the relay's credential check with shared secrets bound to TURN keys
 * (issue 15), beside turnkey's own credentials. The username names the key ("…~<key
 * uid>"); otherwise the secrets of the node's --shared-secret-keys (at most
 * RELAY_SECRET_KEYS_MAX keys) are tried: never more than TURN_AUTH_CANDIDATES_MAX
 * passwords per request, never a scan of every secret. Memory only (the key cache). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "turnkey/cred.h"
#include "turnkey/keycache.h"
#include "turnkey/util.h"

int relay__secret_setup(relay *r, const char *list, char **err)
{
    r->n_secret_keys = 0;
    for (const char *p = list ? list : ""; *p;) {
        size_t n = strcspn(p, ",");
        char id[STORE_ID_LEN + 1];
        snprintf(id, sizeof id, "%.*s", (int)(n < STORE_ID_LEN ? n : STORE_ID_LEN), p);
        if (n != STORE_ID_LEN || !util_is_lower_hex(id, n) ||
            r->n_secret_keys == RELAY_SECRET_KEYS_MAX) {
            *err = util_xasprintf("invalid --shared-secret-keys '%s' (at most %d TURN key ids, "
                                  "32 lowercase hex each, comma-separated)",
                                  list, RELAY_SECRET_KEYS_MAX);
            return -1;
        }
        memcpy(r->secret_keys[r->n_secret_keys], p, STORE_ID_LEN);
        r->secret_keys[r->n_secret_keys++][STORE_ID_LEN] = '\0';
        p += n;
        if (*p == ',' && !*++p) { /* a trailing comma names nothing */
            *err = util_xasprintf("invalid --shared-secret-keys '%s' (a trailing comma)", list);
            return -1;
        }
    }
    return 0;
}

/* The candidate of one secret, or 0 when its lifetime cap refuses the expiry. */
static int candidate(const keycache_secret *k, const cred_shared_name *nm, const uint8_t *u,
                     size_t len, int64_t now, turn_auth_candidate *c)
{
    if (nm->expires > now + k->max_ttl + RELAY_SECRET_SKEW_S)
        return 0;
    memset(c, 0, sizeof *c);
    if (cred_shared_password(k->alg == STORE_SECRET_SHA256, k->secret, strlen(k->secret),
                             (const char *)u, len, c->password) != CRED_OK)
        return 0;
    memcpy(c->info.key_id, k->key_uid, sizeof c->info.key_id);
    memcpy(c->info.secret_id, k->id, sizeof c->info.secret_id);
    c->info.expires = nm->expires;
    if (cred_cid_valid(nm->user, nm->user_len)) /* the app's user, when it fits the rule */
        memcpy(c->info.custom_id, nm->user, nm->user_len);
    return 1;
}

/* Adds the candidates of one key's secrets, with the key's policy; *capped counts secrets
 * refusing the expiry. */
static size_t add_key(relay *r, const char *uid, const cred_shared_name *nm, const uint8_t *u,
                      size_t len, int64_t now, turn_auth_candidate *out, size_t room,
                      size_t *capped)
{
    keycache *kc = r->keys;
    keycache_secret sec[STORE_SHARED_SECRET_MAX];
    size_t n = 0;
    if (keycache_get_cached(kc, uid, NULL) != 0) /* unknown, or deleted meanwhile */
        return 0;
    size_t m = keycache_secrets(kc, uid, sec, STORE_SHARED_SECRET_MAX);
    for (size_t i = 0; i < m && n < room; i++) {
        int ok = candidate(&sec[i], nm, u, len, now, &out[n]);
        n += (size_t)ok;
        *capped += (size_t)!ok;
    }
    OPENSSL_cleanse(sec, sizeof sec);
    if (n)
        relay__policy_fill(r, &out[0].info, now); /* one key, one customIdentifier: one view */
    for (size_t i = 1; i < n; i++) {
        out[i].info.alloc_quota = out[0].info.alloc_quota;
        out[i].info.bandwidth_bps = out[0].info.bandwidth_bps;
        out[i].info.budget_blocked = out[0].info.budget_blocked;
    }
    return n;
}

int relay__auth_candidates(void *ctx, const uint8_t *u, size_t len, int64_t now,
                           turn_auth_candidate *out, size_t max)
{
    relay_worker *w = ctx;
    relay *r = w->shared;
    cred_info ci;
    if (cred_parse((const char *)u, len, &ci) == CRED_OK) { /* turnkey's own credential */
        memset(&out[0], 0, sizeof out[0]);
        int rc = relay__ops_auth(ctx, u, len, now, out[0].password, &out[0].info);
        return rc == TURN_AUTH_OK ? 1 : rc;
    }
    cred_shared_name nm;
    if (cred_shared_parse((const char *)u, len, &nm) != CRED_OK)
        return TURN_AUTH_REJECT;
    if (nm.expires <= now)
        return TURN_AUTH_EXPIRED;
    if (keycache_is_revoked(r->keys, (const char *)u, len))
        return TURN_AUTH_REVOKED;
    size_t n = 0, capped = 0;
    if (nm.key_id[0]) {
        n = add_key(r, nm.key_id, &nm, u, len, now, out, max, &capped);
        if (n == 0 && !capped && keycache_get_cached(r->keys, nm.key_id, NULL) != 0)
            return TURN_AUTH_UNKNOWN_KEY;
    } else {
        for (size_t k = 0; k < r->n_secret_keys && n < max; k++)
            n += add_key(r, r->secret_keys[k], &nm, u, len, now, out + n, max - n, &capped);
    }
    return n ? (int)n : TURN_AUTH_REJECT;
}
