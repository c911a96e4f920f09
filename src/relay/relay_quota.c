/* relay_quota: per-username and global allocation counts shared by the relay workers
 * (turn_ops quota_acquire / quota_release), the draining switch that refuses every new
 * allocation, and what the relay's credential checks add from the key's policy (issue 14
 * §4: allocation quota, bandwidth cap, a tripped budget). Touched on Allocate and on
 * allocation end only (the policy on every authenticated request: one hash lookup). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

static uint64_t hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void relay__quota_init(relay *r, uint32_t user_quota, uint32_t max_allocations)
{
    pthread_mutex_init(&r->quota_mu, NULL);
    r->quota_nb = 1024;
    r->quota = util_xcalloc(r->quota_nb, sizeof *r->quota);
    r->user_quota = user_quota ? user_quota : 10;
    r->max_allocations = max_allocations ? max_allocations : 100000;
}

void relay__quota_dispose(relay *r)
{
    if (!r->quota)
        return;
    for (size_t i = 0; i < r->quota_nb; i++)
        for (relay_quota_entry *e = r->quota[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->quota);
    r->quota = NULL;
    pthread_mutex_destroy(&r->quota_mu);
}

static relay_quota_entry **find(relay *r, const uint8_t *name, size_t len)
{
    relay_quota_entry **pp = &r->quota[hash(name, len) & (r->quota_nb - 1)];
    while (*pp && !((*pp)->len == len && memcmp((*pp)->name, name, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

int relay__quota_acquire(void *ctx, const uint8_t *username, size_t len, uint32_t limit)
{
    relay_worker *w = ctx;
    relay *r = w->shared;
    int rc = TURN_QUOTA_OK;
    uint32_t user_quota = limit ? limit : r->user_quota; /* the key policy's, else --user-quota */
    pthread_mutex_lock(&r->quota_mu);
    relay_quota_entry **pp = find(r, username, len);
    if (r->draining) {
        rc = TURN_QUOTA_DRAINING;
    } else if (*pp && (*pp)->count >= user_quota) {
        rc = TURN_QUOTA_USER;
    } else if (r->quota_total >= r->max_allocations) {
        rc = TURN_QUOTA_GLOBAL;
    } else {
        if (!*pp) {
            relay_quota_entry *e = util_xcalloc(1, sizeof *e + len);
            e->len = len;
            memcpy(e->name, username, len);
            *pp = e;
        }
        (*pp)->count++;
        r->quota_total++;
    }
    pthread_mutex_unlock(&r->quota_mu);
    return rc;
}

void relay__quota_release(void *ctx, const uint8_t *username, size_t len)
{
    relay_worker *w = ctx;
    relay *r = w->shared;
    pthread_mutex_lock(&r->quota_mu);
    relay_quota_entry **pp = find(r, username, len);
    if (*pp) {
        r->quota_total--;
        if (--(*pp)->count == 0) {
            relay_quota_entry *e = *pp;
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&r->quota_mu);
}

void relay_drain(relay *r)
{
    pthread_mutex_lock(&r->quota_mu);
    r->draining = true;
    pthread_mutex_unlock(&r->quota_mu);
}

size_t relay_allocations(relay *r)
{
    pthread_mutex_lock(&r->quota_mu);
    size_t n = r->quota_total;
    pthread_mutex_unlock(&r->quota_mu);
    return n;
}

void relay__policy_fill(relay *r, turn_auth_info *info, int64_t now)
{
    keycache_policy v;
    info->alloc_quota = 0;
    info->bandwidth_bps = 0;
    info->budget_blocked = false;
    if (!info->key_id[0])
        return; /* a coturn-style shared secret: no key, no policy */
    keycache_policy_view(r->keys, info->key_id, info->custom_id, now, &v);
    info->alloc_quota = v.p.allocation_quota;
    info->bandwidth_bps = v.p.bandwidth_bps;
    info->budget_blocked = v.tripped == POLICY_END_ALLOCATIONS;
}
