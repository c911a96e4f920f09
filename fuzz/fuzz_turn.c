/* libFuzzer target: one turn_server fed a sequence of events cut from the input.
 *
 * Input = records of [op (1 byte)][length (2 bytes, big-endian)][payload]. op & 7:
 *   0, 1  client message, payload as is (on tuple (op >> 3) & 3): STUN or ChannelData
 *   2, 3  client message re-signed by the harness: if the payload parses as STUN, it is rebuilt
 *         with USERNAME (user (op >> 6) & 3 of N_USERS) / REALM / NONCE (the last nonce this
 *         tuple was given; fetched first if none) and a valid MESSAGE-INTEGRITY (+ FINGERPRINT
 *         when op & 0x20), so the fuzzer reaches the authenticated paths (Allocate, Refresh
 *         with any LIFETIME including 0, CreatePermission, ChannelBind; Send indications pass)
 *   4     peer datagram: payload[0] picks the allocation (last id minus it), payload[1] the peer,
 *         the rest is the data
 *   5     advance the clock by payload[0..3] (ms, big-endian) and run the timers
 *   6     lifecycle (payload[0]): 0 key deleted (key (payload[0] >> 3) & 1), or with bit 0x10
 *         a budget trip of that key (turn_server_budget_tripped; customIdentifier
 *         (payload[0] >> 5) & 3: "", "c0", "c1", NULL); 1 credential revoked (user from
 *         payload[0] >> 3); 2, 3 every auth fails (reject / expired); 4 auth works again and
 *         fresh credentials replace the revoked and deleted ones; 5 credentials expire in
 *         (payload[0] >> 3) * 10 s; 6 the key policy every credential carries from now on:
 *         alloc_quota (payload[0] >> 3) & 3, budget_blocked bit 0x20, bandwidth_bps
 *         payload[1..2] (big-endian) x {0, 8, 80000, 2^40}[payload[0] >> 6]; 7 no expiry
 *   7     connection closed for tuple (op >> 3) & 3
 * Tuples 0, 1 are UDP clients, 2 TCP, 3 TLS. The fake auth accepts N_USERS usernames (users
 * 0, 2 on key 0, users 1, 3 on key 1; users 0, 1 with customIdentifier "c0", 2, 3 "c1"), one
 * password, and refuses a revoked username or a user
 * of a deleted key (as the key cache does) until lifecycle 4. The caps are small (CAP total,
 * USER_QUOTA per username, fewer than N_TUPLES) so both can be reached.
 *
 * Every input runs twice: once with the server counting quotas itself (cfg.user_quota /
 * max_allocations), once through the quota_acquire / quota_release ops the relay uses.
 *
 * The harness keeps its own model, built from what the server did through the ops and from
 * the answers it sent (send_client parses them, matched to the request by transaction id):
 * the open relays with their owner and 5-tuple, the permissions each successful
 * CreatePermission / ChannelBind answer installed (peer IP, until now + 300 s), each
 * allocation's lifetime from its last Allocate / Refresh answer. Invariants, after every step:
 *   - the allocation count stays within CAP and equals the open relays; an Allocate succeeds
 *     only while the user holds fewer than its quota (the policy's alloc_quota, else
 *     USER_QUOTA; in ops mode quota_acquire is given that limit), never for a budget-blocked
 *     credential; the quota counts (ops mode) equal the open allocations per user; a 486
 *     "Budget Exceeded" comes only for a blocked credential, any other 486 only when the user
 *     really holds its quota;
 *   - each direction of an allocation relays at most its bucket (max(bps / 32, 3000) bytes)
 *     plus bps / 8 bytes per second since its Allocate (bps: the credential's then; UDP
 *     payload bytes);
 *   - right after a budget trip no allocation of the matching users is left;
 *   - every relay has an owner (relay_open only inside an authenticated Allocate), at most one
 *     allocation per 5-tuple, relay_close only for open relays;
 *   - no permission is installed for a peer the policy denies (every XOR-PEER-ADDRESS of a
 *     successful CreatePermission is checked, the one of a ChannelBind too);
 *   - nothing is sent to a peer the policy denies, nor to a peer without a live permission on
 *     that allocation, nor from a closed relay, nor from another client's relay; peer data
 *     reaches the client only from a permitted peer, on the allocation's own 5-tuple;
 *   - a revoked username or a deleted key holds no allocation afterwards, a Refresh answered
 *     with LIFETIME 0 or a closed TCP/TLS connection leaves no allocation on its 5-tuple, no
 *     allocation outlives the lifetime it was given; a closed relay never sends again;
 *   - everything is closed after turn_server_free.
 * FUZZ_TURN_VERBOSE=1 prints what the server did (answers, relays, sends) for each input. */
