/* policy: the key-policy document (see include/turnkey/policy.h), parsed strictly with
 * jansson, and the budget arithmetic the spend guard uses. */
#include "turnkey/policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnkey/util.h"

#define BYTES_MAX (UINT64_C(1) << 62)

/* The integer fields: name, bounds, where they go. */
typedef enum { F_U64, F_U32, F_I64 } ftype;
typedef struct field {
    const char *name;
    uint64_t min, max;
    ftype type;
    size_t off;
} field;

static const field fields[] = {
    {"daily_bytes", 1, BYTES_MAX, F_U64, offsetof(policy, daily_bytes)},
    {"monthly_bytes", 1, BYTES_MAX, F_U64, offsetof(policy, monthly_bytes)},
    {"custom_identifier_daily_bytes", 1, BYTES_MAX, F_U64, offsetof(policy, cid_daily_bytes)},
    {"custom_identifier_monthly_bytes", 1, BYTES_MAX, F_U64, offsetof(policy, cid_monthly_bytes)},
    {"max_ttl", 1, POLICY_TTL_MAX, F_I64, offsetof(policy, max_ttl)},
    {"allocation_quota", 1, 1000, F_U32, offsetof(policy, allocation_quota)},
    {"mint_rate_per_key", 1, 1000000, F_U32, offsetof(policy, mint_rate_key)},
    {"mint_rate_per_source", 1, 1000000, F_U32, offsetof(policy, mint_rate_source)},
    {"bandwidth_bps", 8000, UINT64_C(100000000000), F_U64, offsetof(policy, bandwidth_bps)},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static const char *const actions[] = {NULL, "notify", "stop_minting", "end_allocations"};

void policy_init(policy *p)
{
    memset(p, 0, sizeof *p);
    p->action = POLICY_NOTIFY;
    p->thresholds[0] = 80;
    p->n_thresholds = 1;
}

const char *policy_action_name(int action)
{
    return action >= POLICY_NOTIFY && action <= POLICY_END_ALLOCATIONS ? actions[action] : "?";
}

static void set_field(policy *p, const field *f, uint64_t v)
{
    char *at = (char *)p + f->off;
    if (f->type == F_U64)
        *(uint64_t *)(void *)at = v;
    else if (f->type == F_U32)
        *(uint32_t *)(void *)at = (uint32_t)v;
    else
        *(int64_t *)(void *)at = (int64_t)v;
}

static uint64_t get_field(const policy *p, const field *f)
{
    const char *at = (const char *)p + f->off;
    if (f->type == F_U64)
        return *(const uint64_t *)(const void *)at;
    if (f->type == F_U32)
        return *(const uint32_t *)(const void *)at;
    return (uint64_t) * (const int64_t *)(const void *)at;
}

static int parse_int(policy *p, const field *f, json_t *v, char *err, size_t cap)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < f->min || (uint64_t)json_integer_value(v) > f->max) {
        snprintf(err, cap, "%s must be an integer from %llu to %llu", f->name,
                 (unsigned long long)f->min, (unsigned long long)f->max);
        return -1;
    }
    set_field(p, f, (uint64_t)json_integer_value(v));
    return 0;
}

static int parse_action(policy *p, json_t *v, char *err, size_t cap)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    for (int a = POLICY_NOTIFY; s && a <= POLICY_END_ALLOCATIONS; a++)
        if (!strcmp(s, actions[a]) && strlen(s) == json_string_length(v)) {
            p->action = a;
            return 0;
        }
    snprintf(err, cap, "action must be \"notify\", \"stop_minting\" or \"end_allocations\"");
    return -1;
}

static int parse_thresholds(policy *p, json_t *v, char *err, size_t cap)
{
    size_t n = json_is_array(v) ? json_array_size(v) : POLICY_THRESHOLDS_MAX + 1;
    long long prev = 0;
    for (size_t i = 0; i < n && n <= POLICY_THRESHOLDS_MAX; i++) {
        json_t *t = json_array_get(v, i);
        long long x = json_is_integer(t) ? json_integer_value(t) : 0;
        if (x <= prev || x > 99)
            goto bad;
        p->thresholds[i] = (uint8_t)x;
        prev = x;
    }
    if (n > POLICY_THRESHOLDS_MAX)
        goto bad;
    p->n_thresholds = n;
    return 0;
bad:
    snprintf(err, cap, "thresholds must be an array of at most %d ascending percentages 1..99",
             POLICY_THRESHOLDS_MAX);
    return -1;
}

