/* cfg: configuration for `turnkey serve` from one declarative table. Sources, later ones
 * winning: built-in defaults, the config file (--config FILE, or TURNKEY_CONFIG: "name = value"
 * lines, '#' comments), environment variables (TURNKEY_<NAME> with '-' as '_', upper case), flags
 * (--name value or --name=value). The same table prints `turnkey serve --help`. The file
 * also accepts coturn's turnserver.conf names with the same meaning (src/cfg/cfg_coturn.c)
 * and bare flag lines ("no-tls", "bootstrap"). */
#ifndef TURNKEY_CFG_H
#define TURNKEY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct cfg {
    char *config;     /* file read, or NULL */
    char *data;       /* data directory (SQLite store) */
    char *store;      /* store location ("" = the data directory's SQLite file) */
    char *role;       /* all, api or relay */
    char *api_listen; /* HTTP API ADDR:PORT */
    /* Listener lists (repeatable; a later source replaces an earlier one's list; "" = none):
     * TURN UDP+TCP, TLS, UDP only, TCP only; each ADDR:PORT. */
    char **turn_listen;
    size_t n_turn_listen;
    char **tls_listen;
    size_t n_tls_listen;
    char **udp_listen;
    size_t n_udp_listen;
    char **tcp_listen;
    size_t n_tcp_listen;
    char **external_ip; /* PUBLIC[/PRIVATE], at most one per address family */
    size_t n_external_ip;
    char *tls_cert;    /* PEM certificate chain ("" = self-signed pair in the data dir) */
    char *tls_key;     /* PEM private key */
    char *relay_ip;    /* relay address ("" = the turn-listen address) */
    char *relay_ports; /* LO-HI */
    char *public_host; /* comma-separated names for iceServers ("" = external-ip, else the
                          listener hosts) */
    char *realm;
    char **allow_peer; /* CIDR list (repeatable flag) */
    size_t n_allow_peer;
    char **deny_peer; /* extra denied CIDRs (repeatable flag) */
    size_t n_deny_peer;
    long max_keys;
    long user_quota;        /* allocations per TURN username */
    long max_allocations;   /* allocations per server */
    long max_conns;         /* TURN TCP+TLS connections (0 = from the open-file limit) */
    long max_conns_per_ip;  /* per IPv4 address / IPv6 /64 */
    long handshake_timeout; /* seconds to the first valid STUN message */
    long api_max_conns;     /* 0 = from the open-file limit */
    long api_max_conns_per_ip;
    long api_timeout; /* seconds idle */
    long api_threads;
    long relay_threads; /* 0 = one per CPU */
    char *log_level;
    bool bootstrap;       /* first run on an empty store: create an account and a token */
    long nonce_lifetime;  /* seconds a NONCE is valid */
    long challenge_rate;  /* 401/438 per second per source IP and relay thread; 0 = no limit */
    long drain_timeout;   /* seconds SIGTERM waits for allocations to end; 0 = at once */
    char *log_format;     /* text | json */
    char *metrics_listen; /* "" = /metrics only on the API listener */
    long audit_retention_days;
    char *node_name; /* usage rows' node ("" = the host name) */
    long usage_flush_interval, usage_retention_days, usage_hour_retention_days;
    long usage_max_pending, usage_ring_size;
    bool api_tls;       /* the API listener speaks HTTPS */
    char *api_tls_cert; /* "" = the TURN pair (tls_cert/tls_key) */
    char *api_tls_key;
    char *shared_tls_listen;      /* ADDR:PORT serving HTTPS and TURN over TLS; "" = off */
    long max_revocations_per_key; /* live revocations per TURN key (the next one gets 409) */
    char *shared_secret_keys;     /* issue 15: key ids for usernames naming no key ("" = none) */
    long webhook_max_queued, webhook_max_age, webhook_retry_max, webhook_timeout; /* issue 14 */
    int layer_;         /* cfg_load internals: which source is being read, and which source */
    int list_layer_[8]; /* last set each layered list */
} cfg;

/* Fills c from defaults, file, environment and argv (argv[0] is the subcommand name).
 * Returns 0, 1 when --help was printed, or -1 with a one-line reason printed to err. */
int cfg_load(cfg *c, int argc, char **argv, FILE *err);
void cfg_free(cfg *c);
void cfg_print_help(FILE *out);
/* Writes c as a config file: every option with its help as a comment; options at their
 * default commented out. Reading the output back gives the same configuration. cfg_load
 * calls it (and returns 1) for --print-config. */
void cfg_print_config(const cfg *c, FILE *out);

/* Parses one --external-ip value "PUBLIC[/PRIVATE]" (IP literals of one family, neither a
 * wildcard). priv may be NULL; *has_priv tells whether PRIVATE was given. 0 or -1. */
struct sockaddr_storage;
int cfg_parse_external(const char *s, struct sockaddr_storage *pub, struct sockaddr_storage *priv,
                       bool *has_priv);

/* Builds the iceServers URL lists from the enabled listeners, in Cloudflare's order:
 * stun:H:P for each --turn-listen port; then turn:H:P?transport=udp for --turn-listen and
 * --udp-listen ports; turn:H:P?transport=tcp for --turn-listen and --tcp-listen ports;
 * turns:H:P?transport=tcp for --tls-listen and --shared-tls-listen ports (each group in the order configured,
 * duplicates once). H: each --public-host name, else each --external-ip PUBLIC address, else
 * each listener's own address; a wildcard listener without --public-host/--external-ip is an
 * error (no URL could reach it). Returns 0 or -1 (message on err). Free with cfg_free_urls. */
int cfg_ice_urls(const cfg *c, char ***stun, size_t *n_stun, char ***turn, size_t *n_turn,
                 FILE *err);
void cfg_free_urls(char **urls, size_t n);

#endif
