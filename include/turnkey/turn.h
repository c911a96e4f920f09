/* turn: the TURN server state machine (RFC 8656 over RFC 8489), sans-I/O.
 *
 * It is fed client messages (one UDP datagram, or one frame cut by stun_frame_next from a
 * TCP/TLS stream), peer datagrams arriving on relay sockets, and the current time. It answers
 * and acts only through the injected ops table (send to a client, send to a peer, open and
 * close relay sockets, look up a credential's password). It owns allocations, permissions,
 * channels, nonces and their timers (a heap: src/timer). No sockets, threads or clocks here.
 *
 * One turn_server is used by one thread at a time (the relay gives each thread its own). */
#ifndef TURNKEY_TURN_H
#define TURNKEY_TURN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "turnkey/peer.h"

typedef enum turn_proto { TURN_PROTO_UDP = 0, TURN_PROTO_TCP = 1, TURN_PROTO_TLS = 2 } turn_proto;

/* The client-side 5-tuple. For TCP/TLS, conn_id names the connection (the I/O layer's id,
 * never 0) and is what send_client uses; for UDP it is the I/O layer's listener number (0 with
 * one listener). */
typedef struct turn_5tuple {
    turn_proto proto;
    uint64_t conn_id;
    struct sockaddr_storage client; /* the client's address as seen by the server */
    struct sockaddr_storage server; /* the local listener address the client reached */
} turn_5tuple;

/* What a credential lookup returns (filled by ops->auth). */
typedef struct turn_auth_info {
    char key_id[33];    /* "" for credentials not tied to a TURN key (coturn shared secret) */
    int64_t expires;    /* unix seconds; the allocation ends when it passes (<= 0: no cap) */
    char custom_id[65]; /* the credential's customIdentifier, "" when none */
    char secret_id[33]; /* the shared secret that matched (issue 15), "" for other schemes */
    /* The key's policy (issue 14 §4), as the lookup found it for this request: */
    uint32_t alloc_quota;   /* allocations per username; 0 = cfg.user_quota (→ 486) */
    uint64_t bandwidth_bps; /* per allocation and direction, taken at Allocate; 0 = none */
    bool budget_blocked;    /* an end_allocations budget trip covers the key / custom_id:
                               Allocate → 486 "Budget Exceeded" */
} turn_auth_info;

/* One password the username may stand for (ops->auth_candidates). */
#define TURN_AUTH_CANDIDATES_MAX 16
typedef struct turn_auth_candidate {
    char password[128];
    turn_auth_info info;
} turn_auth_candidate;

/* Every failure answers 401; the codes only say why (metrics, logs). */
enum turn_auth_rc {
    TURN_AUTH_OK = 0,
    TURN_AUTH_REJECT = -1,      /* malformed or forged credential */
    TURN_AUTH_EXPIRED = -2,     /* expired credential */
    TURN_AUTH_REVOKED = -3,     /* revoked credential */
    TURN_AUTH_UNKNOWN_KEY = -4, /* no such TURN key */
    TURN_AUTH_KEY_DELETED = -5  /* the key was deleted while this process ran */
};

/* Why an authentication failed (turn_stats.auth_failures, ops->auth_failed). */
enum turn_auth_fail {
    TURN_AF_BAD_INTEGRITY = 0, /* MESSAGE-INTEGRITY does not match the password */
    TURN_AF_BAD_CREDENTIAL,    /* TURN_AUTH_REJECT */
    TURN_AF_UNKNOWN_KEY,
    TURN_AF_EXPIRED,
    TURN_AF_REVOKED,
    TURN_AF_KEY_DELETED,
    TURN_AF_STALE_NONCE, /* 438 */
    TURN_AF_WRONG_REALM,
    TURN_AF__N
};
/* "bad_integrity", "unknown_key", ... (the metric label value); "?" out of range. */
const char *turn_auth_fail_name(int reason);

/* Why an allocation ended. */
enum turn_end_reason {
    TURN_END_EXPIRED = 0, /* lifetime (or the credential's expiry) passed */
    TURN_END_CLIENT,      /* Refresh with LIFETIME 0 */
    TURN_END_CONN_CLOSED, /* its TCP/TLS connection closed */
    TURN_END_KEY_DELETED,
    TURN_END_REVOKED,
    TURN_END_SHUTDOWN, /* turn_server_free */
    TURN_END_BUDGET,   /* turn_server_budget_tripped ("budget_exceeded") */
    TURN_END__N
};
const char *turn_end_reason_name(int reason); /* "expired", "client", ..., "budget_exceeded" */

