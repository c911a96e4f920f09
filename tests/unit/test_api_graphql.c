/* api: POST /client/v4/graphql. Query texts are Cloudflare's, from
 * https://developers.cloudflare.com/realtime/turn/analytics/ (and the GraphQL Analytics API
 * pages it points to), sent unchanged but for the account id. This file checks the
 * translation into a store usage query (the usage_query op is replaced by a recorder that
 * answers fixed rows), the response shape, sorting, limits, avg, auth and every refusal. */
#include <jansson.h>
#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/api.h"
#include "turnkey/util.h"

#define NOW_MS 1764700000000LL /* 2025-12-02T18:26:40Z */

/* --- the recording usage_query -------------------------------------------------------------- */

typedef struct recorded {
    int calls;
    store_usage_filter q;
    char acct[80], key[80], custom[80], user[300];
    store_usage_row *rows;
    size_t n;
    bool fail;
} recorded;

static recorded rec;

static void keep(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

static int fake_query(void *ctx, const store_usage_filter *q, store_usage_row **out, size_t *n,
                      size_t *total)
{
    (void)ctx;
    rec.calls++;
    rec.q = *q;
    keep(rec.acct, sizeof rec.acct, q->account_id);
    keep(rec.key, sizeof rec.key, q->key_uid);
    keep(rec.custom, sizeof rec.custom, q->custom_id);
    keep(rec.user, sizeof rec.user, q->username);
    if (rec.fail)
        return STORE_ERROR;
    size_t k = q->limit && q->limit < rec.n ? q->limit : rec.n;
    *out = util_xcalloc(k ? k : 1, sizeof **out);
    if (k)
        memcpy(*out, rec.rows, k * sizeof **out);
    *n = k;
    *total = rec.n;
    return STORE_OK;
}

static store_usage_row row(int64_t bucket, const char *key, const char *custom, const char *node,
                           uint64_t egress, uint64_t ingress, uint64_t alloc_ms)
{
    store_usage_row r = {
        .bucket = bucket, .egress_bytes = egress, .ingress_bytes = ingress, .alloc_ms = alloc_ms};
    snprintf(r.key_uid, sizeof r.key_uid, "%s", key);
    snprintf(r.custom_id, sizeof r.custom_id, "%s", custom);
    snprintf(r.node, sizeof r.node, "%s", node);
    return r;
}

/* --- fixture ------------------------------------------------------------------------------------ */

typedef struct fx {
    store *st;
    store_ops ops; /* the SQLite ops with usage_query replaced */
    api_server *api;
    char acct[STORE_ID_LEN + 1];
    char token[STORE_TOKEN_LEN + 1], calls_token[STORE_TOKEN_LEN + 1];
} fx;

static bool fx_open(fx *f)
{
    memset(f, 0, sizeof *f);
    memset(&rec, 0, sizeof rec);
    char *err = NULL;
    f->st = store_open(":memory:", &err);
    if (!f->st)
        return false;
    f->ops = *f->st->ops;
    f->ops.usage_query = fake_query;
    f->st->ops = &f->ops;
    store_account a;
    store_token t;
    if (store_account_create(f->st, "acct", 1, &a) != STORE_OK)
        return false;
    snprintf(f->acct, sizeof f->acct, "%s", a.id);
    store_account_clear(&a);
    if (store_token_create(f->st, f->acct, "analytics", STORE_PERM_ANALYTICS_READ, 0, 1, &t,
                           f->token) != STORE_OK)
        return false;
    store_token_clear(&t);
    if (store_token_create(f->st, f->acct, "calls", STORE_PERM_READ | STORE_PERM_WRITE, 0, 1, &t,
                           f->calls_token) != STORE_OK)
        return false;
    store_token_clear(&t);
    api_config cfg = {0};
    f->api = api_new(f->st, &cfg, NULL);
    return true;
}

static void fx_close(fx *f)
{
    api_free(f->api);
    store_close(f->st);
    free(rec.rows);
    rec.rows = NULL;
}

static void set_rows(const store_usage_row *r, size_t n)
{
    free(rec.rows);
    rec.rows = util_xcalloc(n ? n : 1, sizeof *r);
    if (n)
        memcpy(rec.rows, r, n * sizeof *r);
    rec.n = n;
}

/* POSTs {"query": q, "variables": vars}; "ACCT" in q and in variables.accountId is replaced
 * by the account id. */
static json_t *post(fx *f, const char *token, const char *q, const char *vars, int *status)
{
    json_t *body = json_object();
    char *qq = util_xstrdup(q);
    for (char *s = strstr(qq, "ACCT"); s; s = strstr(qq, "ACCT")) {
        char *n = util_xasprintf("%.*s%s%s", (int)(s - qq), qq, f->acct, s + 4);
        free(qq);
        qq = n;
    }
    json_object_set_new(body, "query", json_string(qq));
    free(qq);
    if (vars) {
        json_t *v = json_loads(vars, 0, NULL);
        json_t *acct = json_object_get(v, "accountId");
        if (acct && !strcmp(json_string_value(acct), "ACCT"))
            json_object_set_new(v, "accountId", json_string(f->acct));
        json_object_set_new(body, "variables", v);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char auth[64];
    snprintf(auth, sizeof auth, "Bearer %s", token ? token : "");
    api_request req = {.method = "POST",
                       .path = "/client/v4/graphql",
                       .authorization = token ? auth : NULL,
                       .body = (const uint8_t *)text,
                       .body_len = strlen(text)};
    api_response r;
    api_handle(f->api, &req, NOW_MS, &r);
    free(text);
    *status = r.status;
    json_t *doc = r.body ? json_loads(r.body, 0, NULL) : NULL;
    if (!doc)
        fprintf(stderr, "  body: %s\n", r.body ? r.body : "(none)");
    api_response_clear(&r);
    return doc;
}

static char *dump(json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

/* The groups of the first dataset of viewer.accounts[0]. */
static json_t *groups_of(json_t *doc)
{
    json_t *acc =
        json_object_get(json_object_get(json_object_get(doc, "data"), "viewer"), "accounts");
    return json_object_get(json_array_get(acc, 0), "callsTurnUsageAdaptiveGroups");
}

/* The first error's message ("" if none). */
static const char *err_msg(json_t *doc)
{
    json_t *m = json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "message");
    return json_is_string(m) ? json_string_value(m) : "";
}

static int64_t t_of(const char *s)
{
    struct tm tm = {0};
    strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return (int64_t)timegm(&tm);
}

/* --- Cloudflare's documented queries ------------------------------------------------------------- */

/* "Top TURN keys by egress", the page's 2024 text (literal filter values). */
static void t_top_keys_by_egress(void)
{
    fx f;
    CHECK(fx_open(&f));
    store_usage_row rows[] = {
        row(0, "6b9e68b07dfee8cc2d116e4c51d6a957", "", "", 4853235, 1, 0),
        row(0, "74007022d80d7ebac4815fb776b9d3ed", "", "", 502614982, 2, 0),
        row(0, "82a58d0aeabfa8f4a4e0c4a9efc9cda5", "", "", 1000, 3, 0),
    };
    set_rows(rows, 3);
    int st;
    json_t *doc = post(&f, f.token,
                       "query{ viewer { usage: accounts(filter: { accountTag: \"ACCT\" }) { "
                       "callsTurnUsageAdaptiveGroups( filter: { datetimeMinute_gt: "
                       "\"2024-07-15T02:07:07Z\" datetimeMinute_lt: \"2024-08-10T02:07:05Z\" } "
                       "limit: 2 orderBy: [sum_egressBytes_DESC] ) { dimensions { keyId } sum { "
                       "egressBytes } } } } }",
                       NULL, &st);
    CHECK_INT(st, 200);
    char *s = dump(doc);
    json_decref(doc);
    CHECK_STR(s, "{\"data\":{\"viewer\":{\"usage\":[{\"callsTurnUsageAdaptiveGroups\":["
                 "{\"dimensions\":{\"keyId\":\"74007022d80d7ebac4815fb776b9d3ed\"},\"sum\":{"
                 "\"egressBytes\":502614982}},{\"dimensions\":{\"keyId\":"
                 "\"6b9e68b07dfee8cc2d116e4c51d6a957\"},\"sum\":{\"egressBytes\":4853235}}]}]}},"
                 "\"errors\":null}");
    free(s);
    CHECK_INT(rec.calls, 1);
    CHECK_STR(rec.acct, f.acct);
    CHECK_INT(rec.q.since, t_of("2024-07-15T02:08:00Z")); /* minute 02:07 is not > 02:07:07 */
    CHECK_INT(rec.q.until, t_of("2024-08-10T02:08:00Z")); /* minute 02:07 is < 02:07:05 */
    CHECK_INT(rec.q.step, 0);
    CHECK_INT(rec.q.group_by, STORE_USAGE_BY_KEY);
    CHECK_STR(rec.key, "(null)");
    fx_close(&f);
}

/* "Concurrent connections with data usage over time" (current text: undeclared variables). */
static void t_concurrent_connections_five_minutes(void)
{
    fx f;
    CHECK(fx_open(&f));
    int64_t b = t_of("2025-12-02T03:45:00Z");
    store_usage_row rows[] = {
        row(b, "", "", "", 207314144, 8534200, 300000 * 816),
        row(b + 300, "", "", "", 462909020, 128434592, 150000),
    };
    set_rows(rows, 2);
    int st;
    json_t *doc = post(&f, f.token,
                       "query concurrentConnections {\n\tviewer {\n\t\taccounts(filter: { "
                       "accountTag: $accountId }) {\n\t\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\t"
                       "limit: 10000\n\t\t\t\tfilter: { date_geq: $dateFrom, date_leq: $dateTo "
                       "}\n\t\t\t) {\n\t\t\t\tdimensions {\n\t\t\t\t\tdatetimeFiveMinutes\n\t\t\t"
                       "\t}\n\t\t\t\tavg {\n\t\t\t\t\tconcurrentConnectionsFiveMinutes\n\t\t\t\t}"
                       "\n\t\t\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t\t\t\tingressBytes\n\t\t\t\t}"
                       "\n\t\t\t}\n\t\t}\n\t}\n}\n",
                       "{\"accountId\":\"ACCT\",\"dateFrom\":\"2025-12-01\",\"dateTo\":"
                       "\"2025-12-02\"}",
                       &st);
    CHECK_INT(st, 200);
    char *s = dump(doc);
    json_decref(doc);
    CHECK_STR(s, "{\"data\":{\"viewer\":{\"accounts\":[{\"callsTurnUsageAdaptiveGroups\":[{"
                 "\"dimensions\":{\"datetimeFiveMinutes\":\"2025-12-02T03:45:00Z\"},\"avg\":{"
                 "\"concurrentConnectionsFiveMinutes\":816.0},\"sum\":{\"egressBytes\":207314144,"
                 "\"ingressBytes\":8534200}},{\"dimensions\":{\"datetimeFiveMinutes\":"
                 "\"2025-12-02T03:50:00Z\"},\"avg\":{\"concurrentConnectionsFiveMinutes\":0.5},"
                 "\"sum\":{\"egressBytes\":462909020,\"ingressBytes\":128434592}}]}]}},"
                 "\"errors\":null}");
    free(s);
    CHECK_INT(rec.q.since, t_of("2025-12-01T00:00:00Z"));
    CHECK_INT(rec.q.until, t_of("2025-12-03T00:00:00Z")); /* date_leq: the whole day */
    CHECK_INT(rec.q.step, 300);
    CHECK_INT(rec.q.group_by, 0);
    fx_close(&f);
}

/* "Usage for a specific custom identifier": customIdentifier equality, orderBy: []. */
static void t_specific_custom_identifier(void)
{
    fx f;
    CHECK(fx_open(&f));
    store_usage_row rows[] = {
        row(0, "74007022d80d7ebac4815fb776b9d3ed", "tango", "", 162641324, 0, 0)};
    set_rows(rows, 1);
    int st;
    json_t *doc = post(&f, f.token,
                       "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n"
                       "\t\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tfilter: {\n\t\t\t\t\t"
                       "date_geq: $dateFrom\n\t\t\t\t\tdate_leq: $dateTo\n\t\t\t\t\t"
                       "customIdentifier: \"tango\"\n\t\t\t\t}\n\t\t\t\tlimit: 100\n\t\t\t\t"
                       "orderBy: []\n\t\t\t) {\n\t\t\t\tdimensions {\n\t\t\t\t\tkeyId\n\t\t\t\t\t"
                       "customIdentifier\n\t\t\t\t}\n\t\t\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t"
                       "\t\t}\n\t\t\t}\n\t\t}\n\t}\n}",
                       "{\"accountId\":\"ACCT\",\"dateFrom\":\"2025-12-01\",\"dateTo\":"
                       "\"2025-12-01\"}",
                       &st);
    CHECK_INT(st, 200);
    char *s = dump(json_object_get(doc, "data"));
    json_decref(doc);
    CHECK_STR(s, "{\"viewer\":{\"accounts\":[{\"callsTurnUsageAdaptiveGroups\":[{\"dimensions\":{"
                 "\"keyId\":\"74007022d80d7ebac4815fb776b9d3ed\",\"customIdentifier\":\"tango\"},"
                 "\"sum\":{\"egressBytes\":162641324}}]}]}}");
    free(s);
    CHECK_STR(rec.custom, "tango");
    CHECK_INT(rec.q.group_by, STORE_USAGE_BY_KEY | STORE_USAGE_BY_CUSTOM_ID);
    CHECK_INT(rec.q.until - rec.q.since, 86400);
    fx_close(&f);
}

/* "Usage as a timeseries": orderBy datetimeMinute_ASC re-sorts the groups. */
static void t_timeseries_sorted(void)
{
    fx f;
    CHECK(fx_open(&f));
    int64_t b = t_of("2025-12-01T00:00:00Z");
    store_usage_row rows[] = {row(b + 120, "", "", "", 3, 0, 0), row(b, "", "", "", 159512, 0, 0),
                              row(b + 60, "", "", "", 133818, 0, 0)};
    set_rows(rows, 3);
    int st;
    json_t *doc = post(&f, f.token,
                       "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n"
                       "\t\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tfilter: { date_geq: "
                       "$dateFrom, date_leq: $dateTo }\n\t\t\t\tlimit: 100\n\t\t\t\torderBy: "
                       "[datetimeMinute_ASC]\n\t\t\t) {\n\t\t\t\tdimensions {\n\t\t\t\t\t"
                       "datetimeMinute\n\t\t\t\t}\n\t\t\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t\t\t}"
                       "\n\t\t\t}\n\t\t}\n\t}\n}",
                       "{\"accountId\":\"ACCT\",\"dateFrom\":\"2025-12-01\",\"dateTo\":"
                       "\"2025-12-01\"}",
                       &st);
    CHECK_INT(st, 200);
    json_t *g = groups_of(doc);
    char *s = dump(g);
    json_decref(doc);
    CHECK_STR(s, "[{\"dimensions\":{\"datetimeMinute\":\"2025-12-01T00:00:00Z\"},\"sum\":{"
                 "\"egressBytes\":159512}},{\"dimensions\":{\"datetimeMinute\":"
                 "\"2025-12-01T00:01:00Z\"},\"sum\":{\"egressBytes\":133818}},{\"dimensions\":{"
                 "\"datetimeMinute\":\"2025-12-01T00:02:00Z\"},\"sum\":{\"egressBytes\":3}}]");
    free(s);
    CHECK_INT(rec.q.step, 60);
    fx_close(&f);
}

/* "Usage breakdown by geographic location": the node is the data center. */
static void t_geographic_breakdown(void)
{
    fx f;
    CHECK(fx_open(&f));
    store_usage_row rows[] = {row(0, "", "", "node-a", 5, 6, 0),
                              row(0, "", "", "node-b", 50, 6, 0)};
    set_rows(rows, 2);
    int st;
    json_t *doc = post(&f, f.token,
                       "query {\n\tviewer {\n\t\taccounts(filter: { accountTag: $accountId }) {\n"
                       "\t\t\tcallsTurnUsageAdaptiveGroups(\n\t\t\t\tlimit: 100\n\t\t\t\tfilter: "
                       "{ date_geq: $dateFrom, date_leq: $dateTo }\n\t\t\t\torderBy: "
                       "[sum_egressBytes_DESC]\n\t\t\t) {\n\t\t\t\tdimensions {\n\t\t\t\t\t"
                       "datacenterCity\n\t\t\t\t\tdatacenterCode\n\t\t\t\t\tdatacenterRegion\n\t"
                       "\t\t\t\tdatacenterCountry\n\t\t\t\t}\n\t\t\t\tsum {\n\t\t\t\t\tegressBytes"
                       "\n\t\t\t\t\tingressBytes\n\t\t\t\t}\n\t\t\t\tavg {\n\t\t\t\t\t"
                       "concurrentConnectionsFiveMinutes\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}",
                       "{\"accountId\":\"ACCT\",\"dateFrom\":\"2025-12-01\",\"dateTo\":"
                       "\"2025-12-01\"}",
                       &st);
    CHECK_INT(st, 200);
    json_t *g = groups_of(doc);
    char *s = dump(json_object_get(json_array_get(g, 0), "dimensions"));
    json_decref(doc);
    CHECK_STR(s, "{\"datacenterCity\":\"node-b\",\"datacenterCode\":\"node-b\","
                 "\"datacenterRegion\":null,\"datacenterCountry\":null}");
    free(s);
    CHECK_INT(rec.q.group_by, STORE_USAGE_BY_NODE);
    fx_close(&f);
}

/* Declared variables, a whole filter as one variable (the GraphQL Analytics API's curl
 * example), and an alias on a dataset. */
static void t_declared_variables_and_filter_variable(void)
{
    fx f;
    CHECK(fx_open(&f));
    set_rows(NULL, 0);
    int st;
    json_t *doc = post(&f, f.token,
                       "query Q($accountId: string!, $filter: filter, $n: Int = 3) { viewer { "
                       "accounts(filter: {accountTag: $accountId}) { last: "
                       "callsTurnUsageAdaptiveGroups(filter: $filter, limit: $n) { sum { "
                       "egressBytes } } } } }",
                       "{\"accountId\":\"ACCT\",\"filter\":{\"datetime_geq\":"
                       "\"2022-07-24T11:00:00Z\",\"datetime_leq\":\"2022-07-24T12:00:00Z\","
                       "\"keyId\":\"82a58d0aeabfa8f4a4e0c4a9efc9cda5\"}}",
                       &st);
    CHECK_INT(st, 200);
    char *s = dump(doc);
    json_decref(doc);
    CHECK_STR(s, "{\"data\":{\"viewer\":{\"accounts\":[{\"last\":[]}]}},\"errors\":null}");
    free(s);
    CHECK_INT(rec.q.since, t_of("2022-07-24T11:00:00Z"));
    CHECK_INT(rec.q.until, t_of("2022-07-24T12:01:00Z")); /* the minute 12:00 is <= 12:00 */
    CHECK_STR(rec.key, "82a58d0aeabfa8f4a4e0c4a9efc9cda5");
    fx_close(&f);
}

/* --- filters -------------------------------------------------------------------------------------- */

static int run_filter(fx *f, const char *filter, int *status)
{
    char *q = util_xasprintf("{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { "
                             "callsTurnUsageAdaptiveGroups(filter: %s) { sum { egressBytes } } } "
                             "} }",
                             filter);
    int before = rec.calls;
    json_t *doc = post(f, f->token, q, NULL, status);
    free(q);
    json_decref(doc);
    return rec.calls - before;
}

static void t_filter_translation(void)
{
    fx f;
    CHECK(fx_open(&f));
    int st;
    CHECK_INT(run_filter(&f, "{datetimeHour_geq: \"2025-12-01T10:30:00Z\"}", &st), 1);
    CHECK_INT(st, 200);
    CHECK_INT(rec.q.since, t_of("2025-12-01T11:00:00Z"));
    CHECK_INT(run_filter(&f, "{datetimeHour_gt: \"2025-12-01T10:30:00Z\"}", &st), 1);
    CHECK_INT(rec.q.since, t_of("2025-12-01T11:00:00Z"));
    CHECK_INT(run_filter(&f, "{datetimeHour_gt: \"2025-12-01T10:00:00Z\"}", &st), 1);
    CHECK_INT(rec.q.since, t_of("2025-12-01T11:00:00Z"));
    CHECK_INT(run_filter(&f, "{datetimeFifteenMinutes_lt: \"2025-12-01T10:20:00Z\"}", &st), 1);
    CHECK_INT(rec.q.until, t_of("2025-12-01T10:30:00Z"));
    CHECK_INT(run_filter(&f, "{datetimeFiveMinutes_leq: \"2025-12-01T10:20:00Z\"}", &st), 1);
    CHECK_INT(rec.q.until, t_of("2025-12-01T10:25:00Z"));
    CHECK_INT(run_filter(&f, "{datetime_geq: \"2025-12-01T10:20:00.500Z\"}", &st), 1);
    CHECK_INT(rec.q.since, t_of("2025-12-01T10:21:00Z"));
    CHECK_INT(run_filter(&f, "{date: \"2025-12-01\"}", &st), 1);
    CHECK_INT(rec.q.since, t_of("2025-12-01T00:00:00Z"));
    CHECK_INT(rec.q.until, t_of("2025-12-02T00:00:00Z"));
    CHECK_INT(run_filter(&f, "{date_gt: \"2025-12-01\", date_lt: \"2025-12-03\"}", &st), 1);
    CHECK_INT(rec.q.since, t_of("2025-12-02T00:00:00Z"));
    CHECK_INT(rec.q.until, t_of("2025-12-03T00:00:00Z"));
    CHECK_INT(run_filter(&f,
                         "{AND: [{date_geq: \"2025-11-01\"}, {username: \"u1\", "
                         "AND: [{date_lt: \"2025-11-02\"}]}], customIdentifier: \"c\"}",
                         &st),
              1);
    CHECK_INT(rec.q.since, t_of("2025-11-01T00:00:00Z"));
    CHECK_INT(rec.q.until, t_of("2025-11-02T00:00:00Z"));
    CHECK_STR(rec.user, "u1");
    CHECK_STR(rec.custom, "c");
    /* filters that can match nothing: no store query, an empty answer */
    CHECK_INT(run_filter(&f, "{keyId: \"a\", AND: [{keyId: \"b\"}]}", &st), 0);
    CHECK_INT(st, 200);
    CHECK_INT(run_filter(&f, "{date_geq: \"2025-12-02\", date_lt: \"2025-12-02\"}", &st), 0);
    CHECK_INT(run_filter(&f, "{datetimeHour: \"2025-12-01T10:30:00Z\"}", &st), 0);
    CHECK_INT(st, 200);
    fx_close(&f);
}

/* _in: one store query per combination of values, the groups of all added up. */
static void t_in_filters(void)
{
    fx f;
    CHECK(fx_open(&f));
    store_usage_row rows[] = {row(0, "", "", "", 10, 1, 0)};
    set_rows(rows, 1);
    int st;
    const char *q = "{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { "
                    "callsTurnUsageAdaptiveGroups(filter: {keyId_in: [\"a\", \"b\", \"a\"], "
                    "customIdentifier_in: [\"x\", \"y\"]}) { sum { egressBytes ingressBytes } } } "
                    "} }";
    json_t *doc = post(&f, f.token, q, NULL, &st);
    CHECK_INT(st, 200);
    char *s = dump(json_object_get(doc, "data"));
    json_decref(doc);
    /* 2 keys x 2 custom identifiers: four queries, each answering the row, added up */
    CHECK_STR(s, "{\"viewer\":{\"accounts\":[{\"callsTurnUsageAdaptiveGroups\":[{\"sum\":{"
                 "\"egressBytes\":40,\"ingressBytes\":4}}]}]}}");
    free(s);
    CHECK_INT(rec.calls, 4);
    CHECK_STR(rec.key, "b"); /* the last combination */
    CHECK_STR(rec.custom, "y");
    /* equality AND _in: the intersection; an empty intersection queries nothing */
    CHECK_INT(run_filter(&f, "{keyId_in: [\"a\", \"b\"], keyId: \"b\"}", &st), 1);
    CHECK_STR(rec.key, "b");
    CHECK_INT(run_filter(&f, "{keyId_in: [\"a\", \"b\"], AND: [{keyId_in: [\"c\"]}]}", &st), 0);
    CHECK_INT(st, 200);
    CHECK_INT(run_filter(&f, "{keyId_in: []}", &st), 0);
    CHECK_INT(st, 200);
    fx_close(&f);
}

/* --- refusals, each naming what is unsupported or wrong ------------------------------------------ */

static void t_refusals(void)
{
    static const struct {
        const char *q, *msg;
        int status;
    } cases[] = {
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {OR: [{keyId: \"a\"}]}) { sum { egressBytes } } } } }",
         "the filter OR is not supported", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {keyId_like: \"a%\"}) { sum { egressBytes } } } } }",
         "the filter \"keyId_like\" is not supported (keyId, customIdentifier and username take "
         "equality and _in)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {keyId_in: \"a\"}) { sum { egressBytes } } } } }",
         "error parsing args: keyId_in must be a list of strings", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {keyId: 5}) { sum { egressBytes } } } } }",
         "error parsing args: keyId must be a string", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {keyId_in: [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"], "
         "username_in: [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}) { sum { "
         "egressBytes } } } } }",
         "the _in filters allow at most 64 combinations of values", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {datetime_neq: \"2025-01-01T00:00:00Z\"}) { sum { egressBytes } } } } }",
         "the filter operator of \"datetime_neq\" is not supported (only _geq, _gt, _leq, _lt "
         "and equality)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {datacenterCity: \"x\"}) { sum { egressBytes } } } } }",
         "the filter \"datacenterCity\" is not supported (keyId, customIdentifier and username "
         "take equality and _in)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {date_geq: \"2025-02-31\"}) { sum { egressBytes } } } } }",
         "error parsing args: date_geq must be a date \"YYYY-MM-DD\"", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {datetime_geq: \"2025-02-01\"}) { sum { egressBytes } } } } }",
         "error parsing args: datetime_geq must be a time \"YYYY-MM-DDTHH:MM:SSZ\"", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "filter: {colo: \"x\"}) { sum { egressBytes } } } } }",
         "unknown filter field \"colo\" of callsTurnUsageAdaptiveGroups", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 1) { count } } } }",
         "\"count\" is not supported: turnkey counts bytes and allocation time exactly, not "
         "sampled events",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "dimensions { clientIP } } } } }",
         "unknown dimension \"clientIP\" of callsTurnUsageAdaptiveGroups", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "sum { concurrentConnections } } } } }",
         "unknown field \"concurrentConnections\" on sum (egressBytes, ingressBytes)", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "sum { egressBytes { x } } } } } }",
         "scalar fields must have no selections: \"egressBytes\"", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "sum } } } }",
         "object field must have selections: \"sum\"", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 0) { sum { egressBytes } } } } }",
         "limit must be positive number and not greater than 10000", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 10001) { sum { egressBytes } } } } }",
         "limit must be positive number and not greater than 10000", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "orderBy: [datetimeHour_ASC]) { dimensions { keyId } } } } }",
         "orderBy \"datetimeHour_ASC\" needs its time dimension (or a finer one) among the "
         "dimensions",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "orderBy: [username_DESC]) { dimensions { keyId } } } } }",
         "orderBy \"username_DESC\" needs that field among the dimensions", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "orderBy: [count_DESC]) { dimensions { keyId } } } } }",
         "orderBy \"count_DESC\" is not supported (a dimension or sum_/avg_ field, _ASC or "
         "_DESC)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "sample: 1) { dimensions { keyId } } } } }",
         "unknown argument \"sample\" on callsTurnUsageAdaptiveGroups (filter, limit, orderBy)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "avg { concurrentConnectionsFiveMinutes } } } } }",
         "avg.concurrentConnectionsFiveMinutes needs a time dimension or a lower time bound in "
         "the filter (date_geq, datetime_geq, ...)",
         400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { httpRequestsAdaptiveGroups { "
         "count } } } }",
         "unknown field \"httpRequestsAdaptiveGroups\" on accounts: turnkey has one dataset, "
         "callsTurnUsageAdaptiveGroups",
         400},
        {"{ viewer { zones(filter: {zoneTag: \"z\"}) { x } } }",
         "zones are not supported: turnkey answers account-scoped queries", 400},
        {"{ viewer { accounts { callsTurnUsageAdaptiveGroups { sum { egressBytes } } } } }",
         "accounts needs filter: {accountTag: \"<account id>\"} (one account)", 400},
        {"{ viewer { accounts(filter: {accountTag_in: [\"ACCT\"]}) { x } } }",
         "the accounts filter \"accountTag_in\" is not supported: give accountTag", 400},
        {"{ viewer { accounts(filter: {accountTag: \"0123456789abcdef0123456789abcdef\"}) { "
         "callsTurnUsageAdaptiveGroups { sum { egressBytes } } } } }",
         "not authorized for that account", 403},
        {"{ __schema { types { name } } }", "introspection (__schema) is not supported", 400},
        {"{ viewer { a: accounts(filter: {accountTag: \"ACCT\"}) { x: "
         "callsTurnUsageAdaptiveGroups { sum { egressBytes } } x: callsTurnUsageAdaptiveGroups "
         "{ sum { ingressBytes } } } } }",
         "the response key \"x\" appears twice (field merging is not supported: use an alias)",
         400},
        {"{ viewer { accounts(filter: {accountTag: $acct}) { x } } }",
         "Variable \"$acct\" is not defined.", 400},
        {"query ($acct: string!) { viewer { accounts(filter: {accountTag: $acct}) { x } } }",
         "Variable \"$acct\" of required type \"string!\" was not provided.", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 3000000000) { sum { egressBytes } } } } }",
         "Int cannot represent non 32-bit signed integer value: 3000000000", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 1e999) { sum { egressBytes } } } } }",
         "Float cannot represent the value 1e999", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups("
         "limit: 2.5) { sum { egressBytes } } } } }",
         "limit must be positive number and not greater than 10000", 400},
        {"{ viewer { ...F } } fragment F on viewer { accounts }",
         "fragments (fragment spreads and inline fragments) are not supported", 400},
        {"mutation { deleteTurnKey }", "mutations are not supported", 400},
        {"{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { callsTurnUsageAdaptiveGroups { "
         "sum { egressBytes } } }",
         "Syntax Error: Expected Name, found <EOF>.", 400},
    };
    fx f;
    CHECK(fx_open(&f));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        int before = rec.calls;
        json_t *doc = post(&f, f.token, cases[i].q, NULL, &st);
        const char *msg = err_msg(doc);
        if (strcmp(msg, cases[i].msg) || st != cases[i].status)
            fprintf(stderr, "  case %zu: %d \"%s\"\n", i, st, msg);
        bool ok = !strcmp(msg, cases[i].msg) && st == cases[i].status &&
                  json_is_null(json_object_get(doc, "data")) && rec.calls == before;
        json_decref(doc);
        CHECK(ok);
    }
    fx_close(&f);
}

