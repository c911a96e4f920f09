/* policy_limiter: the mint rate limits of one node (issue 14 §4) — a token bucket per key
 * and one per (key, source address), refilled at rate/60 per second up to a burst of the
 * per-minute rate.
 *
 * Memory is fixed at creation, whatever the callers send: two set-associative tables of
 * POLICY_LIMITER_SLOTS buckets (WAYS per set), one by key uid, one by a seeded 64-bit hash
 * of (key uid, source). A new identity takes an empty way of its set, else the way whose
 * bucket is the fullest (a full bucket forgets nothing: a new identity starts full), else
 * the least recently used: a flood of new sources evicts its own kind before a caller the
 * limit is holding back. Tokens are integers scaled by 60000 (one token = 60000 units,
 * refill = rate units per millisecond): exact, no floating point. One mutex. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/policy.h"
#include "turnkey/util.h"

#define WAYS 4
#define SETS (POLICY_LIMITER_SLOTS / WAYS)
#define UNIT 60000 /* one token, in bucket units (ms per minute) */
#define KEY_LEN 32
#define RATE_MAX 1000000 /* policy_parse's bound; larger rates count as this (no overflow) */

typedef struct bucket {
    uint64_t tag;  /* the identity (0 = empty) */
    int64_t units; /* tokens x UNIT, at last_ms */
    int64_t last_ms;
    uint32_t rate; /* per minute, at the last take */
} bucket;

typedef struct set {
    bucket w[WAYS];
} set;

struct policy_limiter {
    pthread_mutex_t mu;
    uint64_t seed;
    set keys[SETS];
    char key_uid[SETS][WAYS][KEY_LEN]; /* the key table's exact identity (tag: its hash) */
    set sources[SETS];
};

policy_limiter *policy_limiter_new(void)
{
    policy_limiter *l = util_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    util_random((uint8_t *)&l->seed, sizeof l->seed);
    return l;
}

void policy_limiter_free(policy_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* FNV-1a over s, continuing from h. */
static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* splitmix64's finalizer: every input bit reaches every output bit. */
static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_key(uint64_t seed, const char *uid)
{
    uint64_t h = mix(fnv(1469598103934665603ull ^ seed, uid, KEY_LEN));
    return h ? h : 1;
}

static uint64_t hash_source(uint64_t seed, const char *uid, const char *source)
{
    uint64_t h = fnv(1469598103934665603ull ^ mix(seed), uid, KEY_LEN);
    h = fnv(h, "|", 1);
    h = mix(fnv(h, source, strlen(source)));
    return h ? h : 1;
}

/* The units b holds at now at rate (refilled, capped at the burst). */
static int64_t refilled(const bucket *b, uint32_t rate, int64_t now_ms)
{
    int64_t cap = (int64_t)rate * UNIT;
    int64_t dt = now_ms - b->last_ms;
    if (dt > UNIT)
        dt = UNIT; /* a full minute refills any bucket; also bounds dt * rate */
    int64_t u = b->units + (dt > 0 ? dt * (int64_t)rate : 0);
    return u < cap ? u : cap;
}

/* True if way a is a better victim than way v: it holds less of what a limit needs to
 * remember. An empty way first; then the fuller bucket (a full one forgets nothing: a new
 * identity starts full); then the least recently used. */
static bool better_victim(const bucket *a, const bucket *v, int64_t now_ms)
{
    if (v->tag == 0 || a->tag == 0)
        return v->tag != 0;
    int64_t fa = refilled(a, a->rate, now_ms) * (int64_t)v->rate; /* a's fill x v's rate */
    int64_t fv = refilled(v, v->rate, now_ms) * (int64_t)a->rate;
    return fa != fv ? fa > fv : a->last_ms < v->last_ms;
}

/* The way of set st holding tag (and uids[w] == uid, for the key table), or the way given
 * to it now (better_victim). */
static bucket *way_of(set *st, char (*uids)[KEY_LEN], uint64_t tag, const char *uid, uint32_t rate,
                      int64_t now_ms)
{
    size_t victim = 0;
    for (size_t w = 0; w < WAYS; w++) {
        const bucket *b = &st->w[w];
        if (b->tag == tag && (!uids || memcmp(uids[w], uid, KEY_LEN) == 0))
            return &st->w[w];
        if (w > 0 && better_victim(b, &st->w[victim], now_ms))
            victim = w;
    }
    bucket *b = &st->w[victim];
    b->tag = tag;
    b->units = (int64_t)rate * UNIT; /* a new identity starts with a full burst */
    b->last_ms = now_ms;
    b->rate = rate;
    if (uids)
        memcpy(uids[victim], uid, KEY_LEN);
    return b;
}

/* Refills b (at its rate until now) and reports whether one token is there (nothing taken
 * yet). A raised rate adds its extra burst at once (an operator lifting a limit means now);
 * a lowered one caps the bucket at the new burst. */
static bool has_token(bucket *b, uint32_t rate, int64_t now_ms)
{
    b->units = refilled(b, b->rate, now_ms);
    if (rate > b->rate)
        b->units += (int64_t)(rate - b->rate) * UNIT;
    if (b->units > (int64_t)rate * UNIT)
        b->units = (int64_t)rate * UNIT;
    b->rate = rate;
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    return b->units >= UNIT;
}

int policy_limiter_take(policy_limiter *l, const char *key_uid, const char *source, const policy *p,
                        int64_t now_ms)
{
    if (!l || !p || !key_uid || strlen(key_uid) != KEY_LEN ||
        (!p->mint_rate_key && !p->mint_rate_source))
        return 0;
    if (!source)
        source = ""; /* an unknown address: every such caller shares one bucket */
    uint32_t rk = p->mint_rate_key < RATE_MAX ? p->mint_rate_key : RATE_MAX;
    uint32_t rs = p->mint_rate_source < RATE_MAX ? p->mint_rate_source : RATE_MAX;
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    bucket *kb = NULL, *sb = NULL;
    if (rk) {
        uint64_t h = hash_key(l->seed, key_uid);
        kb = way_of(&l->keys[h % SETS], l->key_uid[h % SETS], h, key_uid, rk, now_ms);
        if (!has_token(kb, rk, now_ms))
            rc = 1;
    }
    if (rc == 0 && rs) {
        uint64_t h = hash_source(l->seed, key_uid, source);
        sb = way_of(&l->sources[h % SETS], NULL, h, NULL, rs, now_ms);
        if (!has_token(sb, rs, now_ms))
            rc = 2;
    }
    if (rc == 0) {
        if (kb)
            kb->units -= UNIT;
        if (sb)
            sb->units -= UNIT;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}
