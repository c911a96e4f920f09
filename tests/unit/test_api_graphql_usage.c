/* api: POST /client/v4/graphql end to end over a real store (SQLite :memory:): usage rows
 * written with store_usage_add are read back through Cloudflare's documented query texts
 * (https://developers.cloudflare.com/realtime/turn/analytics/), sent unchanged but for the
 * account id and the dates, and the answers are checked to the byte. */
#include <jansson.h>
#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/api.h"
#include "turnkey/util.h"

#define NOW_MS 1764700000000LL /* 2025-12-02T18:26:40Z */
#define KEY_A "82a58d0aeabfa8f4a4e0c4a9efc9cda5"
#define KEY_B "74007022d80d7ebac4815fb776b9d3ed"

typedef struct fx {
    store *st;
    api_server *api;
    char acct[STORE_ID_LEN + 1], other[STORE_ID_LEN + 1];
    char token[STORE_TOKEN_LEN + 1];
} fx;

static int64_t t_of(const char *s)
{
    struct tm tm = {0};
    strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return (int64_t)timegm(&tm);
}

static store_usage_delta delta(const char *acct, const char *when, const char *key,
                               const char *custom, const char *user, const char *node,
                               uint64_t egress, uint64_t ingress, uint64_t alloc_ms)
{
    store_usage_delta d = {.minute = t_of(when),
                           .egress_bytes = egress,
                           .ingress_bytes = ingress,
                           .alloc_ms = alloc_ms,
                           .peak_allocs = 1};
    snprintf(d.account_id, sizeof d.account_id, "%s", acct);
    snprintf(d.key_uid, sizeof d.key_uid, "%s", key);
    snprintf(d.custom_id, sizeof d.custom_id, "%s", custom);
    snprintf(d.username, sizeof d.username, "%s", user);
    snprintf(d.node, sizeof d.node, "%s", node);
    return d;
}

/* Two keys, two custom identifiers, two nodes on 2025-12-01, and one row of another account
 * (which no query of this account may see). */
static bool fx_open(fx *f)
{
    memset(f, 0, sizeof *f);
    char *err = NULL;
    f->st = store_open(":memory:", &err);
    store_account a, b;
    store_token t;
    if (!f->st || store_account_create(f->st, "acct", 1, &a) != STORE_OK ||
        store_account_create(f->st, "other", 1, &b) != STORE_OK)
        return false;
    snprintf(f->acct, sizeof f->acct, "%s", a.id);
    snprintf(f->other, sizeof f->other, "%s", b.id);
    store_account_clear(&a);
    store_account_clear(&b);
    if (store_token_create(f->st, f->acct, "a", STORE_PERM_ANALYTICS_READ, 0, 1, &t, f->token) !=
        STORE_OK)
        return false;
    store_token_clear(&t);
    store_usage_delta d[] = {
        delta(f->acct, "2025-12-01T00:00:00Z", KEY_A, "tango", "1764600000:tango", "node-a", 1000,
              100, 60000),
        delta(f->acct, "2025-12-01T00:00:00Z", KEY_A, "tango", "1764600000:tango", "node-b", 500,
              50, 30000),
        delta(f->acct, "2025-12-01T00:02:00Z", KEY_A, "", "1764600000", "node-a", 250, 25, 60000),
        delta(f->acct, "2025-12-01T00:07:00Z", KEY_A, "tango", "1764600000:tango", "node-a", 7, 3,
              60000),
        delta(f->acct, "2025-12-01T01:30:00Z", KEY_B, "foxtrot", "1764600001:foxtrot", "node-b",
              90000, 10, 120000),
        delta(f->other, "2025-12-01T00:00:00Z", KEY_A, "tango", "x", "node-a", 999999, 9, 1),
    };
    if (store_usage_add(f->st, d, sizeof d / sizeof d[0]) != STORE_OK)
        return false;
    api_config cfg = {0};
    f->api = api_new(f->st, &cfg, NULL);
    return true;
}

static void fx_close(fx *f)
{
    api_free(f->api);
    store_close(f->st);
}

/* POSTs the query with variables accountId (this account), dateFrom and dateTo; returns the
 * groups array of the first dataset of the first account ("" and the error on failure). */
static char *groups(fx *f, const char *query, const char *from, const char *to)
{
    json_t *body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "query", query, "variables", "accountId",
                             f->acct, "dateFrom", from, "dateTo", to);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char auth[64];
    snprintf(auth, sizeof auth, "Bearer %s", f->token);
    api_request req = {.method = "POST",
                       .path = "/client/v4/graphql",
                       .authorization = auth,
                       .body = (const uint8_t *)text,
                       .body_len = strlen(text)};
    api_response r;
    api_handle(f->api, &req, NOW_MS, &r);
    free(text);
    json_t *doc = json_loads(r.body, 0, NULL);
    json_t *viewer = json_object_get(json_object_get(doc, "data"), "viewer");
    const char *k;
    json_t *acc = NULL, *v, *out = NULL;
    json_object_foreach(viewer, k, v) acc = json_array_get(v, 0);
    json_object_foreach(acc, k, v) out = out ? out : v;
    char *s = out && r.status == 200 ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15))
                                     : util_xstrdup(r.body);
    json_decref(doc);
    api_response_clear(&r);
    return s;
}

