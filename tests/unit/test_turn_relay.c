/* turn: permissions, channels, Send/Data indications, ChannelData both ways, peer policy on
 * the relay, expiries, stream padding, stats. */
#include "test_turn_fixture.h"

static fake F;

/* An allocated client "alice" on UDP; returns its alloc id. */
static uint64_t setup(client *c, turn_proto proto)
{
    fx_init(&F);
    fx_client(c, proto, "198.51.100.20", 40000, "alice");
    if (fx_allocate(&F, c) != 0)
        return 0;
    return F.last_open_id;
}

static void t_create_permission(void)
{
    client c;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1234), 0);
    CHECK_INT(F.rm.cls, STUN_CLASS_SUCCESS);
    CHECK(F.rm.mi_off != 0);
    CHECK_INT(fx_stats(&F).permissions, 1);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 999), 0); /* same IP: a refresh */
    CHECK_INT(fx_stats(&F).permissions, 1);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 0), 0); /* allow-listed; port ignored */
    CHECK_INT(fx_stats(&F).permissions, 2);
    static const char *denied[] = {"10.0.0.1",    "::ffff:127.0.0.2", "64:ff9b::7f00:1",
                                   "192.168.1.1", "169.254.1.1",      "::1",
                                   "0.0.0.0"};
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        if (fx_permit(&F, &c, denied[i], 5000) != 403) {
            fprintf(stderr, "  %s not denied\n", denied[i]);
            CHECK(0);
        }
    }
    /* the mapped form of an allow-listed IPv4 address passes the policy (it is the same
     * host), but an IPv6 peer never fits an IPv4 relay */
    CHECK_INT(fx_permit(&F, &c, "::ffff:127.0.0.1", 5000), 443);
    /* IPv6 peer on an IPv4 relay */
    CHECK_INT(fx_permit(&F, &c, "2606:4700::1111", 5000), 443);
    /* no XOR-PEER-ADDRESS */
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, NULL, NULL), 400);
    CHECK_INT(fx_stats(&F).permissions, 2);
    fx_free(&F);
}

static void add_two_peers(stun_builder *b, void *arg)
{
    struct sockaddr_storage ss;
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, fx_sa(&ss, "1.1.1.1", 1));
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, fx_sa(&ss, arg, 1));
}

static void t_create_permission_all_or_nothing(void)
{
    client c;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, add_two_peers, "10.1.1.1"), 403);
    CHECK_INT(fx_stats(&F).permissions, 0);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, add_two_peers, "9.9.9.9"), 0);
    CHECK_INT(fx_stats(&F).permissions, 2);
    fx_free(&F);
}

static void t_loopback_not_allowlisted(void)
{
    fx_init_cfg(&F, false, NULL);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 5000), 403);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "127.0.0.1", 5000), 403);
    CHECK_INT(fx_permit(&F, &c, "::ffff:127.0.0.1", 5000), 403);
    CHECK_INT(fx_permit(&F, &c, "64:ff9b::7f00:1", 5000), 403);
    CHECK_INT(fx_permit(&F, &c, "10.0.0.1", 5000), 403);
    CHECK_INT(fx_stats(&F).permissions, 0);
    fx_free(&F);
}

static void t_send_indication(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    int before = F.n_client;
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "no-permission");
    CHECK_INT(F.n_peer, 0);
    CHECK_INT(F.n_client, before); /* indications never get responses */
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    before = F.n_client;
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "hello");
    CHECK_INT(F.n_peer, 1);
    CHECK_INT(F.n_client, before);
    CHECK_INT(F.peer_len, 5);
    CHECK(memcmp(F.peer_out, "hello", 5) == 0);
    CHECK_INT(F.peer_alloc, id);
    struct sockaddr_storage want;
    fx_addr(&want, "8.8.8.8", 5000);
    CHECK(fx_addr_eq(&F.peer_to, &want));
    /* port 0 is refused by the policy even with a permission */
    fx_send_ind(&F, &c, "8.8.8.8", 0, "zero");
    CHECK_INT(F.n_peer, 1);
    /* another IP without permission */
    fx_send_ind(&F, &c, "8.8.4.4", 5000, "x");
    CHECK_INT(F.n_peer, 1);
    /* Send from a 5-tuple without allocation */
    client d;
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.20", 40001, "alice");
    fx_send_ind(&F, &d, "8.8.8.8", 5000, "x");
    CHECK_INT(F.n_peer, 1);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.packets_to_peer, 1);
    CHECK_INT(st.bytes_to_peer, 5);
    fx_free(&F);
}