/* An error object: message, path down to the field, locations and a timestamp. */
static void t_error_shape(void)
{
    fx f;
    CHECK(fx_open(&f));
    int st;
    json_t *doc = post(&f, f.token,
                       "{\n  viewer {\n    usage: accounts(filter: {accountTag: "
                       "\"0123456789abcdef0123456789abcdef\"}) { callsTurnUsageAdaptiveGroups { "
                       "sum { egressBytes } } }\n  }\n}",
                       NULL, &st);
    CHECK_INT(st, 403);
    char *s = dump(doc);
    json_decref(doc);
    CHECK_STR(s, "{\"data\":null,\"errors\":[{\"message\":\"not authorized for that account\","
                 "\"path\":[\"viewer\",\"usage\"],\"locations\":[{\"line\":3,\"column\":5}],"
                 "\"extensions\":{\"timestamp\":\"2025-12-02T18:26:40.000Z\"}}]}");
    free(s);
    doc = post(&f, f.token,
               "{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { "
               "callsTurnUsageAdaptiveGroups { dimensions { bogus } } } } }",
               NULL, &st);
    s = dump(json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "path"));
    json_decref(doc);
    CHECK_STR(s, "[\"viewer\",\"accounts\",\"0\",\"callsTurnUsageAdaptiveGroups\"]");
    free(s);
    fx_close(&f);
}

