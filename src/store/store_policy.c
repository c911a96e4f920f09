/* store: the key-policy and budget dispatchers (issue 14 §4). The document is validated by
 * src/policy before it gets here; this layer checks ids, sizes and fields, so both
 * backends see the same inputs. */
#include <stdlib.h>
#include <string.h>

#include "turnkey/policy.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

static bool id_ok(const char *id)
{
    return id && strlen(id) == STORE_ID_LEN && util_is_lower_hex(id, STORE_ID_LEN);
}

static int put(store *s, const char *account_id, const char *key_uid, const char *json, bool check,
               const char *expect, int64_t now_ms, store_policy *out)
{
    memset(out, 0, sizeof *out);
    if (!s->ops->policy_put)
        return STORE_ERROR;
    if (!json || !json[0] || strlen(json) > POLICY_JSON_MAX)
        return STORE_INVALID;
    if (!id_ok(account_id) || !id_ok(key_uid))
        return STORE_NOT_FOUND;
    memcpy(out->key_uid, key_uid, STORE_ID_LEN + 1);
    memcpy(out->account_id, account_id, STORE_ID_LEN + 1);
    out->json = util_xstrdup(json);
    out->modified = now_ms;
    int rc = s->ops->policy_put(s->ctx, out, check, expect);
    if (rc != STORE_OK)
        store_policy_clear(out);
    return rc;
}

int store_policy_put(store *s, const char *account_id, const char *key_uid, const char *json,
                     int64_t now_ms, store_policy *out)
{
    return put(s, account_id, key_uid, json, false, NULL, now_ms, out);
}

int store_policy_replace(store *s, const char *account_id, const char *key_uid, const char *json,
                         const char *expect, int64_t now_ms, store_policy *out)
{
    return put(s, account_id, key_uid, json, true, expect, now_ms, out);
}

int store_policy_get(store *s, const char *key_uid, store_policy *out)
{
    memset(out, 0, sizeof *out);
    if (!s->ops->policy_get)
        return STORE_ERROR;
    if (!id_ok(key_uid))
        return STORE_NOT_FOUND;
    return s->ops->policy_get(s->ctx, key_uid, out);
}

int store_policy_delete(store *s, const char *account_id, const char *key_uid)
{
    if (!s->ops->policy_delete)
        return STORE_ERROR;
    if (!id_ok(account_id) || !id_ok(key_uid))
        return STORE_NOT_FOUND;
    return s->ops->policy_delete(s->ctx, account_id, key_uid);
}

int store_policy_list_all(store *s, store_policy **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->ops->policy_list_all)
        return STORE_ERROR;
    return s->ops->policy_list_all(s->ctx, out, n);
}

void store_policy_clear(store_policy *p)
{
    if (!p)
        return;
    free(p->json);
    p->json = NULL;
}

void store_policy_array_free(store_policy *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        free(a[i].json);
    free(a);
}

static bool budget_ok(const store_budget *b)
{
    size_t cl = strnlen(b->custom_id, sizeof b->custom_id);
    return id_ok(b->key_uid) && cl < sizeof b->custom_id &&
           (b->period == STORE_BUDGET_DAY || b->period == STORE_BUDGET_MONTH) &&
           b->period_start < b->period_end && b->limit_bytes > 0 && b->limit_bytes <= INT64_MAX &&
           b->level >= 0 && b->level <= 100 && b->tripped >= 0 &&
           b->tripped <= POLICY_END_ALLOCATIONS;
}

int store_budget_mark(store *s, const store_budget *b, unsigned *advanced)
{
    *advanced = 0;
    if (!s->ops->budget_mark)
        return STORE_ERROR;
    if (!budget_ok(b))
        return STORE_INVALID;
    return s->ops->budget_mark(s->ctx, b, advanced);
}

int store_budget_list(store *s, const char *key_uid, int64_t now, bool tripped_only,
                      store_budget **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->ops->budget_list)
        return STORE_ERROR;
    if (key_uid && !id_ok(key_uid))
        return STORE_OK;
    return s->ops->budget_list(s->ctx, key_uid, now, tripped_only, out, n);
}

int store_budget_purge(store *s, int64_t before, size_t *purged)
{
    *purged = 0;
    if (!s->ops->budget_purge)
        return STORE_ERROR;
    return s->ops->budget_purge(s->ctx, before, purged);
}

int store__copy_policy(store *from, store *to, const char *key_uid, size_t *copied,
                       size_t *verified)
{
    if (!from->ops->policy_get || !to->ops->policy_get)
        return STORE_OK; /* a backend without them holds none */
    store_policy src, dst;
    int rc = from->ops->policy_get(from->ctx, key_uid, &src);
    if (rc == STORE_NOT_FOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    rc = to->ops->policy_get(to->ctx, key_uid, &dst);
    if (rc == STORE_NOT_FOUND) { /* the record as is, modified time included */
        rc = to->ops->policy_put(to->ctx, &src, true, NULL);
        *copied += rc == STORE_OK;
        if (rc == STORE_OK)
            rc = to->ops->policy_get(to->ctx, key_uid, &dst);
    }
    if (rc == STORE_OK) {
        rc = strcmp(src.json, dst.json) == 0 ? STORE_OK : STORE_ERROR;
        *verified += rc == STORE_OK;
        store_policy_clear(&dst);
    }
    store_policy_clear(&src);
    return rc;
}
