/* turn: the hardening cases of issue 11 in the state machine — answer sizes before
 * authentication (amplification), the challenge rate-limit hook, several XOR-PEER-ADDRESS
 * attributes in ChannelBind and Send, nonces (unique, short, configurable lifetime).
 * See docs/security.md. */
#include "test_turn_fixture.h"
#include "turnkey/util.h"

static fake F;

static void add_two_peers(stun_builder *b, void *arg)
{
    struct sockaddr_storage ss;
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, fx_sa(&ss, "1.1.1.1", 1));
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, fx_sa(&ss, arg, 1));
}

static void add_bind_two_peers(stun_builder *b, void *arg)
{
    stun_builder_add_channel_number(b, 0x4001);
    add_two_peers(b, arg);
}

/* A 20-byte Allocate (no attribute at all) gets a 400 of 40 bytes ("Bad Request"), no
 * challenge. */
static void t_bare_request_small_answer(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    CHECK_INT(F.out_len, 40);
    const uint8_t *v;
    size_t n;
    CHECK(stun_get_nonce(&F.rm, &v, &n) != STUN_OK);
    CHECK(stun_get_software(&F.rm, &v, &n) != STUN_OK);
    CHECK_INT(F.challenge_asks, 0);
    /* the same for the other TURN methods */
    fx_begin(&c, &b, STUN_METHOD_CREATE_PERMISSION, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    CHECK_INT(F.out_len, 40);
    fx_free(&F);
}

/* The 401 to a minimal Allocate (REQUESTED-TRANSPORT only, 28 bytes): ERROR-CODE
 * "Unauthenticated", REALM, a 24-character NONCE, no SOFTWARE: 20 + 24 + 16 + 28 = 88 bytes
 * with this fixture's 12-byte realm (84 with the default "turnkey"). */
static void t_challenge_is_small(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    CHECK_INT(F.out_len, 88);
    const uint8_t *v;
    size_t n;
    CHECK(stun_get_software(&F.rm, &v, &n) != STUN_OK);
    CHECK_INT(stun_get_nonce(&F.rm, &v, &n), STUN_OK);
    CHECK_INT(n, 24);
    CHECK_INT(F.challenge_asks, 1);
    /* a Binding answer carries no SOFTWARE either: 20 + XOR-MAPPED-ADDRESS (12) */
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 0);
    CHECK_INT(F.out_len, 32);
    fx_free(&F);
}

/* ops.challenge_ok false: no 401 and no 438 leaves, and each is counted. */
static void t_challenge_suppressed(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0); /* challenges allowed: works */
    F.deny_challenges = true;
    client d;
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.21", 40000, "bob");
    int before = F.n_client;
    stun_builder b;
    fx_begin(&d, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_feed(&F, &d, &b), -1);
    CHECK_INT(F.n_client, before);
    /* a stale nonce (438) is a challenge too */
    memcpy(d.nonce, "00000001aaaaaaaaaaaaaaaa", 24);
    d.nonce_len = 24;
    fx_begin(&d, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_signed(&F, &d, &b), -1);
    CHECK_INT(F.n_client, before);
    CHECK_INT(fx_stats(&F).challenges_suppressed, 2);
    /* authenticated traffic of the live allocation is not affected */
    CHECK_INT(fx_refresh(&F, &c, 600), 0);
    fx_free(&F);
}

/* ChannelBind with two XOR-PEER-ADDRESS: 400, no channel, no permission (even when both
 * peers are allowed); CreatePermission checks each and installs none when one is denied. */
static void t_several_peer_addresses(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CHANNEL_BIND, add_bind_two_peers, "9.9.9.9"), 400);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CHANNEL_BIND, add_bind_two_peers, "10.0.0.1"), 400);
    CHECK_INT(fx_stats(&F).channels, 0);
    CHECK_INT(fx_stats(&F).permissions, 0);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, add_two_peers, "fec0::1"), 403);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_CREATE_PERMISSION, add_two_peers, "168.63.129.16"), 403);
    CHECK_INT(fx_stats(&F).permissions, 0);
    fx_free(&F);
}

/* A Send indication with two peers is dropped, even when both have a permission: the one
 * address checked is the one sent to, and an ambiguous indication has none. */
static void t_send_two_peers_dropped(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "1.1.1.1", 1), 0);
    CHECK_INT(fx_permit(&F, &c, "9.9.9.9", 1), 0);
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_SEND, STUN_CLASS_INDICATION);
    add_two_peers(&b, "9.9.9.9");
    stun_builder_add(&b, STUN_ATTR_DATA, "xy", 2);
    CHECK_INT(fx_feed(&F, &c, &b), -1);
    CHECK_INT(F.n_peer, 0);
    /* control: one peer goes out to exactly that address */
    fx_send_ind(&F, &c, "9.9.9.9", 7, "xy");
    CHECK_INT(F.n_peer, 1);
    struct sockaddr_storage want;
    fx_addr(&want, "9.9.9.9", 7);
    CHECK(fx_addr_eq(&F.peer_to, &want));
    fx_free(&F);
}

