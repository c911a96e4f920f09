/* store_sqlite_audit: the audit-log table of the SQLite backend (schema: migration 2 in
 * store_sqlite.c). Audit reads are rare: statements are prepared per call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int store__sqlite_audit_add(void *ctx, const store_audit *e)
{
    sq *q = ctx;
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR;
    pthread_mutex_lock(&q->mu);
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO audit_log(id, account_id, at, action, result, actor_type,"
                           " actor_id, actor_ip, interface, resource_type, resource_id,"
                           " old_value, new_value, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    const char *txt[] = {e->id, e->account_id};
    for (int i = 0; i < 2; i++)
        sqlite3_bind_text(st, i + 1, txt[i], -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, e->when);
    sqlite3_bind_text(st, 4, e->action, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, e->result ? 1 : 0);
    const char *more[] = {e->actor_type, e->actor_id,      e->actor_ip,
                          e->interface,  e->resource_type, e->resource_id};
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(st, 6 + i, more[i], -1, SQLITE_TRANSIENT);
    bind_opt(st, 12, e->old_value);
    bind_opt(st, 13, e->new_value);
    bind_opt(st, 14, e->metadata);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = STORE_OK;
    else
        log_error("store", "audit write failed: %s", sqlite3_errmsg(q->db));
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The WHERE clause of every audit query: ?1 account, then the optional filters. */
static void where_clause(const store_audit_query *aq, char *sql, size_t cap)
{
    (void)aq;
    snprintf(sql, cap,
             " WHERE account_id = ?1 AND (?2 = 0 OR at >= ?2) AND (?3 = 0 OR at < ?3)"
             " AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR resource_id = ?5)"
             " AND (?6 IS NULL OR id = ?6)");
}

static void bind_query(sqlite3_stmt *st, const store_audit_query *aq)
{
    sqlite3_bind_text(st, 1, aq->account_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, aq->since);
    sqlite3_bind_int64(st, 3, aq->before);
    bind_opt(st, 4, aq->action);
    bind_opt(st, 5, aq->resource_id);
    bind_opt(st, 6, aq->id);
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? util_xstrdup((const char *)t) : NULL;
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void read_row(sqlite3_stmt *st, void *elem)
{
    store_audit *e = elem; /* zeroed by store__sqlite_collect */
    copy_col(st, 0, e->id, sizeof e->id);
    copy_col(st, 1, e->account_id, sizeof e->account_id);
    e->when = sqlite3_column_int64(st, 2);
    copy_col(st, 3, e->action, sizeof e->action);
    e->result = sqlite3_column_int(st, 4) != 0;
    copy_col(st, 5, e->actor_type, sizeof e->actor_type);
    copy_col(st, 6, e->actor_id, sizeof e->actor_id);
    copy_col(st, 7, e->actor_ip, sizeof e->actor_ip);
    copy_col(st, 8, e->interface, sizeof e->interface);
    copy_col(st, 9, e->resource_type, sizeof e->resource_type);
    copy_col(st, 10, e->resource_id, sizeof e->resource_id);
    e->old_value = dup_col(st, 11);
    e->new_value = dup_col(st, 12);
    e->metadata = dup_col(st, 13);
}

static int count_rows(sq *q, const store_audit_query *aq, size_t *total)
{
    char where[400], sql[512];
    sqlite3_stmt *st = NULL;
    where_clause(aq, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log%s", where);
    int rc = STORE_ERROR;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_query(st, aq);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *total = (size_t)sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int store__sqlite_audit_list(void *ctx, const store_audit_query *aq, store_audit **out, size_t *n,
                             size_t *total)
{
    sq *q = ctx;
    char where[400], sql[800];
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR, r;
    where_clause(aq, where, sizeof where);
    snprintf(sql, sizeof sql,
             "SELECT id, account_id, at, action, result, actor_type, actor_id, actor_ip,"
             " interface, resource_type, resource_id, old_value, new_value, metadata"
             " FROM audit_log%s ORDER BY at %s, id %s LIMIT ?7 OFFSET ?8",
             where, aq->ascending ? "ASC" : "DESC", aq->ascending ? "ASC" : "DESC");
    pthread_mutex_lock(&q->mu);
    if (count_rows(q, aq, total) != STORE_OK ||
        sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    bind_query(st, aq);
    sqlite3_bind_int64(st, 7, aq->limit ? (int64_t)aq->limit : -1);
    sqlite3_bind_int64(st, 8, (int64_t)aq->offset);
    r = store__sqlite_collect(st, sizeof **out, read_row, (void **)out, n);
    rc = r == SQLITE_DONE ? STORE_OK : STORE_ERROR;
out:
    if (rc != STORE_OK) {
        store_audit_array_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int store__sqlite_audit_purge(void *ctx, int64_t before_ms, size_t *purged)
{
    return store__sqlite_delete_before(ctx, "DELETE FROM audit_log WHERE at < ?1", before_ms,
                                       purged);
}
