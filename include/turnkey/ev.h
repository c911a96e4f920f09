/* ev: a thin epoll event loop (Linux). Single-threaded: every function runs on the loop's
 * thread except ev_stop and ev_wakeup, which any thread may call.
 *
 * I/O: register an fd with ev_add; its callback runs with the ready subset of EV_READ and
 * EV_WRITE (plus EV_ERROR on EPOLLERR/EPOLLHUP, together with the registered bits so the
 * handler's read/write sees the error; EV_ERROR alone for a paused fd). Level-triggered. The loop never closes user fds;
 * call ev_del before close. Any callback may ev_add/ev_mod/ev_del any fd, including its own:
 * events already fetched for a removed (or removed and re-added) fd are dropped.
 *
 * Timers: ev_timer embeds a timer_entry in the loop's heap. Deadlines are monotonic
 * milliseconds on the ev_now_ms clock, cached once per iteration. A timer fires once per
 * start; re-arm it from its callback for periodic work. The sans-I/O TURN core reports its
 * next deadline; arm one ev_timer at it with ev_timer_start_at.
 *
 * Fairness: one wakeup dispatches at most EV_MAX_EVENTS fd events and EV_MAX_TIMERS timer
 * callbacks; the rest are handled on the next iteration without blocking. */
#ifndef TURNKEY_EV_H
#define TURNKEY_EV_H

#include <stdbool.h>
#include <stdint.h>

#include "turnkey/timer.h"

enum {
    EV_READ = 1u << 0,
    EV_WRITE = 1u << 1,
    EV_ERROR = 1u << 2, /* only reported, never requested */
};

/* Epoll events fetched per wakeup (per-wakeup I/O budget). */
#define EV_MAX_EVENTS 64
/* Timer callbacks run per iteration at most (a timer re-armed at "now" cannot starve I/O). */
#define EV_MAX_TIMERS 1024

typedef struct ev_loop ev_loop;
typedef struct ev_timer ev_timer;

typedef void (*ev_io_cb)(ev_loop *loop, int fd, unsigned events, void *ctx);
typedef void (*ev_timer_cb)(ev_loop *loop, ev_timer *t, void *ctx);
typedef void (*ev_wakeup_cb)(ev_loop *loop, void *ctx);

struct ev_timer {
    timer_entry entry; /* internal */
    ev_timer_cb cb;
    void *ctx;
};

/* NULL if epoll or the eventfd cannot be created (errno set). */
ev_loop *ev_loop_new(void);
/* Closes the loop's own fds and frees it; user fds and timers are left alone. */
void ev_loop_free(ev_loop *loop);

/* 0, -EEXIST if fd is already registered, -EINVAL for bad args, or -errno from epoll_ctl. */
int ev_add(ev_loop *loop, int fd, unsigned events, ev_io_cb cb, void *ctx);
/* Changes the requested events (0 pauses the fd). 0, -ENOENT if not registered, -errno. */
int ev_mod(ev_loop *loop, int fd, unsigned events);
/* Unregisters fd. 0, or -ENOENT if it was not registered. */
int ev_del(ev_loop *loop, int fd);

/* One iteration: wait up to timeout_ms (-1 = until an event; shortened by the earliest
 * timer), dispatch ready fds, then due timers. Returns the number of callbacks run (>= 0)
 * or -errno if epoll_wait failed (EINTR counts as 0 callbacks). */
int ev_run_once(ev_loop *loop, int timeout_ms);
/* Iterates until ev_stop. 0 after a stop, -errno on an epoll failure. A stop requested
 * before ev_run is entered makes it return at once; the request is consumed on return. */
int ev_run(ev_loop *loop);
/* Asks ev_run to return after the current iteration. Thread-safe, async-signal-safe. */
void ev_stop(ev_loop *loop);
/* Wakes the loop from another thread; the wakeup callback (if set) runs on the loop's
 * thread. Several wakeups before the loop notices coalesce into one callback. Thread-safe. */
void ev_wakeup(ev_loop *loop);
/* Sets the wakeup callback (loop thread, before other threads may call ev_wakeup). */
void ev_set_wakeup_cb(ev_loop *loop, ev_wakeup_cb cb, void *ctx);

/* Monotonic milliseconds, cached at the start and after the wait of each iteration. */
int64_t ev_now_ms(const ev_loop *loop);
/* Re-reads the monotonic clock into the cache and returns it. */
int64_t ev_update_now(ev_loop *loop);

void ev_timer_init(ev_timer *t, ev_timer_cb cb, void *ctx);
/* (Re)arms t to fire at ev_now_ms(loop) + delay_ms (delay < 0 counts as 0). */
void ev_timer_start(ev_loop *loop, ev_timer *t, int64_t delay_ms);
/* (Re)arms t to fire at the absolute ev_now_ms-clock deadline. */
void ev_timer_start_at(ev_loop *loop, ev_timer *t, int64_t deadline_ms);
/* Disarms t; no-op if not armed. A stopped timer may be freed. */
void ev_timer_stop(ev_loop *loop, ev_timer *t);
bool ev_timer_active(const ev_timer *t);

#endif
