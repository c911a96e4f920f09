/* Key policies in the TURN core (issue 14 §4): a tripped end_allocations budget refuses
 * Allocate with 486 "Budget Exceeded", the per-credential allocation quota (in the core and
 * through quota_acquire's limit), turn_server_budget_tripped ending a key's allocations by
 * customIdentifier, and the per-allocation bandwidth cap (token buckets, fake clock). */
#include "tk_test.h"
#include "test_turn_fixture.h"

static fake F;

/* The reason phrase of the last error response. */
static bool reason_is(const fake *f, const char *want)
{
    int code = 0;
    const uint8_t *reason = NULL;
    size_t rl = 0;
    if (stun_get_error_code(&f->rm, &code, &reason, &rl) != STUN_OK)
        return false;
    return rl == strlen(want) && memcmp(reason, want, rl) == 0;
}

/* ---- quotas through ops: what limit the core passes -------------------------------------- */

static struct {
    uint32_t last_limit;
    int calls, held;
} Q;

static int q_acquire(void *ctx, const uint8_t *user, size_t len, uint32_t limit)
{
    (void)ctx;
    (void)user;
    (void)len;
    Q.calls++;
    Q.last_limit = limit;
    if ((uint32_t)Q.held >= (limit ? limit : 5))
        return TURN_QUOTA_USER;
    Q.held++;
    return TURN_QUOTA_OK;
}

static void q_release(void *ctx, const uint8_t *user, size_t len)
{
    (void)ctx;
    (void)user;
    (void)len;
    Q.held--;
}

/* Usernames "KEY/CID/N": TURN key KEY, customIdentifier CID (may be empty), unless
 * Cid_override is set (then every credential carries that one). */
static const char *Cid_override;

static int cid_auth(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                    turn_auth_info *info)
{
    (void)ctx;
    char u[64];
    if (len >= sizeof u)
        return TURN_AUTH_REJECT;
    memcpy(u, user, len);
    u[len] = '\0';
    char *cid = strchr(u, '/');
    char *n = cid ? strchr(cid + 1, '/') : NULL;
    if (!n)
        return TURN_AUTH_REJECT;
    *cid++ = '\0';
    *n = '\0';
    snprintf(info->key_id, sizeof info->key_id, "%.32s", u);
    snprintf(info->custom_id, sizeof info->custom_id, "%s", Cid_override ? Cid_override : cid);
    info->expires = now + 86400;
    strcpy(password, FX_PASSWORD);
    return TURN_AUTH_OK;
}

typedef int (*auth_fn)(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                       turn_auth_info *info);

/* f with a server whose auth / quota ops are replaced (NULL: the fixture's / none). */
static void init_with(fake *f, auth_fn auth, bool quota_ops)
{
    fx_init_cfg(f, true, NULL);
    turn_server_free(f->s);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = auth ? auth : fx_auth,
                    .alloc_ended = fx_alloc_ended,
                    .quota_acquire = quota_ops ? q_acquire : NULL,
                    .quota_release = quota_ops ? q_release : NULL,
                    .ctx = f};
    f->s = turn_server_new(&f->cfg, &ops);
}

/* ---- budget trips and quotas ------------------------------------------------------------- */

static void t_budget_blocked_486(void)
{
    fx_init(&F);
    client c, d;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    fx_client(&d, TURN_PROTO_TCP, "198.51.100.21", 41001, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    F.budget_blocked = true;
    int opens = F.opens;
    CHECK_INT(fx_allocate(&F, &d), 486);
    CHECK(reason_is(&F, "Budget Exceeded"));
    CHECK(F.rm.mi_off != 0); /* an authenticated answer */
    CHECK_INT(F.opens, opens);
    CHECK_INT(fx_stats(&F).allocations, 1);
    CHECK_INT(fx_stats(&F).requests[TURN_PROTO_TCP][TURN_M_ALLOCATE][TURN_R_486], 1);
    /* the live allocation goes on (turn_server_budget_tripped is what ends it) */
    CHECK_INT(fx_refresh(&F, &c, 600), 0);
    F.budget_blocked = false;
    CHECK_INT(fx_allocate(&F, &d), 0);
    fx_free(&F);
}

static void t_budget_blocked_before_quota(void)
{
    memset(&Q, 0, sizeof Q);
    init_with(&F, NULL, true);
    CHECK(F.s);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    F.budget_blocked = true;
    CHECK_INT(fx_allocate(&F, &c), 486);
    CHECK(reason_is(&F, "Budget Exceeded"));
    CHECK_INT(Q.calls, 0); /* no quota taken for a refused Allocate */
    F.budget_blocked = false;
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(Q.held, 1);
    fx_free(&F);
    CHECK_INT(Q.held, 0);
}

static void t_alloc_quota_in_core(void)
{
    fx_init(&F);
    F.alloc_quota = 2;
    client c[4];
    for (int i = 0; i < 4; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), "alice");
    CHECK_INT(fx_allocate(&F, &c[0]), 0);
    CHECK_INT(fx_allocate(&F, &c[1]), 0);
    CHECK_INT(fx_allocate(&F, &c[2]), 486);
    CHECK(reason_is(&F, "Allocation Quota Reached")); /* the quota keeps its phrase */
    client b;
    fx_client(&b, TURN_PROTO_UDP, "198.51.100.20", 42000, "bob"); /* per credential */
    CHECK_INT(fx_allocate(&F, &b), 0);
    CHECK_INT(fx_refresh(&F, &c[0], 0), 0);
    CHECK_INT(fx_allocate(&F, &c[2]), 0);
    F.alloc_quota = 0; /* no policy: cfg.user_quota (10) */
    CHECK_INT(fx_allocate(&F, &c[3]), 0);
    fx_free(&F);
}

