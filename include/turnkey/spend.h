/* spend: the spend guard (issue 14 §4). After every usage batch the main thread runs it:
 * for each key whose policy has a byte budget it reads the key's usage of the current UTC
 * day and month from the store (every node's rows: the same totals on every node), finds
 * the level each budget reached (policy_level) and records it with store_budget_mark. The
 * store advances a level or a trip once, whichever node gets there first, so each
 * budget.threshold / budget.exceeded webhook is emitted once; a trip with action
 * stop_minting or end_allocations is logged in the change log, from which every node's
 * cache (and relay, which ends the allocations) learns it within the feed's delay. */
#ifndef TURNKEY_SPEND_H
#define TURNKEY_SPEND_H

#include <stddef.h>
#include <stdint.h>

#include "turnkey/keycache.h"
#include "turnkey/store.h"

typedef struct spend spend;

typedef struct spend_config {
    store *st;
    keycache *kc;
    /* webhook_emit: type "budget.threshold" / "budget.exceeded", json the event's data
     * (accountId, keyId, customIdentifier, period, periodStart, periodEnd, limitBytes,
     * usedBytes, percentage, action). May be NULL (then only logged). */
    void (*on_event)(void *ctx, const char *type, const char *json);
    void *ctx;
    size_t max_keys; /* budgeted keys checked per run (0 = 100000) */
} spend_config;

spend *spend_new(const spend_config *cfg);
void spend_free(spend *g);
/* One check at now (unix seconds). Returns the budgets that advanced (notified or
 * tripped); -1 if the store failed (tried again next run). */
int spend_run(spend *g, int64_t now);

typedef struct spend_stats {
    uint64_t runs, failures, notified, tripped;
} spend_stats;
void spend_stats_read(const spend *g, spend_stats *out);
struct metrics_buf;
/* turnkey_spend_* (any thread). */
void spend_metrics(const spend *g, struct metrics_buf *b);

#endif
