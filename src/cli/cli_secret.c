/* cli_secret: `turnkey key secret add|list|delete` — shared secrets of a TURN key (issue
 * 15) on the store `turnkey serve` uses. add prints the secret once, alone on its last
 * line; the audit record never holds it. A running server's key cache follows through the
 * change feed (the relay ends a deleted secret's allocations). */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/audit.h"
#include "turnkey/cli.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static const char usage[] =
    "turnkey: usage: turnkey key secret add --account ID --key UID [--algorithm sha1|sha256]\n"
    "                                     [--max-ttl SECONDS] [--data DIR | --store STORE]\n"
    "       turnkey key secret list --account ID --key UID\n"
    "       turnkey key secret delete --account ID --key UID SECRET_ID\n";

static json_t *audit_value(const store_shared_secret *s)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "id", s->id, "key_id", s->key_uid, "algorithm",
                     store_secret_alg_name(s->alg), "max_ttl", (json_int_t)s->max_ttl);
}

static int parse_ttl(const char *v, int64_t *out)
{
    char *end;
    *out = 0;
    if (!v)
        return 0;
    long long x = strtoll(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || x < STORE_SHARED_TTL_MIN || x > STORE_SHARED_TTL_MAX)
        return -1;
    *out = x;
    return 0;
}

static int add(store *s, const cli__secret_args *a)
{
    int alg = a->algorithm ? store_secret_alg_parse(a->algorithm) : STORE_SECRET_SHA1;
    int64_t ttl;
    if (!alg || parse_ttl(a->max_ttl, &ttl) != 0) {
        fprintf(stderr, "turnkey: --algorithm is sha1 or sha256; --max-ttl is %d..%d seconds\n",
                STORE_SHARED_TTL_MIN, STORE_SHARED_TTL_MAX);
        return 2;
    }
    store_shared_secret x;
    int rc = store_secret_add(s, a->account, a->key, alg, ttl, util_now_ms(), &x);
    if (rc == STORE_NOT_FOUND)
        fprintf(stderr, "turnkey: no TURN key %s in account %s\n", a->key, a->account);
    else if (rc == STORE_LIMIT)
        fprintf(stderr, "turnkey: the key has %d shared secrets already (delete one first)\n",
                STORE_SHARED_SECRET_MAX);
    else if (rc != STORE_OK)
        fprintf(stderr, "turnkey: could not add the secret (store error)\n");
    if (rc != STORE_OK)
        return 1;
    json_t *nv = audit_value(&x);
    audit_cli_record(s, a->account, "create", "turn_key_shared_secret", x.id, NULL, nv);
    json_decref(nv);
    printf("shared secret %s of key %s (%s, max ttl %llds; username suffix ~%s)\n", x.id, x.key_uid,
           store_secret_alg_name(x.alg), (long long)x.max_ttl, x.key_uid);
    printf("%s\n", x.secret);
    OPENSSL_cleanse(&x, sizeof x);
    return 0;
}

static int list(store *s, const cli__secret_args *a)
{
    store_key k;
    int rc = store_key_get(s, a->account, a->key, &k);
    if (rc != STORE_OK) {
        fprintf(stderr,
                rc == STORE_NOT_FOUND ? "turnkey: no TURN key %s in account %s\n"
                                      : "turnkey: store error (key %s, account %s)\n",
                a->key, a->account);
        return 1;
    }
    store_key_clear(&k);
    store_shared_secret *l;
    size_t n;
    if (store_secret_list(s, a->key, &l, &n) != STORE_OK) {
        fprintf(stderr, "turnkey: could not list the secrets (store error)\n");
        return 1;
    }
    printf("%-32s  %-9s  %-8s  %s\n", "ID", "ALGORITHM", "MAX_TTL", "CREATED");
    for (size_t i = 0; i < n; i++) {
        char c[32];
        util_rfc3339_ms(l[i].created, c);
        printf("%-32s  %-9s  %-8lld  %s\n", l[i].id, store_secret_alg_name(l[i].alg),
               (long long)l[i].max_ttl, c);
    }
    store_secret_array_free(l, n);
    return 0;
}

static int delete_one(store *s, const cli__secret_args *a)
{
    store_shared_secret x;
    int rc = store_secret_delete(s, a->account, a->key, a->id, &x);
    if (rc == STORE_NOT_FOUND)
        fprintf(stderr, "turnkey: no shared secret %s of key %s in account %s\n", a->id, a->key,
                a->account);
    else if (rc != STORE_OK)
        fprintf(stderr, "turnkey: could not delete the secret (store error)\n");
    if (rc != STORE_OK)
        return 1;
    audit_cli_record(s, a->account, "delete", "turn_key_shared_secret", a->id, NULL, NULL);
    printf("deleted shared secret %s\n", a->id);
    OPENSSL_cleanse(&x, sizeof x);
    return 0;
}

int cli__secret(const cli__secret_args *a)
{
    const char *act = a->action ? a->action : "";
    bool is_add = !strcmp(act, "add"), is_list = !strcmp(act, "list"),
         is_del = !strcmp(act, "delete");
    if ((!is_add && !is_list && !is_del) || !a->account || !a->key || (is_del != (a->id != NULL))) {
        fputs(usage, stderr);
        return 2;
    }
    store *s = cli_open_store(a->data, a->store, false);
    if (!s)
        return 1;
    int rc = is_add ? add(s, a) : is_list ? list(s, a) : delete_one(s, a);
    store_close(s);
    return rc;
}
