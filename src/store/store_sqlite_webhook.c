/* store_sqlite_webhook: the webhook tables of the SQLite backend (schema: migration 6 in
 * store_sqlite.c): one webhook per account and the durable event queue. One node owns a
 * SQLite store, so the lease only guards against this node's own worker claiming twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static int exec_locked(sq *q, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "sqlite webhook: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return STORE_ERROR;
    }
    return STORE_OK;
}

static sqlite3_stmt *prepare(sq *q, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "sqlite webhook: %s", sqlite3_errmsg(q->db));
        return NULL;
    }
    return st;
}

static void copy_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static char *dup_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return util_xstrdup(t ? (const char *)t : "");
}

#define HOOK_COLS "account_id, url, events, secret, created, modified"

/* With the lock held: the account's webhook into out. */
static int get_locked(sq *q, const char *account_id, store_webhook *out)
{
    sqlite3_stmt *st = prepare(q, "SELECT " HOOK_COLS " FROM webhooks WHERE account_id = ?");
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, account_id, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st), rc = STORE_ERROR;
    if (step == SQLITE_ROW) {
        copy_text(st, 0, out->account_id, sizeof out->account_id);
        out->url = dup_text(st, 1);
        out->events = (unsigned)sqlite3_column_int64(st, 2);
        copy_text(st, 3, out->secret, sizeof out->secret);
        out->created = sqlite3_column_int64(st, 4);
        out->modified = sqlite3_column_int64(st, 5);
        rc = STORE_OK;
    } else if (step == SQLITE_DONE) {
        rc = STORE_NOT_FOUND;
    }
    sqlite3_finalize(st);
    return rc;
}

static int put_locked(sq *q, const store_webhook *w, bool keep_secret, bool *created)
{
    store_webhook old = {0};
    int rc = get_locked(q, w->account_id, &old);
    if (rc == STORE_ERROR)
        return rc;
    *created = rc == STORE_NOT_FOUND;
    const char *secret = !*created && keep_secret ? old.secret : w->secret;
    sqlite3_stmt *st = prepare(
        q, "INSERT INTO webhooks(" HOOK_COLS ") VALUES (?,?,?,?,?,?) ON CONFLICT(account_id) DO "
           "UPDATE SET url = excluded.url, events = excluded.events, secret = excluded.secret,"
           " modified = excluded.modified");
    rc = STORE_ERROR;
    if (st) {
        sqlite3_bind_text(st, 1, w->account_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, w->url, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, w->events);
        sqlite3_bind_text(st, 4, secret, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, w->created);
        sqlite3_bind_int64(st, 6, w->modified);
        rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
        sqlite3_finalize(st);
    }
    store_webhook_clear(&old);
    return rc;
}

