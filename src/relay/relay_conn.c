/* relay_conn: TURN over TCP and TLS — accepted connections, stream framing (stun_frame_next:
 * partial reads, many frames per read, ChannelData padding) and buffered writes for slow
 * readers. Connection ids are (generation << 32 | fd), so a stale id never reaches a
 * connection that reused the fd. TLS goes through OpenSSL on the non-blocking socket; the
 * handshake happens inside the first reads and writes. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

enum { IO_AGAIN = -1, IO_FAIL = -2 };

static relay_conn *conn_by_id(relay_worker *r, uint64_t id)
{
    size_t fd = (size_t)(id & 0xffffffffu);
    if (fd >= r->conns_cap || !r->conns[fd] || r->conns[fd]->id != id)
        return NULL;
    return r->conns[fd];
}

static void conn_free(relay_worker *r, relay_conn *c, bool notify)
{
    ev_del(r->loop, c->fd);
    if (c->ssl) {
        if (!c->dead)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    close(c->fd);
    r->conns[c->fd] = NULL;
    if (notify)
        turn_server_conn_closed(r->turn, &c->t, util_now_ms());
    free(c->in);
    free(c->out);
    free(c);
}

/* One read: > 0 bytes, 0 end of stream, IO_AGAIN, IO_FAIL. */
static ssize_t conn_read(relay_conn *c, void *buf, size_t cap)
{
    if (!c->ssl) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
    }
    int n = SSL_read(c->ssl, buf, (int)(cap > 65536 ? 65536 : cap));
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ: return IO_AGAIN;
    case SSL_ERROR_WANT_WRITE: c->tls_want_write = true; return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default:
        ERR_clear_error(); /* handshake refused (old TLS, garbage): the alert is already sent */
        return IO_FAIL;
    }
}

/* One write: bytes written (maybe fewer than len), IO_AGAIN or IO_FAIL. */
static ssize_t conn_write(relay_conn *c, const void *buf, size_t len)
{
    if (!c->ssl) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
    }
    int n = SSL_write(c->ssl, buf, (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE: c->tls_want_write = true; return IO_AGAIN;
    case SSL_ERROR_WANT_READ: return IO_AGAIN;
    default: ERR_clear_error(); return IO_FAIL;
    }
}

static void update_interest(relay_worker *r, relay_conn *c)
{
    bool w = c->out_len > c->out_off || c->tls_want_write || c->dead;
    unsigned want = EV_READ | (w ? EV_WRITE : 0);
    if (want != c->interest) {
        ev_mod(r->loop, c->fd, want);
        c->interest = want;
    }
}

/* Writes what is queued; 0 ok (maybe still pending), -1 the connection failed. */
static int flush(relay_conn *c)
{
    c->tls_want_write = false;
    while (c->out_len > c->out_off) {
        ssize_t n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n == IO_AGAIN)
            break;
        if (n < 0)
            return -1;
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    return 0;
}

static void queue(relay_conn *c, const uint8_t *buf, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        c->out = util_xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
}

/* Frames are queued and written once per wakeup (relay__flush_conns), so a burst of frames
 * for one client becomes one send() or one TLS record instead of one each. */
void relay__conn_send(relay_worker *r, uint64_t conn_id, const uint8_t *buf, size_t len)
{
    relay_conn *c = conn_by_id(r, conn_id);
    if (!c || c->dead)
        return;
    if (c->out_len - c->out_off + len > RELAY_CONN_OUT_MAX) {
        r->send_errors++; /* slow reader: drop this whole frame, the framing stays intact */
        return;
    }
    queue(c, buf, len);
    if (!c->dirty) {
        c->dirty = true;
        if (r->n_dirty == r->cap_dirty) {
            r->cap_dirty = r->cap_dirty ? r->cap_dirty * 2 : 64;
            r->dirty = util_xrealloc(r->dirty, r->cap_dirty * sizeof *r->dirty);
        }
        r->dirty[r->n_dirty++] = conn_id;
    }
}

void relay__flush_conns(relay_worker *r)
{
    for (size_t i = 0; i < r->n_dirty; i++) {
        relay_conn *c = conn_by_id(r, r->dirty[i]);
        if (!c)
            continue; /* closed meanwhile */
        c->dirty = false;
        if (!c->dead && flush(c) != 0)
            c->dead = true;
        if (c->dead)
            conn_free(r, c, true);
        else
            update_interest(r, c);
    }
    r->n_dirty = 0;
}

