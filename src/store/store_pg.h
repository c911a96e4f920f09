/* store_pg: the libpq connection layer shared by the PostgreSQL backend's files
 * (store_pg.c: schema and ops; store_pg_conn.c: connection, statements, parameters). */
#ifndef TURNKEY_STORE_PG_H
#define TURNKEY_STORE_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "turnkey/store.h"

#define STORE_PG_MAX_PARAMS 16

typedef struct store__pg store__pg;

/* Parameters of one statement: text values (ints formatted here), bytea as binary. */
typedef struct store__pg_params {
    int n;
    const char *v[STORE_PG_MAX_PARAMS];
    int len[STORE_PG_MAX_PARAMS];
    int fmt[STORE_PG_MAX_PARAMS];
    char num[STORE_PG_MAX_PARAMS][24];
} store__pg_params;

void store__pg_text(store__pg_params *pp, const char *s);
void store__pg_int(store__pg_params *pp, int64_t x);
void store__pg_bin(store__pg_params *pp, const void *b, int len);

store__pg *store__pg_new(const char *url);
void store__pg_free(store__pg *p);
/* Waits up to timeout_ms on a second connection LISTENing on channel (the feed thread
 * only): 1 notified (or newly connected), 0 timed out, STORE_ERROR (lost; slept). */
int store__pg_listen_wait(store__pg *p, const char *channel, int timeout_ms);
/* (Re)connects: STORE_OK or STORE_ERROR (store__pg_errmsg says why). */
int store__pg_connect(store__pg *p);
const char *store__pg_errmsg(store__pg *p);
void store__pg_lock(store__pg *p);
void store__pg_unlock(store__pg *p);

/* With the lock held: */
/* Runs a statement without parameters (command or query): STORE_OK / STORE_ERROR. */
int store__pg_exec(store__pg *p, const char *sql);
/* Runs a statement; the result when its status is want, else NULL (logged). */
PGresult *store__pg_query(store__pg *p, const char *sql, const store__pg_params *pp,
                          ExecStatusType want);
/* Runs a command; *changes (if not NULL) receives the rows it touched. */
int store__pg_run(store__pg *p, const char *sql, const store__pg_params *pp, int *changes);
/* BEGIN on a live connection (reconnecting once if it had broken). */
int store__pg_begin(store__pg *p);
/* A read on a live connection, retried once on a fresh connection if the old one broke. */
PGresult *store__pg_read(store__pg *p, const char *sql, const store__pg_params *pp);
typedef void (*store__pg_row_fn)(PGresult *r, int row, void *elem);
/* One row (read by rd into out): STORE_OK, STORE_NOT_FOUND or STORE_ERROR. */
int store__pg_one_locked(store__pg *p, const char *sql, const store__pg_params *pp,
                         store__pg_row_fn rd, void *out);

/* Taking the lock: */
/* One single-statement write (its own transaction) on a live connection. */
int store__pg_write(store__pg *p, const char *sql, const store__pg_params *pp, int *changes);
int store__pg_get_one(store__pg *p, const char *sql, const store__pg_params *pp,
                      store__pg_row_fn rd, void *out);
/* Every row, each read by rd into an element of a new array (free with the kind's
 * array_free; rows come from one complete result, so nothing fails half-way). */
int store__pg_get_all(store__pg *p, const char *sql, const store__pg_params *pp, size_t elem_size,
                      store__pg_row_fn rd, void **out, size_t *n);

/* store_pg_audit.c: the audit ops (ctx = the store__pg). */
int store__pg_audit_add(void *ctx, const store_audit *e);
int store__pg_audit_list(void *ctx, const store_audit_query *q, store_audit **out, size_t *n,
                         size_t *total);
int store__pg_audit_purge(void *ctx, int64_t before_ms, size_t *purged);
/* Records a change in the open transaction (lock held): store_pg.c. */
int store__pg_log_change(store__pg *p, int kind, const char *key_uid, const char *hash,
                         int64_t expires);

void store__pg_copy_id(char dst[STORE_ID_LEN + 1], const char *src);
int64_t store__pg_col_int(PGresult *r, int row, int col);

/* store_pg_usage.c: the usage ops (ctx = the store__pg). */
int store__pg_usage_add(void *ctx, const store_usage_delta *d, size_t n);
int store__pg_usage_query(void *ctx, const store_usage_filter *q, store_usage_row **out, size_t *n,
                          size_t *total);
int store__pg_usage_rollup(void *ctx, int64_t before, int64_t drop_before, size_t *rolled);

/* store_pg_webhook.c: the webhook queue ops (ctx = the store__pg). */
int store__pg_webhook_put(void *ctx, const store_webhook *w, bool keep_secret, store_webhook *out,
                          bool *created);
int store__pg_webhook_get(void *ctx, const char *account_id, store_webhook *out);
int store__pg_webhook_delete(void *ctx, const char *account_id, store_webhook *out);
int store__pg_webhook_enqueue(void *ctx, const store_webhook_event *e, size_t n,
                              size_t max_per_account, size_t *queued, size_t *dropped);
int store__pg_webhook_claim(void *ctx, int64_t now, int64_t lease_until, size_t max,
                            store_webhook_event **out, size_t *n);
int store__pg_webhook_done(void *ctx, int64_t seq);
int store__pg_webhook_retry(void *ctx, int64_t seq, int attempts, int64_t next_at);
int store__pg_webhook_count(void *ctx, size_t *queued);

#endif
