/* cfg: see include/turnkey/cfg.h. One table drives parsing, environment names and --help. */
#include "turnkey/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "turnkey/util.h"

enum opt_type { T_STR, T_INT, T_BOOL, T_LIST };

typedef struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    const char *def;
    long min, max;
    const char *help;
} opt;

#define O(f) offsetof(cfg, f)
#define LIST(name, f, def, layer, help)                                                            \
    {                                                                                              \
        name, T_LIST, O(f), def, 0, 0, help                                                        \
    }

/* T_LIST options: where the count is, and 1 + their index into cfg.list_layer_ when a later
 * source replaces the list instead of adding to it (0: every source adds). */
static const struct {
    size_t off, n_off;
    int layer;
} lists[] = {
    {O(turn_listen), O(n_turn_listen), 1}, {O(tls_listen), O(n_tls_listen), 2},
    {O(udp_listen), O(n_udp_listen), 3},   {O(tcp_listen), O(n_tcp_listen), 4},
    {O(external_ip), O(n_external_ip), 5}, {O(allow_peer), O(n_allow_peer), 0},
    {O(deny_peer), O(n_deny_peer), 0},
};

static size_t list_index(size_t off)
{
    size_t i = 0;
    while (lists[i].off != off)
        i++;
    return i;
}
static const opt table[] = {
    {"config", T_STR, O(config), NULL, 0, 0, "configuration file (name = value lines)"},
    {"data", T_STR, O(data), "./var", 0, 0, "data directory (SQLite store turnkey.db)"},
    {"store", T_STR, O(store), "", 0, 0,
     "store: postgres://… (shared by many nodes) or sqlite:FILE; empty = the data directory"},
    {"role", T_STR, O(role), "all", 0, 0,
     "all, api (HTTP API only) or relay (STUN/TURN only; HTTP serves /healthz and /readyz)"},
    {"api-listen", T_STR, O(api_listen), "127.0.0.1:8080", 0, 0,
     "HTTP API address ADDR:PORT (port 0 = any free port)"},
    LIST("turn-listen", turn_listen, "127.0.0.1:3478", 1,
         "TURN/STUN over UDP and TCP, ADDR:PORT; 0.0.0.0 / [::] = every address (repeatable; "
         "empty = off)"),
    LIST("tls-listen", tls_listen, "127.0.0.1:5349", 2,
         "TURN over TLS, ADDR:PORT (repeatable; empty = off)"),
    LIST("udp-listen", udp_listen, NULL, 3,
         "extra TURN/STUN port over UDP only, ADDR:PORT (repeatable; e.g. 0.0.0.0:443)"),
    LIST("tcp-listen", tcp_listen, NULL, 4,
         "extra TURN port over TCP only, ADDR:PORT (repeatable; e.g. 0.0.0.0:80)"),
    LIST("external-ip", external_ip, NULL, 5,
         "PUBLIC[/PRIVATE]: the 1:1 NAT address relays are reported as and iceServers name "
         "(coturn's meaning; once per address family)"),
    {"tls-cert", T_STR, O(tls_cert), "", 0, 0,
     "TLS certificate chain (PEM); empty = a self-signed pair generated in the data directory"},
    {"tls-key", T_STR, O(tls_key), "", 0, 0, "TLS private key (PEM)"},
    {"relay-ip", T_STR, O(relay_ip), "", 0, 0,
     "relay address, or IPv4,IPv6 (default: the address reached)"},
    {"relay-ports", T_STR, O(relay_ports), "49152-65535", 0, 0, "relay port range LO-HI"},
    {"public-host", T_STR, O(public_host), "", 0, 0,
     "host name(s) for iceServers URLs, comma-separated (default: the turn-listen host)"},
    {"realm", T_STR, O(realm), "turnkey", 0, 0, "TURN realm"},
    LIST("allow-peer", allow_peer, NULL, 0,
         "open one CIDR of the peer deny-list (repeatable; tests use 127.0.0.1/32)"),
    LIST("deny-peer", deny_peer, NULL, 0,
         "deny one more CIDR of peers (repeatable; --allow-peer still opens inside it)"),
    {"max-keys", T_INT, O(max_keys), "1000", 1, 1000000, "TURN keys per account"},
    {"user-quota", T_INT, O(user_quota), "10", 1, 1000000,
     "allocations per TURN username (the next one gets 486)"},
    {"max-allocations", T_INT, O(max_allocations), "16384", 1, 10000000,
     "allocations per server (the next one gets 508; default: the 16384 ports of the default "
     "--relay-ports)"},
    {"max-conns", T_INT, O(max_conns), "0", 0, 10000000,
     "TURN TCP+TLS connections in total; more are refused (0 = a quarter of the open-file "
     "limit)"},
    {"max-conns-per-ip", T_INT, O(max_conns_per_ip), "100", 1, 10000000,
     "TURN TCP+TLS connections per client IPv4 address or IPv6 /64; more are refused"},
    {"handshake-timeout", T_INT, O(handshake_timeout), "5", 1, 300,
     "seconds a TURN TCP/TLS connection has to finish its handshake and send a valid STUN "
     "message"},
    {"api-max-conns", T_INT, O(api_max_conns), "0", 0, 1000000,
     "HTTP API connections in total (0 = the open-file limit / 8, at most 1024)"},
    {"api-max-conns-per-ip", T_INT, O(api_max_conns_per_ip), "32", 1, 1000000,
     "HTTP API connections per client address; more are refused"},
    {"api-timeout", T_INT, O(api_timeout), "10", 1, 3600,
     "seconds an HTTP API connection may stay idle (also bounds a trickled request)"},
    {"api-threads", T_INT, O(api_threads), "2", 1, 64, "HTTP worker threads"},
    {"relay-threads", T_INT, O(relay_threads), "0", 0, 64,
     "relay event-loop threads (0 = one per CPU)"},
    {"log-level", T_STR, O(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"bootstrap", T_BOOL, O(bootstrap), "false", 0, 0,
     "on an empty store, create one account and one write token and print them once"},
    {"drain-timeout", T_INT, O(drain_timeout), "30", 0, 86400,
     "seconds SIGTERM waits for live allocations to end (0 = exit at once)"},
    {"nonce-lifetime", T_INT, O(nonce_lifetime), "600", 10, 86400,
     "seconds a NONCE stays valid (then 438 and a fresh one)"},
    {"challenge-rate", T_INT, O(challenge_rate), "100", 0, 1000000,
     "401/438 answers per second per source IP and relay thread (burst twice that; 0 = no "
     "limit)"},
    {"log-format", T_STR, O(log_format), "text", 0, 0,
     "text (key=\"value\" pairs) or json (one object per line)"},
    {"metrics-listen", T_STR, O(metrics_listen), "", 0, 0,
     "also serve GET /metrics (and /healthz, /readyz) on this private ADDR:PORT"},
    {"audit-retention-days", T_INT, O(audit_retention_days), "365", 1, 36500,
     "days audit-log records are kept"},
    {"node-name", T_STR, O(node_name), "", 0, 0,
     "this node's name in usage rows (empty = the host name)"},
    {"usage-flush-interval", T_INT, O(usage_flush_interval), "10", 1, 3600,
     "seconds between usage batches written to the store (what kill -9 can lose)"},
    {"usage-retention-days", T_INT, O(usage_retention_days), "30", 1, 36500,
     "days per-minute usage rows are kept; older ones are rolled up into hour rows"},
    {"usage-hour-retention-days", T_INT, O(usage_hour_retention_days), "0", 0, 36500,
     "days hour usage rows are kept (0 = forever)"},
    {"usage-max-pending", T_INT, O(usage_max_pending), "65536", 16, 10000000,
     "usage rows held while the store fails; beyond, usage of new identities is dropped "
     "(counted)"},
    {"usage-ring-size", T_INT, O(usage_ring_size), "4096", 1, 1048576,
     "usage records per relay thread towards the main thread (a full ring delays, never "
     "drops)"},
    {"api-tls", T_BOOL, O(api_tls), "false", 0, 0,
     "serve the API on --api-listen over HTTPS (TLS 1.2+, OpenSSL; reloaded on SIGHUP)"},
    {"api-tls-cert", T_STR, O(api_tls_cert), "", 0, 0,
     "HTTPS certificate chain (PEM); empty = the TURN pair (--tls-cert/--tls-key)"},
    {"api-tls-key", T_STR, O(api_tls_key), "", 0, 0, "HTTPS private key (PEM)"},
    {"shared-tls-listen", T_STR, O(shared_tls_listen), "", 0, 0,
     "one TLS port for HTTPS (the API) and TURN over TLS, ADDR:PORT (e.g. 0.0.0.0:443; "
     "ALPN or the first bytes tell them apart; TURN certificate; empty = off)"},
    {"max-revocations-per-key", T_INT, O(max_revocations_per_key), "100000", 1, 100000000,
     "revoked credentials per TURN key not yet expired; more revocations get 409"},
    {"shared-secret-keys", T_STR, O(shared_secret_keys), "", 0, 0,
     "TURN key ids (at most 3, comma-separated) whose shared secrets a coturn-style username "
     "that names no key is checked against"},
    {"webhook-max-queued", T_INT, O(webhook_max_queued), "10000", 1, 10000000,
     "webhook events kept queued per account; past it the oldest are dropped (counted)"},
    {"webhook-max-age", T_INT, O(webhook_max_age), "259200", 1, 31536000,
     "seconds a failing webhook event is retried before it is given up (counted)"},
    {"webhook-retry-max", T_INT, O(webhook_retry_max), "600", 1, 86400,
     "longest wait in seconds between two attempts of a webhook event (backoff from 1 s)"},
    {"webhook-timeout", T_INT, O(webhook_timeout), "10", 1, 300,
     "seconds one webhook POST may take, connecting included"},
};
#define N_OPTS (sizeof table / sizeof table[0])

static const opt *find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
            return &table[i];
    return NULL;
}

