/* store_pg_conn: the PostgreSQL connection of one process — connect with bounded timeouts,
 * notice a connection the server closed before reusing it, run parameterised statements.
 * See store_pg.h. */
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

struct store__pg {
    PGconn *conn;
    PGconn *listen; /* LISTEN connection of the feed thread (store__pg_listen_wait only) */
    char *url;
    pthread_mutex_t mu;
    char err[256];
};

void store__pg_text(store__pg_params *pp, const char *s)
{
    pp->v[pp->n] = s;
    pp->len[pp->n] = 0;
    pp->fmt[pp->n] = 0;
    pp->n++;
}

void store__pg_int(store__pg_params *pp, int64_t x)
{
    snprintf(pp->num[pp->n], sizeof pp->num[pp->n], "%lld", (long long)x);
    store__pg_text(pp, pp->num[pp->n]);
}

void store__pg_bin(store__pg_params *pp, const void *b, int len)
{
    pp->v[pp->n] = b;
    pp->len[pp->n] = len;
    pp->fmt[pp->n] = 1;
    pp->n++;
}

store__pg *store__pg_new(const char *url)
{
    store__pg *p = util_xcalloc(1, sizeof *p);
    p->url = util_xstrdup(url);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void store__pg_free(store__pg *p)
{
    if (!p)
        return;
    PQfinish(p->conn);
    PQfinish(p->listen);
    OPENSSL_cleanse(p->url, strlen(p->url)); /* it may hold a password */
    free(p->url);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* libpq's messages end in a newline and may span lines: keep the first line. */
static void keep_error(store__pg *p, const char *msg)
{
    snprintf(p->err, sizeof p->err, "%s", msg && *msg ? msg : "unknown error");
    p->err[strcspn(p->err, "\n")] = '\0';
}

const char *store__pg_errmsg(store__pg *p)
{
    return p->err;
}

/* libpq's notices (e.g. the server ending a session) go to the log, not to stderr. */
static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    log_debug("store", "PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* A new connection to url with bounded timeouts; NULL-safe status check by the caller. */
static PGconn *open_conn(const char *url)
{
    /* defaults first: the URL's own parameters (expanded from dbname) override them */
    const char *const keys[] = {"connect_timeout",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "application_name",
                                "dbname",
                                NULL};
    const char *const vals[] = {"5", "5", "2", "3", "10000", "turnkey", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c)
        PQsetNoticeProcessor(c, on_notice, NULL);
    return c;
}

int store__pg_connect(store__pg *p)
{
    PQfinish(p->conn);
    p->conn = open_conn(p->url);
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
        keep_error(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
        return STORE_ERROR;
    }
    /* no statement (or row lock wait) may hold a request longer than this */
    if (store__pg_exec(p, "SET statement_timeout = 10000") != STORE_OK ||
        store__pg_exec(p, "SET client_min_messages = warning") != STORE_OK)
        return STORE_ERROR;
    return STORE_OK;
}

static void sleep_ms(int ms)
{
    poll(NULL, 0, ms);
}

/* Frees every pending notification; true if there was one. */
static bool drain_notifies(PGconn *c)
{
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

int store__pg_listen_wait(store__pg *p, const char *channel, int timeout_ms)
{
    if (!p->listen || PQstatus(p->listen) != CONNECTION_OK) {
        PQfinish(p->listen);
        p->listen = open_conn(p->url);
        char sql[80];
        snprintf(sql, sizeof sql, "LISTEN %s", channel);
        PGresult *r =
            p->listen && PQstatus(p->listen) == CONNECTION_OK ? PQexec(p->listen, sql) : NULL;
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            PQfinish(p->listen);
            p->listen = NULL;
            sleep_ms(timeout_ms);
            return STORE_ERROR;
        }
        return 1; /* a new connection: anything may have happened meanwhile */
    }
    if (PQconsumeInput(p->listen) && drain_notifies(p->listen))
        return 1;
    struct pollfd pfd = {.fd = PQsocket(p->listen), .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    if (!PQconsumeInput(p->listen) || PQstatus(p->listen) != CONNECTION_OK)
        return STORE_ERROR; /* reconnected on the next call */
    return drain_notifies(p->listen) ? 1 : 0;
}

void store__pg_lock(store__pg *p)
{
    pthread_mutex_lock(&p->mu);
}

void store__pg_unlock(store__pg *p)
{
    pthread_mutex_unlock(&p->mu);
}

/* An idle connection has nothing to read: if the socket is readable, the server sent an
 * error or closed it (a restart); libpq notices when it reads that. */
static bool alive(store__pg *p)
{
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK)
        return false;
    struct pollfd pfd = {.fd = PQsocket(p->conn), .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (!PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK))
        return false;
    return PQstatus(p->conn) == CONNECTION_OK;
}

/* A live connection, reconnecting if the old one is gone. */
static int ensure(store__pg *p)
{
    if (alive(p))
        return STORE_OK;
    if (p->conn)
        log_warn("store", "PostgreSQL connection lost; reconnecting");
    if (store__pg_connect(p) != STORE_OK) {
        log_error("store", "PostgreSQL: %s", p->err);
        return STORE_ERROR;
    }
    log_info("store", "PostgreSQL connection established");
    return STORE_OK;
}

PGresult *store__pg_query(store__pg *p, const char *sql, const store__pg_params *pp,
                          ExecStatusType want)
{
    if (!p->conn) {
        keep_error(p, "not connected");
        return NULL;
    }
    PGresult *r = PQexecParams(p->conn, sql, pp->n, NULL, pp->v, pp->len, pp->fmt, 0);
    if (r && PQresultStatus(r) == want)
        return r;
    keep_error(p, r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
    log_error("store", "PostgreSQL: %s (%.60s)", p->err, sql);
    PQclear(r);
    return NULL;
}

int store__pg_exec(store__pg *p, const char *sql)
{
    if (!p->conn)
        return STORE_ERROR;
    PGresult *r = PQexec(p->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? STORE_OK : STORE_ERROR;
    if (rc != STORE_OK) {
        keep_error(p, r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
        log_error("store", "PostgreSQL: %s (%.60s)", p->err, sql);
    }
    PQclear(r);
    return rc;
}

int store__pg_run(store__pg *p, const char *sql, const store__pg_params *pp, int *changes)
{
    PGresult *r = store__pg_query(p, sql, pp, PGRES_COMMAND_OK);
    if (!r)
        return STORE_ERROR;
    if (changes)
        *changes = atoi(PQcmdTuples(r));
    PQclear(r);
    return STORE_OK;
}

int store__pg_begin(store__pg *p)
{
    if (ensure(p) != STORE_OK)
        return STORE_ERROR;
    if (store__pg_exec(p, "BEGIN") == STORE_OK)
        return STORE_OK;
    /* nothing was written yet: a connection that broke just now may be replaced */
    if (alive(p) || ensure(p) != STORE_OK)
        return STORE_ERROR;
    return store__pg_exec(p, "BEGIN");
}

PGresult *store__pg_read(store__pg *p, const char *sql, const store__pg_params *pp)
{
    if (ensure(p) != STORE_OK)
        return NULL;
    PGresult *r = store__pg_query(p, sql, pp, PGRES_TUPLES_OK);
    if (r || alive(p) || ensure(p) != STORE_OK)
        return r;
    return store__pg_query(p, sql, pp, PGRES_TUPLES_OK);
}

int store__pg_one_locked(store__pg *p, const char *sql, const store__pg_params *pp,
                         store__pg_row_fn rd, void *out)
{
    PGresult *r = store__pg_query(p, sql, pp, PGRES_TUPLES_OK);
    if (!r)
        return STORE_ERROR;
    int rc = PQntuples(r) > 0 ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rd(r, 0, out);
    PQclear(r);
    return rc;
}

int store__pg_write(store__pg *p, const char *sql, const store__pg_params *pp, int *changes)
{
    store__pg_lock(p);
    int rc = ensure(p);
    if (rc == STORE_OK)
        rc = store__pg_run(p, sql, pp, changes);
    store__pg_unlock(p);
    return rc;
}

int store__pg_get_one(store__pg *p, const char *sql, const store__pg_params *pp,
                      store__pg_row_fn rd, void *out)
{
    store__pg_lock(p);
    PGresult *r = store__pg_read(p, sql, pp);
    store__pg_unlock(p);
    if (!r)
        return STORE_ERROR;
    int rc = PQntuples(r) > 0 ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rd(r, 0, out);
    PQclear(r);
    return rc;
}

int store__pg_get_all(store__pg *p, const char *sql, const store__pg_params *pp, size_t elem_size,
                      store__pg_row_fn rd, void **out, size_t *n)
{
    store__pg_lock(p);
    PGresult *r = store__pg_read(p, sql, pp);
    store__pg_unlock(p);
    *out = NULL;
    *n = 0;
    if (!r)
        return STORE_ERROR;
    size_t rows = (size_t)PQntuples(r);
    char *arr = util_xcalloc(rows ? rows : 1, elem_size);
    for (size_t i = 0; i < rows; i++)
        rd(r, (int)i, arr + i * elem_size);
    PQclear(r);
    *out = arr;
    *n = rows;
    return STORE_OK;
}

void store__pg_copy_id(char dst[STORE_ID_LEN + 1], const char *src)
{
    snprintf(dst, STORE_ID_LEN + 1, "%s", src);
}

int64_t store__pg_col_int(PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}
