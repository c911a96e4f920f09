/* usage: the main thread's aggregator (see include/turnkey/usage.h). Records from the
 * workers' rings become rows keyed (minute, key, customIdentifier, username); the current
 * concurrency of each identity (summed over workers) raises its row's peak; rows go to the
 * store in one batch per flush and are kept for the next one if the store fails. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/metrics.h"
#include "turnkey/usage.h"
#include "turnkey/util.h"

#define NOT_SEEN UINT32_MAX /* ident.cur[w]: no record from worker w in this drain */
#define MAX_ACCOUNTS 65536  /* cached key -> account entries (cleared when full) */

typedef usage__node node;
typedef usage__table table;

typedef struct row {
    node n;
    int64_t minute;
    char key_id[STORE_ID_LEN + 1], custom_id[65], username[256];
    uint64_t egress, ingress, alloc_ms, peak;
} row;

typedef struct ident {
    node n;
    char key_id[STORE_ID_LEN + 1], custom_id[65], username[256];
    int64_t last_minute; /* the row the latest record went to */
    bool touched;
    uint32_t v[]; /* cur[n_workers] then live[n_workers] */
} ident;

typedef struct account {
    node n;
    char key_id[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1]; /* "" = the store has no such key */
} account;

struct usage_agg {
    usage_agg_config cfg;
    char node_name[STORE_USAGE_NODE_LEN];
    table rows, idents, accounts;
    log_limiter rl;
    _Atomic uint64_t flushes, flush_failures, rows_written, dropped_bytes, unattributed_bytes;
    _Atomic uint64_t pending_rows;
    _Atomic int64_t as_of_ms;
};

/* --- the table (also the carry's) ---------------------------------------------------- */

void usage__table_init(table *t)
{
    t->nb = 64;
    t->n = 0;
    t->b = util_xcalloc(t->nb, sizeof *t->b);
}

void usage__table_clear(table *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (node *x = t->b[i], *next; x; x = next) {
            next = x->next;
            free(x);
        }
    memset(t->b, 0, t->nb * sizeof *t->b);
    t->n = 0;
}

void usage__table_free(table *t)
{
    usage__table_clear(t);
    free(t->b);
    t->b = NULL;
}

bool usage__table_insert(table *t, node *x)
{
    bool grew = t->n >= t->nb;
    if (grew) {
        size_t nb = t->nb * 2;
        node **b = util_xcalloc(nb, sizeof *b);
        for (size_t i = 0; i < t->nb; i++)
            for (node *y = t->b[i], *next; y; y = next) {
                next = y->next;
                y->next = b[y->hash & (nb - 1)];
                b[y->hash & (nb - 1)] = y;
            }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    node **head = usage__table_bucket(t, x->hash);
    x->next = *head;
    *head = x;
    t->n++;
    return grew;
}

uint64_t usage__hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator: "ab"+"c" differs from "a"+"bc" */
}

uint64_t usage__hash_id(const char *key, const char *cid, const char *user)
{
    return usage__hash_str(usage__hash_str(usage__hash_str(USAGE__HASH_SEED, key), cid), user);
}

static bool same_id(const char *k1, const char *c1, const char *u1, const usage_record *r)
{
    return !strcmp(k1, r->key_id) && !strcmp(c1, r->custom_id) && !strcmp(u1, r->username);
}

/* --- lifecycle ------------------------------------------------------------------------ */

usage_agg *usage_agg_new(const usage_agg_config *cfg)
{
    usage_agg *a = util_xcalloc(1, sizeof *a);
    a->cfg = *cfg;
    if (!a->cfg.max_rows)
        a->cfg.max_rows = USAGE_MAX_ROWS;
    if (!a->cfg.n_workers)
        a->cfg.n_workers = 1;
    snprintf(a->node_name, sizeof a->node_name, "%s", cfg->node ? cfg->node : "");
    a->cfg.node = a->node_name;
    usage__table_init(&a->rows);
    usage__table_init(&a->idents);
    usage__table_init(&a->accounts);
    log_limiter_init(&a->rl);
    return a;
}

