/* cfg: see include/turnkey/cfg.h. One table drives parsing, environment names and --help. */
#include "turnkey/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
static const opt table[] = {
    {"config", T_STR, O(config), NULL, 0, 0, "configuration file (name = value lines)"},
    {"data", T_STR, O(data), "./var", 0, 0, "data directory (SQLite store turnkey.db)"},
    {"api-listen", T_STR, O(api_listen), "127.0.0.1:8080", 0, 0,
     "HTTP API address ADDR:PORT (port 0 = any free port)"},
    {"turn-listen", T_STR, O(turn_listen), "127.0.0.1:3478", 0, 0,
     "TURN/STUN over UDP and TCP, ADDR:PORT (empty = off)"},
    {"tls-listen", T_STR, O(tls_listen), "127.0.0.1:5349", 0, 0,
     "TURN over TLS, ADDR:PORT (empty = off)"},
    {"tls-cert", T_STR, O(tls_cert), "", 0, 0,
     "TLS certificate chain (PEM); empty = a self-signed pair generated in the data directory"},
    {"tls-key", T_STR, O(tls_key), "", 0, 0, "TLS private key (PEM)"},
    {"relay-ip", T_STR, O(relay_ip), "", 0, 0, "relay address (default: the turn-listen address)"},
    {"relay-ports", T_STR, O(relay_ports), "49152-65535", 0, 0, "relay port range LO-HI"},
    {"public-host", T_STR, O(public_host), "", 0, 0,
     "host name(s) for iceServers URLs, comma-separated (default: the turn-listen host)"},
    {"realm", T_STR, O(realm), "turnkey", 0, 0, "TURN realm"},
    {"allow-peer", T_LIST, O(allow_peer), NULL, 0, 0,
     "open one CIDR of the peer deny-list (repeatable; tests use 127.0.0.1/32)"},
    {"max-keys", T_INT, O(max_keys), "1000", 1, 1000000, "TURN keys per account"},
    {"user-quota", T_INT, O(user_quota), "10", 1, 1000000,
     "allocations per TURN username (the next one gets 486)"},
    {"max-allocations", T_INT, O(max_allocations), "100000", 1, 10000000,
     "allocations per server (the next one gets 508)"},
    {"api-threads", T_INT, O(api_threads), "2", 1, 64, "HTTP worker threads"},
    {"relay-threads", T_INT, O(relay_threads), "0", 0, 64,
     "relay event-loop threads (0 = one per CPU)"},
    {"log-level", T_STR, O(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"bootstrap", T_BOOL, O(bootstrap), "false", 0, 0,
     "on an empty store, create one account and one write token and print them once"},
};
#define N_OPTS (sizeof table / sizeof table[0])

static const opt *find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
            return &table[i];
    return NULL;
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
        size_t *n = &c->n_allow_peer; /* the one list option */
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

static int load_file(cfg *c, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "turnkey: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        char src[512];
        snprintf(src, sizeof src, "%s:%d", path, lineno);
        if (!eq) {
            fprintf(err, "turnkey: %s: expected 'name = value'\n", src);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *val = trim(eq + 1);
        const opt *o = find(name, strlen(name));
        if (!o || o->off == O(config)) {
            fprintf(err, "turnkey: %s: unknown setting '%s'\n", src, name);
            rc = -1;
            break;
        }
        rc = set(c, o, val, src, err);
    }
    fclose(f);
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

int cfg_load(cfg *c, int argc, char **argv, FILE *err)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTS; i++)
        if (table[i].def && set(c, &table[i], table[i].def, "default", err) != 0)
            return -1;
    /* pass 1: --help and --config (TURNKEY_CONFIG unless the flag is given); pass 2:
     * everything else, after file and environment */
    const char *env_config = getenv("TURNKEY_CONFIG");
    if (env_config && *env_config)
        set(c, &table[0], env_config, "TURNKEY_CONFIG", err);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_print_help(stdout);
            return 1;
        }
        if (!strncmp(argv[i], "--config=", 9))
            set(c, &table[0], argv[i] + 9, "flag", err);
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            set(c, &table[0], argv[++i], "flag", err);
    }
    if (c->config && load_file(c, c->config, err) != 0)
        return -1;
    if (load_env(c, err) != 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
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
    return 0;
}

void cfg_free(cfg *c)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        char *base = (char *)c;
        if (table[i].type == T_STR) {
            free(*(char **)(base + table[i].off));
        }
    }
    for (size_t i = 0; i < c->n_allow_peer; i++)
        free(c->allow_peer[i]);
    free(c->allow_peer);
    memset(c, 0, sizeof *c);
}

void cfg_print_help(FILE *out)
{
    fprintf(out, "usage: turnkey serve [options]\n\n"
                 "Runs the HTTP API (TURN keys + credentials) and the TURN relay.\n"
                 "Each option may also come from the config file (name = value) or the\n"
                 "environment (TURNKEY_NAME); flags win over the environment, which wins over\n"
                 "the file.\n\n");
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

int cfg_ice_urls(const cfg *c, char ***stun, size_t *n_stun, char ***turn, size_t *n_turn,
                 FILE *err)
{
    char host[256];
    long turn_port = 0, tls_port = 0;
    *stun = *turn = NULL;
    *n_stun = *n_turn = 0;
    if (c->turn_listen[0] && split_hostport(c->turn_listen, host, sizeof host, &turn_port) != 0) {
        fprintf(err, "turnkey: invalid --turn-listen '%s' (want ADDR:PORT)\n", c->turn_listen);
        return -1;
    }
    if (c->tls_listen[0] && split_hostport(c->tls_listen, host, sizeof host, &tls_port) != 0) {
        fprintf(err, "turnkey: invalid --tls-listen '%s' (want ADDR:PORT)\n", c->tls_listen);
        return -1;
    }
    if (c->turn_listen[0])
        split_hostport(c->turn_listen, host, sizeof host, &turn_port);
    char *hosts = util_xstrdup(c->public_host[0] ? c->public_host : host);
    if (!c->public_host[0] && (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))) {
        fprintf(err, "turnkey: warning: listening on a wildcard address without --public-host; "
                     "iceServers will name 127.0.0.1\n");
        free(hosts);
        hosts = util_xstrdup("127.0.0.1");
    }
    char *save = NULL;
    for (char *h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        h = trim(h);
        if (!*h)
            continue;
        char *uh = url_host(h);
        if (turn_port) {
            push(stun, n_stun, util_xasprintf("stun:%s:%ld", uh, turn_port));
            push(turn, n_turn, util_xasprintf("turn:%s:%ld?transport=udp", uh, turn_port));
            push(turn, n_turn, util_xasprintf("turn:%s:%ld?transport=tcp", uh, turn_port));
        }
        if (tls_port)
            push(turn, n_turn, util_xasprintf("turns:%s:%ld?transport=tcp", uh, tls_port));
        free(uh);
    }
    free(hosts);
    return 0;
}

void cfg_free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}