#include "turnkey/peer.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"
#include "turnkey/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_turn_model.h"

/* Data for a client while a peer datagram is processed: only from a permitted peer, to the
 * 5-tuple of that allocation. */
static void check_peer_delivery(const harness *h, int ti)
{
    REQUIRE(is_open(h, h->peer_id));
    REQUIRE(h->relays[base_id(h->peer_id)].tuple == ti);
    REQUIRE(has_perm(h, base_id(h->peer_id), (const struct sockaddr *)&h->peer));
}

static void success_answer(harness *h, int ti, const stun_msg *m)
{
    uint64_t id = alloc_of(h, ti);
    uint32_t lt = 0;
    bool has_lt = stun_get_lifetime(m, &lt) == STUN_OK;
    switch (m->method) {
    case STUN_METHOD_CREATE_PERMISSION:
        REQUIRE(id != 0);
        for (size_t i = 0; i < h->req.n_peers; i++)
            perm_grant(h, id, (const struct sockaddr *)&h->req.peers[i]);
        break;
    case STUN_METHOD_CHANNEL_BIND: /* binds the first XOR-PEER-ADDRESS */
        REQUIRE(id != 0 && h->req.n_peers > 0);
        perm_grant(h, id, (const struct sockaddr *)&h->req.peers[0]);
        break;
    case STUN_METHOD_REFRESH:
        REQUIRE(has_lt);
        if (lt == 0) {
            h->tuple_must_be_empty[ti] = true;
        } else {
            REQUIRE(id != 0);
            h->relays[id].deadline = h->now + (int64_t)lt * 1000;
        }
        break;
    case STUN_METHOD_ALLOCATE: /* a retransmission gets the stored answer: no new lifetime */
        REQUIRE(id != 0 && has_lt && lt > 0);
        if (h->req.opened)
            h->relays[id].deadline = h->now + (int64_t)lt * 1000;
        break;
    default: break;
    }
}

static long user_limit(const harness *h)
{
    return h->alloc_quota ? (long)h->alloc_quota : USER_QUOTA;
}

/* bytes relayed in one direction of r so far are within its cap (exact, in 128 bits). */
static bool within_cap(const harness *h, const relay_rec *r, uint64_t bytes)
{
    if (!r->bps)
        return true;
    uint64_t burst = r->bps / 32 > 3000 ? r->bps / 32 : 3000;
    unsigned __int128 have =
        (unsigned __int128)burst * 8000 + (unsigned __int128)(uint64_t)(h->now - r->start) * r->bps;
    return (unsigned __int128)bytes * 8000 <= have;
}

static void error_answer(harness *h, const stun_msg *m)
{
    int code = 0;
    const uint8_t *reason;
    size_t rlen;
    REQUIRE(stun_get_error_code(m, &code, &reason, &rlen) == STUN_OK);
    /* 486 only for a blocked credential or a user who really holds the quota (the counts
     * never drift) */
    if (code == 486) {
        REQUIRE(m->method == STUN_METHOD_ALLOCATE && h->last_user >= 0);
        if (rlen == 15 && memcmp(reason, "Budget Exceeded", 15) == 0)
            REQUIRE(h->blocked);
        else
            REQUIRE(!h->blocked && h->per_user[h->last_user] >= user_limit(h));
    }
}

