/* store: the cap on live revocations per TURN key (store_revoke_add_capped), on both
 * backends: the cap binds per key, expired revocations do not count, re-revoking stays OK,
 * a refused revocation writes nothing (no row, no change-log entry), and two connections
 * revoking in parallel never pass the cap. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/store.h"

#define K1 "00000000000000000000000000000001"
#define K2 "00000000000000000000000000000002"

static void count_one(void *arg, const char *username_hash, int64_t expires)
{
    (void)username_hash;
    (void)expires;
    (*(int *)arg)++;
}

static int live(store *s, int64_t now)
{
    int n = 0;
    if (store_revoke_each(s, now, count_one, &n) != STORE_OK)
        return -1;
    return n;
}

static int64_t latest_rev(store *s)
{
    store_change *c = NULL;
    size_t n = 0;
    store_feed f;
    if (store_changes_since(s, 0, 1, &c, &n, &f) != STORE_OK)
        return -1;
    free(c);
    return f.latest;
}

static void t_cap_per_key(void)
{
    store *s = open_fresh();
    CHECK(s);
    const int64_t now = 1000;
    /* an expired (not yet purged) revocation does not count */
    CHECK_INT(store_revoke_add(s, K1, "old", now - 1), STORE_OK);
    CHECK_INT(store_revoke_add_capped(s, K1, "u1", now + 100, 3, now), STORE_OK);
    CHECK_INT(store_revoke_add_capped(s, K1, "u2", now + 200, 3, now), STORE_OK);
    CHECK_INT(store_revoke_add_capped(s, K1, "u3", now + 300, 3, now), STORE_OK);
    int64_t rev = latest_rev(s);
    CHECK_INT(store_revoke_add_capped(s, K1, "u4", now + 400, 3, now), STORE_LIMIT);
    bool revoked = true;
    CHECK_INT(store_revoke_check(s, K1, "u4", &revoked), STORE_OK);
    CHECK(!revoked);               /* nothing was written */
    CHECK_INT(latest_rev(s), rev); /* and no change was logged */
    /* re-revoking a revoked username is still OK at the cap, and changes nothing */
    CHECK_INT(store_revoke_add_capped(s, K1, "u2", now + 200, 3, now), STORE_OK);
    CHECK_INT(latest_rev(s), rev);
    /* the cap is per key */
    CHECK_INT(store_revoke_add_capped(s, K2, "u4", now + 400, 3, now), STORE_OK);
    /* once u1 has expired, one more fits */
    CHECK_INT(store_revoke_add_capped(s, K1, "u4", now + 400, 3, now + 150), STORE_OK);
    CHECK_INT(store_revoke_add_capped(s, K1, "u5", now + 500, 3, now + 150), STORE_LIMIT);
    CHECK_INT(store_revoke_check(s, K1, "u4", &revoked), STORE_OK);
    CHECK(revoked);
    CHECK_INT(live(s, now + 150), 4); /* u2, u3, u4 of K1; u4 of K2 */
    /* the uncapped path (store copy) still writes past the cap */
    CHECK_INT(store_revoke_add(s, K1, "u6", now + 600), STORE_OK);
    store_close(s);
}

typedef struct racer {
    const char *where;
    int id, ok, limit, other;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    store *s = open_at(r->where);
    if (!s)
        return NULL;
    for (int i = 0; i < 20; i++) {
        char user[32];
        snprintf(user, sizeof user, "r%d-%d", r->id, i);
        int rc = store_revoke_add_capped(s, K1, user, 5000, 15, 1000);
        if (rc == STORE_OK)
            r->ok++;
        else if (rc == STORE_LIMIT)
            r->limit++;
        else
            r->other++;
    }
    store_close(s);
    return NULL;
}

static void t_parallel_revokes_keep_the_cap(void)
{
    const char *where = fresh_store();
    store *s = open_at(where); /* creates the schema before the racers open it */
    CHECK(s);
    racer rs[2] = {{.where = where, .id = 0}, {.where = where, .id = 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race, &rs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(rs[0].other + rs[1].other, 0);
    CHECK_INT(rs[0].ok + rs[1].ok, 15);
    CHECK_INT(rs[0].limit + rs[1].limit, 25);
    CHECK_INT(live(s, 1000), 15);
    store_close(s);
}

int main(void)
{
    TK_RUN_BOTH(t_cap_per_key);
    TK_RUN_BOTH(t_parallel_revokes_keep_the_cap);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