static void list_clear(char ***p, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*p)[i]);
    free(*p);
    *p = NULL;
    *n = 0;
}

static int set(cfg *c, const opt *o, const char *val, const char *src, FILE *err)
{
    char *base = (char *)c;
    switch (o->type) {
    case T_STR: {
        char **p = (char **)(base + o->off);
        free(*p);
        *p = util_xstrdup(val);
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < o->min || v > o->max) {
            fprintf(err, "turnkey: %s: %s must be an integer from %ld to %ld, got '%s'\n", src,
                    o->name, o->min, o->max, val);
            return -1;
        }
        *(long *)(base + o->off) = v;
        return 0;
    }
    case T_BOOL: {
        bool v;
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
            v = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
            v = false;
        else {
            fprintf(err, "turnkey: %s: %s must be true or false, got '%s'\n", src, o->name, val);
            return -1;
        }
        *(bool *)(base + o->off) = v;
        return 0;
    }
    case T_LIST: {
        char ***p = (char ***)(base + o->off);
        size_t li = list_index(o->off);
        size_t *n = (size_t *)(base + lists[li].n_off);
        int layer = lists[li].layer;
        if (layer && c->list_layer_[layer - 1] != c->layer_) {
            list_clear(p, n); /* this source replaces the earlier one's list */
            c->list_layer_[layer - 1] = c->layer_;
        }
        if (layer && !*val)
            return 0; /* "": none */
        *p = util_xrealloc(*p, (*n + 1) * sizeof **p);
        (*p)[(*n)++] = util_xstrdup(val);
        return 0;
    }
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Context of the config file line being applied (for the coturn table's callbacks). */
typedef struct file_ctx {
    cfg *c;
    const char *src;
    FILE *err;
} file_ctx;

static int file_emit(void *ctx, const char *name, const char *value)
{
    file_ctx *f = ctx;
    const opt *o = find(name, strlen(name));
    if (!o) { /* a coturn row naming an option this build does not have */
        fprintf(f->err, "turnkey: %s: '%s' is not available in this build\n", f->src, name);
        return -1;
    }
    return set(f->c, o, value, f->src, f->err);
}

static const char *file_get(void *ctx, const char *name)
{
    file_ctx *f = ctx;
    const opt *o = find(name, strlen(name));
    const char *v = o && o->type == T_STR ? *(char **)((char *)f->c + o->off) : NULL;
    return v ? v : "";
}

static char *const *file_get_list(void *ctx, const char *name, size_t *n)
{
    file_ctx *f = ctx;
    const opt *o = find(name, strlen(name));
    *n = 0;
    if (!o || o->type != T_LIST)
        return NULL;
    *n = *(size_t *)((char *)f->c + lists[list_index(o->off)].n_off);
    return *(char ***)((char *)f->c + o->off);
}

static void file_clear(void *ctx, const char *name)
{
    file_ctx *f = ctx;
    const opt *o = find(name, strlen(name));
    if (!o || o->type != T_LIST)
        return;
    size_t li = list_index(o->off);
    list_clear((char ***)((char *)f->c + o->off), (size_t *)((char *)f->c + lists[li].n_off));
    if (lists[li].layer)
        f->c->list_layer_[lists[li].layer - 1] = f->c->layer_; /* this source set it */
}

/* One non-comment line: "name = value", "name=value", or a bare flag "name". */
static int load_line(cfg *c, cfg__coturn *st, char *s, const char *src, FILE *err)
{
    char *eq = strchr(s, '=');
    char *name = s, *val = NULL;
    if (eq) {
        *eq = '\0';
        name = trim(s);
        val = trim(eq + 1);
    }
    file_ctx fc = {.c = c, .src = src, .err = err};
    cfg__ops ops = {file_emit, file_get, file_get_list, file_clear, &fc};
    int rc = cfg__coturn_apply(st, name, val, &ops, src, err);
    if (rc <= 0)
        return rc;
    const opt *o = find(name, strlen(name));
    if (!o || o->off == O(config)) {
        fprintf(err, "turnkey: %s: unknown setting '%s'\n", src, name);
        return -1;
    }
    if (!val && o->type != T_BOOL) {
        fprintf(err, "turnkey: %s: expected '%s = value'\n", src, name);
        return -1;
    }
    return set(c, o, val ? val : "true", src, err);
}

static int load_file(cfg *c, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "turnkey: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    cfg__coturn st = {0};
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char src[512];
        snprintf(src, sizeof src, "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(err, "turnkey: %s: line longer than %zu bytes\n", src, sizeof line - 2);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s && *s != '#')
            rc = load_line(c, &st, s, src, err);
    }
    fclose(f);
    file_ctx fc = {.c = c, .src = path, .err = err};
    cfg__ops ops = {file_emit, file_get, file_get_list, file_clear, &fc};
    if (rc == 0)
        return cfg__coturn_finish(&st, &ops, path, err);
    cfg__coturn_dispose(&st);
    return rc;
}

static int load_env(cfg *c, FILE *err)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        char env[64] = "TURNKEY_";
        size_t n = strlen(env);
        for (const char *p = table[i].name; *p && n + 1 < sizeof env; p++)
            env[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && table[i].off != O(config) && set(c, &table[i], v, env, err) != 0)
            return -1;
    }
    return 0;
}

