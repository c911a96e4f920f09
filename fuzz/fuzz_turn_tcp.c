/* libFuzzer target: RFC 6062 sequences against one turn_server with the TCP ops, checked
 * against a model of what the I/O layer holds.
 *
 * Input = records of [op (1 byte)][length (2 bytes, big-endian)][payload]. op & 7:
 *   0  a request built by the harness on tuple (op >> 3) & 3 by user (op >> 5) & 1, signed
 *      with the tuple's last nonce (an unsigned one first fetches it), FINGERPRINT when
 *      op & 0x80; payload[0] & 7 picks it: Allocate TCP, Allocate UDP, Connect to peer
 *      payload[1], ConnectionBind of known cid payload[1] (or a random id), CreatePermission
 *      for peer payload[1], Refresh LIFETIME payload[1] (0 deletes), ChannelBind, the rest
 *      re-signed as is (any method and attributes)
 *   1  the payload as a raw client message on tuple (op >> 3) & 3
 *   2  a connect started by peer_connect completes: known cid payload[0], ok = payload[1] & 1
 *   3  a peer connects to the relay of allocation (last id - payload[0]) from peer payload[1]
 *   4  a bound pair moved payload[1] * 97 bytes (to the peer if payload[2] & 1), cid payload[0]
 *   5  the I/O layer closed the pair of known cid payload[0] (turn_server_tcp_closed)
 *   6  advance the clock by payload[0..2] * 16 ms and run the timers
 *   7  lifecycle (payload[0] & 3): key deleted, credential revoked, connection (op >> 3) & 3
 *      closed, a fresh credential state
 * Tuples: 0 UDP, 1-3 TCP/TLS. A tuple that becomes a data connection (data_bind) is then a
 * new connection (fresh conn_id), as the I/O layer takes the old one out of TURN framing.
 *
 * Invariants (the model holds every cid the I/O layer holds, with its allocation):
 *   - peer_connect only from an open TCP allocation, to a peer the policy allows, within the
 *     caps (per allocation, per server); only a Connect that succeeds installs the permission;
 *   - an accepted peer connection is kept only from a policy-allowed peer with a live
 *     permission the harness saw granted (CreatePermission or Connect), within the caps;
 *   - data_bind only for a held (connected, unbound) cid, on a TCP/TLS tuple without an
 *     allocation, by the user who owns the allocation; a Connect success names a held cid;
 *   - peer_close only for a cid the I/O layer holds; after every step every held cid belongs
 *     to an open allocation (all closed with it), and nothing is held after turn_server_free. */
#include "turnkey/peer.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"
#include "turnkey/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASS "fuzzpass"
#define REALM "fuzz.realm"
#define N_TUPLES 4
#define MAX_IDS 64
#define MAX_CIDS 64
#define PER_ALLOC 3
#define TOTAL 5
#define PERM_MS 300000

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const users[2] = {"fuzzuser0", "fuzzuser1"};

typedef struct held {
    uint32_t cid;
    uint64_t alloc;
    uint32_t ip; /* the peer's (IPv4) */
    bool connecting, bound;
} held;

typedef struct perm_rec {
    uint64_t alloc;
    uint32_t ip; /* IPv4 only: the peers here are IPv4 */
    int64_t expires;
} perm_rec;

typedef struct harness {
    turn_server *s;
    const peer_policy *pol;
    turn_5tuple tuples[N_TUPLES];
    char nonce[N_TUPLES][128];
    size_t nonce_len[N_TUPLES];
    bool open[MAX_IDS], tcp[MAX_IDS];
    signed char owner[MAX_IDS], tuple_of[MAX_IDS];
    uint64_t last_id;
    held h[MAX_CIDS];
    size_t n_held;
    uint32_t seen[MAX_CIDS]; /* every cid ever announced (for ops that name a known cid) */
    size_t n_seen;
    perm_rec perms[256];
    size_t n_perms;
    int last_user, cur_ti;
    uint64_t next_conn;
    bool revoked[2];
    int64_t now;
    const uint8_t *req; /* the request being handled (its peers, once answered) */
    size_t req_len;
} harness;

static held *held_find(harness *h, uint32_t cid)
{
    for (size_t i = 0; i < h->n_held; i++)
        if (h->h[i].cid == cid)
            return &h->h[i];
    return NULL;
}

static void held_add(harness *h, uint32_t cid, uint64_t alloc, uint32_t ip, bool connecting)
{
    REQUIRE(cid != 0 && !held_find(h, cid));
    REQUIRE(h->n_held < MAX_CIDS);
    h->h[h->n_held++] = (held){.cid = cid, .alloc = alloc, .ip = ip, .connecting = connecting};
    if (h->n_seen < MAX_CIDS)
        h->seen[h->n_seen++] = cid;
}

