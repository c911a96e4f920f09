/* store_pg: the PostgreSQL backend (libpq), for several nodes sharing one database. One
 * connection per process guarded by a mutex, re-established on the next call after it
 * broke; every write is one transaction (a single statement, or BEGIN … COMMIT); the key
 * limit holds across nodes because key_create locks the account row (SELECT … FOR UPDATE)
 * before counting. Migrations are keyed on the schema_version table, applied under an
 * advisory lock so nodes starting together migrate once. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

/* Migrations: index i brings the schema from version i to i+1. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, created BIGINT NOT NULL, seq BIGSERIAL);"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, perms INTEGER NOT NULL,"
    "  created BIGINT NOT NULL, expires BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0,"
    "  seq BIGSERIAL);"
    "CREATE TABLE turn_keys ("
    "  uid TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL, key_hash TEXT NOT NULL, secret BYTEA NOT NULL,"
    "  created BIGINT NOT NULL, modified BIGINT NOT NULL, seq BIGSERIAL);"
    "CREATE INDEX turn_keys_by_account ON turn_keys(account_id);"
    "CREATE TABLE revocations ("
    "  key_uid TEXT NOT NULL, username_hash TEXT NOT NULL, expires BIGINT NOT NULL,"
    "  PRIMARY KEY (key_uid, username_hash));"
    "CREATE INDEX revocations_by_expiry ON revocations(expires);",
    /* 2: the change log the nodes' caches follow */
    "CREATE TABLE changes ("
    "  rev BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, kind INTEGER NOT NULL,"
    "  key_uid TEXT NOT NULL, username_hash TEXT NOT NULL DEFAULT '',"
    "  expires BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX changes_by_at ON changes(at);",
    /* 3: the audit log (issue 12) */
    "CREATE TABLE audit_log ("
    "  id TEXT PRIMARY KEY, account_id TEXT NOT NULL, at BIGINT NOT NULL,"
    "  action TEXT NOT NULL, result INTEGER NOT NULL, actor_type TEXT NOT NULL,"
    "  actor_id TEXT NOT NULL, actor_ip TEXT NOT NULL, interface TEXT NOT NULL,"
    "  resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,"
    "  old_value TEXT, new_value TEXT, metadata TEXT);"
    "CREATE INDEX audit_log_by_account ON audit_log(account_id, at);",
    /* 4: usage minute and hour rows (issue 14) */
    "CREATE TABLE usage_minute ("
    "  minute BIGINT NOT NULL, account_id TEXT NOT NULL, key_uid TEXT NOT NULL,"
    "  custom_id TEXT NOT NULL, username TEXT NOT NULL, node TEXT NOT NULL,"
    "  egress BIGINT NOT NULL, ingress BIGINT NOT NULL, alloc_ms BIGINT NOT NULL,"
    "  peak BIGINT NOT NULL,"
    "  PRIMARY KEY (minute, account_id, key_uid, custom_id, username, node));"
    "CREATE INDEX usage_minute_by_account ON usage_minute(account_id, minute);"
    "CREATE TABLE usage_hour ("
    "  minute BIGINT NOT NULL, account_id TEXT NOT NULL, key_uid TEXT NOT NULL,"
    "  custom_id TEXT NOT NULL, username TEXT NOT NULL, node TEXT NOT NULL,"
    "  egress BIGINT NOT NULL, ingress BIGINT NOT NULL, alloc_ms BIGINT NOT NULL,"
    "  peak BIGINT NOT NULL,"
    "  PRIMARY KEY (minute, account_id, key_uid, custom_id, username, node));"
    "CREATE INDEX usage_hour_by_account ON usage_hour(account_id, minute);",
    /* 5: shared secrets (issue 15) */
    "CREATE TABLE shared_secrets ("
    "  id TEXT PRIMARY KEY, key_uid TEXT NOT NULL REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL, secret TEXT NOT NULL, alg INTEGER NOT NULL,"
    "  max_ttl BIGINT NOT NULL, created BIGINT NOT NULL, seq BIGSERIAL);"
    "CREATE INDEX shared_secrets_by_key ON shared_secrets(key_uid);",
    /* 6: webhook queue (issue 14) */
    "CREATE TABLE webhooks ("
    "  account_id TEXT PRIMARY KEY, url TEXT NOT NULL, events INTEGER NOT NULL,"
    "  secret TEXT NOT NULL, created BIGINT NOT NULL, modified BIGINT NOT NULL);"
    "CREATE TABLE webhook_queue ("
    "  seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,"
    "  kind INTEGER NOT NULL, created BIGINT NOT NULL, body TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at BIGINT NOT NULL,"
    "  lease_until BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX webhook_queue_due ON webhook_queue(next_at);"
    "CREATE INDEX webhook_queue_by_account ON webhook_queue(account_id, seq);",
    /* 7: key policies and budget states (issue 14 §4) */
    "CREATE TABLE key_policies ("
    "  key_uid TEXT PRIMARY KEY REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL, policy TEXT NOT NULL, modified BIGINT NOT NULL);"
    "CREATE TABLE budgets ("
    "  key_uid TEXT NOT NULL REFERENCES turn_keys(uid) ON DELETE CASCADE,"
    "  custom_id TEXT NOT NULL, period INTEGER NOT NULL, period_start BIGINT NOT NULL,"
    "  limit_bytes BIGINT NOT NULL, period_end BIGINT NOT NULL,"
    "  level INTEGER NOT NULL DEFAULT 0, tripped INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_uid, custom_id, period, period_start, limit_bytes));"
    "CREATE INDEX budgets_by_end ON budgets(period_end);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
