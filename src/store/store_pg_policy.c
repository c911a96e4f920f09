/* store_pg_policy: key policies and budget states of the PostgreSQL backend (issue 14 §4;
 * schema: the "7: key policies" migration in store_pg.c). budget_mark creates the row if
 * absent and then locks it (FOR UPDATE), so marks of several nodes advance a level or a trip
 * exactly once. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define POLICY_COLS "key_uid, account_id, policy, modified"
#define BUDGET_COLS                                                                                \
    "key_uid, custom_id, period, period_start, limit_bytes, period_end, level, tripped"

static void rd_policy(PGresult *r, int row, void *e)
{
    store_policy *p = e;
    store__pg_copy_id(p->key_uid, PQgetvalue(r, row, 0));
    store__pg_copy_id(p->account_id, PQgetvalue(r, row, 1));
    p->json = util_xstrdup(PQgetvalue(r, row, 2));
    p->modified = store__pg_col_int(r, row, 3);
}

static void rd_budget(PGresult *r, int row, void *e)
{
    store_budget *b = e;
    store__pg_copy_id(b->key_uid, PQgetvalue(r, row, 0));
    snprintf(b->custom_id, sizeof b->custom_id, "%s", PQgetvalue(r, row, 1));
    b->period = (int)store__pg_col_int(r, row, 2);
    b->period_start = store__pg_col_int(r, row, 3);
    b->limit_bytes = (uint64_t)store__pg_col_int(r, row, 4);
    b->period_end = store__pg_col_int(r, row, 5);
    b->level = (int)store__pg_col_int(r, row, 6);
    b->tripped = (int)store__pg_col_int(r, row, 7);
}

/* Commits (or rolls back) and unlocks. */
static int finish(store__pg *p, int rc)
{
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK)
        store__pg_exec(p, "ROLLBACK");
    store__pg_unlock(p);
    return rc;
}

/* Inside the transaction: the key row locked (STORE_NOT_FOUND if it is not there, or not
 * account_id's when that is not NULL). */
static int lock_key(store__pg *p, const char *key_uid, const char *account_id)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, account_id);
    PGresult *r = store__pg_query(p,
                                  "SELECT 1 FROM turn_keys WHERE uid = $1 AND ($2::text IS NULL "
                                  "OR account_id = $2) FOR UPDATE",
                                  &pp, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    int rc = PQntuples(r) ? STORE_OK : STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static int untrip(store__pg *p, const char *key_uid)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    int rc = store__pg_run(p, "UPDATE budgets SET tripped = 0 WHERE key_uid = $1", &pp, NULL);
    if (rc == STORE_OK)
        rc = store__pg_log_change(p, STORE_CHANGE_POLICY, key_uid, "", 0);
    return rc;
}

/* Inside the transaction (the key row locked): STORE_OK if the key's stored document is
 * expect (NULL: none). */
static int expect_doc(store__pg *p, const char *key_uid, const char *expect)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    PGresult *r = store__pg_query(p, "SELECT policy FROM key_policies WHERE key_uid = $1", &pp,
                                  PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    int rc = PQntuples(r)
                 ? (expect && !strcmp(PQgetvalue(r, 0, 0), expect) ? STORE_OK : STORE_CONFLICT)
                 : (expect ? STORE_CONFLICT : STORE_OK);
    PQclear(r);
    return rc;
}

int store__pg_policy_put(void *ctx, const store_policy *pol, bool check, const char *expect)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK) {
        store__pg_unlock(p);
        return rc;
    }
    rc = lock_key(p, pol->key_uid, pol->account_id);
    if (rc == STORE_OK && check)
        rc = expect_doc(p, pol->key_uid, expect);
    if (rc == STORE_OK) {
        store__pg_params pp = {0};
        store__pg_text(&pp, pol->key_uid);
        store__pg_text(&pp, pol->account_id);
        store__pg_text(&pp, pol->json);
        store__pg_int(&pp, pol->modified);
        rc = store__pg_run(p,
                           "INSERT INTO key_policies(" POLICY_COLS ") VALUES ($1, $2, $3, $4) "
                           "ON CONFLICT (key_uid) DO UPDATE SET policy = excluded.policy, "
                           "modified = excluded.modified",
                           &pp, NULL);
    }
    if (rc == STORE_OK)
        rc = untrip(p, pol->key_uid);
    return finish(p, rc);
}

int store__pg_policy_get(void *ctx, const char *key_uid, store_policy *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    return store__pg_get_one(ctx, "SELECT " POLICY_COLS " FROM key_policies WHERE key_uid = $1",
                             &pp, rd_policy, out);
}