/* "Top TURN keys by egress" (the page's 2024 text, literal values but the account). */
static void t_top_keys_by_egress(void)
{
    fx f;
    CHECK(fx_open(&f));
    char *q = util_xasprintf(
        "query{ viewer { usage: accounts(filter: { accountTag: \"%s\" }) { "
        "callsTurnUsageAdaptiveGroups( filter: { datetimeMinute_gt: \"2025-11-30T02:07:07Z\" "
        "datetimeMinute_lt: \"2025-12-10T02:07:05Z\" } limit: 2 orderBy: [sum_egressBytes_DESC] "
        ") { dimensions { keyId } sum { egressBytes } } } } }",
        f.acct);
    char *s = groups(&f, q, "", "");
    free(q);
    CHECK_STR(s, "[{\"dimensions\":{\"keyId\":\"" KEY_B "\"},\"sum\":{\"egressBytes\":90000}},"
                 "{\"dimensions\":{\"keyId\":\"" KEY_A "\"},\"sum\":{\"egressBytes\":1757}}]");
    free(s);
    fx_close(&f);
}

/* "Filter by specific key or identifier": five-minute buckets, avg concurrent connections. */
static void t_filter_by_key_five_minutes(void)
{
    fx f;
    CHECK(fx_open(&f));
    char *s = groups(&f,
                     "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n\t"
                     "\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tlimit: 1000\n\t\t\t\tfilter: {\n"
                     "\t\t\t\t\tkeyId: \"82a58d0aeabfa8f4a4e0c4a9efc9cda5\"\n\t\t\t\t\tdate_geq: "
                     "$dateFrom\n\t\t\t\t\tdate_leq: $dateTo\n\t\t\t\t}\n\t\t\t\torderBy: "
                     "[datetimeFiveMinutes_ASC]\n\t\t\t) {\n\t\t\t\tdimensions {\n\t\t\t\t\t"
                     "datetimeFiveMinutes\n\t\t\t\t\tkeyId\n\t\t\t\t}\n\t\t\t\tsum {\n\t\t\t\t\t"
                     "egressBytes\n\t\t\t\t\tingressBytes\n\t\t\t\t}\n\t\t\t\tavg {\n\t\t\t\t\t"
                     "concurrentConnectionsFiveMinutes\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}",
                     "2025-12-01", "2025-12-01");
    /* 00:00-00:05: 1750 + 25... bytes and 150 s of allocations in 300 s; 00:05: 60 s */
    CHECK_STR(s, "[{\"dimensions\":{\"datetimeFiveMinutes\":\"2025-12-01T00:00:00Z\",\"keyId\":"
                 "\"" KEY_A "\"},\"sum\":{\"egressBytes\":1750,\"ingressBytes\":175},\"avg\":{"
                 "\"concurrentConnectionsFiveMinutes\":0.5}},{\"dimensions\":{"
                 "\"datetimeFiveMinutes\":\"2025-12-01T00:05:00Z\",\"keyId\":\"" KEY_A "\"},"
                 "\"sum\":{\"egressBytes\":7,\"ingressBytes\":3},\"avg\":{"
                 "\"concurrentConnectionsFiveMinutes\":0.2}}]");
    free(s);
    fx_close(&f);
}

/* "Identifying top consumers": two dimensions, two sort keys. */
static void t_top_consumers(void)
{
    fx f;
    CHECK(fx_open(&f));
    char *s = groups(&f,
                     "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n\t"
                     "\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tlimit: 10\n\t\t\t\tfilter: { "
                     "date_geq: $dateFrom, date_leq: $dateTo }\n\t\t\t\torderBy: "
                     "[sum_egressBytes_DESC, sum_ingressBytes_DESC]\n\t\t\t) {\n\t\t\t\t"
                     "dimensions {\n\t\t\t\t\tkeyId\n\t\t\t\t\tcustomIdentifier\n\t\t\t\t}\n\t\t"
                     "\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t\t\t\tingressBytes\n\t\t\t\t}\n\t\t\t"
                     "}\n\t\t}\n\t}\n}",
                     "2025-12-01", "2025-12-01");
    CHECK_STR(s, "[{\"dimensions\":{\"keyId\":\"" KEY_B "\",\"customIdentifier\":\"foxtrot\"},"
                 "\"sum\":{\"egressBytes\":90000,\"ingressBytes\":10}},{\"dimensions\":{"
                 "\"keyId\":\"" KEY_A "\",\"customIdentifier\":\"tango\"},\"sum\":{"
                 "\"egressBytes\":1507,\"ingressBytes\":153}},{\"dimensions\":{\"keyId\":"
                 "\"" KEY_A "\",\"customIdentifier\":\"\"},\"sum\":{\"egressBytes\":250,"
                 "\"ingressBytes\":25}}]");
    free(s);
    /* the day before holds nothing */
    s = groups(&f,
               "query { viewer { accounts(filter: { accountTag: $accountId }) { "
               "callsTurnUsageAdaptiveGroups(filter: { date_geq: $dateFrom, date_leq: $dateTo }, "
               "limit: 10) { sum { egressBytes } } } } }",
               "2025-11-30", "2025-11-30");
    CHECK_STR(s, "[]");
    free(s);
    fx_close(&f);
}

