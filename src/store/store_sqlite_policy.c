/* store_sqlite_policy: key policies and budget states of the SQLite backend (issue 14 §4;
 * schema: the "7: key policies" migration in store_sqlite.c). Every write is one IMMEDIATE
 * transaction; a policy change and a trip log their change in the same transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"
#include "turnkey/util.h"

static void rd_policy(sqlite3_stmt *st, void *e)
{
    store_policy *p = e;
    store__sqlite_copy_id(p->key_uid, store__sqlite_col_text(st, 0));
    store__sqlite_copy_id(p->account_id, store__sqlite_col_text(st, 1));
    p->json = util_xstrdup(store__sqlite_col_text(st, 2));
    p->modified = sqlite3_column_int64(st, 3);
}

static void free_policies(void *arr, size_t n)
{
    store_policy_array_free(arr, n);
}

static void rd_budget(sqlite3_stmt *st, void *e)
{
    store_budget *b = e;
    store__sqlite_copy_id(b->key_uid, store__sqlite_col_text(st, 0));
    snprintf(b->custom_id, sizeof b->custom_id, "%s", store__sqlite_col_text(st, 1));
    b->period = sqlite3_column_int(st, 2);
    b->period_start = sqlite3_column_int64(st, 3);
    b->limit_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    b->period_end = sqlite3_column_int64(st, 5);
    b->level = sqlite3_column_int(st, 6);
    b->tripped = sqlite3_column_int(st, 7);
}

/* Runs one bound statement inside the open transaction; *changes = rows changed. */
static int step(sq *q, const char *sql, const char *a, const char *b, int *changes)
{
    sqlite3_stmt *st = store__sqlite_prep(q, sql);
    if (!st)
        return STORE_ERROR;
    store__sqlite_bind_text(st, 1, a);
    if (b)
        store__sqlite_bind_text(st, 2, b);
    int rc = store__sqlite_step_done(q, st, changes);
    store__sqlite_release(q, st);
    return rc;
}

static int begin(sq *q)
{
    pthread_mutex_lock(&q->mu);
    int rc = store__sqlite_exec(q, "BEGIN IMMEDIATE");
    if (rc != STORE_OK)
        pthread_mutex_unlock(&q->mu);
    return rc;
}

