/* store_pg_secret: the shared-secret table of the PostgreSQL backend (issue 15; schema:
 * the "5: shared secrets" migration in store_pg.c). secret_add locks the key row (FOR
 * UPDATE) before counting, so the per-key cap holds across nodes. */
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/store.h"

#define COLS "id, key_uid, account_id, secret, alg, max_ttl, created"

static void read_row(PGresult *r, int row, void *e)
{
    store_shared_secret *o = e;
    store__pg_copy_id(o->id, PQgetvalue(r, row, 0));
    store__pg_copy_id(o->key_uid, PQgetvalue(r, row, 1));
    store__pg_copy_id(o->account_id, PQgetvalue(r, row, 2));
    snprintf(o->secret, sizeof o->secret, "%s", PQgetvalue(r, row, 3));
    o->alg = (int)store__pg_col_int(r, row, 4);
    o->max_ttl = store__pg_col_int(r, row, 5);
    o->created = store__pg_col_int(r, row, 6);
}

/* Inside the transaction: the key row locked, then its secrets counted. */
static int admit(store__pg *p, const store_shared_secret *s, size_t max)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, s->key_uid);
    store__pg_text(&pp, s->account_id);
    PGresult *r =
        store__pg_query(p, "SELECT 1 FROM turn_keys WHERE uid = $1 AND account_id = $2 FOR UPDATE",
                        &pp, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    int rc = PQntuples(r) ? STORE_OK : STORE_NOT_FOUND;
    PQclear(r);
    if (rc != STORE_OK)
        return rc;
    pp.n = 1;
    if (!(r = store__pg_query(p, "SELECT count(*) FROM shared_secrets WHERE key_uid = $1", &pp,
                              PGRES_TUPLES_OK)))
        return STORE_ERROR;
    rc = (size_t)store__pg_col_int(r, 0, 0) >= max ? STORE_LIMIT : STORE_OK;
    PQclear(r);
    return rc;
}

int store__pg_secret_add(void *ctx, const store_shared_secret *s, size_t max)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK)
        goto out;
    rc = admit(p, s, max);
    if (rc == STORE_OK) {
        store__pg_params pp = {0};
        store__pg_text(&pp, s->id);
        store__pg_text(&pp, s->key_uid);
        store__pg_text(&pp, s->account_id);
        store__pg_text(&pp, s->secret);
        store__pg_int(&pp, s->alg);
        store__pg_int(&pp, s->max_ttl);
        store__pg_int(&pp, s->created);
        rc = store__pg_run(p, "INSERT INTO shared_secrets(" COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7)",
                           &pp, NULL);
        OPENSSL_cleanse(&pp, sizeof pp);
    }
    if (rc == STORE_OK)
        rc = store__pg_log_change(p, STORE_CHANGE_SECRET_ADDED, s->key_uid, s->id, 0);
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK)
        store__pg_exec(p, "ROLLBACK");
out:
    store__pg_unlock(p);
    return rc;
}

int store__pg_secret_list(void *ctx, const char *key_uid, store_shared_secret **out, size_t *n)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    return store__pg_get_all(ctx,
                             "SELECT " COLS " FROM shared_secrets WHERE key_uid = $1 "
                             "ORDER BY created, seq",
                             &pp, sizeof(store_shared_secret), read_row, (void **)out, n);
}

int store__pg_secret_list_all(void *ctx, store_shared_secret **out, size_t *n)
{
    store__pg_params pp = {0};
    return store__pg_get_all(ctx,
                             "SELECT " COLS " FROM shared_secrets ORDER BY key_uid, created, seq",
                             &pp, sizeof(store_shared_secret), read_row, (void **)out, n);
}

int store__pg_secret_delete(void *ctx, const char *account_id, const char *key_uid, const char *id,
                            store_shared_secret *out)
{
    store__pg *p = ctx;
    store__pg_params pp = {0};
    store__pg_text(&pp, id);
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, account_id);
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK)
        goto out;
    rc = store__pg_one_locked(p,
                              "SELECT " COLS " FROM shared_secrets WHERE id = $1 AND key_uid = $2 "
                              "AND account_id = $3 FOR UPDATE",
                              &pp, read_row, out);
    pp.n = 1;
    if (rc == STORE_OK)
        rc = store__pg_run(p, "DELETE FROM shared_secrets WHERE id = $1", &pp, NULL);
    if (rc == STORE_OK)
        rc = store__pg_log_change(p, STORE_CHANGE_SECRET_DELETED, key_uid, id, 0);
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        OPENSSL_cleanse(out, sizeof *out);
    }
out:
    store__pg_unlock(p);
    return rc;
}