static void quota_one(turn_config *cfg)
{
    cfg->user_quota = 1;
}

/* A policy's quota replaces the server's, also upwards. */
static void t_alloc_quota_above_default(void)
{
    fx_init_cfg(&F, true, quota_one);
    client c[4];
    for (int i = 0; i < 4; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), "alice");
    CHECK_INT(fx_allocate(&F, &c[0]), 0);
    CHECK_INT(fx_allocate(&F, &c[1]), 486);
    F.alloc_quota = 3;
    CHECK_INT(fx_allocate(&F, &c[1]), 0);
    CHECK_INT(fx_allocate(&F, &c[2]), 0);
    CHECK_INT(fx_allocate(&F, &c[3]), 486);
    fx_free(&F);
}

static void t_alloc_quota_through_ops(void)
{
    memset(&Q, 0, sizeof Q);
    init_with(&F, NULL, true);
    F.alloc_quota = 2;
    client c[3];
    for (int i = 0; i < 3; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), "alice");
    CHECK_INT(fx_allocate(&F, &c[0]), 0);
    CHECK_INT(Q.last_limit, 2);
    CHECK_INT(fx_allocate(&F, &c[1]), 0);
    CHECK_INT(fx_allocate(&F, &c[2]), 486);
    CHECK(reason_is(&F, "Allocation Quota Reached"));
    F.alloc_quota = 0;
    CHECK_INT(fx_allocate(&F, &c[2]), 0); /* the caller's default (5 here) */
    CHECK_INT(Q.last_limit, 0);
    fx_free(&F);
    CHECK_INT(Q.held, 0);
}

/* ---- turn_server_budget_tripped ---------------------------------------------------------- */

static void t_budget_tripped_by_cid(void)
{
    init_with(&F, cid_auth, false);
    CHECK(F.s);
    static const char *const users[] = {"ka/x/1", "ka/x/1", "ka/x/2", "ka/y/1", "ka//1", "kb/x/1"};
    client c[6];
    for (int i = 0; i < 6; i++) {
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), users[i]);
        CHECK_INT(fx_allocate(&F, &c[i]), 0);
    }
    CHECK_INT(turn_server_budget_tripped(F.s, "ka", "z", F.now), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "kb", "y", F.now), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "kc", NULL, F.now), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "", NULL, F.now), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, NULL, NULL, F.now), 0);
    CHECK_INT(fx_stats(&F).allocations, 6);
    F.now += 1000;
    CHECK_INT(turn_server_budget_tripped(F.s, "ka", "x", F.now), 3);
    turn_stats st = fx_stats(&F);
    CHECK_INT(st.allocations, 3);
    CHECK_INT(st.allocs_ended[TURN_END_BUDGET], 3);
    CHECK_INT(F.last_end.reason, TURN_END_BUDGET);
    CHECK_STR(F.last_end_cid, "x");
    CHECK_INT(F.n_live, 3); /* their relays closed */
    CHECK_INT(fx_refresh(&F, &c[0], 600), 437);
    CHECK_INT(fx_refresh(&F, &c[2], 600), 437);
    CHECK_INT(fx_refresh(&F, &c[3], 600), 0); /* cid y lives on */
    CHECK_INT(fx_refresh(&F, &c[5], 600), 0); /* so does key kb's x */
    /* "" = the key's own budget: every allocation of the key, whatever its cid */
    CHECK_INT(turn_server_budget_tripped(F.s, "ka", "", F.now), 2);
    CHECK_INT(fx_stats(&F).allocations, 1);
    CHECK_INT(fx_refresh(&F, &c[5], 600), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "ka", NULL, F.now), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "kb", NULL, F.now), 1);
    CHECK_INT(fx_stats(&F).allocations, 0);
    CHECK_INT(fx_stats(&F).allocs_ended[TURN_END_BUDGET], 6);
    CHECK_INT(F.n_live, 0);
    /* the key index is rebuilt by the next Allocate */
    CHECK_INT(fx_allocate(&F, &c[3]), 0);
    CHECK_INT(turn_server_budget_tripped(F.s, "ka", "y", F.now), 1);
    fx_free(&F);
}