static json_t *raw(fx *f, const char *method, const char *auth, const char *body, int *status,
                   const char **allow, const char **www)
{
    api_request req = {.method = method,
                       .path = "/client/v4/graphql",
                       .authorization = auth,
                       .body = (const uint8_t *)body,
                       .body_len = body ? strlen(body) : 0};
    api_response r;
    api_handle(f->api, &req, NOW_MS, &r);
    *status = r.status;
    if (allow)
        *allow = r.allow;
    if (www)
        *www = r.www_authenticate;
    json_t *doc = json_loads(r.body, 0, NULL);
    if (strcmp(r.route, "/client/v4/graphql") != 0) {
        json_decref(doc);
        doc = NULL;
    }
    api_response_clear(&r);
    return doc;
}

static void t_http_auth_and_body(void)
{
    fx f;
    CHECK(fx_open(&f));
    int st;
    const char *allow = NULL, *www = NULL;
    char auth[64], calls_auth[64];
    snprintf(auth, sizeof auth, "Bearer %s", f.token);
    snprintf(calls_auth, sizeof calls_auth, "Bearer %s", f.calls_token);
    json_t *doc = raw(&f, "GET", auth, NULL, &st, &allow, NULL);
    CHECK_INT(st, 405);
    CHECK_STR(allow, "POST");
    CHECK_STR(err_msg(doc), "use POST with a JSON body {\"query\": \"...\", \"variables\": {...}}");
    json_decref(doc);
    doc = raw(&f, "POST", NULL, "{\"query\":\"{viewer{x}}\"}", &st, NULL, &www);
    CHECK_INT(st, 401);
    CHECK_STR(www, "Bearer");
    CHECK_STR(err_msg(doc), "Unauthorized: send an API token as Authorization: Bearer <token>");
    json_decref(doc);
    doc = raw(&f, "POST", "Bearer 0000000000000000000000000000000000000000",
              "{\"query\":\"{viewer{x}}\"}", &st, NULL, NULL);
    CHECK_INT(st, 401);
    CHECK_STR(err_msg(doc), "Unauthorized");
    json_decref(doc);
    doc = raw(&f, "POST", calls_auth, "{\"query\":\"{viewer{x}}\"}", &st, NULL, NULL);
    CHECK_INT(st, 403);
    CHECK_STR(err_msg(doc),
              "not authorized for that account: the token lacks the analytics:read permission");
    json_decref(doc);
    doc = raw(&f, "POST", auth, "query=%7Bviewer%7D", &st, NULL, NULL);
    CHECK_INT(st, 400);
    CHECK_STR(err_msg(doc), "failed to recognize JSON request: the body must be a JSON object "
                            "{\"query\": \"...\", \"variables\": {...}}");
    json_decref(doc);
    doc = raw(&f, "POST", auth, "{\"variables\":{}}", &st, NULL, NULL);
    CHECK_STR(err_msg(doc), "the request has no query (a string)");
    json_decref(doc);
    doc = raw(&f, "POST", auth, "{\"query\":\"{viewer{x}}\",\"variables\":[1]}", &st, NULL, NULL);
    CHECK_STR(err_msg(doc), "variables must be a JSON object");
    json_decref(doc);
    doc = raw(&f, "POST", auth, "{\"query\":\"query A {viewer{x}}\",\"operationName\":\"B\"}", &st,
              NULL, NULL);
    CHECK_INT(st, 400);
    CHECK_STR(err_msg(doc), "Unknown operation named in operationName.");
    json_decref(doc);
    api_request big = {.method = "POST",
                       .path = "/client/v4/graphql",
                       .authorization = auth,
                       .body_too_large = true};
    api_response r;
    api_handle(f.api, &big, NOW_MS, &r);
    CHECK_INT(r.status, 413);
    api_response_clear(&r);
    fx_close(&f);
}

