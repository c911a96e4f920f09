/* store: the usage dispatchers (backend-independent checks of the query). */
#include <stdlib.h>

#include "turnkey/store.h"

int store_usage_add(store *s, const store_usage_delta *d, size_t n)
{
    if (!s->ops->usage_add)
        return STORE_ERROR;
    if (n == 0)
        return STORE_OK;
    return s->ops->usage_add(s->ctx, d, n);
}

static bool step_ok(int64_t step)
{
    return step == 0 || step == 60 || step == 300 || step == 900 || step == 3600 || step == 86400;
}

int store_usage_query(store *s, const store_usage_filter *q, store_usage_row **out, size_t *n,
                      size_t *total)
{
    *out = NULL;
    *n = *total = 0;
    if (!s->ops->usage_query || !q->account_id || !step_ok(q->step) || q->until < q->since)
        return STORE_ERROR;
    return s->ops->usage_query(s->ctx, q, out, n, total);
}

int store_usage_rollup(store *s, int64_t before, int64_t drop_before, size_t *rolled)
{
    *rolled = 0;
    if (!s->ops->usage_rollup)
        return STORE_ERROR;
    return s->ops->usage_rollup(s->ctx, before, drop_before, rolled);
}