static int check_external(const cfg *c, FILE *err);

int cfg_load(cfg *c, int argc, char **argv, FILE *err)
{
    memset(c, 0, sizeof *c);
    c->layer_ = 1; /* defaults; then file 2, environment 3, flags 4 */
    for (size_t i = 0; i < N_OPTS; i++)
        if (table[i].def && set(c, &table[i], table[i].def, "default", err) != 0)
            return -1;
    /* pass 1: --help, --print-config and --config (TURNKEY_CONFIG unless the flag is given);
     * pass 2: everything else, after file and environment */
    const char *env_config = getenv("TURNKEY_CONFIG");
    if (env_config && *env_config)
        set(c, &table[0], env_config, "TURNKEY_CONFIG", err);
    bool print = false;
    for (int i = 1; i < argc; i++) {
        print |= !strcmp(argv[i], "--print-config");
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_print_help(stdout);
            return 1;
        }
        if (!strncmp(argv[i], "--config=", 9))
            set(c, &table[0], argv[i] + 9, "flag", err);
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            set(c, &table[0], argv[++i], "flag", err);
    }
    c->layer_ = 2;
    if (c->config && load_file(c, c->config, err) != 0)
        return -1;
    c->layer_ = 3;
    if (load_env(c, err) != 0)
        return -1;
    c->layer_ = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--print-config"))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "turnkey: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        const opt *o = find(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            fprintf(err, "turnkey: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == T_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(err, "turnkey: option --%s needs a value\n", o->name);
            return -1;
        }
        if (o->off == O(config))
            continue;
        if (set(c, o, val, "flag", err) != 0)
            return -1;
    }
    if (check_external(c, err) != 0)
        return -1;
    if (print) {
        cfg_print_config(c, stdout);
        return 1;
    }
    return 0;
}