#define MIGRATION_LOCK "7432001" /* pg_advisory_xact_lock key: turnkey migrations */
#define FEED_LOCK "7432002"      /* held by every change-log writer until its commit */

/* Records a change in the open transaction. Writers of the log take one lock until their
 * commit, so revisions become visible in order (a reader never skips a late commit); the
 * NOTIFY is only a doorbell, delivered at commit. */
static int log_change(store__pg *p, int kind, const char *key_uid, const char *hash,
                      int64_t expires)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, kind);
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, hash ? hash : "");
    store__pg_int(&pp, expires);
    if (store__pg_exec(p, "SELECT pg_advisory_xact_lock(" FEED_LOCK ")") != STORE_OK ||
        store__pg_run(p,
                      "INSERT INTO changes(at, kind, key_uid, username_hash, expires) VALUES "
                      "(extract(epoch FROM now())::bigint, $1, $2, $3, $4)",
                      &pp, NULL) != STORE_OK)
        return STORE_ERROR;
    return store__pg_exec(p, "NOTIFY turnkey_changes");
}

int store__pg_log_change(store__pg *p, int kind, const char *key_uid, const char *hash,
                         int64_t expires)
{
    return log_change(p, kind, key_uid, hash, expires);
}

static int migrate(store__pg *p, char **err)
{
    PGresult *r = NULL;
    int version = 0;
    if (store__pg_exec(p, "BEGIN") != STORE_OK ||
        store__pg_exec(p, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")") != STORE_OK ||
        store__pg_exec(p, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)") !=
            STORE_OK)
        goto fail;
    store__pg_params none = {0};
    if (!(r = store__pg_query(p, "SELECT version FROM schema_version", &none, PGRES_TUPLES_OK)))
        goto fail;
    if (PQntuples(r) == 0) {
        if (store__pg_exec(p, "INSERT INTO schema_version(version) VALUES (0)") != STORE_OK)
            goto fail;
    } else {
        version = atoi(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    r = NULL;
    if (version > N_MIGRATIONS) {
        *err = util_xasprintf("store schema version %d is newer than this binary (%d)", version,
                              N_MIGRATIONS);
        store__pg_exec(p, "ROLLBACK");
        return STORE_ERROR;
    }
    for (int v = version; v < N_MIGRATIONS; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", v + 1);
        if (store__pg_exec(p, migrations[v]) != STORE_OK || store__pg_exec(p, sql) != STORE_OK)
            goto fail;
        log_debug("store", "applied schema migration %d", v + 1);
    }
    if (store__pg_exec(p, "COMMIT") != STORE_OK)
        goto fail;
    return STORE_OK;
fail:
    PQclear(r);
    *err = util_xasprintf("store migration failed: %s", store__pg_errmsg(p));
    store__pg_exec(p, "ROLLBACK");
    return STORE_ERROR;
}

void *store__pg_open(const char *url, char **err)
{
    store__pg *p = store__pg_new(url);
    if (store__pg_connect(p) != STORE_OK) {
        char *where = store_describe(url);
        *err = util_xasprintf("cannot connect to %s: %s", where, store__pg_errmsg(p));
        free(where);
        goto fail;
    }
    if (migrate(p, err) != STORE_OK)
        goto fail;
    return p;
fail:
    store__pg_free(p);
    return NULL;
}

static void pgs_close(void *ctx)
{
    store__pg_free(ctx);
}

/* --- accounts ------------------------------------------------------------------------ */

static int pgs_account_create(void *ctx, const store_account *a)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, a->id);
    store__pg_text(&pp, a->name);
    store__pg_int(&pp, a->created);
    return store__pg_write(ctx, "INSERT INTO accounts(id, name, created) VALUES ($1,$2,$3)", &pp,
                           NULL);
}