static void held_del(harness *h, uint32_t cid)
{
    held *x = held_find(h, cid);
    REQUIRE(x != NULL);
    *x = h->h[--h->n_held];
}

static size_t held_of(const harness *h, uint64_t alloc)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_held; i++)
        n += h->h[i].alloc == alloc;
    return n;
}

static uint32_t ip4(const struct sockaddr *sa)
{
    return ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
}

static void perm_grant(harness *h, uint64_t alloc, uint32_t ip)
{
    for (size_t i = 0; i < h->n_perms; i++)
        if (h->perms[i].alloc == alloc && h->perms[i].ip == ip) {
            h->perms[i].expires = h->now + PERM_MS;
            return;
        }
    if (h->n_perms < sizeof h->perms / sizeof h->perms[0])
        h->perms[h->n_perms++] = (perm_rec){alloc, ip, h->now + PERM_MS};
}

static bool has_perm(const harness *h, uint64_t alloc, uint32_t ip)
{
    for (size_t i = 0; i < h->n_perms; i++)
        if (h->perms[i].alloc == alloc && h->perms[i].ip == ip)
            return h->perms[i].expires > h->now;
    return false;
}

static int tuple_index(const harness *h, const turn_5tuple *t)
{
    for (int i = 0; i < N_TUPLES; i++)
        if (h->tuples[i].proto == t->proto && h->tuples[i].conn_id == t->conn_id)
            return i;
    return -1;
}

static uint64_t alloc_of(const harness *h, int ti)
{
    for (uint64_t id = 1; id < MAX_IDS; id++)
        if (h->open[id] && h->tuple_of[id] == ti)
            return id;
    return 0;
}

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
    static const uint32_t v4[] = {0x08080808, 0x7F000001, 0x0A000001, 0x7F000002};
    set_addr(ss, v4[sel & 3], (uint16_t)(5000 + ((sel >> 2) & 3)));
}

/* ---- ops ------------------------------------------------------------------------------ */

static void send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    harness *h = ctx;
    stun_msg m;
    int i = tuple_index(h, t);
    REQUIRE(i >= 0);
    if (stun_parse(buf, len, &m) != STUN_OK)
        return;
    const uint8_t *nonce;
    size_t nl;
    if (stun_get_nonce(&m, &nonce, &nl) == STUN_OK && nl < sizeof h->nonce[i]) {
        memcpy(h->nonce[i], nonce, nl);
        h->nonce_len[i] = nl;
    }
    uint32_t cid;
    bool has_cid = stun_get_u32(&m, STUN_ATTR_CONNECTION_ID, &cid) == STUN_OK;
    if (m.method == STUN_METHOD_CONNECT && m.cls == STUN_CLASS_SUCCESS) {
        held *x = has_cid ? held_find(h, cid) : NULL;
        REQUIRE(x && !x->connecting && !x->bound); /* names a held, connected cid */
        REQUIRE(h->tuple_of[x->alloc] == i);       /* on its allocation's control tuple */
        perm_grant(h, x->alloc, x->ip);            /* the successful Connect installs it */
    }
    if (m.method == STUN_METHOD_CONNECTION_ATTEMPT) {
        REQUIRE(m.cls == STUN_CLASS_INDICATION && has_cid);
        uint64_t a = alloc_of(h, i);
        REQUIRE(a != 0 && h->tcp[a]);
    }
    stun_msg q;
    uint64_t a = alloc_of(h, i);
    if (m.method == STUN_METHOD_CREATE_PERMISSION && m.cls == STUN_CLASS_SUCCESS && a && h->req &&
        stun_parse(h->req, h->req_len, &q) == STUN_OK && !memcmp(q.txid, m.txid, STUN_TXID_SIZE)) {
        struct sockaddr_storage peer;
        for (const stun_attr *at = stun_msg_find(&q, STUN_ATTR_XOR_PEER_ADDRESS); at;
             at = stun_msg_find_next(&q, STUN_ATTR_XOR_PEER_ADDRESS, at))
            if (stun_attr_xor_address(&q, at, &peer) == STUN_OK && peer.ss_family == AF_INET)
                perm_grant(h, a, ip4((struct sockaddr *)&peer));
    }
}

