/* http: the HTTP/1.1 server around the sans-I/O api module, on GNU libmicrohttpd.
 * Keep-alive, a thread pool with epoll, a 64 KiB body limit (larger bodies are read and
 * discarded, then answered 413 with Connection: close), header memory limit, idle timeout. */
#ifndef TURNKEY_HTTP_H
#define TURNKEY_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "turnkey/api.h"
#include "turnkey/tls.h"

typedef struct http_config {
    const char *listen;       /* "127.0.0.1:8080", "[::1]:8080", port 0 = ephemeral */
    unsigned threads;         /* worker threads (default 2) */
    unsigned timeout_s;       /* idle connection timeout (default 30) */
    unsigned max_connections; /* default 1024 */
    unsigned max_per_ip;      /* connections per client address; 0 = no limit */
    bool metrics_only;        /* answer only /metrics, /healthz, /readyz (404 otherwise) */
    /* HTTPS: TLS ends in turnkey (OpenSSL, src/http/http_tls.c) and libmicrohttpd gets the
     * plaintext; the handshake has timeout_s, the caps above count TLS connections too. */
    tls_server *tls;
    bool adopt; /* also take connections from http_adopt_tls (the shared TLS port) */
} http_config;

typedef struct http_server http_server;

/* Starts serving in background threads. NULL + *err (free()) on failure. */
http_server *http_start(const http_config *cfg, api_server *api, char **err);
/* The port actually bound (useful with port 0). */
uint16_t http_port(const http_server *h);
void http_stop(http_server *h);
/* Serves HTTP on a TLS connection another thread accepted and finished the handshake of
 * (the TLS port shared with TURN): fd and ssl belong to h from now on, pre[0..n) is the
 * plaintext already read (at most 8 KiB). Needs http_config.adopt. Thread-safe. */
struct ssl_st;
struct sockaddr_storage;
void http_adopt_tls(http_server *h, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                    const struct sockaddr_storage *peer);

/* Parses "host:port", "[v6]:port" or ":port" into a sockaddr; 0 ok, -1 malformed. */
struct sockaddr_storage;
int http_parse_addr(const char *s, struct sockaddr_storage *out, unsigned *len);

#endif
