/* store: the SQLite connection shared by the files of the SQLite backend. */
#ifndef TURNKEY_STORE_SQLITE_INTERNAL_H
#define TURNKEY_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "turnkey/log.h"
#include "turnkey/store.h"

#define STMT_CACHE 48

/* Prepared statements are kept for the life of the connection, keyed by the address of
 * their (static) SQL text: no statement is compiled twice on the request path. */
typedef struct sq {
    sqlite3 *db;
    pthread_mutex_t mu;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    int n_cache;
    log_limiter rl; /* errors on the request path: API clients can make them repeat */
} sq;

/* Statement helpers (store_sqlite.c), shared by the backend's files. */
int store__sqlite_exec(sq *q, const char *sql);
/* A prepared statement for the static SQL text sql (cached by its address). */
sqlite3_stmt *store__sqlite_prep(sq *q, const char *sql);
/* Done with a statement from store__sqlite_prep: reset (or freed if uncached). */
void store__sqlite_release(sq *q, sqlite3_stmt *st);
void store__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
const char *store__sqlite_col_text(sqlite3_stmt *st, int i); /* "" for NULL */
void store__sqlite_copy_id(char dst[STORE_ID_LEN + 1], const char *src);
/* Steps a bound single-statement write; *changes (if not NULL) = rows changed. */
int store__sqlite_step_done(sq *q, sqlite3_stmt *st, int *changes);
/* Records a change in the open write transaction. */
int store__sqlite_log_change(sq *q, int kind, const char *key_uid, const char *hash,
                             int64_t expires);
/* Runs `DELETE … WHERE column < ?1` with t under the lock; *deleted = rows removed. */
int store__sqlite_delete_before(sq *q, const char *sql, int64_t t, size_t *deleted);
typedef void (*store__sqlite_row_fn)(sqlite3_stmt *st, void *elem);
/* Steps a bound statement to its end, appending each row (read by rd into a zeroed element)
 * to *arr (*len elements, grown as needed). Returns the last sqlite3_step result:
 * SQLITE_DONE when every row was read. */
int store__sqlite_collect(sqlite3_stmt *st, size_t elem_size, store__sqlite_row_fn rd, void **arr,
                          size_t *len);
/* One row of sql (one text parameter) read by rd into out, under the lock: STORE_OK,
 * STORE_NOT_FOUND or STORE_ERROR. */
int store__sqlite_get_one(sq *q, const char *sql, const char *param, store__sqlite_row_fn rd,
                          void *out);
/* Every row of sql (one optional text parameter) read by rd into a new array. */
int store__sqlite_get_all(sq *q, const char *sql, const char *param, size_t elem_size,
                          store__sqlite_row_fn rd, void (*free_arr)(void *arr, size_t n),
                          void **out, size_t *n);
#define STORE__SQLITE_KEY_COLS "uid, account_id, name, created, modified, key_hash, secret"
void store__sqlite_read_key(sqlite3_stmt *st, void *e);
void store__sqlite_free_keys(void *arr, size_t n);

/* store_sqlite_feed.c: revocations and the change feed (ctx = the sq). */
int store__sqlite_revoke_add(void *ctx, const char *key_uid, const char *h, int64_t expires,
                             int64_t now, size_t max_live);
int store__sqlite_revoke_check(void *ctx, const char *key_uid, const char *h, bool *revoked);
int store__sqlite_revoke_purge(void *ctx, int64_t now, size_t *purged);
int store__sqlite_revoke_each(void *ctx, int64_t now, store_revoke_fn fn, void *arg);
int store__sqlite_key_list_all(void *ctx, store_key **out, size_t *n);
int store__sqlite_changes_since(void *ctx, int64_t after, size_t max, store_change **out, size_t *n,
                                store_feed *feed);
int store__sqlite_changes_prune(void *ctx, int64_t before, size_t *pruned);
int store__sqlite_changes_wait(void *ctx, int timeout_ms);

#endif