void cfg_free(cfg *c)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        char *base = (char *)c;
        if (table[i].type == T_STR) {
            free(*(char **)(base + table[i].off));
        } else if (table[i].type == T_LIST) {
            list_clear((char ***)(base + table[i].off),
                       (size_t *)(base + lists[list_index(table[i].off)].n_off));
        }
    }
    memset(c, 0, sizeof *c);
}

void cfg_print_help(FILE *out)
{
    fprintf(out, "usage: turnkey serve [options]\n\n"
                 "Runs the HTTP API (TURN keys + credentials) and the TURN relay.\n"
                 "Each option may also come from the config file (name = value) or the\n"
                 "environment (TURNKEY_NAME); flags win over the environment, which wins over\n"
                 "the file. --print-config prints the resulting configuration as a config\n"
                 "file (every option, documented) and exits.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", table[i].name,
                 table[i].type == T_BOOL ? "" : " VALUE");
        fprintf(out, "  %-26s %s", left, table[i].help);
        if (table[i].def && *table[i].def)
            fprintf(out, " [default: %s]", table[i].def);
        fputc('\n', out);
    }
}

/* The value of an integer or flag option as a config file would spell it. */
static void format_value(const cfg *c, const opt *o, char *buf, size_t cap)
{
    const char *base = (const char *)c;
    if (o->type == T_INT)
        snprintf(buf, cap, "%ld", *(const long *)(base + o->off));
    else
        snprintf(buf, cap, "%s", *(const bool *)(base + o->off) ? "true" : "false");
}

