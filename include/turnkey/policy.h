/* policy: a TURN key's policy (issue 14 §4) — byte budgets and what happens at them, a
 * maximum credential TTL, an allocation quota per credential, mint rate limits and a
 * per-allocation bandwidth cap — as a JSON document and as the struct the hot paths read.
 *
 *  - The document is a flat JSON object; every field is optional and absent means "no
 *    limit" (docs/usage.md, "Policy"):
 *      daily_bytes, monthly_bytes                        the key's budget (UTC day / month)
 *      custom_identifier_daily_bytes, ..._monthly_bytes  each customIdentifier's budget
 *      action          "notify" (default) | "stop_minting" | "end_allocations"  at 100 %
 *      thresholds      ascending percentages 1..99 for budget.threshold (default [80])
 *      max_ttl         seconds (1..172800): a mint asking more gets 400
 *      allocation_quota   allocations per credential (1..1000): more get 486
 *      mint_rate_per_key, mint_rate_per_source   mints per minute (1..1000000): more get 403
 *      bandwidth_bps   bits per second per allocation and direction (8000..10^11): more dropped
 *  - policy_parse is strict: unknown fields, wrong types and values out of range are errors
 *    naming the field. policy_patch applies an RFC 7396 merge patch (null clears a field).
 *  - policy_limiter: the mint rate limits of one node (token buckets per key and per (key,
 *    source address), a fixed-size table: bounded memory whatever the callers send).
 *
 * Pure: no store, no clock (times are passed in). */
#ifndef TURNKEY_POLICY_H
#define TURNKEY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_action {
    POLICY_NOTIFY = 1,
    POLICY_STOP_MINTING = 2,
    POLICY_END_ALLOCATIONS = 3,
};

#define POLICY_THRESHOLDS_MAX 8
#define POLICY_JSON_MAX 4096 /* the stored document, in bytes */
#define POLICY_TTL_MAX 172800

typedef struct policy {
    uint64_t daily_bytes, monthly_bytes;         /* the key's budget; 0 = none */
    uint64_t cid_daily_bytes, cid_monthly_bytes; /* each customIdentifier's; 0 = none */
    int action;                                  /* enum policy_action (POLICY_NOTIFY) */
    uint8_t thresholds[POLICY_THRESHOLDS_MAX];   /* ascending, 1..99 */
    size_t n_thresholds;
    int64_t max_ttl;           /* seconds; 0 = none */
    uint32_t allocation_quota; /* 0 = none (the relay's --user-quota) */
    uint32_t mint_rate_key;    /* mints per minute; 0 = none */
    uint32_t mint_rate_source; /* mints per minute per source address; 0 = none */
    uint64_t bandwidth_bps;    /* bits per second; 0 = none */
} policy;

/* The empty policy: no limits, action notify, thresholds [80]. */
void policy_init(policy *p);
/* Parses a document (len bytes, not necessarily NUL-terminated): 0, or -1 with a message
 * naming the field in err. */
int policy_parse(const char *json, size_t len, policy *out, char *err, size_t cap);
/* The normalized document of p (only the fields that are set, fixed order): allocated. */
char *policy_to_json(const policy *p);
/* base (a document, NULL = empty) merged with patch (RFC 7396, a JSON object): the result
 * is validated like policy_parse. 0 and *out (allocated, normalized), or -1 and err. */
int policy_patch(const char *base, const char *patch, size_t patch_len, char **out, char *err,
                 size_t cap);
/* True if p has a byte budget (what the spend guard watches). */
bool policy_has_budget(const policy *p);
const char *policy_action_name(int action); /* "notify", ...; "?" */

/* --- budget periods (UTC) ------------------------------------------------------------ */
/* The start and end (unix seconds) of the UTC day / calendar month holding t. */
void policy_day(int64_t t, int64_t *start, int64_t *end);
void policy_month(int64_t t, int64_t *start, int64_t *end);
/* The level a budget has reached: 100 when used >= limit, else the largest threshold of p
 * that used reaches (used * 100 >= threshold * limit), else 0. */
int policy_level(const policy *p, uint64_t used, uint64_t limit);

/* --- the mint rate limiter (policy_limiter.c) ---------------------------------------- */
typedef struct policy_limiter policy_limiter;
#define POLICY_LIMITER_SLOTS 4096 /* buckets per table (keys; (key, source)): 4-way sets */

policy_limiter *policy_limiter_new(void);
void policy_limiter_free(policy_limiter *l);
/* One mint of key_uid from source (an address text) at now_ms under p: 0 allowed, 1 the
 * key's rate exceeded, 2 the source's rate exceeded (nothing is taken then). Thread-safe. */
int policy_limiter_take(policy_limiter *l, const char *key_uid, const char *source, const policy *p,
                        int64_t now_ms);

#endif
