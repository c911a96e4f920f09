/* libFuzzer target: one turn_server fed a sequence of events cut from the input.
 *
 * Input = records of [op (1 byte)][length (2 bytes, big-endian)][payload]. op & 7:
 *   0, 1  client message, payload as is (on tuple (op >> 3) & 3)
 *   2, 3  client message re-signed by the harness: if the payload parses as STUN, it is rebuilt
 *         with USERNAME (user (op >> 6) & 3 of N_USERS) / REALM / NONCE (the last nonce this
 *         tuple was given; fetched first if none) and a valid MESSAGE-INTEGRITY (+ FINGERPRINT
 *         when op & 0x20), so the fuzzer reaches the authenticated paths
 *   4     peer datagram: payload[0] picks the allocation (last id minus it), payload[1] the peer,
 *         the rest is the data
 *   5     advance the clock by payload[0..3] (ms, big-endian) and run the timers
 *   6     lifecycle: key deleted / credential revoked (key or user from payload[0] >> 3) /
 *         auth failures / credential expiry
 *   7     connection closed for tuple (op >> 3) & 3
 * The fake auth accepts N_USERS usernames (users 0, 2 on key 0, users 1, 3 on key 1), one
 * password. The caps are small (CAP total, USER_QUOTA per username, fewer than N_TUPLES) so
 * both can be reached. Invariants after every step: the allocation count stays within CAP and
 * equals the open relays; no username holds more than USER_QUOTA allocations; every relay has
 * an owner; relay_close only for open relays; nothing is sent to a peer the policy denies,
 * or from a closed relay; everything is closed after turn_server_free. */
#include "turnkey/peer.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"
#include "turnkey/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASS "fuzzpass"
#define REALM "fuzz.realm"
#define N_TUPLES 4
#define N_USERS 4
#define CAP 3
#define USER_QUOTA 2

static const char *const users[N_USERS] = {"fuzzuser0", "fuzzuser1", "fuzzuser2", "fuzzuser3"};
static const char *const keys[2] = {"fuzzkey0", "fuzzkey1"};

typedef struct harness {
    turn_server *s;
    turn_5tuple tuples[N_TUPLES];
    char nonce[N_TUPLES][128];
    size_t nonce_len[N_TUPLES];
    bool *open;
    signed char *owner; /* per relay id: the user whose authentication opened it */
    size_t open_cap;
    int last_user; /* user of the last successful auth call, -1 none */
    long per_user[N_USERS];
    const peer_policy *pol;
    uint64_t last_id;
    long n_open;
    int auth_rc;
    int64_t expires;
    int64_t now;
} harness;

static int tuple_index(const harness *h, const turn_5tuple *t)
{
    for (int i = 0; i < N_TUPLES; i++)
        if (h->tuples[i].proto == t->proto && h->tuples[i].conn_id == t->conn_id &&
            memcmp(&h->tuples[i].client, &t->client, sizeof t->client) == 0)
            return i;
    return -1;
}

static void send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    harness *h = ctx;
    stun_msg m;
    const uint8_t *nonce;
    size_t nl;
    int i = tuple_index(h, t);
    if (i < 0)
        abort(); /* answered someone who never spoke */
    if (stun_parse(buf, len, &m) == STUN_OK && stun_get_nonce(&m, &nonce, &nl) == STUN_OK &&
        nl < sizeof h->nonce[i]) {
        memcpy(h->nonce[i], nonce, nl);
        h->nonce_len[i] = nl;
    }
}

static int relay_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                      struct sockaddr_storage *relayed)
{
    harness *h = ctx;
    (void)t;
    if (id % 13 == 5)
        return TURN_RELAY_ERR_CAPACITY;
    if (id >= h->open_cap) {
        size_t cap = (id + 1) * 2;
        h->open = util_xrealloc(h->open, cap);
        h->owner = util_xrealloc(h->owner, cap);
        memset(h->open + h->open_cap, 0, cap - h->open_cap);
        memset(h->owner + h->open_cap, -1, cap - h->open_cap);
        h->open_cap = cap;
    }
    if (h->open[id])
        abort();
    if (h->last_user < 0)
        abort(); /* a relay for an allocation nobody authenticated */
    h->open[id] = true;
    h->owner[id] = (signed char)h->last_user;
    h->per_user[h->last_user]++;
    h->n_open++;
    h->last_id = id;
    memset(relayed, 0, sizeof *relayed);
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)relayed;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)(40000 + id));
        s6->sin6_addr.s6_addr[0] = 0x20;
        s6->sin6_addr.s6_addr[15] = 5;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)relayed;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)(40000 + id));
        s4->sin_addr.s_addr = htonl(0xCB007105); /* 203.0.113.5 */
    }
    return 0;
}

static void relay_close(void *ctx, uint64_t id)
{
    harness *h = ctx;
    if (id >= h->open_cap || !h->open[id])
        abort();
    h->open[id] = false;
    h->per_user[h->owner[id]]--;
    h->owner[id] = -1;
    h->n_open--;
}