static int relay_open_any(harness *h, uint64_t id, const turn_5tuple *t, bool tcp,
                          struct sockaddr_storage *relayed)
{
    if (id >= MAX_IDS)
        return TURN_RELAY_ERR_CAPACITY;
    int ti = tuple_index(h, t);
    REQUIRE(ti >= 0 && ti == h->cur_ti && h->last_user >= 0 && !h->open[id]);
    REQUIRE(!tcp || t->proto != TURN_PROTO_UDP); /* RFC 6062 §5.1 */
    h->open[id] = true;
    h->tcp[id] = tcp;
    h->owner[id] = (signed char)h->last_user;
    h->tuple_of[id] = (signed char)ti;
    h->last_id = id;
    set_addr(relayed, 0xCB007105, (uint16_t)(40000 + id));
    return 0;
}

static int relay_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                      struct sockaddr_storage *relayed)
{
    (void)family;
    return relay_open_any(ctx, id, t, false, relayed);
}

static int tcp_relay_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                          struct sockaddr_storage *relayed)
{
    (void)family;
    return relay_open_any(ctx, id, t, true, relayed);
}

static void relay_close(void *ctx, uint64_t id)
{
    harness *h = ctx;
    REQUIRE(id < MAX_IDS && h->open[id]);
    h->open[id] = false;
}

static void send_peer(void *ctx, uint64_t id, const struct sockaddr *peer, const uint8_t *buf,
                      size_t len)
{
    harness *h = ctx;
    (void)peer;
    (void)buf;
    (void)len;
    REQUIRE(id < MAX_IDS && h->open[id] && !h->tcp[id]); /* nothing on a TCP relay's UDP side */
}

static int auth(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                turn_auth_info *info)
{
    harness *h = ctx;
    h->last_user = -1;
    for (int u = 0; u < 2; u++)
        if (len == strlen(users[u]) && memcmp(user, users[u], len) == 0 && !h->revoked[u]) {
            h->last_user = u;
            strcpy(password, PASS);
            strcpy(info->key_id, u ? "key1" : "key0");
            info->expires = now + 3600;
            return TURN_AUTH_OK;
        }
    return TURN_AUTH_REJECT;
}

static int peer_connect(void *ctx, uint64_t alloc_id, uint32_t cid, const struct sockaddr *peer)
{
    harness *h = ctx;
    REQUIRE(alloc_id < MAX_IDS && h->open[alloc_id] && h->tcp[alloc_id]);
    REQUIRE(h->tuple_of[alloc_id] == h->cur_ti);
    REQUIRE(peer_allowed(h->pol, peer)); /* never a connection to a denied peer */
    REQUIRE(held_of(h, alloc_id) < PER_ALLOC && h->n_held < TOTAL);
    if (cid % 11 == 4)
        return -1; /* fails at once */
    held_add(h, cid, alloc_id, ip4(peer), true);
    return 0;
}

static void peer_close(void *ctx, uint32_t cid)
{
    held_del(ctx, cid);
}

static void data_bind(void *ctx, const turn_5tuple *t, uint32_t cid)
{
    harness *h = ctx;
    held *x = held_find(h, cid);
    int ti = tuple_index(h, t);
    REQUIRE(x && !x->connecting && !x->bound);
    REQUIRE(ti >= 0 && ti == h->cur_ti && t->proto != TURN_PROTO_UDP && alloc_of(h, ti) == 0);
    REQUIRE(h->last_user == h->owner[x->alloc]); /* the allocation's own credential */
    x->bound = true;
    h->tuples[ti].conn_id = ++h->next_conn; /* the connection left TURN framing */
    h->nonce_len[ti] = 0;
}

/* ---- events --------------------------------------------------------------------------- */

static void input(harness *h, int ti, const uint8_t *p, size_t n)
{
    h->cur_ti = ti;
    h->req = p;
    h->req_len = n;
    turn_server_input(h->s, &h->tuples[ti], p, n, h->now);
    h->cur_ti = -1;
    h->req = NULL;
}

static uint32_t known_cid(const harness *h, uint8_t sel)
{
    return h->n_seen ? h->seen[sel % h->n_seen] : 0;
}

static const uint16_t template_method[7] = {
    STUN_METHOD_ALLOCATE,        STUN_METHOD_ALLOCATE,          STUN_METHOD_CONNECT,
    STUN_METHOD_CONNECTION_BIND, STUN_METHOD_CREATE_PERMISSION, STUN_METHOD_REFRESH,
    STUN_METHOD_CHANNEL_BIND};