int store__sqlite_webhook_put(void *ctx, const store_webhook *w, bool keep_secret,
                              store_webhook *out, bool *created)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = exec_locked(q, "BEGIN IMMEDIATE");
    if (rc == STORE_OK && (rc = put_locked(q, w, keep_secret, created)) == STORE_OK)
        rc = get_locked(q, w->account_id, out);
    if (rc == STORE_OK)
        rc = exec_locked(q, "COMMIT");
    if (rc != STORE_OK) {
        store_webhook_clear(out);
        exec_locked(q, "ROLLBACK");
        rc = STORE_ERROR;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_webhook_get(void *ctx, const char *account_id, store_webhook *out)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = get_locked(q, account_id, out);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* With the lock held: runs one statement binding the text t at 1 (and i at 2 when >= 0);
 * *changes = the rows it touched. */
static int run_locked(sq *q, const char *sql, const char *t, int64_t i, int *changes)
{
    sqlite3_stmt *st = prepare(q, sql);
    if (!st)
        return STORE_ERROR;
    if (t)
        sqlite3_bind_text(st, 1, t, -1, SQLITE_TRANSIENT);
    if (i >= 0)
        sqlite3_bind_int64(st, t ? 2 : 1, i);
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    sqlite3_finalize(st);
    if (changes)
        *changes = sqlite3_changes(q->db);
    return rc;
}

int store__sqlite_webhook_delete(void *ctx, const char *account_id, store_webhook *out)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = exec_locked(q, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        rc = get_locked(q, account_id, out);
    if (rc == STORE_OK)
        rc = run_locked(q, "DELETE FROM webhooks WHERE account_id = ?", account_id, -1, NULL);
    if (rc == STORE_OK)
        rc = run_locked(q, "DELETE FROM webhook_queue WHERE account_id = ?", account_id, -1, NULL);
    if (rc == STORE_OK)
        rc = exec_locked(q, "COMMIT");
    if (rc != STORE_OK) {
        store_webhook_clear(out);
        exec_locked(q, "ROLLBACK");
    }
    pthread_mutex_unlock(&q->mu);
    return rc == STORE_NOT_FOUND ? rc : rc == STORE_OK ? STORE_OK : STORE_ERROR;
}

static int enqueue_one(sq *q, const store_webhook_event *e, size_t max, size_t *queued,
                       size_t *dropped)
{
    sqlite3_stmt *st =
        prepare(q, "INSERT INTO webhook_queue(id, account_id, kind, created, body, next_at)"
                   " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM webhooks"
                   " WHERE account_id = ?2 AND (events & ?3) != 0)");
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, e->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, e->account_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, e->kind);
    sqlite3_bind_int64(st, 4, e->created);
    sqlite3_bind_text(st, 5, e->body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, e->next_at);
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    sqlite3_finalize(st);
    if (rc != STORE_OK || sqlite3_changes(q->db) == 0)
        return rc;
    (*queued)++;
    int trimmed = 0;
    rc = run_locked(q,
                    "DELETE FROM webhook_queue WHERE account_id = ?1 AND seq <= (SELECT seq FROM"
                    " webhook_queue WHERE account_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                    e->account_id, (int64_t)max, &trimmed);
    *dropped += (size_t)trimmed;
    return rc;
}

int store__sqlite_webhook_enqueue(void *ctx, const store_webhook_event *e, size_t n,
                                  size_t max_per_account, size_t *queued, size_t *dropped)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = exec_locked(q, "BEGIN IMMEDIATE");
    for (size_t i = 0; i < n && rc == STORE_OK; i++)
        rc = enqueue_one(q, &e[i], max_per_account, queued, dropped);
    if (rc == STORE_OK)
        rc = exec_locked(q, "COMMIT");
    if (rc != STORE_OK) {
        exec_locked(q, "ROLLBACK");
        *queued = *dropped = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void read_event(sqlite3_stmt *st, store_webhook_event *e)
{
    e->seq = sqlite3_column_int64(st, 0);
    copy_text(st, 1, e->id, sizeof e->id);
    copy_text(st, 2, e->account_id, sizeof e->account_id);
    e->kind = (unsigned)sqlite3_column_int64(st, 3);
    e->created = sqlite3_column_int64(st, 4);
    e->body = dup_text(st, 5);
    e->attempts = sqlite3_column_int(st, 6);
    e->next_at = sqlite3_column_int64(st, 7);
    e->url = dup_text(st, 8);
    copy_text(st, 9, e->secret, sizeof e->secret);
}

static int claim_locked(sq *q, int64_t now, int64_t lease_until, size_t max,
                        store_webhook_event **out, size_t *n)
{
    sqlite3_stmt *st = prepare(
        q, "SELECT e.seq, e.id, e.account_id, e.kind, e.created, e.body, e.attempts, e.next_at,"
           " w.url, w.secret FROM webhook_queue e JOIN webhooks w ON w.account_id = e.account_id"
           " WHERE e.next_at <= ?1 AND e.lease_until <= ?1 ORDER BY e.seq LIMIT ?2");
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    store_webhook_event *v = util_xcalloc(max, sizeof *v);
    size_t k = 0;
    int step;
    while (k < max && (step = sqlite3_step(st)) == SQLITE_ROW)
        read_event(st, &v[k++]);
    sqlite3_finalize(st);
    int rc = STORE_OK;
    for (size_t i = 0; i < k && rc == STORE_OK; i++) {
        sqlite3_stmt *up = prepare(q, "UPDATE webhook_queue SET lease_until = ? WHERE seq = ?");
        if (!up) {
            rc = STORE_ERROR;
            break;
        }
        sqlite3_bind_int64(up, 1, lease_until);
        sqlite3_bind_int64(up, 2, v[i].seq);
        rc = sqlite3_step(up) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
        sqlite3_finalize(up);
    }
    if (rc != STORE_OK) {
        store_webhook_event_array_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return STORE_OK;
}

int store__sqlite_webhook_claim(void *ctx, int64_t now, int64_t lease_until, size_t max,
                                store_webhook_event **out, size_t *n)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = exec_locked(q, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        rc = claim_locked(q, now, lease_until, max, out, n);
    if (rc == STORE_OK && (rc = exec_locked(q, "COMMIT")) != STORE_OK) {
        store_webhook_event_array_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    if (rc != STORE_OK)
        exec_locked(q, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_webhook_done(void *ctx, int64_t seq)
{
    sq *q = ctx;
    pthread_mutex_lock(&q->mu);
    int rc = run_locked(q, "DELETE FROM webhook_queue WHERE seq = ?", NULL, seq, NULL);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_webhook_retry(void *ctx, int64_t seq, int attempts, int64_t next_at)
{
    sq *q = ctx;
    sqlite3_stmt *st;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    if ((st = prepare(q, "UPDATE webhook_queue SET attempts = ?, next_at = ?, lease_until = 0"
                         " WHERE seq = ?"))) {
        sqlite3_bind_int(st, 1, attempts);
        sqlite3_bind_int64(st, 2, next_at);
        sqlite3_bind_int64(st, 3, seq);
        rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_webhook_count(void *ctx, size_t *queued)
{
    sq *q = ctx;
    sqlite3_stmt *st;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    if ((st = prepare(q, "SELECT count(*) FROM webhook_queue"))) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            *queued = (size_t)sqlite3_column_int64(st, 0);
            rc = STORE_OK;
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}
