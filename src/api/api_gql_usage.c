/* api_gql_usage: the callsTurnUsageAdaptiveGroups dataset over the store's usage rows.
 * The query's dimensions pick the time step (the finest time dimension) and the grouping;
 * the filter becomes a time range [since, until) and equality filters; the store answers
 * the groups (at most MAX_GROUPS, else an error), which are sorted and cut to `limit` here.
 * Time filters apply to the row's time (the start of its minute, or of its hour once rolled
 * up), truncated to the filtered field's granularity, as Cloudflare's datetimeMinute_gt etc.
 * avg.concurrentConnectionsFiveMinutes = allocation time / the length of the group's span
 * (its bucket, or the filtered range when no time dimension is selected, cut at now).
 * Anything outside this subset is an error naming it, never an approximate answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/audit.h"
#include "turnkey/gql.h"
#include "turnkey/util.h"

#define MAX_GROUPS 10000 /* groups one dataset field may gather before sorting */
#define MAX_LIMIT 10000  /* Cloudflare's maxPageSize */
#define MAX_ORDER 8
#define MAX_AND_DEPTH 8
#define MAX_COMBOS 64               /* store queries for the _in lists of one dataset field */
#define NO_END_MS 253402300800000LL /* 10000-01-01: no upper time bound */

enum dim_kind { D_TIME, D_KEY, D_CUSTOM, D_USER, D_NODE, D_NULL };

typedef struct dim {
    const char *name;
    enum dim_kind kind;
    int64_t g;      /* D_TIME: granularity in seconds */
    unsigned group; /* STORE_USAGE_BY_* */
} dim;

/* Cloudflare's documented dimensions. The datacenter of a row is the turnkey node that
 * relayed it: datacenterCode and datacenterCity answer its node name; datacenterCountry and
 * datacenterRegion are unknown (null). */
static const dim dims[] = {
    {"datetime", D_TIME, 60, 0},
    {"datetimeMinute", D_TIME, 60, 0},
    {"datetimeFiveMinutes", D_TIME, 300, 0},
    {"datetimeFifteenMinutes", D_TIME, 900, 0},
    {"datetimeHour", D_TIME, 3600, 0},
    {"date", D_TIME, 86400, 0},
    {"keyId", D_KEY, 0, STORE_USAGE_BY_KEY},
    {"customIdentifier", D_CUSTOM, 0, STORE_USAGE_BY_CUSTOM_ID},
    {"username", D_USER, 0, STORE_USAGE_BY_USERNAME},
    {"datacenterCode", D_NODE, 0, STORE_USAGE_BY_NODE},
    {"datacenterCity", D_NODE, 0, STORE_USAGE_BY_NODE},
    {"datacenterCountry", D_NULL, 0, STORE_USAGE_BY_NODE},
    {"datacenterRegion", D_NULL, 0, STORE_USAGE_BY_NODE},
};

enum metric { M_EGRESS, M_INGRESS, M_AVG };

static const struct {
    const char *order, *block, *field;
} metrics[] = {
    [M_EGRESS] = {"sum_egressBytes", "sum", "egressBytes"},
    [M_INGRESS] = {"sum_ingressBytes", "sum", "ingressBytes"},
    [M_AVG] = {"avg_concurrentConnectionsFiveMinutes", "avg", "concurrentConnectionsFiveMinutes"},
};

typedef struct sortkey {
    const dim *d; /* or NULL: a metric */
    enum metric m;
    bool desc;
} sortkey;

typedef struct plan {
    int64_t since_ms, until_ms; /* the row's time in [since, until) */
    json_t *vals[3];            /* keyId, customIdentifier, username: the allowed values (an
                                   array of distinct strings), NULL = any */
    bool empty;                 /* the filter matches nothing */
    int64_t step;               /* seconds; 0 = no time dimension */
    unsigned group;
    bool avg;
    size_t limit;
    sortkey keys[MAX_ORDER];
    size_t nkeys;
    int64_t now_ms;
} plan;

typedef struct group {
    const store_usage_row *r;
    double avg;
    size_t idx;
} group;

static const dim *find_dim(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (strlen(dims[i].name) == len && memcmp(dims[i].name, name, len) == 0)
            return &dims[i];
    return NULL;
}

