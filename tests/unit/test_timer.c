#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/timer.h"
#include "turnkey/util.h"

struct item {
    int id;
    timer_entry t;
};

/* Deterministic xorshift64 so failures reproduce. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every entry's back-index is right and every parent is <= its children. */
static int heap_ok(const timer_heap *h)
{
    for (size_t i = 0; i < h->len; i++) {
        if (h->items[i]->heap_index != i + 1)
            return 0;
        if (i > 0 && h->items[(i - 1) / 2]->deadline > h->items[i]->deadline)
            return 0;
    }
    return 1;
}

static void t_empty(void)
{
    timer_heap h;
    timer_heap_init(&h);
    CHECK(timer_peek_deadline(&h) == INT64_MAX);
    CHECK(timer_pop_expired(&h, INT64_MAX) == NULL);
    CHECK_INT(timer_count(&h), 0);
    struct item it = {0}; /* zero-initialised = not scheduled */
    CHECK(!timer_is_scheduled(&it.t));
    timer_cancel(&h, &it.t); /* no-op */
    CHECK_INT(timer_count(&h), 0);
    timer_heap_dispose(&h);
}

static void t_container_of(void)
{
    struct item it = {.id = 42};
    timer_entry *e = &it.t;
    CHECK(TIMER_CONTAINER_OF(e, struct item, t) == &it);
    CHECK_INT(TIMER_CONTAINER_OF(e, struct item, t)->id, 42);
}

static void t_random_order(void)
{
    enum { N = 5000 };
    struct item *items = util_xcalloc(N, sizeof *items);
    int64_t *ref = util_xcalloc(N, sizeof *ref);
    timer_heap h;
    timer_heap_init(&h);
    uint64_t s = 0x9e3779b97f4a7c15u;
    int ok = 1;
    for (int i = 0; i < N; i++) {
        ref[i] = (int64_t)(rnd(&s) % 100000) - 50000; /* negatives too */
        items[i].id = i;
        timer_schedule(&h, &items[i].t, ref[i]);
    }
    qsort(ref, N, sizeof *ref, cmp_i64);
    ok = ok && heap_ok(&h) && timer_peek_deadline(&h) == ref[0];
    for (int i = 0; i < N && ok; i++) {
        timer_entry *e = timer_pop_expired(&h, INT64_MAX);
        ok = e != NULL && e->deadline == ref[i] && !timer_is_scheduled(e);
    }
    ok = ok && timer_count(&h) == 0 && timer_pop_expired(&h, INT64_MAX) == NULL;
    timer_heap_dispose(&h);
    free(ref);
    free(items);
    CHECK(ok);
}

static void t_pop_respects_now(void)
{
    struct item a = {0}, b = {0}, c = {0};
    timer_heap h;
    timer_heap_init(&h);
    timer_schedule(&h, &a.t, 100);
    timer_schedule(&h, &b.t, 200);
    timer_schedule(&h, &c.t, 300);
    CHECK(timer_pop_expired(&h, 99) == NULL);
    CHECK(timer_pop_expired(&h, 100) == &a.t);
    CHECK(timer_pop_expired(&h, 250) == &b.t);
    CHECK(timer_pop_expired(&h, 250) == NULL);
    CHECK_INT(timer_peek_deadline(&h), 300);
    CHECK(timer_is_scheduled(&c.t));
    timer_heap_dispose(&h);
}

static void t_cancel_middle(void)
{
    enum { N = 101 };
    struct item items[N];
    timer_heap h;
    timer_heap_init(&h);
    for (int i = 0; i < N; i++) {
        timer_entry_init(&items[i].t);
        items[i].id = i;
        /* scattered insertion order */
        timer_schedule(&h, &items[i].t, (int64_t)((i * 37) % N));
    }
    int ok = 1;
    for (int i = 0; i < N; i += 3) { /* cancel every third, including root and leaves */
        timer_cancel(&h, &items[i].t);
        ok = ok && !timer_is_scheduled(&items[i].t) && heap_ok(&h);
        timer_cancel(&h, &items[i].t); /* twice is a no-op */
    }
    CHECK(ok);
    int64_t last = INT64_MIN;
    size_t popped = 0;
    for (timer_entry *e; (e = timer_pop_expired(&h, INT64_MAX)) != NULL; popped++) {
        struct item *it = TIMER_CONTAINER_OF(e, struct item, t);
        CHECK(it->id % 3 != 0);
        CHECK(e->deadline >= last);
        last = e->deadline;
    }
    CHECK_INT(popped, N - (N + 2) / 3);
    timer_heap_dispose(&h);
}

