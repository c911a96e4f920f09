/* turnkey: command-line entry point and wiring.
 *   turnkey serve [options]                       (see `turnkey serve --help`)
 *   turnkey account create|list [--data DIR] [--name N]
 *   turnkey token create|list|revoke [--data DIR] ...
 *   turnkey key list --account ID [--data DIR]
 *   turnkey store copy --from STORE --to STORE
 * Every command takes --store postgres://… | sqlite:FILE instead of --data DIR. The operator
 * commands live in src/cli; this file wires `serve`.
 * Exit status 0 on success; otherwise non-zero with a one-line reason on stderr. */
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "turnkey/api.h"
#include "turnkey/cfg.h"
#include "turnkey/cli.h"
#include "turnkey/datadir.h"
#include "turnkey/feed.h"
#include "turnkey/http.h"
#include "turnkey/keycache.h"
#include "turnkey/audit.h"
#include "turnkey/log.h"
#include "turnkey/obs.h"
#include "turnkey/relay.h"
#include "turnkey/tls.h"
#include "turnkey/usage.h"
#include "turnkey/spend.h"
#include "turnkey/store.h"
#include "turnkey/util.h"
#include "turnkey/webhook.h"

static void hook_key_deleted(void *ctx, const char *key_uid)
{
    relay_key_deleted(ctx, key_uid);
}

static void hook_revoked(void *ctx, const char *key_uid, const char *username, int64_t expires)
{
    (void)key_uid;
    (void)expires;
    relay_credential_revoked(ctx, username);
}

/* From the change feed: a key deleted / a credential revoked on some node. */
static void hook_revoked_hash(void *ctx, const char *username_sha256_hex)
{
    relay_credential_revoked_hash(ctx, username_sha256_hex);
}

/* From the change feed: a budget with action end_allocations tripped (issue 14 §4). */
static void hook_budget_tripped(void *ctx, const char *key_uid, const char *custom_id)
{
    relay_budget_tripped(ctx, key_uid, custom_id);
}

/* A shared secret deleted here or on another node (issue 15). */
static void hook_secret_deleted(void *ctx, const char *secret_id)
{
    relay_secret_deleted(ctx, secret_id);
}

static const char *store_problem(void *ctx)
{
    return feed_problem(ctx);
}

/* store copy --from A --to B: the target is created if needed (its migrations applied). */

/* The TLS pair: configured files, or a self-signed pair kept in the data directory. */
static int tls_paths(cfg *c)
{
    if (c->tls_cert[0] || c->tls_key[0]) {
        if (!c->tls_cert[0] || !c->tls_key[0]) {
            fprintf(stderr, "turnkey: --tls-cert and --tls-key go together\n");
            return -1;
        }
        return 0;
    }
    free(c->tls_cert);
    free(c->tls_key);
    c->tls_cert = util_xasprintf("%s/tls-selfsigned-cert.pem", c->data);
    c->tls_key = util_xasprintf("%s/tls-selfsigned-key.pem", c->data);
    char host[256] = "localhost";
    const char *lst = c->n_tls_listen           ? c->tls_listen[0]
                      : c->shared_tls_listen[0] ? c->shared_tls_listen
                                                : c->api_listen;
    const char *src = c->public_host[0] ? c->public_host : lst;
    size_t n = strcspn(src, c->public_host[0] ? "," : "");
    if (!c->public_host[0]) {
        const char *colon = strrchr(src, ':');
        n = colon ? (size_t)(colon - src) : strlen(src);
    }
    if (!c->public_host[0] && c->n_external_ip) { /* the address clients use, not 0.0.0.0 */
        src = c->external_ip[0];
        n = strcspn(src, "/");
    }
    snprintf(host, sizeof host, "%.*s", (int)n, src);
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    char *err = NULL;
    if (tls_ensure_self_signed(c->tls_cert, c->tls_key, host, &err) != 0) {
        fprintf(stderr, "turnkey: %s\n", err);
        free(err);
        return -1;
    }
    return 0;
}

static void set_port(char **listen, unsigned port);

/* The listener lists in relay order (turn, udp, tcp, tls): the i-th relay listener is the
 * list entry *listener_slot(c, i), so the ports actually bound can be written back. */
static char **listener_slot(cfg *c, size_t i, unsigned *kinds)
{
    struct {
        char **list;
        size_t n;
        unsigned kinds;
    } g[] = {{c->turn_listen, c->n_turn_listen, RELAY_UDP | RELAY_TCP},
             {c->udp_listen, c->n_udp_listen, RELAY_UDP},
             {c->tcp_listen, c->n_tcp_listen, RELAY_TCP},
             {c->tls_listen, c->n_tls_listen, RELAY_TLS},
             {&c->shared_tls_listen, c->shared_tls_listen[0] ? 1 : 0, RELAY_MUX}};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; i -= g[k].n, k++)
        if (i < g[k].n) {
            *kinds = g[k].kinds;
            return &g[k].list[i];
        }
    return NULL;
}

