/* store_sqlite_usage: the usage tables of the SQLite backend (schema: migration 4 in
 * store_sqlite.c). Minute rows live in usage_minute, their hourly roll-ups in usage_hour
 * (same columns; minute = the hour's first second); queries read both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define USAGE_KEY "minute, account_id, key_uid, custom_id, username, node"

static int exec_locked(sq *q, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error_rl(&q->rl, "store", "sqlite usage: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return STORE_ERROR;
    }
    return STORE_OK;
}

static int add_one(sqlite3_stmt *st, const store_usage_delta *d)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, d->minute);
    const char *txt[] = {d->account_id, d->key_uid, d->custom_id, d->username, d->node};
    for (int i = 0; i < 5; i++)
        sqlite3_bind_text(st, 2 + i, txt[i], -1, SQLITE_TRANSIENT);
    const uint64_t num[] = {d->egress_bytes, d->ingress_bytes, d->alloc_ms, d->peak_allocs};
    for (int i = 0; i < 4; i++)
        sqlite3_bind_int64(st, 7 + i, (int64_t)num[i]);
    return sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

int store__sqlite_usage_add(void *ctx, const store_usage_delta *d, size_t n)
{
    sq *q = ctx;
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    if (exec_locked(q, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO usage_minute(" USAGE_KEY
                           ", egress, ingress, alloc_ms, peak)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(" USAGE_KEY ") DO UPDATE SET"
                           " egress = egress + excluded.egress,"
                           " ingress = ingress + excluded.ingress,"
                           " alloc_ms = alloc_ms + excluded.alloc_ms,"
                           " peak = max(peak, excluded.peak)",
                           -1, &st, NULL) != SQLITE_OK)
        goto rollback;
    for (size_t i = 0; i < n; i++)
        if (add_one(st, &d[i]) != STORE_OK)
            goto rollback;
    if (exec_locked(q, "COMMIT") == STORE_OK) {
        rc = STORE_OK;
        goto out;
    }
rollback:
    log_error_rl(&q->rl, "store", "usage write failed: %s", sqlite3_errmsg(q->db));
    exec_locked(q, "ROLLBACK");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The grouped query over both tables: per minute first (peaks add up across the rows of one
 * minute: nodes, and the dimensions not grouped by), then per bucket (peaks: the largest
 * minute). ?1 account, ?2 since, ?3 until, ?4 key, ?5 custom id, ?6 username, ?9 step. */
