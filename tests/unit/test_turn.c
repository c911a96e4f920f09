/* turn: Binding, the long-term credential mechanism, Allocate, Refresh, lifetimes, quota and
 * capacity, lifecycle (key deleted / credential revoked / connection closed). The relay paths
 * are in test_turn_relay.c, the random soak in test_turn_soak.c. */
#include "test_turn_fixture.h"

static fake F;

static bool has_valid_mi(const fake *f, const char *user)
{
    uint8_t key[16];
    stun_long_term_key((const uint8_t *)user, strlen(user), (const uint8_t *)FX_REALM,
                       strlen(FX_REALM), (const uint8_t *)FX_PASSWORD, strlen(FX_PASSWORD), key);
    return stun_check_integrity(&f->rm, key, sizeof key) == STUN_OK;
}

static bool has_realm_nonce(const fake *f)
{
    const uint8_t *v;
    size_t n;
    return stun_get_realm(&f->rm, &v, &n) == STUN_OK && n == strlen(FX_REALM) &&
           memcmp(v, FX_REALM, n) == 0 && stun_get_nonce(&f->rm, &v, &n) == STUN_OK && n > 0;
}

static bool reason_ok(const fake *f)
{
    int code;
    const uint8_t *r;
    size_t rl;
    if (stun_get_error_code(&f->rm, &code, &r, &rl) != STUN_OK)
        return false;
    const char *want = stun_error_reason(code);
    return want && rl == strlen(want) && memcmp(r, want, rl) == 0;
}

static void t_new_rejects_bad_config(void)
{
    turn_ops ops = {0};
    turn_config cfg = {.realm = "r"};
    CHECK(turn_server_new(&cfg, &ops) == NULL);
    CHECK(turn_server_new(NULL, NULL) == NULL);
    fx_init(&F);
    CHECK(F.s != NULL);
    CHECK_INT(turn_server_next_deadline(F.s), INT64_MAX);
    fx_free(&F);
}

static void t_binding(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 0);
    struct sockaddr_storage m;
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_MAPPED_ADDRESS, &m), 0);
    CHECK(fx_addr_eq(&m, &c.t.client));
    CHECK(F.rm.fp_off == 0);
    CHECK(memcmp(F.rm.txid, c.txid, 12) == 0);
    /* with FINGERPRINT */
    c.fingerprint = true;
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 0);
    CHECK_INT(stun_check_fingerprint(&F.rm), 0);
    /* unknown comprehension-required attribute */
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_REQUEST);
    stun_builder_add(&b, 0x7F01, "abcd", 4);
    CHECK_INT(fx_feed(&F, &c, &b), 420);
    uint16_t types[4];
    size_t n;
    CHECK_INT(stun_get_unknown_attributes(&F.rm, types, 4, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(types[0], 0x7F01);
    CHECK(reason_ok(&F));
    /* Binding indication: ignored */
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_INDICATION);
    CHECK_INT(fx_feed(&F, &c, &b), -1);
    CHECK_INT(F.auth_calls, 0);
    fx_free(&F);
}

static void t_challenge_401(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    CHECK(has_realm_nonce(&F));
    CHECK(reason_ok(&F));
    CHECK(F.rm.mi_off == 0);
    const uint8_t *sw;
    size_t swl;
    CHECK(stun_get_software(&F.rm, &sw, &swl) != 0); /* no SOFTWARE before authentication */
    CHECK_INT(F.auth_calls, 0);
    CHECK_INT(F.opens, 0);
    fx_free(&F);
}

static void t_allocate_success(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    c.fingerprint = true;
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(F.opens, 1);
    CHECK_INT(F.last_family, AF_INET);
    struct sockaddr_storage relayed, want, mapped;
    fx_addr(&want, "203.0.113.5", 50000);
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed), 0);
    CHECK(fx_addr_eq(&relayed, &want));
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped), 0);
    CHECK(fx_addr_eq(&mapped, &c.t.client));
    uint32_t lt = 0;
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 600);
    CHECK(has_valid_mi(&F, "alice"));
    CHECK_INT(stun_check_fingerprint(&F.rm), 0);
    CHECK_INT(F.rm.mi256_off, 0);
    CHECK_INT(fx_stats(&F).allocations, 1);
    CHECK_INT(turn_server_next_deadline(F.s), F.now + 600000);
    /* strict expiry: every request looks the credential up again */
    int calls = F.auth_calls;
    CHECK_INT(fx_refresh(&F, &c, 600), 0);
    CHECK_INT(F.auth_calls, calls + 1);
    CHECK_INT(F.now_s_seen, F.now / 1000);
    fx_free(&F);
    CHECK_INT(F.closes, 1);
}