/* Feeds every complete frame in c->in to the turn server; -1 on a framing error. */
static int drain_frames(relay_worker *r, relay_conn *c)
{
    size_t off = 0;
    int rc = 0;
    while (off < c->in_len) {
        size_t flen = 0, consumed = 0;
        int k = stun_frame_next(c->in + off, c->in_len - off, &flen, &consumed);
        if (k == STUN_ERR_NEED_MORE) {
            if (consumed > c->in_cap) {
                c->in = util_xrealloc(c->in, consumed);
                c->in_cap = consumed;
            }
            break;
        }
        if (k < 0) {
            rc = -1;
            break;
        }
        turn_server_input(r->turn, &c->t, c->in + off, consumed, util_now_ms());
        off += consumed;
        if (c->dead)
            break;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return rc;
}

static void read_some(relay_worker *r, relay_conn *c)
{
    /* Plain TCP: a bounded number of reads per wakeup (level-triggered epoll comes back).
     * TLS: read until OpenSSL wants more from the socket, since bytes it already decrypted
     * do not wake epoll again. */
    for (int i = 0; !c->dead && (c->ssl || i < 16); i++) {
        if (c->in_len == c->in_cap) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
            if (c->in_cap > STUN_FRAME_MAX + 4)
                c->in_cap = STUN_FRAME_MAX + 4;
            c->in = util_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = conn_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == IO_AGAIN)
            break;
        if (n <= 0) {
            c->dead = true;
            break;
        }
        c->in_len += (size_t)n;
        if (drain_frames(r, c) != 0) {
            log_debug("relay", "stream framing error: closing the connection");
            c->dead = true;
        }
    }
}

static void on_conn(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    relay_conn *c = ctx;
    relay_worker *r = c->owner;
    (void)loop;
    (void)fd;
    if (!c->dead && (events & EV_WRITE) && flush(c) != 0)
        c->dead = true;
    if (!c->dead)
        read_some(r, c);
    if (!c->dead && c->ssl && c->out_len > c->out_off && flush(c) != 0)
        c->dead = true; /* the handshake may have unblocked queued writes */
    if (c->dead)
        conn_free(r, c, true);
    else
        update_interest(r, c);
    relay__arm_timer(r);
}

static void accept_all(relay_worker *r, int lfd, turn_proto proto)
{
    for (int i = 0; i < RELAY_READ_BUDGET; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((size_t)fd >= r->conns_cap) {
            size_t cap = r->conns_cap ? r->conns_cap : 256;
            while (cap <= (size_t)fd)
                cap *= 2;
            r->conns = util_xrealloc(r->conns, cap * sizeof *r->conns);
            memset(r->conns + r->conns_cap, 0, (cap - r->conns_cap) * sizeof *r->conns);
            r->conns_cap = cap;
        }
        relay_conn *c = util_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->owner = r;
        c->id = ((uint64_t)++r->conn_gen << 32) | (uint32_t)fd;
        c->t.proto = proto;
        c->t.conn_id = c->id;
        c->t.client = peer;
        socklen_t slen = sizeof c->t.server;
        getsockname(fd, (struct sockaddr *)&c->t.server, &slen);
        relay__unmap(&c->t.client); /* dual-stack [::]: IPv4 clients as IPv4 */
        relay__unmap(&c->t.server);
        r->conns[fd] = c;
        if (proto == TURN_PROTO_TLS && !(c->ssl = tls_server_ssl(r->shared->tls, fd))) {
            c->dead = true;
            conn_free(r, c, false);
            continue;
        }
        c->interest = EV_READ;
        if (ev_add(r->loop, fd, EV_READ, on_conn, c) != 0)
            conn_free(r, c, false);
    }
}

void relay__on_accept(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    accept_all(ctx, lfd, TURN_PROTO_TCP);
}

void relay__on_accept_tls(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    accept_all(ctx, lfd, TURN_PROTO_TLS);
}

void relay__conns_close_all(relay_worker *r)
{
    for (size_t i = 0; i < r->conns_cap; i++)
        if (r->conns[i])
            conn_free(r, r->conns[i], false);
    free(r->conns);
    r->conns = NULL;
    r->conns_cap = 0;
}