/* Bytes and packets of one leg in one direction. Client leg: whole TURN messages as on the
 * wire (ChannelData / Send / Data indication framing included; stream padding included);
 * peer leg: UDP payloads. Only relayed data is counted (not requests and responses). */
typedef struct turn_flow {
    uint64_t bytes, packets;
} turn_flow;

typedef struct turn_traffic {
    turn_flow client_rx; /* from the client (to be relayed) */
    turn_flow client_tx; /* to the client (relayed from a peer) */
    turn_flow peer_rx;   /* from peers, accepted (permission held) */
    turn_flow peer_tx;   /* to peers */
} turn_traffic;

/* Usage progress (issue 14): what an allocation accrued since it was last reported by
 * turn_server_usage (or since it opened): client-leg bytes as in turn_flow (TURN framing
 * included) and the milliseconds it was open. */
typedef struct turn_usage {
    uint64_t egress_bytes;  /* client_tx: to the client */
    uint64_t ingress_bytes; /* client_rx: from the client */
    uint64_t alloc_ms;
} turn_usage;

/* The record of one ended allocation (ops->alloc_ended): only allocations whose relay
 * opened (a successful Allocate) are reported. Pointers are valid during the call only. */
typedef struct turn_alloc_report {
    uint64_t alloc_id;
    const turn_auth_info *info; /* key_id, custom_id of the last authenticated request */
    const uint8_t *username;
    size_t username_len;
    turn_proto transport;
    int family;       /* AF_INET / AF_INET6 of the relayed address */
    int64_t start_ms; /* wall clock, ms */
    int64_t end_ms;
    int reason; /* enum turn_end_reason */
    turn_traffic traffic;
    turn_usage unreported; /* accrued since the last turn_server_usage report (issue 14) */
} turn_alloc_report;

/* The relay of a dual allocation's second (IPv6) family is opened, used and closed under
 * this id: alloc_id | TURN_RELAY_ID_DUAL (the I/O layer just passes it back in peer input). */
#define TURN_RELAY_ID_DUAL (UINT64_C(1) << 63)

/* relay_open failures. */
enum turn_relay_rc { TURN_RELAY_ERR_CAPACITY = -1, TURN_RELAY_ERR_FAMILY = -2 };

/* The ops below are called synchronously from turn_server_* and must not call back into the
 * same turn_server. */
