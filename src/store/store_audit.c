/* store: the audit log's dispatchers (backend-independent rules: the id, the time). */
#include <stdlib.h>
#include <string.h>

#include "turnkey/store.h"
#include "turnkey/util.h"

/* A backend without the audit ops (a new one, not yet complete) answers STORE_ERROR. */
int store_audit_add(store *s, store_audit *e, int64_t now_ms)
{
    if (!s->ops->audit_add)
        return STORE_ERROR;
    util_random_hex(STORE_ID_LEN / 2, e->id);
    if (e->when == 0)
        e->when = now_ms;
    return s->ops->audit_add(s->ctx, e);
}

int store_audit_list(store *s, const store_audit_query *q, store_audit **out, size_t *n,
                     size_t *total)
{
    *out = NULL;
    *n = *total = 0;
    if (!s->ops->audit_list)
        return STORE_ERROR;
    return s->ops->audit_list(s->ctx, q, out, n, total);
}

int store_audit_purge(store *s, int64_t before_ms, size_t *purged)
{
    if (!s->ops->audit_purge)
        return STORE_ERROR;
    return s->ops->audit_purge(s->ctx, before_ms, purged);
}

void store_audit_array_free(store_audit *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].old_value);
        free(a[i].new_value);
        free(a[i].metadata);
    }
    free(a);
}
