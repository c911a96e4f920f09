/* http_tls: HTTPS for the API on OpenSSL, in front of libmicrohttpd (see internal.h and
 * docs/operations.md "HTTPS for the API"). Debian's libmicrohttpd speaks TLS through GnuTLS;
 * turnkey keeps one TLS stack (OpenSSL: the TURN listeners' certificates, reload, TLS 1.2+
 * policy), so TLS ends here and libmicrohttpd gets the plaintext on one end of a socketpair
 * (MHD_add_connection, with the client's address: per-address limits and logs stay right).
 *
 * One thread, one epoll loop. A connection moves bytes both ways through two fixed buffers
 * (FRONT_BUF each); a full buffer stops reading on that side (backpressure). Bounds: the
 * connections in total and per client address (refused at once past either cap), the TLS
 * handshake within timeout_s, and no byte moved either way for twice timeout_s closes the
 * connection (libmicrohttpd's own idle timeout is timeout_s). */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "turnkey/ev.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

#define FRONT_BUF 8192      /* bytes per direction and connection */
#define FRONT_ACCEPTS 64    /* accepts per wakeup */
#define FRONT_SWEEP_MS 250  /* deadlines are checked this often */
#define FRONT_PUMP_ROUNDS 4 /* buffer refills per event (fairness) */

typedef struct fconn {
    struct fconn *prev, *next;
    http_front *f;
    int fd; /* the client's TCP connection */
    int sp; /* our end of the socketpair to libmicrohttpd; -1 before the handshake / after EOF */
    SSL *ssl;
    struct sockaddr_storage peer;
    int64_t hs_deadline; /* monotonic ms; 0 once the handshake is done */
    int64_t last_io;
    bool handshaken, client_eof, mhd_eof, sp_shut, want_write;
    bool sp_hup; /* libmicrohttpd closed its end: sp is off epoll, its rest read on demand */
    unsigned fd_interest, sp_interest;
    size_t up_len;             /* decrypted bytes for libmicrohttpd */
    size_t down_off, down_len; /* libmicrohttpd's answer, to encrypt */
    uint8_t up[FRONT_BUF], down[FRONT_BUF];
} fconn;

typedef struct adopted {
    struct adopted *next;
    int fd;
    SSL *ssl;
    struct sockaddr_storage peer;
    size_t n;
    uint8_t pre[];
} adopted;

struct http_front {
    http_front_config cfg;
    ev_loop *loop;
    pthread_t thread;
    bool running;
    bool paused; /* listener paused after EMFILE (resumed by the sweep) */
    fconn *head;
    size_t n;
    ev_timer sweep;
    pthread_mutex_t q_mu;
    adopted *q_head, *q_tail;
    size_t q_n;
    bool stopping; /* under q_mu: adoptions are refused */
    log_limiter rl;
};

static int64_t timeout_ms(const http_front *f)
{
    return (int64_t)(f->cfg.timeout_s ? f->cfg.timeout_s : 10) * 1000;
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/* The caps: false (and a rate-limited warning) when the connection must be refused. */
static bool admit(http_front *f, const struct sockaddr_storage *peer)
{
    size_t same = 0;
    const char *why = NULL;
    if (f->n >= f->cfg.max_conns)
        why = "--api-max-conns reached";
    for (fconn *c = f->head; !why && f->cfg.max_per_ip && c; c = c->next)
        if (same_ip(&c->peer, peer) && ++same >= f->cfg.max_per_ip)
            why = "--api-max-conns-per-ip reached";
    if (!why)
        return true;
    char a[INET6_ADDRSTRLEN + 8];
    util_format_addr(peer, a, sizeof a);
    log_warn_rl(&f->rl, "http", "HTTPS connection from %s refused: %s", a, why);
    return false;
}

static void conn_close(fconn *c)
{
    http_front *f = c->f;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    f->n--;
    ev_del(f->loop, c->fd);
    if (c->sp >= 0) {
        if (!c->sp_hup)
            ev_del(f->loop, c->sp);
        close(c->sp);
    }
    if (c->handshaken)
        SSL_shutdown(c->ssl); /* close_notify, best effort on the non-blocking socket */
    SSL_free(c->ssl);
    ERR_clear_error();
    close(c->fd);
    free(c);
}

static void on_sp(ev_loop *loop, int fd, unsigned events, void *ctx);

/* The plaintext side: a socketpair whose other end libmicrohttpd manages from now on. */
static int start_mhd(fconn *c)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    socklen_t len =
        c->peer.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (MHD_add_connection(c->f->cfg.d, sv[1], (const struct sockaddr *)&c->peer, len) != MHD_YES) {
        close(sv[0]); /* libmicrohttpd closed sv[1] */
        return -1;
    }
    c->sp = sv[0];
    c->sp_interest = EV_READ;
    if (ev_add(c->f->loop, c->sp, EV_READ, on_sp, c) != 0)
        return -1;
    return 0;
}