static void send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    harness *h = ctx;
    stun_msg m;
    const uint8_t *nonce;
    size_t nl;
    int i = tuple_index(h, t);
    REQUIRE(i >= 0); /* answered someone who never spoke */
    if (h->in_peer) {
        if (h->verbose)
            fprintf(stderr, "  t%d <- peer data on relay %llu\n", i,
                    (unsigned long long)h->peer_id);
        check_peer_delivery(h, i);
        relay_rec *r = &h->relays[base_id(h->peer_id)];
        r->down += h->peer_len;
        REQUIRE(within_cap(h, r, r->down)); /* over the bandwidth cap */
        return;
    }
    REQUIRE(i == h->cur_ti); /* answers go to the client that asked */
    if (stun_parse(buf, len, &m) != STUN_OK)
        return;
    if (stun_get_nonce(&m, &nonce, &nl) == STUN_OK && nl < sizeof h->nonce[i]) {
        memcpy(h->nonce[i], nonce, nl);
        h->nonce_len[i] = nl;
    }
    if (!h->req.active || h->req.ti != i || m.method != h->req.method ||
        memcmp(m.txid, h->req.txid, STUN_TXID_SIZE) != 0)
        return;
    if (h->verbose) {
        int code = 0;
        const uint8_t *r;
        size_t rl;
        stun_get_error_code(&m, &code, &r, &rl);
        fprintf(stderr, "  t%d <- method %#x class %d %d\n", i, m.method, m.cls, code);
    }
    if (m.cls == STUN_CLASS_SUCCESS)
        success_answer(h, i, &m);
    else if (m.cls == STUN_CLASS_ERROR)
        error_answer(h, &m);
}

/* ---- ops ------------------------------------------------------------------------------ */

static void fill_relayed(struct sockaddr_storage *relayed, int family, uint16_t port)
{
    memset(relayed, 0, sizeof *relayed);
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)relayed;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        s6->sin6_addr.s6_addr[0] = 0x20;
        s6->sin6_addr.s6_addr[15] = 5;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)relayed;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        s4->sin_addr.s_addr = htonl(0xCB007105); /* 203.0.113.5 */
    }
}

/* The second (IPv6) relay of a dual allocation: only for an open first relay of the tuple
 * being served; some fail (the allocation must stand with its first family). */
static int relay_open_second(harness *h, uint64_t id, int family, const turn_5tuple *t,
                             struct sockaddr_storage *relayed)
{
    uint64_t b = base_id(id);
    REQUIRE(family == AF_INET6);
    REQUIRE(b < h->relays_cap && h->relays[b].open && !h->relays[b].open2);
    REQUIRE(h->relays[b].tuple == tuple_index(h, t));
    if (b % 7 == 3)
        return TURN_RELAY_ERR_FAMILY;
    h->relays[b].open2 = true;
    fill_relayed(relayed, AF_INET6, (uint16_t)(45000 + b));
    return 0;
}

static int relay_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                      struct sockaddr_storage *relayed)
{
    harness *h = ctx;
    if (id & TURN_RELAY_ID_DUAL)
        return relay_open_second(h, id, family, t, relayed);
    if (id % 13 == 5)
        return TURN_RELAY_ERR_CAPACITY;
    if (id >= h->relays_cap) {
        size_t cap = (id + 1) * 2;
        h->relays = util_xrealloc(h->relays, cap * sizeof *h->relays);
        memset(h->relays + h->relays_cap, 0, (cap - h->relays_cap) * sizeof *h->relays);
        h->relays_cap = cap;
    }
    int ti = tuple_index(h, t);
    REQUIRE(!h->relays[id].open);
    REQUIRE(h->last_user >= 0); /* a relay for an allocation nobody authenticated */
    REQUIRE(ti >= 0 && ti == h->cur_ti && alloc_of(h, ti) == 0);
    REQUIRE(!h->blocked);                               /* a relay despite a budget trip */
    REQUIRE(h->per_user[h->last_user] < user_limit(h)); /* a relay past the quota */
    h->relays[id] = (relay_rec){.open = true,
                                .owner = (signed char)h->last_user,
                                .tuple = (signed char)ti,
                                .deadline = INT64_MAX,
                                .bps = h->bps,
                                .start = h->now};
    h->per_user[h->last_user]++;
    h->n_open++;
    h->req.opened = true;
    if (h->verbose)
        fprintf(stderr, "  relay %llu opened for t%d user %d\n", (unsigned long long)id, ti,
                h->last_user);
    h->last_id = id;
    fill_relayed(relayed, family, (uint16_t)(40000 + id));
    return 0;
}