static void grouped_sql(const store_usage_filter *f, char *sql, size_t cap)
{
    unsigned g = f->group_by;
    snprintf(sql, cap,
             "SELECT CASE WHEN ?9 = 0 THEN ?2 ELSE minute - minute %% ?9 END AS b,"
             " k, c, u, n, sum(e) AS e, sum(i) AS i, sum(a) AS a, max(p) AS p FROM ("
             "SELECT minute, %s AS k, %s AS c, %s AS u, %s AS n, sum(egress) AS e,"
             " sum(ingress) AS i, sum(alloc_ms) AS a, sum(peak) AS p FROM ("
             "SELECT * FROM usage_minute UNION ALL SELECT * FROM usage_hour)"
             " WHERE account_id = ?1 AND minute >= ?2 AND minute < ?3"
             " AND (?4 IS NULL OR key_uid = ?4) AND (?5 IS NULL OR custom_id = ?5)"
             " AND (?6 IS NULL OR username = ?6)"
             " GROUP BY minute, k, c, u, n) GROUP BY b, k, c, u, n",
             g & STORE_USAGE_BY_KEY ? "key_uid" : "''",
             g & STORE_USAGE_BY_CUSTOM_ID ? "custom_id" : "''",
             g & STORE_USAGE_BY_USERNAME ? "username" : "''",
             g & STORE_USAGE_BY_NODE ? "node" : "''");
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_filter(sqlite3_stmt *st, const store_usage_filter *f)
{
    sqlite3_bind_text(st, 1, f->account_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, f->since);
    sqlite3_bind_int64(st, 3, f->until);
    bind_opt(st, 4, f->key_uid);
    bind_opt(st, 5, f->custom_id);
    bind_opt(st, 6, f->username);
    sqlite3_bind_int64(st, 9, f->step);
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void read_row(sqlite3_stmt *st, void *elem)
{
    store_usage_row *r = elem; /* zeroed by store__sqlite_collect */
    r->bucket = sqlite3_column_int64(st, 0);
    copy_col(st, 1, r->key_uid, sizeof r->key_uid);
    copy_col(st, 2, r->custom_id, sizeof r->custom_id);
    copy_col(st, 3, r->username, sizeof r->username);
    copy_col(st, 4, r->node, sizeof r->node);
    r->egress_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    r->ingress_bytes = (uint64_t)sqlite3_column_int64(st, 6);
    r->alloc_ms = (uint64_t)sqlite3_column_int64(st, 7);
    r->peak_allocs = (uint64_t)sqlite3_column_int64(st, 8);
}

static int count_rows(sq *q, const char *grouped, const store_usage_filter *f, size_t *total)
{
    char sql[1600];
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s)", grouped);
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_filter(st, f);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *total = (size_t)sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int store__sqlite_usage_query(void *ctx, const store_usage_filter *f, store_usage_row **out,
                              size_t *n, size_t *total)
{
    sq *q = ctx;
    char grouped[1400], sql[1600];
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR, r = SQLITE_ERROR;
    grouped_sql(f, grouped, sizeof grouped);
    snprintf(sql, sizeof sql, "%s ORDER BY b, k, c, u, n LIMIT ?7 OFFSET ?8", grouped);
    pthread_mutex_lock(&q->mu);
    if (count_rows(q, grouped, f, total) != STORE_OK ||
        sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_filter(st, f);
    sqlite3_bind_int64(st, 7, f->limit ? (int64_t)f->limit : -1);
    sqlite3_bind_int64(st, 8, (int64_t)f->offset);
    r = store__sqlite_collect(st, sizeof **out, read_row, (void **)out, n);
    rc = r == SQLITE_DONE ? STORE_OK : STORE_ERROR;
out:
    if (rc != STORE_OK) {
        log_error_rl(&q->rl, "store", "usage query failed: %s", sqlite3_errmsg(q->db));
        free(*out);
        *out = NULL;
        *n = *total = 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int run2(sq *q, const char *sql, int64_t a, int *changes)
{
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_step(st) == SQLITE_DONE) {
        rc = STORE_OK;
        if (changes)
            *changes = sqlite3_changes(q->db);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int store__sqlite_usage_rollup(void *ctx, int64_t before, int64_t drop_before, size_t *rolled)
{
    sq *q = ctx;
    int folded = 0, rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    if (exec_locked(q, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    if (run2(q,
             "INSERT INTO usage_hour(" USAGE_KEY ", egress, ingress, alloc_ms, peak)"
             " SELECT minute - minute % 3600, account_id, key_uid, custom_id, username, node,"
             " sum(egress), sum(ingress), sum(alloc_ms), max(peak) FROM usage_minute"
             " WHERE minute < ?1 GROUP BY 1, 2, 3, 4, 5, 6"
             " ON CONFLICT(" USAGE_KEY ") DO UPDATE SET egress = egress + excluded.egress,"
             " ingress = ingress + excluded.ingress, alloc_ms = alloc_ms + excluded.alloc_ms,"
             " peak = max(peak, excluded.peak)",
             before, NULL) != STORE_OK ||
        run2(q, "DELETE FROM usage_minute WHERE minute < ?1", before, &folded) != STORE_OK ||
        (drop_before > 0 &&
         run2(q, "DELETE FROM usage_hour WHERE minute < ?1", drop_before, NULL) != STORE_OK) ||
        exec_locked(q, "COMMIT") != STORE_OK) {
        log_error_rl(&q->rl, "store", "usage rollup failed: %s", sqlite3_errmsg(q->db));
        exec_locked(q, "ROLLBACK");
        goto out;
    }
    *rolled = (size_t)folded;
    rc = STORE_OK;
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}
