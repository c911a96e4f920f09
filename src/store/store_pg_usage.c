/* store_pg_usage: the usage tables of the PostgreSQL backend (schema: migration 4 in
 * store_pg.c). Several nodes add into the same rows (their node column tells them apart);
 * each batch is one transaction. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define ROLLUP_LOCK "7432003" /* pg_advisory_xact_lock key: usage rollups */
#define USAGE_KEY "minute, account_id, key_uid, custom_id, username, node"
#define USAGE_MERGE(t)                                                                             \
    " ON CONFLICT(" USAGE_KEY ") DO UPDATE SET egress = " t ".egress + excluded.egress,"           \
    " ingress = " t ".ingress + excluded.ingress, alloc_ms = " t ".alloc_ms + excluded.alloc_ms,"  \
    " peak = GREATEST(" t ".peak, excluded.peak)"

static const char add_sql[] =
    "INSERT INTO usage_minute(" USAGE_KEY ", egress, ingress, alloc_ms, peak)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)" USAGE_MERGE("usage_minute");

static int add_one(store__pg *p, const store_usage_delta *d)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, d->minute);
    store__pg_text(&pp, d->account_id);
    store__pg_text(&pp, d->key_uid);
    store__pg_text(&pp, d->custom_id);
    store__pg_text(&pp, d->username);
    store__pg_text(&pp, d->node);
    store__pg_int(&pp, (int64_t)d->egress_bytes);
    store__pg_int(&pp, (int64_t)d->ingress_bytes);
    store__pg_int(&pp, (int64_t)d->alloc_ms);
    store__pg_int(&pp, (int64_t)d->peak_allocs);
    return store__pg_run(p, add_sql, &pp, NULL);
}

int store__pg_usage_add(void *ctx, const store_usage_delta *d, size_t n)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK)
        goto out;
    for (size_t i = 0; i < n && rc == STORE_OK; i++)
        rc = add_one(p, &d[i]);
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK)
        store__pg_exec(p, "ROLLBACK");
out:
    store__pg_unlock(p);
    return rc;
}

/* As in the SQLite backend: per minute first (peaks add up across one minute's rows), then
 * per bucket (the largest minute). $1 account, $2 since, $3 until, $4 key, $5 custom id,
 * $6 username, $7 step. */
static void grouped_sql(const store_usage_filter *f, char *sql, size_t cap)
{
    unsigned g = f->group_by;
    snprintf(sql, cap,
             "SELECT CASE WHEN $7::bigint = 0 THEN $2::bigint ELSE minute - minute %% $7::bigint"
             " END AS b, k, c, u, n, sum(e)::bigint AS e, sum(i)::bigint AS i,"
             " sum(a)::bigint AS a, max(p)::bigint AS p FROM ("
             "SELECT minute, %s AS k, %s AS c, %s AS u, %s AS n, sum(egress) AS e,"
             " sum(ingress) AS i, sum(alloc_ms) AS a, sum(peak) AS p FROM ("
             "SELECT * FROM usage_minute UNION ALL SELECT * FROM usage_hour) AS t"
             " WHERE account_id = $1 AND minute >= $2::bigint AND minute < $3::bigint"
             " AND ($4::text IS NULL OR key_uid = $4) AND ($5::text IS NULL OR custom_id = $5)"
             " AND ($6::text IS NULL OR username = $6)"
             " GROUP BY minute, k, c, u, n) AS m GROUP BY b, k, c, u, n",
             g & STORE_USAGE_BY_KEY ? "key_uid" : "''::text",
             g & STORE_USAGE_BY_CUSTOM_ID ? "custom_id" : "''::text",
             g & STORE_USAGE_BY_USERNAME ? "username" : "''::text",
             g & STORE_USAGE_BY_NODE ? "node" : "''::text");
}

static void filter_params(store__pg_params *pp, const store_usage_filter *f)
{
    store__pg_text(pp, f->account_id);
    store__pg_int(pp, f->since);
    store__pg_int(pp, f->until);
    store__pg_text(pp, f->key_uid);
    store__pg_text(pp, f->custom_id);
    store__pg_text(pp, f->username);
    store__pg_int(pp, f->step);
}

static void copy_val(PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

static void read_row(PGresult *r, int row, void *e)
{
    store_usage_row *u = e;
    u->bucket = store__pg_col_int(r, row, 0);
    copy_val(r, row, 1, u->key_uid, sizeof u->key_uid);
    copy_val(r, row, 2, u->custom_id, sizeof u->custom_id);
    copy_val(r, row, 3, u->username, sizeof u->username);
    copy_val(r, row, 4, u->node, sizeof u->node);
    u->egress_bytes = (uint64_t)store__pg_col_int(r, row, 5);
    u->ingress_bytes = (uint64_t)store__pg_col_int(r, row, 6);
    u->alloc_ms = (uint64_t)store__pg_col_int(r, row, 7);
    u->peak_allocs = (uint64_t)store__pg_col_int(r, row, 8);
}

static void read_count(PGresult *r, int row, void *e)
{
    *(size_t *)e = (size_t)store__pg_col_int(r, row, 0);
}

int store__pg_usage_query(void *ctx, const store_usage_filter *f, store_usage_row **out, size_t *n,
                          size_t *total)
{
    char grouped[1400], sql[1600];
    store__pg_params pp = {0};
    grouped_sql(f, grouped, sizeof grouped);
    filter_params(&pp, f);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s) AS g", grouped);
    if (store__pg_get_one(ctx, sql, &pp, read_count, total) != STORE_OK)
        return STORE_ERROR;
    snprintf(sql, sizeof sql, "%s ORDER BY b, k, c, u, n LIMIT $8 OFFSET $9", grouped);
    store__pg_int(&pp, f->limit ? (int64_t)f->limit : INT64_MAX);
    store__pg_int(&pp, (int64_t)f->offset);
    int rc = store__pg_get_all(ctx, sql, &pp, sizeof(store_usage_row), read_row, (void **)out, n);
    if (rc != STORE_OK)
        *total = 0;
    return rc;
}

int store__pg_usage_rollup(void *ctx, int64_t before, int64_t drop_before, size_t *rolled)
{
    store__pg *p = ctx;
    store__pg_params pp = {0}, dp = {0};
    int folded = 0;
    store__pg_int(&pp, before);
    store__pg_int(&dp, drop_before);
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK)
        goto out;
    /* nodes rolling up at once take turns: the second then finds the minute rows gone */
    if (store__pg_exec(p, "SELECT pg_advisory_xact_lock(" ROLLUP_LOCK ")") != STORE_OK ||
        store__pg_run(p,
                      "INSERT INTO usage_hour(" USAGE_KEY ", egress, ingress, alloc_ms, peak)"
                      " SELECT minute - minute % 3600, account_id, key_uid, custom_id, username,"
                      " node, sum(egress), sum(ingress), sum(alloc_ms), max(peak)"
                      " FROM usage_minute WHERE minute < $1::bigint"
                      " GROUP BY 1, 2, 3, 4, 5, 6" USAGE_MERGE("usage_hour"),
                      &pp, NULL) != STORE_OK ||
        store__pg_run(p, "DELETE FROM usage_minute WHERE minute < $1::bigint", &pp, &folded) !=
            STORE_OK ||
        (drop_before > 0 && store__pg_run(p, "DELETE FROM usage_hour WHERE minute < $1::bigint",
                                          &dp, NULL) != STORE_OK) ||
        store__pg_exec(p, "COMMIT") != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        rc = STORE_ERROR;
        goto out;
    }
    *rolled = (size_t)folded;
out:
    store__pg_unlock(p);
    return rc;
}
