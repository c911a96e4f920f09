/* relay_conn: TURN over TCP — accepted connections, stream framing (stun_frame_next:
 * partial reads, many frames per read, ChannelData padding) and buffered writes for slow
 * readers. Connection ids are (generation << 32 | fd), so a stale id never reaches a
 * connection that reused the fd. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

static relay_conn *conn_by_id(relay *r, uint64_t id)
{
    size_t fd = (size_t)(id & 0xffffffffu);
    if (fd >= r->conns_cap || !r->conns[fd] || r->conns[fd]->id != id)
        return NULL;
    return r->conns[fd];
}

static void conn_free(relay *r, relay_conn *c, bool notify)
{
    ev_del(r->loop, c->fd);
    close(c->fd);
    r->conns[c->fd] = NULL;
    if (notify)
        turn_server_conn_closed(r->turn, &c->t, util_now_ms());
    free(c->in);
    free(c->out);
    free(c);
}

/* Writes what is queued; 0 ok (maybe still pending), -1 the connection failed. */
static int flush(relay *r, relay_conn *c)
{
    while (c->out_len > c->out_off) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    ev_mod(r->loop, c->fd, EV_READ | (c->out_len ? EV_WRITE : 0));
    return 0;
}

static void queue(relay_conn *c, const uint8_t *buf, size_t len)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
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

void relay__conn_send(relay *r, uint64_t conn_id, const uint8_t *buf, size_t len)
{
    relay_conn *c = conn_by_id(r, conn_id);
    if (!c || c->dead)
        return;
    size_t pending = c->out_len - c->out_off;
    if (pending == 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            c->dead = true; /* closed from its own callback, never mid-turn-call */
            ev_mod(r->loop, c->fd, EV_READ | EV_WRITE);
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done == len)
            return;
        queue(c, buf + done, len - done);
    } else if (pending + len > RELAY_CONN_OUT_MAX) {
        r->send_errors++; /* slow reader: drop this whole frame, framing stays intact */
        return;
    } else {
        queue(c, buf, len);
    }
    ev_mod(r->loop, c->fd, EV_READ | EV_WRITE);
}

/* Feeds every complete frame in c->in to the turn server; -1 on a framing error. */
static int drain_frames(relay *r, relay_conn *c)
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

static void on_conn(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    relay_conn *c = ctx;
    relay *r = c->owner;
    (void)loop;
    (void)fd;
    if ((events & EV_WRITE) && !c->dead && flush(r, c) != 0)
        c->dead = true;
    for (int i = 0; !c->dead && (events & (EV_READ | EV_ERROR)) && i < 16; i++) {
        if (c->in_len == c->in_cap) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
            if (c->in_cap > STUN_FRAME_MAX + 4)
                c->in_cap = STUN_FRAME_MAX + 4;
            c->in = util_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->dead = true;
            break;
        }
        if (n < 0)
            break;
        c->in_len += (size_t)n;
        if (drain_frames(r, c) != 0) {
            log_debug("relay", "TCP framing error: closing the connection");
            c->dead = true;
        }
    }
    if (c->dead)
        conn_free(r, c, true);
    relay__arm_timer(r);
}

void relay__on_accept(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    relay *r = ctx;
    (void)loop;
    (void)events;
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
        c->t.proto = TURN_PROTO_TCP;
        c->t.conn_id = c->id;
        c->t.client = peer;
        socklen_t slen = sizeof c->t.server;
        getsockname(fd, (struct sockaddr *)&c->t.server, &slen);
        r->conns[fd] = c;
        if (ev_add(r->loop, fd, EV_READ, on_conn, c) != 0)
            conn_free(r, c, false);
    }
}

void relay__conns_close_all(relay *r)
{
    for (size_t i = 0; i < r->conns_cap; i++)
        if (r->conns[i])
            conn_free(r, r->conns[i], false);
    free(r->conns);
    r->conns = NULL;
    r->conns_cap = 0;
}
