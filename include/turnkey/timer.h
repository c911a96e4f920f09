/* timer: a binary min-heap of intrusive timer entries. Sans-I/O: it never reads a clock;
 * deadlines and "now" are plain int64_t values in whatever unit the caller uses (ms).
 *
 * Embed a timer_entry in the owning struct and recover the owner from a popped entry with
 * TIMER_CONTAINER_OF:
 *
 *   struct alloc { ...; timer_entry expiry; };
 *   timer_schedule(&heap, &a->expiry, now + 600000);
 *   for (timer_entry *e; (e = timer_pop_expired(&heap, now)) != NULL;) {
 *       struct alloc *a = TIMER_CONTAINER_OF(e, struct alloc, expiry);
 *       ...
 *   }
 *
 * An entry is "not scheduled" when zero-initialised (or after timer_entry_init, cancel or
 * pop), so a calloc'd owner needs no explicit init. An entry belongs to at most one heap at a
 * time; passing it to another heap while scheduled is a caller bug.
 * Complexity: schedule (insert or move), cancel and pop are O(log n); peek is O(1).
 * Entries with equal deadlines pop in the order they were (last) scheduled. */
#ifndef TURNKEY_TIMER_H
#define TURNKEY_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct timer_entry {
    int64_t deadline;  /* valid while scheduled */
    size_t heap_index; /* position in the heap + 1; 0 = not scheduled (internal) */
    uint64_t seq;      /* scheduling order, breaks deadline ties (internal) */
} timer_entry;

typedef struct timer_heap {
    timer_entry **items;
    size_t len, cap;
    uint64_t next_seq;
} timer_heap;

/* The struct of type `type` whose member `member` is the timer_entry at `ptr`. */
#define TIMER_CONTAINER_OF(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

void timer_heap_init(timer_heap *h);
/* Frees the heap's storage. Entries still scheduled are not touched (their owners may
 * already be gone); do not use them with this heap afterwards. */
void timer_heap_dispose(timer_heap *h);

/* Marks e as not scheduled (same as zero-initialising it). */
void timer_entry_init(timer_entry *e);
/* Schedules e at deadline, or moves it there if it is already scheduled in h. */
void timer_schedule(timer_heap *h, timer_entry *e, int64_t deadline);
/* Removes e from h if scheduled; no-op otherwise. */
void timer_cancel(timer_heap *h, timer_entry *e);
bool timer_is_scheduled(const timer_entry *e);

/* Number of scheduled entries. */
size_t timer_count(const timer_heap *h);
/* Earliest deadline, or INT64_MAX if the heap is empty. */
int64_t timer_peek_deadline(const timer_heap *h);
/* Removes and returns one entry whose deadline <= now (the earliest), or NULL if none is
 * due. The returned entry is no longer scheduled, so the caller may reschedule or free it. */
timer_entry *timer_pop_expired(timer_heap *h, int64_t now);

#endif