static void relay_close(void *ctx, uint64_t id)
{
    harness *h = ctx;
    REQUIRE(is_open(h, id));
    if (h->verbose)
        fprintf(stderr, "  relay %llu closed\n", (unsigned long long)id);
    relay_rec *r = &h->relays[base_id(id)];
    if (id & TURN_RELAY_ID_DUAL)
        r->open2 = false;
    else
        r->gone1 = true;
    if (r->open2 || !r->gone1)
        return; /* the other relay of a dual allocation still serves it */
    r->open = false;
    h->per_user[r->owner]--;
    h->n_open--;
}

static void send_peer(void *ctx, uint64_t id, const struct sockaddr *peer, const uint8_t *buf,
                      size_t len)
{
    harness *h = ctx;
    (void)buf;
    REQUIRE(!h->in_peer);
    REQUIRE(is_open(h, id));                            /* sending from a closed relay */
    REQUIRE(h->relays[base_id(id)].tuple == h->cur_ti); /* from the sender's own allocation */
    REQUIRE(peer_allowed(h->pol, peer));                /* relayed to a peer the policy denies */
    REQUIRE(has_perm(h, base_id(id), peer));            /* relayed without a permission */
    /* from the relay of the peer's family (a dual's IPv6 relay for IPv6 peers) */
    REQUIRE(((id & TURN_RELAY_ID_DUAL) != 0) ==
            (peer->sa_family == AF_INET6 && h->relays[base_id(id)].open2));
    relay_rec *r = &h->relays[base_id(id)];
    r->up += len;
    REQUIRE(within_cap(h, r, r->up)); /* over the bandwidth cap */
    if (h->verbose)
        fprintf(stderr, "  relay %llu -> peer (%zu bytes)\n", (unsigned long long)id, len);
}

static int auth(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                turn_auth_info *info)
{
    harness *h = ctx;
    h->last_user = -1;
    if (h->auth_rc)
        return h->auth_rc;
    int u = user_index(user, len);
    if (u < 0 || h->revoked[u] || h->key_gone[u & 1])
        return TURN_AUTH_REJECT;
    h->last_user = u;
    strcpy(password, PASS);
    strcpy(info->key_id, keys[u & 1]);
    strcpy(info->custom_id, cids[u >> 1]);
    info->expires = h->expires ? h->expires : now + 3600;
    info->alloc_quota = h->alloc_quota;
    info->bandwidth_bps = h->bps;
    info->budget_blocked = h->blocked;
    return TURN_AUTH_OK;
}

static int quota_acquire(void *ctx, const uint8_t *name, size_t len, uint32_t limit)
{
    harness *h = ctx;
    int u = user_index(name, len);
    REQUIRE(u >= 0 && u == h->last_user); /* only for the user just authenticated */
    REQUIRE(limit == h->alloc_quota);     /* the credential's quota, as auth gave it */
    REQUIRE(!h->blocked);                 /* a blocked credential never takes a quota */
    if (h->quota[u] >= (limit ? (long)limit : USER_QUOTA))
        return TURN_QUOTA_USER;
    if (h->quota_total >= CAP)
        return TURN_QUOTA_GLOBAL;
    h->quota[u]++;
    h->quota_total++;
    return TURN_QUOTA_OK;
}

static void quota_release(void *ctx, const uint8_t *name, size_t len)
{
    harness *h = ctx;
    int u = user_index(name, len);
    REQUIRE(u >= 0 && h->quota[u] > 0);
    h->quota[u]--;
    h->quota_total--;
}

/* ---- events --------------------------------------------------------------------------- */

static void set_addr(struct sockaddr_storage *ss, uint32_t ip, uint16_t port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    s4->sin_addr.s_addr = htonl(ip);
}

static void peer_addr(struct sockaddr_storage *ss, uint8_t sel)
{
    static const uint32_t v4[] = {0x08080808, 0x01010101, 0x7F000001, 0x0A000001};
    if (sel & 0x80) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        memset(ss, 0, sizeof *ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)(5000 + (sel & 3)));
        s6->sin6_addr.s6_addr[0] = 0x26;
        s6->sin6_addr.s6_addr[15] = (uint8_t)(sel & 0x0F);
        return;
    }
    set_addr(ss, v4[sel & 3], (uint16_t)(5000 + ((sel >> 2) & 3)));
}

