/* keycache_policy: every key's policy (parsed) and live budget trips (issue 14 §4), in
 * memory, so the API's mint and the relay's Allocate never query the store for them. One
 * chained hash table by key uid under its own rwlock; each entry holds the key's trips (at
 * most KEYCACHE_TRIPS_MAX: past it the key's own budget is treated as tripped). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

#define KEYCACHE_TRIPS_MAX 1024

typedef struct ptrip {
    char custom_id[65];
    int action;
    int64_t until;
} ptrip;

typedef struct pentry {
    struct pentry *next;
    char key_uid[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    bool has_policy;
    policy p;
    size_t n_trips, cap_trips;
    ptrip *trips;
} pentry;

struct keycache__policies {
    pthread_rwlock_t lock;
    pentry **b;
    size_t nb, n;
};

static size_t bucket(size_t nb, const char *uid)
{
    return keycache__fnv(uid, STORE_ID_LEN) & (nb - 1);
}

keycache__policies *keycache__policies_new(void)
{
    keycache__policies *t = util_xcalloc(1, sizeof *t);
    pthread_rwlock_init(&t->lock, NULL);
    t->nb = 64;
    t->b = util_xcalloc(t->nb, sizeof *t->b);
    return t;
}

static void entry_free(pentry *e)
{
    free(e->trips);
    free(e);
}

static void table_clear(pentry **b, size_t nb)
{
    for (size_t i = 0; i < nb; i++)
        for (pentry *e = b[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
}

void keycache__policies_free(keycache__policies *t)
{
    if (!t)
        return;
    table_clear(t->b, t->nb);
    free(t->b);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static pentry **find(pentry **b, size_t nb, const char *uid)
{
    pentry **pp = &b[bucket(nb, uid)];
    while (*pp && memcmp((*pp)->key_uid, uid, STORE_ID_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Removes uid's entry (the write lock held). */
static void remove_locked(keycache__policies *t, const char *uid)
{
    pentry **pp = find(t->b, t->nb, uid);
    if (*pp) {
        pentry *old = *pp;
        *pp = old->next;
        t->n--;
        entry_free(old);
    }
}

/* Inserts e into a table (b, nb, n), doubling it past a load of 1. */
static void insert(pentry ***b, size_t *nb, size_t *n, pentry *e)
{
    if (*n >= *nb) {
        size_t nnb = *nb * 2;
        pentry **fresh = util_xcalloc(nnb, sizeof *fresh);
        for (size_t i = 0; i < *nb; i++)
            for (pentry *x = (*b)[i], *next; x; x = next) {
                next = x->next;
                size_t k = bucket(nnb, x->key_uid);
                x->next = fresh[k];
                fresh[k] = x;
            }
        free(*b);
        *b = fresh;
        *nb = nnb;
    }
    size_t k = bucket(*nb, e->key_uid);
    e->next = (*b)[k];
    (*b)[k] = e;
    (*n)++;
}

static void add_trip(pentry *e, const store_budget *b)
{
    if (e->n_trips == KEYCACHE_TRIPS_MAX) {
        log_warn("keycache", "key %s: more than %d budget trips; its own budget counts as tripped",
                 e->key_uid, KEYCACHE_TRIPS_MAX);
        e->trips[0].custom_id[0] = '\0'; /* the first slot stands for the key from now on */
        if (b->tripped > e->trips[0].action)
            e->trips[0].action = b->tripped;
        if (b->period_end > e->trips[0].until)
            e->trips[0].until = b->period_end;
        return;
    }
    if (e->n_trips == e->cap_trips) {
        e->cap_trips = e->cap_trips ? e->cap_trips * 2 : 4;
        e->trips = util_xrealloc(e->trips, e->cap_trips * sizeof *e->trips);
    }
    ptrip *t = &e->trips[e->n_trips++];
    memcpy(t->custom_id, b->custom_id, sizeof t->custom_id);
    t->action = b->tripped;
    t->until = b->period_end;
}

static pentry *entry_new(const char *uid)
{
    pentry *e = util_xcalloc(1, sizeof *e);
    memcpy(e->key_uid, uid, STORE_ID_LEN);
    policy_init(&e->p);
    return e;
}

static void set_policy(pentry *e, const store_policy *sp)
{
    char err[160];
    memcpy(e->account_id, sp->account_id, sizeof e->account_id);
    e->has_policy = policy_parse(sp->json, strlen(sp->json), &e->p, err, sizeof err) == 0;
    if (!e->has_policy) {
        log_error("keycache", "key %s: stored policy ignored: %s", e->key_uid, err);
        policy_init(&e->p);
    }
}

