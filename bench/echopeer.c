/* bench/echopeer: the UDP peer of `make bench`, and the do-nothing relay baseline.
 *
 *   echopeer --listen IP:PORT [--threads N] [--max-seconds S]
 *       echoes every datagram back to its sender (recvmmsg/sendmmsg, N threads on one socket).
 *   echopeer --null-relay IP:PORT --peer IP:PORT [--threads N] [--max-seconds S]
 *       the "do-nothing relay": takes ChannelData-shaped datagrams from clients, strips the
 *       4-byte header and sends the payload to the peer from one relay socket per channel
 *       (channel 0x4000 + i ↔ relay socket i ↔ the client last seen on that channel, a fixed
 *       mapping, no TURN logic), and wraps the peer's answers back. Same datagram count,
 *       socket layout and sending (UDP GSO for runs of same-size datagrams) as turnkey's
 *       relay, so `loadgen echo --baseline` measures the ceiling of this machine for that
 *       traffic. One thread per --threads, each with its own SO_REUSEPORT listener.
 *
 * Both exit by themselves after --max-seconds (default 900) or on SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define BUF_CAP 2048
#define MAX_CHANNELS 4096
#define CHANNEL0 0x4000

static volatile sig_atomic_t stop_flag;
static time_t stop_at;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static bool should_stop(void)
{
    return stop_flag || time(NULL) >= stop_at;
}

static int parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *c = strrchr(s, ':');
    if (!c || (size_t)(c - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = 0;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    long port = strtol(c + 1, NULL, 10);
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return -1;
    out->sin_port = htons((uint16_t)port);
    return 0;
}

static int udp_socket(const struct sockaddr_in *bind_to)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (bind_to && bind(fd, (const struct sockaddr *)bind_to, sizeof *bind_to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- receiving --------------------------------------------------------------------------- */

/* Points mm[i] at bufs[i] + offset (BUF_CAP - offset bytes) and, if from is not NULL, at
 * from[i] for the sender's address: ready for one recvmmsg of BATCH datagrams. */
static void rx_prepare(struct mmsghdr *mm, struct iovec *iov, uint8_t (*bufs)[BUF_CAP],
                       size_t offset, struct sockaddr_in *from)
{
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i] + offset;
        iov[i].iov_len = BUF_CAP - offset;
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        if (from) {
            mm[i].msg_hdr.msg_name = &from[i];
            mm[i].msg_hdr.msg_namelen = sizeof from[i];
        }
    }
}

/* ---- sending: UDP GSO ------------------------------------------------------------------ */

/* Sends mm[0..n) (one datagram each, iov[i] its buffer, msg_name NULL on a connected
 * socket) like sendmmsg, but a run of datagrams to the same address with the same length
 * (the last may be shorter) goes as one UDP GSO message (UDP_SEGMENT), so the peer and the
 * do-nothing relay cost what a lean sender costs. The datagrams on the wire are unchanged.
 * Falls back to one datagram per message if the kernel refuses GSO. flags: for sendmmsg. */
static _Atomic bool gso_off;

static bool same_name(const struct msghdr *a, const struct msghdr *b)
{
    if (!a->msg_name || !b->msg_name)
        return a->msg_name == b->msg_name;
    return a->msg_namelen == b->msg_namelen &&
           memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0;
}