static void send_peer(void *ctx, uint64_t id, const struct sockaddr *peer, const uint8_t *buf,
                      size_t len)
{
    harness *h = ctx;
    (void)buf;
    (void)len;
    if (id >= h->open_cap || !h->open[id])
        abort(); /* sending from a closed relay */
    if (!peer_allowed(h->pol, peer))
        abort(); /* relayed to a peer the policy denies */
}

static int auth(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                turn_auth_info *info)
{
    harness *h = ctx;
    h->last_user = -1;
    if (h->auth_rc)
        return h->auth_rc;
    int u = -1;
    for (int i = 0; i < N_USERS; i++)
        if (len == strlen(users[i]) && memcmp(user, users[i], len) == 0)
            u = i;
    if (u < 0)
        return TURN_AUTH_REJECT;
    h->last_user = u;
    strcpy(password, PASS);
    strcpy(info->key_id, keys[u & 1]);
    info->expires = h->expires ? h->expires : now + 3600;
    return TURN_AUTH_OK;
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

static void client_msg(harness *h, uint8_t op, const uint8_t *p, size_t n)
{
    int ti = (op >> 3) & 3;
    const turn_5tuple *t = &h->tuples[ti];
    if ((op & 7) < 2) {
        turn_server_input(h->s, t, p, n, h->now);
        return;
    }
    if (!h->nonce_len[ti])
        turn_server_input(h->s, t, p, n, h->now); /* earns a 401 with a nonce */
    size_t cap = n + 256;
    uint8_t *out = util_xmalloc(cap);
    size_t len = resign(h, ti, users[(op >> 6) & 3], p, n, (op & 0x20) != 0, out, cap);
    if (len)
        turn_server_input(h->s, t, out, len, h->now);
    free(out);
}

static void peer_msg(harness *h, const uint8_t *p, size_t n)
{
    struct sockaddr_storage ss;
    if (n < 2)
        return;
    peer_addr(&ss, p[1]);
    uint64_t id = h->last_id >= p[0] ? h->last_id - p[0] : p[0];
    /* exact-size copy so reads past the datagram (or before its headroom) are caught */
    bool inplace = p[1] & 0x40; /* a bit peer_addr does not use */
    size_t room = inplace ? TURN_PEER_HEADROOM : 0;
    uint8_t *d = util_xmalloc(room + (n - 2 ? n - 2 : 1));
    memcpy(d + room, p + 2, n - 2);
    if (inplace)
        turn_server_peer_input_inplace(h->s, id, (const struct sockaddr *)&ss, d + room, n - 2,
                                       h->now);
    else
        turn_server_peer_input(h->s, id, (const struct sockaddr *)&ss, d, n - 2, h->now);
    free(d);
}

static void lifecycle(harness *h, const uint8_t *p, size_t n)
{
    uint8_t sel = n ? p[0] : 0;
    switch (sel & 7) {
    case 0: turn_server_key_deleted(h->s, keys[(sel >> 3) & 1], h->now); break;
    case 1: {
        const char *u = users[(sel >> 3) & 3];
        turn_server_credential_revoked(h->s, (const uint8_t *)u, strlen(u), h->now);
        break;
    }
    case 2: h->auth_rc = TURN_AUTH_REJECT; break;
    case 3: h->auth_rc = TURN_AUTH_EXPIRED; break;
    case 4: h->auth_rc = 0; break;
    case 5: h->expires = h->now / 1000 + (sel >> 3) * 10; break;
    default: h->expires = 0; break;
    }
}

static void setup(harness *h, turn_config *cfg, peer_policy *pol)
{
    memset(h, 0, sizeof *h);
    h->now = 1700000000000LL;
    h->last_user = -1;
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
    h->s = turn_server_new(cfg, &ops);
    if (!h->s)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    harness h;
    turn_config cfg;
    peer_policy pol;
    setup(&h, &cfg, &pol);
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
        switch (op & 7) {
        case 4: peer_msg(&h, p, n); break;
        case 5: {
            uint32_t adv = 0;
            for (size_t i = 0; i < 4 && i < n; i++)
                adv = (adv << 8) | p[i];
            h.now += adv;
            turn_server_tick(h.s, h.now);
            break;
        }
        case 6: lifecycle(&h, p, n); break;
        case 7: turn_server_conn_closed(h.s, &h.tuples[(op >> 3) & 3], h.now); break;
        default: client_msg(&h, op, p, n); break;
        }
        free(p);
        turn_stats st;
        turn_server_stats(h.s, &st);
        if (st.allocations > CAP || (long)st.allocations != h.n_open)
            abort();
        for (int u = 0; u < N_USERS; u++)
            if (h.per_user[u] > USER_QUOTA || h.per_user[u] < 0)
                abort();
    }
    turn_server_free(h.s);
    if (h.n_open != 0)
        abort();
    free(h.open);
    free(h.owner);
    peer_policy_dispose(&pol);
    return 0;
}