void usage_agg_free(usage_agg *a)
{
    if (!a)
        return;
    usage__table_free(&a->rows);
    usage__table_free(&a->idents);
    usage__table_free(&a->accounts);
    free(a);
}

void usage_agg_set_workers(usage_agg *a, size_t n_workers)
{
    if (a->idents.n == 0 && n_workers > 0)
        a->cfg.n_workers = n_workers;
}

/* --- accounts ------------------------------------------------------------------------- */

/* 0 found (account_id filled), -1 unknown key, -2 not known yet (store error). */
static int account_lookup(usage_agg *a, const char *key_id, char account_id[STORE_ID_LEN + 1])
{
    uint64_t h = usage__hash_str(USAGE__HASH_SEED, key_id);
    for (node *x = *usage__table_bucket(&a->accounts, h); x; x = x->next) {
        account *ac = (account *)x;
        if (x->hash == h && !strcmp(ac->key_id, key_id)) {
            memcpy(account_id, ac->account_id, STORE_ID_LEN + 1);
            return account_id[0] ? 0 : -1;
        }
    }
    account_id[0] = '\0';
    int rc = a->cfg.account_of ? a->cfg.account_of(a->cfg.ctx, key_id, account_id) : -1;
    if (rc == -2)
        return -2;
    if (rc != 0)
        account_id[0] = '\0';
    if (a->accounts.n >= MAX_ACCOUNTS)
        usage__table_clear(&a->accounts);
    account *ac = util_xcalloc(1, sizeof *ac);
    ac->n.hash = h;
    snprintf(ac->key_id, sizeof ac->key_id, "%s", key_id);
    memcpy(ac->account_id, account_id, sizeof ac->account_id);
    usage__table_insert(&a->accounts, &ac->n);
    return rc == 0 ? 0 : -1;
}

/* --- rows and identities -------------------------------------------------------------- */

static row *row_find(usage_agg *a, int64_t minute, const usage_record *r, uint64_t *hash)
{
    uint64_t h =
        usage__hash_id(r->key_id, r->custom_id, r->username) ^ ((uint64_t)minute * 0x9e37ull);
    *hash = h;
    for (node *x = *usage__table_bucket(&a->rows, h); x; x = x->next) {
        row *w = (row *)x;
        if (x->hash == h && w->minute == minute && same_id(w->key_id, w->custom_id, w->username, r))
            return w;
    }
    return NULL;
}

/* The row of (minute, identity), created while the rows are under the bound. */
static row *row_get(usage_agg *a, int64_t minute, const usage_record *r)
{
    uint64_t h;
    row *w = row_find(a, minute, r, &h);
    if (w || a->rows.n >= a->cfg.max_rows)
        return w;
    w = util_xcalloc(1, sizeof *w);
    w->n.hash = h;
    w->minute = minute;
    memcpy(w->key_id, r->key_id, sizeof w->key_id);
    memcpy(w->custom_id, r->custom_id, sizeof w->custom_id);
    memcpy(w->username, r->username, sizeof w->username);
    usage__table_insert(&a->rows, &w->n);
    atomic_store_explicit(&a->pending_rows, a->rows.n, memory_order_relaxed);
    return w;
}

static ident *ident_get(usage_agg *a, const usage_record *r)
{
    uint64_t h = usage__hash_id(r->key_id, r->custom_id, r->username);
    for (node *x = *usage__table_bucket(&a->idents, h); x; x = x->next) {
        ident *d = (ident *)x;
        if (x->hash == h && same_id(d->key_id, d->custom_id, d->username, r))
            return d;
    }
    size_t n = a->cfg.n_workers;
    ident *d = util_xcalloc(1, sizeof *d + 2 * n * sizeof d->v[0]);
    d->n.hash = h;
    memcpy(d->key_id, r->key_id, sizeof d->key_id);
    memcpy(d->custom_id, r->custom_id, sizeof d->custom_id);
    memcpy(d->username, r->username, sizeof d->username);
    for (size_t w = 0; w < n; w++)
        d->v[w] = NOT_SEEN;
    usage__table_insert(&a->idents, &d->n);
    return d;
}

static int64_t minute_of(int64_t ms)
{
    return ms / 60000 * 60;
}

