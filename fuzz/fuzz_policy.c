/* Fuzz target: the key-policy document (src/policy/policy.c). Whatever the input, a parse
 * either fails with a message and leaves the empty policy, or succeeds with every field in
 * its range; the normalized document parses back to the same policy and normalizes to
 * itself; a merge patch of the input over a fixed base either fails with a message or gives a
 * document that parses. The budget level of any usage stays in {0, thresholds, 100}. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ranges(const policy *p)
{
    if (p->action < POLICY_NOTIFY || p->action > POLICY_END_ALLOCATIONS ||
        p->n_thresholds > POLICY_THRESHOLDS_MAX || p->max_ttl < 0 || p->max_ttl > POLICY_TTL_MAX ||
        p->allocation_quota > 1000 || p->mint_rate_key > 1000000 || p->mint_rate_source > 1000000 ||
        (p->bandwidth_bps && p->bandwidth_bps < 8000))
        abort();
    for (size_t i = 0; i < p->n_thresholds; i++)
        if (p->thresholds[i] < 1 || p->thresholds[i] > 99 ||
            (i && p->thresholds[i] <= p->thresholds[i - 1]))
            abort();
}

static void round_trip(const policy *p)
{
    char *doc = policy_to_json(p), err[160] = "";
    policy q;
    if (policy_parse(doc, strlen(doc), &q, err, sizeof err) != 0 || memcmp(p, &q, sizeof q) != 0)
        abort();
    char *again = policy_to_json(&q);
    if (strcmp(doc, again) != 0)
        abort();
    free(again);
    free(doc);
}

static void levels(const policy *p, const uint8_t *data, size_t size)
{
    uint64_t used = 0, limit = 0;
    memcpy(&used, data, size < 8 ? size : 8);
    if (size > 8)
        memcpy(&limit, data + 8, size < 16 ? size - 8 : 8);
    int l = policy_level(p, used, limit);
    bool known = l == 0 || l == 100;
    for (size_t i = 0; i < p->n_thresholds; i++)
        known |= l == p->thresholds[i];
    if (!known || (limit && used >= limit && l != 100) || (!limit && l != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    policy p;
    char err[160] = "";
    if (policy_parse((const char *)data, size, &p, err, sizeof err) == 0) {
        check_ranges(&p);
        round_trip(&p);
    } else {
        policy empty;
        policy_init(&empty);
        if (!err[0] || memcmp(&p, &empty, sizeof p) != 0)
            abort();
    }
    levels(&p, data, size);
    char *out = NULL;
    err[0] = '\0';
    if (policy_patch("{\"daily_bytes\":1000,\"thresholds\":[10,20]}", (const char *)data, size,
                     &out, err, sizeof err) == 0) {
        policy q;
        if (!out || policy_parse(out, strlen(out), &q, err, sizeof err) != 0)
            abort();
        check_ranges(&q);
    } else if (!err[0] || out) {
        abort();
    }
    free(out);
    return 0;
}