static void t_peer_to_client_data_indication(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    int before = F.n_client;
    fx_peer_in(&F, id, "8.8.8.8", 5000, "early");
    CHECK_INT(F.n_client, before); /* no permission: dropped */
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    before = F.n_client;
    fx_peer_in(&F, id, "8.8.8.8", 5000, "payload!");
    CHECK_INT(F.n_client, before + 1);
    CHECK(F.rm_ok);
    CHECK_INT(F.rm.method, STUN_METHOD_DATA);
    CHECK_INT(F.rm.cls, STUN_CLASS_INDICATION);
    CHECK_INT(F.rm.mi_off, 0);
    struct sockaddr_storage p, want;
    fx_addr(&want, "8.8.8.8", 5000);
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_PEER_ADDRESS, &p), 0);
    CHECK(fx_addr_eq(&p, &want));
    const uint8_t *d;
    size_t dl;
    CHECK_INT(stun_get_data(&F.rm, &d, &dl), 0);
    CHECK_INT(dl, 8);
    CHECK(memcmp(d, "payload!", 8) == 0);
    CHECK(fx_addr_eq(&F.out_t.client, &c.t.client));
    /* unknown alloc id, other IP: dropped */
    before = F.n_client;
    fx_peer_in(&F, id + 100, "8.8.8.8", 5000, "x");
    fx_peer_in(&F, id, "8.8.4.4", 5000, "x");
    CHECK_INT(F.n_client, before);
    /* a large datagram fits */
    static uint8_t big[65000];
    memset(big, 0xAB, sizeof big);
    struct sockaddr_storage ss;
    turn_server_peer_input(F.s, id, fx_sa(&ss, "8.8.8.8", 5000), big, sizeof big, F.now);
    CHECK_INT(F.n_client, before + 1);
    CHECK_INT(stun_get_data(&F.rm, &d, &dl), 0);
    CHECK_INT(dl, sizeof big);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.packets_to_client, 2);
    CHECK_INT(st.bytes_to_client, 8 + sizeof big);
    fx_free(&F);
}

static void t_channel_bind_rules(void)
{
    client c;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    CHECK_INT(fx_bind(&F, &c, 0x3FFF, "8.8.8.8", 5000), 400);
    CHECK_INT(fx_bind(&F, &c, 0x8000, "8.8.8.8", 5000), 400);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "10.0.0.1", 5000), 403);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "2606:4700::1111", 5000), 443);
    CHECK_INT(fx_stats(&F).channels, 0);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5000), 0);
    CHECK(F.rm.mi_off != 0);
    CHECK_INT(fx_stats(&F).channels, 1);
    CHECK_INT(fx_stats(&F).permissions, 1);                 /* the bind installed the permission */
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5000), 0); /* same pair: refresh */
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5001), 400); /* number taken */
    CHECK_INT(fx_bind(&F, &c, 0x4001, "8.8.8.8", 5000), 400); /* peer taken */
    CHECK_INT(fx_bind(&F, &c, 0x4FFF, "8.8.8.8", 5001), 0);   /* same IP, other port */
    CHECK_INT(fx_stats(&F).channels, 2);
    CHECK_INT(fx_stats(&F).permissions, 1);
    /* missing attributes */
    struct sockaddr_storage ss;
    fx_addr(&ss, "8.8.8.8", 1);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CHANNEL_BIND, fx_add_peer, &ss), 400);
    fx_free(&F);
}

static void send_channeldata(client *c, uint16_t ch, const char *data, size_t pad)
{
    uint8_t buf[256];
    size_t n = strlen(data);
    int len = stun_channeldata_build(buf, sizeof buf, ch, (const uint8_t *)data, n, false);
    memset(buf + len, 0, pad);
    turn_server_input(F.s, &c->t, buf, (size_t)len + pad, F.now);
}

