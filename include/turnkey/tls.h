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
/* Loads a new pair and uses it for connections accepted from now on. 0, or -1 + *err (the
 * old pair stays in use). Thread-safe against tls_server_ssl. */
int tls_server_reload(tls_server *t, const char *cert_file, const char *key_file, char **err);
/* A server-side SSL for an accepted, non-blocking socket (accept state set); NULL on OOM. */
struct ssl_st *tls_server_ssl(tls_server *t, int fd);
void tls_server_free(tls_server *t);

/* Writes a self-signed ECDSA P-256 certificate (CN and subjectAltName = host, 1 year) and its
 * key (mode 0600) unless both files already exist. 0, or -1 + *err. */
int tls_ensure_self_signed(const char *cert_file, const char *key_file, const char *host,
                           char **err);

#endif
