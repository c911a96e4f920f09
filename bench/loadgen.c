/* bench/loadgen: closed-loop TURN load generator for `make bench` (loopback only).
 *
 * Modes (first argument):
 *   echo   F flows (one socket / 5-tuple each): Allocate (401 challenge, then authenticated),
 *          CreatePermission + ChannelBind to the echo peer, then W messages in flight per flow,
 *          every echoed payload checked byte for byte. --send uses Send/Data indications,
 *          --tcp / --tls one stream per flow (ChannelData padded to 4), --baseline talks to the
 *          do-nothing relay (echopeer --null-relay) with no TURN setup. --rate N paces the
 *          whole run at N messages/s (latency figure) instead of the closed loop.
 *   alloc  authenticated Allocates/s: A in flight, each on a fresh socket (new 5-tuple, the
 *          401 round trip included); every allocation is released with Refresh(LIFETIME 0)
 *          before its socket closes (its round trip is part of the cycle, not counted).
 *   hold   N allocations on N sockets, never refreshed; prints "READY allocations=N", then waits
 *          --hold seconds (or until stdin closes) and exits.
 *
 * Output: one "RESULT key=value ..." line on stdout. Every loop is bounded by count and time.
 * Credentials: --user/--pass, or --secret S (coturn REST scheme: "<expiry>:bench",
 * base64(HMAC-SHA1(S, username))). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "turnkey/cred.h"
#include "turnkey/stun.h"
#include "turnkey/util.h"

#define MAX_FLOWS 4096
#define MAX_WINDOW 256
#define MAX_PAYLOAD 1400
#define MIN_PAYLOAD 20
#define MSG_CAP 2048
#define RX_BATCH 64
#define CHANNEL0 0x4000
#define LOSS_TIMEOUT_NS 100000000LL /* UDP: an echo not back after this is counted lost */

/* ---- options ------------------------------------------------------------------------- */

typedef struct {
    const char *mode;
    struct sockaddr_in server, peer;
    int flows, window, size, inflight, count;
    double duration, warmup, rate, hold, timeout;
    bool send_ind, tcp, tls, baseline, keep;
    char user[CRED_USERNAME_MAX], pass[CRED_PASSWORD_MAX];
} opts;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* IPv4 "host:port" with a non-zero port (the project's parser, narrowed to what the bench uses). */
static int parse_addr(const char *s, struct sockaddr_in *out)
{
    struct sockaddr_storage ss;
    unsigned len;
    if (util_parse_addr(s, &ss, &len) != 0 || ss.ss_family != AF_INET)
        return -1;
    memcpy(out, &ss, sizeof *out);
    return out->sin_port != 0 ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen echo|alloc|hold --server IP:PORT [--peer IP:PORT]\n"
                    "  [--user U --pass P | --secret S] [--flows F] [--window W] [--size B]\n"
                    "  [--duration S] [--warmup S] [--rate N] [--send|--tcp|--tls|--baseline]\n"
                    "  [--inflight A] [--count N] [--hold S] [--keep] [--timeout S]\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, opts *o)
{
    const char *secret = NULL;
    bool have_server = false;
    memset(o, 0, sizeof *o);
    o->flows = 50;
    o->window = 32;
    o->size = 100;
    o->inflight = 50;
    o->count = 10000;
    o->duration = 3;
    o->warmup = 0.5;
    o->hold = 30;
    o->timeout = 60;
    parse_addr("127.0.0.1:7490", &o->peer); /* bench/run.sh's echo peer */
    if (argc < 2)
        usage();
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = true;
        if (!strcmp(a, "--send"))
            o->send_ind = true;
        else if (!strcmp(a, "--tcp"))
            o->tcp = true;
        else if (!strcmp(a, "--tls"))
            o->tcp = o->tls = true;
        else if (!strcmp(a, "--baseline"))
            o->baseline = true;
        else if (!strcmp(a, "--keep"))
            o->keep = true;
        else
            flag = false;
        if (flag)
            continue;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--server")) {
            if (parse_addr(v, &o->server))
                die("bad --server %s", v);
            have_server = true;
        } else if (!strcmp(a, "--peer")) {
            if (parse_addr(v, &o->peer))
                die("bad --peer %s", v);
        } else if (!strcmp(a, "--user"))
            snprintf(o->user, sizeof o->user, "%s", v);
        else if (!strcmp(a, "--pass"))
            snprintf(o->pass, sizeof o->pass, "%s", v);
        else if (!strcmp(a, "--secret"))
            secret = v;
        else if (!strcmp(a, "--flows"))
            o->flows = atoi(v);
        else if (!strcmp(a, "--window"))
            o->window = atoi(v);
        else if (!strcmp(a, "--size"))
            o->size = atoi(v);
        else if (!strcmp(a, "--inflight"))
            o->inflight = atoi(v);
        else if (!strcmp(a, "--count"))
            o->count = atoi(v);
        else if (!strcmp(a, "--duration"))
            o->duration = atof(v);
        else if (!strcmp(a, "--warmup"))
            o->warmup = atof(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(a, "--hold"))
            o->hold = atof(v);
        else if (!strcmp(a, "--timeout"))
            o->timeout = atof(v);
        else
            usage();
    }
    if (!have_server || o->flows < 1 || o->flows > MAX_FLOWS || o->window < 1 ||
        o->window > MAX_WINDOW || o->size < MIN_PAYLOAD || o->size > MAX_PAYLOAD ||
        o->inflight < 1 || o->count < 1 || o->duration <= 0 || o->duration > 600 ||
        o->timeout <= 0 || o->timeout > 900)
        usage();
    if (secret) {
        snprintf(o->user, sizeof o->user, "%lld:bench", (long long)time(NULL) + 86400);
        if (cred_coturn_password((const uint8_t *)secret, strlen(secret), o->user, strlen(o->user),
                                 o->pass) != CRED_OK)
            die("cannot build the coturn password%s", "");
    }
    if (!o->baseline && (!o->user[0] || !o->pass[0]))
        die("TURN modes need --user/--pass or --secret%s", "");
}