static void t_channeldata_both_ways(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    CHECK_INT(fx_bind(&F, &c, 0x4001, "8.8.8.8", 5000), 0);
    send_channeldata(&c, 0x4001, "abcde", 0);
    CHECK_INT(F.n_peer, 1);
    CHECK_INT(F.peer_len, 5);
    CHECK(memcmp(F.peer_out, "abcde", 5) == 0);
    struct sockaddr_storage want;
    fx_addr(&want, "8.8.8.8", 5000);
    CHECK(fx_addr_eq(&F.peer_to, &want));
    send_channeldata(&c, 0x4001, "abcde", 3); /* padded over UDP: accepted */
    CHECK_INT(F.n_peer, 2);
    send_channeldata(&c, 0x4002, "abcde", 0); /* unbound channel */
    CHECK_INT(F.n_peer, 2);
    /* peer → client on the channel: ChannelData, unpadded on UDP */
    fx_peer_in(&F, id, "8.8.8.8", 5000, "xyz12");
    CHECK_INT(F.out_len, 9);
    CHECK(F.out[0] == 0x40 && F.out[1] == 0x01 && F.out[2] == 0 && F.out[3] == 5);
    CHECK(memcmp(F.out + 4, "xyz12", 5) == 0);
    /* same IP, other port: permission yes, channel no → Data indication */
    fx_peer_in(&F, id, "8.8.8.8", 6000, "other");
    CHECK(F.rm_ok);
    CHECK_INT(F.rm.method, STUN_METHOD_DATA);
    /* another client's ChannelData on the same number: no allocation → dropped */
    client d;
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.21", 40000, "alice");
    send_channeldata(&d, 0x4001, "abcde", 0);
    CHECK_INT(F.n_peer, 2);
    fx_free(&F);
}

static void t_tcp_padding(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_TCP);
    CHECK(id != 0);
    CHECK_INT(fx_bind(&F, &c, 0x4ABC, "8.8.8.8", 5000), 0);
    fx_peer_in(&F, id, "8.8.8.8", 5000, "12345");
    CHECK_INT(F.out_len, 12);
    CHECK(F.out[0] == 0x4A && F.out[1] == 0xBC && F.out[3] == 5);
    CHECK(F.out[9] == 0 && F.out[10] == 0 && F.out[11] == 0);
    CHECK_INT(F.out_t.conn_id, c.t.conn_id);
    fx_peer_in(&F, id, "8.8.8.8", 5000, "1234");
    CHECK_INT(F.out_len, 8);
    /* the client's padded frame: the length field decides */
    send_channeldata(&c, 0x4ABC, "hello", 3);
    CHECK_INT(F.n_peer, 1);
    CHECK_INT(F.peer_len, 5);
    fx_free(&F);
}

/* turn_server_peer_input_inplace: ChannelData to a UDP client by header rewrite (send_client
 * gets the caller's buffer, header in the headroom); TCP (padding) and Data indications go
 * through the server's own buffer as before. */
static void t_peer_input_inplace(void)
{
    for (int proto = TURN_PROTO_UDP; proto <= TURN_PROTO_TCP; proto++) {
        client c;
        uint64_t id = setup(&c, (turn_proto)proto);
        CHECK(id != 0);
        CHECK_INT(fx_bind(&F, &c, 0x4002, "8.8.8.8", 5000), 0);
        uint8_t buf[TURN_PEER_HEADROOM + 5];
        memset(buf, 0xEE, TURN_PEER_HEADROOM);
        memcpy(buf + TURN_PEER_HEADROOM, "hello", 5);
        struct sockaddr_storage ss;
        int before = F.n_client;
        turn_server_peer_input_inplace(F.s, id, fx_sa(&ss, "8.8.8.8", 5000),
                                       buf + TURN_PEER_HEADROOM, 5, F.now);
        CHECK_INT(F.n_client, before + 1);
        CHECK(F.out[0] == 0x40 && F.out[1] == 0x02 && F.out[2] == 0 && F.out[3] == 5);
        CHECK(memcmp(F.out + 4, "hello", 5) == 0);
        if (proto == TURN_PROTO_UDP) {
            CHECK_INT(F.out_len, 9);
            CHECK(F.out_ptr == buf); /* no copy: the header went into the headroom */
        } else {
            CHECK_INT(F.out_len, 12); /* padded for the stream, built in the server's buffer */
            CHECK(F.out_ptr != buf);
        }
        /* no channel for this port: a Data indication, built elsewhere */
        memcpy(buf + TURN_PEER_HEADROOM, "world", 5);
        turn_server_peer_input_inplace(F.s, id, fx_sa(&ss, "8.8.8.8", 6000),
                                       buf + TURN_PEER_HEADROOM, 5, F.now);
        CHECK(F.rm_ok);
        CHECK_INT(F.rm.method, STUN_METHOD_DATA);
        CHECK(F.out_ptr != buf);
        fx_free(&F);
    }
}

