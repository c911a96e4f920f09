/* peer_relays (hairpin registry) and its use by peer_allowed: live relay ports of the server's
 * own addresses are allowed, every other port of them stays denied; public (external) addresses
 * map to the private relay socket; the bitmap is shared by threads without locks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>

#include "tk_test.h"
#include "turnkey/peer.h"

static const struct sockaddr *sa(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return (const struct sockaddr *)ss;
}

static int allowed(const peer_policy *p, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    return peer_allowed(p, sa(&ss, ip, port)) ? 1 : 0;
}

static int live(const peer_relays *r, const char *ip, uint16_t port, char *direct, size_t cap)
{
    struct sockaddr_storage ss, d;
    if (!peer_relays_live(r, sa(&ss, ip, port), &d))
        return 0;
    if (d.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&d)->sin_addr, direct, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&d)->sin6_addr, direct, (socklen_t)cap);
    size_t n = strlen(direct);
    snprintf(direct + n, cap - n, ":%u", ntohs(((struct sockaddr_in *)&d)->sin_port));
    return 1;
}

static void t_slots_and_bits(void)
{
    peer_relays *r = peer_relays_new();
    struct sockaddr_storage ss;
    char d[64];
    int s = peer_relays_add_slot(r, sa(&ss, "10.77.0.2", 0));
    CHECK_INT(s, 0);
    CHECK_INT(peer_relays_add_slot(r, sa(&ss, "10.77.0.2", 1234)), 0);     /* known: same slot */
    CHECK_INT(peer_relays_add_slot(r, sa(&ss, "::ffff:10.77.0.2", 0)), 0); /* mapped = IPv4 */
    CHECK_INT(peer_relays_add_slot(r, sa(&ss, "::1", 0)), 1);
    CHECK_INT(peer_relays_slot(r, sa(&ss, "10.77.0.3", 0)), -1);
    CHECK_INT(live(r, "10.77.0.2", 50000, d, sizeof d), 0);
    peer_relays_mark(r, s, 50000, true);
    peer_relays_mark(r, s, 50001, true);
    CHECK_INT(live(r, "10.77.0.2", 50000, d, sizeof d), 1);
    CHECK_STR(d, "10.77.0.2:50000");
    CHECK_INT(live(r, "::ffff:10.77.0.2", 50001, d, sizeof d), 1);
    CHECK_INT(live(r, "10.77.0.2", 49999, d, sizeof d), 0);
    CHECK_INT(live(r, "10.77.0.3", 50000, d, sizeof d), 0); /* another address, same port */
    CHECK_INT(live(r, "::1", 50000, d, sizeof d), 0);       /* another slot */
    peer_relays_mark(r, s, 50000, false);
    CHECK_INT(live(r, "10.77.0.2", 50000, d, sizeof d), 0);
    CHECK_INT(live(r, "10.77.0.2", 50001, d, sizeof d), 1); /* the neighbour bit stays */
    peer_relays_mark(r, s, 0, true);
    CHECK_INT(live(r, "10.77.0.2", 0, d, sizeof d), 0); /* port 0 is never a relay */
    peer_relays_mark(r, 7, 50000, true);                /* unknown slot: ignored */
    peer_relays_mark(r, -1, 50000, true);
    peer_relays_free(r);
}

static void t_slot_limit(void)
{
    peer_relays *r = peer_relays_new();
    struct sockaddr_storage ss;
    char ip[32];
    for (int i = 0; i < PEER_RELAYS_MAX_SLOTS; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 200, i % 200 + 1);
        CHECK_INT(peer_relays_add_slot(r, sa(&ss, ip, 0)), i);
    }
    CHECK_INT(peer_relays_add_slot(r, sa(&ss, "10.9.9.9", 0)), -1);
    ss.ss_family = AF_UNIX;
    CHECK_INT(peer_relays_add_slot(r, (struct sockaddr *)&ss), -1);
    peer_relays_free(r);
}

static void t_external(void)
{
    peer_relays *r = peer_relays_new();
    struct sockaddr_storage a, b, out;
    char d[64];
    int priv = peer_relays_add_slot(r, sa(&a, "10.77.0.2", 0));
    int other = peer_relays_add_slot(r, sa(&a, "10.77.0.3", 0));
    CHECK_INT(peer_relays_add_external(r, sa(&a, "100.200.0.10", 0), sa(&b, "10.77.0.2", 0)), 0);
    CHECK_INT(peer_relays_add_external(r, sa(&a, "100.200.0.11", 0), NULL), -EEXIST);
    CHECK_INT(peer_relays_add_external(r, sa(&a, "2001:db8::1", 0), sa(&b, "10.0.0.1", 0)),
              -EINVAL);
    /* reported address: PUBLIC for relays on PRIVATE only */
    CHECK(peer_relays_public(r, sa(&a, "10.77.0.2", 50000), &out));
    CHECK_INT(ntohs(((struct sockaddr_in *)&out)->sin_port), 50000);
    CHECK(((struct sockaddr_in *)&out)->sin_addr.s_addr == inet_addr("100.200.0.10"));
    CHECK(!peer_relays_public(r, sa(&a, "10.77.0.3", 50000), &out));
    CHECK(!peer_relays_public(r, sa(&a, "::1", 50000), &out));
    /* hairpin to the public address goes to the private socket, only while it is live */
    CHECK_INT(live(r, "100.200.0.10", 50000, d, sizeof d), 0);
    peer_relays_mark(r, other, 50000, true);
    CHECK_INT(live(r, "100.200.0.10", 50000, d, sizeof d), 0); /* not behind PUBLIC */
    peer_relays_mark(r, priv, 50000, true);
    CHECK_INT(live(r, "100.200.0.10", 50000, d, sizeof d), 1);
    CHECK_STR(d, "10.77.0.2:50000");
    CHECK_INT(live(r, "100.200.0.10", 50002, d, sizeof d), 0);
    peer_relays_free(r);

    /* without PRIVATE, every relay slot of the family is behind PUBLIC */
    r = peer_relays_new();
    int s4 = peer_relays_add_slot(r, sa(&a, "127.0.0.1", 0));
    peer_relays_add_slot(r, sa(&a, "::1", 0));
    CHECK_INT(peer_relays_add_external(r, sa(&a, "100.200.0.10", 0), NULL), 0);
    CHECK(peer_relays_public(r, sa(&a, "127.0.0.1", 1), &out));
    CHECK(!peer_relays_public(r, sa(&a, "::1", 1), &out));
    peer_relays_mark(r, s4, 60000, true);
    CHECK_INT(live(r, "100.200.0.10", 60000, d, sizeof d), 1);
    CHECK_STR(d, "127.0.0.1:60000");
    peer_relays_free(r);
}

