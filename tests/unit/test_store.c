#include <pthread.h>
#include <sqlite3.h>
#include <time.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define K1 "00000000000000000000000000000001"
#define K2 "00000000000000000000000000000002"

static void t_account_and_token(void)
{
    store *s = open_fresh();
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
    store *s = open_fresh();
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
    store *s = open_fresh();
    CHECK(s);
    bool r = true;
    CHECK_INT(store_revoke_check(s, K1, "u1", &r), STORE_OK);
    CHECK(!r);
    CHECK_INT(store_revoke_add(s, K1, "u1", 100), STORE_OK);
    CHECK_INT(store_revoke_add(s, K1, "u1", 100), STORE_OK); /* idempotent */
    CHECK_INT(store_revoke_check(s, K1, "u1", &r), STORE_OK);
    CHECK(r);
    CHECK_INT(store_revoke_check(s, K2, "u1", &r), STORE_OK);
    CHECK(!r);
    CHECK_INT(store_revoke_add(s, K2, "u2", 200), STORE_OK);
    /* not an id: names nothing, stores nothing */
    CHECK_INT(store_revoke_add(s, "k1", "u1", 100), STORE_NOT_FOUND);
    CHECK_INT(store_revoke_check(s, "k1", "u1", &r), STORE_OK);
    CHECK(!r);
    size_t purged = 0;
    CHECK_INT(store_revoke_purge(s, 99, &purged), STORE_OK);
    CHECK_INT(purged, 0);
    CHECK_INT(store_revoke_purge(s, 100, &purged), STORE_OK);
    CHECK_INT(purged, 1);
    CHECK_INT(store_revoke_check(s, K1, "u1", &r), STORE_OK);
    CHECK(!r);
    CHECK_INT(store_revoke_check(s, K2, "u2", &r), STORE_OK);
    CHECK(r);
    store_close(s);
}

/* Every kind of record (a revoked token too) is there after the store is closed and opened
 * again, on either backend. */
static void t_reopen_keeps_everything(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_account a;
    store_token t, t2;
    store_key k;
    char tok[STORE_TOKEN_LEN + 1], tok2[STORE_TOKEN_LEN + 1], bearer[65];
    CHECK_INT(store_account_create(s, "p", 1, &a), STORE_OK);
    CHECK_INT(store_token_create(s, a.id, "t", STORE_PERM_WRITE, 99, 1, &t, tok), STORE_OK);
    CHECK_INT(store_token_create(s, a.id, "t2", STORE_PERM_READ, 0, 2, &t2, tok2), STORE_OK);
    CHECK_INT(store_token_revoke(s, t2.id, 3), STORE_OK);
    CHECK_INT(store_key_create(s, a.id, "k", 10, 1, &k, bearer), STORE_OK);
    CHECK_INT(store_revoke_add(s, k.uid, "user-1", 5000000000), STORE_OK);
    store_close(s);
    s = open_at(where);
    CHECK(s);
    store_token gt;
    CHECK_INT(store_token_by_secret(s, tok, strlen(tok), &gt), STORE_OK);
    CHECK_STR(gt.name, "t");
    CHECK_INT(gt.expires, 99);
    CHECK_INT(gt.revoked, 0);
    store_token_clear(&gt);
    CHECK_INT(store_token_by_secret(s, tok2, strlen(tok2), &gt), STORE_OK);
    CHECK_INT(gt.revoked, 3);
    store_token_clear(&gt);
    store_key gk;
    CHECK_INT(store_key_get(s, a.id, k.uid, &gk), STORE_OK);
    CHECK(memcmp(gk.secret, k.secret, STORE_SECRET_LEN) == 0);
    CHECK_STR(gk.key_hash, k.key_hash);
    CHECK_STR(gk.name, "k");
    store_key_clear(&gk);
    bool revoked = false;
    CHECK_INT(store_revoke_check(s, k.uid, "user-1", &revoked), STORE_OK);
    CHECK(revoked);
    CHECK_INT(store_revoke_check(s, k.uid, "user-2", &revoked), STORE_OK);
    CHECK(!revoked);
    store_close(s);
    store_key_clear(&k);
    store_token_clear(&t);
    store_token_clear(&t2);
    store_account_clear(&a);
}

