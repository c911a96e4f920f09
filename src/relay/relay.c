/* relay: listeners, the loop thread, relay sockets and the turn_ops glue.
 * TCP/TLS connection handling lives in relay_conn.c. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnkey/cred.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

int relay_parse_ports(const char *s, uint16_t *lo, uint16_t *hi)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || *end != '-')
        return -1;
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (end == p || *end || a < 1 || b > 65535 || a > b)
        return -1;
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return 0;
}

/* --- relay sockets: alloc_id -> socket ----------------------------------------------- */

static size_t rs_slot(const relay *r, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (r->rs_nb - 1);
}

static relay_sock *rs_find(relay *r, uint64_t id)
{
    for (relay_sock *s = r->rs[rs_slot(r, id)]; s; s = s->next)
        if (s->alloc_id == id)
            return s;
    return NULL;
}

static void rs_insert(relay *r, relay_sock *s)
{
    if (r->rs_n + 1 > r->rs_nb) {
        size_t old_nb = r->rs_nb;
        relay_sock **old = r->rs;
        r->rs_nb *= 2;
        r->rs = util_xcalloc(r->rs_nb, sizeof *r->rs);
        for (size_t i = 0; i < old_nb; i++)
            for (relay_sock *e = old[i], *next; e; e = next) {
                next = e->next;
                size_t j = rs_slot(r, e->alloc_id);
                e->next = r->rs[j];
                r->rs[j] = e;
            }
        free(old);
    }
    size_t i = rs_slot(r, s->alloc_id);
    s->next = r->rs[i];
    r->rs[i] = s;
    r->rs_n++;
}

static relay_sock *rs_remove(relay *r, uint64_t id)
{
    for (relay_sock **pp = &r->rs[rs_slot(r, id)]; *pp; pp = &(*pp)->next)
        if ((*pp)->alloc_id == id) {
            relay_sock *s = *pp;
            *pp = s->next;
            r->rs_n--;
            return s;
        }
    return NULL;
}

static void on_peer_readable(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    relay_sock *s = ctx;
    relay *r = s->owner;
    (void)loop;
    (void)events;
    uint64_t id = s->alloc_id;
    for (int i = 0; i < RELAY_READ_BUDGET; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, r->rxbuf, sizeof r->rxbuf, 0, (struct sockaddr *)&peer, &plen);
        if (n < 0)
            break;
        turn_server_peer_input(r->turn, id, (struct sockaddr *)&peer, r->rxbuf, (size_t)n,
                               util_now_ms());
        if (!rs_find(r, id))
            break; /* the allocation ended while handling this datagram */
    }
    relay__arm_timer(r);
}

static int ops_relay_open(void *ctx, uint64_t alloc_id, int family,
                          struct sockaddr_storage *relayed)
{
    relay *r = ctx;
    if (family != r->relay_addr.ss_family)
        return TURN_RELAY_ERR_FAMILY; /* → 440 */
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unsigned span = (unsigned)(r->port_hi - r->port_lo) + 1;
    unsigned tries = span < 256 ? span : 256;
    struct sockaddr_storage a = r->relay_addr;
    socklen_t alen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    bool bound = false;
    for (unsigned i = 0; i < tries && !bound; i++) {
        uint16_t port = (uint16_t)(r->port_lo + (r->port_cursor++ % span));
        if (family == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
        bound = bind(fd, (struct sockaddr *)&a, alen) == 0;
    }
    relay_sock *s = NULL;
    if (!bound)
        goto fail;
    s = util_xcalloc(1, sizeof *s);
    s->fd = fd;
    s->alloc_id = alloc_id;
    s->owner = r;
    if (ev_add(r->loop, fd, EV_READ, on_peer_readable, s) != 0)
        goto fail;
    rs_insert(r, s);
    *relayed = a;
    return 0;
fail:
    log_warn("relay", "no relay port available in %u-%u", r->port_lo, r->port_hi);
    free(s);
    close(fd);
    return -1;
}

static void ops_relay_close(void *ctx, uint64_t alloc_id)
{
    relay *r = ctx;
    relay_sock *s = rs_remove(r, alloc_id);
    if (!s)
        return;
    ev_del(r->loop, s->fd);
    close(s->fd);
    free(s);
}

static void ops_send_peer(void *ctx, uint64_t alloc_id, const struct sockaddr *peer,
                          const uint8_t *buf, size_t len)
{
    relay *r = ctx;
    relay_sock *s = rs_find(r, alloc_id);
    if (!s)
        return;
    socklen_t plen =
        peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (sendto(s->fd, buf, len, MSG_DONTWAIT, peer, plen) < 0)
        r->send_errors++;
}

static void ops_send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    relay *r = ctx;
    if (t->proto != TURN_PROTO_UDP) {
        relay__conn_send(r, t->conn_id, buf, len);
        return;
    }
    socklen_t clen = t->client.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                    : sizeof(struct sockaddr_in6);
    if (sendto(r->udp_fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)&t->client, clen) < 0)
        r->send_errors++;
}

