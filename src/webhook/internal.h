/* webhook internals shared by webhook.c (main thread: events, batches) and webhook_worker.c
 * (the delivery thread). Not a public header. */
#ifndef TURNKEY_WEBHOOK_INTERNAL_H
#define TURNKEY_WEBHOOK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "turnkey/log.h"
#include "turnkey/peer.h"
#include "turnkey/webhook.h"

/* key uid -> account id, for allocation.ended (the relay's records carry the key only). */
typedef struct webhook__acct {
    char key[STORE_ID_LEN + 1];
    char account[STORE_ID_LEN + 1];
    struct webhook__acct *next;
} webhook__acct;
#define WEBHOOK__BUCKETS 4096
#define WEBHOOK__MAX_ACCTS 262144 /* cached keys; past it the cache starts over */

enum {
    WH_DROP_QUEUE_FULL,
    WH_DROP_EXPIRED,
    WH_DROP_PENDING_FULL,
    WH_DROP_UNATTRIBUTED,
    WH_DROP__N
};

struct webhook {
    webhook_config cfg;
    /* pending events (any thread through webhook_emit; the main thread writes them) */
    pthread_mutex_t mu;
    store_webhook_event *pending;
    size_t n_pending;
    webhook__acct *acct[WEBHOOK__BUCKETS]; /* main thread only */
    size_t n_acct;
    /* the worker */
    pthread_t thread;
    bool started;
    pthread_cond_t wake;
    bool kick, stop;     /* under mu */
    log_limiter rl, wrl; /* main thread, worker */
    peer_policy peers;   /* where POSTs may connect (read-only once started) */
    /* counters (any thread) */
    _Atomic uint64_t queued, delivered, failed, dropped[WH_DROP__N];
    _Atomic uint64_t n_pending_pub;
};

/* webhook_worker.c: the delivery thread's body (arg = the webhook). */
void *webhook__worker(void *arg);

#endif
