/* ev: epoll backend. Registrations live in a table indexed by fd; each epoll event carries
 * (generation << 32 | fd) so events fetched for an fd that a callback removed, or removed and
 * re-added, in the same batch are recognised as stale and dropped. */
#include "turnkey/ev.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "turnkey/util.h"

#define WAKE_TOKEN UINT64_MAX /* fd part 0xffffffff is never a real fd */

struct reg {
    ev_io_cb cb;
    void *ctx;
    unsigned events;
    uint32_t gen; /* 0 = free slot */
};

struct ev_loop {
    int epfd;
    int wakefd;
    atomic_bool stop;
    int64_t now;
    timer_heap timers;
    struct reg *regs; /* indexed by fd */
    size_t nregs;
    uint32_t next_gen;
    ev_wakeup_cb wake_cb;
    void *wake_ctx;
};

static uint32_t to_epoll(unsigned events)
{
    return ((events & EV_READ) ? EPOLLIN : 0u) | ((events & EV_WRITE) ? EPOLLOUT : 0u);
}

static struct reg *lookup(ev_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->nregs || loop->regs[fd].gen == 0)
        return NULL;
    return &loop->regs[fd];
}

static void grow_regs(ev_loop *loop, int fd)
{
    size_t need = (size_t)fd + 1;
    if (need <= loop->nregs)
        return;
    size_t n = loop->nregs ? loop->nregs : 64;
    while (n < need)
        n *= 2;
    loop->regs = util_xrealloc(loop->regs, n * sizeof *loop->regs);
    memset(loop->regs + loop->nregs, 0, (n - loop->nregs) * sizeof *loop->regs);
    loop->nregs = n;
}

ev_loop *ev_loop_new(void)
{
    ev_loop *loop = util_xcalloc(1, sizeof *loop);
    loop->epfd = -1;
    loop->wakefd = -1;
    atomic_init(&loop->stop, false);
    timer_heap_init(&loop->timers);
    loop->next_gen = 1;
    loop->now = util_mono_ms();

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto fail;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
        goto fail;
    return loop;

fail:;
    int saved = errno;
    ev_loop_free(loop);
    errno = saved;
    return NULL;
}

void ev_loop_free(ev_loop *loop)
{
    if (!loop)
        return;
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    timer_heap_dispose(&loop->timers);
    free(loop->regs);
    free(loop);
}

int ev_add(ev_loop *loop, int fd, unsigned events, ev_io_cb cb, void *ctx)
{
    if (fd < 0 || !cb || (events & ~(unsigned)(EV_READ | EV_WRITE)))
        return -EINVAL;
    if (lookup(loop, fd))
        return -EEXIST;
    uint32_t gen = loop->next_gen++;
    if (loop->next_gen == 0 || loop->next_gen == UINT32_MAX)
        loop->next_gen = 1;
    struct epoll_event ev = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    grow_regs(loop, fd);
    loop->regs[fd] = (struct reg){.cb = cb, .ctx = ctx, .events = events, .gen = gen};
    return 0;
}

int ev_mod(ev_loop *loop, int fd, unsigned events)
{
    struct reg *r = lookup(loop, fd);
    if (!r)
        return -ENOENT;
    if (events & ~(unsigned)(EV_READ | EV_WRITE))
        return -EINVAL;
    struct epoll_event ev = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)r->gen << 32) | (uint32_t)fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    r->events = events;
    return 0;
}

int ev_del(ev_loop *loop, int fd)
{
    struct reg *r = lookup(loop, fd);
    if (!r)
        return -ENOENT;
    /* Fails harmlessly (EBADF) if the caller already closed fd: epoll dropped it then. */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(r, 0, sizeof *r);
    return 0;
}

int64_t ev_now_ms(const ev_loop *loop)
{
    return loop->now;
}

int64_t ev_update_now(ev_loop *loop)
{
    loop->now = util_mono_ms();
    return loop->now;
}

