/* timer: binary min-heap keyed on (deadline, seq) with back-indices stored in the entries. */
#include "turnkey/timer.h"

#include <stdlib.h>

#include "turnkey/util.h"

enum { INITIAL_CAP = 64 };

static bool before(const timer_entry *a, const timer_entry *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static void place(timer_heap *h, size_t i, timer_entry *e)
{
    h->items[i] = e;
    e->heap_index = i + 1;
}

static void sift_up(timer_heap *h, size_t i)
{
    timer_entry *e = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(e, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(timer_heap *h, size_t i)
{
    timer_entry *e = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && before(h->items[child + 1], h->items[child]))
            child++;
        if (!before(h->items[child], e))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, e);
}

/* Restores heap order for the entry at i after its key changed in either direction. */
static void fix(timer_heap *h, size_t i)
{
    if (i > 0 && before(h->items[i], h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void timer_heap_init(timer_heap *h)
{
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
    h->next_seq = 0;
}

void timer_heap_dispose(timer_heap *h)
{
    free(h->items);
    timer_heap_init(h);
}

void timer_entry_init(timer_entry *e)
{
    e->deadline = 0;
    e->heap_index = 0;
    e->seq = 0;
}

bool timer_is_scheduled(const timer_entry *e)
{
    return e->heap_index != 0;
}

void timer_schedule(timer_heap *h, timer_entry *e, int64_t deadline)
{
    e->deadline = deadline;
    e->seq = h->next_seq++;
    if (timer_is_scheduled(e)) {
        fix(h, e->heap_index - 1);
        return;
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : INITIAL_CAP;
        h->items = util_xrealloc(h->items, cap * sizeof *h->items);
        h->cap = cap;
    }
    place(h, h->len, e);
    h->len++;
    sift_up(h, h->len - 1);
}

void timer_cancel(timer_heap *h, timer_entry *e)
{
    if (!timer_is_scheduled(e))
        return;
    size_t i = e->heap_index - 1;
    e->heap_index = 0;
    h->len--;
    if (i == h->len)
        return;
    place(h, i, h->items[h->len]);
    fix(h, i);
}

size_t timer_count(const timer_heap *h)
{
    return h->len;
}

int64_t timer_peek_deadline(const timer_heap *h)
{
    return h->len ? h->items[0]->deadline : INT64_MAX;
}

timer_entry *timer_pop_expired(timer_heap *h, int64_t now)
{
    if (h->len == 0 || h->items[0]->deadline > now)
        return NULL;
    timer_entry *e = h->items[0];
    timer_cancel(h, e);
    return e;
}
