/* turn: the outward path — per-allocation traffic on both legs, live; the allocation-ended
 * report (key id, customIdentifier, username, transport, family, times, reason, traffic);
 * request, authentication-failure, drop and allocation counters. */
#include "test_turn_fixture.h"

static fake F;

static uint64_t setup(client *c)
{
    fx_init(&F);
    fx_client(c, TURN_PROTO_UDP, "198.51.100.20", 40000, "alice");
    if (fx_allocate(&F, c) != 0)
        return 0;
    return F.last_open_id;
}

static void channeldata(client *c, uint16_t ch, const char *data)
{
    uint8_t buf[256];
    int len =
        stun_channeldata_build(buf, sizeof buf, ch, (const uint8_t *)data, strlen(data), false);
    turn_server_input(F.s, &c->t, buf, (size_t)len, F.now);
}

static void t_live_traffic_both_legs(void)
{
    client c;
    uint64_t id = setup(&c);
    CHECK(id != 0);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5000), 0);
    channeldata(&c, 0x4000, "hello"); /* 4 + 5 bytes on the client leg */
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "abc");
    fx_peer_in(&F, id, "8.8.8.8", 5000, "0123456789"); /* ChannelData: 4 + 10 */
    turn_traffic tr;
    CHECK(turn_server_alloc_traffic(F.s, id, &tr));
    CHECK_INT(tr.peer_tx.packets, 2);
    CHECK_INT(tr.peer_tx.bytes, 8);
    CHECK_INT(tr.client_rx.packets, 2);
    CHECK(tr.client_rx.bytes > 9 + 3); /* the Send indication's framing counts too */
    CHECK_INT(tr.peer_rx.packets, 1);
    CHECK_INT(tr.peer_rx.bytes, 10);
    CHECK_INT(tr.client_tx.packets, 1);
    CHECK_INT(tr.client_tx.bytes, 14);
    turn_stats st;
    turn_server_stats_at(F.s, F.now, &st);
    CHECK_INT(st.traffic.peer_tx.bytes, 8);
    CHECK_INT(st.traffic.client_tx.bytes, 14);
    CHECK_INT(st.allocs_active_1m, 1);
    turn_server_stats_at(F.s, F.now + 61000, &st);
    CHECK_INT(st.allocs_active_1m, 0);
    CHECK_INT(F.n_ended, 0); /* counted while the allocation is still open */
    fx_free(&F);
}

static void t_end_report(void)
{
    client c;
    uint64_t id = setup(&c);
    CHECK(id != 0);
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "abcd");
    int64_t start = F.now;
    F.now += 5000;
    CHECK_INT(fx_refresh(&F, &c, 0), 0);
    CHECK_INT(F.n_ended, 1);
    CHECK_INT(F.last_end.alloc_id, id);
    CHECK_STR(F.last_end_key, "key1");
    CHECK_STR(F.last_end_cid, "cid-1");
    CHECK_INT(F.last_end.reason, TURN_END_CLIENT);
    CHECK_INT(F.last_end.transport, TURN_PROTO_UDP);
    CHECK_INT(F.last_end.family, AF_INET);
    CHECK_INT(F.last_end.start_ms, start);
    CHECK_INT(F.last_end.end_ms, start + 5000);
    CHECK_INT(F.last_end.traffic.peer_tx.bytes, 4);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.allocs_created, 1);
    CHECK_INT(st.allocs_ended[TURN_END_CLIENT], 1);
    CHECK_INT(st.allocs_by[TURN_PROTO_UDP][0], 0);
    fx_free(&F);
    CHECK_INT(F.n_ended, 1); /* nothing left to report */
}

static void t_end_reasons(void)
{
    client c, d, e;
    CHECK(setup(&c) != 0);
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.21", 40000, "kate");
    fx_client(&e, TURN_PROTO_TCP, "198.51.100.22", 40000, "bob");
    e.t.conn_id = 7;
    CHECK_INT(fx_allocate(&F, &d), 0);
    CHECK_INT(fx_allocate(&F, &e), 0);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.allocs_by[TURN_PROTO_UDP][0], 2);
    CHECK_INT(st.allocs_by[TURN_PROTO_TCP][0], 1);
    CHECK_INT(turn_server_key_deleted(F.s, "key2", F.now), 1);
    CHECK_INT(F.last_end.reason, TURN_END_KEY_DELETED);
    CHECK_STR(F.last_end_cid, "cid-k");
    turn_server_conn_closed(F.s, &e.t, F.now);
    CHECK_INT(F.last_end.reason, TURN_END_CONN_CLOSED);
    CHECK_INT(F.last_end.transport, TURN_PROTO_TCP);
    turn_server_tick(F.s, F.now + 3600 * 1000 + 1);
    CHECK_INT(F.last_end.reason, TURN_END_EXPIRED);
    st = fx_stats(&F);
    CHECK_INT(st.allocs_ended[TURN_END_KEY_DELETED], 1);
    CHECK_INT(st.allocs_ended[TURN_END_CONN_CLOSED], 1);
    CHECK_INT(st.allocs_ended[TURN_END_EXPIRED], 1);
    CHECK_INT(st.allocs_by[TURN_PROTO_UDP][0] + st.allocs_by[TURN_PROTO_TCP][0], 0);
    CHECK_INT(F.n_ended, 3);
    fx_free(&F);
}

