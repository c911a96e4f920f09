/* audit: records, their JSON shape, and the audit_logs query string. */
#include "turnkey/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnkey/log.h"
#include "turnkey/util.h"

static char *dump(json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

int audit_record(store *s, const audit_actor *who, const char *account_id, const char *action,
                 const char *resource_type, const char *resource_id, json_t *old_value,
                 json_t *new_value, int64_t now_ms)
{
    store_audit e;
    memset(&e, 0, sizeof e);
    snprintf(e.account_id, sizeof e.account_id, "%s", account_id);
    snprintf(e.action, sizeof e.action, "%s", action);
    e.result = true;
    snprintf(e.actor_type, sizeof e.actor_type, "%s", who->type);
    snprintf(e.actor_id, sizeof e.actor_id, "%s", who->id);
    snprintf(e.actor_ip, sizeof e.actor_ip, "%s", who->ip ? who->ip : "");
    snprintf(e.interface, sizeof e.interface, "%s", who->interface);
    snprintf(e.resource_type, sizeof e.resource_type, "%s", resource_type);
    snprintf(e.resource_id, sizeof e.resource_id, "%s", resource_id);
    e.old_value = dump(old_value);
    e.new_value = dump(new_value);
    int rc = store_audit_add(s, &e, now_ms);
    log_fields(LOG_INFO, "audit", "control-plane change", LOG_S("action", e.action),
               LOG_S("resource_type", e.resource_type), LOG_S("resource_id", e.resource_id),
               LOG_S("account", e.account_id), LOG_S("actor_type", e.actor_type),
               LOG_S("actor", e.actor_id), LOG_S("ip", e.actor_ip),
               LOG_S("old", e.old_value ? e.old_value : ""),
               LOG_S("new", e.new_value ? e.new_value : ""), LOG_S("audit_id", e.id));
    if (rc != STORE_OK)
        log_error("audit", "could not store the audit record of %s %s %s", e.action,
                  e.resource_type, e.resource_id);
    free(e.old_value);
    free(e.new_value);
    return rc;
}

/* Cloudflare gives both the string and, when it parses, the JSON form of each value. */
static void add_value(json_t *o, const char *name, const char *json_name, const char *text)
{
    json_object_set_new(o, name, json_string(text ? text : ""));
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    json_object_set_new(o, json_name, v ? v : json_object());
}

json_t *audit_to_json(const store_audit *e)
{
    char when[32];
    util_rfc3339_ms(e->when, when);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(e->id));
    json_object_set_new(o, "action",
                        json_pack("{s:s, s:b}", "type", e->action, "result", e->result));
    json_object_set_new(
        o, "actor",
        json_pack("{s:s, s:s, s:s}", "id", e->actor_id, "type", e->actor_type, "ip", e->actor_ip));
    json_object_set_new(o, "interface", json_string(e->interface));
    json_t *md = e->metadata ? json_loads(e->metadata, 0, NULL) : NULL;
    json_object_set_new(o, "metadata", md ? md : json_object());
    add_value(o, "newValue", "newValueJson", e->new_value);
    add_value(o, "oldValue", "oldValueJson", e->old_value);
    json_object_set_new(o, "owner", json_pack("{s:s}", "id", e->account_id));
    json_object_set_new(o, "resource",
                        json_pack("{s:s, s:s}", "id", e->resource_id, "type", e->resource_type));
    json_object_set_new(o, "when", json_string(when));
    return o;
}

/* --- the query string ---------------------------------------------------------------- */

