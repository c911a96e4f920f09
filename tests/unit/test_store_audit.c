/* store: the audit-log ops, run against both backends (SQLite and PostgreSQL): inserts with
 * and without the optional JSON values, every filter, both orders, pagination with the total,
 * account isolation, purge counts, and records surviving a reopen. */
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

#define ACCT "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"

static int add(store *s, const char *acct, const char *action, const char *res, int64_t when,
               const char *nv)
{
    store_audit e = {.when = when, .result = true};
    snprintf(e.account_id, sizeof e.account_id, "%s", acct);
    snprintf(e.action, sizeof e.action, "%s", action);
    snprintf(e.actor_type, sizeof e.actor_type, "user");
    snprintf(e.actor_id, sizeof e.actor_id, "tok1");
    snprintf(e.actor_ip, sizeof e.actor_ip, "192.0.2.7");
    snprintf(e.interface, sizeof e.interface, "API");
    snprintf(e.resource_type, sizeof e.resource_type, "turn_key");
    snprintf(e.resource_id, sizeof e.resource_id, "%s", res);
    e.new_value = (char *)nv;
    return store_audit_add(s, &e, 5);
}

/* Lists q; returns n and copies the first row's resource id and when. */
static size_t list(store *s, const store_audit_query *q, size_t *total, char *first, int64_t *when)
{
    store_audit *rows = NULL;
    size_t n = 0;
    if (store_audit_list(s, q, &rows, &n, total) != STORE_OK)
        return (size_t)-1;
    if (n && first)
        snprintf(first, 256, "%s", rows[0].resource_id);
    if (n && when)
        *when = rows[0].when;
    store_audit_array_free(rows, n);
    return n;
}

static void t_audit_add_and_read_back(void)
{
    store *s = open_fresh();
    CHECK(s);
    CHECK_INT(add(s, ACCT, "create", "k1", 1000, "{\"name\":\"a \\\"q\\\"\"}"), STORE_OK);
    CHECK_INT(add(s, ACCT, "delete", "k1", 0, NULL), STORE_OK); /* when 0: now_ms (5) */
    store_audit_query q = {.account_id = ACCT, .ascending = true};
    store_audit *rows = NULL;
    size_t n = 0, total = 0;
    CHECK_INT(store_audit_list(s, &q, &rows, &n, &total), STORE_OK);
    CHECK_INT(n, 2);
    CHECK_INT(total, 2);
    if (n == 2) {
        CHECK_INT(rows[0].when, 5);
        CHECK_STR(rows[0].action, "delete");
        CHECK(rows[0].new_value == NULL && rows[0].old_value == NULL && !rows[0].metadata);
        CHECK_INT(rows[1].when, 1000);
        CHECK(util_is_lower_hex(rows[1].id, 32));
        CHECK_STR(rows[1].account_id, ACCT);
        CHECK_STR(rows[1].actor_type, "user");
        CHECK_STR(rows[1].actor_id, "tok1");
        CHECK_STR(rows[1].actor_ip, "192.0.2.7");
        CHECK_STR(rows[1].interface, "API");
        CHECK_STR(rows[1].resource_type, "turn_key");
        CHECK_STR(rows[1].resource_id, "k1");
        CHECK(rows[1].result);
        CHECK_STR(rows[1].new_value, "{\"name\":\"a \\\"q\\\"\"}");
        CHECK(strcmp(rows[0].id, rows[1].id) != 0);
        /* the id filter finds exactly that record */
        store_audit_query byid = {.account_id = ACCT, .id = rows[1].id};
        int64_t when = 0;
        CHECK_INT(list(s, &byid, &total, NULL, &when), 1);
        CHECK_INT(when, 1000);
    }
    store_audit_array_free(rows, n);
    store_close(s);
}

static void t_audit_filters_and_pages(void)
{
    store *s = open_fresh();
    CHECK(s);
    const char *res[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++)
        CHECK_INT(add(s, ACCT, i % 2 ? "delete" : "create", res[i], 2000 + i, NULL), STORE_OK);
    CHECK_INT(add(s, OTHER, "create", "x", 2002, NULL), STORE_OK);
    char first[256] = "";
    size_t total = 0;
    int64_t when = 0;
    store_audit_query q = {.account_id = ACCT, .limit = 2};
    CHECK_INT(list(s, &q, &total, first, NULL), 2);
    CHECK_INT(total, 6);   /* every match, not the page */
    CHECK_STR(first, "f"); /* newest first */
    q.offset = 2;
    CHECK_INT(list(s, &q, &total, first, NULL), 2);
    CHECK_STR(first, "d");
    q.offset = 6; /* past the end: no rows, still the total */
    CHECK_INT(list(s, &q, &total, NULL, NULL), 0);
    CHECK_INT(total, 6);
    q = (store_audit_query){.account_id = ACCT, .ascending = true, .offset = 1, .limit = 1};
    CHECK_INT(list(s, &q, &total, first, NULL), 1);
    CHECK_STR(first, "b");
    q = (store_audit_query){.account_id = ACCT, .since = 2002, .before = 2005};
    CHECK_INT(list(s, &q, &total, first, &when), 3);
    CHECK_INT(when, 2004);
    q = (store_audit_query){.account_id = ACCT, .action = "delete", .ascending = true};
    CHECK_INT(list(s, &q, &total, first, NULL), 3);
    CHECK_STR(first, "b");
    q = (store_audit_query){.account_id = ACCT, .resource_id = "e"};
    CHECK_INT(list(s, &q, &total, first, &when), 1);
    CHECK_INT(when, 2004);
    q = (store_audit_query){.account_id = ACCT, .resource_id = "x"}; /* OTHER's */
    CHECK_INT(list(s, &q, &total, NULL, NULL), 0);
    q = (store_audit_query){.account_id = OTHER};
    CHECK_INT(list(s, &q, &total, first, NULL), 1);
    CHECK_STR(first, "x");
    size_t purged = 0;
    CHECK_INT(store_audit_purge(s, 2003, &purged), STORE_OK);
    CHECK_INT(purged, 4); /* 2000, 2001, 2002 of ACCT and OTHER's 2002 */
    CHECK_INT(store_audit_purge(s, 2003, &purged), STORE_OK);
    CHECK_INT(purged, 0);
    q = (store_audit_query){.account_id = ACCT, .ascending = true};
    CHECK_INT(list(s, &q, &total, first, NULL), 3);
    CHECK_STR(first, "d");
    store_close(s);
}

static void t_audit_survives_reopen(void)
{
    const char *where = fresh_store();
    store *s = open_at(where);
    CHECK(s);
    CHECK_INT(add(s, ACCT, "revoke", "alice", 3000, "{\"expires\":1}"), STORE_OK);
    store_close(s);
    CHECK((s = open_at(where)) != NULL);
    store_audit_query q = {.account_id = ACCT};
    char first[256] = "";
    size_t total = 0;
    CHECK_INT(list(s, &q, &total, first, NULL), 1);
    CHECK_STR(first, "alice");
    store_close(s);
}

int main(void)
{
    TK_RUN_BOTH(t_audit_add_and_read_back);
    TK_RUN_BOTH(t_audit_filters_and_pages);
    TK_RUN_BOTH(t_audit_survives_reopen);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
