/* cli_policy: `turnkey key policy get|set|clear KEY_ID` — a TURN key's policy (issue 14 §4)
 * on the store `turnkey serve` uses. set merges into the stored document like the API's
 * PATCH (a --json patch, then the field flags; a flag's value `none` clears the field);
 * every change is audit-logged (actor admin/cli, the documents as old/new value). A running
 * server learns the change through the store's change feed. get prints the API's GET result
 * as one JSON line. Exit 0; 1 store error or unknown key; 2 bad usage or an invalid policy. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/api.h"
#include "turnkey/audit.h"
#include "turnkey/cli.h"
#include "turnkey/policy.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static const char usage[] =
    "turnkey: usage: turnkey key policy get|clear KEY_ID [--account ID] [--data DIR | --store "
    "STORE]\n"
    "       turnkey key policy set KEY_ID [--json DOC] [--daily-bytes N] [--monthly-bytes N]\n"
    "           [--custom-identifier-daily-bytes N] [--custom-identifier-monthly-bytes N]\n"
    "           [--action notify|stop_minting|end_allocations] [--thresholds P,P...]\n"
    "           [--max-ttl S] [--allocation-quota N] [--mint-rate-per-key N]\n"
    "           [--mint-rate-per-source N] [--bandwidth-bps N]   (none clears a field)\n";

/* The field flags: option, policy field, kind (integer, string, list of integers). */
typedef enum { K_INT, K_STR, K_LIST } kind;
static const struct flag {
    const char *opt, *field;
    kind k;
} flags[] = {
    {"--daily-bytes", "daily_bytes", K_INT},
    {"--monthly-bytes", "monthly_bytes", K_INT},
    {"--custom-identifier-daily-bytes", "custom_identifier_daily_bytes", K_INT},
    {"--custom-identifier-monthly-bytes", "custom_identifier_monthly_bytes", K_INT},
    {"--action", "action", K_STR},
    {"--thresholds", "thresholds", K_LIST},
    {"--max-ttl", "max_ttl", K_INT},
    {"--allocation-quota", "allocation_quota", K_INT},
    {"--mint-rate-per-key", "mint_rate_per_key", K_INT},
    {"--mint-rate-per-source", "mint_rate_per_source", K_INT},
    {"--bandwidth-bps", "bandwidth_bps", K_INT},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

typedef struct args {
    const char *action, *key, *data, *store, *account, *json;
    json_t *patch; /* the field flags, as a merge patch */
} args;

/* A decimal integer without sign or junk (policy_patch checks the range); NULL if not. */
static json_t *int_value(const char *v)
{
    char *end;
    if (v[0] < '0' || v[0] > '9' || strlen(v) > 19)
        return NULL;
    unsigned long long x = strtoull(v, &end, 10);
    return *end || x > INT64_MAX ? NULL : json_integer((json_int_t)x);
}

static json_t *list_value(const char *v)
{
    json_t *a = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        json_t *x = int_value(t);
        if (!x) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, x);
    }
    return a;
}

/* One field flag's value into the patch; -1 if malformed. */
static int add_flag(json_t *patch, const struct flag *f, const char *v)
{
    json_t *x = !strcmp(v, "none") ? json_null()
                : f->k == K_INT    ? int_value(v)
                : f->k == K_LIST   ? list_value(v)
                                   : json_string(v);
    if (!x) {
        fprintf(stderr, "turnkey: %s needs %s (or none)\n", f->opt,
                f->k == K_LIST ? "comma-separated integers" : "an integer");
        return -1;
    }
    json_object_set_new(patch, f->field, x);
    return 0;
}

static const struct flag *find_flag(const char *opt)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (!strcmp(opt, flags[i].opt))
            return &flags[i];
    return NULL;
}

/* argv: ACTION KEY_ID options... ; 0 or -1 (said on stderr). */
static int parse_args(int argc, char **argv, args *a)
{
    a->data = getenv("TURNKEY_DATA") ? getenv("TURNKEY_DATA") : "./var";
    a->store = getenv("TURNKEY_STORE") ? getenv("TURNKEY_STORE") : "";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const struct flag *f = find_flag(o);
        const char **dst = !strcmp(o, "--data")      ? &a->data
                           : !strcmp(o, "--store")   ? &a->store
                           : !strcmp(o, "--account") ? &a->account
                           : !strcmp(o, "--json")    ? &a->json
                                                     : NULL;
        if (o[0] != '-') {
            const char **pos = !a->action ? &a->action : !a->key ? &a->key : NULL;
            if (!pos) {
                fprintf(stderr, "turnkey: unexpected argument '%s'\n", o);
                return -1;
            }
            *pos = o;
            continue;
        }
        if (!dst && !f) {
            fprintf(stderr, "turnkey: unknown option '%s'\n", o);
            return -1;
        }
        if (!v) {
            fprintf(stderr, "turnkey: option %s needs a value\n", o);
            return -1;
        }
        if (dst)
            *dst = v;
        else if (add_flag(a->patch, f, v) != 0)
            return -1;
        i++;
    }
    return 0;
}

/* The key and its account (checked against --account when given); 0, or 1 said. */
static int find_key(store *s, const args *a, char acct[STORE_ID_LEN + 1])
{
    store_key k;
    int rc = store_key_by_uid(s, a->key, &k);
    if (rc == STORE_OK && (!a->account || !strcmp(a->account, k.account_id))) {
        memcpy(acct, k.account_id, STORE_ID_LEN + 1);
        store_key_clear(&k);
        return 0;
    }
    if (rc == STORE_OK)
        store_key_clear(&k);
    if (rc == STORE_OK || rc == STORE_NOT_FOUND)
        fprintf(stderr, "turnkey: no TURN key %s%s%s\n", a->key, a->account ? " in account " : "",
                a->account ? a->account : "");
    else
        fprintf(stderr, "turnkey: could not read the key (store error)\n");
    return 1;
}