/* The server's own addresses (listener, API, private, public, loopback) are denied on every
 * port except a live relay's; a live relay of an address that is not "own" changes nothing. */
static void t_policy_hairpin(void)
{
    peer_policy p;
    peer_policy_init(&p);
    peer_relays *r = peer_relays_new();
    struct sockaddr_storage a, b;
    int priv = peer_relays_add_slot(r, sa(&a, "10.77.0.2", 0));
    int lo = peer_relays_add_slot(r, sa(&a, "127.0.0.1", 0));
    peer_relays_add_external(r, sa(&a, "100.200.0.10", 0), sa(&b, "10.77.0.2", 0));
    peer_policy_add_self(&p, sa(&a, "10.77.0.2", 0));
    peer_policy_add_self(&p, sa(&a, "127.0.0.1", 0));
    peer_policy_add_self(&p, sa(&a, "100.200.0.10", 0));
    CHECK_INT(allowed(&p, "100.200.0.10", 50000), 0); /* no registry yet */
    peer_policy_set_relays(&p, r);
    CHECK_INT(allowed(&p, "100.200.0.10", 50000), 0); /* not live */
    peer_relays_mark(r, priv, 50000, true);
    CHECK_INT(allowed(&p, "100.200.0.10", 50000), 1);
    CHECK_INT(allowed(&p, "::ffff:100.200.0.10", 50000), 1);
    CHECK_INT(allowed(&p, "10.77.0.2", 50000), 1);
    CHECK_INT(allowed(&p, "127.0.0.1", 50000), 0); /* the relay is not bound on loopback */
    static const uint16_t own[] = {3478, 5349, 8080, 443, 80, 49999, 50001};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        CHECK_INT(allowed(&p, "100.200.0.10", own[i]), 0);
        CHECK_INT(allowed(&p, "10.77.0.2", own[i]), 0);
        CHECK_INT(allowed(&p, "127.0.0.1", own[i]), 0);
    }
    peer_relays_mark(r, lo, 40000, true);
    CHECK_INT(allowed(&p, "127.0.0.1", 40000), 1); /* relays bound on loopback (tests) */
    CHECK_INT(allowed(&p, "127.0.0.2", 40000), 0); /* deny list: not own, not opened */
    peer_relays_mark(r, priv, 50000, false);
    CHECK_INT(allowed(&p, "100.200.0.10", 50000), 0);
    CHECK_INT(allowed(&p, "10.77.0.2", 50000), 0);
    peer_policy_dispose(&p);
    peer_relays_free(r);
}

typedef struct marker {
    peer_relays *r;
    int slot;
    uint16_t base;
} marker;

static void *mark_many(void *arg)
{
    marker *m = arg;
    for (int round = 0; round < 200; round++)
        for (uint16_t i = 0; i < 64; i++)
            peer_relays_mark(m->r, m->slot, (uint16_t)(m->base + i * 2), round % 2 == 0);
    return NULL;
}

/* Two threads flip interleaved bits of the same words: no update is lost. */
static void t_threads(void)
{
    peer_relays *r = peer_relays_new();
    struct sockaddr_storage a;
    char d[64];
    int s = peer_relays_add_slot(r, sa(&a, "10.77.0.2", 0));
    peer_relays_mark(r, s, 50001 + 128, true); /* a neighbour nobody touches */
    marker m1 = {r, s, 50000}, m2 = {r, s, 50001};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, mark_many, &m1);
    pthread_create(&t2, NULL, mark_many, &m2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    for (uint16_t i = 0; i < 128; i++)
        CHECK_INT(live(r, "10.77.0.2", (uint16_t)(50000 + i), d, sizeof d), 0); /* last: clear */
    CHECK_INT(live(r, "10.77.0.2", 50001 + 128, d, sizeof d), 1);
    peer_relays_free(r);
}

int main(void)
{
    TK_RUN(t_slots_and_bits);
    TK_RUN(t_slot_limit);
    TK_RUN(t_external);
    TK_RUN(t_policy_hairpin);
    TK_RUN(t_threads);
    return tk_test_summary();
}