static void t_allocate_sha256(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    c.sha256 = true;
    CHECK_INT(fx_allocate(&F, &c), 0);
    uint8_t key[32];
    fx_key(&c, "alice", key);
    CHECK_INT(stun_check_integrity_sha256(&F.rm, key, 32), 0);
    CHECK_INT(stun_check_integrity(&F.rm, key, 32), 0);
    /* wrong password with SHA-256 */
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_REFRESH, STUN_CLASS_REQUEST);
    fx_sign(&c, &b, "alice", FX_REALM, "nope");
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    /* unknown password algorithm → 400 */
    c.sha256 = false;
    fx_begin(&c, &b, STUN_METHOD_REFRESH, STUN_CLASS_REQUEST);
    uint8_t pa[4] = {0, 9, 0, 0};
    stun_builder_add(&b, STUN_ATTR_PASSWORD_ALGORITHM, pa, 4);
    fx_sign(&c, &b, "alice", FX_REALM, NULL);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    fx_free(&F);
}

static void t_auth_failures(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    fx_challenge(&F, &c);
    stun_builder b;
    /* wrong password */
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    fx_sign(&c, &b, "alice", FX_REALM, "wrong");
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    CHECK(has_realm_nonce(&F));
    CHECK(F.rm.mi_off == 0);
    /* bad realm */
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    fx_sign(&c, &b, "alice", "other.realm", NULL);
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    CHECK(has_realm_nonce(&F));
    /* missing USERNAME / REALM → 400 without REALM/NONCE */
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    fx_sign(&c, &b, NULL, FX_REALM, NULL);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    CHECK(!has_realm_nonce(&F));
    CHECK(reason_ok(&F));
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    fx_sign(&c, &b, "alice", NULL, NULL);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    /* auth backend says no */
    F.auth_rc = TURN_AUTH_REJECT;
    CHECK_INT(fx_allocate(&F, &c), 401);
    CHECK(has_realm_nonce(&F));
    F.auth_rc = TURN_AUTH_EXPIRED;
    CHECK_INT(fx_allocate(&F, &c), 401);
    /* credential already expired although the backend accepted it */
    F.auth_rc = 0;
    F.expires = F.now / 1000 - 1;
    CHECK_INT(fx_allocate(&F, &c), 401);
    CHECK_INT(F.opens, 0);
    F.expires = 0;
    CHECK_INT(fx_allocate(&F, &c), 0);
    fx_free(&F);
}

static void t_stale_nonce(void)
{
    fx_init(&F);
    client c, other;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    fx_client(&other, TURN_PROTO_UDP, "198.51.100.20", 40001, "alice");
    fx_challenge(&F, &c);
    F.now += 600 * 1000 + 1;
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    char old[128];
    memcpy(old, c.nonce, c.nonce_len);
    CHECK_INT(fx_signed(&F, &c, &b), 438);
    CHECK(reason_ok(&F));
    CHECK(has_realm_nonce(&F));
    CHECK(memcmp(c.nonce, old, c.nonce_len) != 0); /* fresh nonce */
    CHECK_INT(F.auth_calls, 0);
    /* fresh nonce works */
    CHECK_INT(fx_allocate(&F, &c), 0);
    /* a nonce issued to another 5-tuple → 438 */
    memcpy(other.nonce, c.nonce, c.nonce_len);
    other.nonce_len = c.nonce_len;
    fx_begin(&other, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_signed(&F, &other, &b), 438);
    /* garbage nonce → 438 */
    memcpy(other.nonce, "zz", 2);
    other.nonce_len = 2;
    fx_begin(&other, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    CHECK_INT(fx_signed(&F, &other, &b), 438);
    fx_free(&F);
}

static void t_allocate_mismatch_and_retransmit(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    c.fingerprint = true;
    fx_challenge(&F, &c);
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    fx_sign(&c, &b, "alice", FX_REALM, NULL);
    stun_builder_add_fingerprint(&b);
    int n = stun_builder_finish(&b);
    uint8_t req[4096];
    memcpy(req, c.buf, (size_t)n);
    turn_server_input(F.s, &c.t, req, (size_t)n, F.now);
    CHECK(F.rm_ok && F.rm.cls == STUN_CLASS_SUCCESS);
    uint8_t first[2048];
    size_t first_len = F.out_len;
    memcpy(first, F.out, first_len);
    F.now += 500;
    turn_server_input(F.s, &c.t, req, (size_t)n, F.now);
    CHECK_INT(F.out_len, first_len);
    CHECK(memcmp(F.out, first, first_len) == 0);
    CHECK_INT(F.opens, 1);
    /* new transaction → 437 */
    CHECK_INT(fx_allocate(&F, &c), 437);
    CHECK(reason_ok(&F));
    CHECK(has_valid_mi(&F, "alice")); /* errors after authentication carry MI */
    CHECK_INT(fx_stats(&F).allocations, 1);
    fx_free(&F);
}

static void add_tcp(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_TCP);
}