static size_t n_listeners(const cfg *c)
{
    return c->n_turn_listen + c->n_udp_listen + c->n_tcp_listen + c->n_tls_listen +
           (c->shared_tls_listen[0] ? 1 : 0);
}

/* Descriptors kept aside for listeners, epoll and eventfds, the store, stdio. */
#define FD_RESERVE 64

typedef struct fd_plan {
    long nofile, room;            /* the soft limit in force; descriptors left for allocations */
    unsigned long long was, hard; /* the soft limit found at start, the hard limit */
} fd_plan;

/* Raises the open-file soft limit to the hard one and fills in the automatic connection caps
 * (--max-conns, --api-max-conns = 0) from it; report_fds says what it left for allocations
 * (each holds one relay socket) once serving, so a failed start stays one line. */
static fd_plan plan_fds(cfg *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = rl.rlim_max = 1024;
    fd_plan p = {.was = (unsigned long long)rl.rlim_cur, .hard = (unsigned long long)rl.rlim_max};
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    p.nofile = rl.rlim_cur > 100000000 ? 100000000 : (long)rl.rlim_cur;
    if (c->api_max_conns == 0)
        c->api_max_conns = p.nofile / 8 > 1024 ? 1024 : (p.nofile / 8 < 16 ? 16 : p.nofile / 8);
    if (c->max_conns == 0)
        c->max_conns = p.nofile / 4 < 16 ? 16 : p.nofile / 4;
    p.room = p.nofile - FD_RESERVE - c->api_max_conns - c->max_conns;
    if (p.room < 0)
        p.room = 0;
    return p;
}

static void report_fds(const cfg *c, const fd_plan *p)
{
    log_info("main",
             "open files: %ld (soft limit was %llu, hard %llu): room for about %ld allocations "
             "beside %ld TURN TCP/TLS and %ld API connections",
             p->nofile, p->was, p->hard, p->room, c->max_conns, c->api_max_conns);
    if (c->max_allocations > p->room)
        log_warn("main",
                 "--max-allocations %ld does not fit in %ld open files: allocations will fail "
                 "(508) from about %ld on; raise the limit (LimitNOFILE=) or lower "
                 "--max-allocations/--max-conns",
                 c->max_allocations, p->nofile, p->room);
}

static void usage_record_in(void *arg, size_t worker, const usage_record *u);

/* Where the relay hands HTTP connections of the shared TLS port: the API server once it
 * runs, none (closed) before it starts and after it stops. */
typedef struct adopt_target {
    pthread_mutex_t mu;
    http_server *http;
} adopt_target;

static void adopt_http(void *ctx, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                       const struct sockaddr_storage *peer)
{
    adopt_target *t = ctx;
    pthread_mutex_lock(&t->mu);
    if (t->http)
        http_adopt_tls(t->http, fd, ssl, pre, n, peer);
    else
        tls_conn_close(ssl, fd);
    pthread_mutex_unlock(&t->mu);
}

static void set_adopt_target(adopt_target *t, http_server *h)
{
    pthread_mutex_lock(&t->mu);
    t->http = h;
    pthread_mutex_unlock(&t->mu);
}

static relay *start_relay(cfg *c, keycache *keys, tls_server *tls, usage_agg *ua,
                          tls_server *mux_tls, adopt_target *adopt)
{
    uint16_t lo, hi;
    relay *r = NULL;
    if (relay_parse_ports(c->relay_ports, &lo, &hi) != 0) {
        fprintf(stderr, "turnkey: --relay-ports must be LO-HI within 1-65535, got '%s'\n",
                c->relay_ports);
        return NULL;
    }
    size_t nl = n_listeners(c);
    relay_listener *ls = util_xcalloc(nl, sizeof *ls);
    relay_external *ext = util_xcalloc(c->n_external_ip + 1, sizeof *ext);
    for (size_t i = 0; i < nl; i++)
        ls[i].addr = *listener_slot(c, i, &ls[i].kinds);
    for (size_t i = 0; i < c->n_external_ip; i++) /* validated by cfg_load */
        cfg_parse_external(c->external_ip[i], &ext[i].pub, &ext[i].priv, &ext[i].has_priv);
    relay_config rc = {.listeners = ls,
                       .n_listeners = nl,
                       .external = ext,
                       .n_external = c->n_external_ip,
                       .relay_ip = c->relay_ip,
                       .port_lo = lo,
                       .port_hi = hi,
                       .realm = c->realm,
                       .allow_peer = (const char *const *)c->allow_peer,
                       .n_allow_peer = c->n_allow_peer,
                       .deny_peer = (const char *const *)c->deny_peer,
                       .n_deny_peer = c->n_deny_peer,
                       .user_quota = (uint32_t)c->user_quota,
                       .max_allocations = (uint32_t)c->max_allocations,
                       .nonce_lifetime_s = (uint32_t)c->nonce_lifetime,
                       .challenge_rate = (uint32_t)c->challenge_rate,
                       .threads = (unsigned)c->relay_threads,
                       .max_conns = (uint32_t)c->max_conns,
                       .max_conns_per_ip = (uint32_t)c->max_conns_per_ip,
                       .handshake_timeout_ms = (uint32_t)c->handshake_timeout * 1000u,
                       .tls = tls,
                       .keys = keys,
                       .usage = ua != NULL,
                       .usage_ring = (size_t)c->usage_ring_size,
                       .usage_last = usage_record_in,
                       .usage_ctx = ua,
                       .mux_tls = mux_tls,
                       .http_adopt = adopt_http,
                       .http_ctx = adopt,

                       .shared_secret_keys = c->shared_secret_keys};
    char *err = NULL;
    if (!(r = relay_start(&rc, &err))) {
        fprintf(stderr, "turnkey: %s\n", err);
        free(err);
    }
    free(ls);
    free(ext);
    return r;
}