static int fail_at(api__gx *x, const gql_field *f, const char *fmt, const char *arg)
{
    api__gx_fail(x, 400, f->line, f->col, fmt, arg);
    return -1;
}

/* --- the selection: dimensions, sum, avg ----------------------------------------------------- */

static int leaf(api__gx *x, const gql_field *c)
{
    if (c->args)
        return fail_at(x, c, "unknown argument on field \"%s\"", c->name);
    if (c->sel)
        return fail_at(x, c, "scalar fields must have no selections: \"%s\"", c->name);
    return 0;
}

static int block_ok(api__gx *x, const gql_field *c)
{
    if (c->args)
        return fail_at(x, c, "unknown argument on field \"%s\"", c->name);
    if (!c->sel)
        return fail_at(x, c, "object field must have selections: \"%s\"", c->name);
    return api__gx_unique_keys(x, c->sel);
}

static int select_dims(api__gx *x, const gql_field *c, plan *p)
{
    for (const gql_field *d = c->sel; d; d = d->next) {
        const dim *dm = find_dim(d->name, strlen(d->name));
        if (!dm)
            return fail_at(x, d, "unknown dimension \"%s\" of callsTurnUsageAdaptiveGroups",
                           d->name);
        if (leaf(x, d) != 0)
            return -1;
        if (dm->kind == D_TIME && (p->step == 0 || dm->g < p->step))
            p->step = dm->g;
        p->group |= dm->group;
    }
    return 0;
}

static int select_metrics(api__gx *x, const gql_field *c, plan *p)
{
    for (const gql_field *m = c->sel; m; m = m->next) {
        size_t i = 0;
        while (i < 3 && (strcmp(metrics[i].block, c->name) || strcmp(metrics[i].field, m->name)))
            i++;
        if (i == 3)
            return fail_at(x, m,
                           strcmp(c->name, "sum") == 0
                               ? "unknown field \"%s\" on sum (egressBytes, ingressBytes)"
                               : "unknown field \"%s\" on avg (concurrentConnectionsFiveMinutes)",
                           m->name);
        if (leaf(x, m) != 0)
            return -1;
        p->avg |= i == M_AVG;
    }
    return 0;
}

static int select_fields(api__gx *x, const gql_field *f, plan *p)
{
    if (!f->sel)
        return fail_at(x, f, "object field must have selections: \"%s\"", f->name);
    if (api__gx_unique_keys(x, f->sel) != 0)
        return -1;
    for (const gql_field *c = f->sel; c; c = c->next) {
        bool dims_block = !strcmp(c->name, "dimensions");
        if (!dims_block && strcmp(c->name, "sum") && strcmp(c->name, "avg"))
            return fail_at(x, c,
                           !strcmp(c->name, "count")
                               ? "\"%s\" is not supported: turnkey counts bytes and allocation "
                                 "time exactly, not sampled events"
                               : "unknown field \"%s\" on callsTurnUsageAdaptiveGroups "
                                 "(dimensions, sum, avg)",
                           c->name);
        if (block_ok(x, c) != 0)
            return -1;
        if ((dims_block ? select_dims(x, c, p) : select_metrics(x, c, p)) != 0)
            return -1;
    }
    return 0;
}

/* --- the filter --------------------------------------------------------------------------------- */

static int64_t floor_to(int64_t t, int64_t g)
{
    int64_t m = t % g;
    return t - (m < 0 ? m + g : m);
}

static int64_t ceil_to(int64_t t, int64_t g)
{
    int64_t f = floor_to(t, g);
    return f == t ? t : f + g;
}

/* A date ("YYYY-MM-DD") or datetime (RFC 3339) value in ms; -1 if malformed. */
static int parse_time(const char *s, bool date, int64_t *ms)
{
    if (audit_parse_time(s, ms) != 0 || (strlen(s) == 10) != date)
        return -1;
    char back[32];
    util_rfc3339(floor_to(*ms, 1000) / 1000, back);
    return date && strncmp(back, s, 10) != 0 ? -1 : 0; /* no 2025-02-31 */
}