/* Adds the attributes of template k (0..6). */
static void template(const harness *h, stun_builder *b, uint8_t k, uint8_t arg)
{
    struct sockaddr_storage peer;
    peer_addr(&peer, arg);
    const struct sockaddr *pa = (const struct sockaddr *)&peer;
    switch (k) {
    case 0:
    case 1:
        stun_builder_add_requested_transport(b, k ? STUN_TRANSPORT_UDP : STUN_TRANSPORT_TCP);
        break;
    case 3:
        stun_builder_add_u32(b, STUN_ATTR_CONNECTION_ID,
                             arg & 0x80 ? arg * 0x01010101u : known_cid(h, arg));
        break;
    case 5: stun_builder_add_u32(b, STUN_ATTR_LIFETIME, arg & 1 ? 0 : arg); break;
    case 6:
        stun_builder_add_channel_number(b, 0x4000);
        stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, pa);
        break;
    default: stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, pa); break;
    }
}

/* The attributes of a fuzzer-made request, minus the credential ones (re-added). */
static void copy_attrs(stun_builder *b, const stun_msg *m)
{
    for (size_t i = 0; i < m->n_attrs && i < 16; i++) {
        uint16_t t = m->attrs[i].type;
        if (t == STUN_ATTR_USERNAME || t == STUN_ATTR_REALM || t == STUN_ATTR_NONCE ||
            t == STUN_ATTR_MESSAGE_INTEGRITY || t == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 ||
            t == STUN_ATTR_FINGERPRINT)
            continue;
        stun_builder_add(b, t, stun_attr_value(m, &m->attrs[i]), m->attrs[i].len);
    }
}

static void request(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    int ti = (op >> 3) & 3;
    const char *user = users[(op >> 5) & 1];
    uint8_t k = n ? p[0] & 7 : 0, arg = n > 1 ? p[1] : 0;
    uint8_t buf[2048], txid[STUN_TXID_SIZE] = {0}, key[16];
    stun_builder b;
    uint16_t method = 0;
    memcpy(txid, &h->now, sizeof h->now);
    txid[9] = op;
    txid[10] = k;
    txid[11] = arg;
    stun_msg m;
    if (k == 7) {
        if (n < 2 || stun_parse(p + 1, n - 1, &m) != STUN_OK || m.cls != STUN_CLASS_REQUEST)
            return;
        method = m.method;
    } else {
        method = template_method[k];
    }
    for (int pass = h->nonce_len[ti] ? 1 : 0; pass < 2; pass++) {
        stun_builder_begin(&b, buf, sizeof buf, stun_type(method, STUN_CLASS_REQUEST), txid);
        if (k == 7)
            copy_attrs(&b, &m);
        else
            template(h, &b, k, arg);
        if (pass == 1) {
            stun_builder_add(&b, STUN_ATTR_USERNAME, user, strlen(user));
            stun_builder_add(&b, STUN_ATTR_REALM, REALM, strlen(REALM));
            stun_builder_add(&b, STUN_ATTR_NONCE, h->nonce[ti], h->nonce_len[ti]);
            stun_long_term_key((const uint8_t *)user, strlen(user), (const uint8_t *)REALM,
                               strlen(REALM), (const uint8_t *)PASS, strlen(PASS), key);
            stun_builder_add_integrity(&b, key, sizeof key);
        } else {
            stun_builder_add(&b, STUN_ATTR_SOFTWARE, "fuzz-probe-0000000000", 20);
        }
        if (op & 0x80)
            stun_builder_add_fingerprint(&b);
        int len = stun_builder_finish(&b);
        if (len <= 0)
            return;
        input(h, ti, buf, (size_t)len);
    }
}

static void accepted(harness *h, const uint8_t *p, size_t n)
{
    if (n < 2)
        return;
    uint64_t id = h->last_id >= p[0] ? h->last_id - p[0] : 0;
    struct sockaddr_storage peer;
    peer_addr(&peer, p[1]);
    uint32_t cid = turn_server_peer_accepted(h->s, id, (struct sockaddr *)&peer, h->now);
    if (!cid)
        return;
    REQUIRE(id < MAX_IDS && h->open[id] && h->tcp[id]);
    REQUIRE(peer_allowed(h->pol, (struct sockaddr *)&peer));
    REQUIRE(has_perm(h, id, ip4((struct sockaddr *)&peer))); /* only from a permitted peer */
    REQUIRE(held_of(h, id) < PER_ALLOC && h->n_held < TOTAL);
    held_add(h, cid, id, ip4((struct sockaddr *)&peer), false);
}

