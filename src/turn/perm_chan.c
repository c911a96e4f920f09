/* turn/perm_chan.c: permissions (RFC 8656 §9) and channels (§12), each linked into its
 * allocation's list and also in a server-wide hash map keyed by (alloc_id, peer IP) /
 * (alloc_id, channel number) / (alloc_id, peer IP:port), with their expiries in the timer heap.
 *
 * Lookups (several per relayed packet): an allocation usually has 1-4 permissions and
 * channels, so while it has at most TURN__SCAN_MAX of a kind, they are found by walking its
 * own list and comparing the canonical address (or channel number) directly: no hashing. An
 * allocation with more (up to 512 permissions and 512 channels, TURN__MAX_*_PER_ALLOC)
 * uses the maps, whose hash is SipHash-1-3 under the server's key, since the peer addresses
 * and channel numbers are client-chosen. Entries go into the maps on creation whatever the
 * count (a hash per CreatePermission/ChannelBind, never per packet), so nothing moves when an
 * allocation crosses the threshold.
 *
 * CreatePermission: every XOR-PEER-ADDRESS is decoded (none or malformed → 400), checked
 * against the peer policy (any denied → 403) and the relay's family (→ 443) before any is
 * installed. The port is ignored for permissions, so the policy check uses the given port or,
 * when it is 0, a stand-in (the policy refuses port 0, which only matters when sending).
 * Permissions are capped at TURN__MAX_PERMS_PER_ALLOC per allocation (→ 508).
 *
 * ChannelBind: CHANNEL-NUMBER outside 0x4000-0x7FFF (stun_channel_valid) or missing → 400; XOR-PEER-ADDRESS
 * missing or given more than once → 400; the number bound to another peer, or the peer to
 * another number → 400; policy → 403; family → 443; a new channel on an allocation that has
 * TURN__MAX_CHANS_PER_ALLOC (cooling ones count: they hold memory too) → 508. Binding (or rebinding the same pair) lasts channel_s and
 * installs/refreshes the permission for the peer's IP. An expired channel stays "cooling"
 * for 5 minutes: it relays nothing, but its number and peer cannot be bound to anything else
 * (rebinding the same pair revives it), as RFC 8656 §12 requires. */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

/* Map hashes: (alloc id, family [+ port], IP) / (alloc id, number), keyed. */
static uint64_t addr_hash(const turn_server *s, const turn__alloc *a, const turn__addr *k,
                          bool with_port)
{
    uint64_t w[4] = {a->id, (uint64_t)k->fam | (with_port ? (uint64_t)k->port << 8 : 0), k->ip.w[0],
                     k->ip.w[1]};
    return turn__siphash13_words(s->sip_k, w, 4);
}

static uint64_t chan_num_hash(const turn_server *s, const turn__alloc *a, uint16_t num)
{
    uint64_t w[2] = {a->id, num};
    return turn__siphash13_words(s->sip_k, w, 2);
}

turn__perm *turn__perm_find_k(const turn_server *s, const turn__alloc *a, const turn__addr *k)
{
    if (a->n_perms <= TURN__SCAN_MAX) {
        for (turn__perm *p = a->perms; p; p = p->next)
            if (turn__ip_eq(&p->ip, k))
                return p;
        return NULL;
    }
    uint64_t h = addr_hash(s, a, k, false);
    for (turn__hnode *n = turn__hmap_chain(&s->perms, h); n; n = n->next) {
        turn__perm *p = TURN__CONTAINER_OF(n, turn__perm, node);
        if (n->hash == h && p->alloc == a && turn__ip_eq(&p->ip, k))
            return p;
    }
    return NULL;
}

turn__perm *turn__perm_find(const turn_server *s, const turn__alloc *a, const struct sockaddr *peer)
{
    turn__addr k;
    turn__addr_load(peer, &k);
    return turn__perm_find_k(s, a, &k);
}

turn__chan *turn__chan_by_num(const turn_server *s, const turn__alloc *a, uint16_t num)
{
    if (a->n_chans <= TURN__SCAN_MAX) {
        for (turn__chan *c = a->chans; c; c = c->next)
            if (c->number == num)
                return c;
        return NULL;
    }
    uint64_t h = chan_num_hash(s, a, num);
    for (turn__hnode *n = turn__hmap_chain(&s->chans_by_num, h); n; n = n->next) {
        turn__chan *c = TURN__CONTAINER_OF(n, turn__chan, by_num);
        if (n->hash == h && c->alloc == a && c->number == num)
            return c;
    }
    return NULL;
}

