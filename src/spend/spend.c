/* spend: the spend guard (see include/turnkey/spend.h). */
#include "turnkey/spend.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/log.h"
#include "turnkey/metrics.h"
#include "turnkey/policy.h"
#include "turnkey/util.h"

#define SPEND_KEYS_MAX 100000
#define PURGE_EVERY_S 86400
#define KEEP_ENDED_S (62 * 86400) /* ended periods' rows stay for GET .../policy */

struct spend {
    spend_config cfg;
    int64_t next_purge;
    atomic_ullong runs, failures, notified, tripped;
};

/* Usage of one key in the current periods: the key's own and each customIdentifier's. */
typedef struct tally {
    char cid[65];
    uint64_t day, month;
} tally;

typedef struct usage_now {
    int64_t day_start, day_end, month_start, month_end;
    tally key;
    tally *cids;
    size_t n_cids;
} usage_now;

spend *spend_new(const spend_config *cfg)
{
    spend *g = util_xcalloc(1, sizeof *g);
    g->cfg = *cfg;
    if (!g->cfg.max_keys)
        g->cfg.max_keys = SPEND_KEYS_MAX;
    return g;
}

void spend_free(spend *g)
{
    free(g);
}

void spend_stats_read(const spend *g, spend_stats *out)
{
    out->runs = atomic_load(&g->runs);
    out->failures = atomic_load(&g->failures);
    out->notified = atomic_load(&g->notified);
    out->tripped = atomic_load(&g->tripped);
}

void spend_metrics(const spend *g, struct metrics_buf *b)
{
    spend_stats s;
    spend_stats_read(g, &s);
    metrics_family(b, "turnkey_spend_runs_total", "counter", "Spend guard runs.");
    metrics_u64(b, "turnkey_spend_runs_total", "result=\"ok\"", s.runs - s.failures);
    metrics_u64(b, "turnkey_spend_runs_total", "result=\"failed\"", s.failures);
    metrics_family(b, "turnkey_spend_budget_events_total", "counter",
                   "Budget levels this node advanced (notified) and budgets it tripped.");
    metrics_u64(b, "turnkey_spend_budget_events_total", "event=\"notified\"", s.notified);
    metrics_u64(b, "turnkey_spend_budget_events_total", "event=\"tripped\"", s.tripped);
}

static int by_custom_id(const void *a, const void *b)
{
    return strcmp(((const store_usage_row *)a)->custom_id, ((const store_usage_row *)b)->custom_id);
}

/* The key's egress of this UTC month by day (and by customIdentifier when p has budgets for
 * them) from every node's rows: 0, -1 store error. */
static int read_usage(spend *g, const keycache_budget_key *k, int64_t now, usage_now *u)
{
    memset(u, 0, sizeof *u);
    policy_day(now, &u->day_start, &u->day_end);
    policy_month(now, &u->month_start, &u->month_end);
    bool by_cid = k->p.cid_daily_bytes || k->p.cid_monthly_bytes;
    store_usage_filter f = {.account_id = k->account_id,
                            .key_uid = k->uid,
                            .since = u->month_start,
                            .until = u->day_end,
                            .step = 86400,
                            .group_by = by_cid ? STORE_USAGE_BY_CUSTOM_ID : 0};
    store_usage_row *rows;
    size_t n, total;
    if (store_usage_query(g->cfg.st, &f, &rows, &n, &total) != STORE_OK)
        return -1;
    if (by_cid) { /* rows of one customIdentifier next to each other: one tally each */
        qsort(rows, n, sizeof *rows, by_custom_id);
        u->cids = util_xcalloc(n ? n : 1, sizeof *u->cids);
    }
    for (size_t i = 0; i < n; i++) {
        bool today = rows[i].bucket == u->day_start;
        u->key.month += rows[i].egress_bytes;
        u->key.day += today ? rows[i].egress_bytes : 0;
        if (!by_cid || !rows[i].custom_id[0])
            continue;
        if (!u->n_cids || strcmp(u->cids[u->n_cids - 1].cid, rows[i].custom_id) != 0)
            snprintf(u->cids[u->n_cids++].cid, sizeof u->cids[0].cid, "%s", rows[i].custom_id);
        tally *t = &u->cids[u->n_cids - 1];
        t->month += rows[i].egress_bytes;
        t->day += today ? rows[i].egress_bytes : 0;
    }
    free(rows);
    return 0;
}

static char *event_json(const keycache_budget_key *k, const store_budget *b, uint64_t used)
{
    char start[32], end[32];
    util_rfc3339(b->period_start, start);
    util_rfc3339(b->period_end, end);
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:I, s:i, s:s}", "accountId", k->account_id, "keyId",
        k->uid, "customIdentifier", b->custom_id[0] ? json_string(b->custom_id) : json_null(),
        "period", b->period == STORE_BUDGET_DAY ? "day" : "month", "periodStart", start,
        "periodEnd", end, "limitBytes", (json_int_t)b->limit_bytes, "usedBytes", (json_int_t)used,
        "percentage", b->level, "action", policy_action_name(k->p.action));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

/* One budget of one key in its current period. */
typedef struct budget_now {
    const char *cid;
    int period;
    int64_t start, end;
    uint64_t limit, used;
} budget_now;

