/* store_pg_audit: the audit-log table of the PostgreSQL backend (schema: migration 3 in
 * store_pg.c, the same columns as SQLite's). Filters and ordering are those of the SQLite
 * backend, so both answer every query identically. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

int store__pg_audit_add(void *ctx, const store_audit *e)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, e->id);
    store__pg_text(&pp, e->account_id);
    store__pg_int(&pp, e->when);
    store__pg_text(&pp, e->action);
    store__pg_int(&pp, e->result ? 1 : 0);
    const char *more[] = {e->actor_type, e->actor_id,      e->actor_ip,
                          e->interface,  e->resource_type, e->resource_id};
    for (int i = 0; i < 6; i++)
        store__pg_text(&pp, more[i]);
    store__pg_text(&pp, e->old_value); /* NULL binds SQL NULL */
    store__pg_text(&pp, e->new_value);
    store__pg_text(&pp, e->metadata);
    return store__pg_write(ctx,
                           "INSERT INTO audit_log(id, account_id, at, action, result, actor_type,"
                           " actor_id, actor_ip, interface, resource_type, resource_id,"
                           " old_value, new_value, metadata)"
                           " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                           &pp, NULL);
}

/* $1 account, then the optional filters (0 / NULL: no filter). */
#define WHERE                                                                                      \
    " WHERE account_id = $1 AND ($2::bigint = 0 OR at >= $2::bigint)"                              \
    " AND ($3::bigint = 0 OR at < $3::bigint) AND ($4::text IS NULL OR action = $4::text)"         \
    " AND ($5::text IS NULL OR resource_id = $5::text) AND ($6::text IS NULL OR id = $6::text)"

#define SELECT                                                                                     \
    "SELECT id, account_id, at, action, result, actor_type, actor_id, actor_ip, interface,"        \
    " resource_type, resource_id, old_value, new_value, metadata FROM audit_log" WHERE
#define PAGE " LIMIT $7::bigint OFFSET $8::bigint"

static void bind_query(store__pg_params *pp, const store_audit_query *aq)
{
    store__pg_text(pp, aq->account_id);
    store__pg_int(pp, aq->since);
    store__pg_int(pp, aq->before);
    store__pg_text(pp, aq->action);
    store__pg_text(pp, aq->resource_id);
    store__pg_text(pp, aq->id);
}

static char *dup_col(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : util_xstrdup(PQgetvalue(r, row, col));
}

static void copy_col(PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

static void read_row(PGresult *r, int row, void *elem)
{
    store_audit *e = elem;
    memset(e, 0, sizeof *e);
    copy_col(r, row, 0, e->id, sizeof e->id);
    copy_col(r, row, 1, e->account_id, sizeof e->account_id);
    e->when = store__pg_col_int(r, row, 2);
    copy_col(r, row, 3, e->action, sizeof e->action);
    e->result = store__pg_col_int(r, row, 4) != 0;
    copy_col(r, row, 5, e->actor_type, sizeof e->actor_type);
    copy_col(r, row, 6, e->actor_id, sizeof e->actor_id);
    copy_col(r, row, 7, e->actor_ip, sizeof e->actor_ip);
    copy_col(r, row, 8, e->interface, sizeof e->interface);
    copy_col(r, row, 9, e->resource_type, sizeof e->resource_type);
    copy_col(r, row, 10, e->resource_id, sizeof e->resource_id);
    e->old_value = dup_col(r, row, 11);
    e->new_value = dup_col(r, row, 12);
    e->metadata = dup_col(r, row, 13);
}

static void read_count(PGresult *r, int row, void *elem)
{
    *(size_t *)elem = (size_t)store__pg_col_int(r, row, 0);
}

int store__pg_audit_list(void *ctx, const store_audit_query *aq, store_audit **out, size_t *n,
                         size_t *total)
{
    store__pg_params cnt = {0}, pp = {0};
    bind_query(&cnt, aq);
    if (store__pg_get_one(ctx, "SELECT count(*) FROM audit_log" WHERE, &cnt, read_count, total) !=
        STORE_OK)
        return STORE_ERROR;
    bind_query(&pp, aq);
    if (aq->limit)
        store__pg_int(&pp, (int64_t)aq->limit);
    else
        store__pg_text(&pp, NULL); /* LIMIT NULL: no limit */
    store__pg_int(&pp, (int64_t)aq->offset);
    return store__pg_get_all(ctx,
                             aq->ascending ? SELECT " ORDER BY at ASC, id ASC" PAGE
                                           : SELECT " ORDER BY at DESC, id DESC" PAGE,
                             &pp, sizeof(store_audit), read_row, (void **)out, n);
}

int store__pg_audit_purge(void *ctx, int64_t before_ms, size_t *purged)
{
    store__pg_params pp = {0};
    int changes = 0;
    store__pg_int(&pp, before_ms);
    int rc = store__pg_write(ctx, "DELETE FROM audit_log WHERE at < $1", &pp, &changes);
    if (purged)
        *purged = rc == STORE_OK ? (size_t)changes : 0;
    return rc;
}
