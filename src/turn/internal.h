/* turn/internal.h: structures and cross-file helpers of the TURN state machine.
 *
 * Files:
 *   hmap.c      intrusive chained hash map + SipHash-2-4 / SipHash-1-3 (keyed, so clients cannot
 *               flood buckets)
 *   nonce.c     stateless nonces bound to the 5-tuple
 *   reply.c     response building (SOFTWARE, MI, MI-SHA256, FINGERPRINT) and sending
 *   server.c    turn_server_new/free, input dispatch, Binding, long-term credential check
 *   alloc.c     allocation table (by 5-tuple and by id), quota, removal, lifecycle scans, timers
 *   allocate.c  Allocate and Refresh
 *   perm_chan.c permissions and channels, CreatePermission and ChannelBind
 *   data.c      Send indication, ChannelData, peer input (Data indication / ChannelData out)
 *   stats.c     counters, their names, turn_server_stats, the allocation-ended report
 *   tcp_relay.c RFC 6062: Connect, ConnectionBind, ConnectionAttempt, peer connections
 *
 * Nothing here calls back into the server from an ops callback: ops must not re-enter the
 * turn_server they were called from. */
#ifndef TURNKEY_TURN_INTERNAL_H
#define TURNKEY_TURN_INTERNAL_H

#include "turnkey/stun.h"
#include "turnkey/timer.h"
#include "turnkey/turn.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- limits --------------------------------------------------------------------------- */

#define TURN__TICK_BUDGET 1024           /* expiries handled per turn_server_tick */
#define TURN__MAX_PERMS_PER_ALLOC 512    /* more → 508 on CreatePermission / ChannelBind */
#define TURN__MAX_CHANS_PER_ALLOC 512    /* channels (cooling ones included); more → 508 */
#define TURN__CHANNEL_COOLDOWN_MS 300000 /* RFC 8656 §12: number/peer not reusable for 5 min */
#define TURN__REPLY_CAP 1536             /* responses are built on the stack in this much */
#define TURN__SCRATCH_CAP (STUN_HEADER_SIZE + 65535 + 64) /* Data indications / ChannelData */
#define TURN__TUPLE_KEY_LEN 48
#define TURN__NONCE_LEN 24 /* hex: expiry (s, 8) + serial (4) + MAC (12) */
/* A request without integrity shorter than this gets a bare 400, not a 401 challenge. */
#define TURN__CHALLENGE_MIN 28
/* An allocation with at most this many permissions (channels) finds them by scanning its own
 * list; above it, through the server-wide keyed hash maps (which always hold every entry). */
#define TURN__SCAN_MAX 16

/* ---- hash map ------------------------------------------------------------------------- */

typedef struct turn__hnode {
    struct turn__hnode *next;
    uint64_t hash;
} turn__hnode;

typedef struct turn__hmap {
    turn__hnode **buckets;
    size_t n_buckets; /* power of two */
    size_t count;
} turn__hmap;

uint64_t turn__siphash(const uint8_t key[16], const void *data, size_t len);
/* SipHash-1-3 of n 64-bit words (host order) under the key k[2]: the per-packet keyed hash. */
uint64_t turn__siphash13_words(const uint64_t k[2], const uint64_t *w, size_t n);
void turn__hmap_init(turn__hmap *m);
void turn__hmap_dispose(turn__hmap *m);
void turn__hmap_insert(turn__hmap *m, turn__hnode *n, uint64_t hash);
void turn__hmap_remove(turn__hmap *m, turn__hnode *n);
/* First node of the chain that may hold hash; walk ->next and compare hash and key. */
static inline turn__hnode *turn__hmap_chain(const turn__hmap *m, uint64_t hash)
{
    return m->buckets[(size_t)hash & (m->n_buckets - 1)];
}

#define TURN__CONTAINER_OF(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- canonical addresses -------------------------------------------------------------- */

/* The parts of a sockaddr that identify it (as turn__addr_key): IPv4 or IPv6 address bytes,
 * port, family. Any other family loads as all zero (so all such addresses are alike). Compare
 * field by field (never memcmp: padding). */
