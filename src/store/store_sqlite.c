/* store_sqlite: the embedded default backend. One connection guarded by a mutex, WAL
 * journal with synchronous=FULL (an acknowledged write survives kill -9 and power loss),
 * every write in one IMMEDIATE transaction, schema migrations keyed on user_version. This
 * file: schema, connection, statement helpers (sqlite_internal.h), accounts, tokens and
 * keys; store_sqlite_feed.c: revocations and the change feed; store_sqlite_audit.c: the
 * audit log. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#include "sqlite_internal.h"

/* Migrations: index i brings the schema from version i to i+1. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, perms INTEGER NOT NULL,"
    "  created INTEGER NOT NULL, expires INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE turn_keys ("
    "  uid TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL, key_hash TEXT NOT NULL, secret BLOB NOT NULL,"
    "  created INTEGER NOT NULL, modified INTEGER NOT NULL);"
    "CREATE INDEX turn_keys_by_account ON turn_keys(account_id);"
    "CREATE TABLE revocations ("
    "  key_uid TEXT NOT NULL, username_hash TEXT NOT NULL, expires INTEGER NOT NULL,"
    "  PRIMARY KEY (key_uid, username_hash));"
    "CREATE INDEX revocations_by_expiry ON revocations(expires);",
    /* 2: the change log the nodes' caches follow */
    "CREATE TABLE changes ("
    "  rev INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind INTEGER NOT NULL,"
    "  key_uid TEXT NOT NULL, username_hash TEXT NOT NULL DEFAULT '',"
    "  expires INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX changes_by_at ON changes(at);",
    /* 3: the audit log (issue 12) */
    "CREATE TABLE audit_log ("
    "  id TEXT PRIMARY KEY, account_id TEXT NOT NULL, at INTEGER NOT NULL,"
    "  action TEXT NOT NULL, result INTEGER NOT NULL, actor_type TEXT NOT NULL,"
    "  actor_id TEXT NOT NULL, actor_ip TEXT NOT NULL, interface TEXT NOT NULL,"
    "  resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,"
    "  old_value TEXT, new_value TEXT, metadata TEXT);"
    "CREATE INDEX audit_log_by_account ON audit_log(account_id, at);",
    /* 4: usage minute and hour rows (issue 14) */
    "CREATE TABLE usage_minute ("
    "  minute INTEGER NOT NULL, account_id TEXT NOT NULL, key_uid TEXT NOT NULL,"
    "  custom_id TEXT NOT NULL, username TEXT NOT NULL, node TEXT NOT NULL,"
    "  egress INTEGER NOT NULL, ingress INTEGER NOT NULL, alloc_ms INTEGER NOT NULL,"
    "  peak INTEGER NOT NULL,"
    "  PRIMARY KEY (minute, account_id, key_uid, custom_id, username, node));"
    "CREATE INDEX usage_minute_by_account ON usage_minute(account_id, minute);"
    "CREATE TABLE usage_hour ("
    "  minute INTEGER NOT NULL, account_id TEXT NOT NULL, key_uid TEXT NOT NULL,"
    "  custom_id TEXT NOT NULL, username TEXT NOT NULL, node TEXT NOT NULL,"
    "  egress INTEGER NOT NULL, ingress INTEGER NOT NULL, alloc_ms INTEGER NOT NULL,"
    "  peak INTEGER NOT NULL,"
    "  PRIMARY KEY (minute, account_id, key_uid, custom_id, username, node));"
    "CREATE INDEX usage_hour_by_account ON usage_hour(account_id, minute);",
    /* 5: shared secrets (issue 15) */
    "CREATE TABLE shared_secrets ("
    "  id TEXT PRIMARY KEY, key_uid TEXT NOT NULL REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL, secret TEXT NOT NULL, alg INTEGER NOT NULL,"
    "  max_ttl INTEGER NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX shared_secrets_by_key ON shared_secrets(key_uid);",
    /* 6: webhook queue (issue 14) */
    "CREATE TABLE webhooks ("
    "  account_id TEXT PRIMARY KEY, url TEXT NOT NULL, events INTEGER NOT NULL,"
    "  secret TEXT NOT NULL, created INTEGER NOT NULL, modified INTEGER NOT NULL);"
    "CREATE TABLE webhook_queue ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,"
    "  kind INTEGER NOT NULL, created INTEGER NOT NULL, body TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,"
    "  lease_until INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX webhook_queue_due ON webhook_queue(next_at);"
    "CREATE INDEX webhook_queue_by_account ON webhook_queue(account_id, seq);",
    /* 7: key policies and budget states (issue 14 §4) */
    "CREATE TABLE key_policies ("
    "  key_uid TEXT PRIMARY KEY REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL, policy TEXT NOT NULL, modified INTEGER NOT NULL);"
    "CREATE TABLE budgets ("
    "  key_uid TEXT NOT NULL REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  custom_id TEXT NOT NULL, period INTEGER NOT NULL, period_start INTEGER NOT NULL,"
    "  limit_bytes INTEGER NOT NULL, period_end INTEGER NOT NULL,"
    "  level INTEGER NOT NULL DEFAULT 0, tripped INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_uid, custom_id, period, period_start, limit_bytes));"
    "CREATE INDEX budgets_by_end ON budgets(period_end);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store__sqlite_exec(sq *q, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "sqlite: %s (%s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return STORE_ERROR;
    }
    return STORE_OK;
}

