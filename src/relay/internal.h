/* relay internals shared by the files of src/relay (not a public header). */
#ifndef TURNKEY_RELAY_INTERNAL_H
#define TURNKEY_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "turnkey/ev.h"
#include "turnkey/relay.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"

#define RELAY_READ_BUDGET 64            /* datagrams per socket per wakeup (n x RELAY_BATCH) */
#define RELAY_BATCH 16                  /* datagrams per recvmmsg */
#define RELAY_LISTENER_SOCKBUF (8 << 20) /* UDP listener receive/send buffer, bytes */
#define RELAY_TX_BATCH 32               /* datagrams queued for one sendmmsg round */
#define RELAY_TX_SLOT 2048              /* larger datagrams are sent at once, unbatched */
#define RELAY_DGRAM_MAX 4096            /* larger UDP datagrams are dropped (MTU-sized is the norm) */
#define RELAY_CONN_OUT_MAX (1u << 20)   /* queued bytes per TCP client before frames drop */

typedef struct relay relay;
typedef struct relay_worker relay_worker;

typedef struct relay_sock {
    struct relay_sock *next;
    int fd;
    uint64_t alloc_id;
    relay_worker *owner;
} relay_sock;

typedef struct relay_conn {
    int fd;
    struct ssl_st *ssl; /* TLS connections only */
    bool tls_want_write; /* OpenSSL needs the socket writable to go on */
    uint64_t id;
    turn_5tuple t;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    bool dead;
    bool dirty;        /* frames queued since the last flush (on the worker's dirty list) */
    unsigned interest; /* the epoll interest last set */
    relay_worker *owner;
} relay_conn;

enum { RELAY_EV_KEY_DELETED = 1, RELAY_EV_REVOKED = 2 };
typedef struct relay_event {
    struct relay_event *next;
    int kind;
    char text[];
} relay_event;

/* Allocation quotas shared by the workers (taken on Allocate, never per packet). */
typedef struct relay_quota_entry {
    struct relay_quota_entry *next;
    uint32_t count;
    size_t len;
    uint8_t name[];
} relay_quota_entry;

/* What every worker shares; read-only after start except the quota (under its mutex). */
struct relay {
    relay_worker **w;
    size_t n_workers;
    peer_policy peers;
    keycache *keys;
    tls_server *tls;
    struct sockaddr_storage listen_addr, relay_addr, tls_addr;
    uint16_t port_lo, port_hi;
    uint8_t nonce_secret[32];
    pthread_mutex_t quota_mu;
    relay_quota_entry **quota;
    size_t quota_nb, quota_total;
    uint32_t user_quota, max_allocations;
};

/* One event-loop thread: its own listeners (SO_REUSEPORT), turn_server, relay sockets and
 * connections. Nothing here is touched by another thread except the event queue. */
struct relay_worker {
    relay *shared;
    ev_loop *loop;
    pthread_t thread;
    bool running;
    turn_server *turn;
    int udp_fd, tcp_fd, tls_fd;
    uint32_t port_cursor;
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
    /* Receive buffers for a whole wakeup's reading on one socket (RELAY_READ_BUDGET), each
     * datagram at offset TURN_PEER_HEADROOM: the ChannelData header for a client is written
     * in front of a peer's payload. They stay untouched until the tx queue, which may point
     * into them, is flushed (relay_tx.c). */
    struct mmsghdr mm[RELAY_READ_BUDGET];
    struct iovec iov[RELAY_READ_BUDGET];
    struct sockaddr_storage from[RELAY_READ_BUDGET];
    uint8_t rx[RELAY_READ_BUDGET][TURN_PEER_HEADROOM + RELAY_DGRAM_MAX];
    /* outgoing datagrams, written with sendmmsg at the end of the wakeup (relay_tx.c) */
    int n_tx;
    int n_tx_borrowed; /* queued datagrams that point into rx instead of tx_buf */
    int tx_fd[RELAY_TX_BATCH];
    struct mmsghdr tx_mm[RELAY_TX_BATCH];
    struct iovec tx_iov[RELAY_TX_BATCH];
    struct sockaddr_storage tx_to[RELAY_TX_BATCH];
    uint8_t tx_buf[RELAY_TX_BATCH][RELAY_TX_SLOT];
    /* one UDP_SEGMENT control message per GSO message of a flush (relay_tx.c) */
    _Alignas(struct cmsghdr) uint8_t tx_cmsg[RELAY_TX_BATCH][CMSG_SPACE(sizeof(uint16_t))];
    bool tx_gso_off; /* the kernel refused UDP GSO: one datagram per message */
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
void relay__tx_flush(relay_worker *r);
void relay__on_accept(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__on_accept_tls(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__conn_send(relay_worker *r, uint64_t conn_id, const uint8_t *buf, size_t len);
void relay__conns_close_all(relay_worker *r);
/* Writes every connection's queued frames (one write per connection per wakeup). */
void relay__flush_conns(relay_worker *r);

/* relay_quota.c */
void relay__quota_init(relay *r, uint32_t user_quota, uint32_t max_allocations);
void relay__quota_dispose(relay *r);
int relay__quota_acquire(void *ctx, const uint8_t *username, size_t len);
void relay__quota_release(void *ctx, const uint8_t *username, size_t len);

#endif
