/* fuzz_turn_model: the state fuzz_turn.c keeps beside the turn_server it drives — tuples,
 * users, relays, permissions, the pending requests — and the lookups over it. Included by
 * fuzz_turn.c only (one translation unit per fuzz target). */
#ifndef TURNKEY_FUZZ_TURN_MODEL_H
#define TURNKEY_FUZZ_TURN_MODEL_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/peer.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"

#define PASS "fuzzpass"
#define REALM "fuzz.realm"
#define N_TUPLES 4
#define N_USERS 4
#define CAP 3
#define USER_QUOTA 2
#define MAX_QUOTA 3    /* the largest alloc_quota the policy op sets */
#define PERM_MS 300000 /* cfg.permission_s default */

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const users[N_USERS] = {"fuzzuser0", "fuzzuser1", "fuzzuser2", "fuzzuser3"};
static const char *const keys[2] = {"fuzzkey0", "fuzzkey1"};
static const char *const cids[2] = {"c0", "c1"};

typedef struct relay_rec {
    bool open;         /* the allocation lives: at least one of its relays is open */
    bool gone1;        /* its first relay closed, its second still open (dual) */
    bool open2;        /* the IPv6 relay of a dual allocation (id | TURN_RELAY_ID_DUAL) */
    signed char owner; /* the user whose authentication opened it */
    signed char tuple; /* the 5-tuple of its Allocate */
    int64_t deadline;  /* ms: the lifetime its last Allocate / Refresh answer gave */
    uint64_t bps;      /* the bandwidth cap of its Allocate's credential */
    int64_t start;     /* ms: its Allocate */
    uint64_t up, down; /* UDP payload bytes relayed to peers / from peers */
} relay_rec;

typedef struct perm_rec {
    uint64_t id;
    int family;
    uint8_t ip[16];
    int64_t expires; /* ms */
} perm_rec;

/* The request being processed, to match its answer. */
typedef struct pending {
    bool active;
    int ti;
    uint16_t method;
    uint8_t txid[STUN_TXID_SIZE];
    size_t n_peers;
    struct sockaddr_storage peers[STUN_MAX_ATTRS];
    bool opened; /* an allocation was created by it (else an Allocate answer is a resend) */
} pending;

typedef struct harness {
    turn_server *s;
    bool quota_ops; /* quotas through ops->quota_acquire/release */
    bool verbose;
    turn_5tuple tuples[N_TUPLES];
    char nonce[N_TUPLES][128];
    size_t nonce_len[N_TUPLES];
    relay_rec *relays; /* by relay id */
    size_t relays_cap;
    perm_rec *perms;
    size_t n_perms, perms_cap;
    int last_user; /* user of the last successful auth call, -1 none */
    long per_user[N_USERS];
    long quota[N_USERS], quota_total; /* what quota_acquire granted and was not released */
    bool revoked[N_USERS], key_gone[2];
    bool tuple_must_be_empty[N_TUPLES]; /* Refresh 0 answered / connection closed this step */
    const peer_policy *pol;
    uint64_t last_id;
    long n_open;
    int auth_rc;
    int64_t expires;
    uint32_t alloc_quota; /* the key policy every credential carries (op 6, case 6) */
    uint64_t bps;
    bool blocked;
    size_t peer_len; /* payload bytes of the peer datagram being processed */
    int64_t now;
    pending req;
    int cur_ti;                   /* tuple whose message is being processed, -1 none */
    bool in_peer;                 /* a peer datagram is being processed */
    uint64_t peer_id;             /* ... on this relay */
    struct sockaddr_storage peer; /* ... from this peer */
} harness;

static int tuple_index(const harness *h, const turn_5tuple *t)
{
    for (int i = 0; i < N_TUPLES; i++)
        if (h->tuples[i].proto == t->proto && h->tuples[i].conn_id == t->conn_id &&
            memcmp(&h->tuples[i].client, &t->client, sizeof t->client) == 0)
            return i;
    return -1;
}

static int user_index(const uint8_t *name, size_t len)
{
    for (int i = 0; i < N_USERS; i++)
        if (len == strlen(users[i]) && memcmp(name, users[i], len) == 0)
            return i;
    return -1;
}

/* Relay id → the allocation's record id (a dual's second relay shares its record). */
static uint64_t base_id(uint64_t id)
{
    return id & ~TURN_RELAY_ID_DUAL;
}

static bool is_open(const harness *h, uint64_t id)
{
    uint64_t b = base_id(id);
    if (b >= h->relays_cap)
        return false;
    const relay_rec *r = &h->relays[b];
    return r->open && ((id & TURN_RELAY_ID_DUAL) ? r->open2 : !r->gone1);
}

/* The open allocation of tuple ti, or 0 (relay ids start at 1). */
static uint64_t alloc_of(const harness *h, int ti)
{
    for (uint64_t id = 0; id < h->relays_cap; id++)
        if (h->relays[id].open && h->relays[id].tuple == ti)
            return id;
    return 0;
}

/* ---- permissions the harness saw granted ---------------------------------------------- */

static void ip_of(const struct sockaddr *sa, int *family, uint8_t ip[16])
{
    memset(ip, 0, 16);
    *family = sa->sa_family;
    if (sa->sa_family == AF_INET)
        memcpy(ip, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(ip, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
}

static perm_rec *perm_find(const harness *h, uint64_t id, const struct sockaddr *peer)
{
    int fam;
    uint8_t ip[16];
    ip_of(peer, &fam, ip);
    for (size_t i = 0; i < h->n_perms; i++)
        if (h->perms[i].id == id && h->perms[i].family == fam && !memcmp(h->perms[i].ip, ip, 16))
            return &h->perms[i];
    return NULL;
}

static bool has_perm(const harness *h, uint64_t id, const struct sockaddr *peer)
{
    const perm_rec *p = perm_find(h, id, peer);
    return p && p->expires > h->now; /* the server's timer fires at deadline <= now */
}

/* A permission is never installed for a peer the policy denies (the port does not matter for
 * a permission: 0 stands for any, checked as port 9 like the server does). */
static bool perm_peer_allowed(const harness *h, const struct sockaddr *peer)
{
    struct sockaddr_storage p;
    memcpy(&p, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (p.ss_family == AF_INET && ((struct sockaddr_in *)&p)->sin_port == 0)
        ((struct sockaddr_in *)&p)->sin_port = htons(9);
    if (p.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&p)->sin6_port == 0)
        ((struct sockaddr_in6 *)&p)->sin6_port = htons(9);
    return peer_allowed(h->pol, (const struct sockaddr *)&p);
}

static void perm_grant(harness *h, uint64_t id, const struct sockaddr *peer)
{
    REQUIRE(perm_peer_allowed(h, peer)); /* a denied peer got a permission */
    perm_rec *p = perm_find(h, id, peer);
    if (!p) {
        if (h->n_perms == h->perms_cap) {
            h->perms_cap = h->perms_cap ? h->perms_cap * 2 : 16;
            h->perms = util_xrealloc(h->perms, h->perms_cap * sizeof *h->perms);
        }
        p = &h->perms[h->n_perms++];
        p->id = id;
        ip_of(peer, &p->family, p->ip);
    }
    p->expires = h->now + PERM_MS;
}

/* ---- answers -------------------------------------------------------------------------- */

#endif