/* floor_g(t) OP X as a range of t (ms). */
static void time_bound(plan *p, const char *op, int64_t x_ms, int64_t g_ms)
{
    int64_t lo = 0, hi = NO_END_MS, fl = floor_to(x_ms, g_ms);
    if (!strcmp(op, "geq"))
        lo = ceil_to(x_ms, g_ms);
    else if (!strcmp(op, "gt"))
        lo = fl + g_ms;
    else if (!strcmp(op, "lt"))
        hi = ceil_to(x_ms, g_ms);
    else if (!strcmp(op, "leq"))
        hi = fl + g_ms;
    else if (fl == x_ms) /* equality */
        lo = x_ms, hi = x_ms + g_ms;
    else
        p->empty = true;
    p->since_ms = lo > p->since_ms ? lo : p->since_ms;
    p->until_ms = hi < p->until_ms ? hi : p->until_ms;
}

static int time_filter(api__gx *x, const gql_value *at, const dim *d, const char *op,
                       const char *key, json_t *v, plan *p)
{
    static const char *const ops[] = {"", "geq", "gt", "leq", "lt", NULL};
    size_t i = 0;
    while (ops[i] && strcmp(ops[i], op))
        i++;
    int64_t ms;
    if (!ops[i])
        api__gx_fail(x, 400, at->line, at->col,
                     "the filter operator of \"%s\" is not supported (only _geq, _gt, _leq, _lt "
                     "and equality)",
                     key);
    else if (!json_is_string(v) || parse_time(json_string_value(v), d->g == 86400, &ms) != 0)
        api__gx_fail(x, 400, at->line, at->col,
                     d->g == 86400 ? "error parsing args: %s must be a date \"YYYY-MM-DD\""
                                   : "error parsing args: %s must be a time "
                                     "\"YYYY-MM-DDTHH:MM:SSZ\"",
                     key);
    else
        time_bound(p, op, ms, d->g * 1000);
    return x->failed ? -1 : 0;
}

static bool has_value(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* The field's allowed values become those also in allowed (AND of equality and _in). */
static void restrict_values(plan *p, size_t slot, json_t *allowed)
{
    json_t *next = json_array(), *cur = p->vals[slot], *v;
    size_t i;
    json_array_foreach(allowed, i, v)
    {
        const char *s = json_string_value(v);
        if (!has_value(next, s) && (!cur || has_value(cur, s)))
            json_array_append(next, v);
    }
    json_decref(cur);
    p->vals[slot] = next;
}

static bool all_strings(json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return false;
    }
    return json_is_array(arr);
}

static int eq_filter(api__gx *x, const gql_value *at, const dim *d, const char *op, const char *key,
                     json_t *v, plan *p)
{
    bool in = !strcmp(op, "in");
    if ((*op && !in) || (d->kind != D_KEY && d->kind != D_CUSTOM && d->kind != D_USER)) {
        api__gx_fail(x, 400, at->line, at->col,
                     "the filter \"%s\" is not supported (keyId, customIdentifier and username "
                     "take equality and _in)",
                     key);
        return -1;
    }
    json_t *allowed = in ? json_incref(v) : json_pack("[O]", v);
    int rc = 0;
    if (!all_strings(allowed)) {
        api__gx_fail(x, 400, at->line, at->col,
                     in ? "error parsing args: %s must be a list of strings"
                        : "error parsing args: %s must be a string",
                     key);
        rc = -1;
    } else {
        restrict_values(p, (size_t)(d->kind - D_KEY), allowed);
    }
    json_decref(allowed);
    return rc;
}

static int apply_filter(api__gx *x, const gql_value *at, json_t *obj, plan *p, int depth);

static int and_filter(api__gx *x, const gql_value *at, json_t *list, plan *p, int depth)
{
    size_t i;
    json_t *item;
    if (!json_is_array(list) || depth >= MAX_AND_DEPTH) {
        api__gx_fail(x, 400, at->line, at->col,
                     "error parsing args: AND takes a list of filters (nested at most %d deep)",
                     MAX_AND_DEPTH);
        return -1;
    }
    json_array_foreach(list, i, item)
    {
        if (apply_filter(x, at, item, p, depth + 1) != 0)
            return -1;
    }
    return 0;
}

