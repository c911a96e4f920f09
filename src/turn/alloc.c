/* turn/alloc.c: the allocation table — a hash map keyed by the canonical 5-tuple (client
 * messages) and one keyed by alloc_id (peer datagrams), per-username counts for the quota, a
 * list of all allocations, the allocations of each username and the usernames of each TURN
 * key (so a revocation or key deletion touches only what it ends, never every allocation) —
 * plus removal and the timer loop (a bounded number of expiries per tick).
 *
 * Hashes (one lookup per relayed packet in each table):
 *   by_tuple: client addresses are attacker-chosen, so SipHash-1-3 under the server's random
 *     key, over 2-4 words: proto + both families + both ports, the client IP (4 or 16 bytes),
 *     and conn_id for TCP/TLS. The listener IP is left out of the hash (there are only a few)
 *     but is compared, like every other field of the canonical tuple.
 *   by_id: ids are assigned by the server in sequence and never chosen by clients, so a
 *     multiplicative (Fibonacci) hash is enough. */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_id(uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32); /* the table uses the low bits */
}

static uint64_t hash_tuple(const turn_server *s, const turn__tkey *k)
{
    uint64_t w[4];
    size_t n = 0;
    w[n++] = (uint64_t)k->proto | (uint64_t)k->client.fam << 8 | (uint64_t)k->server.fam << 16 |
             (uint64_t)k->client.port << 24 | (uint64_t)k->server.port << 40;
    w[n++] = k->client.ip.w[0];
    if (k->client.fam == 6)
        w[n++] = k->client.ip.w[1];
    if (k->proto != TURN_PROTO_UDP)
        w[n++] = k->conn_id;
    return turn__siphash13_words(s->sip_k, w, n);
}

static bool tkey_eq(const turn__tkey *x, const turn__tkey *y)
{
    return turn__addr_eq(&x->client, &y->client) && turn__addr_eq(&x->server, &y->server) &&
           x->conn_id == y->conn_id && x->proto == y->proto;
}

turn__alloc *turn__alloc_find_tuple(const turn_server *s, const turn_5tuple *t)
{
    turn__tkey k;
    turn__tkey_load(t, &k);
    uint64_t h = hash_tuple(s, &k);
    for (turn__hnode *n = turn__hmap_chain(&s->by_tuple, h); n; n = n->next) {
        turn__alloc *a = TURN__CONTAINER_OF(n, turn__alloc, by_tuple);
        if (n->hash == h && tkey_eq(&a->tk, &k))
            return a;
    }
    return NULL;
}

turn__alloc *turn__alloc_find_id(const turn_server *s, uint64_t id)
{
    uint64_t h = hash_id(id);
    for (turn__hnode *n = turn__hmap_chain(&s->by_id, h); n; n = n->next) {
        turn__alloc *a = TURN__CONTAINER_OF(n, turn__alloc, by_id);
        if (n->hash == h && a->id == id)
            return a;
    }
    return NULL;
}

turn__user *turn__user_get(turn_server *s, const uint8_t *name, size_t len, bool create)
{
    uint64_t h = turn__siphash(s->hash_key, name, len);
    for (turn__hnode *n = turn__hmap_chain(&s->users, h); n; n = n->next) {
        turn__user *u = TURN__CONTAINER_OF(n, turn__user, node);
        if (n->hash == h && u->len == len && memcmp(u->name, name, len) == 0)
            return u;
    }
    if (!create)
        return NULL;
    turn__user *u = util_xcalloc(1, sizeof *u + len);
    u->len = len;
    memcpy(u->name, name, len);
    turn__hmap_insert(&s->users, &u->node, h);
    char hex[65]; /* once per username with live allocations, never per packet */
    util_sha256_hex(name, len, hex);
    util_hex_decode(hex, sizeof u->sha, u->sha);
    turn__hmap_insert(&s->users_by_sha, &u->by_sha, turn__siphash(s->hash_key, u->sha, 32));
    return u;
}

static turn__keyrec *key_get(turn_server *s, const char *id, bool create)
{
    size_t len = strnlen(id, sizeof((turn__keyrec *)0)->id - 1);
    uint64_t h = turn__siphash(s->hash_key, id, len);
    for (turn__hnode *n = turn__hmap_chain(&s->keys, h); n; n = n->next) {
        turn__keyrec *k = TURN__CONTAINER_OF(n, turn__keyrec, node);
        if (n->hash == h && strncmp(k->id, id, sizeof k->id) == 0)
            return k;
    }
    if (!create)
        return NULL;
    turn__keyrec *k = util_xcalloc(1, sizeof *k);
    memcpy(k->id, id, len);
    turn__hmap_insert(&s->keys, &k->node, h);
    return k;
}

