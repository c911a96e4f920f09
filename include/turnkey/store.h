/* store: the persistent state behind the control and credential planes — accounts, API
 * tokens, TURN keys, credential revocations. One interface (an ops table with a context
 * pointer); the backend is picked by the location: a data directory or `sqlite:PATH`
 * (embedded SQLite) or `postgres://…` / `postgresql://…` (libpq). Every rule that is not
 * storage (ids, secrets, hashing, timestamps, the key limit, validation) lives in store.c,
 * above the ops table, so both backends behave identically.
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
    STORE_LIMIT = -2,    /* a limit reached: keys per account, revocations per key */
    STORE_ERROR = -3,    /* real fault (I/O, corruption): callers answer 5xx */
    STORE_INVALID = -4,  /* bad input, nothing written (shared secrets: alg, max_ttl) */
    STORE_CONFLICT = -5, /* a conditional write found other data than expected (policies) */
};

#define STORE_ID_LEN 32         /* account id, key uid, token id: 32 lowercase hex */
#define STORE_SECRET_LEN 32     /* per-key credential secret */
#define STORE_NO_LIMIT SIZE_MAX /* a cap that never binds (store copy) */

/* calls:read, calls:write; audit:read reads the audit log only (issue 12); analytics:read
 * reads usage only (issue 14, Cloudflare's "Account Analytics Read"). */
enum store_perm {
    STORE_PERM_READ = 1,
    STORE_PERM_WRITE = 2,
    STORE_PERM_AUDIT_READ = 4,
    STORE_PERM_ANALYTICS_READ = 8,
};

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
    int64_t expires;     /* 0 = never */
    int64_t revoked;     /* 0 = active */
    char token_hash[65]; /* SHA-256 hex of the bearer token (filled by reads) */
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

/* One audit-log record: a control-plane change (Cloudflare's audit-log shape). Strings are
 * NUL-terminated; old_value/new_value/metadata are JSON texts or NULL and never hold a
 * secret (no bearer key, token, credential secret or password). */
#define STORE_AUDIT_TEXT 64
typedef struct store_audit {
    char id[STORE_ID_LEN + 1]; /* random, set by store_audit_add */
    char account_id[STORE_ID_LEN + 1];
    int64_t when;                           /* milliseconds since the epoch */
    char action[STORE_AUDIT_TEXT];          /* "create", "update", "delete", "revoke" */
    bool result;                            /* the change happened */
    char actor_type[16];                    /* "user" (an API token) or "admin" (the CLI) */
    char actor_id[STORE_AUDIT_TEXT];        /* token id, or "cli" */
    char actor_ip[STORE_AUDIT_TEXT];        /* source address; "" for the CLI */
    char interface[8];                      /* "API" or "CLI" */
    char resource_type[STORE_AUDIT_TEXT];   /* "turn_key", "turn_credential", "account", "token" */
    char resource_id[256];                  /* key uid, credential username, ... */
    char *old_value, *new_value, *metadata; /* JSON or NULL */
} store_audit;

/* A query of the audit log: account_id required; other fields 0/NULL = no filter. */
typedef struct store_audit_query {
    const char *account_id;
    int64_t since, before; /* when >= since, when < before (ms) */
    const char *action, *resource_id, *id;
    bool ascending;       /* oldest first (default newest first) */
    size_t offset, limit; /* limit 0 = none */
} store_audit_query;

/* The change log: every change the nodes' caches must follow, numbered by a revision that
 * only grows, written in the transaction of the change itself. */
enum store_change_kind {
    STORE_CHANGE_KEY_CREATED = 1,
    STORE_CHANGE_KEY_RENAMED = 2,
    STORE_CHANGE_KEY_DELETED = 3,
    STORE_CHANGE_REVOKED = 4, /* username_hash + expires set */
    /* shared secrets (issue 15): username_hash carries the secret id */
    STORE_CHANGE_SECRET_ADDED = 5,
    STORE_CHANGE_SECRET_DELETED = 6,
    /* key policies (issue 14 §4) */
    STORE_CHANGE_POLICY = 7,         /* the key's policy was set or cleared (its trips too) */
    STORE_CHANGE_BUDGET_TRIPPED = 8, /* username_hash: the customIdentifier ("" the key's own
                                        budget), expires: the end of the budget's period */
};

