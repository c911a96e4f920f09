/* RFC 6062 in the TURN core (src/turn/tcp_relay.c) with fake TCP ops: TCP allocations,
 * Connect and its delayed answer, ConnectionBind, ConnectionAttempt, the 30 s timers, caps,
 * traffic accounting and the lifecycle (every peer connection closed with its allocation). */
#include "tk_test.h"
#include "test_turn_fixture.h"

#define MAX_CIDS 256

static struct {
    int tcp_opens, connects, connect_rc, binds, closes;
    uint32_t last_connect_cid, last_bind_cid, last_closed;
    uint64_t last_connect_alloc;
    struct sockaddr_storage last_connect_peer;
    turn_5tuple last_bind_t;
    uint32_t live[MAX_CIDS]; /* cids the I/O layer holds (connecting, pending or bound) */
    size_t n_live;
} T;

static void live_add(uint32_t cid)
{
    if (T.n_live < MAX_CIDS)
        T.live[T.n_live++] = cid;
}

static bool live_del(uint32_t cid)
{
    for (size_t i = 0; i < T.n_live; i++)
        if (T.live[i] == cid) {
            T.live[i] = T.live[--T.n_live];
            return true;
        }
    return false;
}

static int t_tcp_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                      struct sockaddr_storage *relayed)
{
    T.tcp_opens++;
    return fx_relay_open(ctx, id, family, t, relayed);
}

static int t_connect(void *ctx, uint64_t alloc_id, uint32_t cid, const struct sockaddr *peer)
{
    (void)ctx;
    T.connects++;
    T.last_connect_cid = cid;
    T.last_connect_alloc = alloc_id;
    memset(&T.last_connect_peer, 0, sizeof T.last_connect_peer);
    memcpy(&T.last_connect_peer, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (T.connect_rc)
        return T.connect_rc;
    live_add(cid);
    return 0;
}

static void t_close(void *ctx, uint32_t cid)
{
    (void)ctx;
    if (!live_del(cid))
        abort(); /* closing what the I/O layer does not hold */
    T.closes++;
    T.last_closed = cid;
}

static void t_bind(void *ctx, const turn_5tuple *t, uint32_t cid)
{
    (void)ctx;
    T.binds++;
    T.last_bind_cid = cid;
    T.last_bind_t = *t;
}

static void init_tcp(fake *f, void (*tweak)(turn_config *))
{
    memset(&T, 0, sizeof T);
    fx_init_cfg(f, true, tweak);
    turn_server_free(f->s);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = fx_auth,
                    .alloc_ended = fx_alloc_ended,
                    .ctx = f,
                    .tcp_relay_open = t_tcp_open,
                    .peer_connect = t_connect,
                    .peer_close = t_close,
                    .data_bind = t_bind};
    f->s = turn_server_new(&f->cfg, &ops);
}

static void add_tcp(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_TCP);
}

static void add_tcp_even(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_TCP);
    stun_builder_add(b, STUN_ATTR_EVEN_PORT, "\0", 1);
}

static void add_cid(stun_builder *b, void *arg)
{
    stun_builder_add_u32(b, STUN_ATTR_CONNECTION_ID, *(uint32_t *)arg);
}

static void add_sctp(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, 132);
}

static int tcp_allocate(fake *f, client *c)
{
    return fx_req(f, c, STUN_METHOD_ALLOCATE, add_tcp, NULL);
}

static int do_connect(fake *f, client *c, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    fx_addr(&ss, ip, port);
    return fx_req(f, c, STUN_METHOD_CONNECT, fx_add_peer, &ss);
}

static int do_bind(fake *f, client *c, uint32_t cid)
{
    return fx_req(f, c, STUN_METHOD_CONNECTION_BIND, add_cid, &cid);
}

/* The CONNECTION-ID of the last message to a client (0 if none). */
static uint32_t last_cid(fake *f)
{
    uint32_t v = 0;
    if (!f->rm_ok || stun_get_u32(&f->rm, STUN_ATTR_CONNECTION_ID, &v) != STUN_OK)
        return 0;
    return v;
}