static void add_nothing(stun_builder *b, void *arg)
{
    (void)b;
    (void)arg;
}

static void add_family(stun_builder *b, void *arg)
{
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add_address_family(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, *(uint8_t *)arg);
}

static void add_dual(stun_builder *b, void *arg)
{
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add_address_family(b, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, *(uint8_t *)arg);
}

static void add_token(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add_u64(b, STUN_ATTR_RESERVATION_TOKEN, 1234);
}

static void add_even_port(stun_builder *b, void *arg)
{
    uint8_t v = *(uint8_t *)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add(b, STUN_ATTR_EVEN_PORT, &v, 1);
    stun_builder_add(b, STUN_ATTR_DONT_FRAGMENT, NULL, 0);
}

static void add_unknown(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
    stun_builder_add(b, 0x7F33, "x", 1);
}

static void t_allocate_attribute_errors(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_tcp, NULL), 442);
    CHECK(reason_ok(&F));
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_nothing, NULL), 400);
    uint8_t fam = 3;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_family, &fam), 440);
    fam = STUN_FAMILY_IPV4;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_dual, &fam), 400);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_token, NULL), 508);
    uint8_t r = 0x80;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_even_port, &r), 508);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_unknown, NULL), 420);
    uint16_t types[4];
    size_t n;
    CHECK_INT(stun_get_unknown_attributes(&F.rm, types, 4, &n), 0);
    CHECK_INT(types[0], 0x7F33);
    CHECK(has_valid_mi(&F, "alice"));
    CHECK_INT(F.opens, 0);
    r = 0;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_even_port, &r), 0);
    fx_free(&F);
}

/* XOR-RELAYED-ADDRESS attributes in the last response; the i-th (0-based) into out. */
static int relayed_nth(const fake *f, int i, struct sockaddr_storage *out)
{
    int n = 0;
    for (size_t k = 0; k < f->rm.n_attrs; k++) {
        const stun_attr *a = &f->rm.attrs[k];
        if (a->type != STUN_ATTR_XOR_RELAYED_ADDRESS)
            continue;
        if (n++ == i && out)
            stun_attr_xor_address(&f->rm, a, out);
    }
    return n;
}

static int relayed_count(const fake *f)
{
    return relayed_nth(f, -1, NULL);
}

static void add_refresh_family(stun_builder *b, void *arg)
{
    const uint8_t *v = arg; /* lifetime (0 or 1 for 600), family */
    stun_builder_add_u32(b, STUN_ATTR_LIFETIME, v[0] ? 600 : 0);
    stun_builder_add_address_family(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, v[1]);
}

/* RFC 8656 §7.2 dual allocation: two relays, each family's peers through its own relay; a
 * Refresh with LIFETIME 0 and REQUESTED-ADDRESS-FAMILY closes one of them only. */
