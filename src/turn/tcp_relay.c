/* turn/tcp_relay.c: RFC 6062 TCP allocations, decided here and carried out by the I/O layer
 * through ops (tcp_relay_open, peer_connect, peer_close, data_bind).
 *
 * Allocate with REQUESTED-TRANSPORT TCP (§5.1): over UDP → 400; with DONT-FRAGMENT,
 * EVEN-PORT, RESERVATION-TOKEN or ADDITIONAL-ADDRESS-FAMILY → 400; REQUESTED-ADDRESS-FAMILY
 * as for UDP. The relayed address is a listening TCP socket.
 *
 * Connect (§5.2), on the control connection of a TCP allocation (a UDP one → 400):
 *   XOR-PEER-ADDRESS missing or malformed → 400; family not relayed → 443; peer policy → 403;
 *   a connection to that peer pending or live → 446; the allocation's or the server's cap of
 *   peer connections, or the permission cap → 508; then ops->peer_connect is started. Its
 *   outcome answers the Connect: success with CONNECTION-ID, which installs (refreshes) the
 *   permission for the peer's IP (unless the permission cap filled up meanwhile), or 447 on
 *   failure or after 30 s, which leaves the permissions as they were: a failed Connect lets
 *   no peer connect in (§5.3).
 * An incoming connection on the relay (§5.3) is kept only from a peer with a permission that
 *   the policy allows, within the caps; the client gets a ConnectionAttempt indication
 *   (XOR-PEER-ADDRESS + CONNECTION-ID).
 * ConnectionBind (§5.4), on a new TCP/TLS connection without an allocation (UDP, or one with
 *   an allocation → 400): CONNECTION-ID missing, unknown, still connecting or already bound
 *   → 400; a username other than the allocation's → 441; success, then ops->data_bind.
 * A peer connection not bound 30 s after it was established is closed. Ending the allocation
 *   (any reason) closes all its peer connections, which closes their data connections.
 *
 * CONNECTION-IDs: (counter << 8) | cfg.cid_tag, the counter skipping ids in use and 0. */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_cid(uint32_t cid)
{
    uint64_t h = (uint64_t)cid * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}

static turn__tcp *tcp_find(const turn_server *s, uint32_t cid)
{
    uint64_t h = hash_cid(cid);
    for (turn__hnode *n = turn__hmap_chain(&s->tcp, h); n; n = n->next) {
        turn__tcp *c = TURN__CONTAINER_OF(n, turn__tcp, node);
        if (n->hash == h && c->cid == cid)
            return c;
    }
    return NULL;
}

void turn__tcp_init(turn_server *s)
{
    turn__hmap_init(&s->tcp);
    s->next_cid = 1;
}

void turn__tcp_dispose(turn_server *s)
{
    turn__hmap_dispose(&s->tcp);
}

static uint32_t new_cid(turn_server *s)
{
    for (;;) {
        uint32_t cid = (s->next_cid++ & 0xFFFFFFu) << 8 | s->cfg.cid_tag;
        if (cid && !tcp_find(s, cid))
            return cid;
    }
}

static turn__tcp *tcp_new(turn_server *s, turn__alloc *a, const struct sockaddr *peer, int state)
{
    turn__tcp *c = util_xcalloc(1, sizeof *c);
    c->alloc = a;
    c->cid = new_cid(s);
    c->state = (uint8_t)state;
    turn__addr_load(peer, &c->peer_k);
    c->timer.kind = TURN__T_TCP;
    turn__hmap_insert(&s->tcp, &c->node, hash_cid(c->cid));
    c->next = a->tcps;
    if (a->tcps)
        a->tcps->prev = c;
    a->tcps = c;
    a->n_tcp++;
    return c;
}

static void tcp_free(turn_server *s, turn__tcp *c)
{
    turn__alloc *a = c->alloc;
    timer_cancel(&s->timers, &c->timer.e);
    turn__hmap_remove(&s->tcp, &c->node);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->tcps = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_tcp--;
    free(c);
}

void turn__tcp_alloc_gone(turn_server *s, turn__alloc *a)
{
    while (a->tcps) {
        uint32_t cid = a->tcps->cid;
        tcp_free(s, a->tcps);
        s->ops.peer_close(s->ops.ctx, cid);
    }
}

int turn__tcp_allocate_checks(const turn__req *r, int *family)
{
    const stun_msg *m = r->m;
    uint8_t fam;
    uint32_t lt;
    *family = AF_INET;
    if (r->t->proto == TURN_PROTO_UDP || stun_has_attr(m, STUN_ATTR_DONT_FRAGMENT) ||
        stun_has_attr(m, STUN_ATTR_EVEN_PORT) || stun_has_attr(m, STUN_ATTR_RESERVATION_TOKEN) ||
        stun_has_attr(m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY))
        return 400;
    if (stun_has_attr(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY)) {
        if (stun_get_address_family(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &fam) != STUN_OK)
            return 400;
        if (fam != STUN_FAMILY_IPV4 && fam != STUN_FAMILY_IPV6)
            return 440;
        *family = fam == STUN_FAMILY_IPV6 ? AF_INET6 : AF_INET;
    }
    if (stun_has_attr(m, STUN_ATTR_LIFETIME) && stun_get_lifetime(m, &lt) != STUN_OK)
        return 400;
    return 0;
}