/* Two "nodes" (two store handles on one database), two threads each, creating keys for one
 * account at once: exactly max_keys succeed, every success is stored, nothing more. */
#define PAR_THREADS 4
#define PAR_TRIES 10
#define PAR_MAX 7

typedef struct par_arg {
    store *s;
    const char *account;
    int ok, limit, other;
    char uids[PAR_TRIES][STORE_ID_LEN + 1];
} par_arg;

static void *par_create(void *p)
{
    par_arg *a = p;
    for (int i = 0; i < PAR_TRIES; i++) {
        store_key k;
        char bearer[65];
        int rc = store_key_create(a->s, a->account, "p", PAR_MAX, 1, &k, bearer);
        if (rc == STORE_OK) {
            snprintf(a->uids[a->ok++], STORE_ID_LEN + 1, "%s", k.uid);
            store_key_clear(&k);
        } else if (rc == STORE_LIMIT) {
            a->limit++;
        } else {
            a->other++;
        }
    }
    return NULL;
}

static void t_parallel_creates_keep_the_limit(void)
{
    const char *where = fresh_store();
    store *n1 = open_at(where), *n2 = open_at(where);
    CHECK(n1 && n2);
    store_account a;
    CHECK_INT(store_account_create(n1, "par", 1, &a), STORE_OK);
    static par_arg args[PAR_THREADS];
    pthread_t th[PAR_THREADS];
    for (int i = 0; i < PAR_THREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].s = i % 2 ? n2 : n1;
        args[i].account = a.id;
        CHECK(pthread_create(&th[i], NULL, par_create, &args[i]) == 0);
    }
    int ok = 0, limit = 0, other = 0;
    for (int i = 0; i < PAR_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        limit += args[i].limit;
        other += args[i].other;
    }
    CHECK_INT(other, 0);
    CHECK_INT(ok, PAR_MAX);
    CHECK_INT(limit, PAR_THREADS * PAR_TRIES - PAR_MAX);
    store_key *list;
    size_t n;
    CHECK_INT(store_key_list(n2, a.id, &list, &n), STORE_OK);
    CHECK_INT(n, PAR_MAX);
    for (int i = 0; i < PAR_THREADS; i++)
        for (int j = 0; j < args[i].ok; j++) {
            bool found = false;
            for (size_t m = 0; m < n; m++)
                found = found || !strcmp(list[m].uid, args[i].uids[j]);
            CHECK(found);
        }
    store_key_array_free(list, n);
    store_account_clear(&a);
    store_close(n1);
    store_close(n2);
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

/* --- PostgreSQL only ------------------------------------------------------------------ */

typedef struct blocked_create {
    store *s;
    const char *account;
    int rc;
} blocked_create;

static void *create_one(void *p)
{
    blocked_create *b = p;
    store_key k;
    char bearer[65];
    b->rc = store_key_create(b->s, b->account, "mid", 10, 1, &k, bearer);
    if (b->rc == STORE_OK)
        store_key_clear(&k);
    return NULL;
}