/* With port 0 the kernel chose one: advertise and print the ports actually bound. */
static void show_listeners(cfg *c, relay *r, bool print)
{
    for (size_t i = 0; i < n_listeners(c); i++) {
        unsigned kinds;
        char **slot = listener_slot(c, i, &kinds);
        if (!print) {
            set_port(slot, relay_listener_port(r, i));
        } else if (kinds == RELAY_TLS) {
            printf("turnkey: TURN/TLS listening on %s (certificate %s)\n", *slot, c->tls_cert);
        } else if (kinds == RELAY_MUX) {
            printf("turnkey: HTTPS API and TURN/TLS share https://%s (certificate %s)\n", *slot,
                   c->tls_cert);
        } else {
            printf("turnkey: TURN listening on %s %s (realm %s)\n", *slot,
                   kinds == RELAY_UDP   ? "udp"
                   : kinds == RELAY_TCP ? "tcp"
                                        : "udp+tcp",
                   c->realm);
        }
    }
}

/* The TLS contexts: the TURN listeners', the shared port's (ALPN stun.turn or http/1.1, the
 * TURN pair) and the HTTPS API's (ALPN http/1.1; its own pair or the TURN pair). */
static int start_tls(cfg *c, bool api_role, bool relay_role, tls_server **tls, tls_server **mux,
                     tls_server **api)
{
    bool shared = c->shared_tls_listen[0], own = c->api_tls_cert[0] || c->api_tls_key[0];
    if (own && (!c->api_tls_cert[0] || !c->api_tls_key[0])) {
        fprintf(stderr, "turnkey: --api-tls-cert and --api-tls-key go together\n");
        return -1;
    }
    if (shared && (api_role || relay_role)) {
        fprintf(stderr, "turnkey: --shared-tls-listen needs --role all (one process serves "
                        "the API and TURN on it)\n");
        return -1;
    }
    if (((c->n_tls_listen && !api_role) || shared || (c->api_tls && !own)) && tls_paths(c) != 0)
        return -1;
    char *err = NULL;
    if ((c->n_tls_listen && !api_role && !(*tls = tls_server_new(c->tls_cert, c->tls_key, &err))) ||
        (shared && !(*mux = tls_server_new_alpn(c->tls_cert, c->tls_key,
                                                TLS_ALPN_TURN | TLS_ALPN_HTTP, &err))) ||
        (c->api_tls &&
         !(*api = tls_server_new_alpn(own ? c->api_tls_cert : c->tls_cert,
                                      own ? c->api_tls_key : c->tls_key, TLS_ALPN_HTTP, &err)))) {
        fprintf(stderr, "turnkey: %s\n", err);
        free(err);
        return -1;
    }
    return 0;
}

