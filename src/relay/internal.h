/* relay internals shared by the files of src/relay (not a public header). */
#ifndef TURNKEY_RELAY_INTERNAL_H
#define TURNKEY_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "turnkey/ev.h"
#include "turnkey/log.h"
#include "turnkey/relay.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"

#define RELAY_READ_BUDGET 64             /* datagrams per socket per wakeup (n x RELAY_BATCH) */
#define RELAY_BATCH 16                   /* datagrams per recvmmsg */
#define RELAY_LISTENER_SOCKBUF (8 << 20) /* UDP listener receive/send buffer, bytes */
#define RELAY_TX_BATCH 32                /* datagrams queued for one sendmmsg round */
#define RELAY_TX_SLOT 2048               /* larger datagrams are sent at once, unbatched */
#define RELAY_DGRAM_MAX 4096 /* larger UDP datagrams are dropped (MTU-sized is the norm) */
#define RELAY_CONN_OUT_MAX (128u << 10) /* queued bytes per TCP client before frames drop */
/* A stream frame (STUN message or ChannelData) larger than this closes the connection: UDP
 * datagrams above RELAY_DGRAM_MAX are dropped anyway, so nothing legitimate is larger, and a
 * half-sent frame holds at most this much. */
#define RELAY_CONN_IN_MAX 8192
/* Kernel send buffer of a TCP/TLS client socket (fixed: autotuning lets one that never reads
 * make the kernel hold 4 MiB; the kernel doubles this figure for its bookkeeping). */
#define RELAY_CONN_SNDBUF (256 << 10)
#define RELAY_CONN_READS_PER_WAKEUP 8   /* reads (<= RELAY_CONN_IN_MAX bytes each) per wakeup */
#define RELAY_CONN_FRAMES_PER_WAKEUP 64 /* frames handled per connection per wakeup */
#define RELAY_ACCEPT_BACKOFF_MS 250     /* listener paused this long after EMFILE/ENFILE */
#define RELAY_DEFAULT_MAX_CONNS 10000
#define RELAY_DEFAULT_MAX_CONNS_PER_IP 100
#define RELAY_DEFAULT_HANDSHAKE_MS 5000
#define RELAY_SECRET_KEYS_MAX 3 /* x STORE_SHARED_SECRET_MAX <= TURN_AUTH_CANDIDATES_MAX */
#define RELAY_SECRET_SKEW_S 60  /* clock skew allowed beyond a secret's max_ttl */
#define RELAY_PKTINFO_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo)) /* >= in_pktinfo */

typedef struct relay relay;
typedef struct relay_worker relay_worker;

typedef struct relay_sock {
    struct relay_sock *next;
    int fd;
    uint64_t alloc_id;
    relay_worker *owner;
    int slot;      /* peer_relays slot of the bound address (-1: none, no hairpin) */
    uint16_t port; /* bound port */
} relay_sock;

/* One configured listener address (shared, fixed at start). */
typedef struct relay_laddr {
    struct sockaddr_storage addr; /* the real port once worker 0 bound it */
    const char *text;
    unsigned kinds; /* RELAY_UDP | RELAY_TCP | RELAY_TLS */
    bool wildcard;  /* 0.0.0.0 or [::]: UDP learns the local address per datagram */
    bool v6only;    /* [::] beside an IPv4 listener on the same port */
} relay_laddr;

/* One listening socket of a worker. For UDP, its index in relay_worker.ls is the turn
 * 5-tuple's conn_id (so replies leave on the socket the request came in on). */
typedef struct relay_lsock {
    int fd;
    unsigned kind; /* RELAY_UDP, RELAY_TCP or RELAY_TLS */
    const relay_laddr *la;
    relay_worker *owner;
} relay_lsock;

typedef struct relay_conn {
    struct relay_conn *hs_prev, *hs_next; /* the worker's list of connections not proven yet */
    int64_t hs_deadline;                  /* monotonic ms: closed if not proven by then */
    bool proven;   /* a valid STUN message arrived (after the TLS handshake, for TLS) */
    bool admitted; /* counted by relay__conn_admit: released when freed */
    bool resume;   /* on the worker's resume list (work left after its budget) */
    int fd;
    struct ssl_st *ssl;  /* TLS connections only */
    bool tls_want_write; /* OpenSSL needs the socket writable to go on */
    bool mux;            /* on a RELAY_MUX listener, not yet told TURN from HTTP */
    bool handoff;        /* HTTP: conn_free hands fd and ssl to the HTTPS side */
    uint64_t id;
    turn_5tuple t;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    bool dead;
    bool tls_done;     /* the TLS handshake completed (counted once) */
    bool dirty;        /* frames queued since the last flush (on the worker's dirty list) */
    unsigned interest; /* the epoll interest last set */
    relay_worker *owner;
    uint32_t pipe_cid; /* RFC 6062: became the data connection of this peer connection */
    int to_worker;     /* > 0: 1 + the worker its ConnectionBind belongs to (relay_tcp.c) */
} relay_conn;

