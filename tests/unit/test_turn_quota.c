/* Quotas shared through turn_ops.quota_acquire/quota_release (one turn_server per relay
 * thread): two servers draw from one per-username and one global count. */
#include "tk_test.h"
#include "test_turn_fixture.h"

static struct {
    int alice, total, user_limit, total_limit, releases;
    bool draining;
    int client_msgs_at_release; /* responses sent when the last release happened */
} Q;

static int q_acquire(void *ctx, const uint8_t *user, size_t len, uint32_t limit)
{
    (void)ctx;
    (void)limit; /* 0 here (the fixture's credentials carry no policy): test_turn_policy.c */
    bool alice = len == 5 && memcmp(user, "alice", 5) == 0;
    if (Q.draining)
        return TURN_QUOTA_DRAINING;
    if (alice && Q.alice >= Q.user_limit)
        return TURN_QUOTA_USER;
    if (Q.total >= Q.total_limit)
        return TURN_QUOTA_GLOBAL;
    Q.alice += alice;
    Q.total++;
    return TURN_QUOTA_OK;
}

static void q_release(void *ctx, const uint8_t *user, size_t len)
{
    Q.alice -= len == 5 && memcmp(user, "alice", 5) == 0;
    Q.total--;
    Q.releases++;
    Q.client_msgs_at_release = ((fake *)ctx)->n_client;
}

static void init_shared(fake *f)
{
    fx_init_cfg(f, true, NULL);
    turn_server_free(f->s);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = fx_auth,
                    .quota_acquire = q_acquire,
                    .quota_release = q_release,
                    .ctx = f};
    f->s = turn_server_new(&f->cfg, &ops);
}

static fake A, B;

static void t_shared_user_quota(void)
{
    memset(&Q, 0, sizeof Q);
    Q.user_limit = 3;
    Q.total_limit = 100;
    init_shared(&A);
    init_shared(&B);
    CHECK(A.s && B.s);
    client c[4];
    for (int i = 0; i < 4; i++)
        fx_client(&c[i], TURN_PROTO_UDP, "198.51.100.20", (uint16_t)(41000 + i), "alice");
    CHECK_INT(fx_allocate(&A, &c[0]), 0);
    CHECK_INT(fx_allocate(&B, &c[1]), 0);
    CHECK_INT(fx_allocate(&A, &c[2]), 0);
    CHECK_INT(fx_allocate(&B, &c[3]), 486); /* the fourth, on the other server */
    CHECK_INT(Q.alice, 3);
    CHECK_INT(fx_refresh(&A, &c[0], 0), 0); /* frees one, on server A */
    CHECK_INT(Q.alice, 2);
    CHECK_INT(fx_allocate(&B, &c[3]), 0);
    fx_free(&A);
    fx_free(&B);
    CHECK_INT(Q.total, 0); /* every grant released, including at server teardown */
    CHECK_INT(Q.releases, 4);
}

static void t_shared_global_cap(void)
{
    memset(&Q, 0, sizeof Q);
    Q.user_limit = 100;
    Q.total_limit = 2;
    init_shared(&A);
    init_shared(&B);
    client c[3];
    fx_client(&c[0], TURN_PROTO_UDP, "198.51.100.20", 42000, "bob");
    fx_client(&c[1], TURN_PROTO_UDP, "198.51.100.20", 42001, "carol");
    fx_client(&c[2], TURN_PROTO_UDP, "198.51.100.20", 42002, "dave");
    CHECK_INT(fx_allocate(&A, &c[0]), 0);
    CHECK_INT(fx_allocate(&B, &c[1]), 0);
    CHECK_INT(fx_allocate(&A, &c[2]), 508);
    fx_free(&A);
    fx_free(&B);
    CHECK_INT(Q.total, 0);
}

/* Refresh 0 releases the quota before its success goes out: a client that reads the answer
 * and allocates again (maybe on another relay thread) must find the slot free. */
static void t_refresh0_releases_before_answering(void)
{
    memset(&Q, 0, sizeof Q);
    Q.user_limit = 1;
    Q.total_limit = 1;
    init_shared(&A);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.20", 43000, "alice");
    CHECK_INT(fx_allocate(&A, &c), 0);
    int before = A.n_client;
    CHECK_INT(fx_refresh(&A, &c, 0), 0);
    CHECK_INT(Q.releases, 1);
    CHECK_INT(Q.client_msgs_at_release, before); /* released, then answered */
    CHECK_INT(A.n_client, before + 1);
    fx_free(&A);
}

static void t_half_configured_rejected(void)
{
    fake f;
    fx_init_cfg(&f, true, NULL);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = fx_auth,
                    .quota_acquire = q_acquire,
                    .ctx = &f};
    CHECK(turn_server_new(&f.cfg, &ops) == NULL);
    fx_free(&f);
}

/* A draining relay (SIGTERM): Allocate → 508 "Server Draining"; a live allocation refreshes. */
static void t_draining_refuses_allocate(void)
{
    memset(&Q, 0, sizeof Q);
    Q.user_limit = Q.total_limit = 100;
    init_shared(&A);
    CHECK(A.s);
    client c[2];
    fx_client(&c[0], TURN_PROTO_UDP, "198.51.100.20", 41000, "alice");
    fx_client(&c[1], TURN_PROTO_TCP, "198.51.100.21", 41001, "bob");
    CHECK_INT(fx_allocate(&A, &c[0]), 0);
    Q.draining = true;
    CHECK_INT(fx_allocate(&A, &c[1]), 508);
    int code = 0;
    const uint8_t *reason = NULL;
    size_t rl = 0;
    CHECK_INT(stun_get_error_code(&A.rm, &code, &reason, &rl), STUN_OK);
    CHECK(rl == 15 && memcmp(reason, "Server Draining", 15) == 0);
    CHECK_INT(Q.total, 1);
    CHECK_INT(fx_refresh(&A, &c[0], 600), 0);
    CHECK_INT(fx_refresh(&A, &c[0], 0), 0);
    CHECK_INT(Q.total, 0);
    fx_free(&A);
}

int main(void)
{
    TK_RUN(t_draining_refuses_allocate);
    TK_RUN(t_shared_user_quota);
    TK_RUN(t_shared_global_cap);
    TK_RUN(t_refresh0_releases_before_answering);
    TK_RUN(t_half_configured_rejected);
    return tk_test_summary();
}