static void t_dual_allocation(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    uint8_t fam = STUN_FAMILY_IPV6;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_dual, &fam), 0);
    CHECK_INT(relayed_count(&F), 2);
    struct sockaddr_storage r4, r6;
    relayed_nth(&F, 0, &r4);
    relayed_nth(&F, 1, &r6);
    CHECK_INT(r4.ss_family, AF_INET);
    CHECK_INT(r6.ss_family, AF_INET6);
    CHECK(!stun_has_attr(&F.rm, STUN_ATTR_ADDRESS_ERROR_CODE));
    uint64_t id = F.last_open_id & ~TURN_RELAY_ID_DUAL;
    CHECK(F.open[id] && F.open2[id]);
    CHECK_INT(fx_stats(&F).allocations, 1);
    /* both families' peers get permissions; each is reached through its own relay */
    CHECK_INT(fx_permit(&F, &c, "2606:4700::7", 5000), 0);
    CHECK_INT(fx_permit(&F, &c, "192.0.2.99", 5000), 403); /* still the peer policy */
    CHECK_INT(fx_permit(&F, &c, "8.8.4.4", 5000), 0);
    fx_send_ind(&F, &c, "2606:4700::7", 5000, "six");
    CHECK(F.peer_alloc == (id | TURN_RELAY_ID_DUAL));
    fx_send_ind(&F, &c, "8.8.4.4", 5000, "four");
    CHECK(F.peer_alloc == id);
    /* peer data comes in on the relay of its family only */
    int before = F.n_client;
    fx_peer_in(&F, id | TURN_RELAY_ID_DUAL, "2606:4700::7", 5000, "hi6");
    CHECK_INT(F.n_client, before + 1);
    fx_peer_in(&F, id, "2606:4700::7", 5000, "wrong socket");
    CHECK_INT(F.n_client, before + 1);
    /* delete the IPv6 relay only: IPv6 peers are refused, IPv4 ones still relayed */
    uint8_t del6[2] = {0, STUN_FAMILY_IPV6};
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_REFRESH, add_refresh_family, del6), 0);
    CHECK(F.open[id] && !F.open2[id]);
    CHECK_INT(fx_stats(&F).allocations, 1);
    CHECK_INT(fx_permit(&F, &c, "2606:4700::8", 5000), 443);
    uint8_t ref6[2] = {1, STUN_FAMILY_IPV6};
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_REFRESH, add_refresh_family, ref6), 443);
    fx_send_ind(&F, &c, "8.8.4.4", 5000, "still");
    CHECK(F.peer_alloc == id && F.peer_len == 5);
    /* the last family deleted ends the allocation */
    uint8_t del4[2] = {0, STUN_FAMILY_IPV4};
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_REFRESH, add_refresh_family, del4), 0);
    CHECK(!F.open[id]);
    CHECK_INT(fx_stats(&F).allocations, 0);
    /* a new dual allocation ended as a whole closes both relays */
    client d;
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.20", 40001, "alice");
    CHECK_INT(fx_req(&F, &d, STUN_METHOD_ALLOCATE, add_dual, &fam), 0);
    id = F.last_open_id & ~TURN_RELAY_ID_DUAL;
    int closes = F.closes;
    CHECK_INT(fx_refresh(&F, &d, 0), 0);
    CHECK_INT(F.closes, closes + 2);
    CHECK(!F.open[id] && !F.open2[id]);
    fx_free(&F);
}

/* RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute is
 * discarded (a Send is not relayed); an unknown comprehension-optional one is ignored. */
static void t_send_unknown_attribute(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "8.8.4.4", 5000), 0);
    for (int required = 1; required >= 0; required--) {
        stun_builder b;
        struct sockaddr_storage ss;
        fx_addr(&ss, "8.8.4.4", 5000);
        fx_begin(&c, &b, STUN_METHOD_SEND, STUN_CLASS_INDICATION);
        stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&ss);
        stun_builder_add(&b, STUN_ATTR_DATA, "unknown", 7);
        stun_builder_add(&b, required ? 0x7F33 : 0xBF33, "x", 1);
        int n = stun_builder_finish(&b);
        int before = F.n_peer;
        uint64_t malformed = fx_stats(&F).drops[TURN_DROP_MALFORMED];
        turn_server_input(F.s, &c.t, c.buf, (size_t)n, F.now);
        CHECK_INT(F.n_peer, before + (required ? 0 : 1));
        CHECK_INT((int)(fx_stats(&F).drops[TURN_DROP_MALFORMED] - malformed), required ? 1 : 0);
    }
    fx_free(&F);
}