/* 1 done, 0 waiting for the socket, -1 failed. */
static int handshake(fconn *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaken = true;
        c->hs_deadline = 0;
        return start_mhd(c) == 0 ? 1 : -1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: return 0;
    case SSL_ERROR_WANT_WRITE: c->want_write = true; return 0;
    default: ERR_clear_error(); return -1;
    }
}

/* Client to libmicrohttpd. -1: the connection failed. */
static int upstream(fconn *c, bool *moved)
{
    if (c->up_len && c->sp >= 0) {
        ssize_t n = send(c->sp, c->up, c->up_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            memmove(c->up, c->up + n, c->up_len - (size_t)n);
            c->up_len -= (size_t)n;
            *moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            c->up_len = 0; /* libmicrohttpd is gone: nothing more to deliver */
        }
    }
    while (!c->client_eof && c->up_len < sizeof c->up) {
        int n = SSL_read(c->ssl, c->up + c->up_len, (int)(sizeof c->up - c->up_len));
        if (n > 0) {
            c->up_len += (size_t)n;
            *moved = true;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            c->want_write = true;
            break;
        }
        ERR_clear_error();
        if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL)
            return -1;
        c->client_eof = true; /* close_notify, or the TCP stream ended */
        *moved = true;
    }
    if (c->client_eof && !c->up_len && c->sp >= 0 && !c->sp_shut) {
        shutdown(c->sp, SHUT_WR); /* libmicrohttpd sees the end of the request stream */
        c->sp_shut = true;
    }
    return 0;
}