static int ops_auth(void *ctx, const uint8_t *username, size_t len, int64_t now,
                    char password[128], turn_auth_info *info)
{
    relay *r = ctx;
    cred_lookup lk = keycache_lookup(r->keys);
    cred_info ci;
    int rc = cred_verify(&lk, (const char *)username, len, now, &ci, password);
    if (rc == CRED_E_EXPIRED)
        return TURN_AUTH_EXPIRED;
    if (rc != CRED_OK)
        return TURN_AUTH_REJECT;
    memcpy(info->key_id, ci.key_id, sizeof info->key_id);
    info->expires = ci.expires;
    return TURN_AUTH_OK;
}

/* --- timers, UDP listener, cross-thread events --------------------------------------- */

static void on_turn_timer(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay *r = ctx;
    (void)loop;
    (void)t;
    turn_server_tick(r->turn, util_now_ms());
    relay__arm_timer(r);
}

/* The turn server keeps wall-clock deadlines; the loop's timers are monotonic. */
void relay__arm_timer(relay *r)
{
    int64_t deadline = turn_server_next_deadline(r->turn);
    if (deadline == INT64_MAX) {
        ev_timer_stop(r->loop, &r->timer);
        return;
    }
    int64_t delay = deadline - util_now_ms();
    ev_timer_start(r->loop, &r->timer, delay < 0 ? 0 : delay);
}

static void on_udp_readable(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    relay *r = ctx;
    (void)loop;
    (void)events;
    turn_5tuple t = {.proto = TURN_PROTO_UDP, .server = r->listen_addr};
    for (int i = 0; i < RELAY_READ_BUDGET; i++) {
        socklen_t clen = sizeof t.client;
        ssize_t n = recvfrom(fd, r->rxbuf, sizeof r->rxbuf, 0, (struct sockaddr *)&t.client, &clen);
        if (n < 0)
            break;
        turn_server_input(r->turn, &t, r->rxbuf, (size_t)n, util_now_ms());
    }
    relay__arm_timer(r);
}

static void on_wakeup(ev_loop *loop, void *ctx)
{
    relay *r = ctx;
    (void)loop;
    pthread_mutex_lock(&r->q_mu);
    relay_event *e = r->q_head;
    r->q_head = r->q_tail = NULL;
    pthread_mutex_unlock(&r->q_mu);
    while (e) {
        relay_event *next = e->next;
        size_t n;
        if (e->kind == RELAY_EV_KEY_DELETED)
            n = turn_server_key_deleted(r->turn, e->text, util_now_ms());
        else
            n = turn_server_credential_revoked(r->turn, (const uint8_t *)e->text,
                                               strlen(e->text), util_now_ms());
        if (n)
            log_info("relay", "%s: ended %zu allocation(s)",
                     e->kind == RELAY_EV_KEY_DELETED ? "key deleted" : "credential revoked", n);
        free(e);
        e = next;
    }
    relay__arm_timer(r);
}

