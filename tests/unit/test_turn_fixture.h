/* Shared fixture of the turn unit tests: a fake ops table that records what the state machine
 * does, a fake clock, and a tiny client that builds requests with the stun builder (with the
 * long-term credential) and parses the last response. No sockets. */
#ifndef TEST_TURN_FIXTURE_H
#define TEST_TURN_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test.h"
#include "turnkey/peer.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"

#define FX static __attribute__((unused))

#define FX_REALM "turnkey.test"
#define FX_PASSWORD "secret"
#define FX_MAX_OPEN (1 << 20)

typedef struct fake {
    /* last message to a client */
    uint8_t out[70000];
    size_t out_len;
    const uint8_t *out_ptr; /* the buffer send_client was given */
    turn_5tuple out_t;
    int n_client;
    stun_msg rm; /* out parsed, when it is STUN */
    bool rm_ok;
    /* last datagram to a peer */
    uint8_t peer_out[70000];
    size_t peer_len;
    struct sockaddr_storage peer_to;
    uint64_t peer_alloc;
    int n_peer;
    /* relay sockets */
    int opens, closes, open_rc;
    int open6_rc; /* when set, what an IPv6 relay_open answers (a dual's second relay) */
    int last_family;
    uint64_t last_open_id, last_closed_id;
    uint16_t next_port;
    bool open[FX_MAX_OPEN];
    bool open2[FX_MAX_OPEN]; /* the IPv6 relays of dual allocations (TURN_RELAY_ID_DUAL) */
    int n_live;              /* ids with open[] or open2[] set: allocations holding a relay */
    /* auth */
    int auth_rc, auth_calls;
    int64_t expires; /* 0 = now + 1 day */
    int64_t now_s_seen;
    /* the key policy every credential carries (turn_auth_info; zero = none) */
    uint32_t alloc_quota;
    uint64_t bandwidth_bps;
    bool budget_blocked;
    /* challenges (401/438): refused by ops.challenge_ok while deny_challenges is set */
    bool deny_challenges;
    int challenge_asks;
    /* the outward path: ended allocations, authentication failures */
    int n_ended;
    turn_alloc_report last_end; /* its pointers are not kept: see last_end_key/cid */
    char last_end_key[33], last_end_cid[65];
    int n_auth_failed, last_auth_reason;
    /* server */
    turn_server *s;
    peer_policy pol;
    turn_config cfg;
    int64_t now;
} fake;

static void fx_send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    fake *f = ctx;
    if (len > sizeof f->out)
        abort();
    memcpy(f->out, buf, len);
    f->out_ptr = buf;
    f->out_len = len;
    f->out_t = *t;
    f->n_client++;
    f->rm_ok = stun_parse(f->out, len, &f->rm) == STUN_OK;
}

/* The open-flag of relay id (a dual's second relay has its own); NULL: out of range. */
static bool *fx_open_slot(fake *f, uint64_t id)
{
    uint64_t i = id & ~TURN_RELAY_ID_DUAL;
    if (i >= FX_MAX_OPEN)
        return NULL;
    return (id & TURN_RELAY_ID_DUAL) ? &f->open2[i] : &f->open[i];
}

static int fx_relay_open(void *ctx, uint64_t id, int family, const turn_5tuple *t,
                         struct sockaddr_storage *relayed)
{
    fake *f = ctx;
    (void)t;
    f->last_family = family;
    if (f->open_rc)
        return f->open_rc;
    if (family == AF_INET6 && f->open6_rc)
        return f->open6_rc;
    bool *slot = fx_open_slot(f, id);
    if (!slot || *slot)
        abort(); /* ids are fresh */
    uint64_t i = id & ~TURN_RELAY_ID_DUAL;
    f->n_live += !f->open[i] && !f->open2[i];
    *slot = true;
    f->opens++;
    f->last_open_id = id;
    memset(relayed, 0, sizeof *relayed);
    uint16_t port = f->next_port++;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)relayed;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, "2001:db8::5", &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)relayed;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, "203.0.113.5", &s4->sin_addr);
    }
    return 0;
}

static void fx_relay_close(void *ctx, uint64_t id)
{
    fake *f = ctx;
    bool *slot = fx_open_slot(f, id);
    if (!slot || !*slot)
        abort(); /* closing what was never opened */
    *slot = false;
    uint64_t i = id & ~TURN_RELAY_ID_DUAL;
    f->n_live -= !f->open[i] && !f->open2[i];
    f->closes++;
    f->last_closed_id = id;
}

