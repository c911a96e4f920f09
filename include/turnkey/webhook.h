/* webhook: events POSTed to each account's webhook URL from a durable queue (issue 14).
 *
 *  - Events (allocation.ended from obs's on_ended; budget.threshold and budget.exceeded from
 *    the spend guard through webhook_emit) are built on the main thread into a bounded
 *    in-memory batch; webhook_tick writes the batch to the store's queue (one transaction)
 *    and wakes the delivery worker. An event is queued only for an account whose webhook
 *    subscribes to its type; past --webhook-max-queued per account the oldest are dropped.
 *  - The delivery worker (its own thread; the main thread never waits on HTTP) claims due
 *    events from the store (a lease: on PostgreSQL each event goes to one node), POSTs them
 *    concurrently with libcurl, deletes each after a 2xx and otherwise retries it with
 *    exponential backoff and jitter, giving up after --webhook-max-age (counted, logged).
 *    Delivery is at least once: a receiver deduplicates by Turnkey-Event-Id. A POST connects
 *    only to addresses the relay's peer policy allows (checked on the resolved address).
 *  - Each POST carries Turnkey-Signature: t=UNIX,v1=HEX with HEX = HMAC-SHA256 under the
 *    webhook's secret of "UNIX.BODY" (docs/usage.md, "Webhooks"). */
#ifndef TURNKEY_WEBHOOK_H
#define TURNKEY_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "turnkey/relay.h"
#include "turnkey/store.h"

typedef struct webhook webhook;

typedef struct webhook_config {
    store *st;
    size_t max_queued;    /* per account in the store (0 = 10000) */
    size_t max_pending;   /* in memory before a write (0 = 10000); past it the oldest go */
    int64_t max_age_ms;   /* an event still failing this long after it was made is dropped */
    int64_t retry_max_ms; /* backoff cap (doubling from 1 s) */
    int64_t timeout_ms;   /* one POST, connect included */
    size_t concurrency;   /* POSTs in flight (0 = 16) */
    const char *version;  /* User-Agent: turnkey/VERSION */
    /* Where POSTs may connect: the relay's peer policy (--allow-peer / --deny-peer CIDRs and
     * the built-in deny list of loopback, private, link-local and metadata ranges). */
    const char *const *allow_peer;
    size_t n_allow_peer;
    const char *const *deny_peer;
    size_t n_deny_peer;
} webhook_config;

webhook *webhook_new(const webhook_config *cfg);
/* Starts the delivery worker: 0, or -1 with *err set (free()): a malformed CIDR, libcurl or
 * the thread failing. */
int webhook_start(webhook *wh, char **err);
/* Writes what is pending (main thread), stops the worker (an in-flight POST is abandoned
 * and its event released for the next start) and frees. NULL is fine. */
void webhook_free(webhook *wh);

/* The spend guard's event hook (any thread): type "budget.threshold", "budget.exceeded"
 * (or "allocation.ended"); json a JSON object, the event's data. Its account is data's
 * "accountId" (or "account_id"), else that of its "keyId" (or "key_id"). */
void webhook_emit(void *wh, const char *type, const char *json);
/* obs_config.on_ended: one allocation.ended event (main thread). */
void webhook_allocation_ended(void *wh, const relay_ended *e);
/* Main thread, several times a second: writes the pending batch, wakes the worker. */
void webhook_tick(webhook *wh);

struct metrics_buf;
/* turnkey_webhook_* (any thread). */
void webhook_metrics(webhook *wh, struct metrics_buf *b);

/* --- pure helpers (webhook_util.c) --------------------------------------------------- */
#define WEBHOOK_URL_MAX 2048
/* 0 if url is an acceptable webhook URL (http:// or https://, a host, an optional port,
 * printable ASCII, no user:password@, no #fragment); else -1 and a reason in err. */
int webhook_url_check(const char *url, char *err, size_t cap);
/* "allocation.ended" -> STORE_WEBHOOK_ALLOCATION_ENDED, ...; 0 unknown. */
unsigned webhook_kind_parse(const char *name);
const char *webhook_kind_name(unsigned kind); /* "" if not one kind */
/* Lowercase hex HMAC-SHA256 under secret of "<t>.<body>" into out (65 bytes). */
void webhook_sign(const char *secret, int64_t t, const char *body, size_t len, char out[65]);
/* The wait before the next attempt after `failures` failed ones (>= 1): the doubling step
 * 1 s, 2 s, 4 s ... capped at cap_ms, then half of it plus rnd's share of the other half. */
int64_t webhook_backoff_ms(int failures, int64_t cap_ms, uint32_t rnd);

#endif
