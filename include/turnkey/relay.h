/* relay: the TURN relay's I/O layer — sockets, the epoll loop thread, TCP stream framing,
 * relay sockets from a port range — wired to the sans-I/O turn state machine, with
 * credentials checked through the key cache (cred_verify). The only TURN code that calls
 * send/recv. */
#ifndef TURNKEY_RELAY_H
#define TURNKEY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "turnkey/keycache.h"
#include "turnkey/peer.h"
#include "turnkey/tls.h"
#include "turnkey/turn.h"
#include "turnkey/usage.h"

/* What one listener address carries. */
enum { RELAY_UDP = 1, RELAY_TCP = 2, RELAY_TLS = 4, RELAY_MUX = 8 };

struct ssl_st;

typedef struct relay_listener {
    const char *addr; /* "ADDR:PORT"; 0.0.0.0 / [::] = every local address ([::] dual-stack) */
    unsigned kinds;   /* RELAY_UDP | RELAY_TCP (one port for both), RELAY_TLS or RELAY_MUX alone */
} relay_listener;

/* --external-ip PUBLIC[/PRIVATE] (at most one per family). */
typedef struct relay_external {
    struct sockaddr_storage pub, priv;
    bool has_priv;
} relay_external;

typedef struct relay_config {
    const relay_listener *listeners;
    size_t n_listeners;
    const relay_external *external;
    size_t n_external;
    /* Relay address; NULL/"" = the local address each Allocate arrived on (so a wildcard
     * listener relays on the address the client reached). Reported as the external address
     * when one maps it. */
    const char *relay_ip;
    uint16_t port_lo, port_hi;
    const char *realm;
    const char *const *allow_peer; /* CIDRs opened in the peer deny-list */
    size_t n_allow_peer;
    const char *const *deny_peer; /* extra denied CIDRs (--deny-peer) */
    size_t n_deny_peer;
    uint32_t user_quota;       /* 0 = default (10) */
    uint32_t max_allocations;  /* 0 = default */
    uint32_t nonce_lifetime_s; /* 0 = default (600) */
    uint32_t challenge_rate;   /* 401/438 per second per source IP and worker; 0 = no limit */
    keycache *keys;
    tls_server *tls;               /* required when a listener has RELAY_TLS */
    unsigned threads;              /* event-loop threads; 0 = one per online CPU */
    uint32_t max_conns;            /* TCP+TLS connections in total; 0 = default (10000) */
    uint32_t max_conns_per_ip;     /* per source IPv4 address / IPv6 /64; 0 = default (100) */
    uint32_t handshake_timeout_ms; /* to the first valid STUN message; 0 = default (5000) */
    /* Usage accounting (issue 14): each worker reports what its allocations accrued once a
     * second through its ring (relay_drain_usage); usage_ring = records per worker (0 =
     * USAGE_RING_DEFAULT). usage_last receives the last records of each worker while
     * relay_stop runs (in the stopping thread), so nothing is lost at shutdown. */
    bool usage;
    size_t usage_ring;
    void (*usage_last)(void *ctx, size_t worker, const usage_record *r);
    void *usage_ctx;
    /* RELAY_MUX listeners: TLS shared by TURN and the HTTPS API (relay_mux.c). After the
     * handshake, ALPN "stun.turn" or a STUN/ChannelData start stays TURN; ALPN "http/1.1" or
     * an HTTP method goes to http_adopt (called on a relay thread: it owns fd and ssl from
     * then on; pre[0..n) is the plaintext read so far); anything else is closed. */
    tls_server *mux_tls;
    void (*http_adopt)(void *ctx, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                       const struct sockaddr_storage *peer);
    void *http_ctx;
    /* Comma-separated TURN key ids (at most 3) whose shared secrets a username that names
     * no key tries (issue 15); NULL/"" = none. */
    const char *shared_secret_keys;
} relay_config;

typedef struct relay relay;

/* Binds the listeners (errors are reported here, not later) and starts the loop thread.
 * NULL + *err (free()) on failure. */
relay *relay_start(const relay_config *cfg, char **err);
void relay_stop(relay *r);
/* Actual bound ports (useful with port 0): of listener i (in cfg order), of the first UDP/TCP
 * listener, and of the first TLS listener (0 when there is none). */