/* ---- STUN requests -------------------------------------------------------------------- */

typedef struct {
    char realm[256];
    char nonce[256];
    uint8_t key[16];
    bool have;
} auth_state;

static uint64_t txid_ctr;

static void new_txid(uint8_t t[STUN_TXID_SIZE])
{
    static uint32_t salt;
    if (!salt)
        salt = (uint32_t)now_ns() ^ (uint32_t)getpid();
    uint64_t c = ++txid_ctr;
    memcpy(t, &c, 8);
    memcpy(t + 8, &salt, 4);
}

/* Records REALM/NONCE of a 401/438 answer and derives the key. 0 or -1. */
static int learn_auth(const opts *o, const stun_msg *m, auth_state *a)
{
    const uint8_t *realm, *nonce;
    size_t rl, nl;
    if (stun_get_realm(m, &realm, &rl) != STUN_OK || stun_get_nonce(m, &nonce, &nl) != STUN_OK ||
        rl >= sizeof a->realm || nl >= sizeof a->nonce)
        return -1;
    bool same_realm = a->have && strlen(a->realm) == rl && !memcmp(a->realm, realm, rl);
    memcpy(a->nonce, nonce, nl);
    a->nonce[nl] = 0;
    if (!same_realm) {
        memcpy(a->realm, realm, rl);
        a->realm[rl] = 0;
        if (stun_long_term_key((const uint8_t *)o->user, strlen(o->user), realm, rl,
                               (const uint8_t *)o->pass, strlen(o->pass), a->key) != STUN_OK)
            return -1;
    }
    a->have = true;
    return 0;
}

enum { REQ_ALLOCATE, REQ_REFRESH0, REQ_PERMISSION, REQ_CHANBIND };

/* Builds a request; a == NULL or !a->have gives an unauthenticated one. */
static int build_request(const opts *o, int kind, const auth_state *a, uint16_t channel,
                         uint8_t *buf, size_t cap, uint8_t txid[STUN_TXID_SIZE])
{
    static const uint16_t methods[] = {STUN_METHOD_ALLOCATE, STUN_METHOD_REFRESH,
                                       STUN_METHOD_CREATE_PERMISSION, STUN_METHOD_CHANNEL_BIND};
    stun_builder b;
    new_txid(txid);
    stun_builder_begin(&b, buf, cap, stun_type(methods[kind], STUN_CLASS_REQUEST), txid);
    if (kind == REQ_ALLOCATE)
        stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    if (kind == REQ_REFRESH0)
        stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 0);
    if (kind == REQ_CHANBIND)
        stun_builder_add_channel_number(&b, channel);
    if (kind == REQ_PERMISSION || kind == REQ_CHANBIND)
        stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS,
                                     (const struct sockaddr *)&o->peer);
    if (a && a->have) {
        stun_builder_add(&b, STUN_ATTR_USERNAME, o->user, strlen(o->user));
        stun_builder_add(&b, STUN_ATTR_REALM, a->realm, strlen(a->realm));
        stun_builder_add(&b, STUN_ATTR_NONCE, a->nonce, strlen(a->nonce));
        stun_builder_add_integrity(&b, a->key, sizeof a->key);
    }
    stun_builder_add_fingerprint(&b);
    return stun_builder_finish(&b);
}

/* Classifies a response to txid: 0 success, an error code (300..699), -1 not ours/garbage. */
static int response_code(const uint8_t *buf, size_t len, const uint8_t *txid, stun_msg *m)
{
    if (stun_parse(buf, len, m) != STUN_OK || memcmp(m->txid, txid, STUN_TXID_SIZE) != 0)
        return -1;
    if (m->cls == STUN_CLASS_SUCCESS)
        return 0;
    int code;
    const uint8_t *reason;
    size_t rlen;
    if (m->cls != STUN_CLASS_ERROR || stun_get_error_code(m, &code, &reason, &rlen) != STUN_OK)
        return -1;
    return code;
}