/* Answers the Connect of c (outgoing) now: success with CONNECTION-ID or error code. The
 * request is gone, so the answer is built from what c kept of it. */
static void answer_connect(turn_server *s, turn__tcp *c, int code)
{
    turn__alloc *a = c->alloc;
    stun_msg m = {.method = STUN_METHOD_CONNECT, .txid = c->txid, .fp_off = c->fp ? 1 : 0};
    turn__req r = {.s = s,
                   .t = &a->tuple,
                   .m = &m,
                   .now_ms = s->now_ms,
                   .authed = true,
                   .mi256 = c->mi256,
                   .keylen = a->keylen};
    memcpy(r.key, a->key, a->keylen);
    if (code) {
        turn__reply_error(&r, code, 0);
    } else {
        uint8_t buf[TURN__REPLY_CAP];
        stun_builder b;
        turn__reply_begin(&r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
        stun_builder_add_u32(&b, STUN_ATTR_CONNECTION_ID, c->cid);
        turn__reply_send(&r, &b);
    }
    explicit_bzero(r.key, sizeof r.key);
}

/* 0, or the error code of a Connect to peer. */
static int connect_checks(turn__req *r, turn__alloc *a, struct sockaddr_storage *peer)
{
    turn_server *s = r->s;
    const struct sockaddr *pa = (const struct sockaddr *)peer;
    if (!a->tcp || stun_get_xor_address(r->m, STUN_ATTR_XOR_PEER_ADDRESS, peer) != STUN_OK)
        return 400;
    if (!turn__family_ok(a, pa))
        return 443;
    if (!turn__peer_allowed(s, pa))
        return 403;
    turn__addr k;
    turn__addr_load(pa, &k);
    for (turn__tcp *c = a->tcps; c; c = c->next)
        if (turn__addr_eq(&c->peer_k, &k))
            return 446;
    if (a->n_tcp >= s->cfg.max_tcp_per_alloc || s->tcp.count >= s->cfg.max_tcp_conns)
        return 508;
    if (!turn__perm_find(s, a, pa) && a->n_perms >= TURN__MAX_PERMS_PER_ALLOC)
        return 508;
    return 0;
}

void turn__handle_connect(turn__req *r, turn__alloc *a)
{
    turn_server *s = r->s;
    struct sockaddr_storage peer;
    int code = connect_checks(r, a, &peer);
    if (code) {
        turn__reply_error(r, code, 0);
        return;
    }
    const struct sockaddr *pa = (const struct sockaddr *)&peer;
    turn__tcp *c = tcp_new(s, a, pa, TURN__TCP_CONNECTING);
    c->outgoing = true;
    c->fp = r->m->fp_off != 0;
    c->mi256 = r->mi256;
    memcpy(c->txid, r->m->txid, STUN_TXID_SIZE);
    timer_schedule(&s->timers, &c->timer.e, r->now_ms + TURN__TCP_TIMEOUT_MS);
    uint32_t cid = c->cid;
    if (s->ops.peer_connect(s->ops.ctx, a->id, cid, pa) != 0) {
        tcp_free(s, c);
        turn__reply_error(r, 447, 0);
    }
}

void turn__handle_connection_bind(turn__req *r)
{
    turn_server *s = r->s;
    uint32_t cid;
    if (r->t->proto == TURN_PROTO_UDP || turn__alloc_find_tuple(s, r->t) ||
        stun_get_u32(r->m, STUN_ATTR_CONNECTION_ID, &cid) != STUN_OK) {
        turn__reply_error(r, 400, 0);
        return;
    }
    turn__tcp *c = tcp_find(s, cid);
    if (!c || c->state != TURN__TCP_PENDING) {
        turn__reply_error(r, 400, 0);
        return;
    }
    if (!turn__same_user(c->alloc, r->user, r->user_len)) {
        turn__reply_error(r, 441, 0);
        return;
    }
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
    if (turn__reply_send(r, &b) <= 0)
        return;
    c->state = TURN__TCP_BOUND;
    timer_cancel(&s->timers, &c->timer.e);
    s->ops.data_bind(s->ops.ctx, r->t, cid);
}

void turn__tcp_expired(turn_server *s, turn__tcp *c, int64_t now_ms)
{
    (void)now_ms;
    uint32_t cid = c->cid;
    if (c->state == TURN__TCP_CONNECTING)
        answer_connect(s, c, 447);
    tcp_free(s, c);
    s->ops.peer_close(s->ops.ctx, cid);
}

void turn_server_peer_connected(turn_server *s, uint32_t cid, bool ok, int64_t now_ms)
{
    if (!s)
        return;
    s->now_ms = now_ms;
    turn__tcp *c = tcp_find(s, cid);
    if (!c || c->state != TURN__TCP_CONNECTING)
        return;
    if (!ok) {
        answer_connect(s, c, 447);
        tcp_free(s, c); /* the I/O layer closed it already */
        return;
    }
    turn__alloc *a = c->alloc;
    if (turn__perm_find_k(s, a, &c->peer_k) || a->n_perms < TURN__MAX_PERMS_PER_ALLOC)
        turn__perm_install_k(s, a, &c->peer_k, now_ms); /* only a successful Connect */
    c->state = TURN__TCP_PENDING;
    timer_schedule(&s->timers, &c->timer.e, now_ms + TURN__TCP_TIMEOUT_MS);
    answer_connect(s, c, 0);
}

static void connection_attempt(turn_server *s, turn__tcp *c, const struct sockaddr *peer)
{
    uint8_t txid[STUN_TXID_SIZE], buf[TURN__REPLY_CAP];
    uint64_t w[2] = {c->cid, s->stats.packets_to_client};
    uint64_t h1 = turn__siphash(s->hash_key, w, sizeof w);
    w[1] = ~w[1];
    uint64_t h2 = turn__siphash(s->hash_key, w, sizeof w);
    memcpy(txid, &h1, 8);
    memcpy(txid + 8, &h2, 4);
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf,
                       stun_type(STUN_METHOD_CONNECTION_ATTEMPT, STUN_CLASS_INDICATION), txid);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, peer);
    stun_builder_add_u32(&b, STUN_ATTR_CONNECTION_ID, c->cid);
    int n = stun_builder_finish(&b);
    if (n > 0)
        s->ops.send_client(s->ops.ctx, &c->alloc->tuple, buf, (size_t)n);
}

