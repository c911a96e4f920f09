/* relay/relay_tx.c: the worker's outgoing datagram queue.
 *
 * Datagrams (to clients on the UDP listener, to peers on relay sockets) are queued while a
 * wakeup's input is handled and written with sendmmsg when it ends (relay__arm_timer), or
 * earlier when the queue is full or a relay socket closes. A datagram that lies in the
 * worker's receive buffers (a payload relayed as received, or a ChannelData frame whose header
 * was written in front of it) is queued by reference; the receive buffers are not reused
 * before the queue is flushed. Anything else (responses, stream input) is copied. Consecutive datagrams on one socket
 * go in one sendmmsg. Within it, a run of datagrams to the same address with the same length
 * (the last may be shorter) goes as one UDP GSO message (UDP_SEGMENT, Linux 4.18+): the kernel
 * builds, routes and accounts one packet and cuts it into the datagrams, instead of doing all
 * of that once per datagram. The datagrams on the wire are exactly the queued ones.
 *
 * A GSO message the kernel refuses (a path MTU below the segment size, a device without
 * checksum offload, an old kernel) is sent again one datagram per message; EIO or
 * ENOPROTOOPT turn GSO off for this worker. A full socket buffer drops the rest of the
 * socket's datagrams, as UDP would; a datagram the kernel refuses for its destination is
 * skipped and the others still go (both counted in send_errors). */
#include "internal.h"

#include <errno.h>
#include <netinet/udp.h>
#include <string.h>

#define TX_GSO_MAX_SEGS 64     /* UDP_MAX_SEGMENTS on every kernel that has UDP_SEGMENT */
#define TX_GSO_MAX_BYTES 65000 /* below the 64 KiB IP packet limit with headers */

static bool same_dest(const relay_worker *r, int a, int b)
{
    return r->tx_mm[a].msg_hdr.msg_namelen == r->tx_mm[b].msg_hdr.msg_namelen &&
           memcmp(&r->tx_to[a], &r->tx_to[b], r->tx_mm[a].msg_hdr.msg_namelen) == 0 &&
           r->tx_has_src[a] == r->tx_has_src[b] &&
           (!r->tx_has_src[a] || memcmp(&r->tx_src[a], &r->tx_src[b], sizeof r->tx_src[a]) == 0);
}

/* How many queued datagrams from `i` (all on one socket, below `end`) can go as one GSO
 * message: same destination, the same length except a shorter (non-empty) last one. */
static int gso_run(const relay_worker *r, int i, int end)
{
    size_t seg = r->tx_iov[i].iov_len, total = seg;
    int k = i + 1;
    if (seg == 0)
        return 1; /* a segment size of 0 means "no GSO": empty datagrams go singly */
    while (k < end && k - i < TX_GSO_MAX_SEGS && same_dest(r, i, k)) {
        size_t len = r->tx_iov[k].iov_len;
        if (len == 0 || len > seg || total + len > TX_GSO_MAX_BYTES)
            break; /* an empty datagram cannot be a segment: it would vanish */
        total += len;
        k++;
        if (len < seg)
            break; /* a shorter datagram ends the run */
    }
    return k - i;
}

/* Sends out[0..n) on fd; `segs[m]` datagrams are in message m. Returns how many datagrams
 * were dropped. A refused GSO message is retried one datagram at a time. */
