/* usage_carry: a relay worker's side of usage accounting — the per-identity carry and the
 * SPSC ring to the main thread (see include/turnkey/usage.h). Touched by the worker thread
 * once a second (never per packet); the ring's consumer is the main thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/usage.h"
#include "turnkey/util.h"

/* --- the ring ------------------------------------------------------------------------- */

struct usage_ring {
    _Atomic size_t head; /* next to read (consumer) */
    _Atomic size_t tail; /* next to write (producer) */
    _Atomic uint64_t refused;
    size_t cap;
    pthread_mutex_t mu; /* the spill list only */
    usage_record *spill;
    size_t n_spill, cap_spill;
    usage_record slot[];
};

usage_ring *usage_ring_new(size_t capacity)
{
    if (capacity == 0)
        capacity = USAGE_RING_DEFAULT;
    usage_ring *q = util_xcalloc(1, sizeof *q + capacity * sizeof q->slot[0]);
    q->cap = capacity;
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void usage_ring_free(usage_ring *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    free(q->spill);
    free(q);
}

bool usage_ring_push(usage_ring *q, const usage_record *r)
{
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head >= q->cap) {
        atomic_fetch_add_explicit(&q->refused, 1, memory_order_relaxed);
        return false;
    }
    q->slot[tail % q->cap] = *r;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return true;
}

void usage_ring_spill(usage_ring *q, const usage_record *r)
{
    if (usage_ring_push(q, r))
        return;
    pthread_mutex_lock(&q->mu);
    if (q->n_spill == q->cap_spill) {
        q->cap_spill = q->cap_spill ? q->cap_spill * 2 : 64;
        q->spill = util_xrealloc(q->spill, q->cap_spill * sizeof *q->spill);
    }
    q->spill[q->n_spill++] = *r;
    pthread_mutex_unlock(&q->mu);
}

size_t usage_ring_drain(usage_ring *q, void (*fn)(void *arg, const usage_record *r), void *arg)
{
    size_t n = 0;
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    for (; head != tail; head++, n++) {
        fn(arg, &q->slot[head % q->cap]);
        atomic_store_explicit(&q->head, head + 1, memory_order_release);
    }
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n_spill; i++, n++)
        fn(arg, &q->spill[i]);
    q->n_spill = 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

uint64_t usage_ring_refused(const usage_ring *q)
{
    return atomic_load_explicit(&((usage_ring *)q)->refused, memory_order_relaxed);
}

/* --- the carry ------------------------------------------------------------------------ */

typedef struct entry {
    usage__node n;
    usage_record rec; /* identity + what accrued since the last push */
    uint32_t live;    /* alive at the current sample */
    uint32_t ended;   /* ended since the last push */
    bool dirty;       /* news since the last push */
} entry;

struct usage_carry {
    usage__table t;
    size_t cursor; /* the bucket the last push stopped at (a full ring starves nobody) */
};

usage_carry *usage_carry_new(void)
{
    usage_carry *c = util_xcalloc(1, sizeof *c);
    usage__table_init(&c->t);
    return c;
}

void usage_carry_free(usage_carry *c)
{
    if (!c)
        return;
    usage__table_free(&c->t);
    free(c);
}

/* The username as stored: itself when it is clean UTF-8, else "0x" + hex (cut). */
static void clean_username(const uint8_t *user, size_t len, char out[256])
{
    if (len < 256 && util_utf8_valid_no_cc((const char *)user, len)) {
        memcpy(out, user, len);
        out[len] = '\0';
        return;
    }
    size_t n = len > 126 ? 126 : len;
    memcpy(out, "0x", 2);
    util_hex_encode(user, n, out + 2);
}

static entry *find_or_add(usage_carry *c, const char *key_id, const char *custom_id,
                          const char *user)
{
    uint64_t h = usage__hash_id(key_id, custom_id, user);
    for (usage__node *x = *usage__table_bucket(&c->t, h); x; x = x->next) {
        entry *e = (entry *)x;
        if (x->hash == h && !strcmp(e->rec.key_id, key_id) &&
            !strcmp(e->rec.custom_id, custom_id) && !strcmp(e->rec.username, user))
            return e;
    }
    entry *e = util_xcalloc(1, sizeof *e);
    e->n.hash = h;
    snprintf(e->rec.key_id, sizeof e->rec.key_id, "%s", key_id);
    snprintf(e->rec.custom_id, sizeof e->rec.custom_id, "%s", custom_id);
    snprintf(e->rec.username, sizeof e->rec.username, "%s", user);
    if (usage__table_insert(&c->t, &e->n))
        c->cursor = 0;
    return e;
}

void usage_carry_begin(usage_carry *c)
{
    for (size_t i = 0; i < c->t.nb; i++)
        for (usage__node *x = c->t.b[i]; x; x = x->next)
            ((entry *)x)->live = 0;
}

void usage_carry_add(usage_carry *c, const char *key_id, const char *custom_id, const uint8_t *user,
                     size_t user_len, uint64_t egress, uint64_t ingress, uint64_t alloc_ms,
                     bool live)
{
    if (!key_id[0])
        return;
    char name[256];
    clean_username(user, user_len, name);
    entry *e = find_or_add(c, key_id, custom_id, name);
    e->rec.egress_bytes += egress;
    e->rec.ingress_bytes += ingress;
    e->rec.alloc_ms += alloc_ms;
    if (live)
        e->live++;
    else
        e->ended++;
    e->dirty = true;
}

/* Hands e over; false if the ring is full (e unchanged). */
static bool push_one(entry *e, usage_ring *q, int64_t now_ms, bool final)
{
    e->rec.at_ms = now_ms;
    e->rec.conc = e->live + e->ended;
    e->rec.live = e->live;
    if (final)
        usage_ring_spill(q, &e->rec);
    else if (!usage_ring_push(q, &e->rec))
        return false;
    e->rec.egress_bytes = e->rec.ingress_bytes = e->rec.alloc_ms = 0;
    e->ended = 0;
    e->dirty = false;
    return true;
}

size_t usage_carry_push(usage_carry *c, usage_ring *q, int64_t now_ms, bool final)
{
    size_t pushed = 0;
    for (size_t k = 0; k < c->t.nb; k++) {
        size_t i = (c->cursor + k) & (c->t.nb - 1);
        for (usage__node **pp = &c->t.b[i]; *pp;) {
            entry *e = (entry *)*pp;
            if (e->dirty) {
                if (!push_one(e, q, now_ms, final)) {
                    c->cursor = i;
                    return pushed;
                }
                pushed++;
            }
            if (e->live == 0 && !e->dirty) { /* nothing of it left on this worker */
                *pp = e->n.next;
                free(e);
                c->t.n--;
                continue;
            }
            pp = &e->n.next;
        }
    }
    return pushed;
}

size_t usage_carry_size(const usage_carry *c)
{
    return c->t.n;
}