static int filter_entry(api__gx *x, const gql_value *at, const char *key, json_t *v, plan *p,
                        int depth)
{
    if (json_is_null(v))
        return 0; /* an unset optional variable */
    if (!strcmp(key, "AND"))
        return and_filter(x, at, v, p, depth);
    const char *us = strrchr(key, '_');
    const dim *d = find_dim(key, strlen(key));
    const char *op = "";
    if (!d && us) {
        d = find_dim(key, (size_t)(us - key));
        op = us + 1;
    }
    if (!d) {
        api__gx_fail(x, 400, at->line, at->col,
                     !strcmp(key, "OR") ? "the filter OR is not supported"
                                        : "unknown filter field \"%s\" of "
                                          "callsTurnUsageAdaptiveGroups",
                     key);
        return -1;
    }
    if (d->kind == D_TIME)
        return time_filter(x, at, d, op, key, v, p);
    return eq_filter(x, at, d, op, key, v, p);
}

static int apply_filter(api__gx *x, const gql_value *at, json_t *obj, plan *p, int depth)
{
    const char *k;
    json_t *v;
    if (!json_is_object(obj)) {
        api__gx_fail(x, 400, at->line, at->col, "error parsing args: filter must be an object");
        return -1;
    }
    json_object_foreach(obj, k, v)
    {
        if (filter_entry(x, at, k, v, p, depth) != 0)
            return -1;
    }
    return 0;
}

/* --- orderBy and limit --------------------------------------------------------------------------- */

static int order_key(api__gx *x, const gql_value *at, const char *s, plan *p)
{
    size_t n = strlen(s);
    bool desc = n > 5 && !strcmp(s + n - 5, "_DESC");
    bool asc = n > 4 && !strcmp(s + n - 4, "_ASC");
    size_t base = n - (desc ? 5 : asc ? 4 : 0);
    sortkey k = {.d = (asc || desc) ? find_dim(s, base) : NULL, .desc = desc};
    size_t m = 0;
    while (!k.d && (asc || desc) && m < 3 &&
           (strlen(metrics[m].order) != base || strncmp(metrics[m].order, s, base)))
        m++;
    k.m = (enum metric)m;
    const char *why = NULL;
    if (!k.d && m == 3)
        why = "orderBy \"%s\" is not supported (a dimension or sum_/avg_ field, _ASC or _DESC)";
    else if (k.d && k.d->kind == D_TIME && (p->step == 0 || k.d->g < p->step))
        why = "orderBy \"%s\" needs its time dimension (or a finer one) among the dimensions";
    else if (k.d && k.d->kind != D_TIME && !(p->group & k.d->group))
        why = "orderBy \"%s\" needs that field among the dimensions";
    else if (p->nkeys == MAX_ORDER)
        why = "orderBy takes at most 8 fields (\"%s\")";
    if (why) {
        api__gx_fail(x, 400, at->line, at->col, why, s);
        return -1;
    }
    p->keys[p->nkeys++] = k;
    return 0;
}

static int order_by(api__gx *x, const gql_value *at, json_t *v, plan *p)
{
    size_t i;
    json_t *item;
    if (json_is_string(v))
        return order_key(x, at, json_string_value(v), p);
    if (!json_is_array(v)) {
        api__gx_fail(x, 400, at->line, at->col, "error parsing args: orderBy must be a list");
        return -1;
    }
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            api__gx_fail(x, 400, at->line, at->col, "error parsing args: orderBy holds enums");
            return -1;
        }
        if (order_key(x, at, json_string_value(item), p) != 0)
            return -1;
    }
    return 0;
}

static int limit_arg(api__gx *x, const gql_value *at, json_t *v, plan *p)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_LIMIT) {
        api__gx_fail(x, 400, at->line, at->col,
                     "limit must be positive number and not greater than %d", MAX_LIMIT);
        return -1;
    }
    p->limit = (size_t)json_integer_value(v);
    return 0;
}