static void lifecycle(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    uint8_t sel = n ? p[0] : 0;
    int ti = (op >> 3) & 3;
    switch (sel & 3) {
    case 0: turn_server_key_deleted(h->s, sel & 4 ? "key1" : "key0", h->now); break;
    case 1:
        h->revoked[(sel >> 2) & 1] = true;
        turn_server_credential_revoked(h->s, (const uint8_t *)users[(sel >> 2) & 1],
                                       strlen(users[(sel >> 2) & 1]), h->now);
        break;
    case 2:
        turn_server_conn_closed(h->s, &h->tuples[ti], h->now);
        if (h->tuples[ti].proto != TURN_PROTO_UDP)
            REQUIRE(alloc_of(h, ti) == 0);
        break;
    default: memset(h->revoked, 0, sizeof h->revoked); break;
    }
}

static void step(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    uint32_t cid = n ? known_cid(h, p[0]) : 0;
    held *x = cid ? held_find(h, cid) : NULL;
    switch (op & 7) {
    case 0: request(h, op, p, n); break;
    case 1: input(h, (op >> 3) & 3, p, n); break;
    case 2:
        if (x && x->connecting && n > 1) {
            bool ok = p[1] & 1;
            if (ok)
                x->connecting = false;
            else
                held_del(h, cid); /* the I/O layer closed it */
            turn_server_peer_connected(h->s, cid, ok, h->now);
        }
        break;
    case 3: accepted(h, p, n); break;
    case 4:
        if (n > 2)
            turn_server_tcp_data(h->s, cid, p[2] & 1, (size_t)p[1] * 97, h->now);
        break;
    case 5:
        if (x && !x->connecting) {
            held_del(h, cid);
            turn_server_tcp_closed(h->s, cid, h->now);
        }
        break;
    case 6: {
        uint32_t adv = 0;
        for (size_t i = 0; i < 3 && i < n; i++)
            adv = (adv << 8) | p[i];
        h->now += (int64_t)adv * 16;
        turn_server_tick(h->s, h->now);
        break;
    }
    default: lifecycle(h, op, p, n); break;
    }
}

static void check_state(const harness *h)
{
    for (size_t i = 0; i < h->n_held; i++) {
        REQUIRE(h->h[i].alloc < MAX_IDS && h->open[h->h[i].alloc]); /* outlived its allocation */
        REQUIRE(h->tcp[h->h[i].alloc]);
    }
    REQUIRE(h->n_held <= TOTAL);
    for (uint64_t id = 1; id < MAX_IDS; id++)
        REQUIRE(held_of(h, id) <= PER_ALLOC);
}

static void run(const uint8_t *data, size_t size)
{
    harness *h = util_xcalloc(1, sizeof *h);
    peer_policy pol;
    turn_config cfg = {0};
    h->now = 1700000000000LL;
    h->last_user = h->cur_ti = -1;
    h->next_conn = 100;
    peer_policy_init(&pol);
    peer_cidr c;
    peer_cidr_parse("127.0.0.1/32", &c);
    peer_policy_add_allow(&pol, &c);
    h->pol = &pol;
    cfg.realm = REALM;
    memset(cfg.nonce_secret, 9, sizeof cfg.nonce_secret);
    cfg.peers = &pol;
    cfg.max_tcp_per_alloc = PER_ALLOC;
    cfg.max_tcp_conns = TOTAL;
    cfg.cid_tag = 3;
    for (int i = 0; i < N_TUPLES; i++) {
        turn_5tuple *t = &h->tuples[i];
        t->proto = i == 0 ? TURN_PROTO_UDP : (i == 3 ? TURN_PROTO_TLS : TURN_PROTO_TCP);
        t->conn_id = (uint64_t)i;
        set_addr(&t->client, 0xC6336414, (uint16_t)(40000 + i));
        set_addr(&t->server, 0xC0000201, 3478);
    }
    turn_ops ops = {.send_client = send_client,
                    .relay_open = relay_open,
                    .relay_close = relay_close,
                    .send_peer = send_peer,
                    .auth = auth,
                    .ctx = h,
                    .tcp_relay_open = tcp_relay_open,
                    .peer_connect = peer_connect,
                    .peer_close = peer_close,
                    .data_bind = data_bind};
    h->s = turn_server_new(&cfg, &ops);
    REQUIRE(h->s != NULL);
    size_t off = 0;
    while (size - off >= 3) {
        uint8_t op = data[off];
        size_t n = ((size_t)data[off + 1] << 8) | data[off + 2];
        off += 3;
        if (n > size - off)
            n = size - off;
        uint8_t *p = util_xmalloc(n ? n : 1);
        memcpy(p, data + off, n);
        off += n;
        step(h, op, p, n);
        free(p);
        check_state(h);
    }
    turn_server_free(h->s);
    REQUIRE(h->n_held == 0); /* every peer connection closed */
    for (uint64_t id = 0; id < MAX_IDS; id++)
        REQUIRE(!h->open[id]);
    peer_policy_dispose(&pol);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}