turn__chan *turn__chan_by_peer_k(const turn_server *s, const turn__alloc *a, const turn__addr *k)
{
    if (a->n_chans <= TURN__SCAN_MAX) {
        for (turn__chan *c = a->chans; c; c = c->next)
            if (turn__addr_eq(&c->peer_k, k))
                return c;
        return NULL;
    }
    uint64_t h = addr_hash(s, a, k, true);
    for (turn__hnode *n = turn__hmap_chain(&s->chans_by_peer, h); n; n = n->next) {
        turn__chan *c = TURN__CONTAINER_OF(n, turn__chan, by_peer);
        if (n->hash == h && c->alloc == a && turn__addr_eq(&c->peer_k, k))
            return c;
    }
    return NULL;
}

turn__chan *turn__chan_by_peer(const turn_server *s, const turn__alloc *a,
                               const struct sockaddr *peer)
{
    turn__addr k;
    turn__addr_load(peer, &k);
    return turn__chan_by_peer_k(s, a, &k);
}

void turn__perm_install(turn_server *s, turn__alloc *a, const struct sockaddr *peer, int64_t now_ms)
{
    turn__addr k;
    turn__addr_load(peer, &k);
    turn__perm_install_k(s, a, &k, now_ms);
}

void turn__perm_install_k(turn_server *s, turn__alloc *a, const turn__addr *peer_k, int64_t now_ms)
{
    turn__addr k = *peer_k;
    k.port = 0;
    turn__perm *p = turn__perm_find_k(s, a, &k);
    if (!p) {
        p = util_xcalloc(1, sizeof *p);
        p->alloc = a;
        p->ip = k;
        p->timer.kind = TURN__T_PERM;
        turn__hmap_insert(&s->perms, &p->node, addr_hash(s, a, &k, false));
        p->next = a->perms;
        if (a->perms)
            a->perms->prev = p;
        a->perms = p;
        a->n_perms++;
        s->n_perms++;
    }
    timer_schedule(&s->timers, &p->timer.e, now_ms + (int64_t)s->cfg.permission_s * 1000);
}

void turn__perm_remove(turn_server *s, turn__perm *p)
{
    turn__alloc *a = p->alloc;
    timer_cancel(&s->timers, &p->timer.e);
    turn__hmap_remove(&s->perms, &p->node);
    if (p->prev)
        p->prev->next = p->next;
    else
        a->perms = p->next;
    if (p->next)
        p->next->prev = p->prev;
    a->n_perms--;
    s->n_perms--;
    free(p);
}

void turn__chan_remove(turn_server *s, turn__chan *c)
{
    turn__alloc *a = c->alloc;
    timer_cancel(&s->timers, &c->timer.e);
    turn__hmap_remove(&s->chans_by_num, &c->by_num);
    turn__hmap_remove(&s->chans_by_peer, &c->by_peer);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->chans = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_chans--;
    if (!c->cooling)
        s->n_chans--;
    free(c);
}

void turn__chan_expired(turn_server *s, turn__chan *c, int64_t now_ms)
{
    if (c->cooling) {
        turn__chan_remove(s, c);
        return;
    }
    c->cooling = true;
    s->n_chans--;
    timer_schedule(&s->timers, &c->timer.e, now_ms + TURN__CHANNEL_COOLDOWN_MS);
}

static turn__chan *chan_create(turn_server *s, turn__alloc *a, uint16_t num,
                               const struct sockaddr_storage *peer)
{
    turn__chan *c = util_xcalloc(1, sizeof *c);
    c->alloc = a;
    c->number = num;
    c->peer = *peer;
    c->timer.kind = TURN__T_CHAN;
    c->cooling = true; /* counted active by the caller's refresh */
    turn__addr_load((const struct sockaddr *)peer, &c->peer_k);
    turn__hmap_insert(&s->chans_by_num, &c->by_num, chan_num_hash(s, a, num));
    turn__hmap_insert(&s->chans_by_peer, &c->by_peer, addr_hash(s, a, &c->peer_k, true));
    c->next = a->chans;
    if (a->chans)
        a->chans->prev = c;
    a->chans = c;
    a->n_chans++;
    return c;
}

