/* relay_conn: TURN over TCP and TLS — accepted connections, stream framing (stun_frame_next:
 * partial reads, many frames per read, ChannelData padding) and buffered writes for slow
 * readers. Connection ids are (generation << 32 | fd), so a stale id never reaches a
 * connection that reused the fd. TLS goes through OpenSSL on the non-blocking socket; the
 * handshake happens inside the first reads and writes.
 *
 * Limits (docs/operations.md "Limits"): connections are admitted per source address and in
 * total (relay_limits.c) and refused at once past either cap; one that has not sent a valid
 * STUN message (so, for TLS, also finished its handshake) within --handshake-timeout is
 * closed; frames above RELAY_CONN_IN_MAX close the connection, so the input buffer never
 * holds more; a slow reader's queue is capped at RELAY_CONN_OUT_MAX (frames past it drop).
 * Every wakeup gives a connection at most RELAY_CONN_READS_PER_WAKEUP reads and
 * RELAY_CONN_FRAMES_PER_WAKEUP frames; work left over (complete frames in the buffer, or
 * bytes OpenSSL decrypted already, which do not wake epoll) waits on the resume list, which
 * a zero-delay timer serves on the next loop iteration, after every other ready fd. A
 * listener that fails with EMFILE/ENFILE is paused for RELAY_ACCEPT_BACKOFF_MS instead of
 * spinning (it stays readable while connections wait in its backlog). */
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

static void hs_unlink(relay_worker *r, relay_conn *c)
{
    if (!c->hs_prev && r->hs_head != c)
        return; /* not on the list */
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        r->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        r->hs_tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
}

static void hs_append(relay_worker *r, relay_conn *c)
{
    c->hs_deadline = ev_now_ms(r->loop) + r->shared->handshake_ms;
    c->hs_prev = r->hs_tail;
    if (r->hs_tail)
        r->hs_tail->hs_next = c;
    else
        r->hs_head = c;
    r->hs_tail = c;
}

static void hs_arm(relay_worker *r)
{
    if (r->hs_head)
        ev_timer_start_at(r->loop, &r->hs_timer, r->hs_head->hs_deadline);
    else
        ev_timer_stop(r->loop, &r->hs_timer);
}