static int bootstrap(store *s, const char *api_url)
{
    store_account *list;
    size_t n;
    if (store_account_list(s, &list, &n) != STORE_OK)
        return -1;
    store_account_array_free(list, n);
    if (n > 0) {
        printf("turnkey: using the existing store (its accounts and tokens were printed on the "
               "first run).\n"
               "  new token:  turnkey token create --account ID --permissions "
               "calls:read,calls:write\n"
               "  accounts:   turnkey account list\n");
        return 0;
    }
    store_account a;
    store_token t;
    char tok[STORE_TOKEN_LEN + 1];
    if (store_account_create(s, "default", util_now(), &a) != STORE_OK)
        return -1;
    if (store_token_create(s, a.id, "bootstrap", STORE_PERM_READ | STORE_PERM_WRITE, 0, util_now(),
                           &t, tok) != STORE_OK) {
        store_account_clear(&a);
        return -1;
    }
    printf("turnkey: first run: created an account and an API token with calls:read,calls:write.\n"
           "They are shown this once; save them now.\n\n"
           "  ACCOUNT=%s\n  TOKEN=%s\n\n"
           "Create a TURN key (Cloudflare API v4, same as api.cloudflare.com/client/v4):\n"
           "  curl -s -X POST %s/client/v4/accounts/%s/calls/turn_keys \\\n"
           "       -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n"
           "       -d '{\"name\":\"my-first-key\"}'\n\n"
           "Mint TURN credentials with the key's uid and key from that answer:\n"
           "  curl -s -X POST %s/v1/turn/keys/$KEY_UID/credentials/generate-ice-servers \\\n"
           "       -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n"
           "       -d '{\"ttl\":86400}'\n\n",
           a.id, tok, api_url, a.id, tok, api_url);
    store_account_clear(&a);
    store_token_clear(&t);
    return 0;
}

/* Replaces the port of an "ADDR:PORT" setting. */
static void set_port(char **listen, unsigned port)
{
    const char *colon = strrchr(*listen, ':');
    char *actual = util_xasprintf("%.*s:%u", (int)(colon - *listen), *listen, port);
    free(*listen);
    *listen = actual;
}

/* What the main thread works with while serving. */
typedef struct serving {
    cfg *c;
    int argc;
    char **argv;
    const sigset_t *sigs;
    store *s;
    keycache *keys;
    tls_server *tls, *mux_tls, *api_tls; /* TURN TLS, the shared port, HTTPS */
    relay *rel;
    api_server *api;
    obs *ob;
    usage_agg *ua;          /* NULL: no relay here, nothing to count */
    webhook *wh;            /* webhook events towards the store's queue (issue 14) */
    spend *sp;              /* the spend guard (issue 14 §4) */
    int64_t next_flush_ms;  /* the next usage batch */
    int64_t next_spend;     /* the spend guard's next run (unix seconds) */
    int64_t drain_until_ms; /* 0 = not draining */
} serving;

static void reload_one(tls_server *t, const char *cert, const char *key, const char *why)
{
    char *err = NULL;
    if (tls_server_reload(t, cert, key, &err) == 0) {
        log_info("main", "%s: reloaded the TLS certificate %s", why, cert);
    } else {
        log_error("main", "%s: keeping the old TLS certificate: %s", why, err);
        free(err);
    }
}

static void reload_certificate(serving *sv, const char *why)
{
    const cfg *c = sv->c;
    if (!sv->tls && !sv->mux_tls && !sv->api_tls) {
        log_info("main", "%s: TLS is off, no certificate to reload", why);
        return;
    }
    if (sv->tls)
        reload_one(sv->tls, c->tls_cert, c->tls_key, why);
    if (sv->mux_tls)
        reload_one(sv->mux_tls, c->tls_cert, c->tls_key, why);
    if (sv->api_tls)
        reload_one(sv->api_tls, c->api_tls_cert[0] ? c->api_tls_cert : c->tls_cert,
                   c->api_tls_cert[0] ? c->api_tls_key : c->tls_key, why);
}

/* SIGHUP: the configuration is read again (file, environment, flags); of it, the reloadable
 * settings take effect (log-level), then the certificate files are read again. */
static void reload(serving *sv)
{
    cfg fresh;
    FILE *devnull = fopen("/dev/null", "w");
    int rc = cfg_load(&fresh, sv->argc, sv->argv, devnull ? devnull : stderr);
    if (devnull)
        fclose(devnull);
    int lvl = rc == 0 ? log_parse_level(fresh.log_level) : -1;
    if (lvl < 0) {
        log_error("main", "SIGHUP: the configuration does not load now; nothing changed "
                          "(check it with turnkey serve ... --print-config)");
    } else if (strcmp(fresh.log_level, sv->c->log_level) != 0) {
        log_set_level((enum log_level)lvl);
        log_warn("main", "SIGHUP: log-level is now %s", fresh.log_level);
        free(sv->c->log_level);
        sv->c->log_level = util_xstrdup(fresh.log_level);
    }
    cfg_free(&fresh);
    reload_certificate(sv, "SIGHUP");
}

/* SIGTERM: readiness off, Allocate refused; serve_loop ends when no allocation is left or
 * at the deadline. Returns false when there is nothing to wait for. */
