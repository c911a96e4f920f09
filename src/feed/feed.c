/* feed: see include/turnkey/feed.h. */
#include "turnkey/feed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnkey/log.h"
#include "turnkey/util.h"

#define BATCH 500
#define PRUNE_EVERY_S 60

struct feed {
    store *st;
    keycache *kc;
    feed_config cfg;
    feed_hooks hooks;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_llong rev;   /* last applied revision */
    atomic_int problem; /* 0 ok, 1 store unreachable */
    pthread_mutex_t mu; /* one catch-up at a time (thread and feed_sync) */
    int64_t next_prune;
};

static const char *const problems[] = {NULL, "store unreachable (change feed)"};

/* A trip whose action (now in the cache) ends the allocations it covers. */
static bool ends_allocations(feed *f, const store_change *c)
{
    keycache_policy v;
    keycache_policy_view(f->kc, c->key_uid, c->username_hash, util_now(), &v);
    return v.tripped == POLICY_END_ALLOCATIONS;
}

static void apply(feed *f, const store_change *c)
{
    switch (c->kind) {
    case STORE_CHANGE_KEY_CREATED:
    case STORE_CHANGE_KEY_RENAMED: keycache_refresh(f->kc, c->key_uid); break;
    case STORE_CHANGE_KEY_DELETED:
        keycache_forget(f->kc, c->key_uid);
        if (f->hooks.key_deleted)
            f->hooks.key_deleted(f->hooks.ctx, c->key_uid);
        break;
    case STORE_CHANGE_REVOKED:
        keycache_revoke_hash(f->kc, c->username_hash, c->expires);
        if (f->hooks.revoked)
            f->hooks.revoked(f->hooks.ctx, c->username_hash);
        break;
    case STORE_CHANGE_SECRET_ADDED: keycache_secrets_refresh(f->kc, c->key_uid); break;
    case STORE_CHANGE_SECRET_DELETED: /* username_hash: the secret id */
        keycache_secrets_refresh(f->kc, c->key_uid);
        if (f->hooks.secret_deleted)
            f->hooks.secret_deleted(f->hooks.ctx, c->username_hash);
        break;
    case STORE_CHANGE_POLICY: keycache_policy_refresh(f->kc, c->key_uid, util_now()); break;
    case STORE_CHANGE_BUDGET_TRIPPED: /* username_hash: the customIdentifier */
        keycache_policy_refresh(f->kc, c->key_uid, util_now());
        if (f->hooks.budget_tripped && ends_allocations(f, c))
            f->hooks.budget_tripped(f->hooks.ctx, c->key_uid, c->username_hash);
        break;
    default: log_warn("feed", "change %lld of unknown kind %d ignored", (long long)c->rev, c->kind);
    }
}

/* Full load: the log's latest revision first, then everything; changes that commit in
 * between are applied again afterwards (applying twice changes nothing). */
static int reload(feed *f)
{
    store_change *none;
    size_t n;
    store_feed at;
    if (store_changes_since(f->st, INT64_MAX, 1, &none, &n, &at) != STORE_OK)
        return -1;
    free(none);
    if (keycache_load_all(f->kc, util_now()) != 0)
        return -1;
    atomic_store(&f->rev, at.latest);
    return 0;
}

static int catch_up_locked(feed *f)
{
    for (;;) {
        int64_t last = atomic_load(&f->rev);
        store_change *c;
        size_t n;
        store_feed at;
        if (store_changes_since(f->st, last, BATCH, &c, &n, &at) != STORE_OK)
            return -1;
        /* behind the pruned horizon, or a store that went back (restored): load it all */
        if ((at.oldest > last + 1 && at.latest > last) || at.latest < last) {
            free(c);
            log_warn("feed", "revision %lld is outside the change log (%lld..%lld): reloading",
                     (long long)last, (long long)at.oldest, (long long)at.latest);
            if (reload(f) != 0)
                return -1;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            apply(f, &c[i]);
            atomic_store(&f->rev, c[i].rev);
        }
        free(c);
        if (n < BATCH)
            return 0;
    }
}

static void set_problem(feed *f, int p)
{
    int old = atomic_exchange(&f->problem, p);
    if (old != p && p)
        log_error("feed", "%s: live changes wait until it is back", problems[p]);
    else if (old != p)
        log_warn("feed", "store reachable again; changes up to revision %lld applied",
                 (long long)atomic_load(&f->rev));
}

int feed_sync(feed *f)
{
    pthread_mutex_lock(&f->mu);
    int rc = catch_up_locked(f);
    if (rc == 0 && f->cfg.keep_seconds > 0 && util_now() >= f->next_prune) {
        size_t pruned = 0;
        if (store_changes_prune(f->st, util_now() - f->cfg.keep_seconds, &pruned) == STORE_OK &&
            pruned)
            log_info("feed", "pruned %zu change(s) older than %llds", pruned,
                     (long long)f->cfg.keep_seconds);
        f->next_prune = util_now() + PRUNE_EVERY_S;
    }
    pthread_mutex_unlock(&f->mu);
    set_problem(f, rc == 0 ? 0 : 1);
    return rc;
}

static void *run(void *arg)
{
    feed *f = arg;
    while (!atomic_load(&f->stop)) {
        /* a doorbell, a timeout (the poll) or a lost connection: catch up in every case */
        store_changes_wait(f->st, f->cfg.poll_ms);
        if (!atomic_load(&f->stop))
            feed_sync(f);
    }
    return NULL;
}

feed *feed_start(store *st, keycache *kc, const feed_config *cfg, const feed_hooks *hooks,
                 char **err)
{
    feed *f = util_xcalloc(1, sizeof *f);
    f->st = st;
    f->kc = kc;
    f->cfg = *cfg;
    if (f->cfg.poll_ms == 0)
        f->cfg.poll_ms = 1000;
    if (hooks)
        f->hooks = *hooks;
    pthread_mutex_init(&f->mu, NULL);
    if (reload(f) != 0) {
        *err = util_xstrdup("cannot load keys and revocations from the store");
        goto fail;
    }
    keycache_set_complete(kc, true);
    if (f->cfg.poll_ms < 0) /* no thread: the caller runs feed_sync (tests) */
        return f;
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        *err = util_xstrdup("cannot start the change-feed thread");
        goto fail;
    }
    f->running = true;
    return f;
fail:
    pthread_mutex_destroy(&f->mu);
    free(f);
    return NULL;
}

void feed_stop(feed *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, true);
    if (f->running)
        pthread_join(f->thread, NULL); /* wakes within one poll period */
    pthread_mutex_destroy(&f->mu);
    free(f);
}

const char *feed_problem(feed *f)
{
    return f ? problems[atomic_load(&f->problem)] : NULL;
}

int64_t feed_revision(feed *f)
{
    return f ? atomic_load(&f->rev) : 0;
}