static void read_account(PGresult *r, int row, void *e)
{
    store_account *a = e;
    store__pg_copy_id(a->id, PQgetvalue(r, row, 0));
    a->name = util_xstrdup(PQgetvalue(r, row, 1));
    a->created = store__pg_col_int(r, row, 2);
}

static int pgs_account_get(void *ctx, const char *id, store_account *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, id);
    return store__pg_get_one(ctx, "SELECT id, name, created FROM accounts WHERE id = $1", &pp,
                             read_account, out);
}

static int pgs_account_list(void *ctx, store_account **out, size_t *n)
{
    store__pg_params pp = {0};
    return store__pg_get_all(ctx, "SELECT id, name, created FROM accounts ORDER BY created, seq",
                             &pp, sizeof(store_account), read_account, (void **)out, n);
}

/* --- tokens -------------------------------------------------------------------------- */

static int pgs_token_create(void *ctx, const store_token *t)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, t->id);
    store__pg_text(&pp, t->account_id);
    store__pg_text(&pp, t->name);
    store__pg_text(&pp, t->token_hash);
    store__pg_int(&pp, t->perms);
    store__pg_int(&pp, t->created);
    store__pg_int(&pp, t->expires);
    store__pg_int(&pp, t->revoked);
    /* INSERT … SELECT: no row (and no error) when the account does not exist */
    int changes = 0;
    int rc = store__pg_write(ctx,
                             "INSERT INTO tokens(id, account_id, name, token_hash, perms, created, "
                             "expires, revoked) SELECT $1,$2,$3,$4,$5,$6,$7,$8 "
                             "WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $2)",
                             &pp, &changes);
    return rc == STORE_OK && changes == 0 ? STORE_NOT_FOUND : rc;
}

#define TOKEN_COLS "id, account_id, name, perms, created, expires, revoked, token_hash"

static void read_token(PGresult *r, int row, void *e)
{
    store_token *t = e;
    store__pg_copy_id(t->id, PQgetvalue(r, row, 0));
    store__pg_copy_id(t->account_id, PQgetvalue(r, row, 1));
    t->name = util_xstrdup(PQgetvalue(r, row, 2));
    t->perms = (unsigned)store__pg_col_int(r, row, 3);
    t->created = store__pg_col_int(r, row, 4);
    t->expires = store__pg_col_int(r, row, 5);
    t->revoked = store__pg_col_int(r, row, 6);
    snprintf(t->token_hash, sizeof t->token_hash, "%s", PQgetvalue(r, row, 7));
}

static int pgs_token_by_hash(void *ctx, const char *token_hash, store_token *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, token_hash);
    return store__pg_get_one(ctx, "SELECT " TOKEN_COLS " FROM tokens WHERE token_hash = $1", &pp,
                             read_token, out);
}