void usage_agg_add(usage_agg *a, size_t w, const usage_record *r)
{
    if (w >= a->cfg.n_workers || !r->key_id[0])
        return;
    char acct[STORE_ID_LEN + 1];
    account_lookup(a, r->key_id, acct); /* early: the key may be deleted before the flush */
    ident *d = ident_get(a, r);
    d->v[w] = r->conc;
    d->v[a->cfg.n_workers + w] = r->live;
    d->touched = true;
    int64_t minute = minute_of(r->at_ms);
    row *rw = row_get(a, minute, r);
    uint64_t h;
    if (!rw) /* at the bound: the identity's latest row takes it (bytes stay exact) */
        rw = row_find(a, d->last_minute, r, &h);
    if (!rw) {
        atomic_fetch_add_explicit(&a->dropped_bytes, r->egress_bytes + r->ingress_bytes,
                                  memory_order_relaxed);
        log_error_rl(&a->rl, "usage",
                     "%zu usage rows are pending (the store is failing?): usage of a new "
                     "identity is dropped (turnkey_usage_dropped_bytes_total)",
                     a->rows.n);
        return;
    }
    d->last_minute = rw->minute;
    rw->egress += r->egress_bytes;
    rw->ingress += r->ingress_bytes;
    rw->alloc_ms += r->alloc_ms;
}

void usage_agg_peaks(usage_agg *a)
{
    size_t n = a->cfg.n_workers;
    for (size_t i = 0; i < a->idents.nb; i++)
        for (node **pp = &a->idents.b[i]; *pp;) {
            ident *d = (ident *)*pp;
            uint64_t sum = 0, live = 0;
            for (size_t w = 0; w < n; w++) {
                sum += d->v[w] != NOT_SEEN ? d->v[w] : d->v[n + w];
                live += d->v[n + w];
                d->v[w] = NOT_SEEN;
            }
            if (d->touched) {
                usage_record probe;
                memcpy(probe.key_id, d->key_id, sizeof probe.key_id);
                memcpy(probe.custom_id, d->custom_id, sizeof probe.custom_id);
                memcpy(probe.username, d->username, sizeof probe.username);
                uint64_t h;
                row *rw = row_find(a, d->last_minute, &probe, &h);
                if (rw && sum > rw->peak)
                    rw->peak = sum;
                d->touched = false;
            }
            if (live == 0) {
                *pp = d->n.next;
                free(d);
                a->idents.n--;
                continue;
            }
            pp = &d->n.next;
        }
}

/* --- flushing ------------------------------------------------------------------------- */

static void delta_of(const usage_agg *a, const row *w, const char *acct, store_usage_delta *d)
{
    memset(d, 0, sizeof *d);
    d->minute = w->minute;
    memcpy(d->account_id, acct, sizeof d->account_id);
    memcpy(d->key_uid, w->key_id, sizeof d->key_uid);
    memcpy(d->custom_id, w->custom_id, sizeof d->custom_id);
    memcpy(d->username, w->username, sizeof d->username);
    snprintf(d->node, sizeof d->node, "%s", a->node_name);
    d->egress_bytes = w->egress;
    d->ingress_bytes = w->ingress;
    d->alloc_ms = w->alloc_ms;
    d->peak_allocs = w->peak;
}

/* The batch of every pending row (rows of unknown keys are dropped here); -2 when a key's
 * account cannot be told now (the store is failing). */
static int build_batch(usage_agg *a, store_usage_delta **out, size_t *n)
{
    *out = util_xcalloc(a->rows.n ? a->rows.n : 1, sizeof **out);
    *n = 0;
    for (size_t i = 0; i < a->rows.nb; i++)
        for (node **pp = &a->rows.b[i]; *pp;) {
            row *w = (row *)*pp;
            char acct[STORE_ID_LEN + 1];
            int rc = account_lookup(a, w->key_id, acct);
            if (rc == -2)
                return -2;
            if (rc == -1) {
                atomic_fetch_add_explicit(&a->unattributed_bytes, w->egress + w->ingress,
                                          memory_order_relaxed);
                *pp = w->n.next;
                free(w);
                a->rows.n--;
                continue;
            }
            delta_of(a, w, acct, &(*out)[(*n)++]);
            pp = &w->n.next;
        }
    return 0;
}