/* Ends the store's session that waits on a lock; true once one was ended. */
static bool terminate_waiting(PGconn *admin)
{
    PGresult *r = PQexec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'turnkey' AND wait_event_type = 'Lock' "
                                "AND datname = current_database()");
    bool done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    return done;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pg_ctl(const char *verb)
{
    const char *dir = tk_pg_dir[0] ? tk_pg_dir : getenv("TK_PG_DIR");
    char cmd[400];
    if (!dir)
        return -1;
    snprintf(cmd, sizeof cmd, "tests/pg.sh %s %s", verb, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The database goes away in the middle of a key creation (its session is ended while the
 * transaction waits on the account row), then the whole server stops: each call fails with
 * STORE_ERROR promptly (never hangs), no partial record is left, and the store reconnects
 * by itself once the server is back. */
static void t_database_gone_fails_fast_and_recovers(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_account a;
    CHECK_INT(store_account_create(s, "gone", 1, &a), STORE_OK);
    PGconn *holder = PQconnectdb(where), *admin = PQconnectdb(where);
    CHECK(PQstatus(holder) == CONNECTION_OK && PQstatus(admin) == CONNECTION_OK);
    char sql[160];
    snprintf(sql, sizeof sql, "BEGIN; SELECT 1 FROM accounts WHERE id = '%s' FOR UPDATE", a.id);
    PQclear(PQexec(holder, sql));
    blocked_create b = {.s = s, .account = a.id, .rc = 99};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, create_one, &b) == 0);
    bool ended = false;
    for (int i = 0; i < 600 && !ended; i++) { /* up to 30 s for the create to block */
        ended = terminate_waiting(admin);
        if (!ended)
            usleep(50000);
    }
    pthread_join(th, NULL);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    PQfinish(admin);
    CHECK(ended);
    CHECK_INT(b.rc, STORE_ERROR);
    store_key *list;
    size_t n;
    CHECK_INT(store_key_list(s, a.id, &list, &n), STORE_OK); /* reconnected */
    CHECK_INT(n, 0);
    store_key_array_free(list, n);

    CHECK_INT(pg_ctl("halt"), 0);
    int64_t t0 = mono_ms();
    store_key k;
    char bearer[65];
    store_account g;
    int rc_create = store_key_create(s, a.id, "x", 10, 1, &k, bearer);
    int rc_get = store_account_get(s, a.id, &g);
    int64_t took = mono_ms() - t0;
    CHECK_INT(pg_ctl("resume"), 0);
    CHECK_INT(rc_create, STORE_ERROR);
    CHECK_INT(rc_get, STORE_ERROR);
    CHECK(took < 20000); /* "never a hang": bounded by connect_timeout, not a speed target */
    CHECK_INT(store_account_get(s, a.id, &g), STORE_OK);
    store_account_clear(&g);
    CHECK_INT(store_key_list(s, a.id, &list, &n), STORE_OK);
    CHECK_INT(n, 0);
    store_key_array_free(list, n);
    CHECK_INT(store_key_create(s, a.id, "x", 10, 1, &k, bearer), STORE_OK);
    store_key_clear(&k);
    store_account_clear(&a);
    store_close(s);
}