static bool start_drain(serving *sv)
{
    if (!sv->rel || sv->c->drain_timeout == 0)
        return false;
    api_set_draining(sv->api);
    obs_set_draining(sv->ob);
    relay_drain(sv->rel);
    sv->drain_until_ms = util_now_ms() + sv->c->drain_timeout * 1000;
    log_warn("main",
             "SIGTERM: draining: /readyz answers 503, new allocations are refused; waiting up "
             "to %lds for %zu allocation(s) (SIGTERM or SIGINT again stops at once)",
             sv->c->drain_timeout, relay_allocations(sv->rel));
    return true;
}

/* True once a drain is complete (no allocation left) or out of time. */
static bool drain_done(serving *sv)
{
    size_t n = relay_allocations(sv->rel);
    if (n == 0) {
        log_warn("main", "drained: no allocation left; stopping");
        return true;
    }
    if (util_now_ms() >= sv->drain_until_ms) {
        log_warn("main", "drain-timeout (%lds) passed; ending %zu allocation(s)",
                 sv->c->drain_timeout, n);
        return true;
    }
    return false;
}

/* Handles one signal; true when the server should stop now. */
static bool on_signal(serving *sv, int sig)
{
    switch (sig) {
    case SIGINT: log_warn("main", "SIGINT: stopping"); return true;
    case SIGTERM:
        if (sv->drain_until_ms) {
            log_warn("main", "SIGTERM again: stopping now");
            return true;
        }
        if (!start_drain(sv)) {
            log_warn("main", "SIGTERM: stopping");
            return true;
        }
        return false;
    case SIGHUP: reload(sv); return false;
    case SIGUSR2: reload_certificate(sv, "SIGUSR2"); return false;
    case SIGUSR1: log_info("main", "SIGUSR1: nothing to do (ignored)"); return false;
    default: return false;
    }
}

/* --- usage accounting (issue 14): the relay's records into rows, batches into the store */

static int usage_account_of(void *ctx, const char *key_id, char account_id[STORE_ID_LEN + 1])
{
    store_key k;
    int rc = store_key_by_uid(ctx, key_id, &k);
    if (rc == STORE_NOT_FOUND)
        return -1;
    if (rc != STORE_OK)
        return -2;
    memcpy(account_id, k.account_id, STORE_ID_LEN + 1);
    store_key_clear(&k);
    return 0;
}

static void usage_record_in(void *arg, size_t worker, const usage_record *u)
{
    usage_agg_add(arg, worker, u);
}

static int64_t usage_as_of(void *ctx)
{
    return usage_agg_as_of(ctx);
}

static usage_agg *usage_start(cfg *c, store *s)
{
    char host[STORE_USAGE_NODE_LEN] = "";
    if (!c->node_name[0] && gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "node");
    usage_agg *ua =
        usage_agg_new(&(usage_agg_config){.n_workers = 64, /* until the relay has started */
                                          .node = c->node_name[0] ? c->node_name : host,
                                          .max_rows = (size_t)c->usage_max_pending,
                                          .as_of_lag = 1000, /* a worker pushes once a second */
                                          .account_of = usage_account_of,
                                          .ctx = s});
    return ua;
}

/* Drains the workers' rings (four times a second), writes a batch every
 * --usage-flush-interval, and rolls old minute rows up once a day. */
static void usage_tick(serving *sv)
{
    if (!sv->ua)
        return;
    if (sv->rel)
        relay_drain_usage(sv->rel, usage_record_in, sv->ua);
    usage_agg_peaks(sv->ua);
    int64_t now = util_now_ms();
    if (now < sv->next_flush_ms)
        return;
    usage_agg_flush(sv->ua, sv->s, now);
    sv->next_flush_ms = now + sv->c->usage_flush_interval * 1000;
}

/* The spend guard reads what the last batches wrote (every node's rows): once per
 * --usage-flush-interval, right after this node's own batch. */
static void spend_tick(serving *sv)
{
    if (util_now() < sv->next_spend)
        return;
    spend_run(sv->sp, util_now());
    sv->next_spend = util_now() + sv->c->usage_flush_interval;
}

static void usage_rollup(serving *sv)
{
    int64_t now = util_now();
    int64_t before = now - sv->c->usage_retention_days * 86400;
    before -= before % 3600;
    int64_t drop =
        sv->c->usage_hour_retention_days ? now - sv->c->usage_hour_retention_days * 86400 : 0;
    size_t rolled = 0;
    if (store_usage_rollup(sv->s, before, drop, &rolled) != STORE_OK)
        log_error("main", "usage rollup failed (retried tomorrow)");
    else if (rolled)
        log_info("main", "rolled %zu usage minute rows older than %ld days up into hour rows",
                 rolled, sv->c->usage_retention_days);
}