/* Rebuilds msg with credentials and integrity; returns the new length or 0. */
static size_t resign(harness *h, int ti, const char *user, const uint8_t *msg, size_t len, bool fp,
                     uint8_t *out, size_t cap)
{
    stun_msg m;
    stun_builder b;
    uint8_t key[16];
    if (stun_parse(msg, len, &m) != STUN_OK)
        return 0;
    stun_builder_begin(&b, out, cap, m.type, m.txid);
    for (size_t i = 0; i < m.n_attrs; i++) {
        const stun_attr *a = &m.attrs[i];
        switch (a->type) {
        case STUN_ATTR_USERNAME:
        case STUN_ATTR_REALM:
        case STUN_ATTR_NONCE:
        case STUN_ATTR_MESSAGE_INTEGRITY:
        case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        case STUN_ATTR_FINGERPRINT:
        case STUN_ATTR_PASSWORD_ALGORITHM: continue;
        default: stun_builder_add(&b, a->type, stun_attr_value(&m, a), a->len);
        }
    }
    stun_builder_add(&b, STUN_ATTR_USERNAME, user, strlen(user));
    stun_builder_add(&b, STUN_ATTR_REALM, REALM, strlen(REALM));
    stun_builder_add(&b, STUN_ATTR_NONCE, h->nonce[ti], h->nonce_len[ti]);
    stun_long_term_key((const uint8_t *)user, strlen(user), (const uint8_t *)REALM, strlen(REALM),
                       (const uint8_t *)PASS, strlen(PASS), key);
    stun_builder_add_integrity(&b, key, sizeof key);
    if (fp)
        stun_builder_add_fingerprint(&b);
    int n = stun_builder_finish(&b);
    return n > 0 ? (size_t)n : 0;
}

/* Remembers a request so its answer can be matched (and what peers it names). */
static void note_request(harness *h, int ti, const uint8_t *p, size_t n)
{
    stun_msg m;
    h->req.active = false;
    if (stun_is_channeldata(p, n) || stun_parse(p, n, &m) != STUN_OK || m.cls != STUN_CLASS_REQUEST)
        return;
    h->req.active = true;
    h->req.ti = ti;
    h->req.method = m.method;
    memcpy(h->req.txid, m.txid, STUN_TXID_SIZE);
    h->req.n_peers = 0;
    h->req.opened = false;
    for (const stun_attr *a = stun_msg_find(&m, STUN_ATTR_XOR_PEER_ADDRESS); a;
         a = stun_msg_find_next(&m, STUN_ATTR_XOR_PEER_ADDRESS, a))
        if (stun_attr_xor_address(&m, a, &h->req.peers[h->req.n_peers]) == STUN_OK)
            h->req.n_peers++;
}

static void input(harness *h, int ti, const uint8_t *p, size_t n)
{
    note_request(h, ti, p, n);
    h->cur_ti = ti;
    turn_server_input(h->s, &h->tuples[ti], p, n, h->now);
    h->cur_ti = -1;
    h->req.active = false;
}

static void client_msg(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    int ti = (op >> 3) & 3;
    if ((op & 7) < 2) {
        input(h, ti, p, n);
        return;
    }
    if (!h->nonce_len[ti])
        input(h, ti, p, n); /* earns a 401 with a nonce */
    size_t cap = n + 256;
    uint8_t *out = util_xmalloc(cap);
    size_t len = resign(h, ti, users[(op >> 6) & 3], p, n, (op & 0x20) != 0, out, cap);
    if (len)
        input(h, ti, out, len);
    free(out);
}

static void peer_msg(harness *h, const uint8_t *p, size_t n)
{
    if (n < 2)
        return;
    peer_addr(&h->peer, p[1]);
    uint64_t id = h->last_id >= p[0] ? h->last_id - p[0] : p[0];
    if (p[1] & 0x20) /* a bit peer_addr does not use: the dual allocation's IPv6 relay */
        id |= TURN_RELAY_ID_DUAL;
    /* exact-size copy so reads past the datagram (or before its headroom) are caught */
    bool inplace = p[1] & 0x40; /* a bit peer_addr does not use */
    size_t room = inplace ? TURN_PEER_HEADROOM : 0;
    uint8_t *d = util_xmalloc(room + (n - 2 ? n - 2 : 1));
    memcpy(d + room, p + 2, n - 2);
    h->in_peer = true;
    h->peer_id = id;
    h->peer_len = n - 2;
    const struct sockaddr *sa = (const struct sockaddr *)&h->peer;
    if (inplace)
        turn_server_peer_input_inplace(h->s, id, sa, d + room, n - 2, h->now);
    else
        turn_server_peer_input(h->s, id, sa, d, n - 2, h->now);
    h->in_peer = false;
    free(d);
}

