/* keycache: see include/turnkey/keycache.h. Two chained hash tables (keys by uid,
 * revocations by SHA-256 of the username) under one rwlock. */
#include "turnkey/keycache.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

typedef struct kentry {
    struct kentry *next;
    char uid[STORE_ID_LEN + 1];
    char key_hash[65];
    uint8_t secret[STORE_SECRET_LEN];
} kentry;

typedef struct rentry {
    struct rentry *next;
    uint8_t hash[32];
    int64_t expires;
} rentry;

/* A key deleted recently, remembered so a credential naming it is told apart from one naming
 * a key that never existed (hash chain + a FIFO from the oldest). */
typedef struct dentry {
    struct dentry *next, *newer;
    char uid[STORE_ID_LEN + 1];
    int64_t at; /* deleted at (seconds) */
} dentry;

typedef struct table {
    void **b;
    size_t nb, n;
} table;

struct keycache {
    store *st;
    pthread_rwlock_t lock;
    uint64_t epoch; /* bumped by every forget: a concurrent load does not re-insert */
    bool complete;  /* keycache_preload ran: every key of the store is in `keys` */
    table keys, revs;
    table dead;                   /* dentry, by uid */
    dentry *oldest, *newest;      /* the FIFO of `dead` */
    keycache__secrets *secrets;   /* shared secrets by key (keycache_secret.c) */
    keycache__policies *policies; /* policies and budget trips by key (keycache_policy.c) */
};

