/* relay_tx: the outgoing datagram queue sends runs of same-size datagrams as UDP GSO messages;
 * the receivers must get exactly the queued datagrams, in order. Real loopback sockets (the
 * kernel does the segmentation), no relay threads. */
#include "tk_test.h"

#include "../../src/relay/internal.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    int fd;
    struct sockaddr_in addr;
} rx_sock;

static int rx_open(rx_sock *s)
{
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 1 << 20;
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    memset(&s->addr, 0, sizeof s->addr);
    s->addr.sin_family = AF_INET;
    s->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof s->addr;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&s->addr, sizeof s->addr) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&s->addr, &len) != 0)
        return -1;
    return 0;
}

/* Receives one datagram (waiting up to 1 s); its length, or -1. */
static ssize_t rx_one(const rx_sock *s, uint8_t *buf, size_t cap)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1)
        return -1;
    return recv(s->fd, buf, cap, MSG_DONTWAIT);
}

static bool rx_empty(const rx_sock *s)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return poll(&p, 1, 50) == 0;
}

/* A worker with only its tx queue in use, a sending socket and one receiver. */
typedef struct {
    rx_sock a;
    int tx;
    relay_worker *r;
} fixture;

static void fx_open(fixture *f)
{
    CHECK_INT(rx_open(&f->a), 0);
    f->tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    f->r = calloc(1, sizeof *f->r);
}

static void fx_close(fixture *f)
{
    free(f->r);
    close(f->tx);
    close(f->a.fd);
}

static void payload(uint8_t *buf, size_t len, int i)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 31 + (int)k);
}

/* Receives the next datagram on `to` and checks that it is datagram i, len bytes, unchanged. */
static void expect(const rx_sock *to, size_t len, int i)
{
    uint8_t want[RELAY_TX_SLOT], got[RELAY_TX_SLOT + 1];
    payload(want, len, i);
    ssize_t n = rx_one(to, got, sizeof got);
    CHECK_INT(n, (ssize_t)len);
    if (n == (ssize_t)len)
        CHECK(memcmp(got, want, len) == 0);
}

static void t_runs_sizes_and_empty(void)
{
    fixture f;
    rx_sock b;
    fx_open(&f);
    CHECK_INT(rx_open(&b), 0);
    relay_worker *r = f.r;
    /* to a: a run of equal sizes, two empty ones, a shorter one, another run ending short;
     * to b: interleaved, so runs are cut by the destination too */
    static const size_t sizes[] = {700, 700, 700, 700, 700,  0,    0,    300, 700,
                                   700, 700, 1,   0,   1200, 1200, 1200, 64};
    static const int to_b[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    size_t n = sizeof sizes / sizeof sizes[0];
    uint8_t buf[RELAY_TX_SLOT];
    for (size_t i = 0; i < n; i++) {
        payload(buf, sizes[i], (int)i);
        const rx_sock *to = to_b[i] ? &b : &f.a;
        relay__tx_queue(r, f.tx, (const struct sockaddr *)&to->addr, buf, sizes[i]);
    }
    CHECK_INT(r->n_tx, (int)n);
    relay__tx_flush(r);
    CHECK_INT(r->n_tx, 0);
    CHECK_INT((int)r->send_errors, 0);
    for (size_t i = 0; i < n; i++)
        expect(to_b[i] ? &b : &f.a, sizes[i], (int)i); /* each receiver's own order holds */
    CHECK(rx_empty(&f.a));
    CHECK(rx_empty(&b));
    close(b.fd);
    fx_close(&f);
}

/* A full queue flushes itself; more than one flush keeps the order. */
static void t_full_queue(void)
{
    fixture f;
    fx_open(&f);
    uint8_t buf[RELAY_TX_SLOT];
    int total = RELAY_TX_BATCH * 3 + 5;
    for (int i = 0; i < total; i++) {
        payload(buf, 500, i);
        relay__tx_queue(f.r, f.tx, (const struct sockaddr *)&f.a.addr, buf, 500);
    }
    relay__tx_flush(f.r);
    for (int i = 0; i < total; i++)
        expect(&f.a, 500, i);
    CHECK(rx_empty(&f.a));
    fx_close(&f);
}

/* A datagram inside the worker's receive buffers is queued by reference (no copy) and still
 * arrives unchanged; one from elsewhere is copied at once, so changing it later is harmless. */
static void t_borrowed_and_copied(void)
{
    fixture f;
    fx_open(&f);
    relay_worker *r = f.r;
    const struct sockaddr *to = (const struct sockaddr *)&f.a.addr;
    uint8_t *in_rx = r->rx[3] + TURN_PEER_HEADROOM, other[600];
    payload(in_rx, 600, 0);
    payload(other, 600, 1);
    relay__tx_queue(r, f.tx, to, in_rx, 600);
    CHECK_INT(r->n_tx_borrowed, 1);
    CHECK(r->tx_iov[0].iov_base == in_rx);
    relay__tx_queue(r, f.tx, to, other, 600);
    CHECK_INT(r->n_tx_borrowed, 1);
    CHECK(r->tx_iov[1].iov_base != other);
    memset(other, 0, sizeof other); /* the queued copy is unaffected */
    relay__tx_flush(r);
    CHECK_INT(r->n_tx_borrowed, 0);
    expect(&f.a, 600, 0);
    expect(&f.a, 600, 1);
    CHECK(rx_empty(&f.a));
    fx_close(&f);
}

int main(void)
{
    TK_RUN(t_runs_sizes_and_empty);
    TK_RUN(t_full_queue);
    TK_RUN(t_borrowed_and_copied);
    return tk_test_summary();
}
