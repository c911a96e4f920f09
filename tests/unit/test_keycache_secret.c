/* The key cache's shared secrets (issue 15): loaded, refreshed per key, dropped with the key,
 * answered from memory alone. */
#include <string.h>

#include "tk_test.h"
#include "turnkey/keycache.h"
#include "turnkey/util.h"

static store *st;
static store_account acct;

static void setup(void)
{
    char *err = NULL;
    st = store_open(":memory:", &err);
    store_free_err(err);
    store_account_create(st, "a", 1, &acct);
}

static void teardown(void)
{
    store_account_clear(&acct);
    store_close(st);
}

static void t_load_refresh_forget(void)
{
    setup();
    store_key k1, k2;
    char bearer[65];
    CHECK_INT(store_key_create(st, acct.id, "k1", 10, 1, &k1, bearer), STORE_OK);
    CHECK_INT(store_key_create(st, acct.id, "k2", 10, 1, &k2, bearer), STORE_OK);
    store_shared_secret a, b, c;
    CHECK_INT(store_secret_add(st, acct.id, k1.uid, STORE_SECRET_SHA1, 0, 1, &a), STORE_OK);
    CHECK_INT(store_secret_add(st, acct.id, k1.uid, STORE_SECRET_SHA256, 600, 2, &b), STORE_OK);
    CHECK_INT(store_secret_add(st, acct.id, k2.uid, STORE_SECRET_SHA1, 0, 3, &c), STORE_OK);
    keycache *kc = keycache_new(st);
    keycache_secret out[STORE_SHARED_SECRET_MAX];
    CHECK_INT(keycache_secrets(kc, k1.uid, out, 5), 0); /* memory only: nothing loaded yet */
    CHECK_INT(keycache_load_all(kc, 100), 0);
    CHECK_INT(keycache_secrets(kc, k1.uid, out, 5), 2);
    CHECK_STR(out[0].id, a.id);
    CHECK_STR(out[0].secret, a.secret);
    CHECK_INT(out[1].alg, STORE_SECRET_SHA256);
    CHECK_INT(out[1].max_ttl, 600);
    CHECK_INT(keycache_secrets(kc, k1.uid, out, 1), 1); /* bounded by max */
    CHECK_INT(keycache_secrets(kc, k2.uid, out, 5), 1);
    CHECK_INT(keycache_secrets(kc, "nothex", out, 5), 0);
    /* a delete in the store is seen after a refresh of that key */
    store_shared_secret gone;
    CHECK_INT(store_secret_delete(st, acct.id, k1.uid, a.id, &gone), STORE_OK);
    CHECK_INT(keycache_secrets(kc, k1.uid, out, 5), 2);
    CHECK_INT(keycache_secrets_refresh(kc, k1.uid), 0);
    CHECK_INT(keycache_secrets(kc, k1.uid, out, 5), 1);
    CHECK_STR(out[0].id, b.id);
    /* forgetting the key drops its secrets */
    keycache_forget(kc, k2.uid);
    CHECK_INT(keycache_secrets(kc, k2.uid, out, 5), 0);
    CHECK_INT(keycache_secrets_refresh(kc, "short"), -1);
    keycache_free(kc);
    store_key_clear(&k1);
    store_key_clear(&k2);
    teardown();
}

static void t_many_keys(void)
{
    setup();
    keycache *kc = keycache_new(st);
    char uids[200][STORE_ID_LEN + 1];
    for (int i = 0; i < 200; i++) {
        store_key k;
        char bearer[65];
        store_shared_secret s;
        CHECK_INT(store_key_create(st, acct.id, "k", 1000, 1, &k, bearer), STORE_OK);
        CHECK_INT(store_secret_add(st, acct.id, k.uid, STORE_SECRET_SHA1, 0, 1, &s), STORE_OK);
        memcpy(uids[i], k.uid, sizeof uids[i]);
        CHECK_INT(keycache_secrets_refresh(kc, k.uid), 0); /* the table grows past 64 */
        store_key_clear(&k);
    }
    keycache_secret out[STORE_SHARED_SECRET_MAX];
    for (int i = 0; i < 200; i++)
        CHECK_INT(keycache_secrets(kc, uids[i], out, 5), 1);
    CHECK_INT(keycache_secrets_load(kc), 0);
    for (int i = 0; i < 200; i++)
        CHECK_INT(keycache_secrets(kc, uids[i], out, 5), 1);
    keycache_free(kc);
    teardown();
}

int main(void)
{
    TK_RUN(t_load_refresh_forget);
    TK_RUN(t_many_keys);
    return tk_test_summary();
}
