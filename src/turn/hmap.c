/* turn/hmap.c: an intrusive chained hash map (the caller embeds turn__hnode and compares its
 * own keys) and SipHash, keyed per server so peers and clients cannot choose colliding
 * addresses. Lookups, inserts and removals are O(1) on average; the table doubles at load 1.
 *
 * SipHash-2-4 over bytes (turn__siphash) serves the rare paths (usernames, Data indication
 * transaction ids). The per-packet lookups keyed by client-chosen values (5-tuple, and the
 * permission/channel maps of large allocations) use SipHash-1-3 over a few 64-bit words
 * (turn__siphash13_words): still a keyed PRF, as in the hash tables of Rust and Python, at a
 * third of the rounds, with no byte-by-byte packing of the key. */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 16

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t rd64le(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

typedef struct {
    uint64_t v0, v1, v2, v3;
} sip_state;

static inline void sip_round(sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void sip_absorb(sip_state *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

uint64_t turn__siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = rd64le(key), k1 = rd64le(key + 8);
    sip_state s = {
        .v0 = 0x736f6d6570736575ULL ^ k0,
        .v1 = 0x646f72616e646f6dULL ^ k1,
        .v2 = 0x6c7967656e657261ULL ^ k0,
        .v3 = 0x7465646279746573ULL ^ k1,
    };
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8)
        sip_absorb(&s, rd64le(p + i));
    uint64_t last = (uint64_t)(len & 0xFF) << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[full + i] << (8 * i);
    sip_absorb(&s, last);
    s.v2 ^= 0xFF;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t turn__siphash13_words(const uint64_t k[2], const uint64_t *w, size_t n)
{
    sip_state s = {
        .v0 = 0x736f6d6570736575ULL ^ k[0],
        .v1 = 0x646f72616e646f6dULL ^ k[1],
        .v2 = 0x6c7967656e657261ULL ^ k[0],
        .v3 = 0x7465646279746573ULL ^ k[1],
    };
    for (size_t i = 0; i < n; i++) {
        s.v3 ^= w[i];
        sip_round(&s);
        s.v0 ^= w[i];
    }
    uint64_t last = (uint64_t)((n * 8) & 0xFF) << 56;
    s.v3 ^= last;
    sip_round(&s);
    s.v0 ^= last;
    s.v2 ^= 0xFF;
    sip_round(&s);
    sip_round(&s);
    sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

void turn__hmap_init(turn__hmap *m)
{
    m->n_buckets = INITIAL_BUCKETS;
    m->buckets = util_xcalloc(m->n_buckets, sizeof *m->buckets);
    m->count = 0;
}

void turn__hmap_dispose(turn__hmap *m)
{
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

static void grow(turn__hmap *m)
{
    size_t nb = m->n_buckets * 2;
    turn__hnode **b = util_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->n_buckets; i++) {
        turn__hnode *n = m->buckets[i];
        while (n) {
            turn__hnode *next = n->next;
            size_t j = (size_t)n->hash & (nb - 1);
            n->next = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
}

void turn__hmap_insert(turn__hmap *m, turn__hnode *n, uint64_t hash)
{
    if (m->count >= m->n_buckets)
        grow(m);
    size_t i = (size_t)hash & (m->n_buckets - 1);
    n->hash = hash;
    n->next = m->buckets[i];
    m->buckets[i] = n;
    m->count++;
}

void turn__hmap_remove(turn__hmap *m, turn__hnode *n)
{
    turn__hnode **pp = &m->buckets[(size_t)n->hash & (m->n_buckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            m->count--;
            return;
        }
    }
}
