/* relay_tcp: the sockets of RFC 6062 TCP allocations (the decisions are in src/turn/tcp_relay.c).
 *
 * A TCP allocation's relayed address is a listening socket (SO_REUSEPORT, so the outgoing
 * connections of a Connect can bind the same address and port: the peer sees the relayed
 * address, RFC 6062 §5.2). Its port is picked at random from --relay-ports, skipping ports
 * live for this server. A peer connection (outgoing, or accepted and kept by the core) is not
 * read until a ConnectionBind makes a client connection its data connection: until then the
 * kernel's receive buffer holds what the peer sends (the window closes). Then the pair is a
 * byte pipe: each direction has a buffer of at most RELAY_TCP_BUF bytes, and a side is read
 * only while the buffer towards the other side has room (backpressure end to end). When
 * either side ends, what it sent is flushed to the other, then both are closed; an error
 * closes both at once. The bytes moved are reported to the core (turn_server_tcp_data), so
 * they count in the allocation's traffic, metrics and usage.
 *
 * ConnectionBind on another relay thread: the kernel spreads new connections over the
 * threads (SO_REUSEPORT), and each thread's core assigns CONNECTION-IDs tagged with its index
 * (turn_config.cid_tag). A connection whose ConnectionBind names another thread's id is
 * handed to that thread before the request is handled (relay_conn.c, relay__tcp_route). */
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "turnkey/util.h"

#define RELAY_TCP_BUF (64u << 10) /* bytes buffered per direction of a pair */
#define RELAY_TCP_ROUNDS 8        /* read/write rounds per wakeup of a pair */
#define LSN_BUCKETS 256
#define PAIR_BUCKETS 1024

enum { IO_AGAIN = -1, IO_FAIL = -2 };

typedef struct tcp_lsn {
    struct tcp_lsn *next;
    uint64_t alloc_id;
    int fd, slot;
    uint16_t port;
    struct sockaddr_storage addr; /* bound address */
    relay_worker *owner;
} tcp_lsn;

typedef struct tcp_pair tcp_pair;

typedef struct tcp_end {
    int fd; /* -1: none yet (the client side before ConnectionBind) */
    SSL *ssl;
    bool want_write, eof;
    unsigned interest;
    tcp_pair *pair;
} tcp_end;

typedef struct tcp_buf {
    uint8_t *b;
    size_t off, len, cap;
} tcp_buf;

struct tcp_pair {
    tcp_pair *next;
    uint32_t cid;
    uint64_t alloc_id;
    relay_worker *owner;
    bool connecting, bound;
    tcp_end peer, client;
    tcp_buf to_peer, to_client;
    bool admitted; /* the client connection counts against --max-conns */
    struct sockaddr_storage caddr;
};

struct relay_tcp {
    tcp_lsn *lsn[LSN_BUCKETS];
    tcp_pair *pairs[PAIR_BUCKETS];
};

static size_t lsn_slot(uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 40) & (LSN_BUCKETS - 1);
}

static size_t pair_slot(uint32_t cid)
{
    return (size_t)(((uint64_t)cid * 0x9E3779B97F4A7C15ull) >> 40) & (PAIR_BUCKETS - 1);
}

static relay_tcp *tcp_state(relay_worker *r)
{
    if (!r->tcp)
        r->tcp = util_xcalloc(1, sizeof *r->tcp);
    return r->tcp;
}

static tcp_lsn *lsn_find(relay_worker *r, uint64_t id)
{
    for (tcp_lsn *l = tcp_state(r)->lsn[lsn_slot(id)]; l; l = l->next)
        if (l->alloc_id == id)
            return l;
    return NULL;
}

static tcp_pair *pair_find(relay_worker *r, uint32_t cid)
{
    for (tcp_pair *p = tcp_state(r)->pairs[pair_slot(cid)]; p; p = p->next)
        if (p->cid == cid)
            return p;
    return NULL;
}

/* --- ends: plain or TLS reads and writes ---------------------------------------------- */