/* The entry of uid in a table being built (created if absent). */
static pentry *entry_of(pentry ***b, size_t *nb, size_t *n, const char *uid)
{
    pentry **pp = find(*b, *nb, uid);
    if (*pp)
        return *pp;
    pentry *e = entry_new(uid);
    insert(b, nb, n, e);
    return e;
}

void keycache_policy_view(keycache *kc, const char *uid, const char *custom_id, int64_t now,
                          keycache_policy *out)
{
    memset(out, 0, sizeof *out);
    policy_init(&out->p);
    keycache__policies *t = keycache__policies_of(kc);
    if (!uid || strlen(uid) != STORE_ID_LEN)
        return;
    if (!custom_id)
        custom_id = "";
    pthread_rwlock_rdlock(&t->lock);
    pentry *e = *find(t->b, t->nb, uid);
    if (e) {
        out->has_policy = e->has_policy;
        out->p = e->p;
        for (size_t i = 0; i < e->n_trips; i++) {
            const ptrip *tr = &e->trips[i];
            if (tr->until <= now || (tr->custom_id[0] && strcmp(tr->custom_id, custom_id) != 0))
                continue;
            if (tr->action > out->tripped)
                out->tripped = tr->action;
            if (tr->until > out->tripped_until)
                out->tripped_until = tr->until;
        }
    }
    pthread_rwlock_unlock(&t->lock);
}

/* Reads one key's policy and trips into a fresh entry (NULL: the key has neither). */
static int load_one(store *st, const char *uid, int64_t now, pentry **out)
{
    *out = NULL;
    store_policy sp;
    int rc = store_policy_get(st, uid, &sp);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return -1;
    store_budget *b = NULL;
    size_t nb = 0;
    if (store_budget_list(st, uid, now, true, &b, &nb) != STORE_OK) {
        store_policy_clear(&sp);
        return -1;
    }
    if (rc == STORE_OK || nb) {
        *out = entry_new(uid);
        if (rc == STORE_OK)
            set_policy(*out, &sp);
        for (size_t i = 0; i < nb; i++)
            add_trip(*out, &b[i]);
    }
    store_policy_clear(&sp);
    free(b);
    return 0;
}

int keycache_policy_refresh(keycache *kc, const char *key_uid, int64_t now)
{
    pentry *fresh;
    if (!key_uid || strlen(key_uid) != STORE_ID_LEN)
        return 0;
    if (load_one(keycache__store(kc), key_uid, now, &fresh) != 0)
        return -1;
    keycache__policies *t = keycache__policies_of(kc);
    pthread_rwlock_wrlock(&t->lock);
    remove_locked(t, key_uid);
    if (fresh)
        insert(&t->b, &t->nb, &t->n, fresh);
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

void keycache__policies_drop(keycache__policies *t, const char *key_uid)
{
    pthread_rwlock_wrlock(&t->lock);
    remove_locked(t, key_uid);
    pthread_rwlock_unlock(&t->lock);
}

int keycache_policies_load(keycache *kc, int64_t now)
{
    store *st = keycache__store(kc);
    store_policy *ps = NULL;
    store_budget *bs = NULL;
    size_t np = 0, nbud = 0;
    if (store_policy_list_all(st, &ps, &np) != STORE_OK)
        return -1;
    if (store_budget_list(st, NULL, now, true, &bs, &nbud) != STORE_OK) {
        store_policy_array_free(ps, np);
        return -1;
    }
    size_t nb = 64, n = 0;
    pentry **b = util_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < np; i++)
        set_policy(entry_of(&b, &nb, &n, ps[i].key_uid), &ps[i]);
    for (size_t i = 0; i < nbud; i++)
        add_trip(entry_of(&b, &nb, &n, bs[i].key_uid), &bs[i]);
    store_policy_array_free(ps, np);
    free(bs);
    keycache__policies *t = keycache__policies_of(kc);
    pthread_rwlock_wrlock(&t->lock);
    pentry **old = t->b;
    size_t old_nb = t->nb;
    t->b = b;
    t->nb = nb;
    t->n = n;
    pthread_rwlock_unlock(&t->lock);
    table_clear(old, old_nb);
    free(old);
    return 0;
}

size_t keycache_budget_keys(keycache *kc, keycache_budget_key *out, size_t max)
{
    keycache__policies *t = keycache__policies_of(kc);
    size_t n = 0;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < t->nb; i++)
        for (const pentry *e = t->b[i]; e; e = e->next) {
            if (!e->has_policy || !policy_has_budget(&e->p))
                continue;
            if (n < max) {
                memcpy(out[n].uid, e->key_uid, sizeof out[n].uid);
                memcpy(out[n].account_id, e->account_id, sizeof out[n].account_id);
                out[n].p = e->p;
            }
            n++;
        }
    pthread_rwlock_unlock(&t->lock);
    return n;
}