static int pgs_token_list(void *ctx, const char *account_id, store_token **out, size_t *n)
{
    store__pg_params pp = {0};
    if (account_id)
        store__pg_text(&pp, account_id);
    return store__pg_get_all(ctx,
                             account_id ? "SELECT " TOKEN_COLS " FROM tokens WHERE account_id = $1 "
                                          "ORDER BY created, seq"
                                        : "SELECT " TOKEN_COLS " FROM tokens ORDER BY created, seq",
                             &pp, sizeof(store_token), read_token, (void **)out, n);
}

static int pgs_token_revoke(void *ctx, const char *id, int64_t now)
{
    store__pg_params pp = {0};
    int changes = 0;
    store__pg_int(&pp, now);
    store__pg_text(&pp, id);
    int rc = store__pg_write(ctx, "UPDATE tokens SET revoked = $1 WHERE id = $2 AND revoked = 0",
                             &pp, &changes);
    return rc == STORE_OK && changes == 0 ? STORE_NOT_FOUND : rc;
}

/* --- TURN keys ----------------------------------------------------------------------- */

#define KEY_COLS "uid, account_id, name, created, modified, key_hash, secret"

static void read_key(PGresult *r, int row, void *e)
{
    store_key *k = e;
    store__pg_copy_id(k->uid, PQgetvalue(r, row, 0));
    store__pg_copy_id(k->account_id, PQgetvalue(r, row, 1));
    k->name = util_xstrdup(PQgetvalue(r, row, 2));
    k->created = store__pg_col_int(r, row, 3);
    k->modified = store__pg_col_int(r, row, 4);
    snprintf(k->key_hash, sizeof k->key_hash, "%s", PQgetvalue(r, row, 5));
    const char *hex = PQgetvalue(r, row, 6); /* bytea, hex output: \x followed by 64 digits */
    if (strlen(hex) == 2 + 2 * STORE_SECRET_LEN && hex[0] == '\\' && hex[1] == 'x')
        util_hex_decode(hex + 2, STORE_SECRET_LEN, k->secret);
}

static int pgs_key_create(void *ctx, const store_key *k, size_t max_keys)
{
    store__pg *p = ctx;
    PGresult *r = NULL;
    int rc = STORE_ERROR;
    store__pg_params acct = {0}, ins = {0};
    store__pg_text(&acct, k->account_id);
    store__pg_lock(p);
    if (store__pg_begin(p) != STORE_OK)
        goto out;
    /* the account row lock serialises every node's creates for this account; the count is
     * a later statement, so (READ COMMITTED) it sees every create committed before it */
    if (!(r = store__pg_query(p, "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &acct,
                              PGRES_TUPLES_OK)))
        goto rollback;
    if (PQntuples(r) == 0) {
        rc = STORE_NOT_FOUND;
        goto rollback;
    }
    PQclear(r);
    if (!(r = store__pg_query(p, "SELECT count(*) FROM turn_keys WHERE account_id = $1", &acct,
                              PGRES_TUPLES_OK)))
        goto rollback;
    if (!store__key_admit((size_t)store__pg_col_int(r, 0, 0), max_keys)) {
        rc = STORE_LIMIT;
        goto rollback;
    }
    store__pg_text(&ins, k->uid);
    store__pg_text(&ins, k->account_id);
    store__pg_text(&ins, k->name);
    store__pg_text(&ins, k->key_hash);
    store__pg_bin(&ins, k->secret, STORE_SECRET_LEN);
    store__pg_int(&ins, k->created);
    store__pg_int(&ins, k->modified);
    if (store__pg_run(p,
                      "INSERT INTO turn_keys(uid, account_id, name, key_hash, secret, created, "
                      "modified) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                      &ins, NULL) != STORE_OK ||
        log_change(p, STORE_CHANGE_KEY_CREATED, k->uid, NULL, 0) != STORE_OK ||
        store__pg_exec(p, "COMMIT") != STORE_OK)
        goto rollback;
    rc = STORE_OK;
    goto out;
rollback:
    store__pg_exec(p, "ROLLBACK");
out:
    PQclear(r);
    store__pg_unlock(p);
    return rc;
}

static int pgs_key_get(void *ctx, const char *account_id, const char *uid, store_key *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, uid);
    if (account_id)
        store__pg_text(&pp, account_id);
    return store__pg_get_one(ctx,
                             account_id ? "SELECT " KEY_COLS
                                          " FROM turn_keys WHERE uid = $1 AND account_id = $2"
                                        : "SELECT " KEY_COLS " FROM turn_keys WHERE uid = $1",
                             &pp, read_key, out);
}