/* 1,000 clients get 1,000 different nonces of 24 characters. */
static void t_nonces_unique(void)
{
    fx_init(&F);
    enum { N = 1000 };
    static char seen[N][24];
    for (int i = 0; i < N; i++) {
        client c;
        fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(20000 + i), "alice");
        fx_challenge(&F, &c);
        CHECK_INT(c.nonce_len, 24);
        memcpy(seen[i], c.nonce, 24);
        F.now += 7;
    }
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            dup += memcmp(seen[i], seen[j], 24) == 0;
    CHECK_INT(dup, 0);
    fx_free(&F);
}

static void short_nonce(turn_config *cfg)
{
    cfg->nonce_lifetime_s = 30;
}

/* nonce_lifetime_s is honoured: valid before it ends, 438 after. */
static void t_nonce_lifetime(void)
{
    fx_init_cfg(&F, true, short_nonce);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    fx_challenge(&F, &c);
    F.now += 28000;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, fx_add_udp, NULL), 0);
    fx_challenge(&F, &c); /* a fresh one, issued now */
    F.now += 32000;
    stun_builder b; /* signed by hand: fx_signed would retry the 438 */
    fx_begin(&c, &b, STUN_METHOD_REFRESH, STUN_CLASS_REQUEST);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 600);
    fx_sign(&c, &b, c.user, FX_REALM, NULL);
    CHECK_INT(fx_feed(&F, &c, &b), 438);
    fx_free(&F);
}

/* Revocation and key deletion go through the username and key indexes: the right
 * allocations end (and only those) whatever the order they were made in, and the indexes
 * empty out (ASan: nothing leaks, nothing is used after free). */
static void t_lifecycle_indexes(void)
{
    fx_init(&F);
    enum { USERS = 120 };
    static client c[USERS][3];
    size_t k2 = 0, total = 0;
    for (int i = 0; i < USERS; i++) {
        char user[16];
        snprintf(user, sizeof user, "%c%d", i % 3 == 0 ? 'k' : 'u', i); /* 'k…' = key2 */
        for (int j = 0; j < 1 + i % 3; j++) {
            char ip[32];
            snprintf(ip, sizeof ip, "198.51.100.%d", 1 + i);
            fx_client(&c[i][j], TURN_PROTO_UDP, ip, (uint16_t)(2000 + j), user);
            CHECK_INT(fx_allocate(&F, &c[i][j]), 0);
            total++;
            k2 += i % 3 == 0;
        }
    }
    CHECK_INT(fx_stats(&F).allocations, total);
    /* revoke u1 (2 allocations) and u2 (3), an unknown user, a prefix of a user */
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"u1", 2, F.now), 2);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"u2", 2, F.now), 3);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"u1", 2, F.now), 0);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"u", 1, F.now), 0);
    total -= 5;
    CHECK_INT(fx_stats(&F).allocations, total);
    /* by SHA-256 of the username (the change feed's form): u4's 2 allocations, then none */
    char h[65];
    util_sha256_hex("u4", 2, h);
    CHECK_INT(turn_server_credential_revoked_hash(F.s, h, F.now), 2);
    CHECK_INT(turn_server_credential_revoked_hash(F.s, h, F.now), 0);
    util_sha256_hex("u", 1, h);
    CHECK_INT(turn_server_credential_revoked_hash(F.s, h, F.now), 0);
    CHECK_INT(turn_server_credential_revoked_hash(F.s, "not-a-hash", F.now), 0);
    total -= 2;
    CHECK_INT(fx_stats(&F).allocations, total);
    /* revoke one key2 user, then delete key2: the rest of key2 ends, key1 stays */
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"k3", 2, F.now), 1);
    k2 -= 1;
    total -= 1;
    CHECK_INT(turn_server_key_deleted(F.s, "key2", F.now), k2);
    total -= k2;
    CHECK_INT(fx_stats(&F).allocations, total);
    CHECK_INT(turn_server_key_deleted(F.s, "key2", F.now), 0);
    /* a user of the deleted key allocates again: indexed afresh */
    client again;
    fx_client(&again, TURN_PROTO_UDP, "198.51.100.250", 3000, "k0");
    CHECK_INT(fx_allocate(&F, &again), 0);
    CHECK_INT(turn_server_key_deleted(F.s, "key2", F.now), 1);
    CHECK_INT(turn_server_key_deleted(F.s, "key1", F.now), total);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(F.closes, F.opens);
    fx_free(&F);
}

int main(void)
{
    TK_RUN(t_lifecycle_indexes);
    TK_RUN(t_bare_request_small_answer);
    TK_RUN(t_challenge_is_small);
    TK_RUN(t_challenge_suppressed);
    TK_RUN(t_several_peer_addresses);
    TK_RUN(t_send_two_peers_dropped);
    TK_RUN(t_nonces_unique);
    TK_RUN(t_nonce_lifetime);
    return tk_test_summary();
}