/* A budget trip of key k for customIdentifier selector c ("", "c0", "c1", NULL): every
 * allocation of the matching users ends, the others stay. */
static void budget_trip(harness *h, int k, int c)
{
    static const char *const sel_cid[4] = {"", "c0", "c1", NULL};
    long before = h->n_open, match = 0;
    for (uint64_t id = 0; id < h->relays_cap; id++) {
        const relay_rec *r = &h->relays[id];
        match += r->open && (r->owner & 1) == k && (c == 0 || c == 3 || (r->owner >> 1) == c - 1);
    }
    size_t n = turn_server_budget_tripped(h->s, keys[k], sel_cid[c], h->now);
    REQUIRE((long)n == match && h->n_open == before - match);
    for (uint64_t id = 0; id < h->relays_cap; id++) {
        const relay_rec *r = &h->relays[id];
        REQUIRE(!r->open || (r->owner & 1) != k || (c != 0 && c != 3 && (r->owner >> 1) != c - 1));
    }
}

/* Op 6, case 6: the policy of every credential from now on. */
static void set_policy(harness *h, uint8_t sel, const uint8_t *p, size_t n)
{
    static const uint64_t mult[4] = {0, 8, 80000, UINT64_C(1) << 40};
    h->alloc_quota = (sel >> 3) & 3;
    h->blocked = (sel & 0x20) != 0;
    h->bps = n >= 3 ? (uint64_t)(p[1] << 8 | p[2]) * mult[sel >> 6] : 0;
}

static void lifecycle(harness *h, const uint8_t *p, size_t n)
{
    uint8_t sel = n ? p[0] : 0;
    switch (sel & 7) {
    case 0:
        if (sel & 0x10) {
            budget_trip(h, (sel >> 3) & 1, (sel >> 5) & 3);
            break;
        }
        h->key_gone[(sel >> 3) & 1] = true;
        turn_server_key_deleted(h->s, keys[(sel >> 3) & 1], h->now);
        break;
    case 1: {
        const char *u = users[(sel >> 3) & 3];
        h->revoked[(sel >> 3) & 3] = true;
        turn_server_credential_revoked(h->s, (const uint8_t *)u, strlen(u), h->now);
        break;
    }
    case 2: h->auth_rc = TURN_AUTH_REJECT; break;
    case 3: h->auth_rc = TURN_AUTH_EXPIRED; break;
    case 4:
        h->auth_rc = 0;
        memset(h->revoked, 0, sizeof h->revoked);
        memset(h->key_gone, 0, sizeof h->key_gone);
        break;
    case 5: h->expires = h->now / 1000 + (sel >> 3) * 10; break;
    case 6: set_policy(h, sel, p, n); break;
    default: h->expires = 0; break;
    }
}

static void conn_closed(harness *h, int ti)
{
    turn_server_conn_closed(h->s, &h->tuples[ti], h->now);
    if (h->tuples[ti].proto != TURN_PROTO_UDP)
        h->tuple_must_be_empty[ti] = true;
}

/* ---- invariants after every step ------------------------------------------------------ */

static void check_state(harness *h)
{
    turn_stats st;
    turn_server_stats(h->s, &st);
    REQUIRE(st.allocations <= CAP && (long)st.allocations == h->n_open);
    long per_tuple[N_TUPLES] = {0}, per_user[N_USERS] = {0};
    for (uint64_t id = 0; id < h->relays_cap; id++) {
        const relay_rec *r = &h->relays[id];
        REQUIRE(r->open || !r->open2);              /* a second relay outlived its allocation */
        REQUIRE(!r->open || !r->gone1 || r->open2); /* alive without a relay */
        if (!r->open)
            continue;
        REQUIRE(r->owner >= 0 && r->owner < N_USERS && r->tuple >= 0 && r->tuple < N_TUPLES);
        REQUIRE(!h->revoked[r->owner] && !h->key_gone[r->owner & 1]);
        REQUIRE(!h->tuple_must_be_empty[r->tuple]);
        REQUIRE(h->now < r->deadline); /* outlived its lifetime */
        per_tuple[r->tuple]++;
        per_user[r->owner]++;
    }
    for (int t = 0; t < N_TUPLES; t++)
        REQUIRE(per_tuple[t] <= 1);
    long total = 0;
    for (int u = 0; u < N_USERS; u++) {
        REQUIRE(per_user[u] == h->per_user[u] && per_user[u] <= MAX_QUOTA);
        if (h->quota_ops)
            REQUIRE(h->quota[u] == per_user[u]);
        total += per_user[u];
    }
    if (h->quota_ops)
        REQUIRE(h->quota_total == total);
    memset(h->tuple_must_be_empty, 0, sizeof h->tuple_must_be_empty);
}

