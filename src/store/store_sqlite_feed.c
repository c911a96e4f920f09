/* store_sqlite_feed: the SQLite backend's revocations (with the per-key cap counted inside
 * the insert's write transaction) and its change feed (the log the nodes' caches follow;
 * SQLite has no doorbell: readers poll). Schema: store_sqlite.c. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqlite_internal.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

/* --- revocations --------------------------------------------------------------------- */

/* Inside the write transaction: STORE_OK if (key_uid, h) may be inserted (or is already
 * there), STORE_LIMIT past the key's cap of live revocations. */
static int revoke_admit(sq *q, const char *key_uid, const char *h, int64_t now, size_t max)
{
    sqlite3_stmt *st = store__sqlite_prep(q, "SELECT coalesce(sum(expires > ?2), 0), "
                                             "coalesce(max(username_hash = ?3), 0) "
                                             "FROM revocations WHERE key_uid = ?1");
    if (!st)
        return STORE_ERROR;
    store__sqlite_bind_text(st, 1, key_uid);
    sqlite3_bind_int64(st, 2, now);
    store__sqlite_bind_text(st, 3, h);
    int rc = STORE_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = sqlite3_column_int64(st, 1) != 0 ||
                     store__revoke_admit((size_t)sqlite3_column_int64(st, 0), max)
                 ? STORE_OK
                 : STORE_LIMIT;
    }
    store__sqlite_release(q, st);
    return rc;
}

int store__sqlite_revoke_add(void *ctx, const char *key_uid, const char *h, int64_t expires,
                             int64_t now, size_t max_live)
{
    sq *q = ctx;
    int rc = STORE_ERROR, changes = 0;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (store__sqlite_exec(q, "BEGIN IMMEDIATE") !=
        STORE_OK) /* the write lock: the count cannot race */
        goto out;
    if (max_live != STORE_NO_LIMIT && (rc = revoke_admit(q, key_uid, h, now, max_live)) != STORE_OK)
        goto rollback;
    rc = STORE_ERROR;
    st = store__sqlite_prep(q, "INSERT OR IGNORE INTO revocations(key_uid, username_hash, expires) "
                               "VALUES (?,?,?)");
    if (!st)
        goto rollback;
    store__sqlite_bind_text(st, 1, key_uid);
    store__sqlite_bind_text(st, 2, h);
    sqlite3_bind_int64(st, 3, expires);
    if (store__sqlite_step_done(q, st, &changes) != STORE_OK ||
        (changes &&
         store__sqlite_log_change(q, STORE_CHANGE_REVOKED, key_uid, h, expires) != STORE_OK) ||
        store__sqlite_exec(q, "COMMIT") != STORE_OK)
        goto rollback;
    rc = STORE_OK;
    goto out;
rollback:
    store__sqlite_exec(q, "ROLLBACK");
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_revoke_check(void *ctx, const char *key_uid, const char *h, bool *revoked)
{
    sq *q = ctx;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st =
        store__sqlite_prep(q, "SELECT 1 FROM revocations WHERE key_uid = ? AND username_hash = ?");
    if (!st)
        goto out;
    store__sqlite_bind_text(st, 1, key_uid);
    store__sqlite_bind_text(st, 2, h);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW || r == SQLITE_DONE) {
        *revoked = r == SQLITE_ROW;
        rc = STORE_OK;
    }
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_revoke_purge(void *ctx, int64_t now, size_t *purged)
{
    return store__sqlite_delete_before(ctx, "DELETE FROM revocations WHERE expires <= ?1", now,
                                       purged);
}

int store__sqlite_revoke_each(void *ctx, int64_t now, store_revoke_fn fn, void *arg)
{
    sq *q = ctx;
    int rc = STORE_ERROR, r;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = store__sqlite_prep(
        q, "SELECT key_uid, username_hash, expires FROM revocations WHERE expires > ? "
           "ORDER BY key_uid, username_hash");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, now);
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, store__sqlite_col_text(st, 0), store__sqlite_col_text(st, 1),
           sqlite3_column_int64(st, 2));
    rc = r == SQLITE_DONE ? STORE_OK : STORE_ERROR;
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* --- change feed --------------------------------------------------------------------- */

int store__sqlite_key_list_all(void *ctx, store_key **out, size_t *n)
{
    return store__sqlite_get_all(
        ctx, "SELECT " STORE__SQLITE_KEY_COLS " FROM turn_keys ORDER BY created, rowid", NULL,
        sizeof(store_key), store__sqlite_read_key, store__sqlite_free_keys, (void **)out, n);
}

static void read_change(sqlite3_stmt *st, void *e)
{
    store_change *c = e;
    c->rev = sqlite3_column_int64(st, 0);
    c->kind = sqlite3_column_int(st, 1);
    store__sqlite_copy_id(c->key_uid, store__sqlite_col_text(st, 2));
    snprintf(c->username_hash, sizeof c->username_hash, "%s", store__sqlite_col_text(st, 3));
    c->expires = sqlite3_column_int64(st, 4);
}

int store__sqlite_changes_since(void *ctx, int64_t after, size_t max, store_change **out, size_t *n,
                                store_feed *feed)
{
    sq *q = ctx;
    int rc = STORE_ERROR, r = SQLITE_ERROR;
    size_t len = 0;
    store_change *arr = util_xcalloc(max ? max : 1, sizeof *arr);
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st =
        store__sqlite_prep(q, "SELECT coalesce(min(rev), 0), coalesce(max(rev), 0) FROM changes");
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        goto out;
    feed->oldest = sqlite3_column_int64(st, 0);
    feed->latest = sqlite3_column_int64(st, 1);
    store__sqlite_release(q, st);
    st = store__sqlite_prep(q, "SELECT rev, kind, key_uid, username_hash, expires FROM changes "
                               "WHERE rev > ? ORDER BY rev LIMIT ?");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    while (len < max && (r = sqlite3_step(st)) == SQLITE_ROW)
        read_change(st, &arr[len++]);
    if (r == SQLITE_DONE || len == max)
        rc = STORE_OK;
out:
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    if (rc != STORE_OK) {
        free(arr);
        arr = NULL;
        len = 0;
    }
    *out = arr;
    *n = len;
    return rc;
}

/* Always keeps the latest change (the log's revision never goes back). */
int store__sqlite_changes_prune(void *ctx, int64_t before, size_t *pruned)
{
    return store__sqlite_delete_before(
        ctx, "DELETE FROM changes WHERE at < ?1 AND rev < (SELECT max(rev) FROM changes)", before,
        pruned);
}

/* No doorbell in SQLite: the caller's poll is the only signal. */
int store__sqlite_changes_wait(void *ctx, int timeout_ms)
{
    (void)ctx;
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}