static int pgs_key_by_uid(void *ctx, const char *uid, store_key *out)
{
    return pgs_key_get(ctx, NULL, uid, out);
}

static int pgs_key_list(void *ctx, const char *account_id, store_key **out, size_t *n)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, account_id);
    return store__pg_get_all(ctx,
                             "SELECT " KEY_COLS " FROM turn_keys WHERE account_id = $1 "
                             "ORDER BY created, seq",
                             &pp, sizeof(store_key), read_key, (void **)out, n);
}

/* BEGIN, then the key row locked FOR UPDATE into *out: STORE_OK (transaction open),
 * STORE_NOT_FOUND or STORE_ERROR (transaction rolled back). Called with the lock held. */
static int begin_key(store__pg *p, const char *account_id, const char *uid, store_key *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, uid);
    store__pg_text(&pp, account_id);
    if (store__pg_begin(p) != STORE_OK)
        return STORE_ERROR;
    int rc = store__pg_one_locked(
        p, "SELECT " KEY_COLS " FROM turn_keys WHERE uid = $1 AND account_id = $2 FOR UPDATE", &pp,
        read_key, out);
    if (rc != STORE_OK)
        store__pg_exec(p, "ROLLBACK");
    return rc;
}

static int pgs_key_rename(void *ctx, const char *account_id, const char *uid, const char *name,
                          int64_t now, store_key *out)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = begin_key(p, account_id, uid, out);
    if (rc != STORE_OK)
        goto out;
    int64_t modified = store__next_modified(out->modified, now);
    store__pg_params pp = {0};
    store__pg_text(&pp, name);
    store__pg_int(&pp, modified);
    store__pg_text(&pp, uid);
    if (store__pg_run(p, "UPDATE turn_keys SET name = $1, modified = $2 WHERE uid = $3", &pp,
                      NULL) != STORE_OK ||
        log_change(p, STORE_CHANGE_KEY_RENAMED, uid, NULL, 0) != STORE_OK ||
        store__pg_exec(p, "COMMIT") != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        store_key_clear(out);
        rc = STORE_ERROR;
        goto out;
    }
    free(out->name);
    out->name = util_xstrdup(name);
    out->modified = modified;
out:
    store__pg_unlock(p);
    return rc;
}

static int pgs_key_delete(void *ctx, const char *account_id, const char *uid, store_key *out)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = begin_key(p, account_id, uid, out);
    if (rc != STORE_OK)
        goto out;
    store__pg_params pp = {0};
    store__pg_text(&pp, uid);
    if (store__pg_run(p, "DELETE FROM turn_keys WHERE uid = $1", &pp, NULL) != STORE_OK ||
        store__pg_run(p, "DELETE FROM revocations WHERE key_uid = $1", &pp, NULL) != STORE_OK ||
        log_change(p, STORE_CHANGE_KEY_DELETED, uid, NULL, 0) != STORE_OK ||
        store__pg_exec(p, "COMMIT") != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        store_key_clear(out);
        rc = STORE_ERROR;
    }
out:
    store__pg_unlock(p);
    return rc;
}

/* --- revocations --------------------------------------------------------------------- */

#define REVOKE_LOCK "7432" /* pg_advisory_xact_lock(REVOKE_LOCK, hashtext(key_uid)) */

/* Inside the transaction, under the key's revocation lock (held until commit, so two nodes
 * revoking for one key count in turn): STORE_OK if (key_uid, h) may be inserted (or is
 * already there), STORE_LIMIT past the key's cap of live revocations. */