static void t_request_and_auth_counters(void)
{
    client c;
    CHECK(setup(&c) != 0);
    turn_stats st = fx_stats(&F);
    /* the fixture's challenge (an unsigned Refresh: 401) and the Allocate */
    CHECK_INT(st.requests[TURN_PROTO_UDP][TURN_M_REFRESH][TURN_R_401], 1);
    CHECK_INT(st.requests[TURN_PROTO_UDP][TURN_M_ALLOCATE][TURN_R_401], 0);
    CHECK_INT(st.requests[TURN_PROTO_UDP][TURN_M_ALLOCATE][TURN_R_SUCCESS], 1);
    CHECK_INT(F.n_auth_failed, 0); /* a challenge is not a failure */
    F.auth_rc = TURN_AUTH_REVOKED;
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 401);
    CHECK_INT(F.last_auth_reason, TURN_AF_REVOKED);
    F.auth_rc = TURN_AUTH_UNKNOWN_KEY;
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 401);
    F.auth_rc = 0;
    stun_builder b;
    fx_begin(&c, &b, STUN_METHOD_CREATE_PERMISSION, STUN_CLASS_REQUEST);
    fx_sign(&c, &b, c.user, FX_REALM, "wrong-password");
    CHECK_INT(fx_feed(&F, &c, &b), 401);
    st = fx_stats(&F);
    CHECK_INT(st.auth_failures[TURN_AF_REVOKED], 1);
    CHECK_INT(st.auth_failures[TURN_AF_UNKNOWN_KEY], 1);
    CHECK_INT(st.auth_failures[TURN_AF_BAD_INTEGRITY], 1);
    CHECK_INT(F.n_auth_failed, 3);
    CHECK(st.requests[TURN_PROTO_UDP][TURN_M_CREATE_PERMISSION][TURN_R_401] >= 3);
    fx_free(&F);
}

static void t_drops(void)
{
    client c, d;
    uint64_t id = setup(&c);
    CHECK(id != 0);
    fx_send_ind(&F, &c, "8.8.8.8", 5000, "x"); /* no permission */
    fx_client(&d, TURN_PROTO_UDP, "198.51.100.30", 40000, "zed");
    fx_send_ind(&F, &d, "8.8.8.8", 5000, "x"); /* no allocation */
    channeldata(&c, 0x4001, "x");              /* no channel */
    fx_peer_in(&F, id, "9.9.9.9", 1, "x");     /* no permission, peer side */
    CHECK_INT(fx_permit(&F, &c, "8.8.8.8", 1), 0);
    fx_send_ind(&F, &c, "8.8.8.8", 0, "x"); /* port 0: the peer policy */
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.drops[TURN_DROP_NO_PERMISSION], 2);
    CHECK_INT(st.drops[TURN_DROP_NO_ALLOCATION], 1);
    CHECK_INT(st.drops[TURN_DROP_NO_CHANNEL], 1);
    CHECK_INT(st.drops[TURN_DROP_PEER_POLICY], 1);
    CHECK_INT(st.peer_denials[PEER_DENY_INVALID], 1);
    CHECK_INT(fx_permit(&F, &c, "10.0.0.1", 1), 403); /* the built-in deny list */
    CHECK_INT(fx_bind(&F, &c, 0x4000, "192.168.1.1", 53), 403);
    st = fx_stats(&F);
    CHECK_INT(st.peer_denials[PEER_DENY_BUILTIN], 2);
    CHECK_INT(st.requests[TURN_PROTO_UDP][TURN_M_CREATE_PERMISSION][TURN_R_403], 1);
    CHECK_INT(F.n_peer, 0);
    fx_free(&F);
}

typedef struct usage_seen {
    int calls;
    turn_usage sum;
    char user[64];
} usage_seen;

