/* keycache: the in-memory view of TURN keys and credential revocations that the hot paths
 * read — credential minting (key hash + secret per request) and the relay's credential
 * checks — so neither queries the store per request. Thread-safe (rwlock).
 *
 * Keys are loaded from the store on first use and forgotten when deleted; a load that races
 * with a delete never re-inserts the deleted key (an epoch check). Revocations are loaded
 * once at start and then follow keycache_revoke; they are kept until the credential's
 * expiry (keycache_purge).
 *
 * The relay threads must never wait on the store: after keycache_preload (every key of the
 * store, once at start) the cache holds every key there is, since keys are created by this
 * process's API (a credential can only be minted through keycache_get, which loads a key
 * created since) or by another node, whose changes the feed (src/feed) applies here. keycache_get_cached / keycache_lookup_cached then answer from memory
 * alone: an unknown key id (an attacker's Allocate naming random ids) costs a hash lookup,
 * never a store query.
 *
 * A deleted key's uid is remembered (KEYCACHE_DELETED) until no credential of it can still
 * be valid (KEYCACHE_DEAD_KEEP seconds, the longest credential lifetime; dropped by
 * keycache_purge) and at most KEYCACHE_DEAD_MAX of them (the oldest goes first), so the
 * relay can report "key deleted" rather than "unknown key". */
#ifndef TURNKEY_KEYCACHE_H
#define TURNKEY_KEYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "turnkey/cred.h"
#include "turnkey/policy.h"
#include "turnkey/store.h"

typedef struct keycache keycache;

#define KEYCACHE_DELETED (-3)     /* keycache_get_cached: a key deleted recently */
#define KEYCACHE_DEAD_KEEP 172800 /* seconds a deletion is remembered (API_TTL_MAX) */
#define KEYCACHE_DEAD_MAX 65536   /* deletions remembered at most */

keycache *keycache_new(store *st);
void keycache_free(keycache *kc);

/* Loads the store's current revocations; 0 ok, -1 store error. */
int keycache_load_revocations(keycache *kc, int64_t now);

/* Looks up a key by uid: 0 found (secret and/or key_hash filled when non-NULL), -1 unknown
 * or deleted, -2 store error. */
int keycache_get(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN],
                 char key_hash[65]);
/* Loads every key of the store; 0 ok (the cache is complete from now on), -1 store error or
 * a delete raced with the load (the cache then stays incomplete: call it again). */
int keycache_preload(keycache *kc);
/* Like keycache_get (secret only) from memory alone once the cache is complete: -1 for a key
 * not in memory, KEYCACHE_DELETED for one deleted recently. Before keycache_preload
 * succeeded it falls back to keycache_get for keys it never saw deleted. */
int keycache_get_cached(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN]);
/* keycache_get_cached that fills key_hash too (NULL: not wanted): the API's mint and revoke
 * authentication, so an unknown key id costs what a wrong bearer costs (no store query once
 * the cache is complete). */
int keycache_peek(keycache *kc, const char *uid, uint8_t secret[STORE_SECRET_LEN],
                  char key_hash[65]);
/* A key this process just created (the store committed it): cached at once, so it mints
 * before the change feed brings it. */
void keycache_add(keycache *kc, const store_key *k);
/* The key was deleted: forget it now (and remember it was deleted, at util_now()). */
void keycache_forget(keycache *kc, const char *uid);
/* The same, deleted at now (seconds, the clock keycache_purge is given). */
void keycache_forget_at(keycache *kc, const char *uid, int64_t now);

/* Credential revocations, by exact username. */
void keycache_revoke(keycache *kc, const char *username, size_t len, int64_t expires);
bool keycache_is_revoked(keycache *kc, const char *username, size_t len);
/* Drops revocations whose credential expired at or before now, and deletions remembered
 * for KEYCACHE_DEAD_KEEP seconds; returns how many revocations. */
size_t keycache_purge(keycache *kc, int64_t now);

/* Following the store's change feed (src/feed): */
/* Reads one key again (created or renamed elsewhere): 0 cached, -1 gone (forgotten), -2
 * store error. */
int keycache_refresh(keycache *kc, const char *uid);
/* Replaces every cached key with the store's keys and loads the live revocations; 0 / -1. */
int keycache_load_all(keycache *kc, int64_t now);
/* A revocation by SHA-256 hex of the username (as the change log carries it). */
void keycache_revoke_hash(keycache *kc, const char *hash_hex, int64_t expires);
/* complete: the cache holds every key and follows the feed, so the relay's lookups
 * (keycache_lookup) never query the store: a key not here is unknown. */
void keycache_set_complete(keycache *kc, bool complete);

/* Shared secrets (issue 15), by key: what the relay's coturn-scheme check reads. */
typedef struct keycache_secret {
    char id[STORE_ID_LEN + 1];
    char key_uid[STORE_ID_LEN + 1];
    char secret[STORE_SHARED_SECRET_TEXT + 1];
    int alg;         /* enum store_secret_alg */
    int64_t max_ttl; /* seconds */
} keycache_secret;
/* Copies up to max of the key's secrets into out from memory alone; returns how many. */
size_t keycache_secrets(keycache *kc, const char *key_uid, keycache_secret *out, size_t max);
/* Reads the key's secrets from the store again (a change of this node or the feed): 0, -1. */
int keycache_secrets_refresh(keycache *kc, const char *key_uid);
/* Replaces every cached secret with the store's (keycache_load_all calls it): 0, -1. */
int keycache_secrets_load(keycache *kc);

/* Key policies and budget trips (issue 14 §4), by key: what the API's mint and the relay's
 * Allocate read, from memory alone (keycache_policy.c). */
typedef struct keycache_policy {
    bool has_policy; /* the key has one (else p is policy_init's) */
    policy p;
    int tripped; /* 0, or the strongest action of a live trip covering (key, customIdentifier):
                    POLICY_STOP_MINTING (mints refused) or POLICY_END_ALLOCATIONS (mints and
                    Allocates refused); a trip of the key's own budget covers every cid */
    int64_t tripped_until; /* unix seconds: the end of the tripped budget's period */
} keycache_policy;
/* Fills out for key uid and custom_id (NULL or "" = none) at now (unix seconds); a key
 * without a policy or not cached gets has_policy false and tripped 0. */
void keycache_policy_view(keycache *kc, const char *uid, const char *custom_id, int64_t now,
                          keycache_policy *out);
/* Reads the key's policy and live trips from the store again: 0, -1 store error. */
int keycache_policy_refresh(keycache *kc, const char *key_uid, int64_t now);
/* Replaces every policy and trip with the store's (keycache_load_all calls it): 0, -1. */
int keycache_policies_load(keycache *kc, int64_t now);
/* The keys whose policy has a byte budget (the spend guard's work list): up to max of them
 * copied into out; returns how many there are in all. */
typedef struct keycache_budget_key {
    char uid[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    policy p;
} keycache_budget_key;
size_t keycache_budget_keys(keycache *kc, keycache_budget_key *out, size_t max);

/* A cred_lookup backed by this cache (for cred_verify). */
cred_lookup keycache_lookup(keycache *kc);
/* The same through keycache_get_cached: what the relay threads use. */
cred_lookup keycache_lookup_cached(keycache *kc);

#endif