/* One lifecycle event, shared by the copies queued to every worker: the last worker done
 * with it records the revocation latency (relay_obs.c). */
typedef struct relay_track {
    _Atomic size_t pending; /* workers still to handle it */
    _Atomic bool ended_any;
    int64_t at_us; /* when it reached the relay (monotonic, microseconds) */
} relay_track;

enum {
    RELAY_EV_KEY_DELETED = 1,
    RELAY_EV_REVOKED = 2,
    RELAY_EV_REVOKED_HASH = 3,
    RELAY_EV_SECRET_DELETED = 4,
    RELAY_EV_CONN = 5,  /* a TCP/TLS connection handed over by another worker (conn) */
    RELAY_EV_BUDGET = 6 /* "KEYUID/CID" or "KEYUID": an end_allocations budget trip */
};

typedef struct relay_event {
    struct relay_event *next;
    int kind;
    relay_track *track;
    struct relay_conn *conn; /* RELAY_EV_CONN */
    char text[];
} relay_event;

#define RELAY__STAT_WORDS (sizeof(turn_stats) / sizeof(uint64_t))

/* What a worker publishes (relay_obs.c): written by the worker, read by any thread. */
typedef struct relay_pub {
    _Atomic uint64_t turn[RELAY__STAT_WORDS];
    _Atomic uint64_t tls_ok, tls_failed;
} relay_pub;

typedef struct relay_ring {
    _Atomic size_t head; /* next to read (consumer) */
    _Atomic size_t tail; /* next to write (producer) */
    _Atomic uint64_t dropped;
    relay_ended slot[RELAY_ENDED_RING];
} relay_ring;

/* Allocation quotas shared by the workers (taken on Allocate, never per packet). */
typedef struct relay_quota_entry {
    struct relay_quota_entry *next;
    uint32_t count;
    size_t len;
    uint8_t name[];
} relay_quota_entry;

typedef struct relay_ip_entry relay_ip_entry;
enum { RELAY_ADMIT_OK = 0, RELAY_ADMIT_PER_IP = 1, RELAY_ADMIT_TOTAL = 2 };

/* What every worker shares; read-only after start except the quota (under its mutex) and
 * the connection counts (under ip_mu, relay_limits.c). */
struct relay {
    relay_worker **w;
    size_t n_workers;
    peer_policy peers;
    peer_relays *relays; /* live relay ports by bind address (hairpin), external mappings */
    size_t n_external;
    keycache *keys;
    tls_server *tls;
    tls_server *mux_tls; /* RELAY_MUX listeners, and where their HTTP connections go */
    void (*http_adopt)(void *ctx, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                       const struct sockaddr_storage *peer);
    void *http_ctx;
    relay_laddr *lst;
    size_t n_lst;
    /* Relay bind addresses by family (0 IPv4, 1 IPv6): --relay-ip (port 0) when
     * has_relay_ip[f]; else the address a request reached; else (the other family asked for,
     * e.g. a dual allocation) the first specific listener address of that family. */
    struct sockaddr_storage relay_addr[2], fallback_addr[2];
    bool has_relay_ip[2], has_fallback[2];
    uint16_t port_lo, port_hi;
    uint8_t nonce_secret[32];
    pthread_mutex_t quota_mu;
    relay_quota_entry **quota;
    size_t quota_nb, quota_total;
    uint32_t user_quota, max_allocations;
    uint32_t nonce_lifetime_s, challenge_rate;
    bool draining; /* relay_drain: refuse every new allocation (under quota_mu) */
    pthread_mutex_t ip_mu;
    relay_ip_entry **ip; /* source address (IPv4, IPv6 /64) -> live TCP/TLS connections */
    size_t ip_nb, n_ips;
    uint64_t ip_seed, ip_seed2;
    uint32_t n_conns, max_conns, max_conns_per_ip;
    int64_t handshake_ms;
    /* revocation latency (relay_obs.c), atomics: written by the last worker of an event */
    _Atomic uint64_t revoke_hist[RELAY_REVOKE_BUCKETS + 1];
    _Atomic uint64_t revoke_count, revoke_sum_us;
    log_limiter auth_log; /* rate limit of the authentication-failure lines */
    /* usage accounting (relay_usage.c) */
    bool usage;
    size_t usage_ring;
    void (*usage_last)(void *ctx, size_t worker, const usage_record *r);
    void *usage_ctx;
    _Atomic uint32_t paused_listeners; /* listener sockets paused after EMFILE/ENFILE */
    /* --shared-secret-keys (relay_secret.c): whose secrets unnamed usernames try */
    char secret_keys[RELAY_SECRET_KEYS_MAX][STORE_ID_LEN + 1];
    size_t n_secret_keys;
};