static void serve_loop(serving *sv)
{
    log_info("main", "serving; SIGTERM drains and stops, SIGINT stops, SIGHUP reloads");
    int64_t next_purge = util_now(), next_rollup = util_now();
    for (;;) {
        if (sv->drain_until_ms && drain_done(sv))
            return;
        /* four times a second (usage rings); while draining, ten times a second */
        struct timespec tick = {.tv_sec = 0, .tv_nsec = sv->drain_until_ms ? 100000000 : 250000000};
        int sig = sigtimedwait(sv->sigs, NULL, &tick);
        obs_tick(sv->ob); /* at least once a second: ended allocations */
        usage_tick(sv);
        spend_tick(sv);
        webhook_tick(sv->wh); /* the events of this tick, in one batch */
        if (util_now() >= next_rollup) {
            usage_rollup(sv);
            next_rollup = util_now() + 86400;
        }
        if (sig > 0 && on_signal(sv, sig))
            return;
        if (util_now() >= next_purge) {
            size_t purged = 0;
            if (store_revoke_purge(sv->s, util_now(), &purged) == STORE_OK && purged)
                log_info("main", "purged %zu expired revocations", purged);
            int64_t keep_ms = (int64_t)sv->c->audit_retention_days * 86400 * 1000;
            if (store_audit_purge(sv->s, util_now_ms() - keep_ms, &purged) == STORE_OK && purged)
                log_info("main", "purged %zu audit records older than %ld days", purged,
                         sv->c->audit_retention_days);
            keycache_purge(sv->keys, util_now());
            next_purge = util_now() + 60;
        }
    }
}

/* --metrics-listen: a second HTTP listener that answers only /metrics, /healthz, /readyz. */
static http_server *start_metrics(cfg *c, api_server *api)
{
    char *err = NULL;
    http_config mc = {.listen = c->metrics_listen, .threads = 1, .metrics_only = true};
    http_server *h = http_start(&mc, api, &err);
    if (!h) {
        fprintf(stderr, "turnkey: --metrics-listen: %s\n", err);
        free(err);
        return NULL;
    }
    set_port(&c->metrics_listen, http_port(h));
    printf("turnkey: metrics listening on %s\n", c->metrics_listen);
    return h;
}

/* The start-up summary: what an operator checks first when something does not connect. */
static void log_summary(const cfg *c, const char *api_url, relay *rel, http_server *mhttp)
{
    char listeners[512] = "", external[256] = "";
    size_t o = 0, e = 0;
    for (size_t i = 0; rel && i < n_listeners(c); i++) {
        unsigned kinds;
        char **slot = listener_slot((cfg *)c, i, &kinds);
        o += (size_t)snprintf(listeners + o, o < sizeof listeners ? sizeof listeners - o : 0,
                              "%s%s/%s", i ? " " : "", *slot,
                              kinds == RELAY_TLS   ? "tls"
                              : kinds == RELAY_MUX ? "tls+https"
                              : kinds == RELAY_UDP ? "udp"
                              : kinds == RELAY_TCP ? "tcp"
                                                   : "udp+tcp");
        if (o >= sizeof listeners)
            break;
    }
    for (size_t i = 0; i < c->n_external_ip && e < sizeof external; i++)
        e += (size_t)snprintf(external + e, sizeof external - e, "%s%s", i ? " " : "",
                              c->external_ip[i]);
    log_fields(LOG_INFO, "main", "configuration", LOG_S("api", api_url),
               LOG_S("metrics", mhttp ? c->metrics_listen : "api"), LOG_S("listeners", listeners),
               LOG_S("external_ip", external), LOG_S("relay_ip", c->relay_ip),
               LOG_S("relay_ports", c->relay_ports), LOG_S("realm", c->realm),
               LOG_U("relay_threads", rel ? relay_threads(rel) : 0),
               LOG_I("user_quota", c->user_quota), LOG_I("max_allocations", c->max_allocations),
               LOG_I("max_keys", c->max_keys), LOG_I("drain_timeout_s", c->drain_timeout),
               LOG_I("audit_retention_days", c->audit_retention_days),
               LOG_S("log_format", c->log_format));
}