uint16_t relay_listener_port(const relay *r, size_t i);
uint16_t relay_port(const relay *r);
uint16_t relay_tls_port(const relay *r);
size_t relay_threads(const relay *r);

/* Thread-safe lifecycle notifications (from the API threads): the loop thread ends the
 * matching allocations at once. */
void relay_key_deleted(relay *r, const char *key_uid);
void relay_credential_revoked(relay *r, const char *username);
/* The same by SHA-256 hex of the username (from the store's change feed). */
void relay_credential_revoked_hash(relay *r, const char *username_sha256_hex);
/* A shared secret was deleted (issue 15): the allocations it authenticated end. */
void relay_secret_deleted(relay *r, const char *secret_id);
/* A budget of key_uid tripped with action end_allocations (issue 14 §4): every worker ends
 * the key's allocations — those of custom_id, or all of them when custom_id is NULL or "" (the
 * key's own budget). An invalid key uid or customIdentifier is logged and changes nothing. */
void relay_budget_tripped(relay *r, const char *key_uid, const char *custom_id);

/* Draining (SIGTERM): from now on every Allocate is answered 508 "Server Draining"; live
 * allocations, refreshes, permissions and channels go on. Thread-safe, irreversible. */
void relay_drain(relay *r);
/* Live allocations over all workers. Thread-safe. */
size_t relay_allocations(relay *r);
/* TCP/TLS listener sockets paused right now because accept() ran out of descriptors
 * (EMFILE/ENFILE, or kernel memory); they resume after a back-off. Thread-safe. */
size_t relay_paused_listeners(const relay *r);

/* --- the outward path (observability, usage accounting) ------------------------------
 * Each worker thread publishes its counters once a second (and at every lifecycle event)
 * into its own words of relaxed atomics; relay_stats_read sums them from any thread, without
 * locks. Ended allocations travel through one bounded single-producer single-consumer ring
 * per worker: relay_drain_ended is the consumer (one thread only: the main thread); a full
 * ring drops the record and counts it (relay_stats.ended_dropped). */
#define RELAY_ENDED_RING 1024 /* records per worker */
#define RELAY_REVOKE_BUCKETS 10
/* Upper bounds (seconds) of the revocation-latency histogram buckets (+Inf is implied). */
extern const double relay_revoke_bounds[RELAY_REVOKE_BUCKETS];

typedef struct relay_stats {
    turn_stats turn;             /* summed over the workers */
    uint64_t tls_ok, tls_failed; /* TLS handshakes completed / failed before completing */
    uint64_t ended_dropped;
    /* From a key deletion or revocation reaching the relay (right after the store commit)
     * to the last allocation it ended being closed; one observation per event that ended at
     * least one allocation. Per bucket (not cumulative); [RELAY_REVOKE_BUCKETS] = +Inf. */
    uint64_t revoke_hist[RELAY_REVOKE_BUCKETS + 1];
    uint64_t revoke_count, revoke_sum_us;
    uint64_t usage_refused; /* usage records a full ring refused (they stayed, went later) */
} relay_stats;
void relay_stats_read(relay *r, relay_stats *out);

typedef struct relay_ended {
    char key_id[33];
    char custom_id[65];
    char username[256]; /* NUL-terminated copy (cut at 255 bytes: username_cut) */
    bool username_cut;
    turn_proto transport;
    int family;
    int64_t start_ms, end_ms;
    int reason; /* enum turn_end_reason */
    turn_traffic traffic;
} relay_ended;
/* Calls fn for every ended allocation queued since the last call; returns how many. */
size_t relay_drain_ended(relay *r, void (*fn)(void *arg, const relay_ended *e), void *arg);

/* Calls fn for every usage record the workers pushed since the last call (one consumer
 * thread: the main thread); returns how many. */
size_t relay_drain_usage(relay *r, void (*fn)(void *arg, size_t worker, const usage_record *u),
                         void *arg);

/* Parses "LO-HI" (1..65535, LO <= HI); 0 ok, -1 malformed. */
int relay_parse_ports(const char *s, uint16_t *lo, uint16_t *hi);

#endif