static int pg_schema_version(const char *where)
{
    PGconn *c = PQconnectdb(where);
    PGresult *r = PQexec(c, "SELECT version FROM schema_version");
    int v =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Migrations are keyed on schema_version: applied once, never again on reopen; a schema
 * from a newer binary is refused with a clear error and left as it is. */
static void t_pg_migrations(void)
{
    tk_be = &tk_pg;
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    store_close(s);
    int v1 = pg_schema_version(where);
    CHECK(v1 >= 1);
    for (int i = 0; i < 2; i++) {
        CHECK((s = open_at(where)) != NULL);
        store_close(s);
    }
    CHECK_INT(pg_schema_version(where), v1);
    PGconn *c = PQconnectdb(where);
    PQclear(PQexec(c, "UPDATE schema_version SET version = version + 7"));
    PQfinish(c);
    char *err = NULL;
    s = store_open(where, &err);
    CHECK(!s);
    CHECK(err && strstr(err, "newer than this binary"));
    store_free_err(err);
    CHECK_INT(pg_schema_version(where), v1 + 7);
    /* an unreachable server: a clear error naming it, without its password */
    err = NULL;
    s = store_open("postgresql://u:sekrit@127.0.0.1:1/x", &err);
    CHECK(!s);
    CHECK(err && strstr(err, "127.0.0.1:1") && !strstr(err, "sekrit"));
    store_free_err(err);
    tk_be = &tk_sqlite;
}

/* How a location picks its backend. */
static void t_locations(void)
{
    CHECK(store_is_remote("postgres://h/db"));
    CHECK(store_is_remote("postgresql://h/db"));
    CHECK(!store_is_remote("./var"));
    CHECK(!store_is_remote("sqlite:/tmp/x.db"));
    CHECK(store_exists("postgresql://h/db"));
    char *d = store_describe("postgresql://me:pw@h:5432/db");
    CHECK_STR(d, "postgresql://me:***@h:5432/db");
    free(d);
    char *err = NULL;
    CHECK(!store_open("mysql://h/db", &err));
    CHECK(err && strstr(err, "unknown store URL scheme"));
    store_free_err(err);
    err = NULL;
    CHECK(!store_open("sqlite:", &err));
    CHECK(err && strstr(err, "needs a file name"));
    store_free_err(err);
    /* sqlite:FILE is that file */
    char dir[] = "/tmp/tk-store-XXXXXX";
    CHECK(mkdtemp(dir));
    char loc[160], file[128];
    snprintf(file, sizeof file, "%s/other.db", dir);
    snprintf(loc, sizeof loc, "sqlite:%s", file);
    CHECK(!store_exists(loc));
    store *s = open_at(loc);
    CHECK(s);
    store_close(s);
    CHECK(store_exists(loc));
    CHECK(access(file, F_OK) == 0);
    snprintf(tk_locs[tk_n_locs++], 512, "%s", dir); /* removed at the end */
}

typedef struct seeded {
    store_account a, b;
    store_token t, tr;
    store_key k1, k2;
    char tok[STORE_TOKEN_LEN + 1], tokr[STORE_TOKEN_LEN + 1];
} seeded;

static int seed(store *s, seeded *d, int64_t now)
{
    char bearer[65];
    int rc = store_account_create(s, "a", 1, &d->a) | store_account_create(s, "b", 2, &d->b) |
             store_token_create(s, d->a.id, "t", STORE_PERM_READ, 0, 3, &d->t, d->tok) |
             store_token_create(s, d->b.id, "r", STORE_PERM_WRITE, 0, 4, &d->tr, d->tokr) |
             store_token_revoke(s, d->tr.id, 5) |
             store_key_create(s, d->a.id, "k1", 10, 6, &d->k1, bearer) |
             store_key_create(s, d->b.id, "k2", 10, 7, &d->k2, bearer) |
             store_revoke_add(s, d->k1.uid, "live", now + 3600) |
             store_revoke_add(s, d->k2.uid, "expired", now - 1);
    return rc;
}

static void seeded_clear(seeded *d)
{
    store_account_clear(&d->a);
    store_account_clear(&d->b);
    store_token_clear(&d->t);
    store_token_clear(&d->tr);
    store_key_clear(&d->k1);
    store_key_clear(&d->k2);
}

/* SQLite -> PostgreSQL -> SQLite: counts verified, a repeated copy writes nothing, and the
 * last store answers like the first (token secret, key secret, live revocation). */
static void t_copy_sqlite_to_pg_and_back(void)
{
    int64_t now = 1700000000;
    tk_be = &tk_sqlite;
    store *src = open_fresh();
    tk_be = &tk_pg;
    store *mid = open_fresh();
    tk_be = &tk_sqlite;
    store *back = open_fresh();
    CHECK(src && mid && back);
    static seeded d;
    CHECK_INT(seed(src, &d, now), STORE_OK);
    store_copy_counts c;
    char *err = NULL;
    CHECK_INT(store_copy(src, mid, now, &c, &err), STORE_OK);
    CHECK_INT(c.accounts, 2);
    CHECK_INT(c.tokens, 2);
    CHECK_INT(c.keys, 2);
    CHECK_INT(c.revocations, 1); /* the expired one is not live */
    CHECK_INT(c.copied, 7);
    CHECK_INT(store_copy(src, mid, now, &c, &err), STORE_OK); /* idempotent */
    CHECK_INT(c.copied, 0);
    CHECK_INT(c.accounts + c.tokens + c.keys + c.revocations, 7);
    CHECK_INT(store_copy(mid, back, now, &c, &err), STORE_OK);
    CHECK_INT(c.copied, 7);
    store_token t;
    CHECK_INT(store_token_by_secret(back, d.tok, strlen(d.tok), &t), STORE_OK);
    CHECK_STR(t.account_id, d.a.id);
    store_token_clear(&t);
    CHECK_INT(store_token_by_secret(back, d.tokr, strlen(d.tokr), &t), STORE_OK);
    CHECK_INT(t.revoked, 5);
    store_token_clear(&t);
    store_key k;
    CHECK_INT(store_key_get(back, d.b.id, d.k2.uid, &k), STORE_OK);
    CHECK(memcmp(k.secret, d.k2.secret, STORE_SECRET_LEN) == 0);
    store_key_clear(&k);
    bool r = false;
    CHECK_INT(store_revoke_check(back, d.k1.uid, "live", &r), STORE_OK);
    CHECK(r);
    CHECK_INT(store_revoke_check(back, d.k2.uid, "expired", &r), STORE_OK);
    CHECK(!r);
    /* a target that disagrees (same id, other content) is reported, not overwritten */
    store_key_rename(mid, d.a.id, d.k1.uid, "changed", 99, &k);
    store_key_clear(&k);
    CHECK_INT(store_copy(src, mid, now, &c, &err), STORE_ERROR);
    CHECK(err && strstr(err, d.k1.uid));
    free(err);
    seeded_clear(&d);
    store_close(src);
    store_close(mid);
    store_close(back);
}

static void t_perms(void)
{
    char buf[64];
    CHECK_INT(store_perms_parse("calls:read"), STORE_PERM_READ);
    CHECK_INT(store_perms_parse("analytics:read"), STORE_PERM_ANALYTICS_READ);
    CHECK_INT(store_perms_parse("calls:read,analytics:reads"), 0);
    CHECK_INT(store_perms_parse("calls:read,calls:write"), STORE_PERM_READ | STORE_PERM_WRITE);
    CHECK_INT(store_perms_parse("calls:write"), STORE_PERM_WRITE);
    CHECK_INT(store_perms_parse("calls:read,"), 0);
    CHECK_INT(store_perms_parse("calls:admin"), 0);
    CHECK_INT(store_perms_parse(""), 0);
    store_perms_format(STORE_PERM_READ | STORE_PERM_WRITE, buf, sizeof buf);
    CHECK_STR(buf, "calls:read,calls:write");
    store_perms_format(STORE_PERM_AUDIT_READ | STORE_PERM_ANALYTICS_READ, buf, sizeof buf);
    CHECK_STR(buf, "audit:read,analytics:read");
    store_perms_format(STORE_PERM_READ | STORE_PERM_WRITE | STORE_PERM_AUDIT_READ |
                           STORE_PERM_ANALYTICS_READ,
                       buf, sizeof buf);
    CHECK_STR(buf, "calls:read,calls:write,audit:read,analytics:read");
}

int main(void)
{
    TK_RUN_BOTH(t_account_and_token);
    TK_RUN_BOTH(t_keys_crud_and_limit);
    TK_RUN_BOTH(t_revocations);
    TK_RUN_BOTH(t_reopen_keeps_everything);
    TK_RUN_BOTH(t_parallel_creates_keep_the_limit);
    TK_RUN_ON(&tk_pg, t_database_gone_fails_fast_and_recovers);
    TK_RUN(t_persistence_and_migrations);
    TK_RUN(t_pg_migrations);
    TK_RUN(t_locations);
    TK_RUN(t_copy_sqlite_to_pg_and_back);
    TK_RUN(t_perms);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