static uint64_t send_msgs(relay_worker *r, int fd, struct mmsghdr *out, const int *segs, int n)
{
    uint64_t dropped = 0;
    for (int done = 0; done < n;) {
        int k = sendmmsg(fd, out + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (k > 0) {
            done += k;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        bool full = e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS;
        if (!full && segs[done] == 1) { /* this destination refused: skip it, send the rest */
            dropped++;
            done++;
            continue;
        }
        if (!full) {
            if (e == EIO || e == ENOPROTOOPT)
                r->tx_gso_off = true; /* not supported here: send singly from now on */
            struct msghdr *h = &out[done].msg_hdr;
            /* keep a PKTINFO source, drop the UDP_SEGMENT that ends the control data */
            size_t ctl = h->msg_controllen - CMSG_SPACE(sizeof(uint16_t));
            for (size_t s = 0; s < h->msg_iovlen; s++) {
                struct msghdr one = {.msg_name = h->msg_name,
                                     .msg_namelen = h->msg_namelen,
                                     .msg_iov = &h->msg_iov[s],
                                     .msg_iovlen = 1,
                                     .msg_control = ctl ? h->msg_control : NULL,
                                     .msg_controllen = ctl};
                if (sendmsg(fd, &one, MSG_DONTWAIT) < 0)
                    dropped++;
            }
            done++;
            continue;
        }
        for (int m = done; m < n; m++)
            dropped += (uint64_t)segs[m]; /* full buffer: dropped, like UDP */
        break;
    }
    return dropped;
}

/* Writes queued datagrams [i, end) that all share one socket. */
static void flush_socket(relay_worker *r, int i, int end)
{
    struct mmsghdr out[RELAY_TX_BATCH];
    int segs[RELAY_TX_BATCH];
    int n = 0;
    while (i < end) {
        int run = r->tx_gso_off ? 1 : gso_run(r, i, end);
        out[n].msg_hdr = r->tx_mm[i].msg_hdr;
        out[n].msg_len = 0;
        segs[n] = run;
        size_t ctl = r->tx_has_src[i] ? relay__put_pktinfo(r->tx_cmsg[n], &r->tx_src[i]) : 0;
        if (run > 1) {
            out[n].msg_hdr.msg_iovlen = (size_t)run; /* tx_iov[i..i+run) are contiguous */
            struct cmsghdr *c = (struct cmsghdr *)(void *)(r->tx_cmsg[n] + ctl);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)r->tx_iov[i].iov_len;
            memcpy(CMSG_DATA(c), &seg, sizeof seg);
            ctl += CMSG_SPACE(sizeof(uint16_t));
        }
        if (ctl) {
            out[n].msg_hdr.msg_control = r->tx_cmsg[n];
            out[n].msg_hdr.msg_controllen = ctl;
        }
        n++;
        i += run;
    }
    r->send_errors += send_msgs(r, r->tx_fd[end - 1], out, segs, n);
}

void relay__tx_flush(relay_worker *r)
{
    int i = 0;
    while (i < r->n_tx) {
        int j = i;
        while (j < r->n_tx && r->tx_fd[j] == r->tx_fd[i])
            j++;
        flush_socket(r, i, j);
        i = j;
    }
    r->n_tx = 0;
    r->n_tx_borrowed = 0;
}

/* A datagram too large for a slot goes at once, after what is queued (to keep the order). */
static void send_now(relay_worker *r, int fd, const struct sockaddr *to,
                     const struct sockaddr_storage *src, const uint8_t *buf, size_t len)
{
    _Alignas(struct cmsghdr) uint8_t ctl[RELAY_PKTINFO_SPACE];
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    struct msghdr h = {.msg_name = (void *)(uintptr_t)to,
                       .msg_namelen = relay__addr_len(to->sa_family),
                       .msg_iov = &iov,
                       .msg_iovlen = 1};
    if (src) {
        h.msg_control = ctl;
        h.msg_controllen = relay__put_pktinfo(ctl, src);
    }
    relay__tx_flush(r);
    if (sendmsg(fd, &h, MSG_DONTWAIT) < 0)
        r->send_errors++;
}

void relay__tx_queue_from(relay_worker *r, int fd, const struct sockaddr *to,
                          const struct sockaddr_storage *src, const uint8_t *buf, size_t len)
{
    if (len > RELAY_TX_SLOT) {
        send_now(r, fd, to, src, buf, len);
        return;
    }
    relay__tx_queue(r, fd, to, buf, len);
    r->tx_src[r->n_tx - 1] = *src;
    r->tx_has_src[r->n_tx - 1] = true;
}

void relay__tx_queue(relay_worker *r, int fd, const struct sockaddr *to, const uint8_t *buf,
                     size_t len)
{
    socklen_t tolen = relay__addr_len(to->sa_family);
    if (len > RELAY_TX_SLOT) {
        send_now(r, fd, to, NULL, buf, len);
        return;
    }
    if (r->n_tx == RELAY_TX_BATCH)
        relay__tx_flush(r);
    int k = r->n_tx++;
    uint8_t *data = r->tx_buf[k];
    const uint8_t *rx = &r->rx[0][0];
    if (buf >= rx && buf + len <= rx + sizeof r->rx) {
        data = (uint8_t *)(uintptr_t)buf; /* a received datagram, sent before rx is reused */
        r->n_tx_borrowed++;
    } else {
        memcpy(data, buf, len);
    }
    memcpy(&r->tx_to[k], to, tolen);
    r->tx_iov[k] = (struct iovec){.iov_base = data, .iov_len = len};
    r->tx_mm[k].msg_hdr = (struct msghdr){
        .msg_name = &r->tx_to[k], .msg_namelen = tolen, .msg_iov = &r->tx_iov[k], .msg_iovlen = 1};
    r->tx_fd[k] = fd;
    r->tx_has_src[k] = false;
}