static void setup(harness *h, turn_config *cfg, peer_policy *pol, bool quota_ops)
{
    memset(h, 0, sizeof *h);
    h->now = 1700000000000LL;
    h->last_user = -1;
    h->cur_ti = -1;
    h->quota_ops = quota_ops;
    h->verbose = getenv("FUZZ_TURN_VERBOSE") != NULL;
    h->pol = pol;
    peer_policy_init(pol);
    peer_cidr c;
    peer_cidr_parse("127.0.0.1/32", &c);
    peer_policy_add_allow(pol, &c);
    memset(cfg, 0, sizeof *cfg);
    cfg->realm = REALM;
    cfg->software = "fuzz";
    memset(cfg->nonce_secret, 7, sizeof cfg->nonce_secret);
    cfg->max_allocations = CAP;
    cfg->user_quota = USER_QUOTA;
    cfg->peers = pol;
    for (int i = 0; i < N_TUPLES; i++) {
        turn_5tuple *t = &h->tuples[i];
        t->proto = i < 2 ? TURN_PROTO_UDP : (i == 2 ? TURN_PROTO_TCP : TURN_PROTO_TLS);
        t->conn_id = i < 2 ? 0 : (uint64_t)i;
        set_addr(&t->client, 0xC6336414, (uint16_t)(40000 + i)); /* 198.51.100.20 */
        set_addr(&t->server, 0xC0000201, 3478);
    }
    turn_ops ops = {.send_client = send_client,
                    .relay_open = relay_open,
                    .relay_close = relay_close,
                    .send_peer = send_peer,
                    .auth = auth,
                    .ctx = h};
    if (quota_ops) {
        ops.quota_acquire = quota_acquire;
        ops.quota_release = quota_release;
    }
    h->s = turn_server_new(cfg, &ops);
    REQUIRE(h->s != NULL);
}

static void step(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    switch (op & 7) {
    case 4: peer_msg(h, p, n); break;
    case 5: {
        uint32_t adv = 0;
        for (size_t i = 0; i < 4 && i < n; i++)
            adv = (adv << 8) | p[i];
        h->now += adv;
        turn_server_tick(h->s, h->now);
        break;
    }
    case 6: lifecycle(h, p, n); break;
    case 7: conn_closed(h, (op >> 3) & 3); break;
    default: client_msg(h, op, p, n); break;
    }
}

static void run(const uint8_t *data, size_t size, bool quota_ops)
{
    harness h;
    turn_config cfg;
    peer_policy pol;
    setup(&h, &cfg, &pol, quota_ops);
    size_t off = 0;
    while (size - off >= 3) {
        uint8_t op = data[off];
        size_t n = ((size_t)data[off + 1] << 8) | data[off + 2];
        off += 3;
        if (n > size - off)
            n = size - off;
        /* exact-size copy of the payload */
        uint8_t *p = util_xmalloc(n ? n : 1);
        memcpy(p, data + off, n);
        off += n;
        if (h.verbose)
            fprintf(stderr, "op %u (kind %u tuple %u) len %zu\n", op, op & 7, (op >> 3) & 3, n);
        step(&h, op, p, n);
        free(p);
        check_state(&h);
    }
    turn_server_free(h.s);
    REQUIRE(h.n_open == 0);
    REQUIRE(!quota_ops || h.quota_total == 0);
    free(h.relays);
    free(h.perms);
    peer_policy_dispose(&pol);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, false);
    run(data, size, true);
    return 0;
}