typedef struct turn_ops {
    /* Send bytes to the client of t (UDP: from t->server to t->client; TCP/TLS: append to
     * connection t->conn_id). Stream framing/padding is already in buf. */
    void (*send_client)(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len);
    /* Open a UDP relay socket of `family` (AF_INET/AF_INET6) for allocation alloc_id; fill
     * the bound relayed address. 0 ok; -1 (TURN_RELAY_ERR_CAPACITY) when no port/address is
     * available (→ 508); TURN_RELAY_ERR_FAMILY when this server has no relay address of that
     * family (→ 440). Any other negative value is treated as -1. t is the Allocate's
     * 5-tuple (a relay without a fixed address binds on t->server, the address reached);
     * relayed is what XOR-RELAYED-ADDRESS reports (an external address may stand for it). */
    int (*relay_open)(void *ctx, uint64_t alloc_id, int family, const turn_5tuple *t,
                      struct sockaddr_storage *relayed);
    void (*relay_close)(void *ctx, uint64_t alloc_id);
    /* Send one datagram from alloc_id's relay socket to peer. */
    void (*send_peer)(void *ctx, uint64_t alloc_id, const struct sockaddr *peer, const uint8_t *buf,
                      size_t len);
    /* Look up a username (attacker-controlled bytes): on TURN_AUTH_OK fill password (NUL-
     * terminated, the long-term credential password) and info. now = unix seconds. */
    int (*auth)(void *ctx, const uint8_t *username, size_t len, int64_t now, char password[128],
                turn_auth_info *info);
    /* Optional (both or neither): quotas shared by several turn_servers (one per relay
     * thread). Called before an allocation is created: 0 = granted, TURN_QUOTA_USER (→ 486)
     * or TURN_QUOTA_GLOBAL (→ 508). limit: the username's allocation quota (the request's
     * turn_auth_info.alloc_quota; 0 = the caller's default). Each grant is matched by exactly
     * one release when that allocation ends. When absent, the server counts per username
     * and in total itself against alloc_quota (else cfg.user_quota) / cfg.max_allocations. */
    int (*quota_acquire)(void *ctx, const uint8_t *username, size_t len, uint32_t limit);
    void (*quota_release)(void *ctx, const uint8_t *username, size_t len);
    /* Optional: asked before each unauthenticated challenge (401 / 438 with REALM + NONCE)
     * goes to t's client; false = suppressed (rate limit per source, kept by the caller, who
     * owns the clock). Counted in turn_stats.challenges_suppressed. */
    bool (*challenge_ok)(void *ctx, const turn_5tuple *t);
    /* Optional: an allocation ended (the outward path: logs, metrics, usage accounting). */
    void (*alloc_ended)(void *ctx, const turn_alloc_report *r);
    /* Optional: a request failed authentication (reason: enum turn_auth_fail); username
     * is attacker-controlled bytes (len 0 when absent). */
    void (*auth_failed)(void *ctx, const turn_5tuple *t, int reason, const uint8_t *username,
                        size_t len);
    void *ctx;
    /* Optional (issue 15), called instead of auth when set: like auth, but a username may
     * stand for several passwords (a key's shared secrets during a rotation, a small
     * fallback set). Fills up to max (<= TURN_AUTH_CANDIDATES_MAX) candidates and returns
     * how many (>= 1), or a TURN_AUTH_* code < 0; the request is authenticated by the first
     * candidate whose MESSAGE-INTEGRITY matches, and carries that candidate's info. */
    int (*auth_candidates)(void *ctx, const uint8_t *username, size_t len, int64_t now,
                           turn_auth_candidate *out, size_t max);
    /* Optional, all four or none: RFC 6062 TCP allocations (without them REQUESTED-TRANSPORT
     * TCP gets 442). A peer connection is named by its CONNECTION-ID (cid, never 0).
     * tcp_relay_open: like relay_open, but a listening TCP socket (closed by relay_close);
     * incoming connections go to turn_server_peer_accepted. peer_connect: start a
     * non-blocking connection from alloc_id's relayed address to peer; 0 = under way (the
     * outcome goes to turn_server_peer_connected), < 0 failed at once (→ 447). peer_close:
     * close the peer connection cid and its client data connection (nothing is reported
     * back). data_bind: the client connection t->conn_id (which has just been answered)
     * becomes the data connection of cid: from now on a byte pipe to the peer, both ways,
     * outside the TURN framing; the I/O layer reports the bytes it moves through
     * turn_server_tcp_data and the end of the pair through turn_server_tcp_closed. */
    int (*tcp_relay_open)(void *ctx, uint64_t alloc_id, int family, const turn_5tuple *t,
                          struct sockaddr_storage *relayed);
    int (*peer_connect)(void *ctx, uint64_t alloc_id, uint32_t cid, const struct sockaddr *peer);
    void (*peer_close)(void *ctx, uint32_t cid);
    void (*data_bind)(void *ctx, const turn_5tuple *t, uint32_t cid);
} turn_ops;

/* TURN_QUOTA_DRAINING: the server is shutting down (→ 508 "Server Draining"). */
enum { TURN_QUOTA_OK = 0, TURN_QUOTA_USER = -1, TURN_QUOTA_GLOBAL = -2, TURN_QUOTA_DRAINING = -3 };

typedef struct turn_config {
    const char *realm;         /* REALM value */
    const char *software;      /* SOFTWARE value, NULL = none */
    uint8_t nonce_secret[32];  /* key for stateless nonces (random per process) */
    uint32_t nonce_lifetime_s; /* default 600; expired nonce → 438 */
    uint32_t alloc_default_s;  /* default 600 */
    uint32_t alloc_max_s;      /* default 3600 */
    uint32_t permission_s;     /* 300 */
    uint32_t channel_s;        /* 600 */
    uint32_t user_quota;       /* allocations per username, default 10 (→ 486) */
    uint32_t max_allocations;  /* global cap (→ 508), default 100000 */
    const peer_policy *peers;  /* where the relay may send (403 otherwise); required */
    /* RFC 6062: peer connections per TCP allocation (default 64) and per server (default
     * 4096); past either a Connect gets 508 and an incoming connection is closed. Every
     * CONNECTION-ID this server assigns has cid_tag in its low 8 bits (the I/O layer routes a
     * ConnectionBind arriving on another thread's connection by it). */
    uint32_t max_tcp_per_alloc;
    uint32_t max_tcp_conns;
    uint8_t cid_tag;
} turn_config;

