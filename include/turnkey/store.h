/* store: the persistent state behind the control and credential planes — accounts, API
 * tokens, TURN keys, credential revocations. One interface (an ops table with a context
 * pointer) so a PostgreSQL backend can replace SQLite without touching any caller.
 *
 * All functions are thread-safe. Every write is one transaction: it happens completely or
 * not at all, and is durable when the call returns STORE_OK. Secrets (TURN key bearer
 * `key`, API tokens) are stored only as SHA-256 hashes; each TURN key's credential secret
 * is stored as is (a relay needs it to verify credentials). */
#ifndef TURNKEY_STORE_H
#define TURNKEY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND = -1,
    STORE_LIMIT = -2, /* per-account key limit reached */
    STORE_ERROR = -3, /* real fault (I/O, corruption): callers answer 5xx */
};

#define STORE_ID_LEN 32     /* account id, key uid, token id: 32 lowercase hex */
#define STORE_SECRET_LEN 32 /* per-key credential secret */

enum store_perm { STORE_PERM_READ = 1, STORE_PERM_WRITE = 2 };

typedef struct store_account {
    char id[STORE_ID_LEN + 1];
    char *name;
    int64_t created;
} store_account;

typedef struct store_token {
    char id[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    char *name;
    unsigned perms; /* STORE_PERM_* bits */
    int64_t created;
    int64_t expires; /* 0 = never */
    int64_t revoked; /* 0 = active */
} store_token;

typedef struct store_key {
    char uid[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    char *name;
    int64_t created;                  /* milliseconds since the epoch */
    int64_t modified;                 /* milliseconds; a rename always moves it forward */
    char key_hash[65];                /* SHA-256 hex of the bearer key */
    uint8_t secret[STORE_SECRET_LEN]; /* credential secret (never leaves the server) */
} store_key;

typedef struct store store;

typedef struct store_ops {
    void (*close)(void *ctx);
    int (*account_create)(void *ctx, const store_account *a);
    int (*account_get)(void *ctx, const char *id, store_account *out);
    int (*account_list)(void *ctx, store_account **out, size_t *n);
    int (*token_create)(void *ctx, const store_token *t, const char *token_hash);
    int (*token_by_hash)(void *ctx, const char *token_hash, store_token *out);
    int (*token_list)(void *ctx, const char *account_id, store_token **out, size_t *n);
    int (*token_revoke)(void *ctx, const char *id, int64_t now);
    /* Inserts k unless the account already has max_keys keys (STORE_LIMIT), atomically. */
    int (*key_create)(void *ctx, const store_key *k, size_t max_keys);
    int (*key_get)(void *ctx, const char *account_id, const char *uid, store_key *out);
    int (*key_by_uid)(void *ctx, const char *uid, store_key *out);
    int (*key_list)(void *ctx, const char *account_id, store_key **out, size_t *n);
    int (*key_rename)(void *ctx, const char *account_id, const char *uid, const char *name,
                      int64_t now, store_key *out);
    /* Deletes the key and its revocations; *out receives the deleted record. */
    int (*key_delete)(void *ctx, const char *account_id, const char *uid, store_key *out);
    /* Revocation of one credential (identified by key uid + username) until `expires`. */
    int (*revoke_add)(void *ctx, const char *key_uid, const char *username, int64_t expires);
    int (*revoke_check)(void *ctx, const char *key_uid, const char *username, bool *revoked);
    int (*revoke_purge)(void *ctx, int64_t now, size_t *purged);
    /* Calls fn for every stored revocation (username_hash = SHA-256 hex of the username). */
    int (*revoke_each)(void *ctx, int64_t now,
                       void (*fn)(void *arg, const char *username_hash, int64_t expires),
                       void *arg);
} store_ops;

struct store {
    const store_ops *ops;
    void *ctx;
};

/* Opens the store at `where`: a data directory (SQLite file <dir>/turnkey.db, created with
 * its directory if absent; migrations applied) or ":memory:" for tests. On failure returns
 * NULL and sets *err to a static or allocated message (free with store_free_err). */
store *store_open(const char *where, char **err);
/* True if `where` already holds a store (store_open would open, not create, it). */
bool store_exists(const char *where);
void store_close(store *s);
void store_free_err(char *err);

/* Thin dispatchers (callers never touch ops directly). */
int store_account_create(store *s, const char *name, int64_t now, store_account *out);
int store_account_get(store *s, const char *id, store_account *out);
int store_account_list(store *s, store_account **out, size_t *n);
/* Creates a token with a fresh random secret; writes the plaintext token (shown once) to
 * token_out (STORE_TOKEN_LEN + 1 bytes). */
#define STORE_TOKEN_LEN 40
int store_token_create(store *s, const char *account_id, const char *name, unsigned perms,
                       int64_t expires, int64_t now, store_token *out,
                       char token_out[STORE_TOKEN_LEN + 1]);
int store_token_by_secret(store *s, const char *token, size_t len, store_token *out);
int store_token_list(store *s, const char *account_id, store_token **out, size_t *n);
int store_token_revoke(store *s, const char *id, int64_t now);
/* Creates a key: fresh uid, bearer key (returned once in key_out, 64 hex + NUL) and secret. */
int store_key_create(store *s, const char *account_id, const char *name, size_t max_keys,
                     int64_t now, store_key *out, char key_out[65]);
int store_key_get(store *s, const char *account_id, const char *uid, store_key *out);
int store_key_by_uid(store *s, const char *uid, store_key *out);
int store_key_list(store *s, const char *account_id, store_key **out, size_t *n);
int store_key_rename(store *s, const char *account_id, const char *uid, const char *name,
                     int64_t now, store_key *out);
int store_key_delete(store *s, const char *account_id, const char *uid, store_key *out);
int store_revoke_add(store *s, const char *key_uid, const char *username, int64_t expires);
int store_revoke_check(store *s, const char *key_uid, const char *username, bool *revoked);
int store_revoke_purge(store *s, int64_t now, size_t *purged);
/* Visits every revocation not yet expired at `now`. */
int store_revoke_each(store *s, int64_t now,
                      void (*fn)(void *arg, const char *username_hash, int64_t expires), void *arg);

/* Release the heap parts of records and arrays returned above. */
void store_account_clear(store_account *a);
void store_token_clear(store_token *t);
void store_key_clear(store_key *k);
void store_account_array_free(store_account *a, size_t n);
void store_token_array_free(store_token *t, size_t n);
void store_key_array_free(store_key *k, size_t n);

/* Parses "calls:read,calls:write" into STORE_PERM_* bits; 0 if malformed or empty. */
unsigned store_perms_parse(const char *s);
/* Formats bits as "calls:read,calls:write" into out (>= 32 bytes). */
void store_perms_format(unsigned perms, char *out, size_t cap);

/* The SQLite backend (used by store_open). */
const store_ops *store__sqlite_ops(void);
void *store__sqlite_open(const char *where, char **err);
bool store__sqlite_exists(const char *where);

#endif