static void t_bounds_groups_and_datasets(void)
{
    fx f;
    CHECK(fx_open(&f));
    size_t n = 10001;
    store_usage_row *rows = util_xcalloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++)
        rows[i] = row((int64_t)i * 60, "", "", "", i, 0, 0);
    set_rows(rows, n);
    free(rows);
    int st;
    const char *q = "{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { "
                    "callsTurnUsageAdaptiveGroups(limit: 5, orderBy: [sum_egressBytes_DESC]) { "
                    "dimensions { datetimeMinute } sum { egressBytes } } } } }";
    json_t *doc = post(&f, f.token, q, NULL, &st);
    CHECK_INT(st, 400);
    CHECK_STR(err_msg(doc), "the query matches more than 10000 groups: narrow the filter or the "
                            "time range");
    json_decref(doc);
    CHECK_INT(rec.q.limit, 10001); /* the store is asked for one row past the bound */
    rec.n = 10000;                 /* at the bound: sorted, then cut to the limit */
    doc = post(&f, f.token, q, NULL, &st);
    CHECK_INT(st, 200);
    json_t *g = groups_of(doc);
    CHECK_INT(json_array_size(g), 5);
    CHECK_INT(json_integer_value(
                  json_object_get(json_object_get(json_array_get(g, 0), "sum"), "egressBytes")),
              9999);
    json_decref(doc);
    /* ten datasets in one request are fine, eleven are not */
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof buf,
                                "{ viewer { accounts(filter: {accountTag: "
                                "\"ACCT\"}) {");
    rec.n = 0;
    for (int i = 0; i < 11; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o,
                              " d%d: callsTurnUsageAdaptiveGroups { sum { egressBytes } }", i);
    snprintf(buf + o, sizeof buf - o, " } } }");
    doc = post(&f, f.token, buf, NULL, &st);
    CHECK_INT(st, 400);
    CHECK_STR(err_msg(doc), "a request may query at most 10 datasets");
    json_decref(doc);
    CHECK_INT(rec.calls, 2 + 10);
    rec.fail = true;
    doc = post(&f, f.token, q, NULL, &st);
    CHECK_INT(st, 500);
    CHECK_STR(err_msg(doc), "Internal server error");
    json_decref(doc);
    fx_close(&f);
}

