/* turn/data.c: the relay paths (RFC 8656 §10-§12).
 *
 * Client → peer: a Send indication (exactly one XOR-PEER-ADDRESS + DATA) or a ChannelData message on a
 * bound, non-cooling channel. Either needs a permission for the peer's IP and a peer the
 * policy allows; anything else is dropped silently (indications never get responses). The
 * permission is also required on channels, so a channel whose permission lapsed stops
 * relaying until a ChannelBind or CreatePermission refreshes it.
 *
 * Peer → client: needs a permission for the peer's IP; a channel bound to the peer's exact
 * IP:port gives ChannelData (padded to a multiple of 4 on TCP/TLS), otherwise a Data
 * indication (XOR-PEER-ADDRESS + DATA, no integrity). Both are built in the server's scratch
 * buffer, which fits any UDP payload; a Data indication that cannot fit is dropped. With
 * turn_server_peer_input_inplace, ChannelData to a UDP client is relayed by header rewrite
 * instead: the 4-byte header goes into the headroom in front of the payload, no copy.
 *
 * Client → peer never copies: send_peer gets a pointer to the payload inside the client's
 * message (after the ChannelData header, or the DATA attribute's value).
 *
 * Bandwidth cap (issue 14 §4): an allocation made with info.bandwidth_bps has a token bucket
 * per direction, rate bps / 8 bytes per second, holding a quarter second of the rate but at
 * least TURN__BW_BURST_MIN bytes, full at Allocate. A datagram whose UDP payload does not fit
 * (Send / ChannelData to the peer, a peer datagram to the client) is dropped, counted as
 * TURN_DROP_BANDWIDTH, and neither relayed nor counted in the traffic. Without a cap this
 * is one branch per datagram. RFC 6062 peer connections are not capped.
 *
 * Per packet: one allocation lookup, one channel lookup and one permission lookup in each
 * direction (see alloc.c and perm_chan.c for how each is found); the peer address is put in
 * canonical form once and shared by the permission and channel lookups. */
#include "internal.h"

#include <string.h>

static void drop(turn_server *s, int why)
{
    s->stats.drops[why]++;
}

static bool may_send(turn_server *s, const turn__alloc *a, const struct sockaddr *peer,
                     const turn__addr *k)
{
    int why = !turn__family_ok(a, peer)      ? TURN_DROP_FAMILY
              : !turn__perm_find_k(s, a, k)  ? TURN_DROP_NO_PERMISSION
              : !turn__peer_allowed(s, peer) ? TURN_DROP_PEER_POLICY
                                             : -1;
    if (why >= 0)
        drop(s, why);
    return why < 0;
}

/* What a bucket of this rate holds, in thousandths of a bit. */
static uint64_t bw_cap(uint64_t bps)
{
    uint64_t bytes = bps / 32; /* a quarter second of bps / 8 bytes per second */
    return (bytes > TURN__BW_BURST_MIN ? bytes : TURN__BW_BURST_MIN) * 8000;
}

void turn__bw_init(turn__alloc *a, uint64_t bps, int64_t now_ms)
{
    a->bw_bps = bps > TURN__BW_MAX ? TURN__BW_MAX : bps;
    a->bw_up.tokens = a->bw_bps ? bw_cap(a->bw_bps) : 0;
    a->bw_up.last_ms = now_ms;
    a->bw_down = a->bw_up;
}

/* Refills b up to now_ms, then takes len bytes; false (nothing taken) when they do not fit.
 * A clock that went back restarts the refill from the new time (no credit either way). */
static bool bw_take(turn__bucket *b, uint64_t bps, int64_t now_ms, size_t len)
{
    uint64_t cap = bw_cap(bps);
    if (now_ms > b->last_ms) {
        uint64_t elapsed = (uint64_t)(now_ms - b->last_ms);
        uint64_t room = cap - b->tokens;
        b->tokens = elapsed > room / bps ? cap : b->tokens + elapsed * bps; /* <= room: exact */
    }
    b->last_ms = now_ms;
    uint64_t need = (uint64_t)len * 8000;
    if (need > b->tokens)
        return false;
    b->tokens -= need;
    return true;
}

