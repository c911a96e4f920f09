#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tk_test.h"
#include "turnkey/ev.h"
#include "turnkey/util.h"

struct rec {
    int calls;
    unsigned last_events;
    int last_fd;
    char buf[64];
    ssize_t got;
};

static void read_cb(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    (void)loop;
    struct rec *r = ctx;
    r->calls++;
    r->last_events = events;
    r->last_fd = fd;
    if (events & EV_READ)
        r->got = read(fd, r->buf, sizeof r->buf);
}

/* Runs iterations until *flag is non-zero or ~2 s pass. */
static void run_until(ev_loop *loop, const int *flag)
{
    for (int i = 0; i < 200 && !*flag; i++)
        ev_run_once(loop, 10);
}

static void t_pipe_readable(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    struct rec r = {0};
    CHECK_INT(ev_add(loop, p[0], EV_READ, read_cb, &r), 0);
    CHECK_INT(ev_add(loop, p[0], EV_READ, read_cb, &r), -EEXIST);
    CHECK_INT(ev_add(loop, -1, EV_READ, read_cb, &r), -EINVAL);
    CHECK_INT(ev_run_once(loop, 0), 0); /* nothing ready */
    CHECK_INT(r.calls, 0);
    CHECK(write(p[1], "hi", 2) == 2);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.last_fd, p[0]);
    CHECK(r.last_events & EV_READ);
    CHECK_INT(r.got, 2);
    CHECK(memcmp(r.buf, "hi", 2) == 0);
    /* paused: data pending but no callback */
    CHECK_INT(ev_mod(loop, p[0], 0), 0);
    CHECK(write(p[1], "x", 1) == 1);
    CHECK_INT(ev_run_once(loop, 20), 0);
    CHECK_INT(ev_mod(loop, p[0], EV_READ), 0);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK_INT(r.calls, 2);
    /* writer closed: read side reports EOF (HUP) */
    close(p[1]);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK(r.last_events & EV_READ);
    CHECK_INT(r.got, 0);
    CHECK_INT(ev_del(loop, p[0]), 0);
    CHECK_INT(ev_del(loop, p[0]), -ENOENT);
    CHECK_INT(ev_mod(loop, p[0], EV_READ), -ENOENT);
    close(p[0]);
    ev_loop_free(loop);
}

static void t_socketpair_write_then_read(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct rec r = {0};
    CHECK_INT(ev_add(loop, sv[0], EV_WRITE, read_cb, &r), 0);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK_INT(r.last_events, EV_WRITE);
    CHECK_INT(ev_mod(loop, sv[0], EV_READ), 0);
    CHECK(write(sv[1], "abc", 3) == 3);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK_INT(r.last_events, EV_READ);
    CHECK_INT(r.got, 3);
    ev_del(loop, sv[0]);
    close(sv[0]);
    close(sv[1]);
    ev_loop_free(loop);
}

struct udp_rec {
    int calls;
    char buf[64];
    ssize_t got;
    struct sockaddr_in from;
};

static void udp_cb(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    (void)loop;
    (void)events;
    struct udp_rec *u = ctx;
    socklen_t fl = sizeof u->from;
    u->got = recvfrom(fd, u->buf, sizeof u->buf, 0, (struct sockaddr *)&u->from, &fl);
    u->calls++;
}