/* A list option: at its default, commented out; "name = " (none) when a default was removed;
 * otherwise one active line per entry. */
static void print_list(const cfg *c, const opt *o, FILE *out)
{
    char *const *list = *(char *const *const *)((const char *)c + o->off);
    size_t n = *(const size_t *)((const char *)c + lists[list_index(o->off)].n_off);
    if (n == 1 && o->def && !strcmp(list[0], o->def)) {
        fprintf(out, "#%s = %s\n", o->name, list[0]);
        return;
    }
    if (n == 0)
        fprintf(out, o->def ? "%s = \n" : "#%s = (none)\n", o->name);
    for (size_t j = 0; j < n; j++)
        fprintf(out, "%s = %s\n", o->name, list[j]);
}

void cfg_print_config(const cfg *c, FILE *out)
{
    fprintf(out,
            "# turnkey configuration file (turnkey serve --config FILE).\n"
            "# One \"name = value\" per line (\"name=value\" and a bare \"name\" for a flag work\n"
            "# too); '#' starts a comment line. Every option of `turnkey serve --help` can be\n"
            "# set here; TURNKEY_<NAME> environment variables and flags override the file.\n"
            "# Written by `turnkey serve --print-config`: a commented-out line shows the\n"
            "# built-in default, an active line a value that differs from it.\n");
    char val[32];
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &table[i];
        if (o->off == O(config))
            continue;
        fprintf(out, "\n# %s\n", o->help);
        if (o->type == T_LIST) {
            print_list(c, o, out);
            continue;
        }
        const char *v = val;
        if (o->type == T_STR)
            v = *(char *const *)((const char *)c + o->off);
        else
            format_value(c, o, val, sizeof val);
        bool is_default = o->def && !strcmp(v, o->def);
        fprintf(out, "%s%s = %s\n", is_default ? "#" : "", o->name, v);
    }
    fputc('\n', out);
    cfg__coturn_print(out);
}

