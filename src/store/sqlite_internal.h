/* store: the SQLite connection shared by the files of the SQLite backend. */
#ifndef TURNKEY_STORE_SQLITE_INTERNAL_H
#define TURNKEY_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "turnkey/log.h"

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

/* Records a change in the open transaction (q->mu held): store_sqlite.c. */
int store__sqlite_log_change(sq *q, int kind, const char *key_uid, const char *hash,
                             int64_t expires);

#endif