/* ---- flows (echo mode) ----------------------------------------------------------------- */

typedef struct {
    int fd;
    SSL *ssl;
    uint32_t id;
    auth_state auth;
    uint32_t next_seq;
    uint32_t slot_seq[MAX_WINDOW];
    int64_t slot_t[MAX_WINDOW];
    bool slot_busy[MAX_WINDOW];
    uint16_t free_slots[MAX_WINDOW];
    int n_free;
    int64_t next_send; /* --rate pacing */
    uint8_t *tx;       /* window slots of MSG_CAP bytes (UDP) */
    uint8_t *in;       /* stream receive buffer */
    size_t in_len;
} flow;

#define STREAM_IN_CAP (256 * 1024)

typedef struct {
    uint64_t sent, echoes, errors, lost, late, in_window;
    uint32_t *lat; /* microseconds, samples in the measured window */
    size_t n_lat, cap_lat;
    int64_t t_start, t_end;
} stats;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Blocking-with-timeout transport for the setup phase. */
static int xsend(flow *f, const uint8_t *buf, size_t len)
{
    if (f->ssl) {
        int n = SSL_write(f->ssl, buf, (int)len);
        return n == (int)len ? 0 : -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(f->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Reads one STUN message (stream) or datagram (UDP) into buf; length or -1 (timeout). */
static int xrecv(const opts *o, flow *f, uint8_t *buf, size_t cap)
{
    if (!o->tcp) {
        ssize_t n = recv(f->fd, buf, cap, 0);
        return n < 0 ? -1 : (int)n;
    }
    size_t have = 0;
    for (int guard = 0; guard < 1000; guard++) {
        size_t flen, consumed;
        int k = stun_frame_next(buf, have, &flen, &consumed);
        if (k > 0)
            return (int)flen; /* setup answers are STUN, never padded */
        if (k != STUN_ERR_NEED_MORE || consumed > cap)
            return -1;
        ssize_t n = f->ssl ? SSL_read(f->ssl, buf + have, (int)(consumed - have))
                           : recv(f->fd, buf + have, consumed - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    return -1;
}

/* One request/response exchange, retransmitted over UDP. Returns the response code (0 =
 * success) or -1. */
static int transact(const opts *o, flow *f, int kind, uint16_t channel, stun_msg *m, uint8_t *rbuf,
                    size_t rcap)
{
    uint8_t req[MSG_CAP], txid[STUN_TXID_SIZE];
    for (int auth_try = 0; auth_try < 3; auth_try++) {
        int len = build_request(o, kind, &f->auth, channel, req, sizeof req, txid);
        if (len <= 0)
            return -1;
        int code = -1;
        for (int attempt = 0; attempt < (o->tcp ? 1 : 8) && code < 0; attempt++) {
            if (xsend(f, req, (size_t)len) != 0)
                return -1;
            for (int reads = 0; reads < 16; reads++) {
                int n = xrecv(o, f, rbuf, rcap);
                if (n < 0)
                    break;
                if ((code = response_code(rbuf, (size_t)n, txid, m)) >= 0)
                    break;
            }
        }
        if ((code == 401 || code == 438) && learn_auth(o, m, &f->auth) == 0)
            continue;
        return code;
    }
    return -1;
}

static SSL_CTX *tls_ctx;

static int flow_connect(const opts *o, flow *f)
{
    f->fd = socket(AF_INET, (o->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (f->fd < 0)
        return -1;
    int big = 1 << 20, one = 1;
    setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (o->tcp)
        setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = o->tcp ? 3 : 0, .tv_usec = o->tcp ? 0 : 250000};
    setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct timeval stv = {.tv_sec = 3};
    setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
    if (connect(f->fd, (const struct sockaddr *)&o->server, sizeof o->server) != 0)
        return -1;
    if (o->tls) {
        if (!(f->ssl = SSL_new(tls_ctx)) || SSL_set_fd(f->ssl, f->fd) != 1 ||
            SSL_connect(f->ssl) != 1)
            return -1;
    }
    return 0;
}

static void flow_disconnect(flow *f)
{
    if (f->ssl)
        SSL_free(f->ssl);
    f->ssl = NULL;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->auth.have = false;
}

/* Refresh(LIFETIME 0) without waiting for the answer: ends the flow's allocation. */
static void flow_release(const opts *o, flow *f)
{
    uint8_t req[MSG_CAP], txid[STUN_TXID_SIZE];
    if (f->fd < 0 || o->baseline || !f->auth.have)
        return;
    int len = build_request(o, REQ_REFRESH0, &f->auth, 0, req, sizeof req, txid);
    if (len <= 0)
        return;
    if (f->ssl)
        SSL_write(f->ssl, req, len);
    else
        send(f->fd, req, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int flow_setup(const opts *o, flow *f)
{
    uint8_t rbuf[MSG_CAP];
    stun_msg m;
    int code = -1;
    /* 437: this source port still has an allocation (a previous run's socket that was not
     * released on a port the kernel handed out again): take another port. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (flow_connect(o, f) != 0)
            return -1;
        if (o->baseline)
            return 0;
        if ((code = transact(o, f, REQ_ALLOCATE, 0, &m, rbuf, sizeof rbuf)) != 437)
            break;
        flow_disconnect(f);
    }
    if (code != 0) {
        fprintf(stderr, "loadgen: flow %u: Allocate failed (%d)\n", f->id, code);
        return -1;
    }
    if ((code = transact(o, f, REQ_PERMISSION, 0, &m, rbuf, sizeof rbuf)) != 0) {
        fprintf(stderr, "loadgen: flow %u: CreatePermission failed (%d)\n", f->id, code);
        return -1;
    }
    if (!o->send_ind &&
        (code = transact(o, f, REQ_CHANBIND, CHANNEL0, &m, rbuf, sizeof rbuf)) != 0) {
        fprintf(stderr, "loadgen: flow %u: ChannelBind failed (%d)\n", f->id, code);
        return -1;
    }
    return 0;
}

/* Payload: flow id, sequence, send time (ns), slot, then a pattern derived from all three. */
/* 0, 1, ..., 255, 0, 1, ... long enough for any payload at any starting byte. */
static const uint8_t *ramp(void)
{
    static uint8_t r[256 + MAX_PAYLOAD];
    if (r[1] == 0)
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (uint8_t)i;
    return r;
}

static void fill_payload(uint8_t *p, size_t n, uint32_t flow_id, uint32_t seq, uint16_t slot,
                         int64_t t)
{
    memcpy(p, &flow_id, 4);
    memcpy(p + 4, &seq, 4);
    memcpy(p + 8, &t, 8);
    memcpy(p + 16, &slot, 2);
    uint8_t x = (uint8_t)(seq * 13u + flow_id * 7u + slot);
    if (n > 18) /* p[i] = (x + i) mod 256, copied from a ramp instead of computed per byte */
        memcpy(p + 18, ramp() + (uint8_t)(x + 18), n - 18);
}

/* Writes one framed message carrying a fresh payload in slot s into out; its length. */
static size_t frame_message(const opts *o, flow *f, uint16_t s, uint8_t *out, int64_t t)
{
    uint32_t seq = f->next_seq++;
    f->slot_seq[s] = seq;
    f->slot_t[s] = t;
    f->slot_busy[s] = true;
    size_t n = (size_t)o->size;
    if (o->send_ind) {
        uint8_t txid[STUN_TXID_SIZE];
        stun_builder b;
        new_txid(txid);
        stun_builder_begin(&b, out, MSG_CAP, stun_type(STUN_METHOD_SEND, STUN_CLASS_INDICATION),
                           txid);
        stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS,
                                     (const struct sockaddr *)&o->peer);
        uint8_t *d = stun_builder_reserve(&b, STUN_ATTR_DATA, n);
        if (d)
            fill_payload(d, n, f->id, seq, s, t);
        int len = stun_builder_finish(&b);
        return len > 0 ? (size_t)len : 0;
    }
    uint16_t ch = (uint16_t)(o->baseline ? CHANNEL0 + f->id : CHANNEL0);
    fill_payload(out + STUN_CHANNELDATA_HEADER_SIZE, n, f->id, seq, s, t);
    int len =
        stun_channeldata_build(out, MSG_CAP, ch, out + STUN_CHANNELDATA_HEADER_SIZE, n, o->tcp);
    return len > 0 ? (size_t)len : 0;
}

static bool in_window(const stats *st, int64_t t)
{
    return t >= st->t_start && t < st->t_end;
}

/* Checks one echoed payload and frees its slot. */
static void on_echo(const opts *o, flow *f, const uint8_t *p, size_t n, stats *st, int64_t t)
{
    uint32_t fid, seq;
    uint16_t s;
    int64_t ts;
    if (n != (size_t)o->size) {
        st->errors++;
        return;
    }
    memcpy(&fid, p, 4);
    memcpy(&seq, p + 4, 4);
    memcpy(&ts, p + 8, 8);
    memcpy(&s, p + 16, 2);
    if (fid != f->id || s >= o->window) {
        st->errors++;
        return;
    }
    if (!f->slot_busy[s] || f->slot_seq[s] != seq) {
        st->late++; /* an echo we had already given up on */
        return;
    }
    uint8_t expect[MAX_PAYLOAD];
    fill_payload(expect, n, fid, seq, s, f->slot_t[s]);
    if (memcmp(expect, p, n) != 0) {
        st->errors++;
        return;
    }
    f->slot_busy[s] = false;
    f->free_slots[f->n_free++] = s;
    if (in_window(st, t)) {
        st->echoes++;
        if (st->n_lat < st->cap_lat)
            st->lat[st->n_lat++] = (uint32_t)((t - ts) / 1000);
    }
}

/* Parses one received message (datagram or stream frame). */
static void on_message(const opts *o, flow *f, const uint8_t *buf, size_t len, stats *st, int64_t t)
{
    if (o->send_ind) {
        stun_msg m;
        const uint8_t *d;
        size_t dl;
        if (stun_parse(buf, len, &m) != STUN_OK || m.method != STUN_METHOD_DATA ||
            m.cls != STUN_CLASS_INDICATION || stun_get_data(&m, &d, &dl) != STUN_OK) {
            st->errors++;
            return;
        }
        on_echo(o, f, d, dl, st, t);
        return;
    }
    uint16_t ch;
    const uint8_t *d;
    size_t dl;
    if (stun_channeldata_parse(buf, len, &ch, &d, &dl) != STUN_OK ||
        ch != (o->baseline ? CHANNEL0 + f->id : CHANNEL0)) {
        st->errors++;
        return;
    }
    on_echo(o, f, d, dl, st, t);
}

/* Sends up to `budget` new messages on f (all free slots when budget < 0). */
static void refill(const opts *o, flow *f, stats *st, int budget)
{
    int k = f->n_free;
    if (budget >= 0 && budget < k)
        k = budget;
    if (k <= 0)
        return;
    int64_t t = now_ns();
    if (!o->tcp) {
        struct mmsghdr mm[MAX_WINDOW];
        struct iovec iov[MAX_WINDOW];
        for (int i = 0; i < k; i++) {
            uint16_t s = f->free_slots[--f->n_free];
            uint8_t *out = f->tx + (size_t)s * MSG_CAP;
            iov[i].iov_base = out;
            iov[i].iov_len = frame_message(o, f, s, out, t);
            memset(&mm[i], 0, sizeof mm[i]);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int done = 0;
        for (int tries = 0; done < k && tries < 100; tries++) {
            int n = sendmmsg(f->fd, mm + done, (unsigned)(k - done), MSG_DONTWAIT);
            if (n > 0)
                done += n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNREFUSED)
                break;
        }
        st->sent += (uint64_t)done; /* unsent ones time out as lost */
        return;
    }
    uint8_t out[MAX_WINDOW * (MAX_PAYLOAD + 8)];
    size_t len = 0;
    for (int i = 0; i < k; i++) {
        uint16_t s = f->free_slots[--f->n_free];
        uint8_t one[MSG_CAP];
        size_t n = frame_message(o, f, s, one, t);
        memcpy(out + len, one, n);
        len += n;
    }
    size_t off = 0;
    for (int tries = 0; off < len && tries < 10000; tries++) {
        ssize_t n;
        if (f->ssl) {
            n = SSL_write(f->ssl, out + off, (int)(len - off));
            if (n <= 0) {
                int e = SSL_get_error(f->ssl, (int)n);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    break;
                struct pollfd pfd = {.fd = f->fd, .events = POLLOUT};
                poll(&pfd, 1, 10);
                continue;
            }
        } else {
            n = send(f->fd, out + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    break;
                struct pollfd pfd = {.fd = f->fd, .events = POLLOUT};
                poll(&pfd, 1, 10);
                continue;
            }
        }
        off += (size_t)n;
    }
    if (off < len)
        st->errors++; /* a stream that cannot take a window's worth is broken */
    st->sent += (uint64_t)k;
}

static void read_udp(const opts *o, flow *f, stats *st)
{
    static uint8_t bufs[RX_BATCH][MSG_CAP];
    struct mmsghdr mm[RX_BATCH];
    struct iovec iov[RX_BATCH];
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = MSG_CAP;
            memset(&mm[i], 0, sizeof mm[i]);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(f->fd, mm, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        int64_t t = now_ns();
        for (int i = 0; i < n; i++)
            on_message(o, f, bufs[i], mm[i].msg_len, st, t);
        if (o->rate <= 0)
            refill(o, f, st, -1);
        if (n < RX_BATCH)
            return;
    }
}

/* Returns -1 when the stream is broken. */
static int read_stream(const opts *o, flow *f, stats *st)
{
    for (int round = 0; round < 64; round++) {
        ssize_t n;
        if (f->ssl) {
            n = SSL_read(f->ssl, f->in + f->in_len, (int)(STREAM_IN_CAP - f->in_len));
            if (n <= 0) {
                int e = SSL_get_error(f->ssl, (int)n);
                return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
            }
        } else {
            n = recv(f->fd, f->in + f->in_len, STREAM_IN_CAP - f->in_len, MSG_DONTWAIT);
            if (n == 0)
                return -1;
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        }
        f->in_len += (size_t)n;
        int64_t t = now_ns();
        size_t off = 0;
        while (off < f->in_len) {
            size_t flen, consumed;
            int k = stun_frame_next(f->in + off, f->in_len - off, &flen, &consumed);
            if (k == STUN_ERR_NEED_MORE)
                break;
            if (k < 0)
                return -1;
            on_message(o, f, f->in + off, flen, st, t);
            off += consumed;
        }
        memmove(f->in, f->in + off, f->in_len - off);
        f->in_len -= off;
        if (o->rate <= 0)
            refill(o, f, st, -1);
    }
    return 0;
}

/* Gives up on echoes older than LOSS_TIMEOUT_NS and frees their slots. */
static void reap_lost(const opts *o, flow *flows, stats *st, int64_t t)
{
    for (int i = 0; i < o->flows; i++) {
        flow *f = &flows[i];
        for (int s = 0; s < o->window; s++)
            if (f->slot_busy[s] && t - f->slot_t[s] > LOSS_TIMEOUT_NS) {
                f->slot_busy[s] = false;
                f->free_slots[f->n_free++] = (uint16_t)s;
                if (in_window(st, t))
                    st->lost++;
            }
        if (o->rate <= 0)
            refill(o, f, st, -1);
    }
}

/* System-wide UDP RcvbufErrors (datagrams dropped by a full receive buffer), or 0. */
static unsigned long long udp_rcvbuf_errors(void)
{
    FILE *fp = fopen("/proc/net/snmp", "r");
    char hdr[1024], val[1024];
    unsigned long long v = 0;
    if (!fp)
        return 0;
    while (fgets(hdr, sizeof hdr, fp) && fgets(val, sizeof val, fp)) {
        if (strncmp(hdr, "Udp:", 4) != 0)
            continue;
        char *hs, *vs;
        char *h = strtok_r(hdr, " \n", &hs);
        char *x = strtok_r(val, " \n", &vs);
        while (h && x) {
            if (!strcmp(h, "RcvbufErrors"))
                v = strtoull(x, NULL, 10);
            h = strtok_r(NULL, " \n", &hs);
            x = strtok_r(NULL, " \n", &vs);
        }
        break;
    }
    fclose(fp);
    return v;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int run_echo(const opts *o)
{
    flow *flows = calloc((size_t)o->flows, sizeof *flows);
    stats st = {0};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = 1;
    if (!flows || ep < 0)
        return 1;
    if (o->tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL); /* loopback, self-signed */
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    int64_t deadline = now_ns() + (int64_t)(o->timeout * 1e9);
    for (int i = 0; i < o->flows; i++)
        flows[i].fd = -1;
    for (int i = 0; i < o->flows; i++) {
        flow *f = &flows[i];
        f->id = (uint32_t)i;
        if (now_ns() > deadline || flow_setup(o, f) != 0) {
            fprintf(stderr, "loadgen: setup of flow %d failed\n", i);
            goto out;
        }
        fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK);
        f->tx = o->tcp ? NULL : malloc((size_t)o->window * MSG_CAP);
        f->in = o->tcp ? malloc(STREAM_IN_CAP) : NULL;
        if (!(o->tcp ? (void *)f->in : (void *)f->tx))
            goto out;
        for (int s = o->window - 1; s >= 0; s--)
            f->free_slots[f->n_free++] = (uint16_t)s;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, f->fd, &ev);
    }
    st.cap_lat = 8u << 20;
    st.lat = malloc(st.cap_lat * sizeof *st.lat);
    if (!st.lat)
        goto out;
    unsigned long long drops0 = udp_rcvbuf_errors();
    int64_t t0 = now_ns();
    st.t_start = t0 + (int64_t)(o->warmup * 1e9);
    st.t_end = st.t_start + (int64_t)(o->duration * 1e9);
    int64_t interval = o->rate > 0 ? (int64_t)(1e9 * o->flows / o->rate) : 0;
    for (int i = 0; i < o->flows; i++) {
        flows[i].next_send = t0 + interval * i / o->flows;
        if (o->rate <= 0)
            refill(o, &flows[i], &st, -1);
    }
    int64_t next_reap = t0 + 100000000LL;
    struct epoll_event evs[256];
    int broken = 0;
    for (int64_t t = t0; t < st.t_end && !stop_flag && t < deadline; t = now_ns()) {
        int n = epoll_wait(ep, evs, 256, o->rate > 0 ? 1 : 20);
        for (int i = 0; i < n; i++) {
            flow *f = &flows[evs[i].data.u32];
            if (!o->tcp)
                read_udp(o, f, &st);
            else if (read_stream(o, f, &st) != 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, f->fd, NULL);
                broken++;
            }
        }
        t = now_ns();
        if (o->rate > 0)
            for (int i = 0; i < o->flows; i++) {
                flow *f = &flows[i];
                int due = 0;
                while (f->next_send <= t && due < MAX_WINDOW) {
                    due++;
                    f->next_send += interval;
                }
                if (f->next_send <= t)
                    f->next_send = t + interval; /* far behind: do not burst */
                refill(o, f, &st, due);
            }
        if (t >= next_reap && !o->tcp) { /* a stream loses nothing: no reaping */
            reap_lost(o, flows, &st, t);
            next_reap = t + 100000000LL;
        }
    }
    uint32_t p50 = 0, p99 = 0;
    if (st.n_lat) {
        qsort(st.lat, st.n_lat, sizeof *st.lat, cmp_u32);
        p50 = st.lat[st.n_lat / 2];
        p99 = st.lat[(size_t)((double)st.n_lat * 0.99)];
    }
    printf(
        "RESULT mode=echo%s flows=%d window=%d size=%d echoes_per_s=%.0f p50_us=%u p99_us=%u "
        "echoes=%llu sent=%llu errors=%llu lost=%llu late=%llu broken=%d udp_rcvbuf_drops=%llu\n",
        o->baseline   ? "-baseline"
        : o->send_ind ? "-send"
        : o->tls      ? "-tls"
        : o->tcp      ? "-tcp"
                      : "",
        o->flows, o->window, o->size, (double)st.echoes / o->duration, p50, p99,
        (unsigned long long)st.echoes, (unsigned long long)st.sent, (unsigned long long)st.errors,
        (unsigned long long)st.lost, (unsigned long long)st.late, broken,
        udp_rcvbuf_errors() - drops0);
    rc = st.errors || broken ? 3 : 0;
out:
    for (int i = 0; i < o->flows; i++)
        flow_release(o, &flows[i]);
    usleep(20000); /* let the releases leave before the sockets close */
    for (int i = 0; i < o->flows; i++) {
        flow_disconnect(&flows[i]);
        free(flows[i].tx);
        free(flows[i].in);
    }
    free(flows);
    free(st.lat);
    close(ep);
    if (tls_ctx)
        SSL_CTX_free(tls_ctx);
    return rc;
}

/* ---- alloc / hold modes ---------------------------------------------------------------- */

enum { A_IDLE, A_WAIT_401, A_WAIT_ALLOC, A_WAIT_REFRESH, A_HELD };

typedef struct {
    int fd;
    int state;
    int tries;
    uint8_t txid[STUN_TXID_SIZE];
    uint8_t req[512];
    int req_len;
    int64_t t_sent;
    auth_state auth;
} aslot;

typedef struct {
    uint64_t ok, errors, timeouts, started, released, held, collisions;
    int64_t t_start, t_end;
} astats;

static void a_send(aslot *s, int64_t t)
{
    s->t_sent = t;
    if (send(s->fd, s->req, (size_t)s->req_len, MSG_DONTWAIT) < 0 && errno != EAGAIN)
        s->tries = 99;
}

static void a_request(const opts *o, aslot *s, int kind, int state, int64_t t)
{
    s->req_len = build_request(o, kind, &s->auth, 0, s->req, sizeof s->req, s->txid);
    s->state = state;
    s->tries = 0;
    a_send(s, t);
}

static int a_start(const opts *o, int ep, aslot *s, uint32_t idx, astats *st, int64_t t)
{
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    if (connect(s->fd, (const struct sockaddr *)&o->server, sizeof o->server) != 0) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    s->auth.have = false;
    st->started++;
    a_request(o, s, REQ_ALLOCATE, A_WAIT_401, t);
    return 0;
}

static void a_close(int ep, aslot *s)
{
    if (s->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
    }
    s->fd = -1;
    s->state = A_IDLE;
}

static void a_input(const opts *o, int ep, aslot *s, const uint8_t *buf, size_t len, astats *st,
                    int64_t t, bool hold)
{
    stun_msg m;
    int code = response_code(buf, len, s->txid, &m);
    if (code < 0)
        return; /* a retransmission's duplicate answer or garbage */
    switch (s->state) {
    case A_WAIT_401:
    case A_WAIT_ALLOC:
        if ((code == 401 || code == 438) && s->state == A_WAIT_401 + (code == 438) &&
            learn_auth(o, &m, &s->auth) == 0) {
            a_request(o, s, REQ_ALLOCATE, A_WAIT_ALLOC, t);
            return;
        }
        if (code == 0 && s->state == A_WAIT_ALLOC) {
            if (hold) {
                s->state = A_HELD;
                st->held++;
                return;
            }
            if (t >= st->t_start && t < st->t_end)
                st->ok++;
            if (o->keep) {
                a_close(ep, s);
                return;
            }
            a_request(o, s, REQ_REFRESH0, A_WAIT_REFRESH, t);
            return;
        }
        if (code == 437) {
            st->collisions++; /* source port still allocated from an earlier run */
            a_close(ep, s);
            return;
        }
        st->errors++;
        if (st->errors <= 3)
            fprintf(stderr, "loadgen: Allocate answered %d\n", code);
        a_close(ep, s);
        return;
    case A_WAIT_REFRESH:
        if (code == 0)
            st->released++;
        else
            st->errors++;
        a_close(ep, s);
        return;
    default: return;
    }
}

static int run_alloc(const opts *o, bool hold)
{
    int n_slots = hold ? o->count : o->inflight;
    aslot *slots = calloc((size_t)n_slots, sizeof *slots);
    astats st = {0};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!slots || ep < 0)
        return 1;
    for (int i = 0; i < n_slots; i++)
        slots[i].fd = -1;
    int64_t t0 = now_ns();
    int64_t deadline = t0 + (int64_t)(o->timeout * 1e9);
    st.t_start = hold ? t0 : t0 + (int64_t)(o->warmup * 1e9);
    st.t_end = hold ? deadline : st.t_start + (int64_t)(o->duration * 1e9);
    int active_cap = o->inflight; /* requests in flight at once (hold: sockets being set up) */
    int next_new = 0, in_setup = 0;
    struct epoll_event evs[256];
    static uint8_t buf[MSG_CAP];
    int64_t next_scan = t0;
    bool ready = false;
    for (int64_t t = t0; t < st.t_end && !stop_flag; t = now_ns()) {
        if (hold && !ready && st.held >= (uint64_t)o->count) {
            printf("READY allocations=%llu\n", (unsigned long long)st.held);
            fflush(stdout);
            ready = true;
            st.t_end = t + (int64_t)(o->hold * 1e9);
            if (st.t_end > deadline)
                st.t_end = deadline;
        }
        /* start new ones */
        if (!hold) {
            for (int i = 0; i < n_slots; i++)
                if (slots[i].state == A_IDLE && a_start(o, ep, &slots[i], (uint32_t)i, &st, t))
                    st.errors++;
        } else {
            in_setup = 0;
            for (int i = 0; i < next_new; i++)
                in_setup += slots[i].state == A_WAIT_401 || slots[i].state == A_WAIT_ALLOC;
            for (int i = 0; i < next_new && !ready && in_setup < active_cap; i++)
                if (slots[i].state == A_IDLE && st.started < 4u * (uint64_t)n_slots &&
                    a_start(o, ep, &slots[i], (uint32_t)i, &st, t) == 0)
                    in_setup++; /* a failed one (437, error) gets a fresh socket */
            while (!ready && next_new < n_slots && in_setup < active_cap) {
                if (a_start(o, ep, &slots[next_new], (uint32_t)next_new, &st, t) != 0) {
                    fprintf(stderr, "loadgen: cannot open socket %d: %s\n", next_new,
                            strerror(errno));
                    goto done;
                }
                next_new++;
                in_setup++;
            }
        }
        int n = epoll_wait(ep, evs, 256, ready ? 200 : 10);
        if (ready) {
            /* hold: stdin closing ends the hold early */
            struct pollfd pfd = {.fd = 0, .events = POLLIN};
            if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLIN))) {
                char c;
                if (read(0, &c, 1) <= 0)
                    break;
            }
        }
        t = now_ns();
        for (int i = 0; i < n; i++) {
            aslot *s = &slots[evs[i].data.u32];
            for (int r = 0; r < 4 && s->fd >= 0; r++) {
                ssize_t len = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (len <= 0)
                    break;
                a_input(o, ep, s, buf, (size_t)len, &st, t, hold);
            }
        }
        if (t >= next_scan) { /* retransmit after 500 ms, give up after 3 tries */
            for (int i = 0; i < (hold ? next_new : n_slots); i++) {
                aslot *s = &slots[i];
                if (s->state == A_IDLE || s->state == A_HELD || t - s->t_sent < 500000000LL)
                    continue;
                if (++s->tries >= 3) {
                    st.timeouts++;
                    a_close(ep, s);
                } else {
                    a_send(s, t);
                }
            }
            next_scan = t + 100000000LL;
        }
    }
done:
    if (hold)
        printf("RESULT mode=hold held=%llu errors=%llu timeouts=%llu collisions=%llu\n",
               (unsigned long long)st.held, (unsigned long long)st.errors,
               (unsigned long long)st.timeouts, (unsigned long long)st.collisions);
    else
        printf("RESULT mode=alloc inflight=%d allocs_per_s=%.0f allocs=%llu released=%llu "
               "errors=%llu timeouts=%llu collisions=%llu release=%s\n",
               o->inflight, (double)st.ok / o->duration, (unsigned long long)st.ok,
               (unsigned long long)st.released, (unsigned long long)st.errors,
               (unsigned long long)st.timeouts, (unsigned long long)st.collisions,
               o->keep ? "no" : "refresh0");
    int rc = (hold && st.held < (uint64_t)o->count) || st.errors ? 3 : 0;
    for (int i = 0; i < n_slots; i++)
        if (slots[i].fd >= 0)
            close(slots[i].fd);
    free(slots);
    close(ep);
    return rc;
}

int main(int argc, char **argv)
{
    opts o;
    parse_opts(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* a hard stop whatever happens: every run ends by itself */
    alarm((unsigned)(o.timeout + o.duration + o.warmup + o.hold + 10));
    if (!strcmp(o.mode, "echo"))
        return run_echo(&o);
    if (!strcmp(o.mode, "alloc"))
        return run_alloc(&o, false);
    if (!strcmp(o.mode, "hold"))
        return run_alloc(&o, true);
    usage();
    return 2;
}
