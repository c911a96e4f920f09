#include "tk_test.h"
#include "turnkey/keycache.h"
#include "turnkey/util.h"

/* The cache loads a key from the store on first use, then answers from memory (proved by
 * deleting the row behind its back: it still answers) until keycache_forget; after a forget
 * it follows the store again (a key still stored is reloaded, a deleted one stays unknown);
 * unknown and malformed uids are -1; the cred_lookup adapter answers the same. */
static void t_keys_follow_store(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    keycache *kc = keycache_new(s);
    store_account a;
    store_key k, k2;
    char bearer[65], hash[65];
    uint8_t secret[32];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k2", 10, 1, &k2, bearer), STORE_OK);
    CHECK_INT(keycache_get(kc, k.uid, secret, hash), 0);
    CHECK(memcmp(secret, k.secret, 32) == 0);
    CHECK_STR(hash, k.key_hash);
    CHECK_INT(keycache_get(kc, "0123456789abcdef0123456789abcdef", secret, NULL), -1);
    CHECK_INT(keycache_get(kc, "not-hex", secret, NULL), -1);
    CHECK_INT(keycache_get(kc, "", secret, NULL), -1);

    /* the row goes away behind the cache's back: it still answers from memory */
    store_key d;
    CHECK_INT(store_key_delete(s, a.id, k.uid, &d), STORE_OK);
    store_key_clear(&d);
    memset(secret, 0, sizeof secret);
    CHECK_INT(keycache_get(kc, k.uid, secret, NULL), 0);
    CHECK(memcmp(secret, k.secret, 32) == 0);
    /* forget: now it follows the store, which no longer has the key */
    keycache_forget(kc, k.uid);
    CHECK_INT(keycache_get(kc, k.uid, secret, NULL), -1);
    CHECK_INT(keycache_get(kc, k.uid, secret, NULL), -1);
    /* the other key was untouched; forgetting a key that is still stored only reloads it */
    CHECK_INT(keycache_get(kc, k2.uid, secret, NULL), 0);
    keycache_forget(kc, k2.uid);
    memset(secret, 0, sizeof secret);
    CHECK_INT(keycache_get(kc, k2.uid, secret, hash), 0);
    CHECK(memcmp(secret, k2.secret, 32) == 0);
    CHECK_STR(hash, k2.key_hash);

    /* the cred_lookup adapter */
    cred_lookup lk = keycache_lookup(kc);
    CHECK_INT(lk.key_secret(lk.ctx, k.uid, secret), -1);
    memset(secret, 0, sizeof secret);
    CHECK_INT(lk.key_secret(lk.ctx, k2.uid, secret), 0);
    CHECK(memcmp(secret, k2.secret, 32) == 0);
    store_key_clear(&k);
    store_key_clear(&k2);
    store_account_clear(&a);
    keycache_free(kc);
    store_close(s);
}

/* After keycache_preload the relay's lookups never reach the store: a key the store has but
 * the cache never saw (created behind its back) is unknown to keycache_get_cached, while
 * keycache_get (the API's path) still loads it; a key deleted behind its back is still
 * answered from memory. Before the preload, the cached lookup falls back to the store. */
static void t_preload_then_memory_only(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    store_account a;
    store_key k1, k2, k3, d;
    char bearer[65];
    uint8_t secret[32];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k1", 10, 1, &k1, bearer), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k2", 10, 1, &k2, bearer), STORE_OK);
    keycache *kc = keycache_new(s);
    CHECK_INT(keycache_get_cached(kc, k2.uid, secret), 0); /* not preloaded: the store */
    keycache *pc = keycache_new(s);
    CHECK_INT(keycache_preload(pc), 0);
    CHECK_INT(store_key_create(s, a.id, "k3", 10, 1, &k3, bearer), STORE_OK);
    CHECK_INT(store_key_delete(s, a.id, k1.uid, &d), STORE_OK);
    CHECK_INT(keycache_get_cached(pc, k1.uid, secret), 0); /* memory, not the store */
    CHECK(memcmp(secret, k1.secret, 32) == 0);
    CHECK_INT(keycache_get_cached(pc, k3.uid, secret), -1);
    CHECK_INT(keycache_get_cached(pc, "0123456789abcdef0123456789abcdef", secret), -1);
    cred_lookup lk = keycache_lookup_cached(pc);
    CHECK_INT(lk.key_secret(lk.ctx, k3.uid, secret), -1);
    CHECK_INT(lk.key_secret(lk.ctx, k2.uid, secret), 0);
    CHECK_INT(keycache_get(pc, k3.uid, secret, NULL), 0); /* minting loads it */
    CHECK_INT(keycache_get_cached(pc, k3.uid, secret), 0);
    CHECK(memcmp(secret, k3.secret, 32) == 0);
    keycache_forget(pc, k1.uid);
    CHECK_INT(keycache_get_cached(pc, k1.uid, secret), KEYCACHE_DELETED);
    store_key_clear(&d);
    store_key_clear(&k1);
    store_key_clear(&k2);
    store_key_clear(&k3);
    store_account_clear(&a);
    keycache_free(kc);
    keycache_free(pc);
    store_close(s);
}

