/* webhook: events into the store's queue (see webhook.h). Events are made on the main thread
 * (webhook_emit may be called from any: the batch is locked), written in one transaction per
 * webhook_tick, and delivered by the worker (webhook_worker.c). */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "turnkey/metrics.h"
#include "turnkey/turn.h"
#include "turnkey/util.h"

webhook *webhook_new(const webhook_config *cfg)
{
    webhook *wh = util_xcalloc(1, sizeof *wh);
    wh->cfg = *cfg;
    if (!wh->cfg.max_queued)
        wh->cfg.max_queued = 10000;
    if (!wh->cfg.max_pending)
        wh->cfg.max_pending = 10000;
    if (wh->cfg.max_age_ms <= 0)
        wh->cfg.max_age_ms = 3 * 86400 * 1000LL;
    if (wh->cfg.retry_max_ms <= 0)
        wh->cfg.retry_max_ms = 600 * 1000;
    if (wh->cfg.timeout_ms <= 0)
        wh->cfg.timeout_ms = 10000;
    if (!wh->cfg.concurrency)
        wh->cfg.concurrency = 16;
    wh->pending = util_xcalloc(wh->cfg.max_pending, sizeof *wh->pending);
    pthread_mutex_init(&wh->mu, NULL);
    pthread_cond_init(&wh->wake, NULL);
    peer_policy_init(&wh->peers);
    log_limiter_init(&wh->rl);
    log_limiter_init(&wh->wrl);
    return wh;
}

static int add_ranges(webhook *wh, const char *const *v, size_t n, bool allow, char **err)
{
    for (size_t i = 0; i < n; i++) {
        peer_cidr c;
        if (peer_cidr_parse(v[i], &c) != 0) {
            *err = util_xasprintf("--%s-peer: not a CIDR: '%s'", allow ? "allow" : "deny", v[i]);
            return -1;
        }
        if (allow)
            peer_policy_add_allow(&wh->peers, &c);
        else
            peer_policy_add_deny(&wh->peers, &c);
    }
    return 0;
}

int webhook_start(webhook *wh, char **err)
{
    if (add_ranges(wh, wh->cfg.allow_peer, wh->cfg.n_allow_peer, true, err) != 0 ||
        add_ranges(wh, wh->cfg.deny_peer, wh->cfg.n_deny_peer, false, err) != 0)
        return -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        *err = util_xasprintf("webhooks: libcurl failed to initialise");
        return -1;
    }
    if (pthread_create(&wh->thread, NULL, webhook__worker, wh) != 0) {
        curl_global_cleanup();
        *err = util_xasprintf("webhooks: cannot start the delivery thread");
        return -1;
    }
    wh->started = true;
    return 0;
}

