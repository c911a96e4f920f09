/* feed: every node's key cache follows the store's change log (on SQLite and
 * PostgreSQL): keys created, renamed and deleted elsewhere, revocations, the
 * relay hooks, and a full reload for a node behind the pruned horizon. The
 * feeds here run without their thread (poll_ms < 0): each feed_sync is one
 * catch-up, so nothing depends on timing. */
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "tk_test.h"
#include "turnkey/feed.h"
#include "turnkey/keycache.h"
#include "turnkey/util.h"

typedef struct seen {
    char deleted[4][STORE_ID_LEN + 1];
    char revoked[4][65];
    int n_deleted, n_revoked;
} seen;

static void on_deleted(void *ctx, const char *uid)
{
    seen *s = ctx;
    if (s->n_deleted < 4)
        snprintf(s->deleted[s->n_deleted++], STORE_ID_LEN + 1, "%s", uid);
}

static void on_revoked(void *ctx, const char *h)
{
    seen *s = ctx;
    if (s->n_revoked < 4)
        snprintf(s->revoked[s->n_revoked++], 65, "%s", h);
}

/* What a relay sees: the cache's credential lookup (never the store once
 * complete). */
static bool relay_knows(keycache *kc, const char *uid)
{
    uint8_t secret[CRED_SECRET_LEN];
    cred_lookup lk = keycache_lookup_cached(kc);
    return lk.key_secret(lk.ctx, uid, secret) == 0;
}

static void t_follows_another_node(void)
{
    const char *where = fresh_store();
    store *api = open_at(where), *rel = open_at(where); /* two nodes, one database */
    CHECK(api && rel);
    store_account a;
    store_key k1, k2;
    char bearer[65];
    CHECK_INT(store_account_create(api, "f", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(api, a.id, "one", 10, 1, &k1, bearer), STORE_OK);
    keycache *kc = keycache_new(rel);
    static seen sn;
    memset(&sn, 0, sizeof sn);
    feed_hooks hooks = {.key_deleted = on_deleted, .revoked = on_revoked, .ctx = &sn};
    feed_config fc = {.poll_ms = -1, .keep_seconds = 3600};
    char *err = NULL;
    feed *f = feed_start(rel, kc, &fc, &hooks, &err);
    CHECK(f);
    CHECK(relay_knows(kc, k1.uid)); /* loaded at start */
    CHECK_INT(store_key_create(api, a.id, "two", 10, 2, &k2, bearer), STORE_OK);
    CHECK(!relay_knows(kc, k2.uid)); /* not a store query: unknown until the feed says */
    CHECK_INT(feed_sync(f), 0);
    CHECK(relay_knows(kc, k2.uid));
    CHECK(feed_problem(f) == NULL);
    int64_t rev = feed_revision(f);
    CHECK(rev > 0);
    /* delete and revoke on the other node: cache and hooks follow, in order */
    store_key g;
    CHECK_INT(store_key_delete(api, a.id, k1.uid, &g), STORE_OK);
    store_key_clear(&g);
    CHECK_INT(store_revoke_add(api, k2.uid, "user-x", util_now() + 600), STORE_OK);
    CHECK_INT(store_revoke_add(api, k2.uid, "user-x", util_now() + 600), STORE_OK); /* no-op */
    CHECK(!keycache_is_revoked(kc, "user-x", 6));
    CHECK_INT(feed_sync(f), 0);
    CHECK(!relay_knows(kc, k1.uid));
    CHECK_INT(sn.n_deleted, 1);
    CHECK_STR(sn.deleted[0], k1.uid);
    CHECK(keycache_is_revoked(kc, "user-x", 6));
    char h[65];
    util_sha256_hex("user-x", 6, h);
    CHECK_INT(sn.n_revoked, 1); /* the repeated revocation recorded no change */
    CHECK_STR(sn.revoked[0], h);
    CHECK_INT(feed_revision(f), rev + 2);
    CHECK_INT(feed_sync(f), 0); /* nothing new: nothing applied twice */
    CHECK_INT(sn.n_deleted, 1);
    feed_stop(f);
    keycache_free(kc);
    store_key_clear(&k1);
    store_key_clear(&k2);
    store_account_clear(&a);
    store_close(api);
    store_close(rel);
}

/* A node whose revision is older than the pruned log loads everything again:
 * keys created and deleted meanwhile are right although their changes are gone.
 */
static void t_behind_the_horizon_reloads(void)
{
    const char *where = fresh_store();
    store *api = open_at(where), *rel = open_at(where);
    CHECK(api && rel);
    store_account a;
    store_key k1, k2, k3;
    char bearer[65];
    CHECK_INT(store_account_create(api, "h", 1, &a), STORE_OK);
    CHECK_INT(store_key_create(api, a.id, "one", 10, 1, &k1, bearer), STORE_OK);
    keycache *kc = keycache_new(rel);
    feed_config fc = {.poll_ms = -1, .keep_seconds = 0};
    char *err = NULL;
    feed *f = feed_start(rel, kc, &fc, NULL, &err);
    CHECK(f);
    CHECK_INT(store_key_create(api, a.id, "two", 10, 2, &k2, bearer), STORE_OK);
    CHECK_INT(store_key_create(api, a.id, "three", 10, 3, &k3, bearer), STORE_OK);
    store_key g;
    CHECK_INT(store_key_delete(api, a.id, k1.uid, &g), STORE_OK);
    store_key_clear(&g);
    CHECK_INT(store_key_delete(api, a.id, k3.uid, &g), STORE_OK);
    store_key_clear(&g);
    size_t pruned = 0;
    CHECK_INT(store_changes_prune(api, util_now() + 100, &pruned), STORE_OK);
    CHECK_INT(pruned, 4); /* five changes since k1 was created: the latest is kept */
    store_change *c;
    size_t n;
    store_feed at;
    CHECK_INT(store_changes_since(api, 0, 10, &c, &n, &at), STORE_OK);
    CHECK_INT(n, 1);
    CHECK_INT(at.oldest, at.latest);
    free(c);
    CHECK(at.oldest > feed_revision(f) + 1); /* the node is behind the horizon */
    CHECK_INT(feed_sync(f), 0);
    CHECK(!relay_knows(kc, k1.uid));
    CHECK(relay_knows(kc, k2.uid));
    CHECK(!relay_knows(kc, k3.uid));
    CHECK_INT(feed_revision(f), at.latest);
    feed_stop(f);
    keycache_free(kc);
    store_key_clear(&k1);
    store_key_clear(&k2);
    store_key_clear(&k3);
    store_account_clear(&a);
    store_close(api);
    store_close(rel);
}

int main(void)
{
    TK_RUN_BOTH(t_follows_another_node);
    TK_RUN_BOTH(t_behind_the_horizon_reloads);
    tk_cleanup_stores();
    tk_pg_teardown();
    return tk_test_summary();
}
