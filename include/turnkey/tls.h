/* tls: OpenSSL server contexts for TURN over TLS — TLS 1.2 and 1.3 only (older ClientHellos
 * get a protocol_version alert), certificate and key from PEM files, reloadable at run time
 * (live connections keep the context they started with), and a self-signed pair for local
 * use when none is configured. */
#ifndef TURNKEY_TLS_H
#define TURNKEY_TLS_H

struct ssl_st;

typedef struct tls_server tls_server;

/* Loads cert (chain) + key; NULL + *err (free()) on failure. */
tls_server *tls_server_new(const char *cert_file, const char *key_file, char **err);
/* ALPN protocols a server selects when the client offers them (RFC 7301; RFC 7443 names
 * "stun.turn"); with both, stun.turn wins. No overlap: the handshake goes on without ALPN.
 * h2 is never selected (not served). */
enum { TLS_ALPN_TURN = 1, TLS_ALPN_HTTP = 2 };
/* tls_server_new that also answers ALPN with one of alpn (TLS_ALPN_* flags), kept on reload. */
tls_server *tls_server_new_alpn(const char *cert_file, const char *key_file, unsigned alpn,
                                char **err);
/* Loads a new pair and uses it for connections accepted from now on. 0, or -1 + *err (the
 * old pair stays in use). Thread-safe against tls_server_ssl. */
int tls_server_reload(tls_server *t, const char *cert_file, const char *key_file, char **err);
/* A server-side SSL for an accepted, non-blocking socket (accept state set); NULL on OOM. */
struct ssl_st *tls_server_ssl(tls_server *t, int fd);
void tls_server_free(tls_server *t);
/* Frees a connection's SSL (no close_notify) and closes its socket. */
void tls_conn_close(struct ssl_st *ssl, int fd);

/* Writes a self-signed ECDSA P-256 certificate (CN and subjectAltName = host, 1 year) and its
 * key (mode 0600) unless both files already exist. 0, or -1 + *err. */
int tls_ensure_self_signed(const char *cert_file, const char *key_file, const char *host,
                           char **err);

#endif