static ssize_t end_read(tcp_end *e, uint8_t *buf, size_t cap)
{
    if (!e->ssl) {
        ssize_t n = recv(e->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
    }
    int n = SSL_read(e->ssl, buf, (int)(cap > 65536 ? 65536 : cap));
    if (n > 0)
        return n;
    int err = SSL_get_error(e->ssl, n);
    if (err == SSL_ERROR_WANT_READ)
        return IO_AGAIN;
    if (err == SSL_ERROR_WANT_WRITE) {
        e->want_write = true;
        return IO_AGAIN;
    }
    ERR_clear_error();
    return err == SSL_ERROR_ZERO_RETURN ? 0 : IO_FAIL;
}

static ssize_t end_write(tcp_end *e, const uint8_t *buf, size_t len)
{
    if (!e->ssl) {
        ssize_t n = send(e->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
    }
    e->want_write = false;
    int n = SSL_write(e->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(e->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        e->want_write = err == SSL_ERROR_WANT_WRITE;
        return IO_AGAIN;
    }
    ERR_clear_error();
    return IO_FAIL;
}

static void buf_put(tcp_buf *b, const uint8_t *data, size_t len)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : RELAY_TCP_BUF;
        while (cap < b->len + len)
            cap *= 2;
        b->b = util_xrealloc(b->b, cap);
        b->cap = cap;
    }
    memcpy(b->b + b->len, data, len);
    b->len += len;
}

static void end_close(relay_worker *r, tcp_end *e)
{
    if (e->fd < 0)
        return;
    ev_del(r->loop, e->fd);
    if (e->ssl) {
        SSL_free(e->ssl);
        ERR_clear_error();
    }
    close(e->fd);
    e->fd = -1;
    e->ssl = NULL;
}

static void pair_free(relay_worker *r, tcp_pair *p, bool notify)
{
    relay_tcp *st = tcp_state(r);
    for (tcp_pair **pp = &st->pairs[pair_slot(p->cid)]; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    end_close(r, &p->peer);
    end_close(r, &p->client);
    if (p->admitted)
        relay__conn_release(r->shared, &p->caddr);
    if (notify)
        turn_server_tcp_closed(r->turn, p->cid, util_now_ms());
    free(p->to_peer.b);
    free(p->to_client.b);
    free(p);
}

static void set_interest(relay_worker *r, tcp_end *e, unsigned want)
{
    if (e->fd >= 0 && want != e->interest) {
        ev_mod(r->loop, e->fd, want);
        e->interest = want;
    }
}

/* Moves what it can from `from` into b (at most RELAY_TCP_BUF buffered); -1 on failure. */
static int pump_read(relay_worker *r, tcp_pair *p, tcp_end *from, tcp_buf *b, bool to_peer,
                     bool *progress)
{
    if (from->eof || b->len - b->off >= RELAY_TCP_BUF)
        return 0;
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (!b->b) {
        b->b = util_xmalloc(RELAY_TCP_BUF);
        b->cap = RELAY_TCP_BUF;
    }
    if (b->len == b->cap && b->off) {
        memmove(b->b, b->b + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    size_t room = b->cap - b->len;
    if (room == 0)
        return 0;
    ssize_t n = end_read(from, b->b + b->len, room);
    if (n == IO_AGAIN)
        return 0;
    if (n == IO_FAIL)
        return -1;
    *progress = true;
    if (n == 0) {
        from->eof = true;
        return 0;
    }
    b->len += (size_t)n;
    turn_server_tcp_data(r->turn, p->cid, to_peer, (size_t)n, util_now_ms());
    return 0;
}

static int pump_write(tcp_end *to, tcp_buf *b, bool *progress)
{
    while (b->len > b->off) {
        ssize_t n = end_write(to, b->b + b->off, b->len - b->off);
        if (n == IO_AGAIN)
            return 0;
        if (n < 0)
            return -1;
        b->off += (size_t)n;
        *progress = true;
    }
    return 0;
}

/* One wakeup of a bound pair: bounded rounds of reading and writing both ways, then the
 * interests: a side is read only while the buffer towards the other side has room. */
static void pump(relay_worker *r, tcp_pair *p)
{
    bool progress = true;
    for (int i = 0; progress && i < RELAY_TCP_ROUNDS; i++) {
        progress = false;
        if (pump_read(r, p, &p->client, &p->to_peer, true, &progress) != 0 ||
            pump_write(&p->peer, &p->to_peer, &progress) != 0 ||
            pump_read(r, p, &p->peer, &p->to_client, false, &progress) != 0 ||
            pump_write(&p->client, &p->to_client, &progress) != 0)
            goto close;
    }
    /* bytes OpenSSL already decrypted wake no epoll: take them while there is room (at most
     * one TLS record, so this is bounded) */
    while (p->client.ssl && SSL_pending(p->client.ssl) > 0 && !p->client.eof &&
           p->to_peer.len - p->to_peer.off < RELAY_TCP_BUF) {
        bool more = false;
        if (pump_read(r, p, &p->client, &p->to_peer, true, &more) != 0 ||
            pump_write(&p->peer, &p->to_peer, &more) != 0)
            goto close;
        if (!more)
            break;
    }
    bool up_left = p->to_peer.len > p->to_peer.off, down_left = p->to_client.len > p->to_client.off;
    if ((p->client.eof && !up_left) || (p->peer.eof && !down_left))
        goto close; /* one side ended and what it sent is delivered */
    bool up_room = p->to_peer.len - p->to_peer.off < RELAY_TCP_BUF;
    bool down_room = p->to_client.len - p->to_client.off < RELAY_TCP_BUF;
    set_interest(r, &p->client,
                 (up_room && !p->client.eof ? EV_READ : 0) |
                     (down_left || p->client.want_write ? EV_WRITE : 0));
    set_interest(r, &p->peer,
                 (down_room && !p->peer.eof ? EV_READ : 0) |
                     (up_left || p->peer.want_write ? EV_WRITE : 0));
    return;
close:
    pair_free(r, p, true);
}

static void on_end(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    tcp_end *e = ctx;
    tcp_pair *p = e->pair;
    relay_worker *r = p->owner;
    (void)loop;
    if (p->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == 0 && !(events & EV_ERROR)) {
            p->connecting = false;
            set_interest(r, &p->peer, 0); /* not read before ConnectionBind */
            turn_server_peer_connected(r->turn, p->cid, true, util_now_ms());
        } else {
            uint32_t cid = p->cid;
            pair_free(r, p, false);
            turn_server_peer_connected(r->turn, cid, false, util_now_ms());
        }
    } else if (!p->bound) {
        if (events & EV_ERROR)
            pair_free(r, p, true); /* the peer went away before the bind */
    } else {
        pump(r, p);
    }
    relay__arm_timer(r);
}

static tcp_pair *pair_new(relay_worker *r, uint32_t cid, uint64_t alloc_id, int fd)
{
    tcp_pair *p = util_xcalloc(1, sizeof *p);
    p->cid = cid;
    p->alloc_id = alloc_id;
    p->owner = r;
    p->peer = (tcp_end){.fd = fd, .pair = p};
    p->client = (tcp_end){.fd = -1, .pair = p};
    relay_tcp *st = tcp_state(r);
    size_t i = pair_slot(cid);
    p->next = st->pairs[i];
    st->pairs[i] = p;
    return p;
}

/* --- the relayed address: a listening socket ----------------------------------------- */

static void on_lsn(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    tcp_lsn *l = ctx;
    relay_worker *r = l->owner;
    uint64_t id = l->alloc_id;
    (void)loop;
    (void)events;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        relay__unmap(&peer);
        uint32_t cid =
            turn_server_peer_accepted(r->turn, id, (struct sockaddr *)&peer, util_now_ms());
        tcp_pair *p = cid ? pair_new(r, cid, id, fd) : NULL;
        if (!p || ev_add(r->loop, fd, 0, on_end, &p->peer) != 0) {
            if (p)
                pair_free(r, p, true);
            else
                close(fd); /* not permitted, denied or over a cap: closed at once */
        }
        if (!lsn_find(r, id))
            break; /* the allocation ended meanwhile */
    }
    relay__arm_timer(r);
}

/* A random free port of the range not live for this server, bound with SO_REUSEPORT. */
static bool tcp_pick_port(relay_worker *r, int fd, struct sockaddr_storage *a)
{
    unsigned span = (unsigned)(r->shared->port_hi - r->shared->port_lo) + 1;
    socklen_t alen = relay__addr_len(a->ss_family);
    unsigned start = relay__random_u32(r) % span, binds = 0;
    for (unsigned i = 0; i < 256 && i < span * 2 && binds < 32; i++) {
        unsigned off = span <= 256 ? (start + i) % span : relay__random_u32(r) % span;
        relay__set_port(a, (uint16_t)(r->shared->port_lo + off));
        if (peer_relays_live(r->shared->relays, (const struct sockaddr *)a, NULL))
            continue;
        binds++;
        if (bind(fd, (struct sockaddr *)a, alen) == 0)
            return true;
    }
    return false;
}

int relay__tcp_relay_open(void *ctx, uint64_t alloc_id, int family, const turn_5tuple *t,
                          struct sockaddr_storage *relayed)
{
    relay_worker *r = ctx;
    struct sockaddr_storage a;
    if (!relay__relay_bind_addr(r, t, family, &a))
        return TURN_RELAY_ERR_FAMILY;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    tcp_lsn *l = NULL;
    if (!tcp_pick_port(r, fd, &a) || listen(fd, 64) != 0)
        goto fail;
    l = util_xcalloc(1, sizeof *l);
    *l = (tcp_lsn){.alloc_id = alloc_id, .fd = fd, .addr = a, .owner = r};
    if (ev_add(r->loop, fd, EV_READ, on_lsn, l) != 0)
        goto fail;
    relay_tcp *st = tcp_state(r);
    size_t i = lsn_slot(alloc_id);
    l->next = st->lsn[i];
    st->lsn[i] = l;
    l->port = relay__port_of(&a);
    l->slot = peer_relays_slot(r->shared->relays, (const struct sockaddr *)&a);
    peer_relays_mark(r->shared->relays, l->slot, l->port, true);
    if (!peer_relays_public(r->shared->relays, (const struct sockaddr *)&a, relayed))
        *relayed = a;
    return 0;
fail:
    log_warn_rl(&r->rl_port, "relay", "no TCP relay port available in %u-%u", r->shared->port_lo,
                r->shared->port_hi);
    free(l);
    close(fd);
    return -1;
}

bool relay__tcp_relay_close(relay_worker *r, uint64_t alloc_id)
{
    relay_tcp *st = tcp_state(r);
    for (tcp_lsn **pp = &st->lsn[lsn_slot(alloc_id)]; *pp; pp = &(*pp)->next)
        if ((*pp)->alloc_id == alloc_id) {
            tcp_lsn *l = *pp;
            *pp = l->next;
            peer_relays_mark(r->shared->relays, l->slot, l->port, false);
            ev_del(r->loop, l->fd);
            close(l->fd);
            free(l);
            return true;
        }
    return false;
}

/* --- ops: connect, close, bind --------------------------------------------------------- */

int relay__tcp_peer_connect(void *ctx, uint64_t alloc_id, uint32_t cid, const struct sockaddr *peer)
{
    relay_worker *r = ctx;
    tcp_lsn *l = lsn_find(r, alloc_id);
    struct sockaddr_storage direct;
    if (!l || peer->sa_family != l->addr.ss_family)
        return -1;
    if (r->shared->n_external && peer_relays_live(r->shared->relays, peer, &direct))
        peer = (const struct sockaddr *)&direct; /* hairpin: straight to the private relay */
    int fd = socket(peer->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t alen = relay__addr_len(peer->sa_family);
    if (bind(fd, (const struct sockaddr *)&l->addr, alen) != 0 ||
        (connect(fd, peer, alen) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    tcp_pair *p = pair_new(r, cid, alloc_id, fd);
    p->connecting = true;
    p->peer.interest = EV_WRITE;
    if (ev_add(r->loop, fd, EV_WRITE, on_end, &p->peer) != 0) {
        pair_free(r, p, false);
        return -1;
    }
    return 0;
}

void relay__tcp_peer_close(void *ctx, uint32_t cid)
{
    relay_worker *r = ctx;
    tcp_pair *p = pair_find(r, cid);
    if (p)
        pair_free(r, p, false);
}

void relay__tcp_data_bind(void *ctx, const turn_5tuple *t, uint32_t cid)
{
    relay_worker *r = ctx;
    if (!relay__conn_set_pipe(r, t->conn_id, cid))
        relay__tcp_peer_close(r, cid);
}

void relay__tcp_adopt(relay_worker *r, uint32_t cid, int fd, struct ssl_st *ssl, bool admitted,
                      const struct sockaddr_storage *client, const uint8_t *in, size_t in_len,
                      const uint8_t *out, size_t out_len)
{
    tcp_pair *p = pair_find(r, cid);
    if (!p || p->bound || p->connecting) {
        tcp_end e = {.fd = fd, .ssl = ssl};
        end_close(r, &e);
        if (admitted)
            relay__conn_release(r->shared, client);
        return;
    }
    p->bound = true;
    p->client = (tcp_end){.fd = fd, .ssl = ssl, .pair = p};
    p->admitted = admitted;
    p->caddr = *client;
    if (out_len)
        buf_put(&p->to_client, out, out_len); /* the ConnectionBind answer first */
    if (in_len) {
        buf_put(&p->to_peer, in, in_len); /* bytes the client sent right after the request */
        turn_server_tcp_data(r->turn, cid, true, in_len, util_now_ms());
    }
    if (ev_add(r->loop, fd, EV_READ, on_end, &p->client) != 0) {
        pair_free(r, p, true);
        return;
    }
    p->client.interest = EV_READ;
    pump(r, p);
}

/* The worker whose core assigned the CONNECTION-ID of a ConnectionBind frame, when it is
 * not r (-1: handle it here). */
int relay__tcp_route(relay_worker *r, const uint8_t *frame, size_t len)
{
    if (len < STUN_HEADER_SIZE || frame[0] != 0x00 || frame[1] != STUN_METHOD_CONNECTION_BIND)
        return -1;
    uint32_t cid = turn_connection_bind_cid(frame, len);
    size_t tag = cid & 0xFFu;
    if (!cid || tag >= r->shared->n_workers || r->shared->w[tag] == r)
        return -1;
    return (int)tag;
}

void relay__tcp_dispose(relay_worker *r)
{
    relay_tcp *st = r->tcp;
    if (!st)
        return;
    for (size_t i = 0; i < PAIR_BUCKETS; i++)
        while (st->pairs[i])
            pair_free(r, st->pairs[i], false);
    for (size_t i = 0; i < LSN_BUCKETS; i++)
        for (tcp_lsn *l = st->lsn[i], *next; l; l = next) {
            next = l->next;
            close(l->fd);
            free(l);
        }
    free(st);
    r->tcp = NULL;
}
