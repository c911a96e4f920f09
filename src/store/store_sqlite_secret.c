/* store_sqlite_secret: the shared-secret table of the SQLite backend (issue 15; schema:
 * the "5: shared secrets" migration in store_sqlite.c). Rare writes and per-change reads:
 * statements are prepared per call. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define COLS "id, key_uid, account_id, secret, alg, max_ttl, created"

static const char *txt(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static void read_row(sqlite3_stmt *st, store_shared_secret *o)
{
    snprintf(o->id, sizeof o->id, "%s", txt(st, 0));
    snprintf(o->key_uid, sizeof o->key_uid, "%s", txt(st, 1));
    snprintf(o->account_id, sizeof o->account_id, "%s", txt(st, 2));
    snprintf(o->secret, sizeof o->secret, "%s", txt(st, 3));
    o->alg = sqlite3_column_int(st, 4);
    o->max_ttl = sqlite3_column_int64(st, 5);
    o->created = sqlite3_column_int64(st, 6);
}

/* Prepares sql and binds the text parameters (NULL ends them). */
static sqlite3_stmt *prepare(sq *q, const char *sql, const char *a, const char *b, const char *c)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "prepare failed: %s (%s)", sqlite3_errmsg(q->db), sql);
        return NULL;
    }
    const char *p[] = {a, b, c};
    for (int i = 0; i < 3 && p[i]; i++)
        sqlite3_bind_text(st, i + 1, p[i], -1, SQLITE_TRANSIENT);
    return st;
}

static int run(sq *q, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "sqlite: %s (%s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return STORE_ERROR;
    }
    return STORE_OK;
}

/* Inside the transaction: STORE_OK when the key is the account's and holds < max secrets. */
static int admit(sq *q, const store_shared_secret *s, size_t max)
{
    sqlite3_stmt *st = prepare(q,
                               "SELECT (SELECT count(*) FROM turn_keys WHERE uid = ?1 AND "
                               "account_id = ?2), (SELECT count(*) FROM shared_secrets WHERE "
                               "key_uid = ?1)",
                               s->key_uid, s->account_id, NULL);
    int rc = STORE_ERROR;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        rc = sqlite3_column_int64(st, 0) == 0             ? STORE_NOT_FOUND
             : (size_t)sqlite3_column_int64(st, 1) >= max ? STORE_LIMIT
                                                          : STORE_OK;
    sqlite3_finalize(st);
    return rc;
}

static int insert(sq *q, const store_shared_secret *s)
{
    sqlite3_stmt *st = prepare(q, "INSERT INTO shared_secrets(" COLS ") VALUES (?,?,?,?,?,?,?)",
                               s->id, s->key_uid, s->account_id);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 4, s->secret, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, s->alg);
    sqlite3_bind_int64(st, 6, s->max_ttl);
    sqlite3_bind_int64(st, 7, s->created);
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    sqlite3_finalize(st);
    return rc;
}

int store__sqlite_secret_add(void *ctx, const store_shared_secret *s, size_t max)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = run(q, "BEGIN IMMEDIATE"); /* the write lock: the count cannot race */
    if (rc != STORE_OK)
        goto out;
    rc = admit(q, s, max);
    if (rc == STORE_OK)
        rc = insert(q, s);
    if (rc == STORE_OK)
        rc = store__sqlite_log_change(q, STORE_CHANGE_SECRET_ADDED, s->key_uid, s->id, 0);
    if (rc == STORE_OK)
        rc = run(q, "COMMIT");
    if (rc != STORE_OK)
        run(q, "ROLLBACK");
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Every row of a query with up to two text parameters. */
static int list(sq *q, const char *sql, const char *a, const char *b, store_shared_secret **out,
                size_t *n)
{
    size_t len = 0, cap = 8;
    store_shared_secret *arr = util_xcalloc(cap, sizeof *arr);
    int r = SQLITE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = prepare(q, sql, a, b, NULL);
    while (st && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            store_shared_secret *grown = util_xcalloc(cap * 2, sizeof *grown);
            memcpy(grown, arr, len * sizeof *arr);
            store_secret_array_free(arr, len);
            arr = grown;
            cap *= 2;
        }
        read_row(st, &arr[len++]);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    if (r != SQLITE_DONE) {
        store_secret_array_free(arr, cap);
        *out = NULL;
        *n = 0;
        return STORE_ERROR;
    }
    *out = arr;
    *n = len;
    return STORE_OK;
}

int store__sqlite_secret_list(void *ctx, const char *key_uid, store_shared_secret **out, size_t *n)
{
    return list(ctx,
                "SELECT " COLS " FROM shared_secrets WHERE key_uid = ? ORDER BY created, rowid",
                key_uid, NULL, out, n);
}

int store__sqlite_secret_list_all(void *ctx, store_shared_secret **out, size_t *n)
{
    return list(ctx, "SELECT " COLS " FROM shared_secrets ORDER BY key_uid, created, rowid", NULL,
                NULL, out, n);
}

int store__sqlite_secret_delete(void *ctx, const char *account_id, const char *key_uid,
                                const char *id, store_shared_secret *out)
{
    sq *q = ctx;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    int rc = run(q, "BEGIN IMMEDIATE");
    if (rc != STORE_OK)
        goto out;
    st = prepare(q,
                 "SELECT " COLS " FROM shared_secrets WHERE id = ? AND key_uid = ? AND "
                 "account_id = ?",
                 id, key_uid, account_id);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    rc = r == SQLITE_ROW ? STORE_OK : r == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    if (rc == STORE_OK)
        read_row(st, out);
    sqlite3_finalize(st);
    st = NULL;
    if (rc == STORE_OK) {
        st = prepare(q, "DELETE FROM shared_secrets WHERE id = ?", id, NULL, NULL);
        rc = st && sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    }
    if (rc == STORE_OK)
        rc = store__sqlite_log_change(q, STORE_CHANGE_SECRET_DELETED, key_uid, id, 0);
    if (rc == STORE_OK)
        rc = run(q, "COMMIT");
    if (rc != STORE_OK) {
        run(q, "ROLLBACK");
        OPENSSL_cleanse(out, sizeof *out);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}
