/* usage: exact, live usage accounting (issue 14), from the relay's packet path to the store.
 *
 *  - usage_carry belongs to one relay worker: per identity (key, customIdentifier, username)
 *    it sums what the worker's allocations accrued (turn_server_usage once a second, and the
 *    remainder each end report carries). What cannot be handed over stays here and goes with
 *    the next push: nothing is dropped.
 *  - usage_ring: one bounded single-producer single-consumer ring per worker towards the main
 *    thread (no lock on the packet path), plus a locked spill list used only by a stopping
 *    worker, so the last remainders are not lost either.
 *  - usage_agg lives in the main thread: rows keyed (minute, key, customIdentifier, username)
 *    of this node, peak concurrency across workers, written in batches (store_usage_add). A
 *    batch that fails stays and is retried with the next one; pending rows are bounded.
 *
 * No clocks, sockets or threads inside: times are passed in. */
#ifndef TURNKEY_USAGE_H
#define TURNKEY_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "turnkey/store.h"

/* One worker's report for one identity: what accrued since its previous record. */
typedef struct usage_record {
    char key_id[STORE_ID_LEN + 1];
    char custom_id[65];
    char username[256]; /* UTF-8 without control characters; else "0x" + hex of the bytes */
    int64_t at_ms;      /* when the worker pushed it (wall clock) */
    uint64_t egress_bytes, ingress_bytes, alloc_ms;
    uint32_t conc; /* allocations of this identity alive at some time since the last record */
    uint32_t live; /* alive now (0: the worker has none left of this identity) */
} usage_record;

/* --- the ring (usage_carry.c) ------------------------------------------------------- */
typedef struct usage_ring usage_ring;
#define USAGE_RING_DEFAULT 4096 /* records per worker */

usage_ring *usage_ring_new(size_t capacity); /* 0 = USAGE_RING_DEFAULT */
void usage_ring_free(usage_ring *q);
/* Producer: false when the ring is full (counted; the caller keeps the record). */
bool usage_ring_push(usage_ring *q, const usage_record *r);
/* Producer that is stopping: never fails (the spill list takes what the ring cannot). */
void usage_ring_spill(usage_ring *q, const usage_record *r);
/* Consumer (one thread): calls fn for every record queued, the spill list last. */
size_t usage_ring_drain(usage_ring *q, void (*fn)(void *arg, const usage_record *r), void *arg);
uint64_t usage_ring_refused(const usage_ring *q); /* pushes refused so far (any thread) */

/* --- a worker's carry (usage_carry.c) ------------------------------------------------ */
typedef struct usage_carry usage_carry;

usage_carry *usage_carry_new(void);
void usage_carry_free(usage_carry *c);
/* A new sample begins: every identity's live count restarts from 0. */
void usage_carry_begin(usage_carry *c);
/* Adds what one allocation accrued: live = it is still open (a sample), else it ended (its
 * end remainder). Allocations without a key (key_id "") are not counted. */
void usage_carry_add(usage_carry *c, const char *key_id, const char *custom_id, const uint8_t *user,
                     size_t user_len, uint64_t egress, uint64_t ingress, uint64_t alloc_ms,
                     bool live);
/* Hands every identity with news to q (final: through usage_ring_spill, so all of it);
 * identities that did not fit stay for the next push. Returns the records handed over. */
size_t usage_carry_push(usage_carry *c, usage_ring *q, int64_t now_ms, bool final);
size_t usage_carry_size(const usage_carry *c); /* identities held */

/* --- the main thread's aggregator (usage.c) ------------------------------------------ */
typedef struct usage_agg usage_agg;

typedef struct usage_agg_config {
    size_t n_workers;
    const char *node;  /* this node's name in the rows */
    size_t max_rows;   /* pending rows at most (0 = USAGE_MAX_ROWS) */
    int64_t as_of_lag; /* ms subtracted from a flush's time for as_of (the push delay) */
    /* A key's account (main thread; may query the store): 0 found, -1 no such key, -2 error
     * (asked again later). */
    int (*account_of)(void *ctx, const char *key_id, char account_id[STORE_ID_LEN + 1]);
    void *ctx;
} usage_agg_config;
#define USAGE_MAX_ROWS 65536

typedef struct usage_agg_stats {
    uint64_t flushes, flush_failures, rows_written;
    uint64_t dropped_bytes;      /* egress + ingress dropped at the pending-row bound */
    uint64_t unattributed_bytes; /* of keys the store does not know (never written) */
    uint64_t pending_rows;
    int64_t as_of_ms; /* 0: nothing flushed yet */
} usage_agg_stats;

usage_agg *usage_agg_new(const usage_agg_config *cfg);
void usage_agg_free(usage_agg *a);
/* The number of workers, once known (before the first record). */
void usage_agg_set_workers(usage_agg *a, size_t n_workers);
/* One record from worker w (< n_workers). */
void usage_agg_add(usage_agg *a, size_t w, const usage_record *r);
/* After a drain of every worker: the concurrency of this instant goes into the rows' peaks. */
void usage_agg_peaks(usage_agg *a);
/* Writes every pending row in one batch: STORE_OK (rows gone, as_of = now_ms - as_of_lag),
 * or the store's error (rows kept for the next flush). */
int usage_agg_flush(usage_agg *a, store *s, int64_t now_ms);
/* Thread-safe reads (metrics, the API's as_of). */
void usage_agg_stats_read(const usage_agg *a, usage_agg_stats *out);
int64_t usage_agg_as_of(const usage_agg *a);
/* The turnkey_usage_* metrics (ring_refused: relay_stats.usage_refused). */
struct metrics_buf;
void usage_agg_metrics(const usage_agg *a, uint64_t ring_refused, struct metrics_buf *b);

/* --- the REST query (usage_params.c) ----------------------------------------------- */
#define USAGE_PER_PAGE_DEFAULT 100
#define USAGE_PER_PAGE_MAX 1000
#define USAGE_RANGE_DEFAULT 86400 /* since defaults to until minus a day */

typedef struct usage_params {
    store_usage_filter f; /* account_id and key_uid are left to the caller */
    size_t page, per_page;
} usage_params;

/* Parses the raw (percent-encoded) query string of GET .../usage (NULL = empty): since,
 * until (RFC 3339, or unix seconds; until defaults to the end of the current minute, since
 * to a day before until), step (1m, 5m, 15m, 1h, 1d; default 1h), group_by (a comma list of
 * customIdentifier, username, and keyId when allow_key; default none), page (>= 1),
 * per_page (1..1000, default 100). Unknown or repeated parameters are errors. 0, or -1
 * with a message naming the parameter in err. */
int usage_params_parse(const char *query, int64_t now_s, bool allow_key, usage_params *p, char *err,
                       size_t cap);

#endif