/* A control connection with a TCP allocation and a connected, answered Connect to
 * 127.0.0.1:port; returns the cid. */
static uint32_t connected(fake *f, client *c, uint16_t port)
{
    if (do_connect(f, c, "127.0.0.1", port) != -1) /* answered later */
        return 0;
    uint32_t cid = T.last_connect_cid;
    turn_server_peer_connected(f->s, cid, true, f->now);
    return last_cid(f) == cid && f->rm.cls == STUN_CLASS_SUCCESS ? cid : 0;
}

static void t_allocate_rules(void)
{
    fake f;
    client u, c, e;
    init_tcp(&f, NULL);
    fx_client(&u, TURN_PROTO_UDP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &u), 400); /* RFC 6062 §5.1: over UDP */
    fx_client(&e, TURN_PROTO_TCP, "198.51.100.1", 4001, "alice");
    CHECK_INT(fx_req(&f, &e, STUN_METHOD_ALLOCATE, add_tcp_even, NULL), 400);
    CHECK_INT(T.tcp_opens, 0);
    CHECK_INT(fx_req(&f, &e, STUN_METHOD_ALLOCATE, add_sctp, NULL), 442);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4002, "alice");
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), 437); /* no allocation yet */
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK_INT(T.tcp_opens, 1);
    CHECK_INT(f.opens, 1);
    CHECK_INT(fx_bind(&f, &c, 0x4000, "127.0.0.1", 5000), 400); /* no channels on TCP */
    int before = f.n_peer;
    fx_send_ind(&f, &c, "127.0.0.1", 5000, "x");
    CHECK_INT(f.n_peer, before); /* Send is dropped */
    fx_free(&f);
    /* without the TCP ops: 442 as before */
    fx_init(&f);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4003, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 442);
    fx_free(&f);
}

static void t_connect_answers(void)
{
    fake f;
    client c, u;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), -1); /* no answer until connected */
    CHECK_INT(T.connects, 1);
    uint32_t cid = T.last_connect_cid;
    CHECK(cid != 0);
    uint8_t txid[STUN_TXID_SIZE];
    memcpy(txid, c.txid, sizeof txid);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), 446); /* pending */
    turn_server_peer_connected(f.s, cid, true, f.now);
    CHECK(f.rm_ok && f.rm.cls == STUN_CLASS_SUCCESS && f.rm.method == STUN_METHOD_CONNECT);
    CHECK(memcmp(f.rm.txid, txid, STUN_TXID_SIZE) == 0); /* answers that Connect */
    CHECK_INT(last_cid(&f), cid);
    uint8_t key[32];
    size_t kl = fx_key(&c, "alice", key);
    CHECK_INT(stun_check_integrity(&f.rm, key, kl), STUN_OK);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), 446); /* live */
    CHECK_INT(do_connect(&f, &c, "10.1.2.3", 5000), 403);  /* private range: denied */
    CHECK_INT(do_connect(&f, &c, "::1", 5000), 443);       /* no IPv6 relay */
    CHECK_INT(fx_req(&f, &c, STUN_METHOD_CONNECT, NULL, NULL), 400);
    T.connect_rc = -1;
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5001), 447); /* failed at once */
    T.connect_rc = 0;
    uint32_t before = T.last_connect_cid;
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5002), -1);
    CHECK(T.last_connect_cid != before);
    turn_server_peer_connected(f.s, T.last_connect_cid, false, f.now); /* I/O closed it */
    live_del(T.last_connect_cid);
    CHECK_INT(f.rm.cls, STUN_CLASS_ERROR);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5002), -1); /* the failed one is gone */
    fx_client(&u, TURN_PROTO_TCP, "198.51.100.1", 4001, "bob");
    CHECK_INT(fx_allocate(&f, &u), 0);
    CHECK_INT(do_connect(&f, &u, "127.0.0.1", 5000), 400); /* a UDP allocation */
    fx_free(&f);
    CHECK_INT((int)T.n_live, 0); /* every peer connection closed with the server */
}