static void fx_send_peer(void *ctx, uint64_t id, const struct sockaddr *peer, const uint8_t *buf,
                         size_t len)
{
    fake *f = ctx;
    bool *slot = fx_open_slot(f, id);
    if (!slot || !*slot || len > sizeof f->peer_out)
        abort();
    memcpy(f->peer_out, buf, len);
    f->peer_len = len;
    f->peer_alloc = id;
    memset(&f->peer_to, 0, sizeof f->peer_to);
    memcpy(&f->peer_to, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    f->n_peer++;
}

/* Any username is known, password FX_PASSWORD; usernames starting with 'k' belong to key
 * "key2", the others to "key1". */
static int fx_auth(void *ctx, const uint8_t *user, size_t len, int64_t now, char password[128],
                   turn_auth_info *info)
{
    fake *f = ctx;
    f->auth_calls++;
    f->now_s_seen = now;
    if (f->auth_rc)
        return f->auth_rc;
    strcpy(password, FX_PASSWORD);
    strcpy(info->key_id, len > 0 && user[0] == 'k' ? "key2" : "key1");
    strcpy(info->custom_id, len > 0 && user[0] == 'k' ? "cid-k" : "cid-1");
    info->expires = f->expires ? f->expires : now + 86400;
    info->alloc_quota = f->alloc_quota;
    info->bandwidth_bps = f->bandwidth_bps;
    info->budget_blocked = f->budget_blocked;
    return TURN_AUTH_OK;
}

static bool fx_challenge_ok(void *ctx, const turn_5tuple *t)
{
    fake *f = ctx;
    (void)t;
    f->challenge_asks++;
    return !f->deny_challenges;
}

static void fx_alloc_ended(void *ctx, const turn_alloc_report *r)
{
    fake *f = ctx;
    f->n_ended++;
    f->last_end = *r;
    f->last_end.info = NULL;
    f->last_end.username = NULL;
    snprintf(f->last_end_key, sizeof f->last_end_key, "%s", r->info->key_id);
    snprintf(f->last_end_cid, sizeof f->last_end_cid, "%s", r->info->custom_id);
}

static void fx_auth_failed(void *ctx, const turn_5tuple *t, int reason, const uint8_t *user,
                           size_t len)
{
    fake *f = ctx;
    (void)t;
    (void)user;
    (void)len;
    f->n_auth_failed++;
    f->last_auth_reason = reason;
}

FX void fx_addr(struct sockaddr_storage *ss, const char *ip, uint16_t port)
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
}

FX const struct sockaddr *fx_sa(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    fx_addr(ss, ip, port);
    return (const struct sockaddr *)ss;
}

FX bool fx_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* Sets up f with a server; cfg fields may be adjusted through tweak before creation. */
FX void fx_init_cfg(fake *f, bool allow_loopback, void (*tweak)(turn_config *))
{
    memset(f, 0, sizeof *f);
    f->next_port = 50000;
    f->now = 1700000000000LL;
    peer_policy_init(&f->pol);
    if (allow_loopback) {
        peer_cidr c;
        peer_cidr_parse("127.0.0.1/32", &c);
        peer_policy_add_allow(&f->pol, &c);
    }
    f->cfg.realm = FX_REALM;
    f->cfg.software = "turnkey-test";
    memset(f->cfg.nonce_secret, 0x42, sizeof f->cfg.nonce_secret);
    f->cfg.peers = &f->pol;
    if (tweak)
        tweak(&f->cfg);
    turn_ops ops = {.send_client = fx_send_client,
                    .relay_open = fx_relay_open,
                    .relay_close = fx_relay_close,
                    .send_peer = fx_send_peer,
                    .auth = fx_auth,
                    .challenge_ok = fx_challenge_ok,
                    .alloc_ended = fx_alloc_ended,
                    .auth_failed = fx_auth_failed,
                    .ctx = f};
    f->s = turn_server_new(&f->cfg, &ops);
}

FX void fx_init(fake *f)
{
    fx_init_cfg(f, true, NULL);
}

FX void fx_free(fake *f)
{
    turn_server_free(f->s);
    f->s = NULL;
    peer_policy_dispose(&f->pol);
}

/* ---- client side ------------------------------------------------------------------------ */