static void t_allocate_families(void)
{
    fx_init(&F);
    client c, d, e;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.20", 40001, "alice");
    fx_client(&e, TURN_PROTO_UDP, "198.51.100.20", 40002, "alice");
    uint8_t fam = STUN_FAMILY_IPV6;
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_ALLOCATE, add_family, &fam), 0);
    CHECK_INT(F.last_family, AF_INET6);
    struct sockaddr_storage relayed;
    CHECK_INT(stun_get_xor_address(&F.rm, STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed), 0);
    CHECK_INT(relayed.ss_family, AF_INET6);
    /* dual, but no IPv6 relay here: IPv4 only plus ADDRESS-ERROR-CODE 440 for IPv6 */
    F.open6_rc = TURN_RELAY_ERR_FAMILY;
    CHECK_INT(fx_req(&F, &d, STUN_METHOD_ALLOCATE, add_dual, &fam), 0);
    F.open6_rc = 0;
    CHECK_INT(relayed_count(&F), 1);
    const uint8_t *v;
    size_t vl;
    CHECK_INT(stun_get_bytes(&F.rm, STUN_ATTR_ADDRESS_ERROR_CODE, &v, &vl), 0);
    CHECK(vl >= 4 && v[0] == STUN_FAMILY_IPV6 && v[2] == 4 && v[3] == 40);
    CHECK_INT(fx_permit(&F, &d, "2606:4700::7", 5000), 443); /* IPv6 peers: no relay */
    /* relay has no address of that family → 440 */
    F.open_rc = TURN_RELAY_ERR_FAMILY;
    CHECK_INT(fx_req(&F, &e, STUN_METHOD_ALLOCATE, add_family, &fam), 440);
    F.open_rc = -1;
    CHECK_INT(fx_allocate(&F, &e), 508);
    CHECK_INT(fx_stats(&F).allocations, 2);
    F.open_rc = 0;
    CHECK_INT(fx_allocate(&F, &e), 0);
    fx_free(&F);
    CHECK_INT(F.opens, F.closes);
}

static void t_wrong_username_441(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    snprintf(c.user, sizeof c.user, "mallory");
    CHECK_INT(fx_refresh(&F, &c, 600), 441);
    CHECK(reason_ok(&F));
    CHECK(has_valid_mi(&F, "mallory"));
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 441);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 1), 441);
    fx_free(&F);
}

static void t_quota_486(void)
{
    fx_init(&F);
    client c[11];
    for (int i = 0; i < 11; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), "alice");
    for (int i = 0; i < 10; i++)
        CHECK_INT(fx_allocate(&F, &c[i]), 0);
    CHECK_INT(fx_allocate(&F, &c[10]), 486);
    CHECK(reason_ok(&F));
    client other;
    fx_client(&other, TURN_PROTO_UDP, "198.51.100.21", 41000, "bob");
    CHECK_INT(fx_allocate(&F, &other), 0);
    CHECK_INT(fx_refresh(&F, &c[3], 0), 0);
    CHECK_INT(fx_allocate(&F, &c[10]), 0);
    CHECK_INT(fx_stats(&F).allocations, 11);
    fx_free(&F);
    CHECK_INT(F.opens, 12);
    CHECK_INT(F.closes, 12);
}

static void small_cap(turn_config *cfg)
{
    cfg->max_allocations = 3;
}

static void t_global_cap_508(void)
{
    fx_init_cfg(&F, true, small_cap);
    client c[4];
    for (int i = 0; i < 4; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), i ? "bob" : "al");
    for (int i = 0; i < 3; i++)
        CHECK_INT(fx_allocate(&F, &c[i]), 0);
    CHECK_INT(fx_allocate(&F, &c[3]), 508);
    CHECK(reason_ok(&F));
    CHECK_INT(F.opens, 3);
    fx_free(&F);
}

static void t_refresh_lifetimes(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    uint32_t lt;
    CHECK_INT(fx_refresh(&F, &c, 600), 437); /* nothing allocated yet */
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_refresh(&F, &c, 100000), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 3600);
    CHECK(has_valid_mi(&F, "alice"));
    CHECK_INT(turn_server_next_deadline(F.s), F.now + 3600000);
    CHECK_INT(fx_refresh(&F, &c, 30), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 600);
    CHECK_INT(fx_refresh(&F, &c, 1200), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 1200);
    CHECK_INT(fx_req(&F, &c, STUN_METHOD_REFRESH, NULL, NULL), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 600);
    /* 0 deletes */
    CHECK_INT(fx_refresh(&F, &c, 0), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK_INT(lt, 0);
    CHECK_INT(F.closes, 1);
    CHECK_INT(F.last_closed_id, F.last_open_id);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(fx_refresh(&F, &c, 600), 437);
    CHECK_INT(turn_server_next_deadline(F.s), INT64_MAX);
    /* a fresh allocation on the same 5-tuple is possible again */
    CHECK_INT(fx_allocate(&F, &c), 0);
    fx_free(&F);
}