static int migrate(sq *q, char **err)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (store__sqlite_exec(q, "BEGIN IMMEDIATE") != STORE_OK)
        goto fail;
    if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto rollback;
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version > N_MIGRATIONS) {
        *err = util_xasprintf("store schema version %d is newer than this binary (%d)", version,
                              N_MIGRATIONS);
        store__sqlite_exec(q, "ROLLBACK");
        return STORE_ERROR;
    }
    for (int v = version; v < N_MIGRATIONS; v++) {
        if (store__sqlite_exec(q, migrations[v]) != STORE_OK)
            goto rollback;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (store__sqlite_exec(q, sql) != STORE_OK)
            goto rollback;
        log_debug("store", "applied schema migration %d", v + 1);
    }
    if (store__sqlite_exec(q, "COMMIT") != STORE_OK)
        goto rollback;
    return STORE_OK;
rollback:
    sqlite3_finalize(st);
    store__sqlite_exec(q, "ROLLBACK");
fail:
    *err = util_xasprintf("store migration failed: %s", sqlite3_errmsg(q->db));
    return STORE_ERROR;
}

static void sq_close(void *ctx)
{
    sq *q = ctx;
    if (!q)
        return;
    for (int i = 0; i < q->n_cache; i++)
        sqlite3_finalize(q->cache[i].st);
    sqlite3_close_v2(q->db);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

bool store__sqlite_exists(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0 && S_ISREG(st.st_mode);
}

/* Opens (creating) the SQLite file; dir, when not NULL, is its data directory, created if
 * absent. */
void *store__sqlite_open(const char *file, const char *dir, char **err)
{
    const char *path = file;
    sq *q = util_xcalloc(1, sizeof *q);
    log_limiter_init(&q->rl);
    pthread_mutex_init(&q->mu, NULL);
    if (dir && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *err = util_xasprintf("cannot create data directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
        *err = util_xasprintf("cannot open %s: %s", path,
                              q->db ? sqlite3_errmsg(q->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 10000);
    if (store__sqlite_exec(q, "PRAGMA journal_mode=WAL") != STORE_OK ||
        store__sqlite_exec(q, "PRAGMA synchronous=FULL") != STORE_OK ||
        store__sqlite_exec(q, "PRAGMA foreign_keys=ON") != STORE_OK) {
        *err = util_xasprintf("cannot configure %s: %s", path, sqlite3_errmsg(q->db));
        goto fail;
    }
    if (migrate(q, err) != STORE_OK)
        goto fail;
    return q;
fail:
    sq_close(q);
    return NULL;
}

/* --- statement helpers --------------------------------------------------------------- */

sqlite3_stmt *store__sqlite_prep(sq *q, const char *sql)
{
    for (int i = 0; i < q->n_cache; i++)
        if (q->cache[i].sql == sql)
            return q->cache[i].st;
    sqlite3_stmt *st = NULL;
    unsigned flags = q->n_cache < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(q->db, sql, -1, flags, &st, NULL) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "prepare failed: %s (%s)", sqlite3_errmsg(q->db), sql);
        return NULL;
    }
    if (q->n_cache < STMT_CACHE) {
        q->cache[q->n_cache].sql = sql;
        q->cache[q->n_cache].st = st;
        q->n_cache++;
    }
    return st;
}

/* Done with a statement from store__sqlite_prep(): reset it for its next use (or free an uncached one). */
void store__sqlite_release(sq *q, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < q->n_cache; i++)
        if (q->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

void store__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

const char *store__sqlite_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

void store__sqlite_copy_id(char dst[STORE_ID_LEN + 1], const char *src)
{
    snprintf(dst, STORE_ID_LEN + 1, "%s", src);
}

/* Runs a single-statement write (already bound) and reports rows changed. */
int store__sqlite_step_done(sq *q, sqlite3_stmt *st, int *changes)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        log_error_rl(&q->rl, "store", "write failed: %s", sqlite3_errmsg(q->db));
        return STORE_ERROR;
    }
    if (changes)
        *changes = sqlite3_changes(q->db);
    return STORE_OK;
}

/* The purges: one `DELETE … WHERE column < ?1` (or <=) statement, t bound as ?1, under the
 * lock; *deleted receives the rows removed. */
int store__sqlite_delete_before(sq *q, const char *sql, int64_t t, size_t *deleted)
{
    int rc = STORE_ERROR, changes = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = store__sqlite_prep(q, sql);
    if (st) {
        sqlite3_bind_int64(st, 1, t);
        rc = store__sqlite_step_done(q, st, &changes);
    }
    if (deleted)
        *deleted = rc == STORE_OK ? (size_t)changes : 0;
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Records a change in the open transaction (the writer holds the database's write lock, so
 * revisions commit in order). */
int store__sqlite_log_change(sq *q, int kind, const char *key_uid, const char *hash,
                             int64_t expires)
{
    sqlite3_stmt *st =
        store__sqlite_prep(q, "INSERT INTO changes(at, kind, key_uid, username_hash, expires) "
                              "VALUES (CAST(strftime('%s','now') AS INTEGER), ?, ?, ?, ?)");
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_int(st, 1, kind);
    store__sqlite_bind_text(st, 2, key_uid);
    store__sqlite_bind_text(st, 3, hash ? hash : "");
    sqlite3_bind_int64(st, 4, expires);
    int rc = store__sqlite_step_done(q, st, NULL);
    store__sqlite_release(q, st);
    return rc;
}

/* --- accounts ------------------------------------------------------------------------ */

static int sq_account_create(void *ctx, const store_account *a)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st =
        store__sqlite_prep(q, "INSERT INTO accounts(id, name, created) VALUES (?,?,?)");
    if (!st)
        goto out;
    store__sqlite_bind_text(st, 1, a->id);
    store__sqlite_bind_text(st, 2, a->name);
    sqlite3_bind_int64(st, 3, a->created);
    rc = store__sqlite_step_done(q, st, NULL);
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void read_account(sqlite3_stmt *st, store_account *a)
{
    store__sqlite_copy_id(a->id, store__sqlite_col_text(st, 0));
    a->name = util_xstrdup(store__sqlite_col_text(st, 1));
    a->created = sqlite3_column_int64(st, 2);
}

int store__sqlite_get_one(sq *q, const char *sql, const char *param, store__sqlite_row_fn rd,
                          void *out)
{
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = store__sqlite_prep(q, sql);
    if (!st)
        goto out;
    store__sqlite_bind_text(st, 1, param);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        rd(st, out);
        rc = STORE_OK;
    } else if (r == SQLITE_DONE) {
        rc = STORE_NOT_FOUND;
    }
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void rd_account(sqlite3_stmt *st, void *e)
{
    read_account(st, e);
}

static int sq_account_get(void *ctx, const char *id, store_account *out)
{
    return store__sqlite_get_one(ctx, "SELECT id, name, created FROM accounts WHERE id = ?", id,
                                 rd_account, out);
}

/* Generic "all rows" read under the lock, with an optional text parameter: rd fills each
 * element of an array of elem_size. On failure the rows read so far are released with
 * free_arr and *out is NULL. */
int store__sqlite_collect(sqlite3_stmt *st, size_t elem_size, store__sqlite_row_fn rd, void **arr,
                          size_t *len)
{
    size_t cap = *len;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 16;
            *arr = util_xrealloc(*arr, cap * elem_size);
        }
        char *e = (char *)*arr + *len * elem_size;
        memset(e, 0, elem_size);
        rd(st, e);
        (*len)++;
    }
    return r;
}

