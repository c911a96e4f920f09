/* feed: follows the store's change log so that every node's key cache (and a relay's live
 * allocations) learns what any node changed. One thread per process: a full load at start,
 * then the changes after the last applied revision on every doorbell (PostgreSQL NOTIFY),
 * on a poll every poll_ms, and after every reconnect — so a lost notification or a dropped
 * connection only delays a change. A node that fell behind the log's pruned horizon loads
 * everything again. The log is pruned past the longest credential lifetime. */
#ifndef TURNKEY_FEED_H
#define TURNKEY_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "turnkey/keycache.h"
#include "turnkey/store.h"

/* What live state must do about a change (a relay ending allocations); may be NULL. */
typedef struct feed_hooks {
    void (*key_deleted)(void *ctx, const char *key_uid);
    void (*revoked)(void *ctx, const char *username_sha256_hex);
    void *ctx;
    void (*secret_deleted)(void *ctx, const char *secret_id); /* issue 15; may be NULL */
    /* A budget tripped with action end_allocations (issue 14 §4), after the cache learnt
     * it: end the allocations of the key (custom_id "") or of its customIdentifier. May be
     * NULL. */
    void (*budget_tripped)(void *ctx, const char *key_uid, const char *custom_id);
} feed_hooks;

typedef struct feed_config {
    int poll_ms;          /* poll period (0: 1000; < 0: no thread, the caller runs feed_sync) */
    int64_t keep_seconds; /* changes older than this are pruned (0: never prune) */
} feed_config;

typedef struct feed feed;

/* Loads every key and revocation into kc, then starts the thread. NULL + *err (free())
 * if the first load fails. */
feed *feed_start(store *st, keycache *kc, const feed_config *cfg, const feed_hooks *hooks,
                 char **err);
void feed_stop(feed *f);
/* NULL while the store answers, else why not (a static string). Thread-safe. */
const char *feed_problem(feed *f);
/* The last revision applied. Thread-safe. */
int64_t feed_revision(feed *f);

/* One synchronous catch-up (tests): 0 applied everything, -1 store error. */
int feed_sync(feed *f);

#endif