/* The epoll timeout: the caller's, shortened so the earliest timer is not missed. */
static int wait_timeout(const ev_loop *loop, int timeout_ms)
{
    int64_t deadline = timer_peek_deadline(&loop->timers);
    if (deadline == INT64_MAX)
        return timeout_ms;
    int64_t delta = deadline <= loop->now ? 0 : deadline - loop->now;
    if (delta > INT_MAX)
        delta = INT_MAX;
    if (timeout_ms >= 0 && timeout_ms < delta)
        return timeout_ms;
    return (int)delta;
}

static int handle_wake(ev_loop *loop)
{
    uint64_t v;
    while (read(loop->wakefd, &v, sizeof v) > 0) {
    }
    if (!loop->wake_cb)
        return 0;
    loop->wake_cb(loop, loop->wake_ctx);
    return 1;
}

static int dispatch(ev_loop *loop, const struct epoll_event *ev)
{
    if (ev->data.u64 == WAKE_TOKEN)
        return handle_wake(loop);
    int fd = (int)(uint32_t)ev->data.u64;
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
    struct reg *r = lookup(loop, fd);
    if (!r || r->gen != gen)
        return 0; /* removed (or replaced) earlier in this batch */
    unsigned got =
        ((ev->events & EPOLLIN) ? EV_READ : 0u) | ((ev->events & EPOLLOUT) ? EV_WRITE : 0u);
    if (ev->events & (EPOLLERR | EPOLLHUP))
        got |= EV_ERROR | r->events;
    got &= r->events | EV_ERROR;
    if (!got)
        return 0;
    r->cb(loop, fd, got, r->ctx); /* r may be invalid after this */
    return 1;
}

static int run_timers(ev_loop *loop)
{
    int n = 0;
    timer_entry *e;
    while (n < EV_MAX_TIMERS && (e = timer_pop_expired(&loop->timers, loop->now)) != NULL) {
        ev_timer *t = TIMER_CONTAINER_OF(e, ev_timer, entry);
        t->cb(loop, t, t->ctx);
        n++;
    }
    return n;
}

int ev_run_once(ev_loop *loop, int timeout_ms)
{
    struct epoll_event evs[EV_MAX_EVENTS];
    ev_update_now(loop);
    int n = epoll_wait(loop->epfd, evs, EV_MAX_EVENTS, wait_timeout(loop, timeout_ms));
    if (n < 0) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    ev_update_now(loop);
    int ran = 0;
    for (int i = 0; i < n; i++)
        ran += dispatch(loop, &evs[i]);
    return ran + run_timers(loop);
}

int ev_run(ev_loop *loop)
{
    int rc = 0;
    while (!atomic_load(&loop->stop)) {
        rc = ev_run_once(loop, -1);
        if (rc < 0)
            break;
        rc = 0;
    }
    atomic_store(&loop->stop, false);
    return rc;
}

static void poke(ev_loop *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wakefd, &one, sizeof one);
    (void)w; /* EAGAIN means the counter is already non-zero: the loop will wake */
}

void ev_stop(ev_loop *loop)
{
    atomic_store(&loop->stop, true);
    poke(loop);
}

void ev_wakeup(ev_loop *loop)
{
    poke(loop);
}

void ev_set_wakeup_cb(ev_loop *loop, ev_wakeup_cb cb, void *ctx)
{
    loop->wake_cb = cb;
    loop->wake_ctx = ctx;
}

void ev_timer_init(ev_timer *t, ev_timer_cb cb, void *ctx)
{
    timer_entry_init(&t->entry);
    t->cb = cb;
    t->ctx = ctx;
}

void ev_timer_start(ev_loop *loop, ev_timer *t, int64_t delay_ms)
{
    if (delay_ms < 0)
        delay_ms = 0;
    int64_t deadline = loop->now > INT64_MAX - delay_ms ? INT64_MAX : loop->now + delay_ms;
    timer_schedule(&loop->timers, &t->entry, deadline);
}

void ev_timer_start_at(ev_loop *loop, ev_timer *t, int64_t deadline_ms)
{
    timer_schedule(&loop->timers, &t->entry, deadline_ms);
}

void ev_timer_stop(ev_loop *loop, ev_timer *t)
{
    timer_cancel(&loop->timers, &t->entry);
}

bool ev_timer_active(const ev_timer *t)
{
    return timer_is_scheduled(&t->entry);
}
