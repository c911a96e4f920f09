/* relay internals shared by the files of src/relay (not a public header). */
#ifndef TURNKEY_RELAY_INTERNAL_H
#define TURNKEY_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "turnkey/ev.h"
#include "turnkey/relay.h"
#include "turnkey/stun.h"
#include "turnkey/turn.h"

#define RELAY_READ_BUDGET 64            /* datagrams per socket per wakeup */
#define RELAY_CONN_OUT_MAX (1u << 20)   /* queued bytes per TCP client before frames drop */

typedef struct relay relay;

typedef struct relay_sock {
    struct relay_sock *next;
    int fd;
    uint64_t alloc_id;
    relay *owner;
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
    relay *owner;
} relay_conn;

enum { RELAY_EV_KEY_DELETED = 1, RELAY_EV_REVOKED = 2 };
typedef struct relay_event {
    struct relay_event *next;
    int kind;
    char text[];
} relay_event;

struct relay {
    ev_loop *loop;
    pthread_t thread;
    bool running;
    turn_server *turn;
    peer_policy peers;
    keycache *keys;
    const char *listen_text;
    struct sockaddr_storage listen_addr, relay_addr, tls_addr;
    int udp_fd, tcp_fd, tls_fd;
    tls_server *tls;
    uint16_t port_lo, port_hi;
    uint32_t port_cursor;
    ev_timer timer;
    relay_sock **rs; /* alloc_id -> relay socket */
    size_t rs_nb, rs_n;
    relay_conn **conns; /* by fd */
    size_t conns_cap;
    uint32_t conn_gen;
    pthread_mutex_t q_mu;
    relay_event *q_head, *q_tail;
    uint64_t send_errors;
    uint8_t rxbuf[65536];
};

void relay__arm_timer(relay *r);
void relay__on_accept(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__on_accept_tls(ev_loop *loop, int fd, unsigned events, void *ctx);
void relay__conn_send(relay *r, uint64_t conn_id, const uint8_t *buf, size_t len);
void relay__conns_close_all(relay *r);

#endif
