/* cfg: configuration for `turnkey serve` from one declarative table. Sources, later ones
 * winning: built-in defaults, the config file (--config FILE, or TURNKEY_CONFIG: "name = value"
 * lines, '#' comments), environment variables (TURNKEY_<NAME> with '-' as '_', upper case), flags
 * (--name value or --name=value). The same table prints `turnkey serve --help`. */
#ifndef TURNKEY_CFG_H
#define TURNKEY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct cfg {
    char *config;      /* file read, or NULL */
    char *data;        /* data directory (SQLite store) */
    char *api_listen;  /* HTTP API ADDR:PORT */
    char *turn_listen; /* TURN UDP+TCP ADDR:PORT ("" = off) */
    char *tls_listen;  /* TURN TLS ADDR:PORT ("" = off) */
    char *tls_cert;    /* PEM certificate chain ("" = self-signed pair in the data dir) */
    char *tls_key;     /* PEM private key */
    char *relay_ip;    /* relay address ("" = the turn-listen address) */
    char *relay_ports; /* LO-HI */
    char *public_host; /* comma-separated names for iceServers ("" = the turn-listen host) */
    char *realm;
    char **allow_peer; /* CIDR list (repeatable flag) */
    size_t n_allow_peer;
    long max_keys;
    long user_quota;      /* allocations per TURN username */
    long max_allocations; /* allocations per server */
    long api_threads;
    long relay_threads; /* 0 = one per CPU */
    char *log_level;
    bool bootstrap;    /* first run on an empty store: create an account and a token */
} cfg;

/* Fills c from defaults, file, environment and argv (argv[0] is the subcommand name).
 * Returns 0, 1 when --help was printed, or -1 with a one-line reason printed to err. */
int cfg_load(cfg *c, int argc, char **argv, FILE *err);
void cfg_free(cfg *c);
void cfg_print_help(FILE *out);



/* Builds the iceServers URL lists from the enabled listeners and public host(s):
 * stun:H:P, turn:H:P?transport=udp, turn:H:P?transport=tcp (turn-listen) and
 * turns:H:P?transport=tcp (tls-listen). Returns 0 or -1 (message on err). Free with
 * cfg_free_urls. */
int cfg_ice_urls(const cfg *c, char ***stun, size_t *n_stun, char ***turn, size_t *n_turn,
                 FILE *err);
void cfg_free_urls(char **urls, size_t n);

#endif
