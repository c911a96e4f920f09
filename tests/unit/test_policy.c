/* The key-policy document (src/policy/policy.c): strict parsing with messages that name the
 * field, normalization, merge patches, budget levels. */
#include <stdlib.h>
#include <string.h>

#include "tk_test.h"
#include "turnkey/policy.h"

static int parse(const char *doc, policy *p, char *err)
{
    return policy_parse(doc, strlen(doc), p, err, 160);
}

static void t_parse_full(void)
{
    policy p;
    char err[160] = "";
    CHECK_INT(parse("{\"daily_bytes\":5000000000,\"monthly_bytes\":9,"
                    "\"custom_identifier_daily_bytes\":2,\"custom_identifier_monthly_bytes\":3,"
                    "\"action\":\"end_allocations\",\"thresholds\":[50,80,95],\"max_ttl\":3600,"
                    "\"allocation_quota\":2,\"mint_rate_per_key\":600,"
                    "\"mint_rate_per_source\":30,\"bandwidth_bps\":4000000}",
                    &p, err),
              0);
    CHECK(p.daily_bytes == 5000000000ull && p.monthly_bytes == 9);
    CHECK(p.cid_daily_bytes == 2 && p.cid_monthly_bytes == 3);
    CHECK_INT(p.action, POLICY_END_ALLOCATIONS);
    CHECK_INT(p.n_thresholds, 3);
    CHECK_INT(p.thresholds[2], 95);
    CHECK_INT(p.max_ttl, 3600);
    CHECK_INT(p.allocation_quota, 2);
    CHECK_INT(p.mint_rate_key, 600);
    CHECK_INT(p.mint_rate_source, 30);
    CHECK(p.bandwidth_bps == 4000000);
    CHECK(policy_has_budget(&p));
    char *doc = policy_to_json(&p);
    CHECK_STR(doc, "{\"daily_bytes\":5000000000,\"monthly_bytes\":9,"
                   "\"custom_identifier_daily_bytes\":2,\"custom_identifier_monthly_bytes\":3,"
                   "\"max_ttl\":3600,\"allocation_quota\":2,\"mint_rate_per_key\":600,"
                   "\"mint_rate_per_source\":30,\"bandwidth_bps\":4000000,"
                   "\"action\":\"end_allocations\",\"thresholds\":[50,80,95]}");
    free(doc);
}

static void t_defaults_and_empty(void)
{
    policy p;
    char err[160] = "";
    CHECK_INT(parse("{}", &p, err), 0);
    CHECK_INT(p.action, POLICY_NOTIFY);
    CHECK_INT(p.n_thresholds, 1);
    CHECK_INT(p.thresholds[0], 80);
    CHECK(!policy_has_budget(&p));
    char *doc = policy_to_json(&p);
    CHECK_STR(doc, "{}");
    free(doc);
    CHECK_INT(parse("{\"daily_bytes\":10}", &p, err), 0);
    doc = policy_to_json(&p); /* a budget shows the action and thresholds in force */
    CHECK_STR(doc, "{\"daily_bytes\":10,\"action\":\"notify\",\"thresholds\":[80]}");
    free(doc);
    CHECK_INT(parse("{\"thresholds\":[]}", &p, err), 0);
    CHECK_INT(p.n_thresholds, 0);
}

static void t_errors_name_the_field(void)
{
    static const struct {
        const char *doc, *want;
    } bad[] = {
        {"{\"dayly_bytes\":1}", "unknown policy field \"dayly_bytes\""},
        {"{\"daily_bytes\":0}", "daily_bytes must be"},
        {"{\"daily_bytes\":-5}", "daily_bytes must be"},
        {"{\"daily_bytes\":\"5\"}", "daily_bytes must be"},
        {"{\"daily_bytes\":1.5}", "daily_bytes must be"},
        {"{\"max_ttl\":172801}", "max_ttl must be an integer from 1 to 172800"},
        {"{\"allocation_quota\":1001}", "allocation_quota"},
        {"{\"bandwidth_bps\":7999}", "bandwidth_bps"},
        {"{\"action\":\"stop\"}", "action must be"},
        {"{\"action\":null}", "action must be"},
        {"{\"thresholds\":[80,50]}", "thresholds must be"},
        {"{\"thresholds\":[0]}", "thresholds must be"},
        {"{\"thresholds\":[100]}", "thresholds must be"},
        {"{\"thresholds\":[1,2,3,4,5,6,7,8,9]}", "thresholds must be"},
        {"{\"thresholds\":50}", "thresholds must be"},
        {"[]", "a policy must be a JSON object"},
        {"{\"daily_bytes\":1,\"daily_bytes\":2}", "not valid JSON"},
        {"{", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        policy p;
        char err[160] = "";
        CHECK_INT(parse(bad[i].doc, &p, err), -1);
        if (!strstr(err, bad[i].want))
            fprintf(stderr, "  %s: got \"%s\"\n", bad[i].doc, err);
        CHECK(strstr(err, bad[i].want) != NULL);
        CHECK_INT(p.action, POLICY_NOTIFY); /* nothing half-set */
        CHECK(!policy_has_budget(&p));
    }
    char big[POLICY_JSON_MAX + 2];
    memset(big, ' ', sizeof big);
    policy p;
    char err[160];
    CHECK_INT(policy_parse(big, sizeof big, &p, err, sizeof err), -1);
}

static int patch(const char *base, const char *doc, char **out, char *err)
{
    return policy_patch(base, doc, strlen(doc), out, err, 160);
}

static void t_patch(void)
{
    char *out = NULL, err[160] = "";
    const char *base = "{\"daily_bytes\":10,\"max_ttl\":60}";
    CHECK_INT(patch(base, "{\"daily_bytes\":null,\"allocation_quota\":3}", &out, err), 0);
    CHECK_STR(out, "{\"max_ttl\":60,\"allocation_quota\":3}");
    free(out);
    CHECK_INT(patch(NULL, "{\"monthly_bytes\":7}", &out, err), 0);
    CHECK_STR(out, "{\"monthly_bytes\":7,\"action\":\"notify\",\"thresholds\":[80]}");
    free(out);
    out = NULL;
    CHECK_INT(patch(base, "{\"max_ttl\":0}", &out, err), -1);
    CHECK(out == NULL);
    CHECK(strstr(err, "max_ttl") != NULL);
    CHECK_INT(patch(base, "[]", &out, err), -1);
    CHECK(strstr(err, "patch must be a JSON object") != NULL);
}

static void t_levels_and_periods(void)
{
    policy p;
    char err[160];
    CHECK_INT(parse("{\"thresholds\":[50,80]}", &p, err), 0);
    CHECK_INT(policy_level(&p, 49, 100), 0);
    CHECK_INT(policy_level(&p, 50, 100), 50);
    CHECK_INT(policy_level(&p, 99, 100), 80);
    CHECK_INT(policy_level(&p, 100, 100), 100);
    CHECK_INT(policy_level(&p, 5, 0), 0);
    int64_t a, b;
    policy_month(1709251199, &a, &b); /* 2024-02-29T23:59:59Z: a leap February */
    CHECK_INT(a, 1706745600);
    CHECK_INT(b, 1709251200);
    CHECK_STR(policy_action_name(POLICY_STOP_MINTING), "stop_minting");
    CHECK_STR(policy_action_name(42), "?");
}

int main(void)
{
    TK_RUN(t_parse_full);
    TK_RUN(t_defaults_and_empty);
    TK_RUN(t_errors_name_the_field);
    TK_RUN(t_patch);
    TK_RUN(t_levels_and_periods);
    return tk_test_summary();
}