typedef struct turn__addr {
    union {
        uint8_t b[16]; /* IPv4: the first 4 bytes, the rest zero */
        uint64_t w[2];
    } ip;
    uint16_t port; /* network order */
    uint8_t fam;   /* 4, 6 or 0 */
} turn__addr;

static inline void turn__addr_load(const struct sockaddr *sa, turn__addr *k)
{
    k->ip.w[0] = 0;
    k->ip.w[1] = 0;
    k->port = 0;
    k->fam = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        memcpy(k->ip.b, &s4->sin_addr, 4);
        k->port = s4->sin_port;
        k->fam = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(k->ip.b, &s6->sin6_addr, 16);
        k->port = s6->sin6_port;
        k->fam = 6;
    }
}

/* Same family and IP (the port is ignored: permissions). */
static inline bool turn__ip_eq(const turn__addr *x, const turn__addr *y)
{
    return x->ip.w[0] == y->ip.w[0] && x->ip.w[1] == y->ip.w[1] && x->fam == y->fam;
}

static inline bool turn__addr_eq(const turn__addr *x, const turn__addr *y)
{
    return turn__ip_eq(x, y) && x->port == y->port;
}

/* A client 5-tuple in canonical form: what turn__tuple_key encodes, as fields. */
typedef struct turn__tkey {
    turn__addr client, server;
    uint64_t conn_id;
    uint8_t proto;
} turn__tkey;

/* ---- timers: one heap, entries tagged with their owner's kind --------------------------- */

enum { TURN__T_ALLOC = 1, TURN__T_PERM = 2, TURN__T_CHAN = 3, TURN__T_TCP = 4 };

typedef struct turn__timer {
    timer_entry e;
    uint8_t kind;
} turn__timer;

/* ---- bandwidth cap (data.c) ------------------------------------------------------------ */

/* A token bucket of one direction. Tokens are in thousandths of a bit (bps x ms), so a refill
 * is exact integer arithmetic; the bucket holds at most TURN__BW_BURST bytes. */
typedef struct turn__bucket {
    uint64_t tokens;
    int64_t last_ms;
} turn__bucket;
#define TURN__BW_MAX 1000000000000ull /* bps above this (1 Tbit/s) count as this */
#define TURN__BW_BURST_MIN 3000       /* bytes: a bucket holds at least this much */

/* ---- objects -------------------------------------------------------------------------- */

typedef struct turn__user {
    turn__hnode node;
    size_t count;                       /* live allocations */
    struct turn__alloc *allocs;         /* ...listed (u_prev/u_next): revocation visits only them */
    struct turn__keyrec *key;           /* the TURN key of this username (NULL: none) */
    struct turn__user *k_prev, *k_next; /* the key's users */
    turn__hnode by_sha;                 /* in users_by_sha: the feed's revocations name it so */
    uint8_t sha[32];                    /* SHA-256 of the username */
    size_t len;
    uint8_t name[]; /* username bytes */
} turn__user;

/* The usernames of one TURN key with live allocations: a key deletion visits only them. */
typedef struct turn__keyrec {
    turn__hnode node;
    turn__user *users;
    char id[33];
} turn__keyrec;

typedef struct turn__perm {
    turn__hnode node;
    struct turn__alloc *alloc;
    struct turn__perm *prev, *next; /* the allocation's list */
    turn__addr ip;                  /* the peer IP (port 0) */
    turn__timer timer;
} turn__perm;

typedef struct turn__chan {
    turn__hnode by_num, by_peer;
    struct turn__alloc *alloc;
    struct turn__chan *prev, *next; /* the allocation's list */
    uint16_t number;
    bool cooling; /* expired: kept only to block reuse for the cool-down */
    struct sockaddr_storage peer;
    turn__addr peer_k; /* peer, canonical */
    turn__timer timer;
} turn__chan;