/* RFC 6062 §5.3: a Connect installs the permission for its peer only when it succeeds. One
 * that fails at once, fails later, times out or is closed while connecting leaves none, so
 * that peer cannot then connect in (the fuzz_turn_tcp crash: failed at once, then accepted). */
static void t_failed_connect_no_permission(void)
{
    fake f;
    client c;
    struct sockaddr_storage p;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint64_t id = f.last_open_id;
    const struct sockaddr *peer = fx_sa(&p, "127.0.0.1", 6000);
    T.connect_rc = -1;
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), 447); /* failed at once */
    T.connect_rc = 0;
    CHECK_INT(turn_server_peer_accepted(f.s, id, peer, f.now), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5001), -1);
    uint32_t cid = T.last_connect_cid;
    CHECK_INT(turn_server_peer_accepted(f.s, id, peer, f.now), 0); /* not while connecting */
    live_del(cid);
    turn_server_peer_connected(f.s, cid, false, f.now); /* failed later */
    CHECK_INT(turn_server_peer_accepted(f.s, id, peer, f.now), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5002), -1);
    f.now += 30000;
    turn_server_tick(f.s, f.now); /* timed out */
    CHECK_INT(turn_server_peer_accepted(f.s, id, peer, f.now), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5003), -1);
    cid = T.last_connect_cid;
    live_del(cid);
    turn_server_tcp_closed(f.s, cid, f.now); /* closed while connecting */
    CHECK_INT(turn_server_peer_accepted(f.s, id, peer, f.now), 0);
    CHECK(connected(&f, &c, 5004) != 0); /* a successful one installs it */
    cid = turn_server_peer_accepted(f.s, id, peer, f.now);
    CHECK(cid != 0);
    live_add(cid);
    fx_free(&f);
    CHECK_INT((int)T.n_live, 0);
}

static void t_connect_timeout(void)
{
    fake f;
    client c;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), -1);
    uint32_t cid = T.last_connect_cid;
    f.now += 29000;
    turn_server_tick(f.s, f.now);
    CHECK_INT(T.closes, 0);
    int msgs = f.n_client;
    f.now += 1000;
    turn_server_tick(f.s, f.now);
    CHECK_INT(T.closes, 1);
    CHECK_INT(T.last_closed, cid);
    CHECK_INT(f.n_client, msgs + 1);
    int code = 0;
    const uint8_t *reason;
    size_t rl;
    CHECK(f.rm_ok && f.rm.cls == STUN_CLASS_ERROR);
    stun_get_error_code(&f.rm, &code, &reason, &rl);
    CHECK_INT(code, 447);
    turn_server_peer_connected(f.s, cid, true, f.now); /* too late: ignored */
    CHECK_INT(f.n_client, msgs + 1);
    fx_free(&f);
}

static void t_connection_bind(void)
{
    fake f;
    client c, d, d2, x, u;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), -1);
    uint32_t cid = T.last_connect_cid;
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4100, "alice");
    CHECK_INT(do_bind(&f, &d, cid), 400); /* still connecting */
    turn_server_peer_connected(f.s, cid, true, f.now);
    CHECK_INT(do_bind(&f, &d, cid + 256), 400); /* unknown */
    fx_client(&x, TURN_PROTO_TCP, "198.51.100.1", 4101, "mallory");
    CHECK_INT(do_bind(&f, &x, cid), 441); /* another credential */
    CHECK_INT(do_bind(&f, &c, cid), 400); /* the control connection itself */
    fx_client(&u, TURN_PROTO_UDP, "198.51.100.1", 4102, "alice");
    CHECK_INT(do_bind(&f, &u, cid), 400);
    CHECK_INT(T.binds, 0);
    CHECK_INT(do_bind(&f, &d, cid), 0);
    CHECK_INT(T.binds, 1);
    CHECK_INT(T.last_bind_cid, cid);
    CHECK(T.last_bind_t.conn_id == d.t.conn_id);
    fx_client(&d2, TURN_PROTO_TCP, "198.51.100.1", 4103, "alice");
    CHECK_INT(do_bind(&f, &d2, cid), 400); /* already bound */
    f.now += 60000;
    turn_server_tick(f.s, f.now);
    CHECK_INT(T.closes, 0); /* a bound pair has no timer */
    fx_free(&f);
}