static int revoke_admit(store__pg *p, const char *key_uid, const char *h, int64_t now, size_t max)
{
    store__pg_params lk = {0}, pp = {0};
    store__pg_text(&lk, key_uid);
    store__pg_text(&pp, key_uid);
    store__pg_int(&pp, now);
    store__pg_text(&pp, h);
    PGresult *r = store__pg_query(p, "SELECT pg_advisory_xact_lock(" REVOKE_LOCK ", hashtext($1))",
                                  &lk, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    PQclear(r);
    r = store__pg_query(p,
                        "SELECT count(*) FILTER (WHERE expires > $2), "
                        "count(*) FILTER (WHERE username_hash = $3) "
                        "FROM revocations WHERE key_uid = $1",
                        &pp, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    int rc = store__pg_col_int(r, 0, 1) > 0 ||
                     store__revoke_admit((size_t)store__pg_col_int(r, 0, 0), max)
                 ? STORE_OK
                 : STORE_LIMIT;
    PQclear(r);
    return rc;
}

static int pgs_revoke_add(void *ctx, const char *key_uid, const char *h, int64_t expires,
                          int64_t now, size_t max_live)
{
    store__pg *p = ctx;
    store__pg_params pp = {0};
    int added = 0;
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, h);
    store__pg_int(&pp, expires);
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc != STORE_OK)
        goto out;
    if (max_live != STORE_NO_LIMIT &&
        (rc = revoke_admit(p, key_uid, h, now, max_live)) != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        goto out;
    }
    if (store__pg_run(p,
                      "INSERT INTO revocations(key_uid, username_hash, expires) "
                      "VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                      &pp, &added) != STORE_OK ||
        (added && log_change(p, STORE_CHANGE_REVOKED, key_uid, h, expires) != STORE_OK) ||
        store__pg_exec(p, "COMMIT") != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        rc = STORE_ERROR;
    }
out:
    store__pg_unlock(p);
    return rc;
}

static void read_flag(PGresult *r, int row, void *e)
{
    (void)r;
    (void)row;
    *(bool *)e = true;
}

static int pgs_revoke_check(void *ctx, const char *key_uid, const char *h, bool *revoked)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, key_uid);
    store__pg_text(&pp, h);
    int rc = store__pg_get_one(
        ctx, "SELECT 1 FROM revocations WHERE key_uid = $1 AND username_hash = $2", &pp, read_flag,
        revoked);
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

static int pgs_revoke_purge(void *ctx, int64_t now, size_t *purged)
{
    store__pg_params pp = {0};
    int changes = 0;
    store__pg_int(&pp, now);
    int rc = store__pg_write(ctx, "DELETE FROM revocations WHERE expires <= $1", &pp, &changes);
    if (purged)
        *purged = (size_t)changes;
    return rc;
}

static int pgs_revoke_each(void *ctx, int64_t now, store_revoke_fn fn, void *arg)
{
    store__pg *p = ctx;
    store__pg_params pp = {0};
    store__pg_int(&pp, now);
    store__pg_lock(p);
    PGresult *r = store__pg_read(p,
                                 "SELECT key_uid, username_hash, expires FROM revocations "
                                 "WHERE expires > $1 ORDER BY key_uid, username_hash",
                                 &pp);
    store__pg_unlock(p);
    if (!r)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), store__pg_col_int(r, i, 2));
    PQclear(r);
    return STORE_OK;
}

/* --- change feed --------------------------------------------------------------------- */

static int pgs_key_list_all(void *ctx, store_key **out, size_t *n)
{
    store__pg_params pp = {0};
    return store__pg_get_all(ctx, "SELECT " KEY_COLS " FROM turn_keys ORDER BY created, seq", &pp,
                             sizeof(store_key), read_key, (void **)out, n);
}

static void read_change(PGresult *r, int row, void *e)
{
    store_change *c = e;
    c->rev = store__pg_col_int(r, row, 0);
    c->kind = (int)store__pg_col_int(r, row, 1);
    store__pg_copy_id(c->key_uid, PQgetvalue(r, row, 2));
    snprintf(c->username_hash, sizeof c->username_hash, "%s", PQgetvalue(r, row, 3));
    c->expires = store__pg_col_int(r, row, 4);
}