int store__pg_policy_delete(void *ctx, const char *account_id, const char *key_uid)
{
    store__pg *p = ctx;
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, account_id);
    store__pg_lock(p);
    int rc = store__pg_begin(p), n = 0;
    if (rc != STORE_OK) {
        store__pg_unlock(p);
        return rc;
    }
    rc = store__pg_run(p, "DELETE FROM key_policies WHERE key_uid = $1 AND account_id = $2", &pp,
                       &n);
    if (rc == STORE_OK && n == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = untrip(p, key_uid);
    return finish(p, rc);
}

int store__pg_policy_list_all(void *ctx, store_policy **out, size_t *n)
{
    store__pg_params pp = {0};
    return store__pg_get_all(ctx, "SELECT " POLICY_COLS " FROM key_policies ORDER BY key_uid", &pp,
                             sizeof(store_policy), rd_policy, (void **)out, n);
}

static void budget_params(store__pg_params *pp, const store_budget *b)
{
    store__pg_text(pp, b->key_uid);
    store__pg_text(pp, b->custom_id);
    store__pg_int(pp, b->period);
    store__pg_int(pp, b->period_start);
    store__pg_int(pp, (int64_t)b->limit_bytes);
    store__pg_int(pp, b->period_end);
}

/* Inside the transaction: the row exists and is locked; its level and trip. */
static int lock_row(store__pg *p, const store_budget *b, int *level, int *tripped)
{
    store__pg_params pp = {0};
    budget_params(&pp, b);
    int rc = store__pg_run(p,
                           "INSERT INTO budgets(" BUDGET_COLS ") VALUES ($1,$2,$3,$4,$5,$6,0,0) "
                           "ON CONFLICT DO NOTHING",
                           &pp, NULL);
    if (rc != STORE_OK)
        return rc;
    pp.n = 5;
    PGresult *r = store__pg_query(p,
                                  "SELECT level, tripped FROM budgets WHERE key_uid = $1 AND "
                                  "custom_id = $2 AND period = $3 AND period_start = $4 AND "
                                  "limit_bytes = $5 FOR UPDATE",
                                  &pp, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    rc = PQntuples(r) == 1 ? STORE_OK : STORE_ERROR;
    if (rc == STORE_OK) {
        *level = (int)store__pg_col_int(r, 0, 0);
        *tripped = (int)store__pg_col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

int store__pg_budget_mark(void *ctx, const store_budget *b, unsigned *advanced)
{
    store__pg *p = ctx;
    int level = 0, tripped = 0;
    unsigned adv = 0;
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK) {
        store__pg_unlock(p);
        return rc;
    }
    rc = lock_key(p, b->key_uid, NULL);
    if (rc == STORE_OK)
        rc = lock_row(p, b, &level, &tripped);
    if (rc == STORE_OK) {
        adv = (b->level > level ? STORE_BUDGET_NOTIFY : 0) |
              (b->tripped && !tripped ? STORE_BUDGET_TRIP : 0);
        store__pg_params pp = {0};
        budget_params(&pp, b);
        pp.n = 5;
        store__pg_int(&pp, b->level > level ? b->level : level);
        store__pg_int(&pp, tripped ? tripped : b->tripped);
        if (adv)
            rc = store__pg_run(p,
                               "UPDATE budgets SET level = $6, tripped = $7 WHERE key_uid = $1 "
                               "AND custom_id = $2 AND period = $3 AND period_start = $4 AND "
                               "limit_bytes = $5",
                               &pp, NULL);
    }
    if (rc == STORE_OK && (adv & STORE_BUDGET_TRIP))
        rc = store__pg_log_change(p, STORE_CHANGE_BUDGET_TRIPPED, b->key_uid, b->custom_id,
                                  b->period_end);
    rc = finish(p, rc);
    *advanced = rc == STORE_OK ? adv : 0;
    return rc;
}

int store__pg_budget_list(void *ctx, const char *key_uid, int64_t now, bool tripped_only,
                          store_budget **out, size_t *n)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, now);
    store__pg_text(&pp, key_uid);
    store__pg_int(&pp, tripped_only);
    return store__pg_get_all(ctx,
                             "SELECT " BUDGET_COLS " FROM budgets WHERE period_end > $1 AND "
                             "($2::text IS NULL OR key_uid = $2) AND ($3 = 0 OR tripped > 0) "
                             "ORDER BY key_uid, custom_id, period, period_start",
                             &pp, sizeof(store_budget), rd_budget, (void **)out, n);
}

int store__pg_budget_purge(void *ctx, int64_t before, size_t *purged)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, before);
    int n = 0;
    int rc = store__pg_write(ctx, "DELETE FROM budgets WHERE period_end < $1", &pp, &n);
    *purged = rc == STORE_OK ? (size_t)n : 0;
    return rc;
}
