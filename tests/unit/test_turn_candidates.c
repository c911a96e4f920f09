/* turn_ops.auth_candidates (issue 15): a username standing for several passwords (a key's
 * shared secrets, the fallback set): the first candidate whose MESSAGE-INTEGRITY matches
 * authenticates, its info (key, secret) stays with the allocation, and
 * turn_server_secret_deleted ends exactly the allocations of that secret. */
#include "test_turn_fixture.h"
#include "tk_test.h"

static fake F;

/* What the candidates op answers: n_cand candidates, the right password at index good (-1:
 * none), or rc < 0. */
static int n_cand, good, cand_rc, cand_calls;
static int64_t cand_expires;

static int cand_auth(void *ctx, const uint8_t *user, size_t len, int64_t now,
                     turn_auth_candidate *out, size_t max)
{
    (void)ctx;
    (void)user;
    (void)len;
    cand_calls++;
    if (cand_rc)
        return cand_rc;
    for (int i = 0; i < n_cand && (size_t)i < max; i++) {
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].password, sizeof out[i].password, i == good ? FX_PASSWORD : "wrong-%d", i);
        snprintf(out[i].info.key_id, sizeof out[i].info.key_id, "%032d", i);
        snprintf(out[i].info.secret_id, sizeof out[i].info.secret_id, "secret-%d", i);
        out[i].info.expires = cand_expires ? cand_expires : now + 3600;
    }
    return n_cand;
}

static void setup(int n, int right)
{
    fx_init(&F);
    turn_server_free(F.s);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = fx_auth,
                    .alloc_ended = fx_alloc_ended,
                    .auth_failed = fx_auth_failed,
                    .auth_candidates = cand_auth,
                    .ctx = &F};
    F.s = turn_server_new(&F.cfg, &ops);
    n_cand = n;
    good = right;
    cand_rc = 0;
    cand_calls = 0;
    cand_expires = 0;
}

static void t_first_matching_candidate_wins(void)
{
    setup(4, 2);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40000, "1700003600:alice");
    CHECK_INT(fx_allocate(&F, &c), 0);
    CHECK(cand_calls >= 1);
    CHECK_INT(F.auth_calls, 0); /* auth is not called when auth_candidates is set */
    /* another secret's deletion leaves it; its own ends it */
    CHECK_INT(turn_server_secret_deleted(F.s, "secret-1", F.now), 0);
    CHECK_INT(turn_server_secret_deleted(F.s, "", F.now), 0);
    CHECK_INT(turn_server_secret_deleted(F.s, "secret-2", F.now), 1);
    CHECK_INT(F.n_ended, 1);
    CHECK_INT(F.last_end.reason, TURN_END_REVOKED);
    CHECK_STR(F.last_end_key, "00000000000000000000000000000002");
    CHECK_INT(turn_server_secret_deleted(F.s, "secret-2", F.now), 0);
    fx_free(&F);
}

static void t_no_candidate_matches(void)
{
    setup(TURN_AUTH_CANDIDATES_MAX, -1);
    client c;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40001, "1700003600:bob");
    CHECK_INT(fx_allocate(&F, &c), 401);
    CHECK_INT(F.last_auth_reason, TURN_AF_BAD_INTEGRITY);
    fx_free(&F);
    /* the right one past the candidates the op may return is never tried */
    setup(TURN_AUTH_CANDIDATES_MAX + 3, TURN_AUTH_CANDIDATES_MAX + 1);
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40002, "1700003600:bob");
    CHECK_INT(fx_allocate(&F, &c), 401);
    fx_free(&F);
}

static void t_refusals(void)
{
    client c;
    setup(0, -1); /* no candidate at all */
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40003, "1700003600:carol");
    CHECK_INT(fx_allocate(&F, &c), 401);
    CHECK_INT(F.last_auth_reason, TURN_AF_BAD_CREDENTIAL);
    fx_free(&F);
    setup(1, 0);
    cand_rc = TURN_AUTH_EXPIRED;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40004, "1700003600:carol");
    CHECK_INT(fx_allocate(&F, &c), 401);
    CHECK_INT(F.last_auth_reason, TURN_AF_EXPIRED);
    fx_free(&F);
    /* a candidate whose expiry has passed is skipped even with the right password */
    setup(1, 0);
    cand_expires = F.now / 1000;
    fx_client(&c, TURN_PROTO_UDP, "198.51.100.1", 40005, "1700003600:carol");
    CHECK_INT(fx_allocate(&F, &c), 401);
    fx_free(&F);
}

int main(void)
{
    TK_RUN(t_first_matching_candidate_wins);
    TK_RUN(t_no_candidate_matches);
    TK_RUN(t_refusals);
    return tk_test_summary();
}