/* "Combining multiple dimensions": hours by data center (the relaying node). */
static void t_hours_by_datacenter(void)
{
    fx f;
    CHECK(fx_open(&f));
    char *s = groups(&f,
                     "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n\t"
                     "\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tlimit: 10000\n\t\t\t\tfilter: { "
                     "date_geq: $dateFrom, date_leq: $dateTo }\n\t\t\t\torderBy: "
                     "[datetimeHour_ASC, sum_egressBytes_DESC]\n\t\t\t) {\n\t\t\t\tdimensions {\n"
                     "\t\t\t\t\tdatetimeHour\n\t\t\t\t\tdatacenterCity\n\t\t\t\t\t"
                     "datacenterCountry\n\t\t\t\t}\n\t\t\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t\t"
                     "\t\tingressBytes\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}",
                     "2025-12-01", "2025-12-01");
    CHECK_STR(s, "[{\"dimensions\":{\"datetimeHour\":\"2025-12-01T00:00:00Z\",\"datacenterCity\":"
                 "\"node-a\",\"datacenterCountry\":null},\"sum\":{\"egressBytes\":1257,"
                 "\"ingressBytes\":128}},{\"dimensions\":{\"datetimeHour\":"
                 "\"2025-12-01T00:00:00Z\",\"datacenterCity\":\"node-b\",\"datacenterCountry\":"
                 "null},\"sum\":{\"egressBytes\":500,\"ingressBytes\":50}},{\"dimensions\":{"
                 "\"datetimeHour\":\"2025-12-01T01:00:00Z\",\"datacenterCity\":\"node-b\","
                 "\"datacenterCountry\":null},\"sum\":{\"egressBytes\":90000,\"ingressBytes\":10}"
                 "}]");
    free(s);
    fx_close(&f);
}

/* Minute boundaries on stored rows: _gt/_lt of an unaligned time, _geq/_leq of an aligned one;
 * username equality, AND, and _in lists (one store query per combination, added up). */
static void t_minute_boundaries(void)
{
    fx f;
    CHECK(fx_open(&f));
    static const struct {
        const char *filter;
        const char *want;
    } cases[] = {
        {"datetimeMinute_gt: \"2025-12-01T00:00:30Z\"", "90257"}, /* minute 00:00 not > */
        {"datetimeMinute_geq: \"2025-12-01T00:00:30Z\"", "90257"},
        {"datetime_geq: \"2025-12-01T00:00:00Z\", datetime_lt: \"2025-12-01T00:02:00Z\"", "1500"},
        {"datetime_geq: \"2025-12-01T00:00:00Z\", datetime_leq: \"2025-12-01T00:02:00Z\"", "1750"},
        {"datetimeMinute_lt: \"2025-12-01T00:02:01Z\"", "1750"}, /* minute 00:02 is < 00:02:01 */
        {"datetimeMinute: \"2025-12-01T00:07:00Z\"", "7"},
        {"username: \"1764600000:tango\", date: \"2025-12-01\"", "1507"},
        {"AND: [{keyId: \"" KEY_B "\"}, {customIdentifier: \"foxtrot\"}]", "90000"},
        {"keyId_in: [\"" KEY_A "\", \"" KEY_B "\"]", "91757"},
        {"customIdentifier_in: [\"tango\", \"foxtrot\", \"none\"]", "91507"},
        {"customIdentifier_in: [\"tango\", \"\"], keyId_in: [\"" KEY_A "\", \"" KEY_B "\"]",
         "1757"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = util_xasprintf("query { viewer { accounts(filter: { accountTag: $accountId }) "
                                 "{ callsTurnUsageAdaptiveGroups(filter: { %s }) { sum { "
                                 "egressBytes } } } } }",
                                 cases[i].filter);
        char *s = groups(&f, q, "", "");
        char *want = util_xasprintf("[{\"sum\":{\"egressBytes\":%s}}]", cases[i].want);
        if (strcmp(s, want))
            fprintf(stderr, "  case %zu: %s\n", i, s);
        bool ok = !strcmp(s, want);
        free(q);
        free(s);
        free(want);
        CHECK(ok);
    }
    fx_close(&f);
}

int main(void)
{
    TK_RUN(t_top_keys_by_egress);
    TK_RUN(t_filter_by_key_five_minutes);
    TK_RUN(t_top_consumers);
    TK_RUN(t_hours_by_datacenter);
    TK_RUN(t_minute_boundaries);
    return tk_test_summary();
}