static void t_bind_timeout(void)
{
    fake f;
    client c, d;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint32_t cid = connected(&f, &c, 5000);
    CHECK(cid != 0);
    f.now += 30000;
    turn_server_tick(f.s, f.now);
    CHECK_INT(T.closes, 1);
    CHECK_INT(T.last_closed, cid);
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4100, "alice");
    CHECK_INT(do_bind(&f, &d, cid), 400); /* timed out */
    fx_free(&f);
}

static void t_peer_accepted(void)
{
    fake f;
    client c, d;
    struct sockaddr_storage p;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint64_t id = f.last_open_id;
    CHECK_INT(turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6000), f.now), 0);
    CHECK_INT(fx_permit(&f, &c, "127.0.0.1", 0), 0);
    CHECK_INT(turn_server_peer_accepted(f.s, id + 99, fx_sa(&p, "127.0.0.1", 6000), f.now), 0);
    int msgs = f.n_client;
    uint32_t cid = turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6000), f.now);
    CHECK(cid != 0);
    CHECK_INT(f.n_client, msgs + 1);
    CHECK(f.rm_ok && f.rm.cls == STUN_CLASS_INDICATION &&
          f.rm.method == STUN_METHOD_CONNECTION_ATTEMPT);
    CHECK(f.out_t.conn_id == c.t.conn_id);
    CHECK_INT(last_cid(&f), cid);
    struct sockaddr_storage got;
    CHECK_INT(stun_get_xor_address(&f.rm, STUN_ATTR_XOR_PEER_ADDRESS, &got), STUN_OK);
    CHECK(fx_addr_eq(&got, &p));
    live_add(cid); /* the I/O layer holds it now */
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4100, "alice");
    CHECK_INT(do_bind(&f, &d, cid), 0);
    CHECK_INT(T.last_bind_cid, cid);
    /* a second peer, never bound: closed after 30 s */
    uint32_t cid2 = turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6001), f.now);
    CHECK(cid2 != 0 && cid2 != cid);
    live_add(cid2);
    f.now += 30000;
    turn_server_tick(f.s, f.now);
    CHECK_INT(T.last_closed, cid2);
    fx_free(&f);
    CHECK_INT((int)T.n_live, 0);
}

static void tweak_caps(turn_config *cfg)
{
    cfg->max_tcp_per_alloc = 2;
    cfg->max_tcp_conns = 3;
}

static void t_caps(void)
{
    fake f;
    client c, c2;
    struct sockaddr_storage p;
    init_tcp(&f, tweak_caps);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint64_t id = f.last_open_id;
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), -1);
    CHECK_INT(fx_permit(&f, &c, "127.0.0.1", 0), 0);
    uint32_t cid = turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6000), f.now);
    CHECK(cid != 0);
    live_add(cid);
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5001), 508); /* per allocation */
    CHECK_INT(turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6001), f.now), 0);
    fx_client(&c2, TURN_PROTO_TCP, "198.51.100.1", 4001, "bob");
    CHECK_INT(tcp_allocate(&f, &c2), 0);
    CHECK_INT(do_connect(&f, &c2, "127.0.0.1", 5000), -1);
    CHECK_INT(do_connect(&f, &c2, "127.0.0.1", 5001), 508); /* per server: 3 */
    /* one closes (the I/O layer reports it): room again */
    live_del(cid);
    turn_server_tcp_closed(f.s, cid, f.now);
    CHECK_INT(do_connect(&f, &c2, "127.0.0.1", 5001), -1);
    fx_free(&f);
    CHECK_INT((int)T.n_live, 0);
}