typedef struct turn__alloc {
    turn__hnode by_tuple, by_id;
    struct turn__alloc *prev, *next;     /* every allocation (free) */
    struct turn__alloc *u_prev, *u_next; /* the user's allocations */
    uint64_t id;
    turn_5tuple tuple;
    turn__tkey tk; /* tuple, canonical */
    int family;    /* of the (first) relayed address */
    struct sockaddr_storage relayed;
    /* A dual allocation (ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §7.2) also holds an IPv6 relay,
     * relay id = id | TURN_RELAY_ID_DUAL. open: which relays are open (TURN__OPEN_*); a
     * Refresh with LIFETIME 0 and REQUESTED-ADDRESS-FAMILY closes one of the two. */
    struct sockaddr_storage relayed2;
    uint8_t open;
    turn__user *user; /* quota record, also holds the username */
    turn_auth_info info;
    uint8_t key[32]; /* long-term key of the last authenticated request */
    size_t keylen;
    uint8_t txid[STUN_TXID_SIZE]; /* of the Allocate that created it */
    uint8_t *resp;                /* its success response, resent on retransmission */
    size_t resp_len;
    int64_t expires_ms;
    turn__timer timer;
    turn__perm *perms;
    turn__chan *chans;
    size_t n_perms;
    size_t n_chans; /* in the chans list, cooling ones included */
    bool opened;    /* the relay opened: counted in stats.allocs_by, reported when it ends */
    int64_t start_ms, last_data_ms;
    turn_traffic traffic;
    uint64_t usage_egress, usage_ingress; /* client-leg bytes reported (turn_server_usage) */
    int64_t usage_ms;                     /* allocation time reported up to here */
    bool tcp;               /* RFC 6062 TCP allocation: relays through peer connections */
    struct turn__tcp *tcps; /* its peer connections */
    size_t n_tcp;
    /* The bandwidth cap taken at Allocate (bits per second and direction; 0 = none) and its
     * buckets: client → peer (up) and peer → client (down). */
    uint64_t bw_bps;
    turn__bucket bw_up, bw_down;
} turn__alloc;

/* One RFC 6062 peer connection of a TCP allocation (tcp_relay.c). */
typedef struct turn__tcp {
    turn__hnode node; /* server's tcp map, by cid */
    struct turn__alloc *alloc;
    struct turn__tcp *prev, *next; /* the allocation's list */
    uint32_t cid;
    uint8_t state;  /* TURN__TCP_CONNECTING / _PENDING / _BOUND */
    bool outgoing;  /* made by a Connect (answered when it completes) */
    bool fp, mi256; /* the Connect had FINGERPRINT / MI-SHA256 */
    uint8_t txid[STUN_TXID_SIZE];
    turn__addr peer_k;
    turn__timer timer; /* connect timeout, then the ConnectionBind timeout */
} turn__tcp;
enum { TURN__TCP_CONNECTING = 1, TURN__TCP_PENDING = 2, TURN__TCP_BOUND = 3 };
#define TURN__TCP_TIMEOUT_MS 30000 /* RFC 6062 §5.2, §5.3: connect and bind, 30 s */

struct turn_server {
    turn_config cfg;
    turn_ops ops;
    char *realm, *software;
    size_t realm_len, software_len;
    uint8_t hash_key[16];
    uint64_t sip_k[2]; /* hash_key as two words, for turn__siphash13_words */
    timer_heap timers;
    turn__hmap by_tuple, by_id, users, keys, perms, chans_by_num, chans_by_peer;
    turn__hmap users_by_sha; /* the same users by SHA-256 of the username */
    turn__alloc *allocs;     /* list head */
    uint64_t next_id;
    uint16_t nonce_serial;   /* nonce.c: makes every nonce of this server differ */
    size_t n_perms, n_chans; /* n_chans counts active (not cooling) channels */
    turn_stats stats;
    int64_t now_ms;   /* the latest time the server was given (for end reports) */
    uint8_t *scratch; /* TURN__SCRATCH_CAP bytes for peer → client messages */
    turn__hmap tcp;   /* peer connections by cid (tcp_relay.c) */
    uint32_t next_cid;
};

/* ---- one request in flight ------------------------------------------------------------ */