static void conn_free(relay_worker *r, relay_conn *c, bool notify)
{
    int fd = c->fd;
    hs_unlink(r, c);
    if (c->admitted)
        relay__conn_release(r->shared, &c->t.client);
    ev_del(r->loop, fd);
    if (c->handoff)
        relay__mux_handoff(r, c); /* HTTP on the shared TLS port: fd and ssl move on */
    if (c->ssl) {
        if (!c->tls_done)
            r->tls_failed++;
        if (!c->dead)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    r->conns[fd] = NULL;
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
    if (!c->tls_done && SSL_is_init_finished(c->ssl)) {
        c->tls_done = true;
        c->owner->tls_ok++;
    }
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
    if (c->out_off == c->out_len) { /* an idle connection holds no buffer */
        c->out_off = c->out_len = c->out_cap = 0;
        free(c->out);
        c->out = NULL;
    }
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

/* The first valid STUN message proves the connection (it is off the handshake clock). */
static void prove(relay_worker *r, relay_conn *c, const uint8_t *frame, size_t len)
{
    stun_msg m;
    if (c->proven || (frame[0] & 0xC0) != 0 || stun_parse(frame, len, &m) != STUN_OK)
        return;
    hs_unlink(r, c);
    c->proven = true;
}

/* Feeds complete frames in c->in to the turn server, at most *budget (decremented); -1 on a
 * framing error or a frame larger than RELAY_CONN_IN_MAX. */
static int drain_frames(relay_worker *r, relay_conn *c, int *budget)
{
    size_t off = 0;
    int rc = c->mux ? relay__mux_step(c) : 0;
    if (rc != 0)
        return rc < 0 ? -1 : 0; /* neither TURN nor HTTP / wait for bytes, or handed off */
    while (off<c->in_len && * budget> 0) {
        size_t flen = 0, consumed = 0;
        int k = stun_frame_next(c->in + off, c->in_len - off, &flen, &consumed);
        if (k == STUN_ERR_NEED_MORE) {
            if (consumed > RELAY_CONN_IN_MAX)
                rc = -1;
            else if (consumed > c->in_cap) {
                c->in = util_xrealloc(c->in, consumed);
                c->in_cap = consumed;
            }
            break;
        }
        if (k < 0 || consumed > RELAY_CONN_IN_MAX) {
            rc = -1;
            break;
        }
        prove(r, c, c->in + off, flen);
        int to = r->shared->n_workers > 1 ? relay__tcp_route(r, c->in + off, flen) : -1;
        if (to >= 0) { /* another worker's CONNECTION-ID: that worker takes the connection */
            c->to_worker = to + 1;
            break;
        }
        turn_server_input(r->turn, &c->t, c->in + off, consumed, util_now_ms());
        off += consumed;
        (*budget)--;
        if (c->dead || c->pipe_cid)
            break;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return rc;
}

/* Work may be left after the budget: come back on the next loop iteration. */
static void resume_later(relay_worker *r, relay_conn *c)
{
    if (c->resume)
        return;
    c->resume = true;
    if (r->n_resume == r->cap_resume) {
        r->cap_resume = r->cap_resume ? r->cap_resume * 2 : 64;
        r->resume_ids = util_xrealloc(r->resume_ids, r->cap_resume * sizeof *r->resume_ids);
    }
    r->resume_ids[r->n_resume++] = c->id;
    if (!ev_timer_active(&r->resume_timer))
        ev_timer_start(r->loop, &r->resume_timer, 0);
}

/* One wakeup's work for a connection: frames left from the last one first, then up to
 * RELAY_CONN_READS_PER_WAKEUP reads, within RELAY_CONN_FRAMES_PER_WAKEUP frames. */
static void read_some(relay_worker *r, relay_conn *c)
{
    int budget = RELAY_CONN_FRAMES_PER_WAKEUP;
    if (drain_frames(r, c, &budget) != 0)
        goto framing;
    for (int i = 0;
         !c->dead && !c->pipe_cid && !c->to_worker && budget > 0 && i < RELAY_CONN_READS_PER_WAKEUP;
         i++) {
        if (c->in_len == c->in_cap) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
            if (c->in_cap > RELAY_CONN_IN_MAX)
                c->in_cap = RELAY_CONN_IN_MAX;
            c->in = util_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = conn_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == IO_AGAIN) {      /* drained: the socket (and OpenSSL) hold nothing more */
            if (c->in_len == 0) { /* an idle connection holds no buffer */
                free(c->in);
                c->in = NULL;
                c->in_cap = 0;
            }
            return;
        }
        if (n <= 0) {
            c->dead = true;
            return;
        }
        c->in_len += (size_t)n;
        if (drain_frames(r, c, &budget) != 0)
            goto framing;
    }
    if (!c->dead && !c->pipe_cid && !c->to_worker)
        resume_later(r, c);
    return;
framing:
    log_debug("relay", "stream framing error or frame over %d bytes: closing the connection",
              RELAY_CONN_IN_MAX);
    c->dead = true;
}

/* Takes c out of r (its socket stays open): it becomes a data connection (relay_tcp.c) or
 * goes to the worker its ConnectionBind belongs to. */
static void conn_detach(relay_worker *r, relay_conn *c)
{
    hs_unlink(r, c);
    ev_del(r->loop, c->fd);
    r->conns[c->fd] = NULL;
    c->dirty = c->resume = false;
    if (c->pipe_cid) {
        relay__tcp_adopt(r, c->pipe_cid, c->fd, c->ssl, c->admitted, &c->t.client, c->in, c->in_len,
                         c->out + c->out_off, c->out_len - c->out_off);
        free(c->in);
        free(c->out);
        free(c);
        return;
    }
    relay_worker *to = r->shared->w[c->to_worker - 1];
    log_debug("relay", "ConnectionBind for relay thread %d: connection handed over",
              c->to_worker - 1);
    relay_event *e = util_xcalloc(1, sizeof *e + 1);
    e->kind = RELAY_EV_CONN;
    e->conn = c;
    pthread_mutex_lock(&to->q_mu);
    if (to->q_tail)
        to->q_tail->next = e;
    else
        to->q_head = e;
    to->q_tail = e;
    pthread_mutex_unlock(&to->q_mu);
    ev_wakeup(to->loop);
}

bool relay__conn_set_pipe(relay_worker *r, uint64_t conn_id, uint32_t cid)
{
    relay_conn *c = conn_by_id(r, conn_id);
    if (!c || c->dead)
        return false;
    c->pipe_cid = cid;
    return true;
}

static void conn_register(relay_worker *r, relay_conn *c)
{
    if ((size_t)c->fd >= r->conns_cap) {
        size_t cap = r->conns_cap ? r->conns_cap : 256;
        while (cap <= (size_t)c->fd)
            cap *= 2;
        r->conns = util_xrealloc(r->conns, cap * sizeof *r->conns);
        memset(r->conns + r->conns_cap, 0, (cap - r->conns_cap) * sizeof *r->conns);
        r->conns_cap = cap;
    }
    r->conns[c->fd] = c;
}

/* After reading or writing: push out what the handshake unblocked, free or re-arm. */
static void conn_done(relay_worker *r, relay_conn *c)
{
    if (!c->dead && (c->pipe_cid || c->to_worker)) {
        conn_detach(r, c);
        return;
    }
    if (c->dead && c->pipe_cid) { /* bound, but gone before it became a pipe */
        relay__tcp_peer_close(r, c->pipe_cid);
        turn_server_tcp_closed(r->turn, c->pipe_cid, util_now_ms());
    }
    if (!c->dead && c->ssl && c->out_len > c->out_off && flush(c) != 0)
        c->dead = true; /* the handshake may have unblocked queued writes */
    if (c->dead)
        conn_free(r, c, true);
    else
        update_interest(r, c);
}

static void on_resume(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *r = ctx;
    (void)loop;
    (void)t;
    uint64_t *ids = r->resume_ids;
    size_t n = r->n_resume;
    r->resume_ids = NULL; /* connections that run out of budget again go on a new list */
    r->n_resume = r->cap_resume = 0;
    for (size_t i = 0; i < n; i++) {
        relay_conn *c = conn_by_id(r, ids[i]);
        if (!c)
            continue; /* closed meanwhile */
        c->resume = false;
        if (!c->dead)
            read_some(r, c);
        conn_done(r, c);
    }
    free(ids);
    relay__arm_timer(r);
}

/* Closes every connection whose handshake deadline passed without a valid STUN message. */
static void on_hs_timer(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *r = ctx;
    (void)t;
    int64_t now = ev_now_ms(loop);
    size_t closed = 0;
    while (r->hs_head && r->hs_head->hs_deadline <= now) {
        conn_free(r, r->hs_head, true);
        closed++;
    }
    if (closed)
        log_info_rl(&r->rl_conn, "relay",
                    "closed %zu TCP/TLS connection(s) with no STUN message within %lld ms", closed,
                    (long long)r->shared->handshake_ms);
    hs_arm(r);
    relay__arm_timer(r);
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
    conn_done(r, c);
    relay__arm_timer(r);
}

void relay__conn_adopt(relay_worker *r, relay_conn *c)
{
    c->owner = r;
    c->to_worker = 0;
    conn_register(r, c);
    c->interest = EV_READ;
    if (ev_add(r->loop, c->fd, EV_READ, on_conn, c) != 0) {
        c->dead = true;
        conn_free(r, c, false);
        return;
    }
    if (!c->dead)
        read_some(r, c); /* the ConnectionBind is still in c->in */
    conn_done(r, c);
    relay__arm_timer(r);
}

void relay__conn_discard(relay_worker *r, relay_conn *c)
{
    c->owner = r;
    conn_register(r, c);
    c->dead = true;
    conn_free(r, c, false);
}

static void on_accept_timer(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *r = ctx;
    (void)t;
    for (size_t i = 0; i < r->n_paused; i++)
        ev_mod(loop, r->paused[i], EV_READ);
    atomic_fetch_sub(&r->shared->paused_listeners, (uint32_t)r->n_paused);
    r->n_paused = 0;
}

size_t relay_paused_listeners(const relay *r)
{
    return atomic_load(&((relay *)r)->paused_listeners);
}

/* accept4 failed with e: true to stop accepting in this wakeup. Out of descriptors (or
 * kernel memory) pauses the listener for a while instead of coming straight back to it. */
static bool accept_error(relay_worker *r, int lfd, int e)
{
    if (e == ECONNABORTED || e == EPROTO || e == EINTR)
        return false;
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
        return true; /* EAGAIN: the backlog is empty */
    if (ev_mod(r->loop, lfd, 0) == 0) {
        if (r->n_paused == r->cap_paused) {
            r->cap_paused = r->cap_paused ? r->cap_paused * 2 : 8;
            r->paused = util_xrealloc(r->paused, r->cap_paused * sizeof *r->paused);
        }
        r->paused[r->n_paused++] = lfd;
        atomic_fetch_add(&r->shared->paused_listeners, 1); /* /readyz answers 503 meanwhile */
        if (!ev_timer_active(&r->accept_timer))
            ev_timer_start(r->loop, &r->accept_timer, RELAY_ACCEPT_BACKOFF_MS);
    }
    log_warn_rl(&r->rl_accept, "relay",
                "cannot accept a TCP/TLS connection: %s; pausing the listener for %d ms "
                "(raise the open-file limit or lower --max-conns)",
                strerror(e), RELAY_ACCEPT_BACKOFF_MS);
    return true;
}

/* Counts the connection against the caps; false (and a rate-limited warning) if refused. */
static bool admit(relay_worker *r, const struct sockaddr_storage *peer)
{
    int rc = relay__conn_admit(r->shared, peer);
    if (rc == RELAY_ADMIT_OK)
        return true;
    char a[INET6_ADDRSTRLEN + 8];
    util_format_addr(peer, a, sizeof a);
    log_warn_rl(&r->rl_refused, "relay", "TCP/TLS connection from %s refused: %s (%u)", a,
                rc == RELAY_ADMIT_PER_IP ? "--max-conns-per-ip reached" : "--max-conns reached",
                rc == RELAY_ADMIT_PER_IP ? r->shared->max_conns_per_ip : r->shared->max_conns);
    return false;
}

static void accept_all(relay_worker *r, int lfd, turn_proto proto, bool mux)
{
    for (int i = 0; i < RELAY_READ_BUDGET; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (accept_error(r, lfd, errno))
                break;
            continue;
        }
        relay__unmap(&peer); /* counted and logged as IPv4 on a dual-stack listener too */
        if (!admit(r, &peer)) {
            close(fd);
            continue;
        }
        int one = 1, sndbuf = RELAY_CONN_SNDBUF;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        relay_conn *c = util_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->owner = r;
        c->id = ((uint64_t)++r->conn_gen << 32) | (uint32_t)fd;
        c->t.proto = proto;
        c->t.conn_id = c->id;
        c->t.client = peer;
        c->admitted = true;
        socklen_t slen = sizeof c->t.server;
        getsockname(fd, (struct sockaddr *)&c->t.server, &slen);
        relay__unmap(&c->t.client); /* dual-stack [::]: IPv4 clients as IPv4 */
        relay__unmap(&c->t.server);
        conn_register(r, c);
        c->mux = mux;
        if (proto == TURN_PROTO_TLS &&
            !(c->ssl = tls_server_ssl(mux ? r->shared->mux_tls : r->shared->tls, fd))) {
            c->dead = true;
            conn_free(r, c, false);
            continue;
        }
        c->interest = EV_READ;
        if (ev_add(r->loop, fd, EV_READ, on_conn, c) != 0) {
            conn_free(r, c, false);
            continue;
        }
        hs_append(r, c);
    }
    hs_arm(r);
}

void relay__on_accept(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    accept_all(ctx, lfd, TURN_PROTO_TCP, false);
}

void relay__on_accept_tls(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    accept_all(ctx, lfd, TURN_PROTO_TLS, false);
}

void relay__on_accept_mux(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    accept_all(ctx, lfd, TURN_PROTO_TLS, true);
}

void relay__conns_init(relay_worker *r)
{
    ev_timer_init(&r->hs_timer, on_hs_timer, r);
    ev_timer_init(&r->resume_timer, on_resume, r);
    ev_timer_init(&r->accept_timer, on_accept_timer, r);
    log_limiter_init(&r->rl_accept);
    log_limiter_init(&r->rl_refused);
    log_limiter_init(&r->rl_conn);
    log_limiter_init(&r->rl_port);
    log_limiter_init(&r->rl_event);
}

void relay__conns_close_all(relay_worker *r)
{
    if (r->loop) {
        ev_timer_stop(r->loop, &r->hs_timer);
        ev_timer_stop(r->loop, &r->resume_timer);
        ev_timer_stop(r->loop, &r->accept_timer);
    }
    free(r->resume_ids);
    r->resume_ids = NULL;
    free(r->paused);
    r->paused = NULL;
    atomic_fetch_sub(&r->shared->paused_listeners, (uint32_t)r->n_paused);
    r->n_paused = r->cap_paused = 0;
    r->n_resume = r->cap_resume = 0;
    for (size_t i = 0; i < r->conns_cap; i++)
        if (r->conns[i])
            conn_free(r, r->conns[i], false);
    free(r->conns);
    r->conns = NULL;
    r->conns_cap = 0;
}