typedef struct turn_server turn_server;

/* Zeroed numeric config fields take the defaults above. cfg (its strings) and ops are
 * copied; cfg->peers is referenced and must outlive the server. NULL if realm (1..763 bytes),
 * peers or any op is missing. */
turn_server *turn_server_new(const turn_config *cfg, const turn_ops *ops);
void turn_server_free(turn_server *s); /* closes every relay through ops->relay_close */

/* A message from a client: one UDP datagram or one complete stream frame (STUN message or
 * ChannelData, with any stream padding included). now_ms = wall clock, milliseconds. */
void turn_server_input(turn_server *s, const turn_5tuple *t, const uint8_t *buf, size_t len,
                       int64_t now_ms);
/* A datagram from `peer` received on alloc_id's relay socket. */
void turn_server_peer_input(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                            const uint8_t *buf, size_t len, int64_t now_ms);
/* Bytes a caller of turn_server_peer_input_inplace leaves writable in front of buf. */
#define TURN_PEER_HEADROOM 4
/* turn_server_peer_input for a datagram received at buf with TURN_PEER_HEADROOM writable
 * bytes in front of it (the I/O layer receives at an offset): ChannelData to a UDP client is
 * relayed by header rewrite, the header written in front of the payload and send_client
 * given buf - 4, so the payload is never copied. The headroom may be overwritten. */
void turn_server_peer_input_inplace(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                                    uint8_t *buf, size_t len, int64_t now_ms);
/* A TCP/TLS client connection closed: its allocation (if any) is deleted. */
void turn_server_conn_closed(turn_server *s, const turn_5tuple *t, int64_t now_ms);

/* RFC 6062, from the I/O layer: the connection peer_connect started succeeded or failed
 * (a failed one is already closed); a connection arrived on alloc_id's TCP relay — returns
 * its CONNECTION-ID, or 0: close it now (no permission, policy, caps); a bound pair moved
 * bytes (to_peer: client → peer) — counted in the allocation's traffic; the peer or the
 * data connection of cid closed and the I/O layer closed the other. Seconds-long timers:
 * a Connect unanswered after 30 s gets 447, a peer connection unbound after 30 s is closed
 * (ops->peer_close). */
void turn_server_peer_connected(turn_server *s, uint32_t cid, bool ok, int64_t now_ms);
uint32_t turn_server_peer_accepted(turn_server *s, uint64_t alloc_id, const struct sockaddr *peer,
                                   int64_t now_ms);
void turn_server_tcp_data(turn_server *s, uint32_t cid, bool to_peer, size_t bytes, int64_t now_ms);
void turn_server_tcp_closed(turn_server *s, uint32_t cid, int64_t now_ms);
/* The CONNECTION-ID of a ConnectionBind request (one frame), or 0 if it is not one. */
uint32_t turn_connection_bind_cid(const uint8_t *buf, size_t len);

/* Timers: the earliest deadline (ms, INT64_MAX if none), and running what is due: at most
 * 1024 expiries per call (a flood never stalls the caller; the deadline stays due). */
int64_t turn_server_next_deadline(const turn_server *s);
void turn_server_tick(turn_server *s, int64_t now_ms);

/* Live lifecycle (product spec §4.4): end every allocation made with a credential of this
 * key / with this exact username, now. Returns how many allocations were removed. */
size_t turn_server_key_deleted(turn_server *s, const char *key_id, int64_t now_ms);
size_t turn_server_credential_revoked(turn_server *s, const uint8_t *username, size_t len,
                                      int64_t now_ms);
/* The same by SHA-256 hex of the username (as the store's change log carries it). */
size_t turn_server_credential_revoked_hash(turn_server *s, const char *username_sha256_hex,
                                           int64_t now_ms);