int store__sqlite_get_all(sq *q, const char *sql, const char *param, size_t elem_size,
                          store__sqlite_row_fn rd, void (*free_arr)(void *arr, size_t n),
                          void **out, size_t *n)
{
    size_t len = 0;
    void *arr = util_xcalloc(16, elem_size);
    int rc = STORE_ERROR, r = SQLITE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = store__sqlite_prep(q, sql);
    if (st) {
        if (param)
            store__sqlite_bind_text(st, 1, param);
        r = store__sqlite_collect(st, elem_size, rd, &arr, &len);
        if (r == SQLITE_DONE)
            rc = STORE_OK;
        else
            log_error_rl(&q->rl, "store", "read failed: %s", sqlite3_errmsg(q->db));
    }
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    if (rc != STORE_OK) {
        free_arr(arr, len);
        arr = NULL;
        len = 0;
    }
    *out = arr;
    *n = len;
    return rc;
}

static void free_accounts(void *arr, size_t n)
{
    store_account_array_free(arr, n);
}

static int sq_account_list(void *ctx, store_account **out, size_t *n)
{
    return store__sqlite_get_all(
        ctx, "SELECT id, name, created FROM accounts ORDER BY created, rowid", NULL,
        sizeof(store_account), rd_account, free_accounts, (void **)out, n);
}