/* filter, limit and orderBy (after the selection: orderBy checks the dimensions). */
static int arguments(api__gx *x, const gql_field *f, plan *p)
{
    for (const gql_value *a = f->args; a; a = a->next) {
        json_t *v = api__gx_value(x, a);
        int rc = -1;
        if (!v)
            return -1;
        if (!strcmp(a->name, "filter"))
            rc = apply_filter(x, a, v, p, 0);
        else if (!strcmp(a->name, "limit"))
            rc = limit_arg(x, a, v, p);
        else if (!strcmp(a->name, "orderBy"))
            rc = order_by(x, a, v, p);
        else
            api__gx_fail(x, 400, a->line, a->col,
                         "unknown argument \"%s\" on callsTurnUsageAdaptiveGroups (filter, "
                         "limit, orderBy)",
                         a->name);
        json_decref(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* --- groups: avg, sort, output -------------------------------------------------------------------- */

static double avg_of(const plan *p, const store_usage_row *r)
{
    int64_t start = p->step ? r->bucket * 1000 : p->since_ms;
    int64_t end = p->step ? start + p->step * 1000 : p->until_ms;
    start = start > p->since_ms ? start : p->since_ms;
    end = end < p->until_ms ? end : p->until_ms;
    end = end < p->now_ms ? end : p->now_ms;
    return end > start ? (double)r->alloc_ms / (double)(end - start) : 0.0;
}

static const char *dim_text(const dim *d, const store_usage_row *r)
{
    switch (d->kind) {
    case D_KEY: return r->key_uid;
    case D_CUSTOM: return r->custom_id;
    case D_USER: return r->username;
    case D_NODE: return r->node;
    default: return NULL;
    }
}

static int cmp_key(const sortkey *k, const group *a, const group *b)
{
    if (k->d && k->d->kind == D_TIME) {
        int64_t ta = floor_to(a->r->bucket, k->d->g), tb = floor_to(b->r->bucket, k->d->g);
        return (ta > tb) - (ta < tb);
    }
    if (k->d && k->d->kind == D_NULL)
        return 0;
    if (k->d)
        return strcmp(dim_text(k->d, a->r), dim_text(k->d, b->r));
    if (k->m == M_AVG)
        return (a->avg > b->avg) - (a->avg < b->avg);
    uint64_t va = k->m == M_EGRESS ? a->r->egress_bytes : a->r->ingress_bytes;
    uint64_t vb = k->m == M_EGRESS ? b->r->egress_bytes : b->r->ingress_bytes;
    return (va > vb) - (va < vb);
}

/* orderBy, then the store's order (the grouping fields), as Cloudflare appends it. */
static int cmp_groups(const void *va, const void *vb, void *ctx)
{
    const plan *p = ctx;
    const group *a = va, *b = vb;
    for (size_t i = 0; i < p->nkeys; i++) {
        int c = cmp_key(&p->keys[i], a, b);
        if (c)
            return p->keys[i].desc ? -c : c;
    }
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = util_xstrdup(s); /* not UTF-8 (cannot come from the mint API): made ASCII */
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *dim_json(const dim *d, const store_usage_row *r)
{
    if (d->kind == D_NULL)
        return json_null();
    if (d->kind != D_TIME)
        return text_json(dim_text(d, r));
    char t[32];
    util_rfc3339(floor_to(r->bucket, d->g), t);
    if (d->g == 86400)
        t[10] = '\0';
    return json_string(t);
}

static json_t *group_json(const gql_field *f, const group *g)
{
    json_t *o = json_object();
    for (const gql_field *c = f->sel; c; c = c->next) {
        json_t *blk = json_object();
        for (const gql_field *m = c->sel; m; m = m->next) {
            json_t *v;
            if (!strcmp(c->name, "dimensions"))
                v = dim_json(find_dim(m->name, strlen(m->name)), g->r);
            else if (!strcmp(m->name, "egressBytes"))
                v = json_integer((json_int_t)g->r->egress_bytes);
            else if (!strcmp(m->name, "ingressBytes"))
                v = json_integer((json_int_t)g->r->ingress_bytes);
            else
                v = json_real(g->avg);
            json_object_set_new(blk, gql_response_key(m), v);
        }
        json_object_set_new(o, gql_response_key(c), blk);
    }
    return o;
}

/* The store's order of rows (bucket, then the grouping fields). */
static int cmp_rows(const void *va, const void *vb)
{
    const store_usage_row *a = va, *b = vb;
    int c = (a->bucket > b->bucket) - (a->bucket < b->bucket);
    if (!c)
        c = strcmp(a->key_uid, b->key_uid);
    if (!c)
        c = strcmp(a->custom_id, b->custom_id);
    if (!c)
        c = strcmp(a->username, b->username);
    return c ? c : strcmp(a->node, b->node);
}

/* Rows of several queries (one per combination of _in values) as one set of groups: in the
 * store's order, equal groups added up. Returns the new count. */
static size_t merge_rows(store_usage_row *r, size_t n)
{
    qsort(r, n, sizeof *r, cmp_rows);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o > 0 && cmp_rows(&r[o - 1], &r[i]) == 0) {
            r[o - 1].egress_bytes += r[i].egress_bytes;
            r[o - 1].ingress_bytes += r[i].ingress_bytes;
            r[o - 1].alloc_ms += r[i].alloc_ms;
            r[o - 1].peak_allocs += r[i].peak_allocs;
        } else {
            r[o++] = r[i];
        }
    }
    return o;
}

/* One store query per combination of the allowed values; -1 with the error set. */
static int fetch(api__gx *x, const gql_field *f, const plan *p, const char *acct,
                 store_usage_row **all, size_t *n)
{
    size_t counts[3], combos = 1;
    for (size_t s = 0; s < 3; s++) {
        counts[s] = p->vals[s] ? json_array_size(p->vals[s]) : 1;
        combos *= counts[s];
        if (combos > MAX_COMBOS) {
            api__gx_fail(x, 400, f->line, f->col,
                         "the _in filters allow at most %d combinations of values", MAX_COMBOS);
            return -1;
        }
    }
    for (size_t c = 0; c < combos; c++) {
        const char *v[3];
        for (size_t s = 0, rest = c; s < 3; rest /= counts[s], s++)
            v[s] =
                p->vals[s] ? json_string_value(json_array_get(p->vals[s], rest % counts[s])) : NULL;
        store_usage_filter q = {.account_id = acct,
                                .key_uid = v[0],
                                .custom_id = v[1],
                                .username = v[2],
                                .since = p->since_ms / 1000,
                                .until = p->until_ms / 1000,
                                .step = p->step,
                                .group_by = p->group,
                                .limit = MAX_GROUPS + 1};
        store_usage_row *rows = NULL;
        size_t k = 0, total = 0;
        if (store_usage_query(x->st, &q, &rows, &k, &total) != STORE_OK) {
            free(rows);
            api__gx_fail(x, 500, 0, 0, "Internal server error");
            return -1;
        }
        if (*n + k > MAX_GROUPS) {
            free(rows);
            api__gx_fail(x, 400, f->line, f->col,
                         "the query matches more than %d groups: narrow the filter or the time "
                         "range",
                         MAX_GROUPS);
            return -1;
        }
        *all = util_xrealloc(*all, (*n + k + 1) * sizeof **all);
        if (k)
            memcpy(*all + *n, rows, k * sizeof *rows);
        *n += k;
        free(rows);
    }
    if (combos > 1)
        *n = merge_rows(*all, *n);
    return 0;
}

static json_t *answer(api__gx *x, const gql_field *f, const plan *p, const char *acct)
{
    if (p->empty || p->since_ms >= p->until_ms)
        return json_array();
    store_usage_row *rows = NULL;
    size_t n = 0;
    if (fetch(x, f, p, acct, &rows, &n) != 0) {
        free(rows);
        return NULL;
    }
    group *g = util_xcalloc(n ? n : 1, sizeof *g);
    for (size_t i = 0; i < n; i++)
        g[i] = (group){.r = &rows[i], .avg = p->avg ? avg_of(p, &rows[i]) : 0, .idx = i};
    qsort_r(g, n, sizeof *g, cmp_groups, (void *)p);
    json_t *out = json_array();
    for (size_t i = 0; i < n && i < p->limit; i++)
        json_array_append_new(out, group_json(f, &g[i]));
    free(g);
    free(rows);
    return out;
}

json_t *api__gql_usage(api__gx *x, const gql_field *f, const char *account_id)
{
    plan p = {.until_ms = NO_END_MS, .limit = MAX_LIMIT, .now_ms = x->now_ms};
    json_t *out = NULL;
    if (select_fields(x, f, &p) != 0 || arguments(x, f, &p) != 0)
        goto done;
    if (p.avg && p.step == 0 && p.since_ms == 0) {
        api__gx_fail(x, 400, f->line, f->col,
                     "avg.concurrentConnectionsFiveMinutes needs a time dimension or a lower "
                     "time bound in the filter (%s)",
                     "date_geq, datetime_geq, ...");
        goto done;
    }
    out = answer(x, f, &p, account_id);
done:
    for (size_t i = 0; i < 3; i++)
        json_decref(p.vals[i]);
    return out;
}