static void send_batch(int fd, struct mmsghdr *mm, struct iovec *iov, int n, int flags)
{
    struct mmsghdr out[BATCH];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(uint16_t))];
    } cm[BATCH];
    int m = 0;
    for (int i = 0; i < n;) {
        int k = i + 1;
        size_t seg = iov[i].iov_len;
        if (!gso_off && seg > 0) /* an empty datagram is never a segment: it would vanish */
            while (k < n && k - i < 64 && iov[k].iov_len <= seg && iov[k].iov_len > 0 &&
                   same_name(&mm[i].msg_hdr, &mm[k].msg_hdr))
                if (iov[k++].iov_len < seg)
                    break;
        memset(&out[m], 0, sizeof out[m]);
        out[m].msg_hdr.msg_name = mm[i].msg_hdr.msg_name;
        out[m].msg_hdr.msg_namelen = mm[i].msg_hdr.msg_namelen;
        out[m].msg_hdr.msg_iov = &iov[i];
        out[m].msg_hdr.msg_iovlen = (size_t)(k - i);
        if (k - i > 1) {
            memset(&cm[m], 0, sizeof cm[m]);
            cm[m].h.cmsg_level = SOL_UDP;
            cm[m].h.cmsg_type = UDP_SEGMENT;
            cm[m].h.cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t s16 = (uint16_t)seg;
            memcpy(CMSG_DATA(&cm[m].h), &s16, sizeof s16);
            out[m].msg_hdr.msg_control = &cm[m];
            out[m].msg_hdr.msg_controllen = sizeof cm[m].buf;
        }
        m++;
        i = k;
    }
    for (int done = 0, tries = 0; done < m && tries < 16; tries++) {
        int k = sendmmsg(fd, out + done, (unsigned)(m - done), flags);
        if (k > 0) {
            done += k;
        } else if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) {
            gso_off = true; /* resend this one datagram by datagram */
            struct msghdr *h = &out[done].msg_hdr;
            for (size_t s = 0; s < h->msg_iovlen; s++) {
                struct msghdr one = {.msg_name = h->msg_name,
                                     .msg_namelen = h->msg_namelen,
                                     .msg_iov = &h->msg_iov[s],
                                     .msg_iovlen = 1};
                sendmsg(fd, &one, flags);
            }
            done++;
        } else if (errno != EINTR && errno != EAGAIN) {
            done++; /* skip a datagram the kernel refuses (e.g. a port gone away) */
        }
    }
}

/* ---- echo ---------------------------------------------------------------------------- */

static void *echo_thread(void *arg)
{
    int fd = *(int *)arg;
    static __thread uint8_t bufs[BATCH][BUF_CAP];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    while (!should_stop()) {
        rx_prepare(mm, iov, bufs, 0, from);
        int n = recvmmsg(fd, mm, BATCH, MSG_WAITFORONE, NULL); /* SO_RCVTIMEO bounds it */
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = mm[i].msg_len;
        send_batch(fd, mm, iov, n, 0); /* blocking, as before: a full buffer waits, no drop */
    }
    return NULL;
}

static int run_echo(const struct sockaddr_in *listen_addr, int threads)
{
    int fd = udp_socket(listen_addr);
    if (fd < 0) {
        perror("echopeer: bind");
        return 1;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_t th[8];
    int n = threads < 1 ? 1 : threads > 8 ? 8 : threads;
    for (int i = 1; i < n; i++)
        pthread_create(&th[i], NULL, echo_thread, &fd);
    echo_thread(&fd);
    for (int i = 1; i < n; i++)
        pthread_join(th[i], NULL);
    close(fd);
    return 0;
}

/* ---- do-nothing relay ------------------------------------------------------------------ */

typedef struct {
    int lfd;
    int rfd[MAX_CHANNELS];
    struct sockaddr_in client[MAX_CHANNELS];
    struct sockaddr_in peer;
    int ep;
} nullrelay;

static int relay_sock(nullrelay *r, int idx)
{
    if (r->rfd[idx] >= 0)
        return r->rfd[idx];
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = udp_socket(&any);
    if (fd < 0 || connect(fd, (struct sockaddr *)&r->peer, sizeof r->peer) != 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx + 1};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev);
    r->rfd[idx] = fd;
    return fd;
}

