/* turn: a bounded random soak. ~200k random-but-plausible messages (every method, random
 * attributes, valid and invalid integrity, stale nonces, garbage, ChannelData, peer datagrams,
 * lifecycle events) from a handful of 5-tuples under an advancing fake clock. Invariants are
 * checked after every step; ASan/UBSan catch memory errors; after turn_server_free every
 * relay_open must be balanced by a relay_close (the fake aborts on a double close). */
#include "test_turn_fixture.h"

#define STEPS 200000
#define N_CLIENTS 6
#define CAP 4
#define QUOTA 2

static fake F;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng % n) : 0;
}

static const char *const PEERS[] = {
    "8.8.8.8",     "8.8.4.4",         "1.1.1.1",        "127.0.0.1", "10.0.0.1",
    "192.168.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "::1",       "64:ff9b::808:808"};
#define N_PEERS (sizeof PEERS / sizeof PEERS[0])

static void add_random_peer(stun_builder *b)
{
    struct sockaddr_storage ss;
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS,
                                 fx_sa(&ss, PEERS[rnd(N_PEERS)], (uint16_t)(5000 + rnd(3))));
}

static void add_random_attrs(stun_builder *b, uint16_t method)
{
    if (method == STUN_METHOD_ALLOCATE && rnd(10))
        stun_builder_add_requested_transport(b, rnd(8) ? STUN_TRANSPORT_UDP : (uint8_t)rnd(256));
    if (rnd(4) == 0) {
        uint32_t lts[] = {0, 1, 300, 600, 3600, 100000, rnd(5000)};
        stun_builder_add_u32(b, STUN_ATTR_LIFETIME, lts[rnd(7)]);
    }
    if (method == STUN_METHOD_CREATE_PERMISSION || method == STUN_METHOD_CHANNEL_BIND ||
        rnd(10) == 0) {
        for (uint32_t i = 0, n = 1 + rnd(3); i < n; i++)
            add_random_peer(b);
    }
    if (method == STUN_METHOD_CHANNEL_BIND || rnd(20) == 0)
        stun_builder_add_channel_number(b, (uint16_t)(rnd(8) ? 0x4000 + rnd(6) : rnd(0x10000)));
    if (rnd(15) == 0)
        stun_builder_add_address_family(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, (uint8_t)rnd(4));
    if (rnd(25) == 0)
        stun_builder_add_address_family(b, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, (uint8_t)rnd(4));
    if (rnd(25) == 0) {
        uint8_t v = rnd(2) ? 0x80 : 0;
        stun_builder_add(b, STUN_ATTR_EVEN_PORT, &v, 1);
    }
    if (rnd(25) == 0)
        stun_builder_add(b, STUN_ATTR_DONT_FRAGMENT, NULL, 0);
    if (rnd(30) == 0)
        stun_builder_add_u64(b, STUN_ATTR_RESERVATION_TOKEN, rng);
    if (rnd(30) == 0)
        stun_builder_add(b, (uint16_t)rnd(0x10000), "junkjunk", rnd(9)); /* any type, any len */
    if (rnd(40) == 0)
        stun_builder_add(b, STUN_ATTR_LIFETIME, "abc", 3); /* malformed */
}

static const uint16_t METHODS[] = {STUN_METHOD_ALLOCATE,          STUN_METHOD_REFRESH,
                                   STUN_METHOD_CREATE_PERMISSION, STUN_METHOD_CHANNEL_BIND,
                                   STUN_METHOD_BINDING,           0x00A};

static void random_request(client *c)
{
    stun_builder b;
    uint16_t method = METHODS[rnd(6)];
    if (!c->nonce_len || rnd(50) == 0)
        fx_challenge(&F, c);
    c->sha256 = rnd(8) == 0;
    c->fingerprint = rnd(3) == 0;
    fx_begin(c, &b, method, rnd(30) ? STUN_CLASS_REQUEST : (uint8_t)rnd(4));
    add_random_attrs(&b, method);
    uint32_t auth = rnd(20);
    if (auth == 0)
        fx_sign(c, &b, c->user, FX_REALM, "bad-password");
    else if (auth == 1)
        fx_sign(c, &b, "mallory", FX_REALM, NULL);
    else if (auth != 2) /* auth == 2: unauthenticated */
        fx_sign(c, &b, c->user, FX_REALM, NULL);
    int before = F.n_client;
    fx_feed(&F, c, &b);
    if (F.n_client > before && F.rm_ok && F.rm.cls != STUN_CLASS_INDICATION &&
        memcmp(F.rm.txid, c->txid, STUN_TXID_SIZE) != 0)
        abort(); /* a response to someone else's transaction */
}