/* --- tokens -------------------------------------------------------------------------- */

static int sq_token_create(void *ctx, const store_token *t)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st =
        store__sqlite_prep(q, "INSERT INTO tokens(id, account_id, name, token_hash, perms, "
                              "created, expires, revoked) VALUES (?,?,?,?,?,?,?,?)");
    if (!st)
        goto out;
    store__sqlite_bind_text(st, 1, t->id);
    store__sqlite_bind_text(st, 2, t->account_id);
    store__sqlite_bind_text(st, 3, t->name);
    store__sqlite_bind_text(st, 4, t->token_hash);
    sqlite3_bind_int(st, 5, (int)t->perms);
    sqlite3_bind_int64(st, 6, t->created);
    sqlite3_bind_int64(st, 7, t->expires);
    sqlite3_bind_int64(st, 8, t->revoked);
    rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_NOT_FOUND; /* FK: no account */
    if (rc != STORE_OK)
        log_debug("store", "token insert refused: %s", sqlite3_errmsg(q->db));
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

#define TOKEN_COLS "id, account_id, name, perms, created, expires, revoked, token_hash"

static void read_token(sqlite3_stmt *st, void *e)
{
    store_token *t = e;
    store__sqlite_copy_id(t->id, store__sqlite_col_text(st, 0));
    store__sqlite_copy_id(t->account_id, store__sqlite_col_text(st, 1));
    t->name = util_xstrdup(store__sqlite_col_text(st, 2));
    t->perms = (unsigned)sqlite3_column_int(st, 3);
    t->created = sqlite3_column_int64(st, 4);
    t->expires = sqlite3_column_int64(st, 5);
    t->revoked = sqlite3_column_int64(st, 6);
    snprintf(t->token_hash, sizeof t->token_hash, "%s", store__sqlite_col_text(st, 7));
}

static int sq_token_by_hash(void *ctx, const char *token_hash, store_token *out)
{
    return store__sqlite_get_one(ctx, "SELECT " TOKEN_COLS " FROM tokens WHERE token_hash = ?",
                                 token_hash, read_token, out);
}

static void free_tokens(void *arr, size_t n)
{
    store_token_array_free(arr, n);
}

static int sq_token_list(void *ctx, const char *account_id, store_token **out, size_t *n)
{
    return store__sqlite_get_all(
        ctx,
        account_id ? "SELECT " TOKEN_COLS " FROM tokens WHERE account_id = ? "
                     "ORDER BY created, rowid"
                   : "SELECT " TOKEN_COLS " FROM tokens ORDER BY created, rowid",
        account_id, sizeof(store_token), read_token, free_tokens, (void **)out, n);
}