typedef struct store_change {
    int64_t rev;
    int kind; /* enum store_change_kind */
    char key_uid[STORE_ID_LEN + 1];
    char username_hash[65]; /* "" unless STORE_CHANGE_REVOKED */
    int64_t expires;
} store_change;

/* Where the log stands: revisions in (oldest - 1, latest] are all still there. */
typedef struct store_feed {
    int64_t oldest, latest; /* 0, 0: the log is empty */
} store_feed;

/* Usage accounting (issue 14). One delta adds to the row of (minute, key, customIdentifier,
 * username, node); rows of several nodes add up in queries. Minute rows older than the
 * retention are rolled up into hour rows (minute = the hour's first second). */
#define STORE_USAGE_NODE_LEN 64
typedef struct store_usage_delta {
    int64_t minute; /* unix seconds, a multiple of 60 */
    char account_id[STORE_ID_LEN + 1];
    char key_uid[STORE_ID_LEN + 1];
    char custom_id[65];
    char username[256];
    char node[STORE_USAGE_NODE_LEN];
    uint64_t egress_bytes;  /* to the client, TURN framing included (Cloudflare's billing) */
    uint64_t ingress_bytes; /* from the client, TURN framing included */
    uint64_t alloc_ms;      /* allocation-milliseconds inside the minute */
    uint64_t peak_allocs;   /* peak concurrent allocations in the minute (merged by max) */
} store_usage_delta;

/* What a usage query groups by (bits); the time bucket is always a dimension. */
enum store_usage_group {
    STORE_USAGE_BY_KEY = 1,
    STORE_USAGE_BY_CUSTOM_ID = 2,
    STORE_USAGE_BY_USERNAME = 4,
    STORE_USAGE_BY_NODE = 8,
};

/* A usage query: account_id required; NULL filters match everything. */
typedef struct store_usage_filter {
    const char *account_id;
    const char *key_uid, *custom_id, *username;
    int64_t since, until; /* minute >= since, minute < until (unix seconds) */
    int64_t step;         /* bucket width in seconds (60, 300, 900, 3600, 86400); 0 = one bucket */
    unsigned group_by;    /* STORE_USAGE_BY_* */
    size_t offset, limit; /* over the result rows, ordered by (bucket, key, custom_id, username,
                             node); limit 0 = none */
} store_usage_filter;

/* One result row: sums over the bucket (peak_allocs: the sum over nodes of each node's peak,
 * the largest over the bucket's minutes). Fields not grouped by are "". */
typedef struct store_usage_row {
    int64_t bucket; /* start of the bucket (unix seconds; since when step is 0) */
    char key_uid[STORE_ID_LEN + 1];
    char custom_id[65];
    char username[256];
    char node[STORE_USAGE_NODE_LEN];
    uint64_t egress_bytes, ingress_bytes, alloc_ms, peak_allocs;
} store_usage_row;

/* Shared secrets (issue 15): coturn's use-auth-secret credentials bound to a TURN key
 * (username "expiry[:user]", password base64(HMAC(secret, username))). The secret is stored
 * as is: the relay verifies offline, like the key's credential secret. */
#define STORE_SHARED_SECRET_MAX 5      /* secrets per key */
#define STORE_SHARED_SECRET_TEXT 64    /* the secret: 64 lowercase hex (32 random bytes) */
#define STORE_SHARED_TTL_DEFAULT 86400 /* max lifetime of expiry (s): Nextcloud mints +24 h */
#define STORE_SHARED_TTL_MIN 60
#define STORE_SHARED_TTL_MAX (30 * 86400)
enum store_secret_alg { STORE_SECRET_SHA1 = 1, STORE_SECRET_SHA256 = 2 };

