/* relay/relay_guard.c: what the relay does against strangers before they authenticate.
 *
 * Challenge rate limit (docs/security.md, amplification): every 401/438 the turn_server wants
 * to send is first offered to relay__challenge_ok, a token bucket per source address (IPv4
 * address, or the /64 of an IPv6 one) allowing `challenge_rate` answers per second with a
 * burst of twice that. The buckets are a fixed table of RELAY_GUARD_BUCKETS per worker,
 * indexed by a keyed hash of the source (the key is random per worker): the table never
 * grows, whatever the number of sources; two sources that land in one bucket share it, so
 * a flood from many addresses can never give an address more answers than its bucket
 * allows. Suppressed answers are counted in turn_stats.challenges_suppressed.
 *
 * Relay ports: relay__random_u32 draws from the CSPRNG (getrandom through util_random), a
 * block of draws at a time, so port choice is unpredictable to clients. */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

struct relay_bucket {
    int64_t last_ms; /* last refill; 0 = never used (full) */
    uint64_t tokens; /* thousandths of an answer */
};

void relay__guard_init(relay_worker *w, uint32_t rate)
{
    w->challenge_rate = rate;
    w->buckets = rate ? util_xcalloc(RELAY_GUARD_BUCKETS, sizeof *w->buckets) : NULL;
    util_random((uint8_t *)w->guard_key, sizeof w->guard_key);
}

void relay__guard_dispose(relay_worker *w)
{
    free(w->buckets);
    w->buckets = NULL;
}

static size_t bucket_of(const relay_worker *w, const struct sockaddr_storage *src)
{
    uint64_t a = 0, b = 0;
    if (src->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)src;
        memcpy(&a, &s4->sin_addr, 4);
        b = 4;
    } else if (src->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)src;
        memcpy(&a, &s6->sin6_addr, 8); /* the /64: one host or one site */
        b = 6;
    }
    uint64_t h = (a ^ w->guard_key[0]) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    h = (h ^ b ^ w->guard_key[1]) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return (size_t)(h & (RELAY_GUARD_BUCKETS - 1));
}

bool relay__challenge_ok(void *ctx, const turn_5tuple *t)
{
    relay_worker *w = ctx;
    if (!w->buckets)
        return true;
    struct relay_bucket *bk = &w->buckets[bucket_of(w, &t->client)];
    uint64_t cap = (uint64_t)w->challenge_rate * 2 * 1000;
    int64_t now = util_now_ms();
    if (bk->last_ms == 0) {
        bk->tokens = cap;
    } else if (now > bk->last_ms) {
        uint64_t add = (uint64_t)(now - bk->last_ms) * w->challenge_rate;
        bk->tokens = bk->tokens + add > cap ? cap : bk->tokens + add;
    }
    bk->last_ms = now > 0 ? now : 1;
    if (bk->tokens < 1000)
        return false;
    bk->tokens -= 1000;
    return true;
}

uint32_t relay__random_u32(relay_worker *w)
{
    if (w->n_rand == 0) {
        util_random((uint8_t *)w->rand, sizeof w->rand);
        w->n_rand = sizeof w->rand / sizeof w->rand[0];
    }
    return w->rand[--w->n_rand];
}