/* One event-loop thread: its own listeners (SO_REUSEPORT), turn_server, relay sockets and
 * connections. Nothing here is touched by another thread except the event queue. */
struct relay_worker {
    relay *shared;
    ev_loop *loop;
    pthread_t thread;
    bool running;
    turn_server *turn;
    relay_lsock *ls; /* one per (listener, kind), the same order in every worker */
    size_t n_ls;
    uint32_t rand[64]; /* CSPRNG draws not used yet (relay__random_u32) */
    size_t n_rand;
    uint32_t challenge_rate; /* relay_guard.c: 401/438 per second per source, 0 = no limit */
    struct relay_bucket *buckets;
    uint64_t guard_key[2];
    ev_timer timer;
    relay_sock **rs; /* alloc_id -> relay socket */
    size_t rs_nb, rs_n;
    relay_conn **conns; /* by fd */
    size_t conns_cap;
    uint32_t conn_gen;
    uint64_t *dirty; /* ids of connections with frames to write at the end of this wakeup */
    size_t n_dirty, cap_dirty;
    pthread_mutex_t q_mu;
    relay_event *q_head, *q_tail;
    uint64_t send_errors;
    uint64_t tls_ok, tls_failed;
    ev_timer pub_timer; /* publishes the counters once a second */
    relay_pub pub;
    relay_ring *ended;
    size_t index;               /* in relay.w */
    struct usage_carry *ucarry; /* relay_usage.c: NULL when usage accounting is off */
    struct usage_ring *uring;
    ev_timer usage_timer;
    unsigned usage_ticks;
    /* Receive buffers for a whole wakeup's reading on one socket (RELAY_READ_BUDGET), each
     * datagram at offset TURN_PEER_HEADROOM: the ChannelData header for a client is written
     * in front of a peer's payload. They stay untouched until the tx queue, which may point
     * into them, is flushed (relay_tx.c). */
    struct mmsghdr mm[RELAY_READ_BUDGET];
    struct iovec iov[RELAY_READ_BUDGET];
    struct sockaddr_storage from[RELAY_READ_BUDGET];
    /* the local address of each datagram on a wildcard UDP listener (IP(V6)_PKTINFO) */
    _Alignas(struct cmsghdr) uint8_t rx_cmsg[RELAY_READ_BUDGET][RELAY_PKTINFO_SPACE];
    uint8_t rx[RELAY_READ_BUDGET][TURN_PEER_HEADROOM + RELAY_DGRAM_MAX];
    /* outgoing datagrams, written with sendmmsg at the end of the wakeup (relay_tx.c) */
    int n_tx;
    int n_tx_borrowed; /* queued datagrams that point into rx instead of tx_buf */
    int tx_fd[RELAY_TX_BATCH];
    struct mmsghdr tx_mm[RELAY_TX_BATCH];
    struct iovec tx_iov[RELAY_TX_BATCH];
    struct sockaddr_storage tx_to[RELAY_TX_BATCH];
    struct sockaddr_storage tx_src[RELAY_TX_BATCH]; /* source to set (wildcard listeners) */
    bool tx_has_src[RELAY_TX_BATCH];
    uint8_t tx_buf[RELAY_TX_BATCH][RELAY_TX_SLOT];
    /* per message of a flush: a PKTINFO source, then a UDP_SEGMENT (relay_tx.c) */
    _Alignas(struct cmsghdr)
        uint8_t tx_cmsg[RELAY_TX_BATCH][RELAY_PKTINFO_SPACE + CMSG_SPACE(sizeof(uint16_t))];
    bool tx_gso_off; /* the kernel refused UDP GSO: one datagram per message */
    /* relay_conn.c: connections not proven yet (accept order = deadline order), connections
     * with work left after their per-wakeup budget, listeners paused after EMFILE */
    relay_conn *hs_head, *hs_tail;
    ev_timer hs_timer, resume_timer, accept_timer;
    uint64_t *resume_ids;
    size_t n_resume, cap_resume;
    int *paused; /* listener fds */
    size_t n_paused, cap_paused;
    log_limiter rl_accept, rl_refused, rl_conn, rl_port, rl_event; /* one per call site */
    struct relay_tcp *tcp; /* relay_tcp.c: TCP relays and peer connections (RFC 6062) */
};