/* Policy check for a permission: the port does not matter, so port 0 is replaced. */
static bool perm_peer_allowed(turn_server *s, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage p = *peer;
    if (p.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&p;
        if (s4->sin_port == 0)
            s4->sin_port = htons(9);
    } else if (p.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p;
        if (s6->sin6_port == 0)
            s6->sin6_port = htons(9);
    }
    return turn__peer_allowed(s, (const struct sockaddr *)&p);
}

static void reply_empty_success(turn__req *r)
{
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
    turn__reply_send(r, &b);
}

/* Decodes every XOR-PEER-ADDRESS; returns 0 or an error code. */
static int perm_peers(turn__req *r, const turn__alloc *a, struct sockaddr_storage *peers, size_t *n)
{
    *n = 0;
    for (const stun_attr *at = stun_msg_find(r->m, STUN_ATTR_XOR_PEER_ADDRESS); at;
         at = stun_msg_find_next(r->m, STUN_ATTR_XOR_PEER_ADDRESS, at)) {
        if (stun_attr_xor_address(r->m, at, &peers[*n]) != STUN_OK)
            return 400;
        (*n)++;
    }
    if (*n == 0)
        return 400;
    for (size_t i = 0; i < *n; i++)
        if (!perm_peer_allowed(r->s, &peers[i]))
            return 403;
    for (size_t i = 0; i < *n; i++)
        if (!turn__family_ok(a, (const struct sockaddr *)&peers[i]))
            return 443;
    size_t fresh = 0;
    for (size_t i = 0; i < *n; i++)
        if (!turn__perm_find(r->s, a, (const struct sockaddr *)&peers[i]))
            fresh++;
    return a->n_perms + fresh > TURN__MAX_PERMS_PER_ALLOC ? 508 : 0;
}

void turn__handle_create_permission(turn__req *r, turn__alloc *a)
{
    struct sockaddr_storage peers[STUN_MAX_ATTRS];
    size_t n;
    int code = perm_peers(r, a, peers, &n);
    if (code) {
        turn__reply_error(r, code, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        turn__perm_install(r->s, a, (const struct sockaddr *)&peers[i], r->now_ms);
    reply_empty_success(r);
}

/* ChannelBind validation; returns 0 or an error code, *existing = the channel to refresh. */
static int bind_checks(turn__req *r, turn__alloc *a, uint16_t *num, struct sockaddr_storage *peer,
                       turn__chan **existing)
{
    const struct sockaddr *pa = (const struct sockaddr *)peer;
    if (stun_get_channel_number(r->m, num) != STUN_OK || !stun_channel_valid(*num))
        return 400;
    if (stun_get_xor_address(r->m, STUN_ATTR_XOR_PEER_ADDRESS, peer) != STUN_OK)
        return 400;
    const stun_attr *first = stun_msg_find(r->m, STUN_ATTR_XOR_PEER_ADDRESS);
    if (stun_msg_find_next(r->m, STUN_ATTR_XOR_PEER_ADDRESS, first))
        return 400; /* one channel, one peer: a second address is never silently ignored */
    turn__chan *by_num = turn__chan_by_num(r->s, a, *num);
    turn__chan *by_peer = turn__chan_by_peer(r->s, a, pa);
    if (by_num != by_peer)
        return 400; /* number taken by another peer, or peer on another number */
    if (!turn__peer_allowed(r->s, pa))
        return 403;
    if (!turn__family_ok(a, pa))
        return 443;
    if (!turn__perm_find(r->s, a, pa) && a->n_perms >= TURN__MAX_PERMS_PER_ALLOC)
        return 508;
    if (!by_num && a->n_chans >= TURN__MAX_CHANS_PER_ALLOC)
        return 508;
    *existing = by_num;
    return 0;
}

void turn__handle_channel_bind(turn__req *r, turn__alloc *a)
{
    turn_server *s = r->s;
    uint16_t num;
    struct sockaddr_storage peer;
    turn__chan *c = NULL;
    int code = bind_checks(r, a, &num, &peer, &c);
    if (code) {
        turn__reply_error(r, code, 0);
        return;
    }
    if (!c)
        c = chan_create(s, a, num, &peer);
    if (c->cooling) {
        c->cooling = false;
        s->n_chans++;
    }
    timer_schedule(&s->timers, &c->timer.e, r->now_ms + (int64_t)s->cfg.channel_s * 1000);
    turn__perm_install(s, a, (const struct sockaddr *)&peer, r->now_ms);
    reply_empty_success(r);
}