static int end(sq *q, int rc)
{
    if (rc == STORE_OK)
        rc = store__sqlite_exec(q, "COMMIT");
    if (rc != STORE_OK)
        store__sqlite_exec(q, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* STORE_OK if the key exists (and is account_id's, unless that is NULL). */
static int key_of(sq *q, const char *key_uid, const char *account_id)
{
    sqlite3_stmt *st = store__sqlite_prep(
        q, "SELECT 1 FROM turn_keys WHERE uid = ?1 AND (?2 IS NULL OR account_id = ?2)");
    if (!st)
        return STORE_ERROR;
    store__sqlite_bind_text(st, 1, key_uid);
    if (account_id)
        store__sqlite_bind_text(st, 2, account_id);
    int r = sqlite3_step(st);
    store__sqlite_release(q, st);
    return r == SQLITE_ROW ? STORE_OK : r == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
}

/* The key's trips are cleared and the change logged (inside the transaction). */
static int untrip(sq *q, const char *key_uid)
{
    int rc = step(q, "UPDATE budgets SET tripped = 0 WHERE key_uid = ?", key_uid, NULL, NULL);
    if (rc == STORE_OK)
        rc = store__sqlite_log_change(q, STORE_CHANGE_POLICY, key_uid, "", 0);
    return rc;
}

/* Inside the transaction: STORE_OK if the key's stored document is expect (NULL: none). */
static int expect_doc(sq *q, const char *key_uid, const char *expect)
{
    sqlite3_stmt *st = store__sqlite_prep(q, "SELECT policy FROM key_policies WHERE key_uid = ?");
    if (!st)
        return STORE_ERROR;
    store__sqlite_bind_text(st, 1, key_uid);
    int r = sqlite3_step(st), rc = STORE_ERROR;
    if (r == SQLITE_ROW)
        rc = expect && !strcmp(store__sqlite_col_text(st, 0), expect) ? STORE_OK : STORE_CONFLICT;
    else if (r == SQLITE_DONE)
        rc = expect ? STORE_CONFLICT : STORE_OK;
    store__sqlite_release(q, st);
    return rc;
}

int store__sqlite_policy_put(void *ctx, const store_policy *p, bool check, const char *expect)
{
    sq *q = ctx;
    int rc = begin(q);
    if (rc != STORE_OK)
        return rc;
    rc = key_of(q, p->key_uid, p->account_id);
    if (rc == STORE_OK && check)
        rc = expect_doc(q, p->key_uid, expect);
    if (rc == STORE_OK) {
        sqlite3_stmt *st = store__sqlite_prep(
            q, "INSERT INTO key_policies(key_uid, account_id, policy, modified) VALUES (?1, ?2, "
               "?3, ?4) ON CONFLICT(key_uid) DO UPDATE SET policy = excluded.policy, "
               "modified = excluded.modified");
        rc = STORE_ERROR;
        if (st) {
            store__sqlite_bind_text(st, 1, p->key_uid);
            store__sqlite_bind_text(st, 2, p->account_id);
            store__sqlite_bind_text(st, 3, p->json);
            sqlite3_bind_int64(st, 4, p->modified);
            rc = store__sqlite_step_done(q, st, NULL);
        }
        store__sqlite_release(q, st);
    }
    if (rc == STORE_OK)
        rc = untrip(q, p->key_uid);
    return end(q, rc);
}

int store__sqlite_policy_get(void *ctx, const char *key_uid, store_policy *out)
{
    return store__sqlite_get_one(
        ctx, "SELECT key_uid, account_id, policy, modified FROM key_policies WHERE key_uid = ?",
        key_uid, rd_policy, out);
}

int store__sqlite_policy_delete(void *ctx, const char *account_id, const char *key_uid)
{
    sq *q = ctx;
    int rc = begin(q), n = 0;
    if (rc != STORE_OK)
        return rc;
    rc = step(q, "DELETE FROM key_policies WHERE key_uid = ?1 AND account_id = ?2", key_uid,
              account_id, &n);
    if (rc == STORE_OK && n == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = untrip(q, key_uid);
    return end(q, rc);
}

int store__sqlite_policy_list_all(void *ctx, store_policy **out, size_t *n)
{
    return store__sqlite_get_all(
        ctx, "SELECT key_uid, account_id, policy, modified FROM key_policies ORDER BY key_uid",
        NULL, sizeof **out, rd_policy, free_policies, (void **)out, n);
}

/* Binds the row's key (key_uid, custom_id, period, period_start, limit_bytes) as ?1..?5. */
static void bind_row_key(sqlite3_stmt *st, const store_budget *b)
{
    store__sqlite_bind_text(st, 1, b->key_uid);
    store__sqlite_bind_text(st, 2, b->custom_id);
    sqlite3_bind_int(st, 3, b->period);
    sqlite3_bind_int64(st, 4, b->period_start);
    sqlite3_bind_int64(st, 5, (int64_t)b->limit_bytes);
}

/* The row's level and trip before the mark: -1 level when there is no row. */
static int current(sq *q, const store_budget *b, int *level, int *tripped)
{
    sqlite3_stmt *st =
        store__sqlite_prep(q, "SELECT level, tripped FROM budgets WHERE key_uid = ?1 "
                              "AND custom_id = ?2 AND period = ?3 AND "
                              "period_start = ?4 AND limit_bytes = ?5");
    if (!st)
        return STORE_ERROR;
    bind_row_key(st, b);
    int r = sqlite3_step(st);
    *level = r == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    *tripped = r == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
    store__sqlite_release(q, st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

static int write_row(sq *q, const store_budget *b, int level, int tripped)
{
    sqlite3_stmt *st = store__sqlite_prep(
        q, "INSERT INTO budgets(key_uid, custom_id, period, period_start, limit_bytes, "
           "period_end, level, tripped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
           "ON CONFLICT(key_uid, custom_id, period, period_start, limit_bytes) DO UPDATE SET "
           "level = excluded.level, tripped = excluded.tripped");
    if (!st)
        return STORE_ERROR;
    bind_row_key(st, b);
    sqlite3_bind_int64(st, 6, b->period_end);
    sqlite3_bind_int(st, 7, level);
    sqlite3_bind_int(st, 8, tripped);
    int rc = store__sqlite_step_done(q, st, NULL);
    store__sqlite_release(q, st);
    return rc;
}

int store__sqlite_budget_mark(void *ctx, const store_budget *b, unsigned *advanced)
{
    sq *q = ctx;
    int level, tripped;
    int rc = begin(q);
    if (rc != STORE_OK)
        return rc;
    rc = key_of(q, b->key_uid, NULL);
    if (rc == STORE_OK)
        rc = current(q, b, &level, &tripped);
    if (rc != STORE_OK)
        return end(q, rc);
    unsigned adv = 0;
    if (b->level > level && b->level > 0)
        adv |= STORE_BUDGET_NOTIFY;
    if (b->tripped && !tripped)
        adv |= STORE_BUDGET_TRIP;
    if (adv || level < 0)
        rc = write_row(q, b, b->level > level ? b->level : level, tripped ? tripped : b->tripped);
    if (rc == STORE_OK && (adv & STORE_BUDGET_TRIP))
        rc = store__sqlite_log_change(q, STORE_CHANGE_BUDGET_TRIPPED, b->key_uid, b->custom_id,
                                      b->period_end);
    rc = end(q, rc);
    *advanced = rc == STORE_OK ? adv : 0;
    return rc;
}

int store__sqlite_budget_list(void *ctx, const char *key_uid, int64_t now, bool tripped_only,
                              store_budget **out, size_t *n)
{
    sq *q = ctx;
    size_t len = 0;
    void *arr = util_xcalloc(16, sizeof(store_budget));
    int r = SQLITE_ERROR;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = store__sqlite_prep(
        q, "SELECT key_uid, custom_id, period, period_start, limit_bytes, period_end, level, "
           "tripped FROM budgets WHERE period_end > ?1 AND (?2 IS NULL OR key_uid = ?2) AND "
           "(?3 = 0 OR tripped > 0) ORDER BY key_uid, custom_id, period, period_start");
    if (st) {
        sqlite3_bind_int64(st, 1, now);
        if (key_uid)
            store__sqlite_bind_text(st, 2, key_uid);
        sqlite3_bind_int(st, 3, tripped_only);
        r = store__sqlite_collect(st, sizeof(store_budget), rd_budget, &arr, &len);
    }
    store__sqlite_release(q, st);
    pthread_mutex_unlock(&q->mu);
    if (r != SQLITE_DONE) {
        free(arr);
        *out = NULL;
        *n = 0;
        return STORE_ERROR;
    }
    *out = arr;
    *n = len;
    return STORE_OK;
}

int store__sqlite_budget_purge(void *ctx, int64_t before, size_t *purged)
{
    return store__sqlite_delete_before(ctx, "DELETE FROM budgets WHERE period_end < ?1", before,
                                       purged);
}