static void enqueue(relay *r, int kind, const char *text)
{
    if (!r)
        return;
    size_t n = strlen(text);
    relay_event *e = util_xcalloc(1, sizeof *e + n + 1);
    e->kind = kind;
    memcpy(e->text, text, n + 1);
    pthread_mutex_lock(&r->q_mu);
    if (r->q_tail)
        r->q_tail->next = e;
    else
        r->q_head = e;
    r->q_tail = e;
    pthread_mutex_unlock(&r->q_mu);
    ev_wakeup(r->loop);
}

void relay_key_deleted(relay *r, const char *key_uid)
{
    enqueue(r, RELAY_EV_KEY_DELETED, key_uid);
}

void relay_credential_revoked(relay *r, const char *username)
{
    enqueue(r, RELAY_EV_REVOKED, username);
}

static void *loop_main(void *arg)
{
    relay *r = arg;
    ev_run(r->loop);
    return NULL;
}

/* --- start / stop -------------------------------------------------------------------- */

static int open_listener(struct sockaddr_storage *addr, const char *text, int type,
                         const char *what, char **err)
{
    socklen_t alen = addr->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6);
    int fd = socket(addr->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        goto fail;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)addr, alen) != 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, 1024) != 0)
        goto fail;
    /* with port 0, the TCP listener takes the port the UDP one got */
    socklen_t got = sizeof *addr;
    getsockname(fd, (struct sockaddr *)addr, &got);
    return fd;
fail:
    *err = util_xasprintf("cannot open the TURN %s listener on %s: %s", what, text,
                          strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int setup_policy(relay *r, const relay_config *cfg, char **err)
{
    peer_policy_init(&r->peers);
    for (size_t i = 0; i < cfg->n_allow_peer; i++) {
        peer_cidr c;
        if (peer_cidr_parse(cfg->allow_peer[i], &c) != 0) {
            *err = util_xasprintf("invalid --allow-peer '%s' (want a CIDR such as 127.0.0.1/32)",
                                  cfg->allow_peer[i]);
            return -1;
        }
        peer_policy_add_allow(&r->peers, &c);
    }
    peer_policy_add_self(&r->peers, (struct sockaddr *)&r->listen_addr);
    peer_policy_add_self(&r->peers, (struct sockaddr *)&r->relay_addr);
    if (r->tls_fd >= 0)
        peer_policy_add_self(&r->peers, (struct sockaddr *)&r->tls_addr);
    return 0;
}

relay *relay_start(const relay_config *cfg, char **err)
{
    unsigned len;
    *err = NULL;
    relay *r = util_xcalloc(1, sizeof *r);
    r->udp_fd = r->tcp_fd = r->tls_fd = -1;
    r->keys = cfg->keys;
    r->listen_text = cfg->listen;
    r->port_lo = cfg->port_lo ? cfg->port_lo : 49152;
    r->port_hi = cfg->port_hi ? cfg->port_hi : 65535;
    pthread_mutex_init(&r->q_mu, NULL);
    r->rs_nb = 64;
    r->rs = util_xcalloc(r->rs_nb, sizeof *r->rs);
    if (util_parse_addr(cfg->listen, &r->listen_addr, &len) != 0) {
        *err = util_xasprintf("invalid --turn-listen '%s' (want ADDR:PORT)", cfg->listen);
        goto fail;
    }
    const char *rip = cfg->relay_ip && *cfg->relay_ip ? cfg->relay_ip : NULL;
    if (rip) {
        char tmp[160];
        snprintf(tmp, sizeof tmp, strchr(rip, ':') ? "[%s]:0" : "%s:0", rip);
        if (util_parse_addr(tmp, &r->relay_addr, &len) != 0) {
            *err = util_xasprintf("invalid --relay-ip '%s'", rip);
            goto fail;
        }
    }
    if (!(r->loop = ev_loop_new())) {
        *err = util_xasprintf("cannot create the relay event loop: %s", strerror(errno));
        goto fail;
    }
    if ((r->udp_fd = open_listener(&r->listen_addr, cfg->listen, SOCK_DGRAM, "UDP", err)) < 0 ||
        (r->tcp_fd = open_listener(&r->listen_addr, cfg->listen, SOCK_STREAM, "TCP", err)) < 0)
        goto fail;
    if (cfg->tls_listen && *cfg->tls_listen) {
        if (util_parse_addr(cfg->tls_listen, &r->tls_addr, &len) != 0 || !cfg->tls) {
            *err = util_xasprintf("invalid --tls-listen '%s' (want ADDR:PORT)", cfg->tls_listen);
            goto fail;
        }
        r->tls = cfg->tls;
        r->tls_fd = open_listener(&r->tls_addr, cfg->tls_listen, SOCK_STREAM, "TLS", err);
        if (r->tls_fd < 0)
            goto fail;
    }
    if (!rip) {
        r->relay_addr = r->listen_addr;
        if (r->relay_addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&r->relay_addr)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&r->relay_addr)->sin6_port = 0;
    }
    if (setup_policy(r, cfg, err) != 0)
        goto fail;
    util_random((uint8_t *)&r->port_cursor, sizeof r->port_cursor);
    turn_config tc = {.realm = cfg->realm ? cfg->realm : "turnkey",
                      .software = "turnkey",
                      .user_quota = cfg->user_quota,
                      .max_allocations = cfg->max_allocations,
                      .peers = &r->peers};
    util_random(tc.nonce_secret, sizeof tc.nonce_secret);
    turn_ops ops = {.send_client = ops_send_client,
                    .relay_open = ops_relay_open,
                    .relay_close = ops_relay_close,
                    .send_peer = ops_send_peer,
                    .auth = ops_auth,
                    .ctx = r};
    r->turn = turn_server_new(&tc, &ops);
    ev_timer_init(&r->timer, on_turn_timer, r);
    ev_set_wakeup_cb(r->loop, on_wakeup, r);
    if (ev_add(r->loop, r->udp_fd, EV_READ, on_udp_readable, r) != 0 ||
        ev_add(r->loop, r->tcp_fd, EV_READ, relay__on_accept, r) != 0 ||
        (r->tls_fd >= 0 && ev_add(r->loop, r->tls_fd, EV_READ, relay__on_accept_tls, r) != 0)) {
        *err = util_xasprintf("cannot register the TURN listeners");
        goto fail;
    }
    if (pthread_create(&r->thread, NULL, loop_main, r) != 0) {
        *err = util_xasprintf("cannot start the relay thread");
        goto fail;
    }
    r->running = true;
    return r;
fail:
    relay_stop(r);
    return NULL;
}

