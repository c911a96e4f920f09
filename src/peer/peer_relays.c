/* peer/peer_relays.c: which (address, port) pairs are live relay sockets of this server, for
 * hairpinning (see include/turnkey/peer.h). Slots and external mappings are fixed before the
 * relay threads start; after that only the port bitmaps change, with atomic bit operations,
 * so every relay thread can ask on its packet path without a lock. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/peer.h"
#include "turnkey/util.h"

#define PORT_WORDS (65536 / 64)

typedef struct slot {
    struct addr addr;
    _Atomic uint64_t live[PORT_WORDS];
} slot;

typedef struct mapping {
    struct addr pub, priv;
    bool has_priv;
} mapping;

struct peer_relays {
    slot *slots[PEER_RELAYS_MAX_SLOTS];
    int n_slots;
    mapping map[2]; /* at most one per family */
    int n_map;
};

static bool same_ip(const struct addr *x, const struct addr *y)
{
    unsigned len = x->family == AF_INET ? 4 : 16;
    return x->family == y->family && memcmp(x->a, y->a, len) == 0;
}

void peer__to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, a->a, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, a->a, 16);
    }
}

peer_relays *peer_relays_new(void)
{
    return util_xcalloc(1, sizeof(peer_relays));
}

void peer_relays_free(peer_relays *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_slots; i++)
        free(r->slots[i]);
    free(r);
}

static int find_slot(const peer_relays *r, const struct addr *a)
{
    for (int i = 0; i < r->n_slots; i++)
        if (same_ip(&r->slots[i]->addr, a))
            return i;
    return -1;
}

int peer_relays_slot(const peer_relays *r, const struct sockaddr *sa)
{
    struct addr a;
    return peer__from_sockaddr(sa, &a) ? find_slot(r, &a) : -1;
}

int peer_relays_add_slot(peer_relays *r, const struct sockaddr *sa)
{
    struct addr a;
    if (!peer__from_sockaddr(sa, &a))
        return -1;
    int i = find_slot(r, &a);
    if (i >= 0 || r->n_slots == PEER_RELAYS_MAX_SLOTS)
        return i;
    slot *s = util_xcalloc(1, sizeof *s);
    s->addr = a;
    s->addr.port = 0;
    r->slots[r->n_slots] = s;
    return r->n_slots++;
}

int peer_relays_add_external(peer_relays *r, const struct sockaddr *pub,
                             const struct sockaddr *priv)
{
    mapping m = {.has_priv = priv != NULL};
    if (!peer__from_sockaddr(pub, &m.pub) || (priv && !peer__from_sockaddr(priv, &m.priv)) ||
        (priv && m.priv.family != m.pub.family))
        return -EINVAL;
    for (int i = 0; i < r->n_map; i++)
        if (r->map[i].pub.family == m.pub.family)
            return -EEXIST;
    r->map[r->n_map++] = m;
    return 0;
}

void peer_relays_mark(peer_relays *r, int i, uint16_t port, bool live)
{
    if (i < 0 || i >= r->n_slots)
        return;
    uint64_t bit = 1ull << (port % 64);
    if (live)
        atomic_fetch_or_explicit(&r->slots[i]->live[port / 64], bit, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&r->slots[i]->live[port / 64], ~bit, memory_order_relaxed);
}

static bool is_live(const slot *s, uint16_t port)
{
    uint64_t w = atomic_load_explicit(&s->live[port / 64], memory_order_relaxed);
    return (w >> (port % 64)) & 1;
}

static const mapping *mapping_for(const peer_relays *r, const struct addr *bound)
{
    for (int i = 0; i < r->n_map; i++) {
        const mapping *m = &r->map[i];
        if (m->pub.family == bound->family && (!m->has_priv || same_ip(&m->priv, bound)))
            return m;
    }
    return NULL;
}

bool peer_relays_public(const peer_relays *r, const struct sockaddr *bound,
                        struct sockaddr_storage *out)
{
    struct addr a;
    const mapping *m;
    if (!r || !peer__from_sockaddr(bound, &a) || !(m = mapping_for(r, &a)))
        return false;
    peer__to_sockaddr(&m->pub, a.port, out);
    return true;
}

/* A live slot behind the public address a (with a's port), or -1. */
static int live_behind_public(const peer_relays *r, const struct addr *a)
{
    for (int i = 0; i < r->n_map; i++) {
        const mapping *m = &r->map[i];
        if (!same_ip(&m->pub, a))
            continue;
        for (int k = 0; k < r->n_slots; k++) {
            const slot *s = r->slots[k];
            if (s->addr.family == a->family && (!m->has_priv || same_ip(&m->priv, &s->addr)) &&
                is_live(s, a->port))
                return k;
        }
    }
    return -1;
}

bool peer_relays_live(const peer_relays *r, const struct sockaddr *sa,
                      struct sockaddr_storage *direct)
{
    struct addr a;
    if (!r || !peer__from_sockaddr(sa, &a) || a.port == 0)
        return false;
    int i = find_slot(r, &a);
    if (i < 0 || !is_live(r->slots[i], a.port))
        i = live_behind_public(r, &a);
    if (i < 0)
        return false;
    if (direct)
        peer__to_sockaddr(&r->slots[i]->addr, a.port, direct);
    return true;
}