typedef struct client {
    turn_5tuple t;
    char user[64];
    char nonce[128];
    size_t nonce_len;
    uint32_t txn;
    uint8_t txid[STUN_TXID_SIZE]; /* of the last request */
    bool fingerprint, sha256;     /* add FINGERPRINT / use SHA-256 + MI-SHA256 */
    uint8_t buf[4096];
} client;

FX void fx_client(client *c, turn_proto proto, const char *ip, uint16_t port, const char *user)
{
    memset(c, 0, sizeof *c);
    c->t.proto = proto;
    c->t.conn_id = proto == TURN_PROTO_UDP ? 0 : (uint64_t)port * 7 + 1;
    fx_addr(&c->t.client, ip, port);
    fx_addr(&c->t.server, "192.0.2.1", 3478);
    snprintf(c->user, sizeof c->user, "%s", user);
}

FX void fx_begin(client *c, stun_builder *b, uint16_t method, uint8_t cls)
{
    c->txn++;
    memset(c->txid, 0, sizeof c->txid);
    memcpy(c->txid, &c->txn, sizeof c->txn);
    c->txid[11] = (uint8_t)c->t.proto;
    memcpy(c->txid + 4, &c->t.client, 6);
    stun_builder_begin(b, c->buf, sizeof c->buf, stun_type(method, cls), c->txid);
}

/* The long-term key for c (MD5, or SHA-256 when c->sha256). */
FX size_t fx_key(const client *c, const char *user, uint8_t key[32])
{
    if (c->sha256) {
        stun_long_term_key_sha256((const uint8_t *)user, strlen(user), (const uint8_t *)FX_REALM,
                                  strlen(FX_REALM), (const uint8_t *)FX_PASSWORD,
                                  strlen(FX_PASSWORD), key);
        return 32;
    }
    stun_long_term_key((const uint8_t *)user, strlen(user), (const uint8_t *)FX_REALM,
                       strlen(FX_REALM), (const uint8_t *)FX_PASSWORD, strlen(FX_PASSWORD), key);
    return 16;
}

/* Feeds b's message; returns the response's error code, 0 for success, -1 for no response. */
FX int fx_feed(fake *f, client *c, stun_builder *b)
{
    if (c->fingerprint)
        stun_builder_add_fingerprint(b);
    int n = stun_builder_finish(b);
    if (n <= 0)
        abort();
    int before = f->n_client;
    turn_server_input(f->s, &c->t, c->buf, (size_t)n, f->now);
    if (f->n_client == before || !f->rm_ok)
        return -1;
    const uint8_t *nonce;
    size_t nlen;
    if (stun_get_nonce(&f->rm, &nonce, &nlen) == STUN_OK && nlen < sizeof c->nonce) {
        memcpy(c->nonce, nonce, nlen);
        c->nonce_len = nlen;
    }
    if (f->rm.cls == STUN_CLASS_SUCCESS)
        return 0;
    int code = -2;
    const uint8_t *reason;
    size_t rl;
    stun_get_error_code(&f->rm, &code, &reason, &rl);
    return code;
}

/* Adds USERNAME/REALM/NONCE and the integrity with password pw (NULL = the right one). */
FX void fx_sign(client *c, stun_builder *b, const char *user, const char *realm, const char *pw)
{
    if (user)
        stun_builder_add(b, STUN_ATTR_USERNAME, user, strlen(user));
    if (realm)
        stun_builder_add(b, STUN_ATTR_REALM, realm, strlen(realm));
    stun_builder_add(b, STUN_ATTR_NONCE, c->nonce, c->nonce_len);
    if (c->sha256) {
        uint8_t pa[4] = {0, STUN_PASSWORD_ALG_SHA256, 0, 0};
        stun_builder_add(b, STUN_ATTR_PASSWORD_ALGORITHM, pa, sizeof pa);
    }
    uint8_t key[32];
    size_t kl;
    if (pw) {
        const char *u = user ? user : "";
        kl = c->sha256 ? 32 : 16;
        if (c->sha256)
            stun_long_term_key_sha256((const uint8_t *)u, strlen(u), (const uint8_t *)FX_REALM,
                                      strlen(FX_REALM), (const uint8_t *)pw, strlen(pw), key);
        else
            stun_long_term_key((const uint8_t *)u, strlen(u), (const uint8_t *)FX_REALM,
                               strlen(FX_REALM), (const uint8_t *)pw, strlen(pw), key);
    } else {
        kl = fx_key(c, user ? user : "", key);
    }
    if (c->sha256)
        stun_builder_add_integrity_sha256(b, key, kl);
    else
        stun_builder_add_integrity(b, key, kl);
}

