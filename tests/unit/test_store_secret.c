/* Shared secrets (issue 15) in the store: the conformance tests run on SQLite and on
 * PostgreSQL (store_fixture.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

/* Changes of the given kind in the log (with secret id `id` in username_hash, unless NULL). */
static int count_changes(store *s, int kind, const char *id)
{
    store_change *c;
    size_t n;
    store_feed f;
    int found = 0;
    if (store_changes_since(s, 0, 1000, &c, &n, &f) != STORE_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (c[i].kind == kind && (!id || !strcmp(c[i].username_hash, id)))
            found++;
    free(c);
    return found;
}

static void t_add_list_delete(void)
{
    store *s = open_fresh();
    CHECK(s);
    store_account a, b;
    store_key k, k2;
    char bearer[65];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_account_create(s, "b", 1, &b), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k2", 10, 1, &k2, bearer), STORE_OK);

    store_shared_secret s1, s2, bad;
    CHECK_INT(store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA1, 0, 1000, &s1), STORE_OK);
    CHECK(util_is_lower_hex(s1.id, STORE_ID_LEN));
    CHECK_INT(strlen(s1.secret), STORE_SHARED_SECRET_TEXT);
    CHECK(util_is_lower_hex(s1.secret, STORE_SHARED_SECRET_TEXT));
    CHECK_INT(s1.max_ttl, STORE_SHARED_TTL_DEFAULT);
    CHECK_INT(store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA256, 3600, 2000, &s2), STORE_OK);
    CHECK(strcmp(s1.secret, s2.secret) != 0);
    CHECK_INT(count_changes(s, STORE_CHANGE_SECRET_ADDED, s1.id), 1);

    /* bad input changes nothing */
    CHECK_INT(store_secret_add(s, a.id, k.uid, 7, 0, 1, &bad), STORE_INVALID);
    CHECK_INT(store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA1, 59, 1, &bad), STORE_INVALID);
    CHECK_INT(
        store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA1, STORE_SHARED_TTL_MAX + 1, 1, &bad),
        STORE_INVALID);
    /* another account's key, an unknown key, a malformed id */
    CHECK_INT(store_secret_add(s, b.id, k.uid, STORE_SECRET_SHA1, 0, 1, &bad), STORE_NOT_FOUND);
    CHECK_INT(store_secret_add(s, a.id, "0123456789abcdef0123456789abcdef", STORE_SECRET_SHA1, 0, 1,
                               &bad),
              STORE_NOT_FOUND);
    CHECK_INT(store_secret_add(s, a.id, "nope", STORE_SECRET_SHA1, 0, 1, &bad), STORE_NOT_FOUND);

    store_shared_secret *list;
    size_t n;
    CHECK_INT(store_secret_list(s, k.uid, &list, &n), STORE_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(list[0].id, s1.id);
        CHECK_STR(list[0].secret, s1.secret);
        CHECK_STR(list[0].account_id, a.id);
        CHECK_INT(list[0].alg, STORE_SECRET_SHA1);
        CHECK_INT(list[1].alg, STORE_SECRET_SHA256);
        CHECK_INT(list[1].max_ttl, 3600);
        CHECK_INT(list[1].created, 2000);
    }
    store_secret_array_free(list, n);
    CHECK_INT(store_secret_list(s, k2.uid, &list, &n), STORE_OK);
    CHECK_INT(n, 0);
    store_secret_array_free(list, n);

    store_shared_secret del;
    CHECK_INT(store_secret_delete(s, b.id, k.uid, s1.id, &del), STORE_NOT_FOUND);
    CHECK_INT(store_secret_delete(s, a.id, k2.uid, s1.id, &del), STORE_NOT_FOUND);
    CHECK_INT(store_secret_delete(s, a.id, k.uid, s1.id, &del), STORE_OK);
    CHECK_STR(del.id, s1.id);
    CHECK_INT(store_secret_delete(s, a.id, k.uid, s1.id, &del), STORE_NOT_FOUND);
    CHECK_INT(count_changes(s, STORE_CHANGE_SECRET_DELETED, s1.id), 1);
    CHECK_INT(store_secret_list(s, k.uid, &list, &n), STORE_OK);
    CHECK_INT(n, 1);
    store_secret_array_free(list, n);

    /* deleting the key deletes its secrets */
    CHECK_INT(store_secret_add(s, a.id, k2.uid, STORE_SECRET_SHA1, 0, 1, &bad), STORE_OK);
    CHECK_INT(store_secret_list_all(s, &list, &n), STORE_OK);
    CHECK_INT(n, 2);
    store_secret_array_free(list, n);
    store_key gone;
    CHECK_INT(store_key_delete(s, a.id, k.uid, &gone), STORE_OK);
    store_key_clear(&gone);
    CHECK_INT(store_secret_list(s, k.uid, &list, &n), STORE_OK);
    CHECK_INT(n, 0);
    store_secret_array_free(list, n);
    CHECK_INT(store_secret_list_all(s, &list, &n), STORE_OK);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(list[0].key_uid, k2.uid);
    store_secret_array_free(list, n);

    store_key_clear(&k);
    store_key_clear(&k2);
    store_account_clear(&a);
    store_account_clear(&b);
    store_close(s);
}

