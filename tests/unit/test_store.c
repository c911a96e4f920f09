#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static store *open_mem(void)
{
    char *err = NULL;
    store *s = store_open(":memory:", &err);
    if (!s) {
        fprintf(stderr, "store_open: %s\n", err);
        store_free_err(err);
    }
    return s;
}

static void t_account_and_token(void)
{
    store *s = open_mem();
    CHECK(s);
    store_account a;
    CHECK_INT(store_account_create(s, "acme", 1000, &a), STORE_OK);
    CHECK(util_is_lower_hex(a.id, 32));
    store_token t;
    char tok[STORE_TOKEN_LEN + 1];
    CHECK_INT(store_token_create(s, a.id, "ci", STORE_PERM_READ, 0, 1000, &t, tok), STORE_OK);
    CHECK_INT(strlen(tok), 40);
    store_token got;
    CHECK_INT(store_token_by_secret(s, tok, strlen(tok), &got), STORE_OK);
    CHECK_STR(got.account_id, a.id);
    CHECK_INT(got.perms, STORE_PERM_READ);
    store_token_clear(&got);
    CHECK_INT(store_token_by_secret(s, "nope", 4, &got), STORE_NOT_FOUND);
    CHECK_INT(store_token_revoke(s, t.id, 2000), STORE_OK);
    CHECK_INT(store_token_revoke(s, t.id, 2000), STORE_NOT_FOUND);
    CHECK_INT(store_token_by_secret(s, tok, strlen(tok), &got), STORE_OK);
    CHECK_INT(got.revoked, 2000);
    store_token_clear(&got);
    /* a token for an unknown account is refused and nothing is written */
    store_token t2;
    char tok2[STORE_TOKEN_LEN + 1];
    CHECK_INT(store_token_create(s, "00000000000000000000000000000000", "", STORE_PERM_READ, 0, 1,
                                 &t2, tok2),
              STORE_NOT_FOUND);
    store_token *list;
    size_t n;
    CHECK_INT(store_token_list(s, NULL, &list, &n), STORE_OK);
    CHECK_INT(n, 1);
    store_token_array_free(list, n);
    store_token_clear(&t);
    store_account_clear(&a);
    store_close(s);
}

static void t_keys_crud_and_limit(void)
{
    store *s = open_mem();
    CHECK(s);
    store_account a, b;
    CHECK_INT(store_account_create(s, "a", 1, &a), STORE_OK);
    CHECK_INT(store_account_create(s, "b", 1, &b), STORE_OK);
    store_key k;
    char key[65];
    CHECK_INT(store_key_create(s, a.id, "one", 3, 5000, &k, key), STORE_OK);
    CHECK(util_is_lower_hex(key, 64));
    CHECK(util_is_lower_hex(k.uid, 32));
    char h[65];
    util_sha256_hex(key, 64, h);
    CHECK_STR(k.key_hash, h);
    store_key g;
    CHECK_INT(store_key_get(s, a.id, k.uid, &g), STORE_OK);
    CHECK_STR(g.name, "one");
    CHECK(memcmp(g.secret, k.secret, 32) == 0);
    store_key_clear(&g);
    /* other account cannot see it */
    CHECK_INT(store_key_get(s, b.id, k.uid, &g), STORE_NOT_FOUND);
    /* rename moves modified forward even at the same instant */
    CHECK_INT(store_key_rename(s, a.id, k.uid, "two", 5000, &g), STORE_OK);
    CHECK_STR(g.name, "two");
    CHECK(g.modified > 5000);
    CHECK_INT(g.created, 5000);
    store_key_clear(&g);
    CHECK_INT(store_key_rename(s, b.id, k.uid, "x", 6000, &g), STORE_NOT_FOUND);
    /* limit */
    store_key k2, k3, k4;
    char key2[65];
    CHECK_INT(store_key_create(s, a.id, "", 3, 1, &k2, key2), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "", 3, 1, &k3, key2), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "", 3, 1, &k4, key2), STORE_LIMIT);
    CHECK_INT(store_key_create(s, b.id, "", 3, 1, &k4, key2), STORE_OK);
    store_key *list;
    size_t n;
    CHECK_INT(store_key_list(s, a.id, &list, &n), STORE_OK);
    CHECK_INT(n, 3);
    store_key_array_free(list, n);
    /* delete returns the record and removes it */
    CHECK_INT(store_key_delete(s, a.id, k.uid, &g), STORE_OK);
    CHECK_STR(g.name, "two");
    store_key_clear(&g);
    CHECK_INT(store_key_delete(s, a.id, k.uid, &g), STORE_NOT_FOUND);
    CHECK_INT(store_key_by_uid(s, k.uid, &g), STORE_NOT_FOUND);
    store_key_clear(&k);
    store_key_clear(&k2);
    store_key_clear(&k3);
    store_key_clear(&k4);
    store_account_clear(&a);
    store_account_clear(&b);
    store_close(s);
}

static void t_revocations(void)
{
    store *s = open_mem();
    CHECK(s);
    bool r = true;
    CHECK_INT(store_revoke_check(s, "k1", "u1", &r), STORE_OK);
    CHECK(!r);
    CHECK_INT(store_revoke_add(s, "k1", "u1", 100), STORE_OK);
    CHECK_INT(store_revoke_add(s, "k1", "u1", 100), STORE_OK); /* idempotent */
    CHECK_INT(store_revoke_check(s, "k1", "u1", &r), STORE_OK);
    CHECK(r);
    CHECK_INT(store_revoke_check(s, "k2", "u1", &r), STORE_OK);
    CHECK(!r);
    size_t purged = 0;
    CHECK_INT(store_revoke_purge(s, 99, &purged), STORE_OK);
    CHECK_INT(purged, 0);
    CHECK_INT(store_revoke_purge(s, 100, &purged), STORE_OK);
    CHECK_INT(purged, 1);
    CHECK_INT(store_revoke_check(s, "k1", "u1", &r), STORE_OK);
    CHECK(!r);
    store_close(s);
}