/* libmicrohttpd to the client. -1: the connection failed. */
static int downstream(fconn *c, bool *moved)
{
    if (c->down_off == c->down_len)
        c->down_off = c->down_len = 0;
    while (c->sp >= 0 && c->down_len < sizeof c->down) {
        ssize_t n = recv(c->sp, c->down + c->down_len, sizeof c->down - c->down_len, MSG_DONTWAIT);
        if (n > 0) {
            c->down_len += (size_t)n;
            *moved = true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        c->mhd_eof = true; /* libmicrohttpd closed the connection: no more to read or write */
        if (!c->sp_hup)
            ev_del(c->f->loop, c->sp);
        close(c->sp);
        c->sp = -1;
        *moved = true;
    }
    while (c->down_off < c->down_len) {
        int n = SSL_write(c->ssl, c->down + c->down_off, (int)(c->down_len - c->down_off));
        if (n > 0) {
            c->down_off += (size_t)n;
            *moved = true;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE)
            c->want_write = true;
        else if (e != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return -1;
        }
        break;
    }
    if (c->down_off > 0) { /* room at the end again (set_interest reads sp only then) */
        memmove(c->down, c->down + c->down_off, c->down_len - c->down_off);
        c->down_len -= c->down_off;
        c->down_off = 0;
    }
    return 0;
}

static void set_interest(fconn *c)
{
    /* after sp_hup, the client's writability drives reading the rest of the answer */
    bool pull = c->sp_hup && c->sp >= 0;
    unsigned fdw = (!c->handshaken || (!c->client_eof && c->up_len < sizeof c->up) ? EV_READ : 0) |
                   (c->want_write || pull ? EV_WRITE : 0);
    if (fdw != c->fd_interest && ev_mod(c->f->loop, c->fd, fdw) == 0)
        c->fd_interest = fdw;
    if (c->sp < 0 || c->sp_hup)
        return;
    unsigned spw = (c->down_len < sizeof c->down ? EV_READ : 0) | (c->up_len ? EV_WRITE : 0);
    if (spw != c->sp_interest && ev_mod(c->f->loop, c->sp, spw) == 0)
        c->sp_interest = spw;
}

/* Moves what can be moved; closes the connection when it failed or is complete. */
static void step(fconn *c)
{
    c->want_write = false;
    int k = c->handshaken ? 1 : handshake(c);
    if (k < 0)
        goto done;
    for (int round = 0; k > 0 && round < FRONT_PUMP_ROUNDS; round++) {
        bool moved = false;
        if (upstream(c, &moved) != 0 || downstream(c, &moved) != 0)
            goto done;
        if (moved)
            c->last_io = ev_now_ms(c->f->loop);
        else
            break;
    }
    if (c->handshaken && c->mhd_eof && c->down_off == c->down_len)
        goto done; /* libmicrohttpd is finished and everything reached the client */
    set_interest(c);
    return;
done:
    conn_close(c);
}

static void on_fd(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    (void)loop;
    (void)fd;
    if (events & EV_ERROR)
        conn_close(ctx); /* reset or hung up: nothing can reach the client any more */
    else
        step(ctx);
}

static void on_sp(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    fconn *c = ctx;
    if ((events & EV_ERROR) && !c->sp_hup) {
        /* Hung up: epoll would report it on every wait while the rest of the answer waits
         * for a slow client, so sp leaves epoll and downstream() reads it as room appears. */
        c->sp_hup = true;
        ev_del(loop, fd);
    }
    step(c);
}

static void conn_new(http_front *f, int fd, SSL *ssl, const struct sockaddr_storage *peer,
                     const uint8_t *pre, size_t n, bool handshaken)
{
    fconn *c = util_xcalloc(1, sizeof *c);
    c->f = f;
    c->fd = fd;
    c->sp = -1;
    c->ssl = ssl;
    c->peer = *peer;
    c->last_io = ev_now_ms(f->loop);
    c->hs_deadline = handshaken ? 0 : c->last_io + timeout_ms(f);
    c->next = f->head;
    if (f->head)
        f->head->prev = c;
    f->head = c;
    f->n++;
    if (n)
        memcpy(c->up, pre, n); /* n <= FRONT_BUF: checked by the callers */
    c->up_len = n;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd_interest = EV_READ;
    if (ev_add(f->loop, fd, EV_READ, on_fd, c) != 0) {
        conn_close(c);
        return;
    }
    if (handshaken) {
        c->handshaken = true;
        if (start_mhd(c) != 0) {
            conn_close(c);
            return;
        }
    }
    step(c);
}

static void on_accept(ev_loop *loop, int lfd, unsigned events, void *ctx)
{
    http_front *f = ctx;
    (void)events;
    for (int i = 0; i < FRONT_ACCEPTS; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn_rl(&f->rl, "http", "cannot accept an HTTPS connection: %s; pausing",
                            strerror(errno));
                if (ev_mod(loop, lfd, 0) == 0)
                    f->paused = true;
                return;
            }
            if (errno == ECONNABORTED || errno == EINTR || errno == EPROTO)
                continue;
            return;
        }
        SSL *ssl = admit(f, &peer) ? tls_server_ssl(f->cfg.tls, fd) : NULL;
        if (!ssl) {
            close(fd);
            continue;
        }
        conn_new(f, fd, ssl, &peer, NULL, 0, false);
    }
}

/* Connections handed over by another thread (the relay's shared TLS port). */
static void on_wakeup(ev_loop *loop, void *ctx)
{
    http_front *f = ctx;
    (void)loop;
    pthread_mutex_lock(&f->q_mu);
    adopted *a = f->q_head;
    f->q_head = f->q_tail = NULL;
    f->q_n = 0;
    pthread_mutex_unlock(&f->q_mu);
    while (a) {
        adopted *next = a->next;
        if (admit(f, &a->peer)) {
            conn_new(f, a->fd, a->ssl, &a->peer, a->pre, a->n, true);
        } else {
            tls_conn_close(a->ssl, a->fd);
        }
        free(a);
        a = next;
    }
}