/* Client → peer: strip the header, group consecutive datagrams of one channel per sendmmsg. */
static void from_clients(nullrelay *r)
{
    static __thread uint8_t bufs[BATCH][BUF_CAP];
    struct mmsghdr mm[BATCH], out[BATCH];
    struct iovec iov[BATCH], oiov[BATCH];
    struct sockaddr_in from[BATCH];
    for (int round = 0; round < 8; round++) {
        rx_prepare(mm, iov, bufs, 0, from);
        int n = recvmmsg(r->lfd, mm, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        int i = 0;
        while (i < n) {
            int ch = (bufs[i][0] << 8 | bufs[i][1]) - CHANNEL0;
            if (mm[i].msg_len < 4 || ch < 0 || ch >= MAX_CHANNELS) {
                i++;
                continue;
            }
            r->client[ch] = from[i];
            int k = 0;
            for (; i < n && mm[i].msg_len >= 4 && (bufs[i][0] << 8 | bufs[i][1]) - CHANNEL0 == ch;
                 i++, k++) {
                size_t dl = (size_t)(bufs[i][2] << 8 | bufs[i][3]);
                if (dl > mm[i].msg_len - 4)
                    dl = mm[i].msg_len - 4;
                oiov[k].iov_base = bufs[i] + 4;
                oiov[k].iov_len = dl;
                memset(&out[k], 0, sizeof out[k]);
                out[k].msg_hdr.msg_iov = &oiov[k];
                out[k].msg_hdr.msg_iovlen = 1;
            }
            int fd = relay_sock(r, ch);
            if (fd >= 0)
                send_batch(fd, out, oiov, k, MSG_DONTWAIT);
        }
        if (n < BATCH)
            return;
    }
}

/* Peer → client on relay socket idx: prepend the header, send from the listener. */
static void from_peer(nullrelay *r, int idx)
{
    static __thread uint8_t bufs[BATCH][BUF_CAP];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    for (int round = 0; round < 8; round++) {
        rx_prepare(mm, iov, bufs, 4, NULL); /* room for the ChannelData header */
        int n = recvmmsg(r->rfd[idx], mm, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        uint16_t ch = (uint16_t)(CHANNEL0 + idx);
        for (int i = 0; i < n; i++) {
            size_t dl = mm[i].msg_len;
            bufs[i][0] = (uint8_t)(ch >> 8);
            bufs[i][1] = (uint8_t)ch;
            bufs[i][2] = (uint8_t)(dl >> 8);
            bufs[i][3] = (uint8_t)dl;
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = dl + 4;
            mm[i].msg_hdr.msg_name = &r->client[idx];
            mm[i].msg_hdr.msg_namelen = sizeof r->client[idx];
        }
        send_batch(r->lfd, mm, iov, n, MSG_DONTWAIT);
        if (n < BATCH)
            return;
    }
}

/* One do-nothing relay per thread, each with its own SO_REUSEPORT listener on the same
 * address (the kernel keeps a client's 5-tuple on one of them, as it does for turnkey's
 * workers), its own epoll set and its own relay sockets, so the baseline uses every core. */
static void *null_relay_thread(void *arg)
{
    nullrelay *r = arg;
    struct epoll_event evs[256];
    while (!should_stop()) {
        int n = epoll_wait(r->ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == 0)
                from_clients(r);
            else
                from_peer(r, (int)evs[i].data.u32 - 1);
        }
    }
    return NULL;
}

static int run_null_relay(const struct sockaddr_in *listen_addr, const struct sockaddr_in *peer,
                          int threads)
{
    int n = threads < 1 ? 1 : threads > 8 ? 8 : threads;
    nullrelay *rs = calloc((size_t)n, sizeof *rs);
    pthread_t th[8];
    if (!rs)
        return 1;
    for (int t = 0; t < n; t++) {
        nullrelay *r = &rs[t];
        r->peer = *peer;
        for (int i = 0; i < MAX_CHANNELS; i++)
            r->rfd[i] = -1;
        r->ep = epoll_create1(EPOLL_CLOEXEC);
        r->lfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int one = 1, big = 4 << 20;
        if (r->lfd >= 0) {
            setsockopt(r->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            setsockopt(r->lfd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
            setsockopt(r->lfd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        }
        if (r->ep < 0 || r->lfd < 0 ||
            bind(r->lfd, (const struct sockaddr *)listen_addr, sizeof *listen_addr) != 0) {
            perror("echopeer: null relay");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
        epoll_ctl(r->ep, EPOLL_CTL_ADD, r->lfd, &ev);
    }
    for (int t = 0; t < n; t++)
        pthread_create(&th[t], NULL, null_relay_thread, &rs[t]);
    for (int t = 0; t < n; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < MAX_CHANNELS; i++)
            if (rs[t].rfd[i] >= 0)
                close(rs[t].rfd[i]);
        close(rs[t].lfd);
        close(rs[t].ep);
    }
    free(rs);
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in listen_addr, peer;
    bool have_listen = false, have_peer = false, null_relay = false;
    int threads = 1;
    long max_seconds = 900;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--listen") || !strcmp(a, "--null-relay")) {
            null_relay = !strcmp(a, "--null-relay");
            have_listen = parse_addr(v, &listen_addr) == 0;
        } else if (!strcmp(a, "--peer"))
            have_peer = parse_addr(v, &peer) == 0;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--max-seconds"))
            max_seconds = atol(v);
        else
            have_listen = false, i = argc;
    }
    if (!have_listen || (null_relay && !have_peer) || max_seconds < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: echopeer --listen IP:PORT [--threads N] [--max-seconds S]\n"
                        "       echopeer --null-relay IP:PORT --peer IP:PORT [--threads N] "
                        "[--max-seconds S]\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    stop_at = time(NULL) + max_seconds;
    return null_relay ? run_null_relay(&listen_addr, &peer, threads)
                      : run_echo(&listen_addr, threads);
}