uint32_t turn_server_peer_accepted(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                                   int64_t now_ms)
{
    if (!s || !peer)
        return 0;
    s->now_ms = now_ms;
    turn__alloc *a = turn__alloc_find_id(s, alloc_id);
    if (!a || !a->tcp || !turn__family_ok(a, peer)) {
        s->stats.drops[TURN_DROP_NO_ALLOCATION]++;
        return 0;
    }
    if (!turn__perm_find(s, a, peer)) {
        s->stats.drops[TURN_DROP_NO_PERMISSION]++;
        return 0;
    }
    if (!turn__peer_allowed(s, peer))
        return 0; /* counted by class in peer_denials */
    if (a->n_tcp >= s->cfg.max_tcp_per_alloc || s->tcp.count >= s->cfg.max_tcp_conns)
        return 0;
    turn__tcp *c = tcp_new(s, a, peer, TURN__TCP_PENDING);
    timer_schedule(&s->timers, &c->timer.e, now_ms + TURN__TCP_TIMEOUT_MS);
    connection_attempt(s, c, peer);
    return c->cid;
}

void turn_server_tcp_data(turn_server *s, uint32_t cid, bool to_peer, size_t bytes, int64_t now_ms)
{
    if (!s)
        return;
    s->now_ms = now_ms;
    turn__tcp *c = tcp_find(s, cid);
    if (!c || c->state != TURN__TCP_BOUND || bytes == 0)
        return;
    turn__alloc *a = c->alloc;
    turn_traffic *t = &a->traffic, *all = &s->stats.traffic;
    if (to_peer) {
        turn__flow_add(&t->client_rx, &all->client_rx, bytes);
        turn__flow_add(&t->peer_tx, &all->peer_tx, bytes);
        s->stats.packets_to_peer++;
        s->stats.bytes_to_peer += bytes;
    } else {
        turn__flow_add(&t->peer_rx, &all->peer_rx, bytes);
        turn__flow_add(&t->client_tx, &all->client_tx, bytes);
        s->stats.packets_to_client++;
        s->stats.bytes_to_client += bytes;
    }
    a->last_data_ms = now_ms;
}

void turn_server_tcp_closed(turn_server *s, uint32_t cid, int64_t now_ms)
{
    if (!s)
        return;
    s->now_ms = now_ms;
    turn__tcp *c = tcp_find(s, cid);
    if (!c)
        return;
    if (c->state == TURN__TCP_CONNECTING)
        answer_connect(s, c, 447);
    tcp_free(s, c);
}

uint32_t turn_connection_bind_cid(const uint8_t *buf, size_t len)
{
    stun_msg m;
    uint32_t cid;
    if (!buf || len < STUN_HEADER_SIZE || stun_parse(buf, len, &m) != STUN_OK ||
        m.cls != STUN_CLASS_REQUEST || m.method != STUN_METHOD_CONNECTION_BIND ||
        stun_get_u32(&m, STUN_ATTR_CONNECTION_ID, &cid) != STUN_OK)
        return 0;
    return cid;
}