static void t_lifetime_expiry_tick(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    int64_t t0 = F.now;
    turn_server_tick(F.s, t0 + 599999);
    CHECK_INT(fx_stats(&F).allocations, 1);
    turn_server_tick(F.s, t0 + 600000);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(F.closes, 1);
    F.now = t0 + 600001;
    CHECK_INT(fx_refresh(&F, &c, 600), 437);
    fx_free(&F);
    CHECK_INT(F.closes, 1);
}

static void t_credential_expiry_caps(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    F.expires = F.now / 1000 + 100;
    CHECK_INT(fx_allocate(&F, &c), 0);
    uint32_t lt;
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK(lt <= 100 && lt >= 99);
    CHECK_INT(fx_refresh(&F, &c, 3600), 0);
    CHECK_INT(stun_get_lifetime(&F.rm, &lt), 0);
    CHECK(lt <= 100 && lt >= 99);
    CHECK(turn_server_next_deadline(F.s) <= F.expires * 1000);
    turn_server_tick(F.s, F.expires * 1000);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(F.closes, 1);
    fx_free(&F);
}

static void t_lifecycle_removal(void)
{
    fx_init(&F);
    client a1, a2, k1;
    fx_client(&a1, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    fx_client(&a2, TURN_PROTO_UDP, "198.51.100.20", 40001, "alice");
    fx_client(&k1, TURN_PROTO_UDP, "198.51.100.20", 40002, "kate"); /* key2 */
    CHECK_INT(fx_allocate(&F, &a1), 0);
    uint64_t a1_id = F.last_open_id;
    CHECK_INT(fx_allocate(&F, &a2), 0);
    CHECK_INT(fx_allocate(&F, &k1), 0);
    uint64_t k1_id = F.last_open_id;
    CHECK_INT(fx_permit(&F, &k1, "8.8.8.8", 5000), 0);
    CHECK_INT(turn_server_key_deleted(F.s, "nope", F.now), 0);
    CHECK_INT(turn_server_key_deleted(F.s, "key2", F.now), 1);
    CHECK_INT(F.closes, 1);
    CHECK_INT(F.last_closed_id, k1_id);
    int peer_before = F.n_peer, client_before = F.n_client;
    fx_send_ind(&F, &k1, "8.8.8.8", 5000, "hi");
    fx_peer_in(&F, k1_id, "8.8.8.8", 5000, "hi");
    CHECK_INT(F.n_peer, peer_before);
    CHECK_INT(F.n_client, client_before);
    CHECK_INT(fx_stats(&F).permissions, 0);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"alic", 4, F.now), 0);
    CHECK_INT(turn_server_credential_revoked(F.s, (const uint8_t *)"alice", 5, F.now), 2);
    CHECK_INT(F.closes, 3);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(fx_refresh(&F, &a1, 600), 437);
    (void)a1_id;
    /* quota released */
    for (int i = 0; i < 10; i++) {
        client x;
        fx_client(&x, TURN_PROTO_UDP, "198.51.100.30", (uint16_t)(42000 + i), "alice");
        CHECK_INT(fx_allocate(&F, &x), 0);
    }
    fx_free(&F);
    CHECK_INT(F.opens, F.closes);
}

static void t_conn_closed(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.20", 40000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    /* same addresses, another connection: a different 5-tuple */
    client d = c;
    d.t.conn_id++;
    d.nonce_len = 0;
    CHECK_INT(fx_refresh(&F, &d, 600), 437);
    turn_server_conn_closed(F.s, &d.t, F.now);
    CHECK_INT(fx_stats(&F).allocations, 1);
    turn_server_conn_closed(F.s, &c.t, F.now);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(F.closes, 1);
    fx_free(&F);
}

