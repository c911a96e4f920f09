/* webhook_worker: the delivery thread (see webhook.h). It claims due events from the store
 * (a lease as long as one round can take), POSTs up to --webhook concurrency of them at once
 * with one libcurl multi handle, and records each outcome: a 2xx deletes the event; anything
 * else (status, timeout, refused connection) schedules a retry with backoff, or gives it up
 * once it is older than max_age. The main thread never waits on it. */
#include <curl/curl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

enum { OUT_OK, OUT_FAILED, OUT_ABORTED };

typedef struct post {
    webhook *wh;
    CURL *h;
    struct curl_slist *hdrs;
    store_webhook_event *e;
    int outcome;
    long status;
    CURLcode cc;
    bool denied; /* an address the peer policy refuses */
} post;

/* Every connection a POST opens goes to an address the peer policy allows (after name
 * resolution: a host name cannot smuggle a private address in). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    post *p = arg;
    if (purpose != CURLSOCKTYPE_IPCXN || !peer_allowed(&p->wh->peers, &a->addr)) {
        p->denied = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n; /* the receiver's answer body is not read */
}

static void header(post *p, const char *fmt, const char *a, const char *b)
{
    char line[256];
    snprintf(line, sizeof line, fmt, a, b);
    p->hdrs = curl_slist_append(p->hdrs, line);
}

static int prepare(webhook *wh, post *p, store_webhook_event *e)
{
    memset(p, 0, sizeof *p);
    p->wh = wh;
    p->e = e;
    p->outcome = OUT_ABORTED;
    if (!(p->h = curl_easy_init()))
        return -1;
    char sig[65], t[24], ua[64];
    size_t len = strlen(e->body);
    int64_t now = util_now(); /* signed at send time: each attempt has its own timestamp */
    snprintf(t, sizeof t, "%lld", (long long)now);
    webhook_sign(e->secret, now, e->body, len, sig);
    snprintf(ua, sizeof ua, "turnkey/%s", wh->cfg.version ? wh->cfg.version : "0");
    header(p, "Content-Type: application/json%s%s", "", "");
    header(p, "Turnkey-Event-Id: %s%s", e->id, "");
    header(p, "Turnkey-Event-Type: %s%s", webhook_kind_name(e->kind), "");
    header(p, "Turnkey-Signature: t=%s,v1=%s", t, sig);
    header(p, "Expect:%s%s", "", ""); /* no 100-continue round trip */
    CURL *h = p->h;
    curl_easy_setopt(h, CURLOPT_URL, e->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, p->hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, e->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)wh->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)wh->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_PRIVATE, p);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, p);
    return 0;
}

static bool stopping(webhook *wh)
{
    pthread_mutex_lock(&wh->mu);
    bool s = wh->stop;
    pthread_mutex_unlock(&wh->mu);
    return s;
}

/* POSTs every event of the round at once; returns when all are answered or timed out, or
 * the worker is stopping (the rest stay OUT_ABORTED). */
static void post_all(webhook *wh, post *p, size_t n)
{
    CURLM *m = curl_multi_init();
    for (size_t i = 0; i < n; i++)
        if (p[i].h)
            curl_multi_add_handle(m, p[i].h);
    int running = 1;
    while (running && !stopping(wh)) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                post *q = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
                q->cc = msg->data.result;
                if (q->cc == CURLE_OK)
                    curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &q->status);
                q->outcome =
                    q->cc == CURLE_OK && q->status >= 200 && q->status < 300 ? OUT_OK : OUT_FAILED;
            }
        if (running)
            curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    for (size_t i = 0; i < n; i++)
        if (p[i].h)
            curl_multi_remove_handle(m, p[i].h);
    curl_multi_cleanup(m);
}