void relay__arm_timer(relay_worker *r);
/* The length of a sockaddr of this family (AF_INET or AF_INET6), for bind/sendto. */
static inline socklen_t relay__addr_len(sa_family_t family)
{
    return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* relay_tx.c: queue one datagram on fd (sent by relay__tx_flush), and send the queue. A
 * datagram inside r->rx is referenced, not copied; anything else is copied. */
void relay__tx_queue(relay_worker *r, int fd, const struct sockaddr *to, const uint8_t *buf,
                     size_t len);
/* The same, sent from the local address src (a wildcard listener answering from the address
 * the request reached; src in the socket's family). */
void relay__tx_queue_from(relay_worker *r, int fd, const struct sockaddr *to,
                          const struct sockaddr_storage *src, const uint8_t *buf, size_t len);
/* Writes an IP_PKTINFO or IPV6_PKTINFO control message that sends from src; its length. */
size_t relay__put_pktinfo(uint8_t *buf, const struct sockaddr_storage *src);
void relay__tx_flush(relay_worker *r);
void relay__on_accept(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__on_accept_tls(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__on_accept_mux(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__conn_send(relay_worker *r, uint64_t conn_id, const uint8_t *buf, size_t len);
/* Timers and log limiters of a worker's connections (before any accept). */
void relay__conns_init(relay_worker *r);
void relay__conns_close_all(relay_worker *r);
/* Writes every connection's queued frames (one write per connection per wakeup). */
void relay__flush_conns(relay_worker *r);

/* relay_listen.c: addresses and listening sockets */
/* ::ffff:a.b.c.d becomes a.b.c.d (dual-stack sockets); anything else is left alone. */
void relay__unmap(struct sockaddr_storage *ss);
/* a.b.c.d becomes ::ffff:a.b.c.d (to send on an IPv6 dual-stack socket). */
void relay__map_v6(const struct sockaddr_storage *in, struct sockaddr_storage *out);
void relay__set_port(struct sockaddr_storage *ss, uint16_t port);
uint16_t relay__port_of(const struct sockaddr_storage *ss);
/* Parses the configured listeners into r->lst; 0 or -1 with *err. */
int relay__setup_listeners(relay *r, const relay_config *cfg, char **err);
/* Opens worker w's sockets for every listener (worker 0 first: it fixes port-0 ports). */
int relay__open_listeners(relay_worker *w, bool first, char **err);
void relay__close_listeners(relay_worker *w);
/* Registers the addresses relays may bind on as peer_relays slots and every address of the
 * server (listeners, relay, external, and each interface's address for wildcard listeners) as
 * the policy's own addresses. */
int relay__setup_own_addresses(relay *r, const relay_config *cfg, char **err);
/* The local address of datagram i of the current batch on a wildcard listener (from its
 * PKTINFO), unmapped, with the listener's port; false when there is none. */
bool relay__local_addr(relay_worker *r, int i, const relay_laddr *la, struct sockaddr_storage *out);

/* relay_limits.c: TCP/TLS connection caps, per source address and in total. */
void relay__limits_init(relay *r, uint32_t max_conns, uint32_t per_ip);
void relay__limits_dispose(relay *r);
/* RELAY_ADMIT_OK (counted; release it with relay__conn_release) or why not. */
int relay__conn_admit(relay *r, const struct sockaddr_storage *peer);
void relay__conn_release(relay *r, const struct sockaddr_storage *peer);

/* relay_guard.c: the challenge (401/438) rate limit per source, CSPRNG draws */
#define RELAY_GUARD_BUCKETS 4096 /* per worker, a power of two: 64 KiB */
void relay__guard_init(relay_worker *w, uint32_t rate);
void relay__guard_dispose(relay_worker *w);
bool relay__challenge_ok(void *ctx, const turn_5tuple *t);
uint32_t relay__random_u32(relay_worker *w);
/* relay_obs.c: the outward path */
void relay__obs_init(relay_worker *w); /* before the thread starts */
void relay__obs_dispose(relay_worker *w);
void relay__publish(relay_worker *w); /* the worker's counters, now */
void relay__ops_alloc_ended(void *ctx, const turn_alloc_report *rep);
void relay__ops_auth_failed(void *ctx, const turn_5tuple *t, int reason, const uint8_t *username,
                            size_t len);
relay_track *relay__track_new(size_t workers);
/* A worker handled its copy of ev after ending n allocations. */
void relay__track_done(relay *r, relay_track *t, size_t n);

/* relay_usage.c: usage accounting (issue 14) */
void relay__usage_init(relay_worker *w); /* before the thread starts */
/* After turn_server_free (every remainder is in the carry): the last push, handed to
 * usage_last; then frees. */
void relay__usage_dispose(relay_worker *w);
void relay__usage_ended(relay_worker *w, const turn_alloc_report *rep);

/* relay_mux.c: the TLS port shared with HTTPS. */
enum { RELAY_MUX_BAD = -1, RELAY_MUX_TURN = 0, RELAY_MUX_WAIT = 1, RELAY_MUX_HTTP = 2 };
/* What the first plaintext bytes in[0..n) are: TURN (a STUN header with the magic cookie, or
 * ChannelData), HTTP (an HTTP/1.1 method and its space), WAIT (a prefix of either) or BAD.
 * Stable: once it is not WAIT, more bytes never change the answer. */
int relay__mux_sniff(const uint8_t *in, size_t n);
/* On an undecided c (c->mux), from ALPN or relay__mux_sniff: TURN (mux cleared), WAIT, HTTP
 * (c->dead and c->handoff set) or BAD. */
int relay__mux_step(relay_conn *c);
/* From conn_free of a handed-off c: gives fd, ssl and the bytes read to r->http_adopt;
 * c->fd = -1 and c->ssl = NULL afterwards. */
void relay__mux_handoff(relay_worker *r, relay_conn *c);

/* relay_tcp.c: RFC 6062 TCP allocations (the turn_ops of the TCP group) */
typedef struct relay_tcp relay_tcp;
int relay__tcp_relay_open(void *ctx, uint64_t alloc_id, int family, const turn_5tuple *t,
                          struct sockaddr_storage *relayed);
/* Closes alloc_id's TCP relay; false if it has none (relay_close of a UDP relay). */
bool relay__tcp_relay_close(relay_worker *r, uint64_t alloc_id);
int relay__tcp_peer_connect(void *ctx, uint64_t alloc_id, uint32_t cid,
                            const struct sockaddr *peer);
void relay__tcp_peer_close(void *ctx, uint32_t cid);
void relay__tcp_data_bind(void *ctx, const turn_5tuple *t, uint32_t cid);
/* Takes a client connection detached from relay_conn.c as the data connection of cid: its
 * socket, TLS state, admission, unread input and unsent output. */
void relay__tcp_adopt(relay_worker *r, uint32_t cid, int fd, struct ssl_st *ssl, bool admitted,
                      const struct sockaddr_storage *client, const uint8_t *in, size_t in_len,
                      const uint8_t *out, size_t out_len);
/* The worker index a ConnectionBind frame must be handled by, or -1 for r itself. */
int relay__tcp_route(relay_worker *r, const uint8_t *frame, size_t len);
void relay__tcp_dispose(relay_worker *r);
/* relay_conn.c: marks connection conn_id as cid's data connection (false: no such one). */
bool relay__conn_set_pipe(relay_worker *r, uint64_t conn_id, uint32_t cid);
/* Takes over a connection another worker handed over (RELAY_EV_CONN), or frees it. */
void relay__conn_adopt(relay_worker *r, relay_conn *c);
void relay__conn_discard(relay_worker *r, relay_conn *c);
/* relay.c: the address a relay of family binds to for the Allocate of t (port 0). */
bool relay__relay_bind_addr(const relay_worker *r, const turn_5tuple *t, int family,
                            struct sockaddr_storage *a);

/* relay_quota.c */
void relay__quota_init(relay *r, uint32_t user_quota, uint32_t max_allocations);
void relay__quota_dispose(relay *r);
int relay__quota_acquire(void *ctx, const uint8_t *username, size_t len, uint32_t limit);
/* Fills info's alloc_quota, bandwidth_bps and budget_blocked from the key cache's policy
 * view of (info->key_id, info->custom_id) at now (unix seconds). */
void relay__policy_fill(relay *r, turn_auth_info *info, int64_t now);
void relay__quota_release(void *ctx, const uint8_t *username, size_t len);

/* relay_secret.c: shared secrets per TURN key (issue 15). */
int relay__secret_setup(relay *r, const char *list, char **err);
int relay__auth_candidates(void *ctx, const uint8_t *username, size_t len, int64_t now,
                           turn_auth_candidate *out, size_t max);
/* relay.c: turnkey's own credentials. */
int relay__ops_auth(void *ctx, const uint8_t *username, size_t len, int64_t now, char password[128],
                    turn_auth_info *info);

#endif