static int cmd_serve(int argc, char **argv)
{
    /* Signals are taken synchronously by the main thread (serve_loop); every thread started
     * later inherits the blocked mask. Blocked first, so none kills a starting server. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    cfg c;
    int rc = cfg_load(&c, argc, argv, stderr);
    if (rc != 0) {
        cfg_free(&c);
        return rc > 0 ? 0 : 2;
    }
    rc = 1;
    store *s = NULL;
    api_server *api = NULL;
    http_server *http = NULL, *mhttp = NULL;
    obs *ob = NULL;
    usage_agg *ua = NULL;
    webhook *wh = NULL;
    spend *sp = NULL;
    keycache *keys = NULL;
    relay *rel = NULL;
    feed *fd = NULL;
    tls_server *tls = NULL, *mux_tls = NULL, *api_tls = NULL;
    adopt_target adopt = {.http = NULL};
    pthread_mutex_init(&adopt.mu, NULL);
    char **stun = NULL, **turn = NULL;
    size_t n_stun = 0, n_turn = 0;
    int lvl = log_parse_level(c.log_level);
    if (lvl < 0) {
        fprintf(stderr, "turnkey: --log-level must be error, warn, info or debug\n");
        goto out;
    }
    log_set_level((enum log_level)lvl);
    fd_plan fds = plan_fds(&c);
    int fmt = log_parse_format(c.log_format);
    if (fmt < 0) {
        fprintf(stderr, "turnkey: --log-format must be text or json\n");
        goto out;
    }
    log_set_format((enum log_format)fmt);
    if (cfg_ice_urls(&c, &stun, &n_stun, &turn, &n_turn, stderr) != 0) /* validates early */
        goto out;
    bool api_role = !strcmp(c.role, "api"), relay_role = !strcmp(c.role, "relay");
    if (!api_role && !relay_role && strcmp(c.role, "all")) {
        fprintf(stderr, "turnkey: --role must be all, api or relay\n");
        goto out;
    }
    if (!(s = cli_open_store(c.data, c.store, true)))
        goto out;
    keys = keycache_new(s);
    if (keycache_load_revocations(keys, util_now()) != 0) {
        fprintf(stderr, "turnkey: cannot load credential revocations from the store\n");
        goto out;
    }
    if (keycache_preload(keys) != 0) { /* the relay threads then never query the store */
        fprintf(stderr, "turnkey: cannot load the TURN keys from the store\n");
        goto out;
    }
    if (!n_listeners(&c)) {
        fprintf(stderr, "turnkey: no TURN listener (--turn-listen and --tls-listen are both off): "
                        "minted iceServers would name no server\n");
        goto out;
    }
    if (!c.n_turn_listen && !c.n_udp_listen && !c.n_tcp_listen &&
        (c.n_tls_listen || c.shared_tls_listen[0])) {
        fprintf(stderr, "turnkey: --tls-listen needs --turn-listen (one relay serves both)\n");
        goto out;
    }
    if (start_tls(&c, api_role, relay_role, &tls, &mux_tls, &api_tls) != 0)
        goto out;
    if (!api_role)
        ua = usage_start(&c, s);
    if (!api_role && !(rel = start_relay(&c, keys, tls, ua, mux_tls, &adopt)))
        goto out;
    if (ua)
        usage_agg_set_workers(ua, relay_threads(rel));
    feed_hooks fh = {.key_deleted = hook_key_deleted,
                     .revoked = hook_revoked_hash,
                     .secret_deleted = hook_secret_deleted,
                     .budget_tripped = hook_budget_tripped,
                     .ctx = rel};
    feed_config fc = {.poll_ms = 1000, .keep_seconds = API_TTL_MAX};
    char *ferr = NULL;
    if (!(fd = feed_start(s, keys, &fc, rel ? &fh : NULL, &ferr))) {
        fprintf(stderr, "turnkey: %s\n", ferr);
        free(ferr);
        goto out;
    }
    if (rel) {
        show_listeners(&c, rel, false);
        cfg_free_urls(stun, n_stun);
        cfg_free_urls(turn, n_turn);
        if (cfg_ice_urls(&c, &stun, &n_stun, &turn, &n_turn, stderr) != 0)
            goto out;
    }
    wh = webhook_new(&(webhook_config){.st = s,
                                       .max_queued = (size_t)c.webhook_max_queued,
                                       .max_age_ms = c.webhook_max_age * 1000,
                                       .retry_max_ms = c.webhook_retry_max * 1000,
                                       .timeout_ms = c.webhook_timeout * 1000,
                                       .version = TURNKEY_VERSION,
                                       .allow_peer = (const char *const *)c.allow_peer,
                                       .n_allow_peer = c.n_allow_peer,
                                       .deny_peer = (const char *const *)c.deny_peer,
                                       .n_deny_peer = c.n_deny_peer});
    if (webhook_start(wh, &ferr) != 0) {
        fprintf(stderr, "turnkey: %s\n", ferr);
        free(ferr);
        goto out;
    }
    sp = spend_new(&(spend_config){.st = s, .kc = keys, .on_event = webhook_emit, .ctx = wh});
    ob = obs_new(&(obs_config){.version = TURNKEY_VERSION,
                               .st = s,
                               .rel = rel,
                               .n_listeners = rel ? n_listeners(&c) : 0,
                               .on_ended = webhook_allocation_ended,
                               .ctx = wh,
                               .usage = ua,
                               .webhook = wh,
                               .spend = sp});
    api_obs obs_hooks = obs_api_hooks(ob);
    api_hooks hooks = {.key_deleted = hook_key_deleted,
                       .credential_revoked = hook_revoked,
                       .secret_deleted = hook_secret_deleted,
                       .ctx = rel};
    api_config acfg = {.max_keys = (size_t)c.max_keys,
                       .keys = keys,
                       .stun_urls = (const char *const *)stun,
                       .n_stun = n_stun,
                       .turn_urls = (const char *const *)turn,
                       .n_turn = n_turn,
                       .health_only = relay_role,
                       .store_problem = store_problem,
                       .store_problem_ctx = fd,
                       .obs = &obs_hooks,
                       .usage_as_of = ua ? usage_as_of : NULL,
                       .usage_ctx = ua,
                       .usage_lag_ms = (c.usage_flush_interval + 2) * 1000,
                       .max_revocations = (size_t)c.max_revocations_per_key};
    api = api_new(s, &acfg, rel ? &hooks : NULL);
    obs_set_api(ob, api);
    http_config hcfg = {.listen = c.api_listen,
                        .threads = (unsigned)c.api_threads,
                        .timeout_s = (unsigned)c.api_timeout,
                        .max_connections = (unsigned)c.api_max_conns,
                        .max_per_ip = (unsigned)c.api_max_conns_per_ip,
                        .tls = api_tls,
                        .adopt = mux_tls != NULL};
    char *err = NULL;
    if (!(http = http_start(&hcfg, api, &err))) {
        fprintf(stderr, "turnkey: %s\n", err);
        free(err);
        goto out;
    }
    set_adopt_target(&adopt, http);
    if (c.metrics_listen[0] && !(mhttp = start_metrics(&c, api)))
        goto out;
    char host[128];
    const char *colon = strrchr(c.api_listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - c.api_listen), c.api_listen);
    char *api_url = util_xasprintf("%s://%s:%u", api_tls ? "https" : "http", host, http_port(http));
    if (c.bootstrap && bootstrap(s, api_url) != 0) {
        fprintf(stderr, "turnkey: could not initialise the store\n");
        free(api_url);
        goto out;
    }
    if (rel)
        show_listeners(&c, rel, true);
    log_summary(&c, api_url, rel, mhttp);
    char *where = store_describe(*c.store ? c.store : c.data);
    printf("turnkey: API listening on %s (%s: %s)\n", api_url, *c.store ? "store" : "data", where);
    free(where);
    fflush(stdout);
    free(api_url);
    serving sv = {.c = &c,
                  .argc = argc,
                  .argv = argv,
                  .sigs = &sigs,
                  .s = s,
                  .keys = keys,
                  .tls = tls,
                  .mux_tls = mux_tls,
                  .api_tls = api_tls,
                  .rel = rel,
                  .api = api,
                  .ob = ob,
                  .ua = ua,
                  .wh = wh,
                  .sp = sp,
                  .next_flush_ms = util_now_ms() + c.usage_flush_interval * 1000};
    report_fds(&c, &fds);
    serve_loop(&sv);
    rc = 0;
