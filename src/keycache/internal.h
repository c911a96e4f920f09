/* keycache internals shared by its files (not a public header). */
#ifndef TURNKEY_KEYCACHE_INTERNAL_H
#define TURNKEY_KEYCACHE_INTERNAL_H

#include "turnkey/keycache.h"

/* The shared secrets by key uid (keycache_secret.c), under their own rwlock. */
typedef struct keycache__secrets keycache__secrets;
keycache__secrets *keycache__secrets_new(void);
void keycache__secrets_free(keycache__secrets *t);
/* The key was deleted: its secrets go too. */
void keycache__secrets_drop(keycache__secrets *t, const char *key_uid);
/* The policies and budget trips by key uid (keycache_policy.c), under their own rwlock. */
typedef struct keycache__policies keycache__policies;
keycache__policies *keycache__policies_new(void);
void keycache__policies_free(keycache__policies *t);
void keycache__policies_drop(keycache__policies *t, const char *key_uid);
keycache__policies *keycache__policies_of(keycache *kc);

/* FNV-1a of n bytes: the hash of every table of the cache (keycache.c). */
uint64_t keycache__fnv(const void *p, size_t n);

/* keycache.c: the parts of a keycache the secrets need. */
keycache__secrets *keycache__secrets_of(keycache *kc);
store *keycache__store(keycache *kc);

#endif