static void t_ignored_input(void)
{
    fx_init(&F);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 1);
    turn_server_input(F.s, &c.t, junk, sizeof junk, F.now);
    turn_server_input(F.s, &c.t, junk, 3, F.now);
    CHECK_INT(F.n_client, 0);
    stun_builder b;
    /* responses from a client are ignored */
    fx_begin(&c, &b, STUN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS);
    CHECK_INT(fx_feed(&F, &c, &b), -1);
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_ERROR);
    CHECK_INT(fx_feed(&F, &c, &b), -1);
    /* unknown method: 400 for a request, nothing for an indication */
    fx_begin(&c, &b, 0x0333, STUN_CLASS_REQUEST);
    CHECK_INT(fx_feed(&F, &c, &b), 400);
    fx_begin(&c, &b, 0x0333, STUN_CLASS_INDICATION);
    CHECK_INT(fx_feed(&F, &c, &b), -1);
    /* a bad FINGERPRINT makes it not STUN: dropped */
    fx_begin(&c, &b, STUN_METHOD_BINDING, STUN_CLASS_REQUEST);
    stun_builder_add_fingerprint(&b);
    int n = stun_builder_finish(&b);
    c.buf[n - 1] ^= 1;
    int before = F.n_client;
    turn_server_input(F.s, &c.t, c.buf, (size_t)n, F.now);
    CHECK_INT(F.n_client, before);
    /* a ChannelData frame with no allocation: dropped */
    uint8_t cd[8] = {0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4};
    turn_server_input(F.s, &c.t, cd, sizeof cd, F.now);
    CHECK_INT(F.n_client, before);
    CHECK_INT(F.n_peer, 0);
    fx_free(&F);
}

/* Thousands of allocations: the tables grow, lookups by 5-tuple and by id stay right, and
 * the timers remove everything at once. */
static void t_many_allocations(void)
{
    fx_init(&F);
    enum { N = 3000 };
    static client c[N];
    for (int i = 0; i < N; i++) {
        char user[16];
        snprintf(user, sizeof user, "u%d", i);
        char ip[32];
        snprintf(ip, sizeof ip, "100.%d.%d.7", 64 + i / 250, i % 250);
        fx_client(&c[i], i % 2 ? TURN_PROTO_TCP : TURN_PROTO_UDP, ip, (uint16_t)(1024 + i), user);
        CHECK_INT(fx_allocate(&F, &c[i]), 0);
    }
    CHECK_INT(fx_stats(&F).allocations, N);
    for (int i = 0; i < N; i += 97) {
        CHECK_INT(fx_refresh(&F, &c[i], 1200), 0);
        CHECK_INT(fx_permit(&F, &c[i], "8.8.8.8", 1), 0);
    }
    /* peer input by id reaches the right client */
    fx_peer_in(&F, 98, "8.8.8.8", 7, "to-97");
    CHECK(fx_addr_eq(&F.out_t.client, &c[97].t.client));
    F.now += 600000;
    /* one tick handles at most 1024 expiries (31 permissions first, their deadline is the
     * earliest), then the deadline is still due and the caller ticks again */
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).allocations, N - (1024 - (N + 96) / 97));
    CHECK(turn_server_next_deadline(F.s) <= F.now);
    int ticks = 1;
    while (turn_server_next_deadline(F.s) <= F.now && ticks < 100) {
        turn_server_tick(F.s, F.now);
        ticks++;
    }
    CHECK_INT(ticks, 3);
    CHECK_INT(fx_stats(&F).allocations, (N + 96) / 97);
    F.now += 600000;
    turn_server_tick(F.s, F.now);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(fx_stats(&F).permissions, 0);
    CHECK_INT(F.closes, N);
    fx_free(&F);
}

int main(void)
{
    TK_RUN(t_new_rejects_bad_config);
    TK_RUN(t_binding);
    TK_RUN(t_challenge_401);
    TK_RUN(t_allocate_success);
    TK_RUN(t_allocate_sha256);
    TK_RUN(t_auth_failures);
    TK_RUN(t_stale_nonce);
    TK_RUN(t_allocate_mismatch_and_retransmit);
    TK_RUN(t_allocate_attribute_errors);
    TK_RUN(t_allocate_families);
    TK_RUN(t_dual_allocation);
    TK_RUN(t_send_unknown_attribute);
    TK_RUN(t_wrong_username_441);
    TK_RUN(t_quota_486);
    TK_RUN(t_global_cap_508);
    TK_RUN(t_refresh_lifetimes);
    TK_RUN(t_lifetime_expiry_tick);
    TK_RUN(t_credential_expiry_caps);
    TK_RUN(t_lifecycle_removal);
    TK_RUN(t_conn_closed);
    TK_RUN(t_ignored_input);
    TK_RUN(t_many_allocations);
    return tk_test_summary();
}