int usage_agg_flush(usage_agg *a, store *s, int64_t now_ms)
{
    store_usage_delta *batch = NULL;
    size_t n = 0;
    int rc = build_batch(a, &batch, &n) == 0 ? store_usage_add(s, batch, n) : STORE_ERROR;
    free(batch);
    if (rc == STORE_OK) {
        usage__table_clear(&a->rows);
        atomic_fetch_add_explicit(&a->rows_written, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->flushes, 1, memory_order_relaxed);
        atomic_store_explicit(&a->as_of_ms, now_ms - a->cfg.as_of_lag, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&a->flush_failures, 1, memory_order_relaxed);
        log_error_rl(&a->rl, "usage",
                     "cannot write %zu usage rows to the store; kept for the "
                     "next flush",
                     a->rows.n);
    }
    atomic_store_explicit(&a->pending_rows, a->rows.n, memory_order_relaxed);
    return rc;
}

void usage_agg_stats_read(const usage_agg *a, usage_agg_stats *out)
{
    usage_agg *m = (usage_agg *)a; /* atomics only */
    out->flushes = atomic_load_explicit(&m->flushes, memory_order_relaxed);
    out->flush_failures = atomic_load_explicit(&m->flush_failures, memory_order_relaxed);
    out->rows_written = atomic_load_explicit(&m->rows_written, memory_order_relaxed);
    out->dropped_bytes = atomic_load_explicit(&m->dropped_bytes, memory_order_relaxed);
    out->unattributed_bytes = atomic_load_explicit(&m->unattributed_bytes, memory_order_relaxed);
    out->pending_rows = atomic_load_explicit(&m->pending_rows, memory_order_relaxed);
    out->as_of_ms = atomic_load_explicit(&m->as_of_ms, memory_order_relaxed);
}

int64_t usage_agg_as_of(const usage_agg *a)
{
    return atomic_load_explicit(&((usage_agg *)a)->as_of_ms, memory_order_relaxed);
}

void usage_agg_metrics(const usage_agg *a, uint64_t ring_refused, metrics_buf *b)
{
    usage_agg_stats st;
    usage_agg_stats_read(a, &st);
    metrics_family(b, "turnkey_usage_flushes_total", "counter",
                   "Usage batches written to the store (ok) or kept for the next one (failed).");
    metrics_u64(b, "turnkey_usage_flushes_total", "result=\"ok\"", st.flushes);
    metrics_u64(b, "turnkey_usage_flushes_total", "result=\"failed\"", st.flush_failures);
    metrics_family(b, "turnkey_usage_rows_written_total", "counter",
                   "Usage rows (minute, key, customIdentifier, username) written.");
    metrics_u64(b, "turnkey_usage_rows_written_total", NULL, st.rows_written);
    metrics_family(b, "turnkey_usage_pending_rows", "gauge",
                   "Usage rows waiting for the next batch (bounded by --usage-max-pending).");
    metrics_u64(b, "turnkey_usage_pending_rows", NULL, st.pending_rows);
    metrics_family(b, "turnkey_usage_dropped_bytes_total", "counter",
                   "Relayed bytes not accounted because --usage-max-pending rows were pending.");
    metrics_u64(b, "turnkey_usage_dropped_bytes_total", NULL, st.dropped_bytes);
    metrics_family(b, "turnkey_usage_unattributed_bytes_total", "counter",
                   "Relayed bytes of keys the store does not know (never written).");
    metrics_u64(b, "turnkey_usage_unattributed_bytes_total", NULL, st.unattributed_bytes);
    metrics_family(b, "turnkey_usage_ring_full_total", "counter",
                   "Usage reports a full worker ring refused (kept by the worker, sent later).");
    metrics_u64(b, "turnkey_usage_ring_full_total", NULL, ring_refused);
    metrics_family(b, "turnkey_usage_as_of_timestamp_seconds", "gauge",
                   "Time up to which this node's usage is in the store (0: no batch yet).");
    metrics_f64(b, "turnkey_usage_as_of_timestamp_seconds", NULL, (double)st.as_of_ms / 1000.0);
}