static void t_udp_datagram(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    int rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(rx >= 0 && tx >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(rx, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(rx, (struct sockaddr *)&a, &al) == 0);
    CHECK(a.sin_port != 0);
    struct udp_rec u = {0};
    CHECK_INT(ev_add(loop, rx, EV_READ, udp_cb, &u), 0);
    CHECK(sendto(tx, "turn", 4, 0, (struct sockaddr *)&a, sizeof a) == 4);
    run_until(loop, &u.calls);
    CHECK_INT(u.calls, 1);
    CHECK_INT(u.got, 4);
    CHECK(memcmp(u.buf, "turn", 4) == 0);
    CHECK(u.from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    ev_del(loop, rx);
    close(rx);
    close(tx);
    ev_loop_free(loop);
}

struct torder {
    int order[8];
    int n;
    int64_t fired_at[8];
    int64_t due[8];
};

struct tslot {
    struct torder *o;
    int id;
    ev_timer t;
};

static void order_cb(ev_loop *loop, ev_timer *t, void *ctx)
{
    struct tslot *s = ctx;
    (void)t;
    s->o->fired_at[s->o->n] = ev_now_ms(loop);
    s->o->due[s->o->n] = s->t.entry.deadline;
    s->o->order[s->o->n++] = s->id;
}

static void t_timers_in_order(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    struct torder o = {0};
    static const int64_t delays[5] = {40, 10, 30, 0, 20};
    struct tslot s[5];
    int64_t start = ev_update_now(loop);
    for (int i = 0; i < 5; i++) {
        s[i].o = &o;
        s[i].id = i;
        ev_timer_init(&s[i].t, order_cb, &s[i]);
        ev_timer_start(loop, &s[i].t, delays[i]);
        CHECK(ev_timer_active(&s[i].t));
    }
    ev_timer_stop(loop, &s[2].t); /* the 30 ms one never fires */
    CHECK(!ev_timer_active(&s[2].t));
    for (int i = 0; i < 300 && o.n < 4; i++)
        ev_run_once(loop, -1); /* blocks only until the next timer */
    CHECK_INT(o.n, 4);
    CHECK_INT(o.order[0], 3);
    CHECK_INT(o.order[1], 1);
    CHECK_INT(o.order[2], 4);
    CHECK_INT(o.order[3], 0);
    for (int i = 0; i < 4; i++)
        CHECK(o.fired_at[i] >= o.due[i]);
    CHECK(ev_now_ms(loop) - start >= 40);
    for (int i = 0; i < 5; i++)
        CHECK(!ev_timer_active(&s[i].t));
    ev_loop_free(loop);
}

struct rearm {
    int fired;
    ev_timer t;
};

static void rearm_cb(ev_loop *loop, ev_timer *t, void *ctx)
{
    struct rearm *r = ctx;
    r->fired++;
    ev_timer_start(loop, t, 0); /* always due: must not starve the loop */
}

static void t_timer_rearm_at_now_is_capped(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    struct rearm r = {0};
    ev_timer_init(&r.t, rearm_cb, &r);
    ev_timer_start(loop, &r.t, 0);
    int ran = ev_run_once(loop, -1);
    CHECK(ran >= 1 && ran <= EV_MAX_TIMERS);
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    struct rec rr = {0};
    CHECK_INT(ev_add(loop, p[0], EV_READ, read_cb, &rr), 0);
    CHECK(write(p[1], "z", 1) == 1);
    ev_run_once(loop, -1);
    CHECK_INT(rr.calls, 1); /* I/O still served */
    ev_timer_stop(loop, &r.t);
    ev_del(loop, p[0]);
    close(p[0]);
    close(p[1]);
    ev_loop_free(loop);
}

static void *stop_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ev_stop(arg);
    return NULL;
}

static void t_stop_from_thread(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, stop_later, loop) == 0);
    int64_t t0 = util_mono_ms();
    int rc = ev_run(loop); /* nothing registered: only the stop can end it */
    pthread_join(th, NULL);
    CHECK_INT(rc, 0);
    CHECK(util_mono_ms() - t0 < 5000);
    /* a stop requested before ev_run makes it return at once, and is consumed */
    ev_stop(loop);
    CHECK_INT(ev_run(loop), 0);
    CHECK_INT(ev_run_once(loop, 0), 0);
    ev_loop_free(loop);
}

struct wake_rec {
    int calls;
};

static void wake_cb(ev_loop *loop, void *ctx)
{
    struct wake_rec *w = ctx;
    w->calls++;
    ev_stop(loop);
}

static void *wake_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ev_wakeup(arg);
    ev_wakeup(arg);
    return NULL;
}

static void t_wakeup_from_thread(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    struct wake_rec w = {0};
    ev_set_wakeup_cb(loop, wake_cb, &w);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, wake_later, loop) == 0);
    pthread_join(th, NULL); /* both wakeups land before the loop runs: they coalesce */
    CHECK_INT(ev_run(loop), 0);
    CHECK_INT(w.calls, 1);
    ev_loop_free(loop);
}

/* Two readable fds; whichever callback runs first removes and closes both, then registers
 * a fresh (never readable) pipe that likely reuses one of the numbers. The other fd's event,
 * already fetched in the same batch, must be dropped. */
struct del_ctx {
    int a, b;
    int calls;
    int fresh[2];
};

static void never_cb(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct del_ctx *d = ctx;
    d->calls += 100;
}

static void del_cb(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    (void)fd;
    (void)events;
    struct del_ctx *d = ctx;
    d->calls++;
    ev_del(loop, d->a);
    ev_del(loop, d->b);
    close(d->a);
    close(d->b);
    if (pipe2(d->fresh, O_NONBLOCK | O_CLOEXEC) == 0)
        ev_add(loop, d->fresh[0], EV_READ, never_cb, d);
}

static void t_del_inside_callback(void)
{
    ev_loop *loop = ev_loop_new();
    CHECK(loop != NULL);
    int p[2], q[2];
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    CHECK(pipe2(q, O_NONBLOCK | O_CLOEXEC) == 0);
    struct del_ctx d = {.a = p[0], .b = q[0], .fresh = {-1, -1}};
    CHECK_INT(ev_add(loop, p[0], EV_READ, del_cb, &d), 0);
    CHECK_INT(ev_add(loop, q[0], EV_READ, del_cb, &d), 0);
    CHECK(write(p[1], "1", 1) == 1);
    CHECK(write(q[1], "2", 1) == 1);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK_INT(ev_run_once(loop, 1000), 1);
    CHECK_INT(d.calls, 1);
    CHECK(d.fresh[0] >= 0);
    CHECK(d.fresh[0] == p[0] || d.fresh[0] == q[0]); /* the number really was reused */
    CHECK_INT(ev_run_once(loop, 20), 0);
    CHECK_INT(d.calls, 1);
    ev_del(loop, d.fresh[0]);
    close(d.fresh[0]);
    close(d.fresh[1]);
    close(p[1]);
    close(q[1]);
    ev_loop_free(loop);
}

int main(void)
{
    TK_RUN(t_pipe_readable);
    TK_RUN(t_socketpair_write_then_read);
    TK_RUN(t_udp_datagram);
    TK_RUN(t_timers_in_order);
    TK_RUN(t_timer_rearm_at_now_is_capped);
    TK_RUN(t_stop_from_thread);
    TK_RUN(t_wakeup_from_thread);
    TK_RUN(t_del_inside_callback);
    return tk_test_summary();
}