static void read_feed(PGresult *r, int row, void *e)
{
    store_feed *f = e;
    f->oldest = store__pg_col_int(r, row, 0);
    f->latest = store__pg_col_int(r, row, 1);
}

static int pgs_changes_since(void *ctx, int64_t after, size_t max, store_change **out, size_t *n,
                             store_feed *feed)
{
    store__pg_params none = {0}, pp = {0};
    int rc =
        store__pg_get_one(ctx, "SELECT coalesce(min(rev), 0), coalesce(max(rev), 0) FROM changes",
                          &none, read_feed, feed);
    if (rc != STORE_OK)
        return STORE_ERROR;
    store__pg_int(&pp, after);
    store__pg_int(&pp, (int64_t)max);
    return store__pg_get_all(ctx,
                             "SELECT rev, kind, key_uid, username_hash, expires FROM changes "
                             "WHERE rev > $1 ORDER BY rev LIMIT $2",
                             &pp, sizeof(store_change), read_change, (void **)out, n);
}

static int pgs_changes_prune(void *ctx, int64_t before, size_t *pruned)
{
    store__pg_params pp = {0};
    int changes = 0;
    store__pg_int(&pp, before);
    int rc = store__pg_write(ctx,
                             "DELETE FROM changes WHERE at < $1 AND "
                             "rev < (SELECT max(rev) FROM changes)",
                             &pp, &changes);
    if (pruned)
        *pruned = (size_t)changes;
    return rc;
}

static int pgs_changes_wait(void *ctx, int timeout_ms)
{
    return store__pg_listen_wait(ctx, "turnkey_changes", timeout_ms);
}

static const store_ops pg_ops = {
    .close = pgs_close,
    .account_create = pgs_account_create,
    .account_get = pgs_account_get,
    .account_list = pgs_account_list,
    .token_create = pgs_token_create,
    .token_by_hash = pgs_token_by_hash,
    .token_list = pgs_token_list,
    .token_revoke = pgs_token_revoke,
    .key_create = pgs_key_create,
    .key_get = pgs_key_get,
    .key_by_uid = pgs_key_by_uid,
    .key_list = pgs_key_list,
    .key_rename = pgs_key_rename,
    .key_delete = pgs_key_delete,
    .revoke_add = pgs_revoke_add,
    .revoke_check = pgs_revoke_check,
    .revoke_purge = pgs_revoke_purge,
    .revoke_each = pgs_revoke_each,
    .key_list_all = pgs_key_list_all,
    .changes_since = pgs_changes_since,
    .changes_prune = pgs_changes_prune,
    .changes_wait = pgs_changes_wait,
    .audit_add = store__pg_audit_add,
    .audit_list = store__pg_audit_list,
    .audit_purge = store__pg_audit_purge,
    .usage_add = store__pg_usage_add,
    .usage_query = store__pg_usage_query,
    .usage_rollup = store__pg_usage_rollup,
    .secret_add = store__pg_secret_add,
    .secret_list = store__pg_secret_list,
    .secret_delete = store__pg_secret_delete,
    .secret_list_all = store__pg_secret_list_all,
    .webhook_put = store__pg_webhook_put,
    .webhook_get = store__pg_webhook_get,
    .webhook_delete = store__pg_webhook_delete,
    .webhook_enqueue = store__pg_webhook_enqueue,
    .webhook_claim = store__pg_webhook_claim,
    .webhook_done = store__pg_webhook_done,
    .webhook_retry = store__pg_webhook_retry,
    .webhook_count = store__pg_webhook_count,
    .policy_put = store__pg_policy_put,
    .policy_get = store__pg_policy_get,
    .policy_delete = store__pg_policy_delete,
    .policy_list_all = store__pg_policy_list_all,
    .budget_mark = store__pg_budget_mark,
    .budget_list = store__pg_budget_list,
    .budget_purge = store__pg_budget_purge,
};

const store_ops *store__pg_ops(void)
{
    return &pg_ops;
}
