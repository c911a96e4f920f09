/* Store backends for tests: every store test runs once on SQLite and once on PostgreSQL.
 * The PostgreSQL server is the one named by TK_PG_URL (tests/run.sh starts one with
 * tests/pg.sh), or else one this binary starts itself with tests/pg.sh and stops at exit.
 * Each fresh_store() location is an empty store: a new temp data directory, or a new
 * database on the server. */
#ifndef TK_STORE_FIXTURE_H
#define TK_STORE_FIXTURE_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "turnkey/store.h"

typedef struct tk_backend {
    const char *name;
    int pg; /* 1: PostgreSQL */
} tk_backend;

static const tk_backend tk_sqlite = {"sqlite", 0}, tk_pg = {"postgres", 1};
static const tk_backend *tk_be = &tk_sqlite;
static char tk_pg_base[512], tk_pg_dir[256];
static char tk_locs[64][512];
static int tk_n_locs;

/* The server's base URL (…/postgres), starting a private server on first use. */
static inline const char *tk_pg_url(void)
{
    if (tk_pg_base[0])
        return tk_pg_base;
    const char *env = getenv("TK_PG_URL");
    if (env && *env) {
        snprintf(tk_pg_base, sizeof tk_pg_base, "%s", env);
        return tk_pg_base;
    }
    FILE *f = popen("tests/pg.sh start", "r");
    if (!f || fscanf(f, "%511s %255s", tk_pg_base, tk_pg_dir) != 2) {
        fprintf(stderr, "cannot start PostgreSQL with tests/pg.sh (run from the repo root)\n");
        tk_pg_base[0] = '\0';
    }
    if (f)
        pclose(f);
    return tk_pg_base;
}

static inline void tk_pg_teardown(void)
{
    if (tk_pg_dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tests/pg.sh stop %s", tk_pg_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "tests/pg.sh stop failed\n");
    }
}

/* Runs one SQL command on the server's maintenance database: 0 ok. */
static inline int tk_pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(tk_pg_url());
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "admin SQL failed: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "cannot connect to %s: %s", tk_pg_url(), PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

/* A location for a new, empty store on the current backend (NULL on failure). */
static inline const char *fresh_store(void)
{
    if (tk_n_locs == 64)
        return NULL;
    char *loc = tk_locs[tk_n_locs];
    if (!tk_be->pg) {
        char dir[] = "/tmp/tk-store-XXXXXX";
        if (!mkdtemp(dir))
            return NULL;
        snprintf(loc, 512, "%s", dir);
    } else {
        const char *base = tk_pg_url();
        const char *slash = strrchr(base, '/');
        char db[64], sql[128];
        snprintf(db, sizeof db, "tk_%d_%d", (int)getpid(), tk_n_locs);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        if (!*base || !slash || tk_pg_admin(sql) != 0)
            return NULL;
        snprintf(loc, 512, "%.*s/%s", (int)(slash - base), base, db);
    }
    tk_n_locs++;
    return loc;
}

static inline store *open_at(const char *where)
{
    char *err = NULL;
    store *s = where ? store_open(where, &err) : NULL;
    if (!s) {
        fprintf(stderr, "[%s] store_open(%s): %s\n", tk_be->name, where ? where : "?",
                err ? err : "no location");
        store_free_err(err);
    }
    return s;
}

static inline store *open_fresh(void)
{
    return open_at(fresh_store());
}

/* Removes the temp directories and databases made by fresh_store. */
static inline void tk_cleanup_stores(void)
{
    for (int i = 0; i < tk_n_locs; i++) {
        char cmd[600];
        if (strncmp(tk_locs[i], "/tmp/tk-store-", 14) == 0) {
            /* never run rm -rf on a truncated path */
            if (snprintf(cmd, sizeof cmd, "rm -rf %s", tk_locs[i]) >= (int)sizeof cmd ||
                system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", tk_locs[i]);
        } else {
            snprintf(cmd, sizeof cmd, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                     strrchr(tk_locs[i], '/') + 1);
            tk_pg_admin(cmd);
        }
    }
    tk_n_locs = 0;
}

/* Runs fn once per backend. */
#define TK_RUN_ON(be, fn)                                                                          \
    do {                                                                                           \
        tk_be = (be);                                                                              \
        TK_RUN(fn);                                                                                \
        if (tk__cur_failed)                                                                        \
            fprintf(stderr, "  (on %s)\n", tk_be->name);                                           \
        tk_be = &tk_sqlite;                                                                        \
    } while (0)
#define TK_RUN_BOTH(fn)                                                                            \
    do {                                                                                           \
        TK_RUN_ON(&tk_sqlite, fn);                                                                 \
        TK_RUN_ON(&tk_pg, fn);                                                                     \
    } while (0)

#endif
