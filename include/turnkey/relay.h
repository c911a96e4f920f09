/* relay: the TURN relay's I/O layer — sockets, the epoll loop thread, TCP stream framing,
 * relay sockets from a port range — wired to the sans-I/O turn state machine, with
 * credentials checked through the key cache (cred_verify). The only TURN code that calls
 * send/recv. */
#ifndef TURNKEY_RELAY_H
#define TURNKEY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "turnkey/keycache.h"
#include "turnkey/peer.h"
#include "turnkey/tls.h"

typedef struct relay_config {
    const char *listen;      /* UDP+TCP listener "ADDR:PORT" */
    const char *relay_ip;    /* relay address; NULL/"" = the listener address */
    uint16_t port_lo, port_hi;
    const char *realm;
    const char *const *allow_peer; /* CIDRs opened in the peer deny-list */
    size_t n_allow_peer;
    uint32_t user_quota;      /* 0 = default (10) */
    uint32_t max_allocations; /* 0 = default */
    keycache *keys;
    const char *tls_listen; /* TURN over TLS "ADDR:PORT"; NULL/"" = off */
    tls_server *tls;        /* required when tls_listen is set */
    unsigned threads;       /* event-loop threads; 0 = one per online CPU */
} relay_config;

typedef struct relay relay;

/* Binds the listeners (errors are reported here, not later) and starts the loop thread.
 * NULL + *err (free()) on failure. */
relay *relay_start(const relay_config *cfg, char **err);
void relay_stop(relay *r);
/* Actual bound ports (useful with port 0); tls is 0 when TLS is off. */
uint16_t relay_port(const relay *r);
uint16_t relay_tls_port(const relay *r);
size_t relay_threads(const relay *r);

/* Thread-safe lifecycle notifications (from the API threads): the loop thread ends the
 * matching allocations at once. */
void relay_key_deleted(relay *r, const char *key_uid);
void relay_credential_revoked(relay *r, const char *username);

/* Parses "LO-HI" (1..65535, LO <= HI); 0 ok, -1 malformed. */
int relay_parse_ports(const char *s, uint16_t *lo, uint16_t *hi);

#endif
