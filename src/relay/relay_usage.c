/* relay: usage accounting on the worker side (issue 14). Once a second each worker samples
 * its allocations (turn_server_usage) into its carry; four times a second it pushes what the
 * carry holds into its ring, so a burst larger than the ring goes out within the second
 * after. End remainders join the carry from the alloc_ended op. Nothing here runs per
 * packet. */
#include "internal.h"

#include "turnkey/usage.h"
#include "turnkey/util.h"

#define USAGE_TICK_MS 250
#define USAGE_SAMPLE_EVERY 4 /* ticks: a sample a second */

static void on_sample(void *arg, const turn_alloc_report *r, const turn_usage *u)
{
    relay_worker *w = arg;
    usage_carry_add(w->ucarry, r->info->key_id, r->info->custom_id, r->username, r->username_len,
                    u->egress_bytes, u->ingress_bytes, u->alloc_ms, true);
}

static void on_usage_tick(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *w = ctx;
    int64_t now = util_now_ms();
    if (w->usage_ticks++ % USAGE_SAMPLE_EVERY == 0) {
        usage_carry_begin(w->ucarry);
        turn_server_usage(w->turn, now, on_sample, w);
    }
    usage_carry_push(w->ucarry, w->uring, now, false);
    ev_timer_start(loop, t, USAGE_TICK_MS);
}

void relay__usage_init(relay_worker *w)
{
    if (!w->shared->usage)
        return;
    w->ucarry = usage_carry_new();
    w->uring = usage_ring_new(w->shared->usage_ring);
    w->usage_ticks = 1; /* the first sample a second after start */
    ev_timer_init(&w->usage_timer, on_usage_tick, w);
    ev_timer_start(w->loop, &w->usage_timer, USAGE_TICK_MS);
}

typedef struct last_ctx {
    relay *r;
    size_t worker;
} last_ctx;

static void hand_last(void *arg, const usage_record *u)
{
    last_ctx *c = arg;
    c->r->usage_last(c->r->usage_ctx, c->worker, u);
}

void relay__usage_dispose(relay_worker *w)
{
    if (!w->ucarry)
        return;
    if (w->loop)
        ev_timer_stop(w->loop, &w->usage_timer);
    usage_carry_push(w->ucarry, w->uring, util_now_ms(), true);
    if (w->shared->usage_last) {
        last_ctx c = {w->shared, w->index};
        usage_ring_drain(w->uring, hand_last, &c);
    }
    usage_carry_free(w->ucarry);
    usage_ring_free(w->uring);
    w->ucarry = NULL;
    w->uring = NULL;
}

void relay__usage_ended(relay_worker *w, const turn_alloc_report *rep)
{
    if (!w->ucarry)
        return;
    usage_carry_add(w->ucarry, rep->info->key_id, rep->info->custom_id, rep->username,
                    rep->username_len, rep->unreported.egress_bytes, rep->unreported.ingress_bytes,
                    rep->unreported.alloc_ms, false);
}

typedef struct drain_ctx {
    void (*fn)(void *arg, size_t worker, const usage_record *u);
    void *arg;
    size_t worker;
} drain_ctx;

static void hand_one(void *arg, const usage_record *u)
{
    drain_ctx *c = arg;
    c->fn(c->arg, c->worker, u);
}

size_t relay_drain_usage(relay *r, void (*fn)(void *arg, size_t worker, const usage_record *u),
                         void *arg)
{
    size_t n = 0;
    for (size_t i = 0; r && i < r->n_workers; i++) {
        if (!r->w[i]->uring)
            continue;
        drain_ctx c = {fn, arg, i};
        n += usage_ring_drain(r->w[i]->uring, hand_one, &c);
    }
    return n;
}