typedef struct turn__req {
    turn_server *s;
    const turn_5tuple *t;
    const stun_msg *m;
    int64_t now_ms;
    bool authed;     /* integrity verified: responses carry MI */
    bool mi256;      /* the request used MESSAGE-INTEGRITY-SHA256 */
    uint8_t key[32]; /* valid when authed */
    size_t keylen;
    const uint8_t *user;
    size_t user_len;
    turn_auth_info info;
    int code; /* the error code being answered (0: success), for the request counters */
} turn__req;

/* ---- reply.c -------------------------------------------------------------------------- */

enum { TURN__WITH_NONCE = 1 }; /* error flag: add REALM + a fresh NONCE */

/* Starts a response of class cls to r->m (SOFTWARE added when configured). */
void turn__reply_begin(turn__req *r, stun_builder *b, uint8_t *buf, size_t cap, uint8_t cls);
/* Adds MI (+ MI-SHA256) when authenticated, FINGERPRINT when the request had one, sends it.
 * Returns the message length, or a negative STUN_ERR_* (nothing sent). */
int turn__reply_send(turn__req *r, stun_builder *b);
/* Builds and sends an error response. */
void turn__reply_error(turn__req *r, int code, int flags);
/* Same with a reason phrase (NULL = the standard one for code). */
void turn__reply_error_reason(turn__req *r, int code, const char *reason, int flags);

/* ---- nonce.c -------------------------------------------------------------------------- */

void turn__nonce_make(turn_server *s, const turn_5tuple *t, int64_t now_ms,
                      char out[TURN__NONCE_LEN]);
bool turn__nonce_check(const turn_server *s, const turn_5tuple *t, int64_t now_ms,
                       const uint8_t *nonce, size_t len);
/* Canonical bytes of a 5-tuple (proto, conn_id, both addresses), zero-padded. */
void turn__tuple_key(const turn_5tuple *t, uint8_t out[TURN__TUPLE_KEY_LEN]);
/* The canonical fields of a 5-tuple (the same information as turn__tuple_key). */
void turn__tkey_load(const turn_5tuple *t, turn__tkey *k);
/* family (1) + IP (16) [+ port (2) if with_port] of sa into out; returns bytes written. */
size_t turn__addr_key(const struct sockaddr *sa, bool with_port, uint8_t *out);

/* ---- alloc.c -------------------------------------------------------------------------- */

turn__alloc *turn__alloc_find_tuple(const turn_server *s, const turn_5tuple *t);
turn__alloc *turn__alloc_find_id(const turn_server *s, uint64_t id);
/* Quota record of username (creates it when create is set; NULL otherwise if absent). */
turn__user *turn__user_get(turn_server *s, const uint8_t *name, size_t len, bool create);
/* A new allocation, inserted in the tables, counted on its user; relay not opened yet. */
/* key_id: the TURN key of the username (indexed for turn_server_key_deleted; "" = none). */
turn__alloc *turn__alloc_insert(turn_server *s, const turn_5tuple *t, turn__user *u,
                                const char *key_id);
/* Removes it from every table, frees its permissions and channels, closes the relay if
 * relay_open had succeeded (relay_opened), releases the quota and frees it. */
void turn__alloc_remove(turn_server *s, turn__alloc *a, bool relay_opened);
/* Ends an allocation whose relay is open: counts and reports it (reason: enum
 * turn_end_reason), then turn__alloc_remove(s, a, true). */
void turn__alloc_end(turn_server *s, turn__alloc *a, int reason);
/* (Re)schedules the allocation's expiry. */
void turn__alloc_schedule(turn_server *s, turn__alloc *a, int64_t expires_ms);
bool turn__same_user(const turn__alloc *a, const uint8_t *user, size_t len);

/* ---- allocate.c ----------------------------------------------------------------------- */

void turn__handle_allocate(turn__req *r);
void turn__handle_refresh(turn__req *r, turn__alloc *a);
/* Lifetime rule of RFC 8656 §7.2 / §8 for a requested value (absent → has = false). */
uint32_t turn__lifetime(const turn_server *s, bool has, uint32_t requested);