static void free_acct(webhook *wh)
{
    for (size_t i = 0; i < WEBHOOK__BUCKETS; i++)
        for (webhook__acct *a = wh->acct[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
    memset(wh->acct, 0, sizeof wh->acct);
    wh->n_acct = 0;
}

void webhook_free(webhook *wh)
{
    if (!wh)
        return;
    webhook_tick(wh); /* the last events reach the store */
    if (wh->started) {
        pthread_mutex_lock(&wh->mu);
        wh->stop = true;
        pthread_cond_signal(&wh->wake);
        pthread_mutex_unlock(&wh->mu);
        pthread_join(wh->thread, NULL);
        curl_global_cleanup();
    }
    for (size_t i = 0; i < wh->n_pending; i++)
        free(wh->pending[i].body);
    free(wh->pending);
    free_acct(wh);
    peer_policy_dispose(&wh->peers);
    pthread_cond_destroy(&wh->wake);
    pthread_mutex_destroy(&wh->mu);
    free(wh);
}

/* --- accounts of keys ---------------------------------------------------------------- */

static size_t bucket(const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % WEBHOOK__BUCKETS;
}

/* The account of a key (main thread): cached, since the key may be deleted by the time its
 * allocations' end records arrive. 0 found, -1 unknown. */
static int account_of(webhook *wh, const char *key, char out[STORE_ID_LEN + 1])
{
    size_t b = bucket(key);
    for (webhook__acct *a = wh->acct[b]; a; a = a->next)
        if (!strcmp(a->key, key)) {
            memcpy(out, a->account, STORE_ID_LEN + 1);
            return 0;
        }
    store_key k;
    if (strlen(key) > STORE_ID_LEN || store_key_by_uid(wh->cfg.st, key, &k) != STORE_OK)
        return -1;
    if (wh->n_acct >= WEBHOOK__MAX_ACCTS)
        free_acct(wh);
    webhook__acct *a = util_xcalloc(1, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", key);
    memcpy(a->account, k.account_id, STORE_ID_LEN + 1);
    store_key_clear(&k);
    a->next = wh->acct[b];
    wh->acct[b] = a;
    wh->n_acct++;
    memcpy(out, a->account, STORE_ID_LEN + 1);
    return 0;
}

/* --- events -------------------------------------------------------------------------- */

static void drop(webhook *wh, int why, const char *what)
{
    atomic_fetch_add(&wh->dropped[why], 1);
    log_warn_rl(&wh->rl, "webhook", "webhook event dropped: %s", what);
}

/* Wraps data (taken) into the event envelope and adds it to the pending batch. */
static void add(webhook *wh, unsigned kind, const char *account, json_t *data)
{
    store_webhook_event e = {.kind = kind, .created = util_now_ms()};
    util_random_hex(STORE_ID_LEN / 2, e.id);
    snprintf(e.account_id, sizeof e.account_id, "%s", account);
    e.next_at = e.created;
    char created[32];
    util_rfc3339_ms(e.created, created);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", e.id, "type", webhook_kind_name(kind),
                  "created", created, "accountId", account, "data", data);
    e.body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!e.body) {
        drop(wh, WH_DROP_UNATTRIBUTED, "its data is not valid JSON text");
        return;
    }
    pthread_mutex_lock(&wh->mu);
    char *gone = NULL;
    if (wh->n_pending == wh->cfg.max_pending) { /* the store has been failing: oldest go */
        gone = wh->pending[0].body;
        memmove(wh->pending, wh->pending + 1, (wh->n_pending - 1) * sizeof *wh->pending);
        wh->n_pending--;
    }
    wh->pending[wh->n_pending++] = e;
    atomic_store(&wh->n_pending_pub, wh->n_pending);
    pthread_mutex_unlock(&wh->mu);
    if (gone) {
        free(gone);
        drop(wh, WH_DROP_PENDING_FULL, "the in-memory batch is full (store failing)");
    }
}

static const char *text_field(json_t *o, const char *a, const char *b)
{
    const char *s = json_string_value(json_object_get(o, a));
    return s ? s : json_string_value(json_object_get(o, b));
}

void webhook_emit(void *ctx, const char *type, const char *json)
{
    webhook *wh = ctx;
    unsigned kind = webhook_kind_parse(type ? type : "");
    json_t *data = json ? json_loads(json, JSON_REJECT_DUPLICATES, NULL) : NULL;
    char account[STORE_ID_LEN + 1] = "";
    const char *acct = data ? text_field(data, "accountId", "account_id") : NULL;
    const char *key = data ? text_field(data, "keyId", "key_id") : NULL;
    if (acct && strlen(acct) <= STORE_ID_LEN)
        snprintf(account, sizeof account, "%s", acct);
    else if (key)
        account_of(wh, key, account);
    if (!kind || !json_is_object(data) || !account[0]) {
        json_decref(data);
        drop(wh, WH_DROP_UNATTRIBUTED, "unknown type, data not a JSON object, or no account");
        return;
    }
    add(wh, kind, account, data);
}

/* A JSON string of a username: as is when clean UTF-8, else "0x" + hex (as usage rows). */
static json_t *username_json(const relay_ended *e)
{
    size_t n = strlen(e->username);
    if (util_utf8_valid_no_cc(e->username, n))
        return json_string(e->username);
    char hex[2 * 126 + 3] = "0x";
    util_hex_encode((const uint8_t *)e->username, n > 126 ? 126 : n, hex + 2);
    return json_string(hex);
}

static json_t *flow(const turn_flow *rx, const turn_flow *tx, bool packets)
{
    return json_pack("{s:I, s:I}", "rx", (json_int_t)(packets ? rx->packets : rx->bytes), "tx",
                     (json_int_t)(packets ? tx->packets : tx->bytes));
}

static json_t *legs(const turn_traffic *t, bool packets)
{
    return json_pack("{s:o, s:o}", "client", flow(&t->client_rx, &t->client_tx, packets), "peer",
                     flow(&t->peer_rx, &t->peer_tx, packets));
}

void webhook_allocation_ended(void *ctx, const relay_ended *e)
{
    static const char *const transports[3] = {"udp", "tcp", "tls"};
    webhook *wh = ctx;
    char account[STORE_ID_LEN + 1];
    if (!e->key_id[0])
        return; /* not a TURN key's credential: no account to tell */
    if (account_of(wh, e->key_id, account) != 0) {
        drop(wh, WH_DROP_UNATTRIBUTED, "allocation.ended of a key the store does not know");
        return;
    }
    char start[32], end[32];
    util_rfc3339_ms(e->start_ms, start);
    util_rfc3339_ms(e->end_ms, end);
    json_t *cid = json_string(e->custom_id);
    json_t *data = json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o}", "keyId", e->key_id,
        "customIdentifier", cid ? cid : json_string(""), "username", username_json(e), "transport",
        (unsigned)e->transport < 3 ? transports[e->transport] : "udp", "family",
        e->family == AF_INET6 ? "ipv6" : "ipv4", "start", start, "end", end, "durationMs",
        (json_int_t)(e->end_ms - e->start_ms), "reason", turn_end_reason_name(e->reason), "bytes",
        legs(&e->traffic, false), "packets", legs(&e->traffic, true));
    if (data)
        add(wh, STORE_WEBHOOK_ALLOCATION_ENDED, account, data);
}