static void t_traffic(void)
{
    fake f;
    client c, d;
    init_tcp(&f, NULL);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint64_t id = f.last_open_id;
    uint32_t cid = connected(&f, &c, 5000);
    turn_server_tcp_data(f.s, cid, true, 100, f.now); /* not bound: not counted */
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4100, "alice");
    CHECK_INT(do_bind(&f, &d, cid), 0);
    turn_server_tcp_data(f.s, cid, true, 1000, f.now);
    turn_server_tcp_data(f.s, cid, false, 300, f.now);
    turn_server_tcp_data(f.s, cid, false, 200, f.now);
    turn_traffic tr;
    CHECK(turn_server_alloc_traffic(f.s, id, &tr));
    CHECK_INT((int)tr.client_rx.bytes, 1000);
    CHECK_INT((int)tr.peer_tx.bytes, 1000);
    CHECK_INT((int)tr.peer_rx.bytes, 500);
    CHECK_INT((int)tr.client_tx.bytes, 500);
    turn_stats st = fx_stats(&f);
    CHECK_INT((int)st.traffic.peer_tx.bytes, 1000);
    CHECK_INT(fx_refresh(&f, &c, 0), 0);
    CHECK_INT(f.n_ended, 1);
    CHECK_INT((int)f.last_end.traffic.client_tx.bytes, 500); /* in the usage record */
    CHECK_INT(T.last_closed, cid);
    fx_free(&f);
}

static void t_lifecycle(void)
{
    fake f;
    client c, d;
    struct sockaddr_storage p;
    init_tcp(&f, NULL);
    /* connecting, pending, bound and an accepted one: all closed with the allocation */
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4000, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint64_t id = f.last_open_id;
    CHECK_INT(do_connect(&f, &c, "127.0.0.1", 5000), -1);
    CHECK(connected(&f, &c, 5001) != 0);
    uint32_t b = connected(&f, &c, 5002);
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4100, "alice");
    CHECK_INT(do_bind(&f, &d, b), 0);
    live_add(turn_server_peer_accepted(f.s, id, fx_sa(&p, "127.0.0.1", 6000), f.now));
    CHECK_INT((int)T.n_live, 4);
    turn_server_conn_closed(f.s, &c.t, f.now); /* the control connection closed */
    CHECK_INT((int)T.n_live, 0);
    CHECK_INT(T.closes, 4);
    /* key deletion */
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4001, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK(connected(&f, &c, 5000) != 0);
    CHECK_INT(turn_server_key_deleted(f.s, "key1", f.now), 1);
    CHECK_INT((int)T.n_live, 0);
    /* revocation and expiry */
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4002, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    CHECK(connected(&f, &c, 5000) != 0);
    CHECK_INT(turn_server_credential_revoked(f.s, (const uint8_t *)"alice", 5, f.now), 1);
    CHECK_INT((int)T.n_live, 0);
    fx_client(&c, TURN_PROTO_TCP, "198.51.100.1", 4003, "alice");
    CHECK_INT(tcp_allocate(&f, &c), 0);
    uint32_t e = connected(&f, &c, 5000);
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.1", 4101, "alice");
    CHECK_INT(do_bind(&f, &d, e), 0);
    f.now += 601000;
    turn_server_tick(f.s, f.now);
    CHECK_INT((int)T.n_live, 0);
    fx_free(&f);
}

int main(void)
{
    TK_RUN(t_allocate_rules);
    TK_RUN(t_connect_answers);
    TK_RUN(t_failed_connect_no_permission);
    TK_RUN(t_connect_timeout);
    TK_RUN(t_connection_bind);
    TK_RUN(t_bind_timeout);
    TK_RUN(t_peer_accepted);
    TK_RUN(t_caps);
    TK_RUN(t_traffic);
    TK_RUN(t_lifecycle);
    return tk_test_summary();
}