/* The cap check of one datagram of len payload bytes: one branch for an uncapped allocation. */
static bool bw_ok(turn_server *s, const turn__alloc *a, turn__bucket *b, size_t len)
{
    if (__builtin_expect(a->bw_bps == 0, 1))
        return true;
    if (bw_take(b, a->bw_bps, s->now_ms, len))
        return true;
    drop(s, TURN_DROP_BANDWIDTH);
    return false;
}

/* wire = the client's whole message (client leg), len = the payload sent to the peer. */
static void to_peer(turn_server *s, turn__alloc *a, const struct sockaddr *peer,
                    const uint8_t *data, size_t len, size_t wire)
{
    if (!bw_ok(s, a, &a->bw_up, len))
        return;
    s->ops.send_peer(s->ops.ctx, turn__relay_id(a, peer->sa_family), peer, data, len);
    s->stats.packets_to_peer++;
    s->stats.bytes_to_peer += len;
    turn__flow_add(&a->traffic.client_rx, &s->stats.traffic.client_rx, wire);
    turn__flow_add(&a->traffic.peer_tx, &s->stats.traffic.peer_tx, len);
    a->last_data_ms = s->now_ms;
}

static void to_client(turn_server *s, turn__alloc *a, const uint8_t *buf, size_t len,
                      size_t payload)
{
    s->ops.send_client(s->ops.ctx, &a->tuple, buf, len);
    s->stats.packets_to_client++;
    s->stats.bytes_to_client += payload;
    turn__flow_add(&a->traffic.client_tx, &s->stats.traffic.client_tx, len);
    a->last_data_ms = s->now_ms;
}

void turn__handle_send(turn_server *s, const turn_5tuple *t, const stun_msg *m)
{
    struct sockaddr_storage peer;
    const uint8_t *data;
    size_t len;
    turn__alloc *a = turn__alloc_find_tuple(s, t);
    if (!a || a->tcp) { /* a TCP allocation relays through its peer connections only */
        drop(s, TURN_DROP_NO_ALLOCATION);
        return;
    }
    if (m->n_unknown) {
        drop(s, TURN_DROP_MALFORMED); /* RFC 8489 §6.3.2: unknown comprehension-required */
        return;
    }
    if (stun_msg_find_next(m, STUN_ATTR_XOR_PEER_ADDRESS,
                           stun_msg_find(m, STUN_ATTR_XOR_PEER_ADDRESS))) {
        drop(s, TURN_DROP_MALFORMED); /* several peers: ambiguous (never sent to one unchecked) */
        return;
    }
    if (stun_get_xor_address(m, STUN_ATTR_XOR_PEER_ADDRESS, &peer) != STUN_OK ||
        stun_get_data(m, &data, &len) != STUN_OK) {
        drop(s, TURN_DROP_MALFORMED);
        return;
    }
    const struct sockaddr *pa = (const struct sockaddr *)&peer;
    turn__addr k;
    turn__addr_load(pa, &k);
    if (may_send(s, a, pa, &k))
        to_peer(s, a, pa, data, len, m->len);
}

void turn__handle_channeldata(turn_server *s, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    uint16_t num;
    const uint8_t *data;
    size_t dlen;
    if (stun_channeldata_parse(buf, len, &num, &data, &dlen) != STUN_OK)
        return;
    turn__alloc *a = turn__alloc_find_tuple(s, t);
    turn__chan *c = a ? turn__chan_by_num(s, a, num) : NULL;
    if (!c || c->cooling) {
        drop(s, a ? TURN_DROP_NO_CHANNEL : TURN_DROP_NO_ALLOCATION);
        return;
    }
    const struct sockaddr *peer = (const struct sockaddr *)&c->peer;
    if (may_send(s, a, peer, &c->peer_k))
        to_peer(s, a, peer, data, dlen, len);
}