typedef struct store_shared_secret {
    char id[STORE_ID_LEN + 1];
    char key_uid[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    char secret[STORE_SHARED_SECRET_TEXT + 1]; /* the HMAC key is this text, as apps use it */
    int alg;                                   /* enum store_secret_alg */
    int64_t max_ttl; /* an expiry further than now + max_ttl is refused (seconds) */
    int64_t created; /* milliseconds */
} store_shared_secret;
/* Webhooks (issue 14): one webhook per account (URL, event filter, signing secret) and a
 * durable queue of events, each deleted only once its delivery got a 2xx. */
enum store_webhook_kind {
    STORE_WEBHOOK_ALLOCATION_ENDED = 1,
    STORE_WEBHOOK_BUDGET_THRESHOLD = 2,
    STORE_WEBHOOK_BUDGET_EXCEEDED = 4,
};
#define STORE_WEBHOOK_ALL 7u
#define STORE_WEBHOOK_SECRET_LEN 64 /* lowercase hex; the HMAC key is these 64 ASCII bytes */

typedef struct store_webhook {
    char account_id[STORE_ID_LEN + 1];
    char *url;       /* http:// or https:// (validated above the store) */
    unsigned events; /* STORE_WEBHOOK_* bits subscribed */
    char secret[STORE_WEBHOOK_SECRET_LEN + 1];
    int64_t created, modified; /* ms */
} store_webhook;

/* One queued event. enqueue reads id, account_id, kind, created, body, next_at; claim fills
 * every field (url and secret from the account's webhook at claim time). */
typedef struct store_webhook_event {
    int64_t seq; /* queue position (the store's) */
    char id[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    unsigned kind;   /* one STORE_WEBHOOK_* bit */
    int64_t created; /* ms */
    char *body;      /* the JSON POSTed */
    int attempts;    /* failed deliveries so far */
    int64_t next_at; /* ms: due from then */
    char *url;
    char secret[STORE_WEBHOOK_SECRET_LEN + 1];
} store_webhook_event;

/* Key policies (issue 14 §4): the normalized JSON document (src/policy validates it above
 * the store), one per key, deleted with the key. */
typedef struct store_policy {
    char key_uid[STORE_ID_LEN + 1];
    char account_id[STORE_ID_LEN + 1];
    char *json;       /* allocated; at most POLICY_JSON_MAX (4096) bytes */
    int64_t modified; /* ms */
} store_policy;

/* The state of one budget in one period: which percentage was notified, whether it tripped.
 * Keyed (key_uid, custom_id, period, period_start, limit_bytes): a new limit starts afresh. */
enum store_budget_period { STORE_BUDGET_DAY = 1, STORE_BUDGET_MONTH = 2 };
typedef struct store_budget {
    char key_uid[STORE_ID_LEN + 1];
    char custom_id[65];               /* "" = the key's own budget */
    int period;                       /* enum store_budget_period */
    int64_t period_start, period_end; /* unix seconds */
    uint64_t limit_bytes;
    int level;   /* the percentage notified (mark: the level reached now) */
    int tripped; /* 0, or the policy action in force since 100 % (mark: the action to take) */
} store_budget;
/* budget_mark's *advanced bits. */
#define STORE_BUDGET_NOTIFY 1u /* level rose: the caller emits the webhook (exactly one node) */
#define STORE_BUDGET_TRIP 2u   /* tripped now: STORE_CHANGE_BUDGET_TRIPPED was logged */

/* Callback of revoke_each: one stored revocation. */
typedef void (*store_revoke_fn)(void *arg, const char *key_uid, const char *username_hash,
                                int64_t expires);

/* The backend interface: storage only. Inputs are validated and hashed by store.c; the
 * backend decides nothing but must make each write one atomic transaction. Grouped by
 * record kind; later ops are appended to their group's end. */
typedef struct store_ops {
    void (*close)(void *ctx);
    /* accounts */
    int (*account_create)(void *ctx, const store_account *a);
    int (*account_get)(void *ctx, const char *id, store_account *out);
    int (*account_list)(void *ctx, store_account **out, size_t *n);
    /* API tokens (t->token_hash is the stored hash; t->revoked is written as given) */
    int (*token_create)(void *ctx, const store_token *t);
    int (*token_by_hash)(void *ctx, const char *token_hash, store_token *out);
    int (*token_list)(void *ctx, const char *account_id, store_token **out, size_t *n);
    int (*token_revoke)(void *ctx, const char *id, int64_t now);
    /* TURN keys. key_create: under a lock on the account row (STORE_NOT_FOUND if absent),
     * counts the account's keys and inserts k only if store__key_admit(count, max_keys). */
    int (*key_create)(void *ctx, const store_key *k, size_t max_keys);
    int (*key_get)(void *ctx, const char *account_id, const char *uid, store_key *out);
    int (*key_by_uid)(void *ctx, const char *uid, store_key *out);
    int (*key_list)(void *ctx, const char *account_id, store_key **out, size_t *n);
    /* Sets name and modified = store__next_modified(old modified, now) in one transaction. */
    int (*key_rename)(void *ctx, const char *account_id, const char *uid, const char *name,
                      int64_t now, store_key *out);
    /* Deletes the key and its revocations; *out receives the deleted record. */
    int (*key_delete)(void *ctx, const char *account_id, const char *uid, store_key *out);
    /* Revocations of one credential (key uid + SHA-256 hex of the username) until expires;
     * adding an existing one changes nothing (STORE_OK). In the insert's transaction, under
     * a lock per key, counts the key's live revocations (expires > now) and inserts a new
     * one only if store__revoke_admit(count, max_live), else STORE_LIMIT; max_live ==
     * STORE_NO_LIMIT skips the count. */
    int (*revoke_add)(void *ctx, const char *key_uid, const char *username_hash, int64_t expires,
                      int64_t now, size_t max_live);
    int (*revoke_check)(void *ctx, const char *key_uid, const char *username_hash, bool *revoked);
    int (*revoke_purge)(void *ctx, int64_t now, size_t *purged);
    /* Calls fn for every revocation with expires > now. */
    int (*revoke_each)(void *ctx, int64_t now, store_revoke_fn fn, void *arg);
    /* change feed */
    /* Every key of every account (a cache's full load). */
    int (*key_list_all)(void *ctx, store_key **out, size_t *n);
    /* Up to max changes with rev > after, in order, and where the log stands. */
    int (*changes_since)(void *ctx, int64_t after, size_t max, store_change **out, size_t *n,
                         store_feed *feed);
    /* Drops changes recorded before `before` (seconds), always keeping the latest. */
    int (*changes_prune)(void *ctx, int64_t before, size_t *pruned);
    /* Waits up to timeout_ms for a doorbell (another node committed a change): 1 rang,
     * 0 timed out, STORE_ERROR (the caller polls anyway). */
    int (*changes_wait)(void *ctx, int timeout_ms);
    /* audit log (issue 12): three small ops. */
    /* Inserts e (its id already set) in one transaction. */
    int (*audit_add)(void *ctx, const store_audit *e);
    /* Matching records, ordered by (when, id) in q's direction, skipping q->offset and at
     * most q->limit; *total = every match (for pagination). */
    int (*audit_list)(void *ctx, const store_audit_query *q, store_audit **out, size_t *n,
                      size_t *total);
    /* Deletes records with when < before_ms. */
    int (*audit_purge)(void *ctx, int64_t before_ms, size_t *purged);
    /* usage accounting (issue 14). */
    /* Adds n deltas in one transaction: sums add, peak_allocs merges by max. */
    int (*usage_add)(void *ctx, const store_usage_delta *d, size_t n);
    /* Matching rows (see store_usage_filter); *total = every row before offset/limit. */
    int (*usage_query)(void *ctx, const store_usage_filter *q, store_usage_row **out, size_t *n,
                       size_t *total);
    /* Rolls minute rows with minute < before up into hour rows, deletes hour rows with
     * minute < drop_before (0 = keep); *rolled = minute rows folded. */
    int (*usage_rollup)(void *ctx, int64_t before, int64_t drop_before, size_t *rolled);
    /* shared secrets (issue 15). Deleting a key deletes its secrets (ON DELETE CASCADE). */
    /* Under a lock on the key row (STORE_NOT_FOUND unless the key is s->account_id's),
     * counts the key's secrets and inserts s only if fewer than max (else STORE_LIMIT);
     * logs STORE_CHANGE_SECRET_ADDED. */
    int (*secret_add)(void *ctx, const store_shared_secret *s, size_t max);
    /* The key's secrets, oldest first. */
    int (*secret_list)(void *ctx, const char *key_uid, store_shared_secret **out, size_t *n);
    /* Deletes one (*out receives it) and logs STORE_CHANGE_SECRET_DELETED. */
    int (*secret_delete)(void *ctx, const char *account_id, const char *key_uid, const char *id,
                         store_shared_secret *out);
    /* Every secret of every key (a cache's full load). */
    int (*secret_list_all)(void *ctx, store_shared_secret **out, size_t *n);
    /* webhook queue (issue 14). */
    /* Creates or replaces the account's webhook (url, events, modified); the secret is kept
     * when keep_secret and one exists, else w->secret is stored. *out: the stored record,
     * *created: there was none. One transaction. */
    int (*webhook_put)(void *ctx, const store_webhook *w, bool keep_secret, store_webhook *out,
                       bool *created);
    int (*webhook_get)(void *ctx, const char *account_id, store_webhook *out);
    /* Deletes the account's webhook and its queued events; *out: the deleted record. */
    int (*webhook_delete)(void *ctx, const char *account_id, store_webhook *out);
    /* In one transaction: queues each event whose account has a webhook subscribed to its
     * kind (others are skipped: *queued counts the queued), then drops the account's oldest
     * events beyond max_per_account (*dropped). */
    int (*webhook_enqueue)(void *ctx, const store_webhook_event *e, size_t n,
                           size_t max_per_account, size_t *queued, size_t *dropped);
    /* Leases up to max due events (next_at <= now, lease expired), oldest first, until
     * lease_until (ms): no other claimer gets them meanwhile (several nodes: SKIP LOCKED). */
    int (*webhook_claim)(void *ctx, int64_t now, int64_t lease_until, size_t max,
                         store_webhook_event **out, size_t *n);
    /* Deletes one event (delivered, or given up). A missing one is not an error. */
    int (*webhook_done)(void *ctx, int64_t seq);
    /* Records a failed delivery: attempts, next_at, lease released. */
    int (*webhook_retry)(void *ctx, int64_t seq, int attempts, int64_t next_at);
    /* Events in the queue (every account). */
    int (*webhook_count)(void *ctx, size_t *queued);
    /* key policies and budgets (issue 14 §4). */
    /* Creates or replaces the policy of p->key_uid, which must be p->account_id's key
     * (STORE_NOT_FOUND); in the same transaction clears the key's trips (budget rows keep
     * their levels) and logs STORE_CHANGE_POLICY. With check, only if the stored document
     * is expect (NULL: the key has none), else STORE_CONFLICT and nothing written. */
    int (*policy_put)(void *ctx, const store_policy *p, bool check, const char *expect);
    /* The key's policy (STORE_NOT_FOUND: none). */
    int (*policy_get)(void *ctx, const char *key_uid, store_policy *out);
    /* Deletes the policy of the account's key (STORE_NOT_FOUND: none), clears its trips,
     * logs STORE_CHANGE_POLICY. */
    int (*policy_delete)(void *ctx, const char *account_id, const char *key_uid);
    /* Every policy (a cache's full load). */
    int (*policy_list_all)(void *ctx, store_policy **out, size_t *n);
    /* In one transaction, on the row of b's key (key_uid, custom_id, period, period_start,
     * limit_bytes), created if absent: raises its level to b->level if higher (*advanced |=
     * STORE_BUDGET_NOTIFY); if b->tripped and the row is not tripped, sets it (*advanced |=
     * STORE_BUDGET_TRIP) and logs STORE_CHANGE_BUDGET_TRIPPED. Concurrent marks by several
     * nodes advance once. STORE_NOT_FOUND if the key is gone. */
    int (*budget_mark)(void *ctx, const store_budget *b, unsigned *advanced);
    /* Budget rows with period_end > now, of one key (NULL: every key), tripped ones only
     * when tripped_only. */
    int (*budget_list)(void *ctx, const char *key_uid, int64_t now, bool tripped_only,
                       store_budget **out, size_t *n);
    /* Deletes rows with period_end < before. */
    int (*budget_purge)(void *ctx, int64_t before, size_t *purged);
} store_ops;

struct store {
    const store_ops *ops;
    void *ctx;
};

/* Opens the store at `where`: a data directory (SQLite file <dir>/turnkey.db, created with
 * its directory if absent), `sqlite:FILE` (that SQLite file), ":memory:" (tests), or a
 * PostgreSQL URL `postgres://…` / `postgresql://…`; migrations are applied. On failure
 * returns NULL and sets *err to an allocated message (free with store_free_err). */
store *store_open(const char *where, char **err);
/* True if `where` already holds a store (store_open would open, not create, it). A
 * PostgreSQL URL always counts as existing (the server holds it). */
bool store_exists(const char *where);
/* True if `where` names a PostgreSQL store (a URL, not a data directory or SQLite file). */
bool store_is_remote(const char *where);
/* The location with any password blanked, for messages and logs (allocated). */
char *store_describe(const char *where);
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
/* The same, refused with STORE_LIMIT when the key already holds max_per_key revocations
 * that are live at now (seconds); re-revoking a revoked username is still STORE_OK. */
int store_revoke_add_capped(store *s, const char *key_uid, const char *username, int64_t expires,
                            size_t max_per_key, int64_t now);
int store_revoke_check(store *s, const char *key_uid, const char *username, bool *revoked);
int store_revoke_purge(store *s, int64_t now, size_t *purged);
/* Visits every revocation not yet expired at `now`. */
int store_revoke_each(store *s, int64_t now,
                      void (*fn)(void *arg, const char *username_hash, int64_t expires), void *arg);

/* The change feed (see store_ops). */
int store_key_list_all(store *s, store_key **out, size_t *n);
int store_changes_since(store *s, int64_t after, size_t max, store_change **out, size_t *n,
                        store_feed *feed);
int store_changes_prune(store *s, int64_t before, size_t *pruned);
int store_changes_wait(store *s, int timeout_ms);

/* Audit log: add sets e->id (random) and e->when if 0 (to now_ms). A backend without the
 * audit ops answers STORE_ERROR. */
int store_audit_add(store *s, store_audit *e, int64_t now_ms);
int store_audit_list(store *s, const store_audit_query *q, store_audit **out, size_t *n,
                     size_t *total);
int store_audit_purge(store *s, int64_t before_ms, size_t *purged);
void store_audit_array_free(store_audit *a, size_t n);

/* Usage (see store_ops). A backend without the usage ops answers STORE_ERROR. */
int store_usage_add(store *s, const store_usage_delta *d, size_t n);
int store_usage_query(store *s, const store_usage_filter *q, store_usage_row **out, size_t *n,
                      size_t *total);
int store_usage_rollup(store *s, int64_t before, int64_t drop_before, size_t *rolled);

/* Shared secrets (see store_ops). add draws the id and the secret (out->secret, shown
 * once); alg is enum store_secret_alg, max_ttl 0 = STORE_SHARED_TTL_DEFAULT, else within
 * [STORE_SHARED_TTL_MIN, STORE_SHARED_TTL_MAX]; anything else is STORE_INVALID. A backend
 * without the ops answers STORE_ERROR. */
int store_secret_add(store *s, const char *account_id, const char *key_uid, int alg,
                     int64_t max_ttl, int64_t now_ms, store_shared_secret *out);
int store_secret_list(store *s, const char *key_uid, store_shared_secret **out, size_t *n);
int store_secret_delete(store *s, const char *account_id, const char *key_uid, const char *id,
                        store_shared_secret *out);
int store_secret_list_all(store *s, store_shared_secret **out, size_t *n);
/* Wipes the secrets and frees the array. */
void store_secret_array_free(store_shared_secret *a, size_t n);
/* "sha1" / "sha256" and back (0 if unknown). */
const char *store_secret_alg_name(int alg);
int store_secret_alg_parse(const char *name);
/* Webhooks (see store_ops; store_webhook.c). put makes a fresh random secret when the account
 * has none or rotate is set (out->secret: show it only then). A backend without the webhook
 * ops answers STORE_ERROR. */
int store_webhook_put(store *s, const char *account_id, const char *url, unsigned events,
                      bool rotate, int64_t now_ms, store_webhook *out, bool *created);
int store_webhook_get(store *s, const char *account_id, store_webhook *out);
int store_webhook_delete(store *s, const char *account_id, store_webhook *out);
int store_webhook_enqueue(store *s, const store_webhook_event *e, size_t n, size_t max_per_account,
                          size_t *queued, size_t *dropped);
int store_webhook_claim(store *s, int64_t now, int64_t lease_until, size_t max,
                        store_webhook_event **out, size_t *n);
int store_webhook_done(store *s, int64_t seq);
int store_webhook_retry(store *s, int64_t seq, int attempts, int64_t next_at);
int store_webhook_count(store *s, size_t *queued);
void store_webhook_clear(store_webhook *w);
void store_webhook_event_array_free(store_webhook_event *e, size_t n);
/* Key policies and budgets (see store_ops; store_policy.c). put takes a document already
 * validated by policy_parse (at most POLICY_JSON_MAX bytes, else STORE_INVALID) and sets
 * modified; a backend without the ops answers STORE_ERROR. */
int store_policy_put(store *s, const char *account_id, const char *key_uid, const char *json,
                     int64_t now_ms, store_policy *out);
/* The same, only if the stored document still is expect (NULL: none): else STORE_CONFLICT
 * (read again, merge again, retry). What a read-merge-write (PATCH) uses across nodes. */
int store_policy_replace(store *s, const char *account_id, const char *key_uid, const char *json,
                         const char *expect, int64_t now_ms, store_policy *out);
int store_policy_get(store *s, const char *key_uid, store_policy *out);
int store_policy_delete(store *s, const char *account_id, const char *key_uid);
int store_policy_list_all(store *s, store_policy **out, size_t *n);
void store_policy_clear(store_policy *p);
void store_policy_array_free(store_policy *a, size_t n);
int store_budget_mark(store *s, const store_budget *b, unsigned *advanced);
int store_budget_list(store *s, const char *key_uid, int64_t now, bool tripped_only,
                      store_budget **out, size_t *n);
int store_budget_purge(store *s, int64_t before, size_t *purged);

/* Release the heap parts of records and arrays returned above. */
void store_account_clear(store_account *a);
void store_token_clear(store_token *t);
void store_key_clear(store_key *k);
void store_account_array_free(store_account *a, size_t n);
void store_token_array_free(store_token *t, size_t n);
void store_key_array_free(store_key *k, size_t n);

/* Parses "calls:read,calls:write" into STORE_PERM_* bits; 0 if malformed or empty. */
unsigned store_perms_parse(const char *s);
/* Formats bits as "calls:read,calls:write,audit:read,analytics:read" into out (>= 64
 * bytes; a shorter buffer gets a cut list). */
void store_perms_format(unsigned perms, char *out, size_t cap);

/* Copies every account, token, key and live revocation of `from` into `to`, skipping
 * records `to` already holds (idempotent), then verifies each record of `from` is in `to`.
 * counts receive the records verified per kind. STORE_OK or STORE_ERROR (*err set). */
typedef struct store_copy_counts {
    size_t accounts, tokens, keys, revocations;
    size_t copied;   /* records written by this run (0 on a repeated copy) */
    size_t secrets;  /* shared secrets verified (issue 15) */
    size_t policies; /* key policies verified (issue 14) */
} store_copy_counts;
int store_copy(store *from, store *to, int64_t now, store_copy_counts *counts, char **err);

/* store_copy's part for one key's shared secrets (store_secret.c): STORE_OK or STORE_ERROR. */
int store__copy_secrets(store *from, store *to, const char *key_uid, size_t *copied,
                        size_t *verified);

/* store_copy's part for one key's policy (store_policy.c): STORE_OK or STORE_ERROR. Budget
 * states and usage are not copied: on the target the guard starts the periods afresh. */
int store__copy_policy(store *from, store *to, const char *key_uid, size_t *copied,
                       size_t *verified);

/* Rules shared by the backends (store.c). */
/* A new key is admitted while the account holds fewer than max_keys. */
bool store__key_admit(size_t existing, size_t max_keys);
/* A new revocation is admitted while the key holds fewer than max live ones. */
bool store__revoke_admit(size_t live, size_t max);
/* modified after a rename at now: always moves forward, even within one millisecond. */
int64_t store__next_modified(int64_t prev, int64_t now);

/* The backends (picked by store_open). */
const store_ops *store__sqlite_ops(void);
void *store__sqlite_open(const char *file, const char *dir, char **err);
bool store__sqlite_exists(const char *file);
const store_ops *store__pg_ops(void);
void *store__pg_open(const char *url, char **err);
/* store_sqlite_audit.c: the audit ops of the SQLite backend (ctx = its connection). */
int store__sqlite_audit_add(void *ctx, const store_audit *e);
int store__sqlite_audit_list(void *ctx, const store_audit_query *q, store_audit **out, size_t *n,
                             size_t *total);
int store__sqlite_audit_purge(void *ctx, int64_t before_ms, size_t *purged);
/* store_sqlite_usage.c: the usage ops of the SQLite backend. */
int store__sqlite_usage_add(void *ctx, const store_usage_delta *d, size_t n);
int store__sqlite_usage_query(void *ctx, const store_usage_filter *q, store_usage_row **out,
                              size_t *n, size_t *total);
int store__sqlite_usage_rollup(void *ctx, int64_t before, int64_t drop_before, size_t *rolled);
/* store_sqlite_secret.c / store_pg_secret.c: the shared-secret ops of each backend. */
int store__sqlite_secret_add(void *ctx, const store_shared_secret *s, size_t max);
int store__sqlite_secret_list(void *ctx, const char *key_uid, store_shared_secret **out, size_t *n);
int store__sqlite_secret_delete(void *ctx, const char *account_id, const char *key_uid,
                                const char *id, store_shared_secret *out);
int store__sqlite_secret_list_all(void *ctx, store_shared_secret **out, size_t *n);
int store__pg_secret_add(void *ctx, const store_shared_secret *s, size_t max);
int store__pg_secret_list(void *ctx, const char *key_uid, store_shared_secret **out, size_t *n);
int store__pg_secret_delete(void *ctx, const char *account_id, const char *key_uid, const char *id,
                            store_shared_secret *out);
int store__pg_secret_list_all(void *ctx, store_shared_secret **out, size_t *n);
/* store_sqlite_webhook.c: the webhook ops of the SQLite backend. */
int store__sqlite_webhook_put(void *ctx, const store_webhook *w, bool keep_secret,
                              store_webhook *out, bool *created);
int store__sqlite_webhook_get(void *ctx, const char *account_id, store_webhook *out);
int store__sqlite_webhook_delete(void *ctx, const char *account_id, store_webhook *out);
int store__sqlite_webhook_enqueue(void *ctx, const store_webhook_event *e, size_t n,
                                  size_t max_per_account, size_t *queued, size_t *dropped);
int store__sqlite_webhook_claim(void *ctx, int64_t now, int64_t lease_until, size_t max,
                                store_webhook_event **out, size_t *n);
int store__sqlite_webhook_done(void *ctx, int64_t seq);
int store__sqlite_webhook_retry(void *ctx, int64_t seq, int attempts, int64_t next_at);
int store__sqlite_webhook_count(void *ctx, size_t *queued);
/* store_sqlite_policy.c / store_pg_policy.c: the key-policy and budget ops of each backend. */
int store__sqlite_policy_put(void *ctx, const store_policy *p, bool check, const char *expect);
int store__sqlite_policy_get(void *ctx, const char *key_uid, store_policy *out);
int store__sqlite_policy_delete(void *ctx, const char *account_id, const char *key_uid);
int store__sqlite_policy_list_all(void *ctx, store_policy **out, size_t *n);
int store__sqlite_budget_mark(void *ctx, const store_budget *b, unsigned *advanced);
int store__sqlite_budget_list(void *ctx, const char *key_uid, int64_t now, bool tripped_only,
                              store_budget **out, size_t *n);
int store__sqlite_budget_purge(void *ctx, int64_t before, size_t *purged);
int store__pg_policy_put(void *ctx, const store_policy *p, bool check, const char *expect);
int store__pg_policy_get(void *ctx, const char *key_uid, store_policy *out);
int store__pg_policy_delete(void *ctx, const char *account_id, const char *key_uid);
int store__pg_policy_list_all(void *ctx, store_policy **out, size_t *n);
int store__pg_budget_mark(void *ctx, const store_budget *b, unsigned *advanced);
int store__pg_budget_list(void *ctx, const char *key_uid, int64_t now, bool tripped_only,
                          store_budget **out, size_t *n);
int store__pg_budget_purge(void *ctx, int64_t before, size_t *purged);

#endif