static void t_many_keys_grow(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    keycache *kc = keycache_new(s);
    store_account a;
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    char uids[300][33];
    for (int i = 0; i < 300; i++) {
        store_key k;
        char bearer[65];
        CHECK_INT(store_key_create(s, a.id, "", 1000, 1, &k, bearer), STORE_OK);
        memcpy(uids[i], k.uid, 33);
        CHECK_INT(keycache_get(kc, k.uid, NULL, NULL), 0);
        store_key_clear(&k);
    }
    for (int i = 0; i < 300; i++)
        CHECK_INT(keycache_get(kc, uids[i], NULL, NULL), 0);
    store_account_clear(&a);
    keycache_free(kc);
    store_close(s);
}

static void t_revocations(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    CHECK_INT(store_revoke_add(s, "0000000000000000000000000000000a", "persisted-user", 500),
              STORE_OK);
    CHECK_INT(store_revoke_add(s, "0000000000000000000000000000000a", "old-user", 50), STORE_OK);
    keycache *kc = keycache_new(s);
    CHECK_INT(keycache_load_revocations(kc, 100), 0);
    CHECK(keycache_is_revoked(kc, "persisted-user", 14));
    CHECK(!keycache_is_revoked(kc, "old-user", 8)); /* already expired at load */
    CHECK(!keycache_is_revoked(kc, "other", 5));
    keycache_revoke(kc, "live", 4, 200);
    keycache_revoke(kc, "live", 4, 200);
    CHECK(keycache_is_revoked(kc, "live", 4));
    CHECK_INT(keycache_purge(kc, 199), 0);
    CHECK_INT(keycache_purge(kc, 200), 1);
    CHECK(!keycache_is_revoked(kc, "live", 4));
    CHECK(keycache_is_revoked(kc, "persisted-user", 14));
    keycache_free(kc);
    store_close(s);
}

/* A deleted key is remembered as deleted (not unknown): through the cached lookup the relay
 * uses, cred_verify answers CRED_E_KEY_DELETED. The memory is bounded in time (purged once
 * no credential of the key can be valid) and in count (the oldest deletion goes first). */
static void t_deleted_keys_remembered(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    CHECK(s);
    store_account a;
    store_key k1, k2, d;
    char bearer[65], user[CRED_USERNAME_MAX], pass[CRED_PASSWORD_MAX];
    uint8_t secret[32];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k1", 10, 1, &k1, bearer), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k2", 10, 1, &k2, bearer), STORE_OK);
    keycache *kc = keycache_new(s);
    CHECK_INT(keycache_preload(kc), 0);
    keycache_set_complete(kc, true);
    int64_t now = util_now();
    CHECK_INT(cred_mint(k1.uid, k1.secret, now + 600, "", user, pass), CRED_OK);
    cred_lookup lk = keycache_lookup_cached(kc);
    CHECK_INT(cred_verify(&lk, user, strlen(user), now, NULL, NULL), CRED_OK);
    CHECK_INT(store_key_delete(s, a.id, k1.uid, &d), STORE_OK);
    store_key_clear(&d);
    keycache_forget(kc, k1.uid);
    CHECK_INT(keycache_get_cached(kc, k1.uid, secret), KEYCACHE_DELETED);
    CHECK_INT(keycache_get(kc, k1.uid, secret, NULL), -1); /* the API's path: still a miss */
    CHECK_INT(cred_verify(&lk, user, strlen(user), now, NULL, NULL), CRED_E_KEY_DELETED);
    CHECK_INT(keycache_get_cached(kc, "0123456789abcdef0123456789abcdef", secret), -1);
    /* a full reload notices keys gone from the store */
    CHECK_INT(store_key_delete(s, a.id, k2.uid, &d), STORE_OK);
    store_key_clear(&d);
    CHECK_INT(keycache_load_all(kc, now), 0);
    CHECK_INT(keycache_get_cached(kc, k2.uid, secret), KEYCACHE_DELETED);
    /* kept while a credential of the key can be valid, then dropped */
    keycache_purge(kc, now + KEYCACHE_DEAD_KEEP - 5);
    CHECK_INT(keycache_get_cached(kc, k1.uid, secret), KEYCACHE_DELETED);
    keycache_purge(kc, util_now() + KEYCACHE_DEAD_KEEP + 1);
    CHECK_INT(keycache_get_cached(kc, k1.uid, secret), -1);
    CHECK_INT(keycache_get_cached(kc, k2.uid, secret), -1);
    /* at most KEYCACHE_DEAD_MAX: the oldest goes first */
    char uid[STORE_ID_LEN + 1];
    for (unsigned i = 0; i <= KEYCACHE_DEAD_MAX; i++) {
        snprintf(uid, sizeof uid, "%032x", i);
        keycache_forget(kc, uid);
    }
    snprintf(uid, sizeof uid, "%032x", 0u);
    CHECK_INT(keycache_get_cached(kc, uid, secret), -1);
    snprintf(uid, sizeof uid, "%032x", 1u);
    CHECK_INT(keycache_get_cached(kc, uid, secret), KEYCACHE_DELETED);
    snprintf(uid, sizeof uid, "%032x", (unsigned)KEYCACHE_DEAD_MAX);
    CHECK_INT(keycache_get_cached(kc, uid, secret), KEYCACHE_DELETED);
    store_key_clear(&k1);
    store_key_clear(&k2);
    store_account_clear(&a);
    keycache_free(kc);
    store_close(s);
}

int main(void)
{
    TK_RUN(t_keys_follow_store);
    TK_RUN(t_many_keys_grow);
    TK_RUN(t_preload_then_memory_only);
    TK_RUN(t_revocations);
    TK_RUN(t_deleted_keys_remembered);
    return tk_test_summary();
}