static int sq_token_revoke(void *ctx, const char *id, int64_t now)
{
    sq *q = ctx;
    int rc = STORE_ERROR, changes = 0;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st =
        store__sqlite_prep(q, "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, now);
    store__sqlite_bind_text(st, 2, id);
    rc = store__sqlite_step_done(q, st, &changes);
    if (rc == STORE_OK && changes == 0)
        rc = STORE_NOT_FOUND;
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* --- TURN keys ----------------------------------------------------------------------- */

void store__sqlite_read_key(sqlite3_stmt *st, void *e)
{
    store_key *k = e;
    store__sqlite_copy_id(k->uid, store__sqlite_col_text(st, 0));
    store__sqlite_copy_id(k->account_id, store__sqlite_col_text(st, 1));
    k->name = util_xstrdup(store__sqlite_col_text(st, 2));
    k->created = sqlite3_column_int64(st, 3);
    k->modified = sqlite3_column_int64(st, 4);
    snprintf(k->key_hash, sizeof k->key_hash, "%s", store__sqlite_col_text(st, 5));
    const void *blob = sqlite3_column_blob(st, 6);
    if (blob && sqlite3_column_bytes(st, 6) == STORE_SECRET_LEN)
        memcpy(k->secret, blob, STORE_SECRET_LEN);
}

static int one_key(sq *q, sqlite3_stmt *st, store_key *out)
{
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        store__sqlite_read_key(st, out);
        return STORE_OK;
    }
    if (r == SQLITE_DONE)
        return STORE_NOT_FOUND;
    log_error_rl(&q->rl, "store", "read failed: %s", sqlite3_errmsg(q->db));
    return STORE_ERROR;
}

static int key_get_locked(sq *q, const char *account_id, const char *uid, store_key *out)
{
    sqlite3_stmt *st = store__sqlite_prep(
        q, account_id ? "SELECT " STORE__SQLITE_KEY_COLS
                        " FROM turn_keys WHERE uid = ? AND account_id = ?"
                      : "SELECT " STORE__SQLITE_KEY_COLS " FROM turn_keys WHERE uid = ?");
    if (!st)
        return STORE_ERROR;
    store__sqlite_bind_text(st, 1, uid);
    if (account_id)
        store__sqlite_bind_text(st, 2, account_id);
    int rc = one_key(q, st, out);
    store__sqlite_release(q, st);
    return rc;
}

static int sq_key_create(void *ctx, const store_key *k, size_t max_keys)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (store__sqlite_exec(q, "BEGIN IMMEDIATE") !=
        STORE_OK) /* the write lock: counts cannot race */
        goto out;
    st = store__sqlite_prep(q, "SELECT (SELECT count(*) FROM accounts WHERE id = ?1), "
                               "(SELECT count(*) FROM turn_keys WHERE account_id = ?1)");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, k->account_id);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto rollback;
    if (sqlite3_column_int64(st, 0) == 0) {
        rc = STORE_NOT_FOUND;
        goto rollback;
    }
    if (!store__key_admit((size_t)sqlite3_column_int64(st, 1), max_keys)) {
        rc = STORE_LIMIT;
        goto rollback;
    }
    store__sqlite_release(q, st);
    st = store__sqlite_prep(
        q, "INSERT INTO turn_keys(uid, account_id, name, key_hash, secret, created, "
           "modified) VALUES (?,?,?,?,?,?,?)");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, k->uid);
    store__sqlite_bind_text(st, 2, k->account_id);
    store__sqlite_bind_text(st, 3, k->name);
    store__sqlite_bind_text(st, 4, k->key_hash);
    sqlite3_bind_blob(st, 5, k->secret, STORE_SECRET_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, k->created);
    sqlite3_bind_int64(st, 7, k->modified);
    if (store__sqlite_step_done(q, st, NULL) != STORE_OK ||
        store__sqlite_log_change(q, STORE_CHANGE_KEY_CREATED, k->uid, NULL, 0) != STORE_OK)
        goto rollback;
    rc = store__sqlite_exec(q, "COMMIT");
    if (rc != STORE_OK)
        goto rollback;
    goto out;
rollback:
    store__sqlite_exec(q, "ROLLBACK");
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_key_get(void *ctx, const char *account_id, const char *uid, store_key *out)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = key_get_locked(q, account_id, uid, out);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_key_by_uid(void *ctx, const char *uid, store_key *out)
{
    return sq_key_get(ctx, NULL, uid, out);
}

void store__sqlite_free_keys(void *arr, size_t n)
{
    store_key_array_free(arr, n);
}

static int sq_key_list(void *ctx, const char *account_id, store_key **out, size_t *n)
{
    return store__sqlite_get_all(ctx,
                                 "SELECT " STORE__SQLITE_KEY_COLS
                                 " FROM turn_keys WHERE account_id = ? "
                                 "ORDER BY created, rowid",
                                 account_id, sizeof(store_key), store__sqlite_read_key,
                                 store__sqlite_free_keys, (void **)out, n);
}