static void log_trip(const keycache_budget_key *k, const budget_now *x)
{
    log_warn("spend", "key %s%s%s: %s budget of %llu bytes exceeded (%llu used): %s", k->uid,
             x->cid[0] ? " customIdentifier " : "", x->cid,
             x->period == STORE_BUDGET_DAY ? "daily" : "monthly", (unsigned long long)x->limit,
             (unsigned long long)x->used, policy_action_name(k->p.action));
}

static void notify(spend *g, const keycache_budget_key *k, const budget_now *x,
                   const store_budget *b)
{
    const char *type = b->level == 100 ? "budget.exceeded" : "budget.threshold";
    log_info("spend", "key %s%s%s: %s budget at %d%% (%s)", k->uid,
             x->cid[0] ? " customIdentifier " : "", x->cid,
             x->period == STORE_BUDGET_DAY ? "daily" : "monthly", b->level, type);
    char *data = event_json(k, b, x->used);
    if (data && g->cfg.on_event)
        g->cfg.on_event(g->cfg.ctx, type, data);
    free(data);
}

/* Records the level x reached; emits the event when this node advanced it. 1 advanced, 0
 * not, -1 store error. */
static int check(spend *g, const keycache_budget_key *k, const budget_now *x, int64_t now)
{
    int level = policy_level(&k->p, x->used, x->limit);
    if (!x->limit || !level)
        return 0;
    store_budget b = {.period = x->period,
                      .period_start = x->start,
                      .period_end = x->end,
                      .limit_bytes = x->limit,
                      .level = level,
                      .tripped = level == 100 && k->p.action != POLICY_NOTIFY ? k->p.action : 0};
    memcpy(b.key_uid, k->uid, sizeof b.key_uid);
    snprintf(b.custom_id, sizeof b.custom_id, "%s", x->cid);
    unsigned adv;
    int rc = store_budget_mark(g->cfg.st, &b, &adv);
    if (rc == STORE_NOT_FOUND)
        return 0; /* the key was deleted meanwhile */
    if (rc != STORE_OK)
        return -1;
    if (adv & STORE_BUDGET_TRIP) {
        atomic_fetch_add(&g->tripped, 1);
        log_trip(k, x);
        keycache_policy_refresh(g->cfg.kc, k->uid, now); /* this node's mints stop at once */
    }
    if (adv & STORE_BUDGET_NOTIFY) {
        atomic_fetch_add(&g->notified, 1);
        notify(g, k, x, &b);
    }
    return adv ? 1 : 0;
}

/* Every budget of one key: the number that advanced, or -1. */
static int check_key(spend *g, const keycache_budget_key *k, int64_t now)
{
    usage_now u;
    if (read_usage(g, k, now, &u) != 0)
        return -1;
    const policy *p = &k->p;
    size_t nb = 2 + 2 * u.n_cids, m = 0;
    budget_now *x = util_xcalloc(nb, sizeof *x);
    x[m++] = (budget_now){"", STORE_BUDGET_DAY, u.day_start, u.day_end, p->daily_bytes, u.key.day};
    x[m++] = (budget_now){"",          STORE_BUDGET_MONTH, u.month_start,
                          u.month_end, p->monthly_bytes,   u.key.month};
    for (size_t i = 0; i < u.n_cids; i++) {
        const tally *t = &u.cids[i];
        x[m++] = (budget_now){t->cid,    STORE_BUDGET_DAY,   u.day_start,
                              u.day_end, p->cid_daily_bytes, t->day};
        x[m++] = (budget_now){t->cid,      STORE_BUDGET_MONTH,   u.month_start,
                              u.month_end, p->cid_monthly_bytes, t->month};
    }
    int n = 0;
    for (size_t i = 0; i < m && n >= 0; i++) {
        int r = check(g, k, &x[i], now);
        n = r < 0 ? -1 : n + r;
    }
    free(x);
    free(u.cids);
    return n;
}

int spend_run(spend *g, int64_t now)
{
    atomic_fetch_add(&g->runs, 1);
    size_t total = keycache_budget_keys(g->cfg.kc, NULL, 0);
    size_t max = total < g->cfg.max_keys ? total : g->cfg.max_keys;
    keycache_budget_key *keys = max ? util_xcalloc(max, sizeof *keys) : NULL;
    size_t n = keycache_budget_keys(g->cfg.kc, keys, max);
    if (n > max)
        n = max; /* keys that came meanwhile wait for the next run */
    if (total > g->cfg.max_keys)
        log_warn("spend", "%zu keys have budgets; %zu are checked per run", total, max);
    int advanced = 0;
    bool failed = false;
    for (size_t i = 0; i < n; i++) {
        int r = check_key(g, &keys[i], now);
        failed |= r < 0;
        advanced += r > 0 ? r : 0;
    }
    free(keys);
    if (now >= g->next_purge) {
        size_t purged = 0;
        if (store_budget_purge(g->cfg.st, now - KEEP_ENDED_S, &purged) == STORE_OK) {
            g->next_purge = now + PURGE_EVERY_S;
            if (purged)
                log_info("spend", "purged %zu budget rows of periods ended long ago", purged);
        }
    }
    if (failed) {
        atomic_fetch_add(&g->failures, 1);
        log_error("spend", "the spend guard could not read or record usage (retried next run)");
        return -1;
    }
    return advanced;
}
