/* store: the webhook dispatchers (issue 14): the secret is made here, above the backends. */
#include <stdlib.h>
#include <string.h>

#include "turnkey/store.h"
#include "turnkey/util.h"

int store_webhook_put(store *s, const char *account_id, const char *url, unsigned events,
                      bool rotate, int64_t now_ms, store_webhook *out, bool *created)
{
    memset(out, 0, sizeof *out);
    *created = false;
    if (!s->ops->webhook_put || !url || strlen(account_id) > STORE_ID_LEN || !events ||
        (events & ~STORE_WEBHOOK_ALL))
        return STORE_ERROR;
    store_webhook w = {.url = (char *)url, .events = events, .created = now_ms, .modified = now_ms};
    memcpy(w.account_id, account_id, strlen(account_id) + 1);
    util_random_hex(STORE_WEBHOOK_SECRET_LEN / 2, w.secret);
    int rc = s->ops->webhook_put(s->ctx, &w, !rotate, out, created);
    explicit_bzero(w.secret, sizeof w.secret);
    return rc;
}

int store_webhook_get(store *s, const char *account_id, store_webhook *out)
{
    memset(out, 0, sizeof *out);
    return s->ops->webhook_get ? s->ops->webhook_get(s->ctx, account_id, out) : STORE_ERROR;
}

int store_webhook_delete(store *s, const char *account_id, store_webhook *out)
{
    memset(out, 0, sizeof *out);
    return s->ops->webhook_delete ? s->ops->webhook_delete(s->ctx, account_id, out) : STORE_ERROR;
}

int store_webhook_enqueue(store *s, const store_webhook_event *e, size_t n, size_t max_per_account,
                          size_t *queued, size_t *dropped)
{
    *queued = *dropped = 0;
    if (!s->ops->webhook_enqueue || max_per_account == 0)
        return STORE_ERROR;
    if (n == 0)
        return STORE_OK;
    return s->ops->webhook_enqueue(s->ctx, e, n, max_per_account, queued, dropped);
}

int store_webhook_claim(store *s, int64_t now, int64_t lease_until, size_t max,
                        store_webhook_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->ops->webhook_claim || lease_until <= now)
        return STORE_ERROR;
    if (max == 0)
        return STORE_OK;
    return s->ops->webhook_claim(s->ctx, now, lease_until, max, out, n);
}

int store_webhook_done(store *s, int64_t seq)
{
    return s->ops->webhook_done ? s->ops->webhook_done(s->ctx, seq) : STORE_ERROR;
}

int store_webhook_retry(store *s, int64_t seq, int attempts, int64_t next_at)
{
    return s->ops->webhook_retry ? s->ops->webhook_retry(s->ctx, seq, attempts, next_at)
                                 : STORE_ERROR;
}

int store_webhook_count(store *s, size_t *queued)
{
    *queued = 0;
    return s->ops->webhook_count ? s->ops->webhook_count(s->ctx, queued) : STORE_ERROR;
}

void store_webhook_clear(store_webhook *w)
{
    free(w->url);
    explicit_bzero(w->secret, sizeof w->secret);
    w->url = NULL;
}

void store_webhook_event_array_free(store_webhook_event *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].body);
        free(e[i].url);
        explicit_bzero(e[i].secret, sizeof e[i].secret);
    }
    free(e);
}