static int parse_int(const char *s, long lo, long hi, size_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int two(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' ? (s[0] - '0') * 10 + s[1] - '0'
                                                                    : -1;
}

int audit_parse_time(const char *s, int64_t *ms)
{
    int y1 = two(s), y2 = s[0] && s[1] ? two(s + 2) : -1;
    if (strlen(s) < 10 || y1 < 0 || y2 < 0 || s[4] != '-' || s[7] != '-')
        return -1;
    struct tm tm = {
        .tm_year = y1 * 100 + y2 - 1900, .tm_mon = two(s + 5) - 1, .tm_mday = two(s + 8)};
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return -1;
    const char *p = s + 10;
    int64_t frac_ms = 0, offset_s = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || p[3] != ':' || p[6] != ':')
            return -1;
        tm.tm_hour = two(p + 1), tm.tm_min = two(p + 4), tm.tm_sec = two(p + 7);
        if (tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
            tm.tm_sec > 60)
            return -1;
        p += 9;
        if (*p == '.') {
            int digits = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                if (digits < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            if (!digits)
                return -1;
            for (; digits < 3; digits++)
                frac_ms *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int hh = two(p + 1), mm = p[1] && p[2] && p[3] == ':' ? two(p + 4) : -1;
            if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
                return -1;
            offset_s = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return -1;
        }
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}

/* Copies a value into p->buf; NULL when it does not fit. */
static const char *keep(audit_params *p, size_t *used, const char *v)
{
    size_t n = strlen(v) + 1;
    if (*used + n > sizeof p->buf)
        return NULL;
    memcpy(p->buf + *used, v, n);
    *used += n;
    return p->buf + *used - n;
}

static int one_param(audit_params *p, size_t *used, const char *k, const char *v, char *err,
                     size_t cap)
{
    int bad = 0;
    if (!strcmp(k, "since") || !strcmp(k, "before")) {
        int64_t ms;
        bad = audit_parse_time(v, &ms) != 0;
        if (!bad)
            *(!strcmp(k, "since") ? &p->q.since : &p->q.before) = ms;
    } else if (!strcmp(k, "page")) {
        bad = parse_int(v, 1, 1000000000L, &p->page) != 0;
    } else if (!strcmp(k, "per_page")) {
        bad = parse_int(v, 1, AUDIT_PER_PAGE_MAX, &p->per_page) != 0;
    } else if (!strcmp(k, "direction")) {
        bad = strcmp(v, "asc") && strcmp(v, "desc");
        p->q.ascending = !strcmp(v, "asc");
    } else if (!strcmp(k, "action.type") || !strcmp(k, "resource.id") || !strcmp(k, "id")) {
        const char *kept = keep(p, used, v);
        bad = !kept || !*v;
        if (!strcmp(k, "action.type"))
            p->q.action = kept;
        else if (!strcmp(k, "resource.id"))
            p->q.resource_id = kept;
        else
            p->q.id = kept;
    }
    if (bad)
        snprintf(err, cap, "invalid value for the query parameter %s", k);
    return bad ? -1 : 0;
}

int audit_params_parse(const char *query, const char *account_id, audit_params *p, char *err,
                       size_t cap)
{
    memset(p, 0, sizeof *p);
    p->q.account_id = account_id;
    p->page = 1;
    p->per_page = AUDIT_PER_PAGE_DEFAULT;
    size_t used = 0;
    for (const char *s = query ? query : ""; *s;) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        char k[64], v[256];
        if (len && (util_percent_decode(s, eq ? (size_t)(eq - s) : len, true, k, sizeof k) != 0 ||
                    util_percent_decode(eq ? eq + 1 : s + len, eq ? len - (size_t)(eq - s) - 1 : 0,
                                        true, v, sizeof v) != 0)) {
            snprintf(err, cap, "malformed query string");
            return -1;
        }
        if (len && one_param(p, &used, k, v, err, cap) != 0)
            return -1;
        s += len + (amp ? 1 : 0);
    }
    if (p->q.since && p->q.before && p->q.since >= p->q.before) {
        snprintf(err, cap, "since must be earlier than before");
        return -1;
    }
    p->q.limit = p->per_page;
    p->q.offset = (p->page - 1) * p->per_page;
    return 0;
}

int audit_cli_list(store *s, const char *account_id, const char *query, FILE *out, FILE *err)
{
    audit_params ap;
    char msg[128];
    if (audit_params_parse(query, account_id, &ap, msg, sizeof msg) != 0) {
        fprintf(err, "turnkey: %s\n", msg);
        return 2;
    }
    store_audit *rows;
    size_t n, total;
    if (store_audit_list(s, &ap.q, &rows, &n, &total) != STORE_OK) {
        fprintf(err, "turnkey: could not read the audit log (store error)\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = audit_to_json(&rows[i]);
        char *line = json_dumps(o, JSON_COMPACT);
        fprintf(out, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
    }
    fprintf(err, "%zu of %zu record(s) (page %zu, %zu per page)\n", n, total, ap.page, ap.per_page);
    store_audit_array_free(rows, n);
    return 0;
}

int audit_cli_record(store *s, const char *account_id, const char *action,
                     const char *resource_type, const char *resource_id, json_t *old_value,
                     json_t *new_value)
{
    audit_actor who = {.type = "admin", .id = "cli", .ip = NULL, .interface = "CLI"};
    return audit_record(s, &who, account_id, action, resource_type, resource_id, old_value,
                        new_value, util_now_ms());
}