/* avg with no time dimension: allocation time over the filtered range, cut at now. */
static void t_avg_over_range(void)
{
    fx f;
    CHECK(fx_open(&f));
    store_usage_row rows[] = {row(0, "k", "", "", 1, 1, 3600 * 1000 * 3)};
    set_rows(rows, 1);
    int st;
    /* NOW is 18:26:40 on 2025-12-02; the range 18:00 .. (tomorrow) is cut to 26m40s */
    json_t *doc = post(&f, f.token,
                       "{ viewer { accounts(filter: {accountTag: \"ACCT\"}) { "
                       "callsTurnUsageAdaptiveGroups(filter: {datetime_geq: "
                       "\"2025-12-02T18:00:00Z\", date_leq: \"2025-12-03\"}) { dimensions { keyId "
                       "} avg { c: concurrentConnectionsFiveMinutes } } } } }",
                       NULL, &st);
    CHECK_INT(st, 200);
    json_t *g = json_array_get(groups_of(doc), 0);
    double avg = json_real_value(json_object_get(json_object_get(g, "avg"), "c"));
    json_decref(doc);
    CHECK(avg > 6.749 && avg < 6.751); /* 3 h of allocations in 1600 s */
    fx_close(&f);
}

int main(void)
{
    TK_RUN(t_top_keys_by_egress);
    TK_RUN(t_concurrent_connections_five_minutes);
    TK_RUN(t_specific_custom_identifier);
    TK_RUN(t_timeseries_sorted);
    TK_RUN(t_geographic_breakdown);
    TK_RUN(t_declared_variables_and_filter_variable);
    TK_RUN(t_filter_translation);
    TK_RUN(t_in_filters);
    TK_RUN(t_refusals);
    TK_RUN(t_error_shape);
    TK_RUN(t_http_auth_and_body);
    TK_RUN(t_bounds_groups_and_datasets);
    TK_RUN(t_avg_over_range);
    return tk_test_summary();
}