out:
    http_stop(mhttp);
    set_adopt_target(&adopt, NULL); /* the shared port's HTTP connections are closed now */
    http_stop(http);
    feed_stop(fd);
    if (ob)
        obs_tick(ob); /* the last ended allocations get their lines */
    if (ua && rel)
        relay_drain_usage(rel, usage_record_in, ua);
    relay_stop(rel); /* the workers' last usage records reach ua */
    if (ua) {
        usage_agg_peaks(ua);
        if (s && usage_agg_flush(ua, s, util_now_ms()) != STORE_OK)
            log_error("main", "the last usage batch could not be written");
        usage_agg_free(ua);
    }
    spend_free(sp);
    webhook_free(wh); /* after the last obs_tick: its allocation.ended events are written */
    obs_free(ob);
    tls_server_free(tls);
    tls_server_free(mux_tls);
    tls_server_free(api_tls);
    pthread_mutex_destroy(&adopt.mu);
    api_free(api);
    keycache_free(keys);
    store_close(s);
    cfg_free_urls(stun, n_stun);
    cfg_free_urls(turn, n_turn);
    cfg_free(&c);
    return rc;
}

int main(int argc, char **argv)
{
    umask(077); /* everything turnkey creates (store, WAL, TLS pair) is private */
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        cli_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("turnkey %s\n", TURNKEY_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (cli_is_command(cmd)) {
        if (argc < 3) {
            fprintf(stderr, "turnkey: '%s' needs a subcommand (see turnkey help)\n", cmd);
            return 2;
        }
        return cli_run(cmd, argv[2], argc - 3, argv + 3);
    }
    fprintf(stderr, "turnkey: unknown command '%s' (see turnkey help)\n", cmd);
    return 2;
}