uint64_t keycache__fnv(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static void table_init(table *t)
{
    t->nb = 64;
    t->n = 0;
    t->b = util_xcalloc(t->nb, sizeof *t->b);
}

/* Each entry type starts with its `next` pointer, so the chains can be walked generically. */
typedef struct node {
    struct node *next;
} node;

static void table_grow(table *t, uint64_t (*hash_of)(const node *))
{
    size_t nb = t->nb * 2;
    void **b = util_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < t->nb; i++) {
        node *e = t->b[i];
        while (e) {
            node *next = e->next;
            size_t j = hash_of(e) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static void table_insert(table *t, node *e, uint64_t h, uint64_t (*hash_of)(const node *))
{
    if (t->n + 1 > t->nb)
        table_grow(t, hash_of);
    size_t i = h & (t->nb - 1);
    e->next = t->b[i];
    t->b[i] = e;
    t->n++;
}

static void table_dispose(table *t, bool wipe, size_t size)
{
    for (size_t i = 0; i < t->nb; i++) {
        node *e = t->b[i];
        while (e) {
            node *next = e->next;
            if (wipe)
                OPENSSL_cleanse(e, size);
            free(e);
            e = next;
        }
    }
    free(t->b);
}

static uint64_t key_hash_of(const node *e)
{
    return keycache__fnv(((const kentry *)e)->uid, STORE_ID_LEN);
}

static uint64_t rev_hash_of(const node *e)
{
    return keycache__fnv(((const rentry *)e)->hash, 32);
}

static uint64_t dead_hash_of(const node *e)
{
    return keycache__fnv(((const dentry *)e)->uid, STORE_ID_LEN);
}

static dentry *find_dead(keycache *kc, const char *uid)
{
    for (dentry *e = kc->dead.b[keycache__fnv(uid, STORE_ID_LEN) & (kc->dead.nb - 1)]; e;
         e = e->next)
        if (memcmp(e->uid, uid, STORE_ID_LEN) == 0)
            return e;
    return NULL;
}

/* Drops the oldest remembered deletion. With the write lock held. */
static void dead_pop(keycache *kc)
{
    dentry *e = kc->oldest;
    dentry **pp = (dentry **)&kc->dead.b[keycache__fnv(e->uid, STORE_ID_LEN) & (kc->dead.nb - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    kc->oldest = e->newer;
    if (!kc->oldest)
        kc->newest = NULL;
    kc->dead.n--;
    free(e);
}

/* Remembers uid as deleted at now (the oldest goes past KEYCACHE_DEAD_MAX). Write lock held. */
static void dead_add(keycache *kc, const char *uid, int64_t now)
{
    if (find_dead(kc, uid))
        return;
    if (kc->dead.n >= KEYCACHE_DEAD_MAX)
        dead_pop(kc);
    dentry *e = util_xcalloc(1, sizeof *e);
    memcpy(e->uid, uid, STORE_ID_LEN);
    e->at = now;
    table_insert(&kc->dead, (node *)e, keycache__fnv(uid, STORE_ID_LEN), dead_hash_of);
    if (kc->newest)
        kc->newest->newer = e;
    else
        kc->oldest = e;
    kc->newest = e;
}

keycache *keycache_new(store *st)
{
    keycache *kc = util_xcalloc(1, sizeof *kc);
    kc->st = st;
    pthread_rwlock_init(&kc->lock, NULL);
    table_init(&kc->keys);
    table_init(&kc->revs);
    table_init(&kc->dead);
    kc->secrets = keycache__secrets_new();
    kc->policies = keycache__policies_new();
    return kc;
}

void keycache_free(keycache *kc)
{
    if (!kc)
        return;
    table_dispose(&kc->keys, true, sizeof(kentry));
    table_dispose(&kc->revs, false, 0);
    table_dispose(&kc->dead, false, 0);
    keycache__secrets_free(kc->secrets);
    keycache__policies_free(kc->policies);
    pthread_rwlock_destroy(&kc->lock);
    free(kc);
}

static kentry *find_key(keycache *kc, const char *uid)
{
    for (kentry *e = kc->keys.b[keycache__fnv(uid, STORE_ID_LEN) & (kc->keys.nb - 1)]; e;
         e = e->next)
        if (memcmp(e->uid, uid, STORE_ID_LEN) == 0)
            return e;
    return NULL;
}

static void fill(const kentry *e, uint8_t *secret, char *key_hash)
{
    if (secret)
        memcpy(secret, e->secret, STORE_SECRET_LEN);
    if (key_hash)
        memcpy(key_hash, e->key_hash, 65);
}

/* Inserts a key loaded from the store unless a forget happened since `epoch` was read or it
 * is there already. Fills secret/key_hash when non-NULL. */
static void insert_loaded(keycache *kc, store_key *k, uint64_t epoch, uint8_t *secret,
                          char *key_hash)
{
    kentry *n = util_xcalloc(1, sizeof *n);
    memcpy(n->uid, k->uid, sizeof n->uid);
    memcpy(n->key_hash, k->key_hash, sizeof n->key_hash);
    memcpy(n->secret, k->secret, STORE_SECRET_LEN);
    fill(n, secret, key_hash);
    pthread_rwlock_wrlock(&kc->lock);
    if (kc->epoch == epoch && !find_key(kc, n->uid)) {
        table_insert(&kc->keys, (node *)n, keycache__fnv(n->uid, STORE_ID_LEN), key_hash_of);
        n = NULL;
    }
    pthread_rwlock_unlock(&kc->lock);
    if (n) {
        OPENSSL_cleanse(n, sizeof *n);
        free(n);
    }
}

/* From memory only: 1 found, 0 not in memory, -1 deleted recently; *epoch = the epoch read
 * under the lock. */
static int get_cached(keycache *kc, const char *uid, uint8_t *secret, char *key_hash,
                      uint64_t *epoch)
{
    pthread_rwlock_rdlock(&kc->lock);
    kentry *e = find_key(kc, uid);
    if (e)
        fill(e, secret, key_hash);
    int rc = e ? 1 : kc->dead.n && find_dead(kc, uid) ? -1 : 0;
    *epoch = kc->epoch;
    pthread_rwlock_unlock(&kc->lock);
    return rc;
}

int keycache_get(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN], char key_hash[65])
{
    if (!util_is_lower_hex(uid, STORE_ID_LEN))
        return -1;
    uint64_t epoch;
    if (get_cached(kc, uid, secret, key_hash, &epoch) > 0)
        return 0;
    /* a key remembered as deleted is asked for again: a forget of a key still stored (the
     * feed's refresh) only reloads it, and the live entry then hides the deletion */
    store_key k;
    int rc = store_key_by_uid(kc->st, uid, &k);
    if (rc == STORE_NOT_FOUND)
        return -1;
    if (rc != STORE_OK)
        return -2;
    insert_loaded(kc, &k, epoch, secret, key_hash);
    store_key_clear(&k);
    return 0;
}

int keycache_peek(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN],
                  char key_hash[65])
{
    if (!util_is_lower_hex(uid, STORE_ID_LEN))
        return -1;
    uint64_t epoch;
    int c = get_cached(kc, uid, secret, key_hash, &epoch);
    if (c != 0)
        return c > 0 ? 0 : KEYCACHE_DELETED;
    pthread_rwlock_rdlock(&kc->lock);
    bool complete = kc->complete;
    pthread_rwlock_unlock(&kc->lock);
    return complete ? -1 : keycache_get(kc, uid, secret, key_hash);
}

int keycache_get_cached(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN])
{
    return keycache_peek(kc, uid, secret, NULL);
}

static int preload_account(keycache *kc, const char *account_id, uint64_t epoch)
{
    store_key *keys;
    size_t n;
    if (store_key_list(kc->st, account_id, &keys, &n) != STORE_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        insert_loaded(kc, &keys[i], epoch, NULL, NULL);
    store_key_array_free(keys, n);
    return 0;
}

int keycache_preload(keycache *kc)
{
    store_account *accts;
    size_t n;
    int rc = 0;
    pthread_rwlock_rdlock(&kc->lock);
    uint64_t epoch = kc->epoch;
    pthread_rwlock_unlock(&kc->lock);
    if (store_account_list(kc->st, &accts, &n) != STORE_OK)
        return -1;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = preload_account(kc, accts[i].id, epoch);
    store_account_array_free(accts, n);
    if (rc == 0) {
        pthread_rwlock_wrlock(&kc->lock);
        kc->complete = kc->epoch == epoch; /* a delete meanwhile skipped the rest: load again */
        rc = kc->complete ? 0 : -1;
        pthread_rwlock_unlock(&kc->lock);
    }
    return rc;
}

void keycache_forget(keycache *kc, const char *uid)
{
    keycache_forget_at(kc, uid, util_now());
}

void keycache_forget_at(keycache *kc, const char *uid, int64_t now)
{
    if (strlen(uid) != STORE_ID_LEN)
        return;
    pthread_rwlock_wrlock(&kc->lock);
    kc->epoch++;
    dead_add(kc, uid, now);
    kentry **pp = (kentry **)&kc->keys.b[keycache__fnv(uid, STORE_ID_LEN) & (kc->keys.nb - 1)];
    while (*pp) {
        if (memcmp((*pp)->uid, uid, STORE_ID_LEN) == 0) {
            kentry *e = *pp;
            *pp = e->next;
            kc->keys.n--;
            OPENSSL_cleanse(e, sizeof *e);
            free(e);
            break;
        }
        pp = &(*pp)->next;
    }
    pthread_rwlock_unlock(&kc->lock);
    keycache__secrets_drop(kc->secrets, uid);
    keycache__policies_drop(kc->policies, uid);
}

static rentry *find_rev(keycache *kc, const uint8_t h[32])
{
    for (rentry *e = kc->revs.b[keycache__fnv(h, 32) & (kc->revs.nb - 1)]; e; e = e->next)
        if (memcmp(e->hash, h, 32) == 0)
            return e;
    return NULL;
}

static void add_rev(keycache *kc, const uint8_t h[32], int64_t expires)
{
    pthread_rwlock_wrlock(&kc->lock);
    if (!find_rev(kc, h)) {
        rentry *e = util_xcalloc(1, sizeof *e);
        memcpy(e->hash, h, 32);
        e->expires = expires;
        table_insert(&kc->revs, (node *)e, keycache__fnv(h, 32), rev_hash_of);
    }
    pthread_rwlock_unlock(&kc->lock);
}

static void username_hash(const char *username, size_t len, uint8_t out[32])
{
    char hex[65];
    util_sha256_hex(username, len, hex);
    util_hex_decode(hex, 32, out);
}

void keycache_revoke(keycache *kc, const char *username, size_t len, int64_t expires)
{
    uint8_t h[32];
    username_hash(username, len, h);
    add_rev(kc, h, expires);
}

bool keycache_is_revoked(keycache *kc, const char *username, size_t len)
{
    uint8_t h[32];
    username_hash(username, len, h);
    pthread_rwlock_rdlock(&kc->lock);
    bool r = kc->revs.n > 0 && find_rev(kc, h) != NULL;
    pthread_rwlock_unlock(&kc->lock);
    return r;
}

static void load_one(void *arg, const char *hash_hex, int64_t expires)
{
    uint8_t h[32];
    if (strlen(hash_hex) == 64 && util_hex_decode(hash_hex, 32, h) == 0)
        add_rev(arg, h, expires);
}

int keycache_load_revocations(keycache *kc, int64_t now)
{
    return store_revoke_each(kc->st, now, load_one, kc) == STORE_OK ? 0 : -1;
}

size_t keycache_purge(keycache *kc, int64_t now)
{
    size_t purged = 0;
    pthread_rwlock_wrlock(&kc->lock);
    for (size_t i = 0; i < kc->revs.nb; i++) {
        rentry **pp = (rentry **)&kc->revs.b[i];
        while (*pp) {
            if ((*pp)->expires <= now) {
                rentry *e = *pp;
                *pp = e->next;
                free(e);
                kc->revs.n--;
                purged++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    while (kc->oldest && kc->oldest->at + KEYCACHE_DEAD_KEEP <= now)
        dead_pop(kc); /* no credential of it can still be valid */
    pthread_rwlock_unlock(&kc->lock);
    return purged;
}

static int lk_secret(void *ctx, const char *key_id, uint8_t secret[CRED_SECRET_LEN])
{
    return keycache_get(ctx, key_id, secret, NULL) == 0 ? 0 : -1;
}

/* The keys of `old` missing from `fresh` were deleted: remember them. Write lock held. */
static void note_gone(keycache *kc, const table *old, const table *fresh, int64_t now)
{
    for (size_t i = 0; i < old->nb; i++)
        for (kentry *e = old->b[i]; e; e = e->next) {
            kentry *f = fresh->b[keycache__fnv(e->uid, STORE_ID_LEN) & (fresh->nb - 1)];
            while (f && memcmp(f->uid, e->uid, STORE_ID_LEN) != 0)
                f = f->next;
            if (!f)
                dead_add(kc, e->uid, now);
        }
}

/* Inserts k or replaces the entry of its uid. */
static void put_key(keycache *kc, const store_key *k)
{
    pthread_rwlock_wrlock(&kc->lock);
    kentry *e = find_key(kc, k->uid);
    if (!e) {
        e = util_xcalloc(1, sizeof *e);
        memcpy(e->uid, k->uid, sizeof e->uid);
        table_insert(&kc->keys, (node *)e, keycache__fnv(k->uid, STORE_ID_LEN), key_hash_of);
    }
    memcpy(e->key_hash, k->key_hash, sizeof e->key_hash);
    memcpy(e->secret, k->secret, STORE_SECRET_LEN);
    pthread_rwlock_unlock(&kc->lock);
}

void keycache_add(keycache *kc, const store_key *k)
{
    put_key(kc, k);
}

int keycache_refresh(keycache *kc, const char *uid)
{
    store_key k;
    int rc = store_key_by_uid(kc->st, uid, &k);
    if (rc == STORE_NOT_FOUND) {
        keycache_forget(kc, uid);
        return -1;
    }
    if (rc != STORE_OK)
        return -2;
    put_key(kc, &k);
    store_key_clear(&k);
    return 0;
}

int keycache_load_all(keycache *kc, int64_t now)
{
    store_key *keys;
    size_t n;
    if (store_key_list_all(kc->st, &keys, &n) != STORE_OK)
        return -1;
    /* built aside, then swapped in: lookups meanwhile see the old set, never an empty one */
    table fresh;
    table_init(&fresh);
    for (size_t i = 0; i < n; i++) {
        kentry *e = util_xcalloc(1, sizeof *e);
        memcpy(e->uid, keys[i].uid, sizeof e->uid);
        memcpy(e->key_hash, keys[i].key_hash, sizeof e->key_hash);
        memcpy(e->secret, keys[i].secret, STORE_SECRET_LEN);
        table_insert(&fresh, (node *)e, keycache__fnv(e->uid, STORE_ID_LEN), key_hash_of);
    }
    store_key_array_free(keys, n);
    pthread_rwlock_wrlock(&kc->lock);
    kc->epoch++; /* keys gone from the store go from the cache too */
    note_gone(kc, &kc->keys, &fresh, now);
    table old = kc->keys;
    kc->keys = fresh;
    pthread_rwlock_unlock(&kc->lock);
    table_dispose(&old, true, sizeof(kentry));
    if (keycache_secrets_load(kc) != 0 || keycache_policies_load(kc, now) != 0)
        return -1;
    return keycache_load_revocations(kc, now);
}

void keycache_revoke_hash(keycache *kc, const char *hash_hex, int64_t expires)
{
    load_one(kc, hash_hex, expires);
}

void keycache_set_complete(keycache *kc, bool complete)
{
    pthread_rwlock_wrlock(&kc->lock);
    kc->complete = complete;
    pthread_rwlock_unlock(&kc->lock);
}

static bool lk_revoked(void *ctx, const char *key_id, const char *username, size_t len)
{
    (void)key_id;
    return keycache_is_revoked(ctx, username, len);
}

cred_lookup keycache_lookup(keycache *kc)
{
    return (cred_lookup){.key_secret = lk_secret, .is_revoked = lk_revoked, .ctx = kc};
}

static int lk_secret_cached(void *ctx, const char *key_id, uint8_t secret[CRED_SECRET_LEN])
{
    int rc = keycache_get_cached(ctx, key_id, secret);
    return rc == 0 ? 0 : rc == KEYCACHE_DELETED ? CRED_LOOKUP_DELETED : -1;
}

cred_lookup keycache_lookup_cached(keycache *kc)
{
    return (cred_lookup){.key_secret = lk_secret_cached, .is_revoked = lk_revoked, .ctx = kc};
}

keycache__policies *keycache__policies_of(keycache *kc)
{
    return kc->policies;
}

keycache__secrets *keycache__secrets_of(keycache *kc)
{
    return kc->secrets;
}

store *keycache__store(keycache *kc)
{
    return kc->st;
}