uint16_t relay_port(const relay *r)
{
    return ntohs(r->listen_addr.ss_family == AF_INET
                     ? ((const struct sockaddr_in *)&r->listen_addr)->sin_port
                     : ((const struct sockaddr_in6 *)&r->listen_addr)->sin6_port);
}

uint16_t relay_tls_port(const relay *r)
{
    if (r->tls_fd < 0)
        return 0;
    return ntohs(r->tls_addr.ss_family == AF_INET
                     ? ((const struct sockaddr_in *)&r->tls_addr)->sin_port
                     : ((const struct sockaddr_in6 *)&r->tls_addr)->sin6_port);
}

void relay_stop(relay *r)
{
    if (!r)
        return;
    if (r->running) {
        ev_stop(r->loop);
        pthread_join(r->thread, NULL);
    }
    relay__conns_close_all(r);
    if (r->turn)
        turn_server_free(r->turn); /* closes every relay socket through ops */
    for (size_t i = 0; i < r->rs_nb; i++)
        for (relay_sock *s = r->rs[i], *next; s; s = next) {
            next = s->next;
            close(s->fd);
            free(s);
        }
    free(r->rs);
    if (r->udp_fd >= 0)
        close(r->udp_fd);
    if (r->tcp_fd >= 0)
        close(r->tcp_fd);
    if (r->tls_fd >= 0)
        close(r->tls_fd);
    for (relay_event *e = r->q_head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    if (r->loop)
        ev_loop_free(r->loop);
    peer_policy_dispose(&r->peers);
    pthread_mutex_destroy(&r->q_mu);
    free(r);
}
