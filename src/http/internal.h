/* http internals shared by the files of src/http (not a public header). */
#ifndef TURNKEY_HTTP_INTERNAL_H
#define TURNKEY_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "turnkey/tls.h"

struct MHD_Daemon;
struct ssl_st;

/* http_tls.c: the HTTPS front. One thread terminates TLS with OpenSSL and hands each
 * connection's plaintext to libmicrohttpd over a socketpair (MHD_add_connection, with the
 * client's real address). */
typedef struct http_front http_front;

typedef struct http_front_config {
    struct MHD_Daemon *d; /* started with MHD_USE_ITC */
    int listen_fd;        /* the HTTPS listener (the front closes it), or -1: adopted only */
    tls_server *tls;      /* for listen_fd */
    unsigned max_conns;   /* front connections in total (handshaking or proxied) */
    unsigned max_per_ip;  /* per client address; 0 = no limit */
    unsigned timeout_s;   /* the TLS handshake's deadline; no byte either way for twice it */
} http_front_config;

http_front *http__front_start(const http_front_config *cfg, char **err);
/* Takes over a client whose TLS handshake another thread did (the shared TLS port): fd and
 * ssl are the front's from now on, pre[0..n) the plaintext already read. Thread-safe. */
void http__front_adopt(http_front *f, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                       const struct sockaddr_storage *peer);
/* Closes every front connection (before MHD_stop_daemon). */
void http__front_stop(http_front *f);

#endif