static void t_cap_per_key(void)
{
    store *s = open_fresh();
    CHECK(s);
    store_account a;
    store_key k;
    char bearer[65];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    store_shared_secret x;
    for (int i = 0; i < STORE_SHARED_SECRET_MAX; i++)
        CHECK_INT(store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA1, 0, i, &x), STORE_OK);
    CHECK_INT(store_secret_add(s, a.id, k.uid, STORE_SECRET_SHA1, 0, 9, &x), STORE_LIMIT);
    CHECK_INT(count_changes(s, STORE_CHANGE_SECRET_ADDED, NULL), STORE_SHARED_SECRET_MAX);
    store_shared_secret *list;
    size_t n;
    CHECK_INT(store_secret_list(s, k.uid, &list, &n), STORE_OK);
    CHECK_INT(n, STORE_SHARED_SECRET_MAX);
    store_secret_array_free(list, n);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(s);
}

/* Two connections adding at once never pass the cap (the key row lock). */
typedef struct racer {
    const char *where, *account, *key;
    int ok;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char *err = NULL;
    store *s = store_open(r->where, &err);
    store_free_err(err);
    for (int i = 0; s && i < STORE_SHARED_SECRET_MAX; i++) {
        store_shared_secret x;
        if (store_secret_add(s, r->account, r->key, STORE_SECRET_SHA1, 0, i, &x) == STORE_OK)
            r->ok++;
    }
    if (s)
        store_close(s);
    return NULL;
}

static void t_parallel_adds_keep_the_cap(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_account a;
    store_key k;
    char bearer[65];
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    racer r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (racer){where, a.id, k.uid, 0};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(r[0].ok + r[1].ok + r[2].ok, STORE_SHARED_SECRET_MAX);
    store_shared_secret *list;
    size_t n;
    CHECK_INT(store_secret_list(s, k.uid, &list, &n), STORE_OK);
    CHECK_INT(n, STORE_SHARED_SECRET_MAX);
    store_secret_array_free(list, n);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(s);
}

static void t_alg_names(void)
{
    CHECK_STR(store_secret_alg_name(STORE_SECRET_SHA1), "sha1");
    CHECK_STR(store_secret_alg_name(STORE_SECRET_SHA256), "sha256");
    CHECK_INT(store_secret_alg_parse("sha1"), STORE_SECRET_SHA1);
    CHECK_INT(store_secret_alg_parse("sha256"), STORE_SECRET_SHA256);
    CHECK_INT(store_secret_alg_parse("SHA1"), 0);
    CHECK_INT(store_secret_alg_parse(NULL), 0);
}

/* store copy carries the secrets as they are (same id, secret, time), once. */
static void t_copy_both_ways(void)
{
    tk_be = &tk_sqlite;
    store *a = open_fresh();
    tk_be = &tk_pg;
    store *b = open_fresh();
    tk_be = &tk_sqlite;
    store *c = open_fresh();
    CHECK(a && b && c);
    store_account acct;
    store_key k;
    char bearer[65];
    CHECK_INT(store_account_create(a, "a", 1, &acct), STORE_OK);
    CHECK_INT(store_key_create(a, acct.id, "k", 10, 1, &k, bearer), STORE_OK);
    store_shared_secret s1, s2;
    CHECK_INT(store_secret_add(a, acct.id, k.uid, STORE_SECRET_SHA1, 0, 5, &s1), STORE_OK);
    CHECK_INT(store_secret_add(a, acct.id, k.uid, STORE_SECRET_SHA256, 600, 6, &s2), STORE_OK);
    store_copy_counts n;
    char *err = NULL;
    CHECK_INT(store_copy(a, b, 10, &n, &err), STORE_OK);
    CHECK_INT(n.secrets, 2);
    CHECK_INT(n.copied, 4); /* account, key, two secrets */
    free(err);
    CHECK_INT(store_copy(a, b, 10, &n, &err), STORE_OK);
    CHECK_INT(n.copied, 0);
    CHECK_INT(n.secrets, 2);
    free(err);
    CHECK_INT(store_copy(b, c, 10, &n, &err), STORE_OK);
    CHECK_INT(n.secrets, 2);
    free(err);
    store_shared_secret *l;
    size_t m;
    CHECK_INT(store_secret_list(c, k.uid, &l, &m), STORE_OK);
    CHECK_INT(m, 2);
    if (m == 2) {
        CHECK_STR(l[0].id, s1.id);
        CHECK_STR(l[0].secret, s1.secret);
        CHECK_STR(l[1].secret, s2.secret);
        CHECK_INT(l[1].max_ttl, 600);
        CHECK_INT(l[1].alg, STORE_SECRET_SHA256);
    }
    store_secret_array_free(l, m);
    store_key_clear(&k);
    store_account_clear(&acct);
    store_close(a);
    store_close(b);
    store_close(c);
}

int main(void)
{
    TK_RUN_BOTH(t_add_list_delete);
    TK_RUN_BOTH(t_cap_per_key);
    TK_RUN_BOTH(t_parallel_adds_keep_the_cap);
    TK_RUN(t_alg_names);
    TK_RUN(t_copy_both_ways);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
