/* relay: the outward path. Each worker copies its turn_server's counters into its own
 * relaxed atomics once a second; readers sum the workers' words (no lock, no shared cache
 * line written by two threads). Ended allocations go into a bounded SPSC ring per worker
 * (the worker produces, the main thread consumes); a full ring drops and counts. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnkey/usage.h"
#include "turnkey/util.h"

_Static_assert(sizeof(turn_stats) % sizeof(uint64_t) == 0 && sizeof(size_t) == sizeof(uint64_t),
               "turn_stats is published as 64-bit words");

const double relay_revoke_bounds[RELAY_REVOKE_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,  0.1,    0.25,  0.5,  1.0};

#define PUBLISH_MS 1000

void relay__publish(relay_worker *w)
{
    turn_stats st;
    uint64_t words[RELAY__STAT_WORDS];
    turn_server_stats_at(w->turn, util_now_ms(), &st);
    memcpy(words, &st, sizeof words);
    for (size_t i = 0; i < RELAY__STAT_WORDS; i++)
        atomic_store_explicit(&w->pub.turn[i], words[i], memory_order_relaxed);
    atomic_store_explicit(&w->pub.tls_ok, w->tls_ok, memory_order_relaxed);
    atomic_store_explicit(&w->pub.tls_failed, w->tls_failed, memory_order_relaxed);
}

static void on_publish(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *w = ctx;
    relay__publish(w);
    ev_timer_start(loop, t, PUBLISH_MS);
}

void relay__obs_init(relay_worker *w)
{
    w->ended = util_xcalloc(1, sizeof *w->ended);
    ev_timer_init(&w->pub_timer, on_publish, w);
    ev_timer_start(w->loop, &w->pub_timer, PUBLISH_MS);
}

void relay__obs_dispose(relay_worker *w)
{
    if (w->loop)
        ev_timer_stop(w->loop, &w->pub_timer);
    free(w->ended);
    w->ended = NULL;
}

void relay_stats_read(relay *r, relay_stats *out)
{
    memset(out, 0, sizeof *out);
    uint64_t sum[RELAY__STAT_WORDS] = {0};
    for (size_t i = 0; r && i < r->n_workers; i++) {
        relay_worker *w = r->w[i];
        for (size_t j = 0; j < RELAY__STAT_WORDS; j++)
            sum[j] += atomic_load_explicit(&w->pub.turn[j], memory_order_relaxed);
        out->tls_ok += atomic_load_explicit(&w->pub.tls_ok, memory_order_relaxed);
        out->tls_failed += atomic_load_explicit(&w->pub.tls_failed, memory_order_relaxed);
        if (w->ended)
            out->ended_dropped += atomic_load_explicit(&w->ended->dropped, memory_order_relaxed);
        if (w->uring)
            out->usage_refused += usage_ring_refused(w->uring);
    }
    memcpy(&out->turn, sum, sizeof sum);
    if (!r)
        return;
    for (size_t b = 0; b <= RELAY_REVOKE_BUCKETS; b++)
        out->revoke_hist[b] = atomic_load_explicit(&r->revoke_hist[b], memory_order_relaxed);
    out->revoke_count = atomic_load_explicit(&r->revoke_count, memory_order_relaxed);
    out->revoke_sum_us = atomic_load_explicit(&r->revoke_sum_us, memory_order_relaxed);
}

/* --- ended allocations: SPSC ring ----------------------------------------------------- */

void relay__ops_alloc_ended(void *ctx, const turn_alloc_report *rep)
{
    relay_worker *w = ctx;
    relay_ring *q = w->ended;
    relay__usage_ended(w, rep);
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head >= RELAY_ENDED_RING) {
        atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
        return;
    }
    relay_ended *e = &q->slot[tail % RELAY_ENDED_RING];
    memset(e, 0, sizeof *e);
    snprintf(e->key_id, sizeof e->key_id, "%s", rep->info->key_id);
    snprintf(e->custom_id, sizeof e->custom_id, "%s", rep->info->custom_id);
    size_t n = rep->username_len < sizeof e->username ? rep->username_len : sizeof e->username - 1;
    memcpy(e->username, rep->username, n);
    e->username_cut = n < rep->username_len;
    e->transport = rep->transport;
    e->family = rep->family;
    e->start_ms = rep->start_ms;
    e->end_ms = rep->end_ms;
    e->reason = rep->reason;
    e->traffic = rep->traffic;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

size_t relay_drain_ended(relay *r, void (*fn)(void *arg, const relay_ended *e), void *arg)
{
    size_t total = 0;
    for (size_t i = 0; r && i < r->n_workers; i++) {
        relay_ring *q = r->w[i]->ended;
        if (!q)
            continue;
        size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
        size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        for (; head != tail; head++, total++) {
            fn(arg, &q->slot[head % RELAY_ENDED_RING]);
            atomic_store_explicit(&q->head, head + 1, memory_order_release);
        }
    }
    return total;
}

/* --- authentication failures: one rate-limited line ---------------------------------- */

void relay__ops_auth_failed(void *ctx, const turn_5tuple *t, int reason, const uint8_t *username,
                            size_t len)
{
    relay_worker *w = ctx;
    char addr[INET6_ADDRSTRLEN + 8];
    util_format_addr(&t->client, addr, sizeof addr);
    log_fields_rl(&w->shared->auth_log, LOG_WARN, "relay", "authentication failed",
                  LOG_S("reason", turn_auth_fail_name(reason)), LOG_S("client", addr),
                  LOG_S("transport", t->proto == TURN_PROTO_UDP   ? "udp"
                                     : t->proto == TURN_PROTO_TCP ? "tcp"
                                                                  : "tls"),
                  LOG_B("username", username, len > 128 ? 128 : len));
}

/* --- revocation latency -------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

relay_track *relay__track_new(size_t workers)
{
    relay_track *t = util_xcalloc(1, sizeof *t);
    atomic_init(&t->pending, workers);
    t->at_us = mono_us();
    return t;
}

void relay__track_done(relay *r, relay_track *t, size_t n)
{
    if (n)
        atomic_store(&t->ended_any, true);
    if (atomic_fetch_sub(&t->pending, 1) != 1)
        return;
    if (atomic_load(&t->ended_any)) {
        int64_t us = mono_us() - t->at_us;
        double s = (double)us / 1e6;
        size_t b = 0;
        while (b < RELAY_REVOKE_BUCKETS && s > relay_revoke_bounds[b])
            b++;
        atomic_fetch_add_explicit(&r->revoke_hist[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->revoke_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->revoke_sum_us, (uint64_t)(us < 0 ? 0 : us),
                                  memory_order_relaxed);
    }
    free(t);
}