static void on_usage(void *arg, const turn_alloc_report *r, const turn_usage *u)
{
    usage_seen *seen = arg;
    seen->calls++;
    CHECK_INT(r->reason, -1);
    seen->sum.egress_bytes += u->egress_bytes;
    seen->sum.ingress_bytes += u->ingress_bytes;
    seen->sum.alloc_ms += u->alloc_ms;
    snprintf(seen->user, sizeof seen->user, "%.*s", (int)r->username_len, r->username);
}

/* Usage progress: each report holds only what accrued since the last one; the end report
 * holds the rest, so the reports add up to the allocation's totals exactly. */
static void t_usage_progress_adds_up(void)
{
    client c;
    uint64_t id = setup(&c);
    CHECK(id != 0);
    int64_t t0 = F.now;
    CHECK_INT(fx_bind(&F, &c, 0x4000, "8.8.8.8", 5000), 0);
    channeldata(&c, 0x4000, "hello");                  /* ingress 9 */
    fx_peer_in(&F, id, "8.8.8.8", 5000, "0123456789"); /* egress 14 */
    usage_seen seen = {0};
    turn_server_usage(F.s, t0 + 1000, on_usage, &seen);
    CHECK_INT(seen.calls, 1);
    CHECK_STR(seen.user, "alice");
    CHECK_INT(seen.sum.egress_bytes, 14);
    CHECK_INT(seen.sum.ingress_bytes, 9);
    CHECK_INT(seen.sum.alloc_ms, 1000);
    /* nothing new: zero bytes, only time */
    usage_seen again = {0};
    turn_server_usage(F.s, t0 + 1500, on_usage, &again);
    CHECK_INT(again.sum.egress_bytes, 0);
    CHECK_INT(again.sum.ingress_bytes, 0);
    CHECK_INT(again.sum.alloc_ms, 500);
    F.now = t0 + 2000;
    fx_peer_in(&F, id, "8.8.8.8", 5000, "xy"); /* egress 4 + 2 */
    CHECK_INT(fx_refresh(&F, &c, 0), 0);       /* ends it */
    CHECK_INT(F.n_ended, 1);
    CHECK_INT(F.last_end.unreported.egress_bytes, 6);
    CHECK_INT(F.last_end.unreported.ingress_bytes, 0);
    CHECK_INT(F.last_end.unreported.alloc_ms, 500);
    CHECK_INT(F.last_end.traffic.client_tx.bytes, 14 + 6);
    usage_seen after = {0};
    turn_server_usage(F.s, t0 + 3000, on_usage, &after);
    CHECK_INT(after.calls, 0);
    fx_free(&F);
}

static void t_names(void)
{
    CHECK_STR(turn_auth_fail_name(TURN_AF_STALE_NONCE), "stale_nonce");
    CHECK_STR(turn_end_reason_name(TURN_END_REVOKED), "revoked");
    CHECK_STR(turn_method_name(TURN_M_CHANNEL_BIND), "channel_bind");
    CHECK_STR(turn_result_name(TURN_R_486), "486");
    CHECK_STR(turn_drop_name(TURN_DROP_PEER_POLICY), "peer_policy");
    CHECK_STR(turn_drop_name(99), "?");
    CHECK_STR(peer_deny_name(PEER_DENY_OPERATOR), "operator");
    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("8.8.8.0/24", &c), 0);
    CHECK_INT(peer_policy_add_deny(&p, &c), 0);
    struct sockaddr_storage ss;
    CHECK_INT(peer_deny_class(&p, fx_sa(&ss, "8.8.8.8", 53)), PEER_DENY_OPERATOR);
    CHECK_INT(peer_deny_class(&p, fx_sa(&ss, "127.0.0.1", 53)), PEER_DENY_BUILTIN);
    CHECK_INT(peer_deny_class(&p, fx_sa(&ss, "1.1.1.1", 0)), PEER_DENY_INVALID);
    CHECK_INT(peer_deny_class(&p, fx_sa(&ss, "1.1.1.1", 53)), PEER_ALLOWED);
    CHECK(peer_allowed(&p, fx_sa(&ss, "1.1.1.1", 53)));
    peer_policy_dispose(&p);
}

int main(void)
{
    TK_RUN(t_live_traffic_both_legs);
    TK_RUN(t_end_report);
    TK_RUN(t_end_reasons);
    TK_RUN(t_request_and_auth_counters);
    TK_RUN(t_drops);
    TK_RUN(t_names);
    TK_RUN(t_usage_progress_adds_up);
    return tk_test_summary();
}