static void user_link_key(turn_server *s, turn__user *u, const char *key_id)
{
    if (u->key || !key_id || !key_id[0])
        return;
    turn__keyrec *k = key_get(s, key_id, true);
    u->key = k;
    u->k_next = k->users;
    if (k->users)
        k->users->k_prev = u;
    k->users = u;
}

static void user_free(turn_server *s, turn__user *u)
{
    turn__keyrec *k = u->key;
    if (k) {
        if (u->k_prev)
            u->k_prev->k_next = u->k_next;
        else
            k->users = u->k_next;
        if (u->k_next)
            u->k_next->k_prev = u->k_prev;
        if (!k->users) {
            turn__hmap_remove(&s->keys, &k->node);
            free(k);
        }
    }
    turn__hmap_remove(&s->users, &u->node);
    turn__hmap_remove(&s->users_by_sha, &u->by_sha);
    free(u);
}

bool turn__same_user(const turn__alloc *a, const uint8_t *user, size_t len)
{
    return a->user->len == len && memcmp(a->user->name, user, len) == 0;
}

turn__alloc *turn__alloc_insert(turn_server *s, const turn_5tuple *t, turn__user *u,
                                const char *key_id)
{
    turn__alloc *a = util_xcalloc(1, sizeof *a);
    a->id = s->next_id++;
    a->tuple = *t;
    turn__tkey_load(t, &a->tk);
    a->user = u;
    u->count++;
    user_link_key(s, u, key_id);
    a->u_next = u->allocs;
    if (u->allocs)
        u->allocs->u_prev = a;
    u->allocs = a;
    a->timer.kind = TURN__T_ALLOC;
    turn__hmap_insert(&s->by_tuple, &a->by_tuple, hash_tuple(s, &a->tk));
    turn__hmap_insert(&s->by_id, &a->by_id, hash_id(a->id));
    a->next = s->allocs;
    if (s->allocs)
        s->allocs->prev = a;
    s->allocs = a;
    return a;
}

void turn__alloc_remove(turn_server *s, turn__alloc *a, bool relay_opened)
{
    turn__tcp_alloc_gone(s, a);
    while (a->perms)
        turn__perm_remove(s, a->perms);
    while (a->chans)
        turn__chan_remove(s, a->chans);
    timer_cancel(&s->timers, &a->timer.e);
    turn__hmap_remove(&s->by_tuple, &a->by_tuple);
    turn__hmap_remove(&s->by_id, &a->by_id);
    if (a->prev)
        a->prev->next = a->next;
    else
        s->allocs = a->next;
    if (a->next)
        a->next->prev = a->prev;
    if (a->u_prev)
        a->u_prev->u_next = a->u_next;
    else
        a->user->allocs = a->u_next;
    if (a->u_next)
        a->u_next->u_prev = a->u_prev;
    if (relay_opened && (a->open & TURN__OPEN_FIRST))
        s->ops.relay_close(s->ops.ctx, a->id);
    if (relay_opened && (a->open & TURN__OPEN_SECOND))
        s->ops.relay_close(s->ops.ctx, a->id | TURN_RELAY_ID_DUAL);
    if (s->ops.quota_release)
        s->ops.quota_release(s->ops.ctx, a->user->name, a->user->len);
    if (--a->user->count == 0)
        user_free(s, a->user);
    explicit_bzero(a->key, sizeof a->key);
    free(a->resp);
    free(a);
}

void turn__alloc_schedule(turn_server *s, turn__alloc *a, int64_t expires_ms)
{
    a->expires_ms = expires_ms;
    timer_schedule(&s->timers, &a->timer.e, expires_ms);
}

void turn_server_conn_closed(turn_server *s, const turn_5tuple *t, int64_t now_ms)
{
    (void)now_ms;
    if (!s || !t)
        return;
    s->now_ms = now_ms;
    turn__alloc *a = turn__alloc_find_tuple(s, t);
    if (a)
        turn__alloc_end(s, a, TURN_END_CONN_CLOSED);
}

int64_t turn_server_next_deadline(const turn_server *s)
{
    return s ? timer_peek_deadline(&s->timers) : INT64_MAX;
}

void turn_server_tick(turn_server *s, int64_t now_ms)
{
    if (!s)
        return;
    /* A bounded number per call: a flood of expiries at one instant never stalls the loop
     * (the deadline stays in the past, so the caller's timer fires again at once). */
    s->now_ms = now_ms;
    size_t budget = TURN__TICK_BUDGET;
    for (timer_entry *e; budget-- > 0 && (e = timer_pop_expired(&s->timers, now_ms)) != NULL;) {
        turn__timer *t = TURN__CONTAINER_OF(e, turn__timer, e);
        switch (t->kind) {
        case TURN__T_ALLOC:
            turn__alloc_end(s, TURN__CONTAINER_OF(t, turn__alloc, timer), TURN_END_EXPIRED);
            break;
        case TURN__T_PERM: turn__perm_remove(s, TURN__CONTAINER_OF(t, turn__perm, timer)); break;
        case TURN__T_CHAN:
            turn__chan_expired(s, TURN__CONTAINER_OF(t, turn__chan, timer), now_ms);
            break;
        case TURN__T_TCP:
            turn__tcp_expired(s, TURN__CONTAINER_OF(t, turn__tcp, timer), now_ms);
            break;
        default: break;
        }
    }
}