static int parse_member(policy *p, const char *k, json_t *v, char *err, size_t cap)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(k, fields[i].name))
            return parse_int(p, &fields[i], v, err, cap);
    if (!strcmp(k, "action"))
        return parse_action(p, v, err, cap);
    if (!strcmp(k, "thresholds"))
        return parse_thresholds(p, v, err, cap);
    snprintf(err, cap, "unknown policy field \"%.64s\"", k);
    return -1;
}

static int parse_object(json_t *doc, policy *out, char *err, size_t cap)
{
    const char *k;
    json_t *v;
    if (!json_is_object(doc)) {
        snprintf(err, cap, "a policy must be a JSON object");
        return -1;
    }
    json_object_foreach(doc, k, v)
    {
        if (parse_member(out, k, v, err, cap) != 0)
            return -1;
    }
    return 0;
}

int policy_parse(const char *json, size_t len, policy *out, char *err, size_t cap)
{
    policy_init(out);
    if (len > POLICY_JSON_MAX) {
        snprintf(err, cap, "a policy is at most %d bytes", POLICY_JSON_MAX);
        return -1;
    }
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, cap, "policy is not valid JSON: %s", je.text);
        return -1;
    }
    int rc = parse_object(doc, out, err, cap);
    json_decref(doc);
    if (rc != 0)
        policy_init(out);
    return rc;
}

bool policy_has_budget(const policy *p)
{
    return p->daily_bytes || p->monthly_bytes || p->cid_daily_bytes || p->cid_monthly_bytes;
}

static bool default_thresholds(const policy *p)
{
    return p->n_thresholds == 1 && p->thresholds[0] == 80;
}

static json_t *to_object(const policy *p)
{
    json_t *o = json_object();
    for (size_t i = 0; i < N_FIELDS; i++) {
        uint64_t v = get_field(p, &fields[i]);
        if (v)
            json_object_set_new(o, fields[i].name, json_integer((json_int_t)v));
    }
    if (p->action != POLICY_NOTIFY || policy_has_budget(p))
        json_object_set_new(o, "action", json_string(policy_action_name(p->action)));
    if (!default_thresholds(p) || policy_has_budget(p)) {
        json_t *a = json_array();
        for (size_t i = 0; i < p->n_thresholds; i++)
            json_array_append_new(a, json_integer(p->thresholds[i]));
        json_object_set_new(o, "thresholds", a);
    }
    return o;
}

char *policy_to_json(const policy *p)
{
    json_t *o = to_object(p);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    char *copy = util_xstrdup(s ? s : "{}"); /* jansson fails only out of memory */
    free(s);
    return copy;
}

int policy_patch(const char *base, const char *patch, size_t patch_len, char **out, char *err,
                 size_t cap)
{
    int rc = -1;
    *out = NULL;
    json_error_t je;
    json_t *doc = base ? json_loads(base, JSON_REJECT_DUPLICATES, &je) : json_object();
    json_t *p = json_loadb(patch, patch_len, JSON_REJECT_DUPLICATES, &je);
    const char *k;
    json_t *v;
    if (!json_is_object(doc)) {
        snprintf(err, cap, "the stored policy is not a JSON object");
        goto out;
    }
    if (!json_is_object(p)) {
        snprintf(err, cap, "a policy patch must be a JSON object");
        goto out;
    }
    json_object_foreach(p, k, v)
    {
        if (json_is_null(v))
            json_object_del(doc, k);
        else
            json_object_set(doc, k, v);
    }
    policy merged;
    policy_init(&merged);
    if (parse_object(doc, &merged, err, cap) != 0)
        goto out;
    *out = policy_to_json(&merged);
    rc = 0;
out:
    json_decref(doc);
    json_decref(p);
    return rc;
}

/* --- budget periods and levels ---------------------------------------------------------- */

void policy_day(int64_t t, int64_t *start, int64_t *end)
{
    int64_t d = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    *start = d * 86400;
    *end = *start + 86400;
}

void policy_month(int64_t t, int64_t *start, int64_t *end)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    *start = (int64_t)timegm(&tm);
    tm.tm_mon += 1;
    *end = (int64_t)timegm(&tm); /* timegm normalizes December + 1 */
}

int policy_level(const policy *p, uint64_t used, uint64_t limit)
{
    if (!limit)
        return 0;
    if (used >= limit)
        return 100;
    int level = 0;
    for (size_t i = 0; i < p->n_thresholds; i++)
        if ((unsigned __int128)used * 100 >= (unsigned __int128)p->thresholds[i] * limit)
            level = p->thresholds[i];
    return level;
}