/* PRAGMA user_version and the schema text of the SQLite file in dir (sqlite3 directly,
 * not through the store). */
static int schema_of(const char *dir, char *sql, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/turnkey.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int version = -1;
    size_t used = 0;
    sql[0] = '\0';
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE sql NOT NULL ORDER BY name", -1,
                           &st, NULL) != SQLITE_OK)
        goto out;
    while (sqlite3_step(st) == SQLITE_ROW && used < cap)
        used += (size_t)snprintf(sql + used, cap - used, "%s;\n", sqlite3_column_text(st, 0));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return version;
}

static int set_version(const char *dir, int v)
{
    char path[256], q[64];
    snprintf(path, sizeof path, "%s/turnkey.db", dir);
    snprintf(q, sizeof q, "PRAGMA user_version = %d", v);
    sqlite3 *db = NULL;
    int rc =
        sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, q, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(db);
    return rc ? 0 : -1;
}

/* Every kind of record survives a close/reopen; the reopen applies no migration (version
 * and schema text unchanged, and a second CREATE TABLE would have failed the open); a
 * store written by a newer binary is refused with a clear error. */
static void t_persistence_and_migrations(void)
{
    char dir[] = "/tmp/tk-store-XXXXXX";
    CHECK(mkdtemp(dir));
    char *err = NULL;
    store *s = store_open(dir, &err);
    CHECK(s);
    store_account a;
    store_token t;
    store_key k;
    char tok[STORE_TOKEN_LEN + 1], bearer[65];
    CHECK_INT(store_account_create(s, "p", 1, &a), STORE_OK);
    CHECK_INT(store_token_create(s, a.id, "t", STORE_PERM_READ, 0, 1, &t, tok), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    CHECK_INT(store_revoke_add(s, k.uid, "user-1", 5000000000), STORE_OK);
    store_close(s);
    static char schema1[8192], schema2[8192];
    int v1 = schema_of(dir, schema1, sizeof schema1);
    CHECK(v1 >= 1);
    CHECK(strstr(schema1, "CREATE TABLE turn_keys"));

    for (int round = 0; round < 2; round++) { /* reopen twice: still no migration */
        s = store_open(dir, &err);
        CHECK(s);
        store_close(s);
    }
    CHECK_INT(schema_of(dir, schema2, sizeof schema2), v1);
    CHECK_STR(schema2, schema1);

    s = store_open(dir, &err);
    CHECK(s);
    store_account g;
    CHECK_INT(store_account_get(s, a.id, &g), STORE_OK);
    CHECK_STR(g.name, "p");
    store_account_clear(&g);
    store_token gt;
    CHECK_INT(store_token_by_secret(s, tok, strlen(tok), &gt), STORE_OK);
    CHECK_STR(gt.id, t.id);
    CHECK_INT(gt.perms, STORE_PERM_READ);
    store_token_clear(&gt);
    store_key gk;
    CHECK_INT(store_key_by_uid(s, k.uid, &gk), STORE_OK);
    CHECK(memcmp(gk.secret, k.secret, STORE_SECRET_LEN) == 0);
    CHECK_STR(gk.key_hash, k.key_hash);
    store_key_clear(&gk);
    bool revoked = false;
    CHECK_INT(store_revoke_check(s, k.uid, "user-1", &revoked), STORE_OK);
    CHECK(revoked);
    store_close(s);

    /* a schema from a newer binary: refused, nothing changed */
    CHECK_INT(set_version(dir, v1 + 7), 0);
    s = store_open(dir, &err);
    CHECK(!s);
    CHECK(err && strstr(err, "newer than this binary"));
    store_free_err(err);
    err = NULL;
    CHECK_INT(schema_of(dir, schema2, sizeof schema2), v1 + 7);
    CHECK_STR(schema2, schema1);

    store_key_clear(&k);
    store_token_clear(&t);
    store_account_clear(&a);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    /* an unusable data directory gives a clear error */
    s = store_open("/proc/version/nope", &err);
    CHECK(!s);
    CHECK(err && strstr(err, "/proc/version/nope"));
    store_free_err(err);
}

static void t_perms(void)
{
    char buf[32];
    CHECK_INT(store_perms_parse("calls:read"), STORE_PERM_READ);
    CHECK_INT(store_perms_parse("calls:read,calls:write"), STORE_PERM_READ | STORE_PERM_WRITE);
    CHECK_INT(store_perms_parse("calls:write"), STORE_PERM_WRITE);
    CHECK_INT(store_perms_parse("calls:read,"), 0);
    CHECK_INT(store_perms_parse("calls:admin"), 0);
    CHECK_INT(store_perms_parse(""), 0);
    store_perms_format(STORE_PERM_READ | STORE_PERM_WRITE, buf, sizeof buf);
    CHECK_STR(buf, "calls:read,calls:write");
}

int main(void)
{
    TK_RUN(t_account_and_token);
    TK_RUN(t_keys_crud_and_limit);
    TK_RUN(t_revocations);
    TK_RUN(t_persistence_and_migrations);
    TK_RUN(t_perms);
    return tk_test_summary();
}
