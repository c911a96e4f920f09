/* usage_params: the query string of the REST usage API (see include/turnkey/usage.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/audit.h"
#include "turnkey/usage.h"
#include "turnkey/util.h"

#define MAX_TIME 253402300799LL /* 9999-12-31T23:59:59Z */

static int parse_uint(const char *s, long long lo, long long hi, long long *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 15)
        return -1;
    long long v = strtoll(s, NULL, 10);
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Unix seconds, or an RFC 3339 date-time / date (rounded down to the second). */
static int parse_time(const char *v, int64_t *out)
{
    long long s;
    if (parse_uint(v, 0, MAX_TIME, &s) == 0) {
        *out = s;
        return 0;
    }
    int64_t ms;
    if (audit_parse_time(v, &ms) != 0 || ms < 0 || ms / 1000 > MAX_TIME)
        return -1;
    *out = ms / 1000;
    return 0;
}

static int parse_step(const char *v, int64_t *out)
{
    static const struct {
        const char *name;
        int64_t s;
    } steps[] = {{"1m", 60}, {"5m", 300}, {"15m", 900}, {"1h", 3600}, {"1d", 86400}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (!strcmp(v, steps[i].name)) {
            *out = steps[i].s;
            return 0;
        }
    return -1;
}

static int parse_group(const char *v, bool allow_key, unsigned *out)
{
    *out = 0;
    for (const char *s = v; *s;) {
        size_t len = strcspn(s, ",");
        if (len == strlen("customIdentifier") && !strncmp(s, "customIdentifier", len))
            *out |= STORE_USAGE_BY_CUSTOM_ID;
        else if (len == strlen("username") && !strncmp(s, "username", len))
            *out |= STORE_USAGE_BY_USERNAME;
        else if (allow_key && len == strlen("keyId") && !strncmp(s, "keyId", len))
            *out |= STORE_USAGE_BY_KEY;
        else
            return -1;
        s += len;
        if (*s == ',' && !*++s)
            return -1; /* a trailing comma */
    }
    return *v ? 0 : -1;
}

enum { P_SINCE, P_UNTIL, P_STEP, P_GROUP, P_PAGE, P_PER_PAGE, P__N };
static const char *const names[P__N] = {"since", "until", "step", "group_by", "page", "per_page"};

static int one_param(usage_params *p, int which, const char *v, bool allow_key)
{
    long long n;
    switch (which) {
    case P_SINCE: return parse_time(v, &p->f.since);
    case P_UNTIL: return parse_time(v, &p->f.until);
    case P_STEP: return parse_step(v, &p->f.step);
    case P_GROUP: return parse_group(v, allow_key, &p->f.group_by);
    case P_PAGE:
        if (parse_uint(v, 1, 1000000000LL, &n) != 0)
            return -1;
        p->page = (size_t)n;
        return 0;
    default:
        if (parse_uint(v, 1, USAGE_PER_PAGE_MAX, &n) != 0)
            return -1;
        p->per_page = (size_t)n;
        return 0;
    }
}

/* Splits the query and applies each parameter; seen marks the ones given. */
static int apply_all(const char *query, bool allow_key, usage_params *p, bool seen[P__N], char *err,
                     size_t cap)
{
    for (const char *s = query ? query : ""; *s;) {
        size_t len = strcspn(s, "&");
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        char k[64], v[512];
        if (len && (util_percent_decode(s, klen, true, k, sizeof k) != 0 ||
                    util_percent_decode(s + klen + (eq ? 1 : 0), len - klen - (eq ? 1 : 0), true, v,
                                        sizeof v) != 0)) {
            snprintf(err, cap, "malformed query string");
            return -1;
        }
        int which = 0;
        while (len && which < P__N && strcmp(k, names[which]) != 0)
            which++;
        if (len && which == P__N) {
            snprintf(err, cap,
                     "unknown query parameter '%.40s' (since, until, step, group_by, "
                     "page, per_page)",
                     k);
            return -1;
        }
        if (len && (seen[which] || one_param(p, which, v, allow_key) != 0)) {
            snprintf(err, cap, "%s the query parameter %s",
                     seen[which] ? "repeated" : "invalid value for", names[which]);
            return -1;
        }
        if (len)
            seen[which] = true;
        s += len + (s[len] == '&');
    }
    return 0;
}

int usage_params_parse(const char *query, int64_t now_s, bool allow_key, usage_params *p, char *err,
                       size_t cap)
{
    memset(p, 0, sizeof *p);
    p->page = 1;
    p->per_page = USAGE_PER_PAGE_DEFAULT;
    p->f.step = 3600;
    bool seen[P__N] = {false};
    if (apply_all(query, allow_key, p, seen, err, cap) != 0)
        return -1;
    if (!seen[P_UNTIL])
        p->f.until = now_s - now_s % 60 + 60; /* the current minute included */
    if (!seen[P_SINCE])
        p->f.since = p->f.until > USAGE_RANGE_DEFAULT ? p->f.until - USAGE_RANGE_DEFAULT : 0;
    if (p->f.since >= p->f.until) {
        snprintf(err, cap, "since must be earlier than until");
        return -1;
    }
    p->f.limit = p->per_page;
    p->f.offset = (p->page - 1) * p->per_page;
    return 0;
}