/* Ends every allocation of u (reported with reason); u (and maybe its key record) is freed
 * with the last one. */
static size_t user_end_all(turn_server *s, turn__user *u, int reason)
{
    size_t n = u->count;
    while (u->count > 1)
        turn__alloc_end(s, u->allocs, reason);
    turn__alloc_end(s, u->allocs, reason); /* frees u */
    return n;
}

/* Lifecycle events visit only what they end: the key's usernames, the username's
 * allocations (indexes kept on Allocate and removal, O(1) each). The key id of a username
 * never changes (it is part of the credential), so the key index is set once per user. */
/* Ends every allocation of the key (k may be NULL); k is freed with its last user. */
static size_t key_end_all(turn_server *s, turn__keyrec *k, int reason)
{
    size_t n = 0;
    while (k) {
        turn__user *u = k->users;
        bool last = u->k_next == NULL; /* then k is freed with u */
        n += user_end_all(s, u, reason);
        if (last)
            break;
    }
    return n;
}

size_t turn_server_key_deleted(turn_server *s, const char *key_id, int64_t now_ms)
{
    if (!s || !key_id || !key_id[0])
        return 0;
    s->now_ms = now_ms;
    return key_end_all(s, key_get(s, key_id, false), TURN_END_KEY_DELETED);
}

size_t turn_server_credential_revoked(turn_server *s, const uint8_t *username, size_t len,
                                      int64_t now_ms)
{
    if (!s || !username)
        return 0;
    s->now_ms = now_ms;
    turn__user *u = turn__user_get(s, username, len, false);
    return u ? user_end_all(s, u, TURN_END_REVOKED) : 0;
}

size_t turn_server_credential_revoked_hash(turn_server *s, const char *username_sha256_hex,
                                           int64_t now_ms)
{
    uint8_t sha[32];
    if (!s || !username_sha256_hex || strlen(username_sha256_hex) != 64 ||
        util_hex_decode(username_sha256_hex, sizeof sha, sha) != 0)
        return 0;
    s->now_ms = now_ms;
    uint64_t h = turn__siphash(s->hash_key, sha, sizeof sha);
    for (turn__hnode *n = turn__hmap_chain(&s->users_by_sha, h); n; n = n->next) {
        turn__user *u = TURN__CONTAINER_OF(n, turn__user, by_sha);
        if (n->hash == h && memcmp(u->sha, sha, sizeof sha) == 0)
            return user_end_all(s, u, TURN_END_REVOKED); /* only that username's allocations */
    }
    return 0;
}

size_t turn_server_secret_deleted(turn_server *s, const char *secret_id, int64_t now_ms)
{
    size_t n = 0;
    if (!s || !secret_id || !secret_id[0])
        return 0;
    s->now_ms = now_ms;
    for (turn__alloc *a = s->allocs, *next; a; a = next) {
        next = a->next;
        if (strcmp(a->info.secret_id, secret_id) == 0) {
            turn__alloc_end(s, a, TURN_END_REVOKED);
            n++;
        }
    }
    return n;
}

/* Ends u's allocations whose custom_id is cid; u may be freed (with its last one). */
static size_t user_end_cid(turn_server *s, turn__user *u, const char *cid, int reason)
{
    size_t n = 0;
    for (turn__alloc *a = u->allocs, *next; a; a = next) {
        next = a->u_next; /* NULL when a is u's last: u goes with it */
        if (strcmp(a->info.custom_id, cid) == 0) {
            turn__alloc_end(s, a, reason);
            n++;
        }
    }
    return n;
}

size_t turn_server_budget_tripped(turn_server *s, const char *key_id, const char *custom_id,
                                  int64_t now_ms)
{
    if (!s || !key_id || !key_id[0])
        return 0;
    s->now_ms = now_ms;
    turn__keyrec *k = key_get(s, key_id, false);
    if (!k)
        return 0;
    if (!custom_id || !custom_id[0])
        return key_end_all(s, k, TURN_END_BUDGET);
    size_t n = 0;
    /* k is freed only with its last user, and then next is NULL */
    for (turn__user *u = k->users, *next; u; u = next) {
        next = u->k_next;
        n += user_end_cid(s, u, custom_id, TURN_END_BUDGET);
    }
    return n;
}