static void t_permission_expiry(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    CHECK_INT(fx_refresh(&F, &c, 3600), 0);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    int64_t t0 = F.now;
    F.now = t0 + 299000;
    turn_server_tick(F.s, F.now);
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "ok");
    CHECK_INT(F.n_peer, 1);
    F.now = t0 + 300000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).permissions, 0);
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "late");
    CHECK_INT(F.n_peer, 1);
    int before = F.n_client;
    fx_peer_in(&F, id, "8.8.8.8", 5000, "late");
    CHECK_INT(F.n_client, before);
    /* a refresh before expiry keeps it */
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    F.now += 200000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    F.now += 200000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).permissions, 1);
    fx_free(&F);
}

static void t_channel_expiry_and_cooldown(void)
{
    client c;
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    CHECK_INT(fx_refresh(&F, &c, 3600), 0);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5000), 0);
    int64_t t0 = F.now;
    /* the permission lapses at 300 s: the channel relays nothing until it is refreshed */
    F.now = t0 + 300000;
    turn_server_tick(F.s, F.now);
    send_channeldata(&c, 0x4000, "abcd", 0);
    CHECK_INT(F.n_peer, 0);
    CHECK_INT(fx_stats(&F).channels, 1);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    send_channeldata(&c, 0x4000, "abcd", 0);
    CHECK_INT(F.n_peer, 1);
    /* the channel expires at 600 s (the permission is still fresh until 600 s) */
    F.now = t0 + 550000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    F.now = t0 + 600000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).channels, 0);
    send_channeldata(&c, 0x4000, "abcd", 0);
    CHECK_INT(F.n_peer, 1);
    fx_peer_in(&F, id, "8.8.8.8", 5000, "data");
    CHECK(F.rm_ok && F.rm.method == STUN_METHOD_DATA); /* Data indication now */
    /* cool-down: neither the number nor the peer may be bound to something else */
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5001), 400);
    CHECK_INT(fx_bind(&F, &c, 0x4002, "8.8.8.8", 5000), 400);
    F.now = t0 + 600000 + 300000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5001), 0);
    CHECK_INT(fx_bind(&F, &c, 0x4002, "8.8.8.8", 5000), 0);
    CHECK_INT(fx_stats(&F).channels, 2);
    /* during cool-down, rebinding the same pair revives the channel */
    F.now += 600000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).channels, 0);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5001), 0);
    CHECK_INT(fx_stats(&F).channels, 1);
    send_channeldata(&c, 0x4000, "abcd", 0);
    CHECK_INT(F.n_peer, 2);
    fx_free(&F);
}

static void add_v6(stun_builder *b, void *arg)
{
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add_address_family(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, *(uint8_t *)arg);
}

static void t_ipv6_relay(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "2001:db8:1::20", 40000, "alice");
    uint8_t fam = STUN_FAMILY_IPV6;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_v6, &fam), 0);
    uint64_t id = F.last_open_id;
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 443);
    CHECK_INT(fx_permit(&F, &c, "2606:4700::1111", 1), 0);
    CHECK_INT(fx_permit(&F, &c, "fe80::1", 1), 403);
    CHECK_INT(fx_bind(&F, &c, 0x4100, "2606:4700::1111", 53), 0);
    fx_peer_in(&F, id, "2606:4700::1111", 53, "v6data");
    CHECK(F.out[0] == 0x41 && F.out[1] == 0x00);
    fx_peer_in(&F, id, "2606:4700::1111", 54, "v6data");
    CHECK(F.rm_ok && F.rm.method == STUN_METHOD_DATA);
    struct sockaddr_storage p, want;
    fx_addr(&want, "2606:4700::1111", 54);
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_PEER_ADDRESS, &p), 0);
    CHECK(fx_addr_eq(&p, &want));
    fx_free(&F);
}