/* Ends every allocation whose last request matched this shared secret (issue 15). */
size_t turn_server_secret_deleted(turn_server *s, const char *secret_id, int64_t now_ms);
/* A budget of key_id tripped with action end_allocations (issue 14 §4): ends its
 * allocations (reason TURN_END_BUDGET) — all of them when custom_id is NULL or "", else only
 * those whose info.custom_id equals it. Visits only the key's usernames. Returns how many. */
size_t turn_server_budget_tripped(turn_server *s, const char *key_id, const char *custom_id,
                                  int64_t now_ms);

/* Request methods and results counted in turn_stats.requests. */
enum {
    TURN_M_BINDING = 0,
    TURN_M_ALLOCATE,
    TURN_M_REFRESH,
    TURN_M_CREATE_PERMISSION,
    TURN_M_CHANNEL_BIND,
    TURN_M_OTHER,
    TURN_M__N
};
/* Results: success, then the error codes turn answers with (TURN_R_* index). */
enum {
    TURN_R_SUCCESS = 0,
    TURN_R_400,
    TURN_R_401,
    TURN_R_403,
    TURN_R_420,
    TURN_R_437,
    TURN_R_438,
    TURN_R_440,
    TURN_R_441,
    TURN_R_442,
    TURN_R_443,
    TURN_R_486,
    TURN_R_508,
    TURN_R_OTHER,
    TURN_R__N
};
const char *turn_method_name(int m); /* "binding", "allocate", ... */
const char *turn_result_name(int r); /* "success", "400", ..., "other" */

/* Relayed datagrams dropped by the core. */
enum {
    TURN_DROP_NO_ALLOCATION = 0, /* Send / ChannelData / peer data for no allocation */
    TURN_DROP_NO_PERMISSION,     /* no permission for the peer (either direction) */
    TURN_DROP_NO_CHANNEL,        /* ChannelData on an unbound or cooling channel */
    TURN_DROP_PEER_POLICY,       /* the peer policy denies the address */
    TURN_DROP_FAMILY,            /* peer family is not the relay's */
    TURN_DROP_MALFORMED,         /* a Send indication without peer or data, with several peers
                                    or an unknown comprehension-required attribute */
    TURN_DROP_TOO_LARGE,         /* a message that cannot be built */
    TURN_DROP_BANDWIDTH,         /* over the allocation's bandwidth cap (either direction) */
    TURN_DROP__N
};
const char *turn_drop_name(int d);

/* Counters of one turn_server: monotonic totals and the current gauges. Read by the
 * server's own thread (turn_server_stats copies them; the relay publishes the copy). */
typedef struct turn_stats {
    size_t allocations, permissions, channels;
    uint64_t packets_to_peer, packets_to_client, bytes_to_peer, bytes_to_client;
    uint64_t challenges_suppressed; /* 401/438 answers refused by ops.challenge_ok */
    turn_traffic traffic;           /* every allocation's relayed data, live and ended */
    uint64_t requests[3][TURN_M__N][TURN_R__N]; /* [transport][method][result] */
    uint64_t auth_failures[TURN_AF__N];
    uint64_t allocs_created;
    uint64_t allocs_ended[TURN_END__N];
    size_t allocs_by[3][2];  /* live, [transport][0 = IPv4, 1 = IPv6] */
    size_t allocs_active_1m; /* live allocations that relayed data in the last 60 s */
    uint64_t drops[TURN_DROP__N];
    uint64_t peer_denials[PEER_DENY__N]; /* by enum peer_deny class ([0] unused): relayed
                                          * datagrams, CreatePermission and ChannelBind */
} turn_stats;
/* now_ms: for allocs_active_1m (a scan of the allocations: call it about once a second). */
void turn_server_stats(const turn_server *s, turn_stats *out);
void turn_server_stats_at(const turn_server *s, int64_t now_ms, turn_stats *out);
/* The live counters of one allocation (false if there is no such allocation). */
bool turn_server_alloc_traffic(const turn_server *s, uint64_t alloc_id, turn_traffic *out);

/* Usage progress: calls fn for every open allocation with what it accrued since its last
 * report (r->reason is -1, r->end_ms is now_ms; r->unreported is u), then moves its marks to
 * now; the end report carries what accrued after the last call. Once a second is enough. */
typedef void (*turn_usage_fn)(void *arg, const turn_alloc_report *r, const turn_usage *u);
void turn_server_usage(turn_server *s, int64_t now_ms, turn_usage_fn fn, void *arg);

#endif
