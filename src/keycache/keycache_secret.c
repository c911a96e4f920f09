/* keycache_secret: the shared secrets (issue 15) of every key, in memory, so the relay's
 * coturn-scheme checks never query the store. One chained hash table by key uid; each
 * entry holds the key's secrets (at most STORE_SHARED_SECRET_MAX). */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

typedef struct sentry {
    struct sentry *next;
    char key_uid[STORE_ID_LEN + 1];
    size_t n;
    keycache_secret s[STORE_SHARED_SECRET_MAX];
} sentry;

struct keycache__secrets {
    pthread_rwlock_t lock;
    sentry **b;
    size_t nb, n;
};

static size_t bucket(const keycache__secrets *t, const char *uid)
{
    return keycache__fnv(uid, STORE_ID_LEN) & (t->nb - 1);
}

keycache__secrets *keycache__secrets_new(void)
{
    keycache__secrets *t = util_xcalloc(1, sizeof *t);
    pthread_rwlock_init(&t->lock, NULL);
    t->nb = 64;
    t->b = util_xcalloc(t->nb, sizeof *t->b);
    return t;
}

static void wipe(sentry *e)
{
    OPENSSL_cleanse(e, sizeof *e);
    free(e);
}

static void clear_all(keycache__secrets *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (sentry *e = t->b[i], *next; e; e = next) {
            next = e->next;
            wipe(e);
        }
    memset(t->b, 0, t->nb * sizeof *t->b);
    t->n = 0;
}

void keycache__secrets_free(keycache__secrets *t)
{
    if (!t)
        return;
    clear_all(t);
    free(t->b);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static sentry **find(keycache__secrets *t, const char *uid)
{
    sentry **pp = &t->b[bucket(t, uid)];
    while (*pp && memcmp((*pp)->key_uid, uid, STORE_ID_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void grow(keycache__secrets *t)
{
    size_t nb = t->nb * 2, old = t->nb;
    sentry **ob = t->b;
    t->b = util_xcalloc(nb, sizeof *t->b);
    t->nb = nb;
    for (size_t i = 0; i < old; i++)
        for (sentry *e = ob[i], *next; e; e = next) {
            next = e->next;
            size_t j = bucket(t, e->key_uid);
            e->next = t->b[j];
            t->b[j] = e;
        }
    free(ob);
}

/* With the write lock: the key's entry replaced by e (NULL: removed). */
static void put_locked(keycache__secrets *t, const char *uid, sentry *e)
{
    sentry **pp = find(t, uid);
    if (*pp) {
        sentry *old = *pp;
        *pp = old->next;
        wipe(old);
        t->n--;
    }
    if (!e)
        return;
    if (t->n + 1 > t->nb)
        grow(t);
    pp = &t->b[bucket(t, uid)];
    e->next = *pp;
    *pp = e;
    t->n++;
}

void keycache__secrets_drop(keycache__secrets *t, const char *key_uid)
{
    if (!key_uid || strlen(key_uid) != STORE_ID_LEN)
        return;
    pthread_rwlock_wrlock(&t->lock);
    put_locked(t, key_uid, NULL);
    pthread_rwlock_unlock(&t->lock);
}

static void fill(keycache_secret *d, const store_shared_secret *s)
{
    memcpy(d->id, s->id, sizeof d->id);
    memcpy(d->key_uid, s->key_uid, sizeof d->key_uid);
    memcpy(d->secret, s->secret, sizeof d->secret);
    d->alg = s->alg;
    d->max_ttl = s->max_ttl;
}

/* The entry of the rows a[0..n) (all of one key); NULL when n is 0. */
static sentry *entry_of(const store_shared_secret *a, size_t n)
{
    if (n == 0)
        return NULL;
    sentry *e = util_xcalloc(1, sizeof *e);
    memcpy(e->key_uid, a[0].key_uid, sizeof e->key_uid);
    for (size_t i = 0; i < n && e->n < STORE_SHARED_SECRET_MAX; i++)
        fill(&e->s[e->n++], &a[i]);
    return e;
}

int keycache_secrets_refresh(keycache *kc, const char *key_uid)
{
    store_shared_secret *a;
    size_t n;
    if (!key_uid || strlen(key_uid) != STORE_ID_LEN)
        return -1;
    if (store_secret_list(keycache__store(kc), key_uid, &a, &n) != STORE_OK)
        return -1;
    sentry *e = entry_of(a, n);
    store_secret_array_free(a, n);
    keycache__secrets *t = keycache__secrets_of(kc);
    pthread_rwlock_wrlock(&t->lock);
    put_locked(t, key_uid, e);
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

int keycache_secrets_load(keycache *kc)
{
    store_shared_secret *a;
    size_t n;
    if (store_secret_list_all(keycache__store(kc), &a, &n) != STORE_OK)
        return -1;
    keycache__secrets *t = keycache__secrets_of(kc);
    pthread_rwlock_wrlock(&t->lock);
    clear_all(t);
    for (size_t i = 0, j; i < n; i = j) { /* rows come ordered by key */
        for (j = i + 1; j < n && !strcmp(a[j].key_uid, a[i].key_uid); j++)
            ;
        put_locked(t, a[i].key_uid, entry_of(&a[i], j - i));
    }
    pthread_rwlock_unlock(&t->lock);
    store_secret_array_free(a, n);
    return 0;
}

size_t keycache_secrets(keycache *kc, const char *key_uid, keycache_secret *out, size_t max)
{
    size_t n = 0;
    if (!key_uid || strnlen(key_uid, STORE_ID_LEN + 1) != STORE_ID_LEN)
        return 0;
    keycache__secrets *t = keycache__secrets_of(kc);
    pthread_rwlock_rdlock(&t->lock);
    sentry *e = *find(t, key_uid);
    for (size_t i = 0; e && i < e->n && n < max; i++)
        out[n++] = e->s[i];
    pthread_rwlock_unlock(&t->lock);
    return n;
}