static void add_many_peers(stun_builder *b, void *arg)
{
    int base = *(int *)arg;
    for (int i = 0; i < 50; i++) {
        char ip[32];
        struct sockaddr_storage ss;
        snprintf(ip, sizeof ip, "9.%d.%d.1", (base + i) / 200, (base + i) % 200);
        stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, fx_sa(&ss, ip, 1));
    }
}

static void t_permission_cap(void)
{
    client c;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    int base = 0, code = 0;
    for (; base < 2000 && code == 0; base += 50)
        code = fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, add_many_peers, &base);
    CHECK_INT(code, 508);
    CHECK(fx_stats(&F).permissions <= 512);
    CHECK(fx_stats(&F).permissions >= 450);
    fx_free(&F);
}

/* Channels are capped per allocation like permissions: one peer IP (one permission) with
 * many ports could otherwise bind all 16384 numbers. Rebinding an existing channel still
 * works at the cap; another allocation is not affected. */
static void t_channel_cap(void)
{
    client c, d;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    CHECK_INT(fx_refresh(&F, &c, 3600), 0);
    int code = 0, bound = 0;
    for (int i = 0; i < 2000 && code == 0; i++) {
        code = fx_bind(&F, &c, (uint16_t)(0x4000 + i), "9.9.9.9", (uint16_t)(1000 + i));
        bound += code == 0;
    }
    CHECK_INT(code, 508);
    CHECK_INT(bound, 512);
    CHECK_INT(fx_stats(&F).channels, 512);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "9.9.9.9", 1000), 0); /* refresh at the cap */
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.23", 40000, "bob");
    CHECK_INT(fx_allocate(&F, &d), 0);
    CHECK_INT(fx_bind(&F, &d, 0x4000, "9.9.9.9", 1000), 0);
    fx_free(&F);
}

/* More than TURN__SCAN_MAX (16) permissions and channels: lookups go through the server-wide
 * maps, stay per allocation, and fall back to the allocation's own list once it shrinks. */
static void peer_ip(char *ip, size_t cap, int i)
{
    snprintf(ip, cap, "8.8.%d.1", i);
}