/* A batch that could not be written goes back in front of what came since, the oldest
 * dropped beyond max_pending. */
static void put_back(webhook *wh, store_webhook_event *batch, size_t n)
{
    pthread_mutex_lock(&wh->mu);
    size_t room = wh->cfg.max_pending - wh->n_pending, skip = n > room ? n - room : 0;
    memmove(wh->pending + (n - skip), wh->pending, wh->n_pending * sizeof *wh->pending);
    memcpy(wh->pending, batch + skip, (n - skip) * sizeof *batch);
    wh->n_pending += n - skip;
    atomic_store(&wh->n_pending_pub, wh->n_pending);
    pthread_mutex_unlock(&wh->mu);
    for (size_t i = 0; i < skip; i++) {
        free(batch[i].body);
        drop(wh, WH_DROP_PENDING_FULL, "the in-memory batch is full (store failing)");
    }
}

void webhook_tick(webhook *wh)
{
    pthread_mutex_lock(&wh->mu);
    size_t n = wh->n_pending;
    store_webhook_event *batch = n ? util_xmalloc(n * sizeof *batch) : NULL;
    if (n)
        memcpy(batch, wh->pending, n * sizeof *batch); /* taken: emitters go on meanwhile */
    wh->n_pending = 0;
    pthread_mutex_unlock(&wh->mu);
    if (!n)
        return;
    size_t queued = 0, trimmed = 0;
    if (store_webhook_enqueue(wh->cfg.st, batch, n, wh->cfg.max_queued, &queued, &trimmed) !=
        STORE_OK) {
        log_error_rl(&wh->rl, "webhook",
                     "cannot write %zu webhook events to the store; kept for the next try", n);
        put_back(wh, batch, n);
        free(batch);
        return;
    }
    for (size_t i = 0; i < n; i++)
        free(batch[i].body);
    free(batch);
    pthread_mutex_lock(&wh->mu);
    atomic_store(&wh->n_pending_pub, wh->n_pending);
    wh->kick = true;
    pthread_cond_signal(&wh->wake);
    pthread_mutex_unlock(&wh->mu);
    atomic_fetch_add(&wh->queued, queued);
    if (trimmed) {
        atomic_fetch_add(&wh->dropped[WH_DROP_QUEUE_FULL], trimmed);
        log_warn_rl(&wh->rl, "webhook",
                    "%zu queued webhook events dropped: an account reached --webhook-max-queued "
                    "(%zu; its receiver is failing)",
                    trimmed, wh->cfg.max_queued);
    }
}

void webhook_metrics(webhook *wh, metrics_buf *b)
{
    static const char *const why[WH_DROP__N] = {"queue_full", "expired", "pending_full",
                                                "unattributed"};
    metrics_family(b, "turnkey_webhook_events_queued_total", "counter",
                   "Webhook events written to the store's queue.");
    metrics_u64(b, "turnkey_webhook_events_queued_total", NULL, atomic_load(&wh->queued));
    size_t q = 0;
    if (store_webhook_count(wh->cfg.st, &q) == STORE_OK) {
        metrics_family(b, "turnkey_webhook_queue_events", "gauge",
                       "Webhook events in the store's queue (every node's), not yet delivered.");
        metrics_u64(b, "turnkey_webhook_queue_events", NULL, q);
    }
    metrics_family(b, "turnkey_webhook_pending_events", "gauge",
                   "Webhook events made here and not yet written to the store.");
    metrics_u64(b, "turnkey_webhook_pending_events", NULL, atomic_load(&wh->n_pending_pub));
    metrics_family(b, "turnkey_webhook_delivered_total", "counter",
                   "Webhook events delivered (the receiver answered 2xx).");
    metrics_u64(b, "turnkey_webhook_delivered_total", NULL, atomic_load(&wh->delivered));
    metrics_family(b, "turnkey_webhook_failed_attempts_total", "counter",
                   "Webhook POSTs that failed (non-2xx, timeout, connection error); retried.");
    metrics_u64(b, "turnkey_webhook_failed_attempts_total", NULL, atomic_load(&wh->failed));
    metrics_family(b, "turnkey_webhook_dropped_total", "counter",
                   "Webhook events dropped, by reason: queue_full (--webhook-max-queued), "
                   "expired (--webhook-max-age), pending_full, unattributed.");
    for (int i = 0; i < WH_DROP__N; i++) {
        char lab[40];
        snprintf(lab, sizeof lab, "reason=\"%s\"", why[i]);
        metrics_u64(b, "turnkey_webhook_dropped_total", lab, atomic_load(&wh->dropped[i]));
    }
}
