/* relay_limits: admission of TCP/TLS connections, shared by the workers (SO_REUSEPORT
 * spreads one address's connections over all of them, so the counts must be shared).
 *
 * Per source address: an IPv4 address, or an IPv6 /64 (one subscriber's usual prefix; a
 * v4-mapped address counts as IPv4). The table holds only addresses with a live connection,
 * so it is bounded by the total cap; the bucket hash is keyed with a random per-process key
 * so chains cannot be made long on purpose. Taken once per accept and once per close, never
 * per packet, under one mutex. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

struct relay_ip_entry {
    struct relay_ip_entry *next;
    uint8_t key[9]; /* family tag + 4 or 8 address bytes */
    uint32_t count;
};

/* The accounting key of a client address; 0 ok, -1 not IP. */
static int ip_key(const struct sockaddr_storage *ss, uint8_t key[9])
{
    memset(key, 0, 9);
    if (ss->ss_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 0;
    }
    if (ss->ss_family != AF_INET6)
        return -1;
    const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) {
        key[0] = 4;
        memcpy(key + 1, a + 12, 4);
    } else {
        key[0] = 6;
        memcpy(key + 1, a, 8); /* the /64 */
    }
    return 0;
}

static size_t slot(const relay *r, const uint8_t key[9], size_t nb)
{
    uint64_t h = r->ip_seed;
    for (int i = 0; i < 9; i++) {
        h = (h ^ key[i]) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    h = (h ^ r->ip_seed2) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (nb - 1);
}

static void grow(relay *r)
{
    size_t nb = r->ip_nb * 2;
    relay_ip_entry **b = util_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < r->ip_nb; i++)
        for (relay_ip_entry *e = r->ip[i], *next; e; e = next) {
            next = e->next;
            size_t j = slot(r, e->key, nb);
            e->next = b[j];
            b[j] = e;
        }
    free(r->ip);
    r->ip = b;
    r->ip_nb = nb;
}

void relay__limits_init(relay *r, uint32_t max_conns, uint32_t per_ip)
{
    pthread_mutex_init(&r->ip_mu, NULL);
    r->max_conns = max_conns ? max_conns : RELAY_DEFAULT_MAX_CONNS;
    r->max_conns_per_ip = per_ip ? per_ip : RELAY_DEFAULT_MAX_CONNS_PER_IP;
    r->ip_nb = 64;
    r->ip = util_xcalloc(r->ip_nb, sizeof *r->ip);
    util_random((uint8_t *)&r->ip_seed, sizeof r->ip_seed);
    util_random((uint8_t *)&r->ip_seed2, sizeof r->ip_seed2);
}

void relay__limits_dispose(relay *r)
{
    if (!r->ip)
        return;
    for (size_t i = 0; i < r->ip_nb; i++)
        for (relay_ip_entry *e = r->ip[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->ip);
    r->ip = NULL;
    pthread_mutex_destroy(&r->ip_mu);
}

int relay__conn_admit(relay *r, const struct sockaddr_storage *peer)
{
    uint8_t key[9];
    if (ip_key(peer, key) != 0)
        return RELAY_ADMIT_OK; /* not IP: nothing to account (never happens for TCP) */
    int rc = RELAY_ADMIT_OK;
    pthread_mutex_lock(&r->ip_mu);
    relay_ip_entry **pp = &r->ip[slot(r, key, r->ip_nb)], *e = *pp;
    while (e && memcmp(e->key, key, sizeof key) != 0)
        e = e->next;
    if (r->n_conns >= r->max_conns)
        rc = RELAY_ADMIT_TOTAL;
    else if (e && e->count >= r->max_conns_per_ip)
        rc = RELAY_ADMIT_PER_IP;
    else if (e)
        e->count++;
    else {
        if (r->n_ips + 1 > r->ip_nb)
            grow(r);
        e = util_xcalloc(1, sizeof *e);
        memcpy(e->key, key, sizeof key);
        e->count = 1;
        pp = &r->ip[slot(r, key, r->ip_nb)];
        e->next = *pp;
        *pp = e;
        r->n_ips++;
    }
    if (rc == RELAY_ADMIT_OK)
        r->n_conns++;
    pthread_mutex_unlock(&r->ip_mu);
    return rc;
}

void relay__conn_release(relay *r, const struct sockaddr_storage *peer)
{
    uint8_t key[9];
    if (ip_key(peer, key) != 0)
        return;
    pthread_mutex_lock(&r->ip_mu);
    for (relay_ip_entry **pp = &r->ip[slot(r, key, r->ip_nb)]; *pp; pp = &(*pp)->next) {
        relay_ip_entry *e = *pp;
        if (memcmp(e->key, key, sizeof key) != 0)
            continue;
        if (--e->count == 0) {
            *pp = e->next;
            free(e);
            r->n_ips--;
        }
        r->n_conns--;
        break;
    }
    pthread_mutex_unlock(&r->ip_mu);
}