/* ---- perm_chan.c ---------------------------------------------------------------------- */

void turn__handle_create_permission(turn__req *r, turn__alloc *a);
void turn__handle_channel_bind(turn__req *r, turn__alloc *a);
turn__perm *turn__perm_find(const turn_server *s, const turn__alloc *a,
                            const struct sockaddr *peer);
/* The same with the peer already in canonical form (the relay paths load it once). */
turn__perm *turn__perm_find_k(const turn_server *s, const turn__alloc *a, const turn__addr *k);
turn__chan *turn__chan_by_num(const turn_server *s, const turn__alloc *a, uint16_t num);
turn__chan *turn__chan_by_peer(const turn_server *s, const turn__alloc *a,
                               const struct sockaddr *peer);
turn__chan *turn__chan_by_peer_k(const turn_server *s, const turn__alloc *a, const turn__addr *k);
void turn__perm_remove(turn_server *s, turn__perm *p);
void turn__chan_remove(turn_server *s, turn__chan *c);
/* Timer expiry of a channel: active → cooling (rescheduled), cooling → removed. */
void turn__chan_expired(turn_server *s, turn__chan *c, int64_t now_ms);

/* Installs or refreshes the permission for peer's IP. */
void turn__perm_install(turn_server *s, turn__alloc *a, const struct sockaddr *peer,
                        int64_t now_ms);
/* The same for a canonical address (its port is ignored). */
void turn__perm_install_k(turn_server *s, turn__alloc *a, const turn__addr *peer_k, int64_t now_ms);

/* ---- tcp_relay.c ---------------------------------------------------------------------- */

/* REQUESTED-TRANSPORT TCP checks (RFC 6062 §5.1): 0 or the error code. */
int turn__tcp_allocate_checks(const turn__req *r, int *family);
void turn__handle_connect(turn__req *r, turn__alloc *a);
void turn__handle_connection_bind(turn__req *r);
/* Closes every peer connection of a (ops->peer_close), before it is freed. */
void turn__tcp_alloc_gone(turn_server *s, turn__alloc *a);
void turn__tcp_expired(turn_server *s, turn__tcp *c, int64_t now_ms);
void turn__tcp_init(turn_server *s);
void turn__tcp_dispose(turn_server *s);

/* ---- data.c --------------------------------------------------------------------------- */

void turn__handle_send(turn_server *s, const turn_5tuple *t, const stun_msg *m);
/* Sets a's bandwidth cap (0 = none; clamped to TURN__BW_MAX), both buckets full at now. */
void turn__bw_init(turn__alloc *a, uint64_t bps, int64_t now_ms);
void turn__handle_channeldata(turn_server *s, const turn_5tuple *t, const uint8_t *buf, size_t len);

/* ---- stats.c -------------------------------------------------------------------------- */

/* Counts one response to r (r->code: 0 = success, else the error code). */
void turn__count_reply(turn__req *r);
/* Counts an authentication failure and tells ops->auth_failed. */
void turn__auth_failed(turn__req *r, int reason);
/* peer_allowed, counting a denial by its class. */
bool turn__peer_allowed(turn_server *s, const struct sockaddr *peer);
/* An allocation is open (counted live by transport and family). */
void turn__count_opened(turn_server *s, turn__alloc *a);
static inline void turn__flow_add(turn_flow *f, turn_flow *total, size_t bytes)
{
    f->bytes += bytes;
    f->packets++;
    total->bytes += bytes;
    total->packets++;
}

/* ---- server.c ------------------------------------------------------------------------- */

/* Peer address family matches the allocation's relay. */
enum { TURN__OPEN_FIRST = 1, TURN__OPEN_SECOND = 2 };
/* The peer's family is one the allocation relays (an open relay of that family). */
bool turn__family_ok(const turn__alloc *a, const struct sockaddr *peer);
/* The relay id that reaches peers of `family` (the first relay's unless dual and IPv6). */
uint64_t turn__relay_id(const turn__alloc *a, int family);

#endif