static void t_reschedule(void)
{
    struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    timer_heap h;
    timer_heap_init(&h);
    timer_schedule(&h, &a.t, 10);
    timer_schedule(&h, &b.t, 20);
    timer_schedule(&h, &c.t, 30);
    timer_schedule(&h, &c.t, 5); /* earlier: moves to the top */
    CHECK_INT(timer_count(&h), 3);
    CHECK_INT(timer_peek_deadline(&h), 5);
    timer_schedule(&h, &c.t, 50); /* later: moves to the bottom */
    timer_schedule(&h, &a.t, 40);
    CHECK_INT(timer_count(&h), 3);
    CHECK(heap_ok(&h));
    CHECK(timer_pop_expired(&h, 100) == &b.t);
    CHECK(timer_pop_expired(&h, 100) == &a.t);
    CHECK(timer_pop_expired(&h, 100) == &c.t);
    /* a popped entry can be scheduled again */
    timer_schedule(&h, &a.t, 7);
    CHECK(timer_pop_expired(&h, 7) == &a.t);
    timer_heap_dispose(&h);
}

static void t_equal_deadlines(void)
{
    enum { N = 50 };
    struct item items[N];
    timer_heap h;
    timer_heap_init(&h);
    for (int i = 0; i < N; i++) {
        timer_entry_init(&items[i].t);
        items[i].id = i;
        timer_schedule(&h, &items[i].t, 1000);
    }
    timer_schedule(&h, &items[0].t, 1000); /* rescheduled: now last among equals */
    for (int i = 1; i < N; i++) {
        timer_entry *e = timer_pop_expired(&h, 1000);
        CHECK(e != NULL);
        CHECK_INT(TIMER_CONTAINER_OF(e, struct item, t)->id, i);
    }
    CHECK(timer_pop_expired(&h, 1000) == &items[0].t);
    CHECK(timer_pop_expired(&h, 1000) == NULL);
    timer_heap_dispose(&h);
}

/* 200,000 entries: insert, cancel half, move some, pop all in order (correctness only). */
static void t_many(void)
{
    enum { N = 200000 };
    struct item *items = util_xcalloc(N, sizeof *items);
    int64_t *ref = util_xcalloc(N, sizeof *ref);
    timer_heap h;
    timer_heap_init(&h);
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        items[i].id = i;
        timer_schedule(&h, &items[i].t, (int64_t)(rnd(&s) % 3600000));
    }
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        if (i % 2)
            timer_cancel(&h, &items[i].t);
        else if (i % 10 == 0)
            timer_schedule(&h, &items[i].t, (int64_t)(rnd(&s) % 3600000));
    }
    for (int i = 0; i < N; i += 2)
        ref[n++] = items[i].t.deadline;
    qsort(ref, n, sizeof *ref, cmp_i64);
    int ok = timer_count(&h) == n && heap_ok(&h);
    for (size_t i = 0; i < n && ok; i++) {
        timer_entry *e = timer_pop_expired(&h, INT64_MAX);
        ok = e != NULL && e->deadline == ref[i] &&
             TIMER_CONTAINER_OF(e, struct item, t)->id % 2 == 0;
    }
    ok = ok && timer_count(&h) == 0;
    for (int i = 0; i < N && ok; i++)
        ok = !timer_is_scheduled(&items[i].t);
    timer_heap_dispose(&h);
    free(ref);
    free(items);
    CHECK(ok);
}

int main(void)
{
    TK_RUN(t_empty);
    TK_RUN(t_container_of);
    TK_RUN(t_random_order);
    TK_RUN(t_pop_respects_now);
    TK_RUN(t_cancel_middle);
    TK_RUN(t_reschedule);
    TK_RUN(t_equal_deadlines);
    TK_RUN(t_many);
    return tk_test_summary();
}