static void on_sweep(ev_loop *loop, ev_timer *t, void *ctx)
{
    http_front *f = ctx;
    int64_t now = ev_now_ms(loop), idle = 2 * timeout_ms(f);
    for (fconn *c = f->head, *next; c; c = next) {
        next = c->next;
        if ((c->hs_deadline && now >= c->hs_deadline) || now - c->last_io >= idle)
            conn_close(c);
    }
    if (f->paused && ev_mod(loop, f->cfg.listen_fd, EV_READ) == 0)
        f->paused = false;
    ev_timer_start(loop, t, FRONT_SWEEP_MS);
}

static void *run(void *arg)
{
    http_front *f = arg;
    ev_run(f->loop);
    return NULL;
}

http_front *http__front_start(const http_front_config *cfg, char **err)
{
    http_front *f = util_xcalloc(1, sizeof *f);
    f->cfg = *cfg;
    if (!f->cfg.max_conns)
        f->cfg.max_conns = 1024;
    pthread_mutex_init(&f->q_mu, NULL);
    log_limiter_init(&f->rl);
    if (!(f->loop = ev_loop_new())) {
        *err = util_xasprintf("cannot create the HTTPS event loop: %s", strerror(errno));
        goto fail;
    }
    ev_set_wakeup_cb(f->loop, on_wakeup, f);
    ev_timer_init(&f->sweep, on_sweep, f);
    ev_timer_start(f->loop, &f->sweep, FRONT_SWEEP_MS);
    if (cfg->listen_fd >= 0 &&
        (fcntl(cfg->listen_fd, F_SETFL, fcntl(cfg->listen_fd, F_GETFL) | O_NONBLOCK) != 0 ||
         ev_add(f->loop, cfg->listen_fd, EV_READ, on_accept, f) != 0)) {
        *err = util_xasprintf("cannot watch the HTTPS listener");
        goto fail;
    }
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        *err = util_xasprintf("cannot start the HTTPS thread");
        goto fail;
    }
    f->running = true;
    return f;
fail:
    if (f->loop)
        ev_loop_free(f->loop);
    pthread_mutex_destroy(&f->q_mu);
    free(f);
    return NULL;
}

void http__front_adopt(http_front *f, int fd, SSL *ssl, const uint8_t *pre, size_t n,
                       const struct sockaddr_storage *peer)
{
    bool ok = n <= FRONT_BUF;
    adopted *a = util_xcalloc(1, sizeof *a + (ok ? n : 0));
    pthread_mutex_lock(&f->q_mu);
    ok = ok && !f->stopping && f->q_n < f->cfg.max_conns; /* the queue is bounded too */
    if (ok) {
        a->fd = fd;
        a->ssl = ssl;
        a->peer = *peer;
        a->n = n;
        if (n)
            memcpy(a->pre, pre, n);
        if (f->q_tail)
            f->q_tail->next = a;
        else
            f->q_head = a;
        f->q_tail = a;
        f->q_n++;
    }
    pthread_mutex_unlock(&f->q_mu);
    if (!ok) {
        tls_conn_close(ssl, fd);
        free(a);
        return;
    }
    ev_wakeup(f->loop);
}

void http__front_stop(http_front *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->q_mu);
    f->stopping = true;
    pthread_mutex_unlock(&f->q_mu);
    if (f->running) {
        ev_stop(f->loop);
        pthread_join(f->thread, NULL);
    }
    for (adopted *a = f->q_head, *next; a; a = next) { /* handed over meanwhile */
        next = a->next;
        tls_conn_close(a->ssl, a->fd);
        free(a);
    }
    while (f->head)
        conn_close(f->head);
    ev_timer_stop(f->loop, &f->sweep);
    if (f->cfg.listen_fd >= 0) {
        ev_del(f->loop, f->cfg.listen_fd);
        close(f->cfg.listen_fd);
    }
    ev_loop_free(f->loop);
    pthread_mutex_destroy(&f->q_mu);
    free(f);
}