static int sq_key_rename(void *ctx, const char *account_id, const char *uid, const char *name,
                         int64_t now, store_key *out)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (store__sqlite_exec(q, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    rc = key_get_locked(q, account_id, uid, out);
    if (rc != STORE_OK)
        goto rollback;
    rc = STORE_ERROR;
    int64_t modified = store__next_modified(out->modified, now);
    st = store__sqlite_prep(
        q, "UPDATE turn_keys SET name = ?, modified = ? WHERE uid = ? AND account_id = ?");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, modified);
    store__sqlite_bind_text(st, 3, uid);
    store__sqlite_bind_text(st, 4, account_id);
    if (store__sqlite_step_done(q, st, NULL) != STORE_OK ||
        store__sqlite_log_change(q, STORE_CHANGE_KEY_RENAMED, uid, NULL, 0) != STORE_OK ||
        store__sqlite_exec(q, "COMMIT") != STORE_OK)
        goto rollback;
    free(out->name);
    out->name = util_xstrdup(name);
    out->modified = modified;
    rc = STORE_OK;
    goto out;
rollback:
    store__sqlite_exec(q, "ROLLBACK");
    store_key_clear(out);
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int sq_key_delete(void *ctx, const char *account_id, const char *uid, store_key *out)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (store__sqlite_exec(q, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    rc = key_get_locked(q, account_id, uid, out);
    if (rc != STORE_OK)
        goto rollback;
    rc = STORE_ERROR;
    st = store__sqlite_prep(q, "DELETE FROM turn_keys WHERE uid = ? AND account_id = ?");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, uid);
    store__sqlite_bind_text(st, 2, account_id);
    if (store__sqlite_step_done(q, st, NULL) != STORE_OK)
        goto rollback;
    store__sqlite_release(q, st);
    st = store__sqlite_prep(q, "DELETE FROM revocations WHERE key_uid = ?");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, uid);
    if (store__sqlite_step_done(q, st, NULL) != STORE_OK ||
        store__sqlite_log_change(q, STORE_CHANGE_KEY_DELETED, uid, NULL, 0) != STORE_OK ||
        store__sqlite_exec(q, "COMMIT") != STORE_OK)
        goto rollback;
    rc = STORE_OK;
    goto out;
rollback:
    store__sqlite_exec(q, "ROLLBACK");
    store_key_clear(out);
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static const store_ops sqlite_ops = {
    .close = sq_close,
    .account_create = sq_account_create,
    .account_get = sq_account_get,
    .account_list = sq_account_list,
    .token_create = sq_token_create,
    .token_by_hash = sq_token_by_hash,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .key_create = sq_key_create,
    .key_get = sq_key_get,
    .key_by_uid = sq_key_by_uid,
    .key_list = sq_key_list,
    .key_rename = sq_key_rename,
    .key_delete = sq_key_delete,
    .revoke_add = store__sqlite_revoke_add,
    .revoke_check = store__sqlite_revoke_check,
    .revoke_purge = store__sqlite_revoke_purge,
    .revoke_each = store__sqlite_revoke_each,
    .key_list_all = store__sqlite_key_list_all,
    .changes_since = store__sqlite_changes_since,
    .changes_prune = store__sqlite_changes_prune,
    .changes_wait = store__sqlite_changes_wait,
    .audit_add = store__sqlite_audit_add,
    .audit_list = store__sqlite_audit_list,
    .audit_purge = store__sqlite_audit_purge,
    .usage_add = store__sqlite_usage_add,
    .usage_query = store__sqlite_usage_query,
    .usage_rollup = store__sqlite_usage_rollup,
    .secret_add = store__sqlite_secret_add,
    .secret_list = store__sqlite_secret_list,
    .secret_delete = store__sqlite_secret_delete,
    .secret_list_all = store__sqlite_secret_list_all,
    .webhook_put = store__sqlite_webhook_put,
    .webhook_get = store__sqlite_webhook_get,
    .webhook_delete = store__sqlite_webhook_delete,
    .webhook_enqueue = store__sqlite_webhook_enqueue,
    .webhook_claim = store__sqlite_webhook_claim,
    .webhook_done = store__sqlite_webhook_done,
    .webhook_retry = store__sqlite_webhook_retry,
    .webhook_count = store__sqlite_webhook_count,
    .policy_put = store__sqlite_policy_put,
    .policy_get = store__sqlite_policy_get,
    .policy_delete = store__sqlite_policy_delete,
    .policy_list_all = store__sqlite_policy_list_all,
    .budget_mark = store__sqlite_budget_mark,
    .budget_list = store__sqlite_budget_list,
    .budget_purge = store__sqlite_budget_purge,
};

const store_ops *store__sqlite_ops(void)
{
    return &sqlite_ops;
}