static void t_many_channels_and_permissions(void)
{
    client c, d;
    char ip[32];
    uint64_t id = setup(&c, TURN_PROTO_UDP);
    CHECK(id != 0);
    CHECK_INT(fx_refresh(&F, &c, 3600), 0);
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.23", 40000, "bob");
    CHECK_INT(fx_allocate(&F, &d), 0);
    uint64_t bob = F.last_open_id;
    for (int i = 0; i < 40; i++) {
        peer_ip(ip, sizeof ip, i);
        CHECK_INT(fx_bind(&F, &c, (uint16_t)(0x4000 + i), ip, (uint16_t)(5000 + i)), 0);
    }
    CHECK_INT(fx_bind(&F, &d, 0x4000, "8.8.0.1", 5000), 0); /* same pair, other allocation */
    CHECK_INT(fx_stats(&F).channels, 41);
    CHECK_INT(fx_stats(&F).permissions, 41);
    for (int i = 0; i < 40; i++) {
        int before = F.n_peer;
        send_channeldata(&c, (uint16_t)(0x4000 + i), "abcd", 0);
        CHECK_INT(F.n_peer, before + 1);
        CHECK_INT(F.peer_alloc, id);
        struct sockaddr_storage want;
        peer_ip(ip, sizeof ip, i);
        fx_addr(&want, ip, (uint16_t)(5000 + i));
        CHECK(fx_addr_eq(&F.peer_to, &want));
        fx_peer_in(&F, id, ip, (uint16_t)(5000 + i), "xyz12");
        CHECK_INT(F.out_len, 9);
        CHECK_INT((F.out[0] << 8) | F.out[1], 0x4000 + i);
    }
    send_channeldata(&c, 0x4000 + 40, "abcd", 0); /* unbound */
    send_channeldata(&d, 0x4001, "abcd", 0);      /* bound by alice only */
    int n_peer = F.n_peer;
    CHECK_INT(n_peer, 40);
    send_channeldata(&d, 0x4000, "abcd", 0);
    CHECK_INT(F.n_peer, 41);
    CHECK_INT(F.peer_alloc, bob);
    CHECK_INT(fx_bind(&F, &c, 0x4001, "8.8.0.1", 5000), 400); /* peer on another number */
    CHECK_INT(fx_bind(&F, &c, 0x4001, "8.8.2.1", 5001), 400); /* number on another peer */
    int n_client = F.n_client;
    fx_peer_in(&F, id, "8.8.0.1", 6000, "other"); /* permission, no channel */
    CHECK(F.rm_ok);
    CHECK_INT(F.rm.method, STUN_METHOD_DATA);
    fx_peer_in(&F, id, "9.9.9.9", 5000, "none");  /* no permission */
    fx_peer_in(&F, bob, "8.8.1.1", 5001, "none"); /* alice's permission, not bob's */
    CHECK_INT(F.n_client, n_client + 1);
    /* refresh 3 of them at 200 s; the other permissions lapse at 300 s */
    int64_t t0 = F.now;
    F.now = t0 + 200000;
    for (int i = 0; i < 3; i++) {
        peer_ip(ip, sizeof ip, i);
        CHECK_INT(fx_bind(&F, &c, (uint16_t)(0x4000 + i), ip, (uint16_t)(5000 + i)), 0);
    }
    F.now = t0 + 350000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).permissions, 3); /* alice's 3, bob's lapsed too */
    n_peer = F.n_peer;
    send_channeldata(&c, 0x4005, "abcd", 0); /* channel alive, permission gone */
    CHECK_INT(F.n_peer, n_peer);
    send_channeldata(&c, 0x4001, "abcd", 0);
    CHECK_INT(F.n_peer, n_peer + 1);
    /* the 37 others expire at 600 s (tick at 650: cooling until 950 s); revive the 3 */
    F.now = t0 + 650000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).channels, 3);
    F.now = t0 + 960000;
    turn_server_tick(F.s, F.now);
    for (int i = 0; i < 3; i++) {
        peer_ip(ip, sizeof ip, i);
        CHECK_INT(fx_bind(&F, &c, (uint16_t)(0x4000 + i), ip, (uint16_t)(5000 + i)), 0);
    }
    CHECK_INT(fx_stats(&F).channels, 3);
    send_channeldata(&c, 0x4002, "abcd", 0);
    CHECK_INT(F.n_peer, n_peer + 2);
    fx_peer_in(&F, id, "8.8.2.1", 5002, "xyz12");
    CHECK_INT((F.out[0] << 8) | F.out[1], 0x4002);
    CHECK_INT(fx_bind(&F, &c, 0x4010, "8.8.20.1", 7000), 0); /* number and peer free again */
    send_channeldata(&c, 0x4010, "abcd", 0);
    CHECK_INT(F.n_peer, n_peer + 3);
    fx_free(&F);
}

static void t_stats_and_free(void)
{
    client c, d;
    CHECK(setup(&c, TURN_PROTO_UDP) != 0);
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.22", 40000, "bob");
    CHECK_INT(fx_allocate(&F, &d), 0);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    CHECK_INT(fx_permit(&F, &d, "8.8.8.8", 1), 0);
    CHECK_INT(fx_bind(&F, &d, 0x4000, "1.1.1.1", 53), 0);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.allocations, 2);
    CHECK_INT(st.permissions, 3);
    CHECK_INT(st.channels, 1);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"bob", 3, F.now), 1);
    st = fx_stats(&F);
    CHECK_INT(st.allocations, 1);
    CHECK_INT(st.permissions, 1);
    CHECK_INT(st.channels, 0);
    fx_free(&F);
    CHECK_INT(F.opens, 2);
    CHECK_INT(F.closes, 2);
}

int main(void)
{
    TK_RUN(t_create_permission);
    TK_RUN(t_create_permission_all_or_nothing);
    TK_RUN(t_loopback_not_allowlisted);
    TK_RUN(t_send_indication);
    TK_RUN(t_peer_to_client_data_indication);
    TK_RUN(t_channel_bind_rules);
    TK_RUN(t_channel_cap);
    TK_RUN(t_channeldata_both_ways);
    TK_RUN(t_tcp_padding);
    TK_RUN(t_peer_input_inplace);
    TK_RUN(t_permission_expiry);
    TK_RUN(t_channel_expiry_and_cooldown);
    TK_RUN(t_ipv6_relay);
    TK_RUN(t_permission_cap);
    TK_RUN(t_many_channels_and_permissions);
    TK_RUN(t_stats_and_free);
    return tk_test_summary();
}