/* Several usernames of one key, each with allocations of both cids (the info of the last
 * request counts): only the matching ones end, in any position of each user's list. */
static void t_budget_tripped_mixed_users(void)
{
    static const char *const cids[] = {"a", "b", "a", "a", "b", "b"};
    init_with(&F, cid_auth, false);
    client c[18];
    for (int i = 0; i < 18; i++) {
        char u[32];
        snprintf(u, sizeof u, "kq/-/%d", i % 3);
        Cid_override = cids[i % 6];
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.30", (uint16_t)(43000 + i), u);
        CHECK_INT(fx_allocate(&F, &c[i]), 0);
    }
    Cid_override = NULL;
    CHECK_INT(turn_server_budget_tripped(F.s, "kq", "a", F.now), 9);
    CHECK_INT(fx_stats(&F).allocations, 9);
    CHECK_INT(F.n_live, 9);
    Cid_override = "b";
    for (int i = 0; i < 18; i++)
        CHECK_INT(fx_refresh(&F, &c[i], 600), strcmp(cids[i % 6], "a") == 0 ? 437 : 0);
    Cid_override = NULL;
    CHECK_INT(turn_server_budget_tripped(F.s, "kq", "b", F.now), 9);
    CHECK_INT(F.n_live, 0);
    fx_free(&F);
}

static void t_names(void)
{
    CHECK_STR(turn_end_reason_name(TURN_END_BUDGET), "budget_exceeded");
    CHECK_STR(turn_end_reason_name(TURN_END__N), "?");
    CHECK_STR(turn_drop_name(TURN_DROP_BANDWIDTH), "bandwidth");
    CHECK_STR(turn_drop_name(TURN_DROP__N), "?");
}

/* ---- the bandwidth cap ------------------------------------------------------------------- */

static char *payload(size_t n)
{
    static char buf[2048];
    memset(buf, 'x', n);
    buf[n] = '\0';
    return buf;
}

static uint64_t bw_drops(void)
{
    return fx_stats(&F).drops[TURN_DROP_BANDWIDTH];
}

/* 80 kbit/s: 10,000 bytes per second, a bucket of 3,000 bytes (the floor: a quarter second
 * would be 2,500). */
static void t_bandwidth_client_to_peer(void)
{
    fx_init(&F);
    F.bandwidth_bps = 80000;
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 0), 0);
    for (int i = 0; i < 3; i++)
        fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 3);
    CHECK_INT(F.peer_len, 1000);
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 3);
    CHECK_INT(bw_drops(), 1);
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1)); /* still nothing left */
    CHECK_INT(bw_drops(), 2);
    F.now += 100; /* 1,000 bytes back */
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 4);
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 4);
    CHECK_INT(bw_drops(), 3);
    /* dropped datagrams are not relayed traffic */
    turn_traffic tr;
    CHECK(turn_server_alloc_traffic(F.s, F.last_open_id, &tr));
    CHECK_INT(tr.peer_tx.packets, 4);
    CHECK_INT(tr.peer_tx.bytes, 4000);
    CHECK_INT(tr.client_rx.packets, 4);
    /* the other direction has its own bucket, still full */
    for (int i = 0; i < 3; i++)
        fx_peer_in(&F, F.last_open_id, "127.0.0.1", 9000, payload(1000));
    CHECK(turn_server_alloc_traffic(F.s, F.last_open_id, &tr));
    CHECK_INT(tr.client_tx.packets, 3);
    CHECK_INT(bw_drops(), 3);
    fx_free(&F);
}

static void t_bandwidth_peer_to_client(void)
{
    fx_init(&F);
    F.bandwidth_bps = 80000;
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_bind(&F, &c, 0x4000, "127.0.0.1", 9000), 0); /* ChannelData */
    uint64_t id = F.last_open_id;
    int before = F.n_client;
    for (int i = 0; i < 4; i++)
        fx_peer_in(&F, id, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_client - before, 3);
    CHECK_INT(bw_drops(), 1);
    /* a peer without a permission is dropped for that, before the cap is consulted */
    fx_peer_in(&F, id, "127.0.0.2", 9000, payload(1000));
    CHECK_INT(bw_drops(), 1);
    F.now += 250; /* 2,500 bytes back */
    for (int i = 0; i < 3; i++)
        fx_peer_in(&F, id, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_client - before, 5);
    CHECK_INT(bw_drops(), 2);
    F.now += 10000; /* a long pause refills to the bucket's size, no more */
    for (int i = 0; i < 4; i++)
        fx_peer_in(&F, id, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_client - before, 8);
    CHECK_INT(bw_drops(), 3);
    fx_free(&F);
}