/* A fresh transaction id for a Data indication: SipHash of a counter under the server's
 * hash key (unpredictable to clients, deterministic for tests). */
static void indication_txid(turn_server *s, uint8_t txid[STUN_TXID_SIZE])
{
    uint64_t ctr[2] = {s->stats.packets_to_client, s->next_id};
    uint64_t h1 = turn__siphash(s->hash_key, ctr, sizeof ctr);
    ctr[0] = ~ctr[0];
    uint64_t h2 = turn__siphash(s->hash_key, ctr, sizeof ctr);
    memcpy(txid, &h1, 8);
    memcpy(txid + 8, &h2, 4);
}

static void data_indication(turn_server *s, turn__alloc *a, const struct sockaddr *peer,
                            const uint8_t *data, size_t len)
{
    uint8_t txid[STUN_TXID_SIZE];
    stun_builder b;
    indication_txid(s, txid);
    stun_builder_begin(&b, s->scratch, TURN__SCRATCH_CAP,
                       stun_type(STUN_METHOD_DATA, STUN_CLASS_INDICATION), txid);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, peer);
    stun_builder_add(&b, STUN_ATTR_DATA, data, len);
    int n = stun_builder_finish(&b);
    if (n > 0)
        to_client(s, a, s->scratch, (size_t)n, len);
    else
        drop(s, TURN_DROP_TOO_LARGE);
}

/* A peer datagram; `room` is buf with TURN_PEER_HEADROOM writable bytes in front (or NULL). */
static void peer_input(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                       const uint8_t *buf, size_t len, uint8_t *room)
{
    if (!s || !peer || (!buf && len))
        return;
    turn__alloc *a = turn__alloc_find_id(s, alloc_id & ~TURN_RELAY_ID_DUAL);
    if (!a || a->tcp || !turn__family_ok(a, peer) ||
        turn__relay_id(a, peer->sa_family) != alloc_id) {
        drop(s, a ? TURN_DROP_FAMILY : TURN_DROP_NO_ALLOCATION);
        return;
    }
    turn__addr k;
    turn__addr_load(peer, &k);
    if (!turn__perm_find_k(s, a, &k)) {
        drop(s, TURN_DROP_NO_PERMISSION);
        return;
    }
    if (!bw_ok(s, a, &a->bw_down, len))
        return;
    turn__flow_add(&a->traffic.peer_rx, &s->stats.traffic.peer_rx, len);
    turn__chan *c = turn__chan_by_peer_k(s, a, &k);
    if (!c || c->cooling) {
        data_indication(s, a, peer, buf, len);
        return;
    }
    if (len > 0xFFFF) {
        drop(s, TURN_DROP_TOO_LARGE);
        return;
    }
    if (room && a->tuple.proto == TURN_PROTO_UDP) { /* header rewrite: no copy */
        uint8_t *frame = room - STUN_CHANNELDATA_HEADER_SIZE;
        stun_channeldata_header(frame, STUN_CHANNELDATA_HEADER_SIZE + len, c->number, len);
        to_client(s, a, frame, STUN_CHANNELDATA_HEADER_SIZE + len, len);
        return;
    }
    int n = stun_channeldata_build(s->scratch, TURN__SCRATCH_CAP, c->number, buf, len,
                                   a->tuple.proto != TURN_PROTO_UDP);
    if (n > 0)
        to_client(s, a, s->scratch, (size_t)n, len);
    else
        drop(s, TURN_DROP_TOO_LARGE);
}

void turn_server_peer_input(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                            const uint8_t *buf, size_t len, int64_t now_ms)
{
    if (s)
        s->now_ms = now_ms;
    peer_input(s, alloc_id, peer, buf, len, NULL);
}

void turn_server_peer_input_inplace(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                                    uint8_t *buf, size_t len, int64_t now_ms)
{
    if (s)
        s->now_ms = now_ms;
    peer_input(s, alloc_id, peer, buf, len, buf);
}