static void push(char ***arr, size_t *n, char *s)
{
    *arr = util_xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = s;
}

/* Splits "host:port" / "[v6]:port" into host (without brackets) and port. */
static int split_hostport(const char *s, char *host, size_t cap, long *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s) > cap)
            return -1;
        snprintf(host, cap, "%.*s", (int)(close - s - 1), s + 1);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= cap)
            return -1;
        snprintf(host, cap, "%.*s", (int)(colon - s), s);
    }
    char *end;
    *port = strtol(colon + 1, &end, 10);
    return (colon[1] && !*end && *port >= 0 && *port <= 65535) ? 0 : -1;
}

static char *url_host(const char *h)
{
    return strchr(h, ':') ? util_xasprintf("[%s]", h) : util_xstrdup(h);
}

static bool is_wildcard_host(const char *h)
{
    return !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !*h;
}

/* One literal IP of either family into a sockaddr (port 0); 0 or -1. */
static int parse_ip(const char *s, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return 0;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

int cfg_parse_external(const char *s, struct sockaddr_storage *pub, struct sockaddr_storage *priv,
                       bool *has_priv)
{
    char buf[128];
    struct sockaddr_storage tmp;
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash++ = '\0';
    *has_priv = slash != NULL;
    if (is_wildcard_host(buf) || parse_ip(buf, pub) != 0)
        return -1;
    if (!slash)
        return 0;
    if (!priv)
        priv = &tmp;
    if (is_wildcard_host(slash) || parse_ip(slash, priv) != 0 || priv->ss_family != pub->ss_family)
        return -1;
    return 0;
}

static int check_external(const cfg *c, FILE *err)
{
    bool seen4 = false, seen6 = false;
    for (size_t i = 0; i < c->n_external_ip; i++) {
        struct sockaddr_storage pub;
        bool hp;
        if (cfg_parse_external(c->external_ip[i], &pub, NULL, &hp) != 0) {
            fprintf(err,
                    "turnkey: invalid --external-ip '%s' (want PUBLIC or PUBLIC/PRIVATE, IP "
                    "addresses of one family, not a wildcard)\n",
                    c->external_ip[i]);
            return -1;
        }
        bool *seen = pub.ss_family == AF_INET ? &seen4 : &seen6;
        if (*seen) {
            fprintf(err,
                    "turnkey: --external-ip given twice for IPv%c ('%s'); at most one per "
                    "address family\n",
                    pub.ss_family == AF_INET ? '4' : '6', c->external_ip[i]);
            return -1;
        }
        *seen = true;
    }
    return 0;
}

enum { G_STUN };

/* The listeners of one URL group, in order. */
typedef struct group {
    char *const *list[2];
    size_t n[2];
    const char *fmt;
    const char *names[2];
} group;

static void add_url(char ***arr, size_t *n, char *u)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], u)) {
            free(u);
            return;
        }
    push(arr, n, u);
}