static void random_garbage(client *c)
{
    uint8_t buf[256];
    size_t n = rnd(sizeof buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)rnd(256);
    if (n >= 20 && rnd(2)) { /* make it look like STUN */
        buf[0] &= 0x3F;
        buf[2] = 0;
        buf[3] = (uint8_t)((n - 20) & ~3u);
        buf[4] = 0x21, buf[5] = 0x12, buf[6] = 0xA4, buf[7] = 0x42;
        n = 20 + buf[3];
    }
    turn_server_input(F.s, &c->t, buf, n, F.now);
}

static void random_channeldata(client *c)
{
    uint8_t buf[64];
    size_t dl = rnd(40);
    memset(buf + 4, 0x5A, dl);
    stun_channeldata_header(buf, sizeof buf, (uint16_t)(0x4000 + rnd(6)), dl);
    size_t extra = rnd(5);
    turn_server_input(F.s, &c->t, buf, 4 + dl + extra, F.now);
}

static void random_peer_input(void)
{
    uint8_t data[100];
    struct sockaddr_storage ss;
    size_t n = rnd(sizeof data);
    memset(data, 0xA5, n);
    uint64_t id = F.last_open_id ? F.last_open_id - rnd(6) : rnd(3);
    turn_server_peer_input(F.s, id, fx_sa(&ss, PEERS[rnd(N_PEERS)], (uint16_t)(5000 + rnd(3))),
                           data, n, F.now);
}

static void random_lifecycle(client *cl)
{
    switch (rnd(5)) {
    case 0: turn_server_key_deleted(F.s, rnd(2) ? "key1" : "key2", F.now); break;
    case 1: turn_server_credential_revoked(F.s, (const uint8_t *)"bob", 3, F.now); break;
    case 2: turn_server_conn_closed(F.s, &cl[rnd(N_CLIENTS)].t, F.now); break;
    case 3: F.auth_rc = rnd(3) ? 0 : (rnd(2) ? TURN_AUTH_REJECT : TURN_AUTH_EXPIRED); break;
    default: F.expires = rnd(2) ? 0 : F.now / 1000 + rnd(2000); break;
    }
}

static void soak_cfg(turn_config *cfg)
{
    cfg->max_allocations = CAP;
    cfg->user_quota = QUOTA;
    cfg->nonce_lifetime_s = 120;
}

static void t_soak(void)
{
    fx_init_cfg(&F, true, soak_cfg);
    client cl[N_CLIENTS];
    static const char *users[] = {"alice", "bob", "kate"};
    for (int i = 0; i < N_CLIENTS; i++)
        fx_client(&cl[i], i % 3 == 2 ? TURN_PROTO_TCP : TURN_PROTO_UDP, "198.51.100.20",
                  (uint16_t)(40000 + i), users[i % 3]);
    uint64_t ok_allocs = 0;
    for (int step = 0; step < STEPS; step++) {
        client *c = &cl[rnd(N_CLIENTS)];
        uint32_t what = rnd(100);
        int opens = F.opens;
        if (what < 45)
            random_request(c);
        else if (what < 55)
            fx_send_ind(&F, c, PEERS[rnd(N_PEERS)], (uint16_t)(5000 + rnd(3)), "soak");
        else if (what < 68)
            random_channeldata(c);
        else if (what < 80)
            random_peer_input();
        else if (what < 88)
            random_garbage(c);
        else if (what < 89)
            random_lifecycle(cl);
        ok_allocs += (uint64_t)(F.opens - opens);
        F.now += rnd(4000);
        if (rnd(4) == 0 || turn_server_next_deadline(F.s) <= F.now)
            turn_server_tick(F.s, F.now);
        turn_stats st = fx_stats(&F);
        CHECK(st.allocations <= CAP);
        CHECK_INT((int)st.allocations, F.n_live); /* allocations holding a relay (dual: two) */
        CHECK(st.channels <= st.allocations * 6);
    }
    fprintf(stderr, "  soak: %llu allocations, %d client messages, %d peer datagrams\n",
            (unsigned long long)ok_allocs, F.n_client, F.n_peer);
    CHECK(ok_allocs > 100); /* the soak really exercised allocations */
    CHECK(F.n_peer > 100);
    fx_free(&F);
    CHECK_INT(F.opens, F.closes);
}

int main(void)
{
    TK_RUN(t_soak);
    return tk_test_summary();
}