/* Traffic under the cap always passes, well past one bucket in total. */
static void t_bandwidth_under_cap_passes(void)
{
    fx_init(&F);
    F.bandwidth_bps = 80000;
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 0), 0);
    uint64_t id = F.last_open_id;
    int before = F.n_client;
    for (int i = 0; i < 200; i++) { /* 400 bytes per 50 ms = 8,000 bytes/s each way */
        F.now += 50;
        fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(400));
        fx_peer_in(&F, id, "127.0.0.1", 9000, payload(400));
    }
    CHECK_INT(F.n_peer, 200);
    CHECK_INT(F.n_client - before, 200);
    CHECK_INT(bw_drops(), 0);
    /* 12,000 bytes/s: over time a sixth is dropped (measured in whole datagrams) */
    int sent = F.n_peer;
    for (int i = 0; i < 300; i++) {
        F.now += 50;
        fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(600));
    }
    int passed = F.n_peer - sent;
    /* 15 s: at most the bucket (3,000) + 15 x 10,000 bytes = 255 datagrams of 600 */
    CHECK(passed >= 253 && passed <= 255);
    CHECK_INT((int)bw_drops(), 300 - passed);
    fx_free(&F);
}

/* A quarter second of the rate when that is above the floor: 8 Mbit/s = 1 MB/s, 250 kB. */
static void t_bandwidth_burst_quarter_second(void)
{
    fx_init(&F);
    F.bandwidth_bps = 8000000;
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 0), 0);
    for (int i = 0; i < 250; i++)
        fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 250);
    CHECK_INT(bw_drops(), 0);
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 250);
    CHECK_INT(bw_drops(), 1);
    F.now += 1; /* 1,000 bytes a millisecond */
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 251);
    fx_free(&F);
}

/* The cap is the one of the Allocate's credential; later requests do not change it. */
static void t_bandwidth_kept_from_allocate(void)
{
    fx_init(&F);
    client capped, free_;
    fx_client(&capped, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    fx_client(&free_, TURN_PROTO_UDP, "198.51.100.21", 41001, "bob");
    F.bandwidth_bps = 80000;
    CHECK_INT(fx_allocate(&F, &capped), 0);
    uint64_t capped_id = F.last_open_id;
    F.bandwidth_bps = 0;
    CHECK_INT(fx_allocate(&F, &free_), 0);
    CHECK_INT(fx_permit(&F, &capped, "127.0.0.1", 0), 0);
    CHECK_INT(fx_permit(&F, &free_, "127.0.0.1", 0), 0);
    F.bandwidth_bps = 80000; /* a policy change: allocations keep what they got */
    CHECK_INT(fx_refresh(&F, &free_, 600), 0);
    F.bandwidth_bps = 0;
    CHECK_INT(fx_refresh(&F, &capped, 600), 0);
    for (int i = 0; i < 50; i++)
        fx_send_ind(&F, &free_, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 50);
    CHECK_INT(bw_drops(), 0);
    for (int i = 0; i < 4; i++)
        fx_send_ind(&F, &capped, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 53);
    CHECK_INT(F.peer_alloc, capped_id);
    CHECK_INT(bw_drops(), 1);
    fx_free(&F);
}

/* A clock that steps back gives no credit and does not stall the bucket. */
static void t_bandwidth_clock_back(void)
{
    fx_init(&F);
    F.bandwidth_bps = 80000;
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK_INT(fx_permit(&F, &c, "127.0.0.1", 0), 0);
    for (int i = 0; i < 3; i++)
        fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    F.now -= 60000;
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 3);
    F.now += 100; /* refills from the new time */
    fx_send_ind(&F, &c, "127.0.0.1", 9000, payload(1000));
    CHECK_INT(F.n_peer, 4);
    fx_free(&F);
}

int main(void)
{
    TK_RUN(t_budget_blocked_486);
    TK_RUN(t_budget_blocked_before_quota);
    TK_RUN(t_alloc_quota_in_core);
    TK_RUN(t_alloc_quota_above_default);
    TK_RUN(t_alloc_quota_through_ops);
    TK_RUN(t_budget_tripped_by_cid);
    TK_RUN(t_budget_tripped_mixed_users);
    TK_RUN(t_names);
    TK_RUN(t_bandwidth_client_to_peer);
    TK_RUN(t_bandwidth_peer_to_client);
    TK_RUN(t_bandwidth_under_cap_passes);
    TK_RUN(t_bandwidth_burst_quarter_second);
    TK_RUN(t_bandwidth_kept_from_allocate);
    TK_RUN(t_bandwidth_clock_back);
    return tk_test_summary();
}
