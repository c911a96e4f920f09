/* http: libmicrohttpd glue — collects one request, hands it to api_handle, sends the answer. */
#include "turnkey/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

/* A body over API_MAX_BODY is read and dropped (up to this much), so the client reads a
 * complete 413 instead of a reset; the answer carries Connection: close. Past the limit the
 * connection is dropped: nobody sends a TURN-keys request of a gigabyte. */
#define DISCARD_LIMIT ((size_t)1 << 30)

struct http_server {
    struct MHD_Daemon *d;
    http_front *front; /* HTTPS (cfg->tls) and connections adopted from the relay */
    bool proxied;      /* connections come from the front (set before the daemon starts) */
    api_server *api;
    uint16_t port;
    log_limiter rl; /* libmicrohttpd's messages: clients trigger most of them (caps, resets) */
    bool metrics_only;
};

typedef struct req_ctx {
    int64_t start_us; /* monotonic, when the request's headers arrived */
    uint8_t *body;
    size_t len, cap;
    size_t discarded;
    bool too_large;
} req_ctx;

int http_parse_addr(const char *s, struct sockaddr_storage *out, unsigned *len)
{
    return util_parse_addr(s, out, len);
}

/* Keep paths raw: the api module decodes each path segment itself, so "%2F" stays data. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct qbuf {
    char *p;
    size_t cap, n;
    bool cut;
} qbuf;

/* The arguments come raw (no_unescape): joined again, they are the query string. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    qbuf *q = cls;
    (void)kind;
    int n = snprintf(q->p + q->n, q->cap - q->n, "%s%s%s%s", q->n ? "&" : "", key, value ? "=" : "",
                     value ? value : "");
    if (n < 0 || (size_t)n >= q->cap - q->n) {
        q->cut = true;
        return MHD_NO;
    }
    q->n += (size_t)n;
    return MHD_YES;
}

static void raw_query(struct MHD_Connection *conn, char *out, size_t cap)
{
    qbuf q = {.p = out, .cap = cap};
    out[0] = '\0';
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
    if (q.cut)
        snprintf(out, cap, "%s", "%"); /* too long: malformed on purpose (400) */
}

static void remote_addr(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, const api_response *ar,
                                   bool close_after)
{
    size_t n = ar->body ? strlen(ar->body) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, ar->body ? ar->body : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (ar->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ar->content_type);
    if (ar->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, ar->allow);
    if (ar->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, ar->www_authenticate);
    if (close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)ar->status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    http_server *h = cls;
    (void)version;
    req_ctx *rc = *con_cls;
    if (!rc) {
        rc = util_xcalloc(1, sizeof *rc);
        rc->start_us = mono_us();
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        if (!rc->too_large && rc->len + n <= API_MAX_BODY) {
            if (rc->len + n > rc->cap) {
                size_t cap = rc->cap ? rc->cap : 512;
                while (cap < rc->len + n)
                    cap *= 2;
                rc->body = util_xrealloc(rc->body, cap);
                rc->cap = cap;
            }
            memcpy(rc->body + rc->len, upload_data, n);
            rc->len += n;
        } else {
            rc->too_large = true;
            rc->discarded += n;
        }
        *upload_size = 0;
        if (rc->discarded < DISCARD_LIMIT)
            return MHD_YES;
    }
    char query[2048], peer[INET6_ADDRSTRLEN];
    raw_query(conn, query, sizeof query);
    remote_addr(conn, peer, sizeof peer);
    api_request req = {
        .query = query[0] ? query : NULL,
        .remote_addr = peer[0] ? peer : NULL,
        .method = method,
        .path = url,
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        .x_auth_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Key"),
        .x_auth_email = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Email"),
        .body = rc->body,
        .body_len = rc->len,
        .body_too_large = rc->too_large,
    };
    api_response ar;
    if (h->metrics_only && strcmp(url, "/metrics") && strcmp(url, "/healthz") &&
        strcmp(url, "/readyz"))
        req.path = "/metrics-listener-serves-only-metrics"; /* answered 400 no route */
    api_handle(h->api, &req, util_now_ms(), &ar);
    api_observe(h->api, method, &ar, mono_us() - rc->start_us);
    log_debug("http", "%s %s -> %d", method, url, ar.status);
    enum MHD_Result r = send_answer(conn, &ar, rc->too_large);
    api_response_clear(&ar);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req_ctx *rc = *con_cls;
    if (rc) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

/* libmicrohttpd sets TCP options on every connection; on the socketpair of an HTTPS
 * connection (http_tls.c) they fail, harmlessly: not worth a warning. */
static bool socketpair_noise(const char *msg)
{
    return !strncmp(msg, "Setting TCP_", 12) || !strncmp(msg, "Failed to push the data", 23);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_server *h = cls;
    unsigned suppressed;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (h->proxied && socketpair_noise(buf))
        return;
    if (LOG_WARN > log_get_level() || !log_limiter_admit(&h->rl, &suppressed))
        return;
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_write_rl(LOG_WARN, "http", suppressed, "%s", buf);
}

http_server *http_start(const http_config *cfg, api_server *api, char **err)
{
    struct sockaddr_storage ss;
    unsigned sslen;
    *err = NULL;
    if (http_parse_addr(cfg->listen, &ss, &sslen) != 0) {
        *err = util_xasprintf("invalid API listen address '%s' (want HOST:PORT or [V6]:PORT)",
                              cfg->listen);
        return NULL;
    }
    /* Bind here, so a failure is one clear line (and the real port is reported). */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 1024) != 0) {
        *err = util_xasprintf("cannot listen on %s: %s", cfg->listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    http_server *h = util_xcalloc(1, sizeof *h);
    h->api = api;
    log_limiter_init(&h->rl);
    h->metrics_only = cfg->metrics_only;
    h->proxied = cfg->tls || cfg->adopt;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls || cfg->adopt)
        flags |= MHD_USE_ITC; /* MHD_add_connection from the HTTPS front */
    if (cfg->tls)
        flags |= MHD_USE_NO_LISTEN_SOCKET; /* the front owns the listener */
    struct MHD_OptionItem listen_opt[] = {
        {cfg->tls ? MHD_OPTION_END : MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_END, 0, NULL}};
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_ARRAY, listen_opt, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads ? cfg->threads : 2), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->timeout_s ? cfg->timeout_s : 30), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections ? cfg->max_connections : 1024),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(24 * 1024), MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!h->d) {
        *err = util_xasprintf("cannot start the HTTP server on %s", cfg->listen);
        close(fd);
        free(h);
        return NULL;
    }
    socklen_t got = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &got);
    h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (!cfg->tls && !cfg->adopt)
        return h;
    http_front_config fc = {.d = h->d,
                            .listen_fd = cfg->tls ? fd : -1,
                            .tls = cfg->tls,
                            .max_conns = cfg->max_connections,
                            .max_per_ip = cfg->max_per_ip,
                            .timeout_s = cfg->timeout_s};
    if (!(h->front = http__front_start(&fc, err))) {
        if (cfg->tls)
            close(fd);
        http_stop(h);
        return NULL;
    }
    return h;
}

void http_adopt_tls(http_server *h, int fd, struct ssl_st *ssl, const uint8_t *pre, size_t n,
                    const struct sockaddr_storage *peer)
{
    http__front_adopt(h->front, fd, ssl, pre, n, peer);
}

uint16_t http_port(const http_server *h)
{
    return h->port;
}

void http_stop(http_server *h)
{
    if (!h)
        return;
    http__front_stop(h->front);
    MHD_stop_daemon(h->d);
    free(h);
}