static int add_group(const group *g, const char *host, char ***out, size_t *n, FILE *err)
{
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < g->n[k]; i++) {
            char lh[256];
            long port;
            const char *name = g->names[k];
            if (split_hostport(g->list[k][i], lh, sizeof lh, &port) != 0) {
                fprintf(err, "turnkey: invalid %s '%s' (want ADDR:PORT)\n", name, g->list[k][i]);
                return -1;
            }
            if (!host && is_wildcard_host(lh)) {
                fprintf(err,
                        "turnkey: listening on the wildcard address '%s' needs --public-host "
                        "or --external-ip: iceServers must name an address clients can "
                        "reach\n",
                        g->list[k][i]);
                return -1;
            }
            char *uh = url_host(host ? host : lh);
            add_url(out, n, util_xasprintf(g->fmt, uh, port));
            free(uh);
        }
    return 0;
}

/* The iceServers host names: --public-host, else the --external-ip public addresses. */
static char *url_hosts(const cfg *c)
{
    if (c->public_host[0])
        return util_xstrdup(c->public_host);
    char *hosts = util_xstrdup("");
    for (size_t i = 0; i < c->n_external_ip; i++) {
        char *h = util_xasprintf("%s%s%.*s", hosts, *hosts ? "," : "",
                                 (int)strcspn(c->external_ip[i], "/"), c->external_ip[i]);
        free(hosts);
        hosts = h;
    }
    return hosts;
}

int cfg_ice_urls(const cfg *c, char ***stun, size_t *n_stun, char ***turn, size_t *n_turn,
                 FILE *err)
{
    *stun = *turn = NULL;
    *n_stun = *n_turn = 0;
    const group groups[] = {
        {{c->turn_listen, NULL}, {c->n_turn_listen, 0}, "stun:%s:%ld", {"--turn-listen"}},
        {{c->turn_listen, c->udp_listen},
         {c->n_turn_listen, c->n_udp_listen},
         "turn:%s:%ld?transport=udp",
         {"--turn-listen", "--udp-listen"}},
        {{c->turn_listen, c->tcp_listen},
         {c->n_turn_listen, c->n_tcp_listen},
         "turn:%s:%ld?transport=tcp",
         {"--turn-listen", "--tcp-listen"}},
        {{c->tls_listen, &c->shared_tls_listen},
         {c->n_tls_listen, c->shared_tls_listen && *c->shared_tls_listen ? 1 : 0},
         "turns:%s:%ld?transport=tcp",
         {"--tls-listen", "--shared-tls-listen"}},
    };
    char *hosts = url_hosts(c), *save = NULL;
    int rc = 0;
    bool any_host = false;
    for (char *h = strtok_r(hosts, ",", &save); h && rc == 0; h = strtok_r(NULL, ",", &save)) {
        h = trim(h);
        if (!*h)
            continue;
        any_host = true;
        for (size_t g = 0; g < sizeof groups / sizeof groups[0] && rc == 0; g++)
            rc = add_group(&groups[g], h, g == G_STUN ? stun : turn, g == G_STUN ? n_stun : n_turn,
                           err);
    }
    for (size_t g = 0; !any_host && g < sizeof groups / sizeof groups[0] && rc == 0; g++)
        rc = add_group(&groups[g], NULL, g == G_STUN ? stun : turn, g == G_STUN ? n_stun : n_turn,
                       err);
    free(hosts);
    if (rc != 0) {
        cfg_free_urls(*stun, *n_stun);
        cfg_free_urls(*turn, *n_turn);
        *stun = *turn = NULL;
        *n_stun = *n_turn = 0;
    }
    return rc;
}

void cfg_free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}