static void settle(webhook *wh, const post *p, int64_t now)
{
    store_webhook_event *e = p->e;
    store *st = wh->cfg.st;
    if (p->outcome == OUT_OK) {
        atomic_fetch_add(&wh->delivered, 1);
        if (store_webhook_done(st, e->seq) != STORE_OK) /* delivered again later: at least once */
            log_error_rl(&wh->wrl, "webhook", "cannot delete delivered webhook event %s", e->id);
        return;
    }
    if (p->outcome == OUT_ABORTED) { /* stopping: due again at once, for the next start */
        store_webhook_retry(st, e->seq, e->attempts, now);
        return;
    }
    atomic_fetch_add(&wh->failed, 1);
    int failures = e->attempts + 1;
    if (now - e->created >= wh->cfg.max_age_ms) {
        atomic_fetch_add(&wh->dropped[WH_DROP_EXPIRED], 1);
        log_warn_rl(&wh->wrl, "webhook",
                    "webhook event %s (%s, account %s) given up after %d attempts over %lld s",
                    e->id, webhook_kind_name(e->kind), e->account_id, failures,
                    (long long)((now - e->created) / 1000));
        store_webhook_done(st, e->seq);
        return;
    }
    uint32_t rnd;
    util_random((uint8_t *)&rnd, sizeof rnd);
    int64_t wait = webhook_backoff_ms(failures, wh->cfg.retry_max_ms, rnd);
    if (p->denied && p->cc != CURLE_OK)
        log_warn_rl(&wh->wrl, "webhook",
                    "webhook POST of event %s refused: the URL's address is denied by the peer "
                    "policy (--allow-peer opens it); retry in %lld ms",
                    e->id, (long long)wait);
    else if (p->cc != CURLE_OK)
        log_warn_rl(&wh->wrl, "webhook", "webhook POST of event %s failed: %s; retry in %lld ms",
                    e->id, curl_easy_strerror(p->cc), (long long)wait);
    else
        log_warn_rl(&wh->wrl, "webhook", "webhook POST of event %s got HTTP %ld; retry in %lld ms",
                    e->id, p->status, (long long)wait);
    if (store_webhook_retry(st, e->seq, failures, now + wait) != STORE_OK)
        log_error_rl(&wh->wrl, "webhook", "cannot reschedule webhook event %s (its lease ends)",
                     e->id);
}

/* One round: claim, POST, settle. Returns the events handled (0: nothing due). */
static size_t round_trip(webhook *wh)
{
    int64_t now = util_now_ms();
    store_webhook_event *ev;
    size_t n;
    /* the lease outlives the round: every POST ends within the timeout */
    if (store_webhook_claim(wh->cfg.st, now, now + wh->cfg.timeout_ms + 5000, wh->cfg.concurrency,
                            &ev, &n) != STORE_OK) {
        log_error_rl(&wh->wrl, "webhook", "cannot read the webhook queue from the store");
        return 0;
    }
    post *p = util_xcalloc(n ? n : 1, sizeof *p);
    for (size_t i = 0; i < n; i++)
        if (prepare(wh, &p[i], &ev[i]) != 0)
            log_error_rl(&wh->wrl, "webhook", "libcurl: cannot make a request");
    post_all(wh, p, n);
    now = util_now_ms();
    for (size_t i = 0; i < n; i++) {
        settle(wh, &p[i], now);
        curl_easy_cleanup(p[i].h);
        curl_slist_free_all(p[i].hdrs);
    }
    free(p);
    store_webhook_event_array_free(ev, n);
    return n;
}

void *webhook__worker(void *arg)
{
    webhook *wh = arg;
    while (!stopping(wh)) {
        if (round_trip(wh) > 0)
            continue;
        /* nothing due: sleep until the main thread wrote events, or a second (another node's
         * events, retries coming due) */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_mutex_lock(&wh->mu);
        while (!wh->kick && !wh->stop && pthread_cond_timedwait(&wh->wake, &wh->mu, &until) == 0) {
        }
        wh->kick = false;
        pthread_mutex_unlock(&wh->mu);
    }
    return NULL;
}