static void record(store *s, const char *acct, const char *action, const char *uid, const char *old,
                   const char *new_doc)
{
    json_t *ov = old ? json_loads(old, 0, NULL) : NULL,
           *nv = new_doc ? json_loads(new_doc, 0, NULL) : NULL;
    audit_cli_record(s, acct, action, "turn_key_policy", uid, ov, nv);
    json_decref(ov);
    json_decref(nv);
}

/* The stored document of uid into *doc (NULL: none); 0, or 1 said. */
static int read_doc(store *s, const char *uid, store_policy *sp, bool *had)
{
    int rc = store_policy_get(s, uid, sp);
    *had = rc == STORE_OK;
    if (rc == STORE_OK || rc == STORE_NOT_FOUND)
        return 0;
    fprintf(stderr, "turnkey: could not read the policy (store error)\n");
    return 1;
}

/* The patch: --json DOC (an object), then the flags over it. NULL (said) if malformed. */
static char *build_patch(const args *a)
{
    json_t *p = json_object();
    if (a->json) {
        json_error_t je;
        json_decref(p);
        p = json_loads(a->json, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(p)) {
            fprintf(stderr, "turnkey: --json must be a JSON object (%s)\n",
                    p ? "not an object" : je.text);
            json_decref(p);
            return NULL;
        }
    }
    json_object_update(p, a->patch);
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return s;
}

/* One read-merge-write: 0 done, 1/2 failed (said why), -1 the policy changed meanwhile. */
static int set_once(store *s, const args *a, const char *acct, const char *patch)
{
    store_policy old, put;
    bool had;
    char *doc = NULL, err[200];
    int rc = read_doc(s, a->key, &old, &had);
    if (rc != 0)
        return rc;
    if (policy_patch(had ? old.json : NULL, patch, strlen(patch), &doc, err, sizeof err) != 0) {
        fprintf(stderr, "turnkey: invalid policy: %s\n", err);
        rc = 2;
    } else if (had && !strcmp(old.json, doc)) {
        printf("%s\n", doc); /* unchanged: nothing written, nothing logged */
    } else if ((rc = store_policy_replace(s, acct, a->key, doc, had ? old.json : NULL,
                                          util_now_ms(), &put)) == STORE_CONFLICT) {
        rc = -1;
    } else if (rc != STORE_OK) {
        fprintf(stderr, "turnkey: could not store the policy (%s)\n",
                rc == STORE_NOT_FOUND ? "the key is gone" : "store error");
        rc = 1;
    } else {
        record(s, acct, had ? "update" : "create", a->key, had ? old.json : NULL, doc);
        store_policy_clear(&put);
        printf("%s\n", doc);
    }
    free(doc);
    store_policy_clear(&old);
    return rc;
}

static int set(store *s, const args *a, const char *acct)
{
    char *patch = build_patch(a);
    int rc = patch ? -1 : 2;
    for (int i = 0; i < 5 && rc == -1; i++) /* another writer came in between: merge again */
        rc = set_once(s, a, acct, patch);
    if (rc == -1) {
        fprintf(stderr, "turnkey: the policy kept changing meanwhile; try again\n");
        rc = 1;
    }
    free(patch);
    return rc;
}

static int clear(store *s, const args *a, const char *acct)
{
    store_policy old;
    bool had;
    if (read_doc(s, a->key, &old, &had) != 0)
        return 1;
    int rc = had ? store_policy_delete(s, acct, a->key) : STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        record(s, acct, "delete", a->key, old.json, NULL);
        printf("cleared the policy of key %s\n", a->key);
    } else if (rc == STORE_NOT_FOUND) {
        printf("key %s has no policy\n", a->key);
    } else {
        fprintf(stderr, "turnkey: could not clear the policy (store error)\n");
    }
    store_policy_clear(&old);
    return rc == STORE_OK || rc == STORE_NOT_FOUND ? 0 : 1;
}

/* One line, the API's GET result. */
static int get(store *s, const args *a)
{
    json_t *out = api_policy_result(s, a->key, util_now());
    if (!out) {
        fprintf(stderr, "turnkey: could not read the policy (store error)\n");
        return 1;
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(out);
    return 0;
}

int cli__policy(int argc, char **argv)
{
    args a = {.patch = json_object()};
    int rc = 2;
    store *s = NULL;
    char acct[STORE_ID_LEN + 1];
    if (parse_args(argc, argv, &a) != 0)
        goto out;
    const char *act = a.action ? a.action : "";
    bool is_set = !strcmp(act, "set"), is_get = !strcmp(act, "get"), is_clr = !strcmp(act, "clear");
    bool has_fields = a.json || json_object_size(a.patch);
    if ((!is_set && !is_get && !is_clr) || !a.key || is_set != has_fields) {
        fputs(usage, stderr);
        goto out;
    }
    rc = 1;
    if (!(s = cli_open_store(a.data, a.store, false)) || find_key(s, &a, acct) != 0)
        goto out;
    rc = is_set ? set(s, &a, acct) : is_get ? get(s, &a) : clear(s, &a, acct);
out:
    store_close(s);
    json_decref(a.patch);
    return rc;
}