/* Gets a nonce with an unauthenticated Refresh (answered 401 + NONCE). */
FX void fx_challenge(fake *f, client *c)
{
    stun_builder b;
    fx_begin(c, &b, STUN_METHOD_REFRESH, STUN_CLASS_REQUEST);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME,
                         600); /* a bare header gets a 400, not a challenge */
    fx_feed(f, c, &b);
}

/* Signs and feeds; fetches a nonce first when c has none, and retries once on 438. */
FX int fx_signed(fake *f, client *c, stun_builder *b)
{
    if (!c->nonce_len) {
        /* the message under construction lives in c->buf: rebuild is the caller's job, so
         * callers get a nonce before beginning (fx_req does) */
        abort();
    }
    fx_sign(c, b, c->user, FX_REALM, NULL);
    return fx_feed(f, c, b);
}

/* Attribute adders for fx_req. */
typedef void (*fx_attrs)(stun_builder *b, void *arg);

/* One authenticated request of method with extra attributes; handles the nonce dance. */
FX int fx_req(fake *f, client *c, uint16_t method, fx_attrs add, void *arg)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!c->nonce_len)
            fx_challenge(f, c);
        stun_builder b;
        fx_begin(c, &b, method, STUN_CLASS_REQUEST);
        if (add)
            add(&b, arg);
        int code = fx_signed(f, c, &b);
        if (code != 438)
            return code;
    }
    return 438;
}

FX void fx_add_udp(stun_builder *b, void *arg)
{
    (void)arg;
    stun_builder_add_requested_transport(b, STUN_TRANSPORT_UDP);
}

FX void fx_add_lifetime(stun_builder *b, void *arg)
{
    stun_builder_add_u32(b, STUN_ATTR_LIFETIME, *(uint32_t *)arg);
}

FX void fx_add_peer(stun_builder *b, void *arg)
{
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, arg);
}

FX int fx_allocate(fake *f, client *c)
{
    return fx_req(f, c, STUN_METHOD_ALLOCATE, fx_add_udp, NULL);
}

FX int fx_refresh(fake *f, client *c, uint32_t lifetime)
{
    return fx_req(f, c, STUN_METHOD_REFRESH, fx_add_lifetime, &lifetime);
}

FX int fx_permit(fake *f, client *c, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    fx_addr(&ss, ip, port);
    return fx_req(f, c, STUN_METHOD_CREATE_PERMISSION, fx_add_peer, &ss);
}

typedef struct {
    uint16_t ch;
    struct sockaddr_storage peer;
} fx_bind_arg;

FX void fx_add_bind(stun_builder *b, void *arg)
{
    fx_bind_arg *a = arg;
    stun_builder_add_channel_number(b, a->ch);
    stun_builder_add_xor_address(b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&a->peer);
}

FX int fx_bind(fake *f, client *c, uint16_t ch, const char *ip, uint16_t port)
{
    fx_bind_arg a = {.ch = ch};
    fx_addr(&a.peer, ip, port);
    return fx_req(f, c, STUN_METHOD_CHANNEL_BIND, fx_add_bind, &a);
}

/* A Send indication from c to ip:port. */
FX void fx_send_ind(fake *f, client *c, const char *ip, uint16_t port, const char *data)
{
    stun_builder b;
    struct sockaddr_storage ss;
    fx_addr(&ss, ip, port);
    fx_begin(c, &b, STUN_METHOD_SEND, STUN_CLASS_INDICATION);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, (const struct sockaddr *)&ss);
    stun_builder_add(&b, STUN_ATTR_DATA, data, strlen(data));
    int n = stun_builder_finish(&b);
    turn_server_input(f->s, &c->t, c->buf, (size_t)n, f->now);
}

FX void fx_peer_in(fake *f, uint64_t id, const char *ip, uint16_t port, const char *data)
{
    struct sockaddr_storage ss;
    turn_server_peer_input(f->s, id, fx_sa(&ss, ip, port), (const uint8_t *)data, strlen(data),
                           f->now);
}

FX turn_stats fx_stats(const fake *f)
{
    turn_stats st;
    turn_server_stats(f->s, &st);
    return st;
}

#endif
