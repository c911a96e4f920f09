/* store_pg_webhook: the webhook tables of the PostgreSQL backend (schema: migration 6 in
 * store_pg.c). Several nodes share the queue: a claim leases due rows it locked with
 * FOR UPDATE SKIP LOCKED, so each event is delivered by one node at a time; a node that dies
 * mid-delivery leaves a lease that simply runs out, and another node takes the event. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define HOOK_COLS "account_id, url, events, secret, created, modified"

static void read_hook(PGresult *r, int row, void *elem)
{
    store_webhook *w = elem;
    store__pg_copy_id(w->account_id, PQgetvalue(r, row, 0));
    w->url = util_xstrdup(PQgetvalue(r, row, 1));
    w->events = (unsigned)store__pg_col_int(r, row, 2);
    snprintf(w->secret, sizeof w->secret, "%s", PQgetvalue(r, row, 3));
    w->created = store__pg_col_int(r, row, 4);
    w->modified = store__pg_col_int(r, row, 5);
}

typedef struct put_out {
    store_webhook *w;
    bool *created;
} put_out;

static void read_put(PGresult *r, int row, void *elem)
{
    put_out *o = elem;
    read_hook(r, row, o->w);
    *o->created = PQgetvalue(r, row, 6)[0] == 't';
}

int store__pg_webhook_put(void *ctx, const store_webhook *w, bool keep_secret, store_webhook *out,
                          bool *created)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, w->account_id);
    store__pg_text(&pp, w->url);
    store__pg_int(&pp, w->events);
    store__pg_text(&pp, w->secret);
    store__pg_int(&pp, w->created);
    store__pg_int(&pp, w->modified);
    store__pg_text(&pp, keep_secret ? "true" : "false");
    put_out o = {out, created};
    int rc = store__pg_get_one(
        ctx,
        "INSERT INTO webhooks(" HOOK_COLS ") VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (account_id) DO UPDATE SET url = excluded.url, events = excluded.events,"
        " modified = excluded.modified,"
        " secret = CASE WHEN $7::boolean THEN webhooks.secret ELSE excluded.secret END"
        " RETURNING " HOOK_COLS ", (xmax = 0) AS inserted",
        &pp, read_put, &o);
    return rc == STORE_OK ? STORE_OK : STORE_ERROR;
}

int store__pg_webhook_get(void *ctx, const char *account_id, store_webhook *out)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, account_id);
    return store__pg_get_one(ctx, "SELECT " HOOK_COLS " FROM webhooks WHERE account_id = $1", &pp,
                             read_hook, out);
}

int store__pg_webhook_delete(void *ctx, const char *account_id, store_webhook *out)
{
    store__pg *p = ctx;
    store__pg_params pp = {0};
    store__pg_text(&pp, account_id);
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    if (rc == STORE_OK)
        rc = store__pg_one_locked(p,
                                  "DELETE FROM webhooks WHERE account_id = $1 RETURNING " HOOK_COLS,
                                  &pp, read_hook, out);
    if (rc == STORE_OK)
        rc = store__pg_run(p, "DELETE FROM webhook_queue WHERE account_id = $1", &pp, NULL);
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        store_webhook_clear(out);
    }
    store__pg_unlock(p);
    return rc;
}

static int enqueue_one(store__pg *p, const store_webhook_event *e, size_t max, size_t *queued,
                       size_t *dropped)
{
    store__pg_params pp = {0};
    store__pg_text(&pp, e->id);
    store__pg_text(&pp, e->account_id);
    store__pg_int(&pp, e->kind);
    store__pg_int(&pp, e->created);
    store__pg_text(&pp, e->body);
    store__pg_int(&pp, e->next_at);
    int added = 0;
    int rc = store__pg_run(p,
                           "INSERT INTO webhook_queue(id, account_id, kind, created, body, next_at)"
                           " SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM webhooks"
                           " WHERE account_id = $2 AND (events & $3::integer) <> 0)",
                           &pp, &added);
    if (rc != STORE_OK || added == 0)
        return rc;
    (*queued)++;
    store__pg_params tp = {0};
    store__pg_text(&tp, e->account_id);
    store__pg_int(&tp, (int64_t)max);
    int trimmed = 0;
    rc = store__pg_run(p,
                       "DELETE FROM webhook_queue WHERE account_id = $1 AND seq <= (SELECT seq FROM"
                       " webhook_queue WHERE account_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                       &tp, &trimmed);
    *dropped += (size_t)trimmed;
    return rc;
}

int store__pg_webhook_enqueue(void *ctx, const store_webhook_event *e, size_t n,
                              size_t max_per_account, size_t *queued, size_t *dropped)
{
    store__pg *p = ctx;
    store__pg_lock(p);
    int rc = store__pg_begin(p);
    for (size_t i = 0; i < n && rc == STORE_OK; i++)
        rc = enqueue_one(p, &e[i], max_per_account, queued, dropped);
    if (rc == STORE_OK)
        rc = store__pg_exec(p, "COMMIT");
    if (rc != STORE_OK) {
        store__pg_exec(p, "ROLLBACK");
        *queued = *dropped = 0;
    }
    store__pg_unlock(p);
    return rc;
}

static void read_event(PGresult *r, int row, void *elem)
{
    store_webhook_event *e = elem;
    e->seq = store__pg_col_int(r, row, 0);
    store__pg_copy_id(e->id, PQgetvalue(r, row, 1));
    store__pg_copy_id(e->account_id, PQgetvalue(r, row, 2));
    e->kind = (unsigned)store__pg_col_int(r, row, 3);
    e->created = store__pg_col_int(r, row, 4);
    e->body = util_xstrdup(PQgetvalue(r, row, 5));
    e->attempts = (int)store__pg_col_int(r, row, 6);
    e->next_at = store__pg_col_int(r, row, 7);
    e->url = util_xstrdup(PQgetvalue(r, row, 8));
    snprintf(e->secret, sizeof e->secret, "%s", PQgetvalue(r, row, 9));
}

static int by_seq(const void *a, const void *b)
{
    int64_t x = ((const store_webhook_event *)a)->seq, y = ((const store_webhook_event *)b)->seq;
    return (x > y) - (x < y);
}

int store__pg_webhook_claim(void *ctx, int64_t now, int64_t lease_until, size_t max,
                            store_webhook_event **out, size_t *n)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, now);
    store__pg_int(&pp, lease_until);
    store__pg_int(&pp, (int64_t)max);
    int rc = store__pg_get_all(
        ctx,
        "WITH c AS (SELECT seq FROM webhook_queue WHERE next_at <= $1::bigint"
        " AND lease_until <= $1::bigint ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)"
        " UPDATE webhook_queue e SET lease_until = $2::bigint FROM c, webhooks w"
        " WHERE e.seq = c.seq AND w.account_id = e.account_id"
        " RETURNING e.seq, e.id, e.account_id, e.kind, e.created, e.body, e.attempts, e.next_at,"
        " w.url, w.secret",
        &pp, sizeof(store_webhook_event), read_event, (void **)out, n);
    if (rc == STORE_OK && *n > 1)
        qsort(*out, *n, sizeof **out, by_seq);
    return rc;
}

int store__pg_webhook_done(void *ctx, int64_t seq)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, seq);
    return store__pg_write(ctx, "DELETE FROM webhook_queue WHERE seq = $1", &pp, NULL);
}

int store__pg_webhook_retry(void *ctx, int64_t seq, int attempts, int64_t next_at)
{
    store__pg_params pp = {0};
    store__pg_int(&pp, attempts);
    store__pg_int(&pp, next_at);
    store__pg_int(&pp, seq);
    return store__pg_write(ctx,
                           "UPDATE webhook_queue SET attempts = $1, next_at = $2, lease_until = 0"
                           " WHERE seq = $3",
                           &pp, NULL);
}

static void read_count(PGresult *r, int row, void *e)
{
    *(size_t *)e = (size_t)store__pg_col_int(r, row, 0);
}

int store__pg_webhook_count(void *ctx, size_t *queued)
{
    store__pg_params pp = {0};
    return store__pg_get_one(ctx, "SELECT count(*) FROM webhook_queue", &pp, read_count, queued);
}
