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

static size_t rs_slot(const relay_worker *r, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (r->rs_nb - 1);
}

static relay_sock *rs_find(relay_worker *r, uint64_t id)
{
    for (relay_sock *s = r->rs[rs_slot(r, id)]; s; s = s->next)
        if (s->alloc_id == id)
            return s;
    return NULL;
}

static void rs_insert(relay_worker *r, relay_sock *s)
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

static relay_sock *rs_remove(relay_worker *r, uint64_t id)
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

/* Receives up to RELAY_BATCH datagrams with one recvmmsg into the round-th slice of the
 * receive buffers (each at offset TURN_PEER_HEADROOM); returns how many (0 if none). Round 0
 * starts a wakeup's reading: nothing queued may still point into the buffers by then. */
static int recv_batch(relay_worker *r, int fd, int round, bool pktinfo)
{
    int base = round * RELAY_BATCH;
    if (round == 0 && r->n_tx_borrowed)
        relay__tx_flush(r);
    for (int i = base; i < base + RELAY_BATCH; i++) {
        r->iov[i].iov_base = r->rx[i] + TURN_PEER_HEADROOM;
        r->iov[i].iov_len = RELAY_DGRAM_MAX;
        r->mm[i].msg_hdr = (struct msghdr){.msg_name = &r->from[i],
                                           .msg_namelen = sizeof r->from[i],
                                           .msg_iov = &r->iov[i],
                                           .msg_iovlen = 1};
        if (pktinfo) {
            r->mm[i].msg_hdr.msg_control = r->rx_cmsg[i];
            r->mm[i].msg_hdr.msg_controllen = sizeof r->rx_cmsg[i];
        }
    }
    int n = recvmmsg(fd, r->mm + base, RELAY_BATCH, MSG_DONTWAIT, NULL);
    return n > 0 ? n : 0;
}

/* A datagram from another relay socket of this server, bound on a private address that an
 * external address maps: the peer knows that relay by its public address (its permission
 * and channel name it), so that is the source the allocation sees. */
static void hairpin_source(relay_worker *r, struct sockaddr_storage *from)
{
    struct sockaddr_storage pub;
    const struct sockaddr *sa = (const struct sockaddr *)from;
    if (peer_relays_slot(r->shared->relays, sa) >= 0 &&
        peer_relays_live(r->shared->relays, sa, NULL) &&
        peer_relays_public(r->shared->relays, sa, &pub))
        *from = pub;
}

static void on_peer_readable(ev_loop *loop, int fd, unsigned events, void *ctx)
{
    relay_sock *s = ctx;
    relay_worker *r = s->owner;
    (void)loop;
    (void)events;
    uint64_t id = s->alloc_id;
    for (int round = 0; round < RELAY_READ_BUDGET / RELAY_BATCH; round++) {
        int n = recv_batch(r, fd, round, false);
        for (int i = round * RELAY_BATCH; i < round * RELAY_BATCH + n; i++) {
            if (r->mm[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue; /* larger than RELAY_DGRAM_MAX: dropped */
            if (r->shared->n_external)
                hairpin_source(r, &r->from[i]);
            turn_server_peer_input_inplace(r->turn, id, (struct sockaddr *)&r->from[i],
                                           r->rx[i] + TURN_PEER_HEADROOM, r->mm[i].msg_len,
                                           util_now_ms());
            if (!rs_find(r, id))
                goto out; /* the allocation ended while handling this datagram */
        }
        if (n < RELAY_BATCH)
            break;
    }
out:
    relay__arm_timer(r);
}

/* The address an allocation relays on: --relay-ip of that family, else the local address
 * the request reached (never a wildcard: a wildcard UDP listener learns it per datagram),
 * else a specific listener address of that family (an IPv6 relay for an IPv4 client). */
static bool relay_bind_addr(const relay_worker *r, const turn_5tuple *t, int family,
                            struct sockaddr_storage *a)
{
    const relay *sh = r->shared;
    int f = family == AF_INET6;
    if (sh->has_relay_ip[f]) {
        *a = sh->relay_addr[f];
        return true;
    }
    *a = t->server;
    relay__unmap(a);
    relay__set_port(a, 0);
    if (a->ss_family == family)
        return true;
    *a = sh->fallback_addr[f];
    return sh->has_fallback[f];
}

bool relay__relay_bind_addr(const relay_worker *r, const turn_5tuple *t, int family,
                            struct sockaddr_storage *a)
{
    return relay_bind_addr(r, t, family, a);
}

/* Binds fd to a random free port of the range: O(1) per Allocate whatever the range's state.
 * A range of at most RELAY_PORT_BINDS ports is tried whole from a random start; a larger one
 * gets up to RELAY_PORT_PROBES random ports (CSPRNG), those already live relays of this
 * server skipped without a system call, and at most RELAY_PORT_BINDS bind() attempts. A
 * nearly full range may therefore answer 508 a little before its last port is taken. */
#define RELAY_PORT_BINDS 32
#define RELAY_PORT_PROBES 256
static bool pick_port(relay_worker *r, int fd, struct sockaddr_storage *a)
{
    unsigned span = (unsigned)(r->shared->port_hi - r->shared->port_lo) + 1;
    socklen_t alen = relay__addr_len(a->ss_family);
    unsigned start = relay__random_u32(r) % span, binds = 0;
    for (unsigned i = 0; i < RELAY_PORT_PROBES && binds < RELAY_PORT_BINDS; i++) {
        unsigned off = span <= RELAY_PORT_BINDS ? (start + i) % span : relay__random_u32(r) % span;
        if (span <= RELAY_PORT_BINDS && i >= span)
            break;
        relay__set_port(a, (uint16_t)(r->shared->port_lo + off));
        if (span > RELAY_PORT_BINDS &&
            peer_relays_live(r->shared->relays, (const struct sockaddr *)a, NULL))
            continue;
        binds++;
        if (bind(fd, (struct sockaddr *)a, alen) == 0)
            return true;
    }
    return false;
}

static int ops_relay_open(void *ctx, uint64_t alloc_id, int family, const turn_5tuple *t,
                          struct sockaddr_storage *relayed)
{
    relay_worker *r = ctx;
    struct sockaddr_storage a;
    if (!relay_bind_addr(r, t, family, &a))
        return TURN_RELAY_ERR_FAMILY; /* → 440 */
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn_rl(&r->rl_port, "relay", "cannot open a relay socket: %s", strerror(errno));
        return -1;
    }
    bool bound = pick_port(r, fd, &a);
    relay_sock *s = NULL;
    if (!bound)
        goto fail;
    s = util_xcalloc(1, sizeof *s);
    s->fd = fd;
    s->alloc_id = alloc_id;
    s->owner = r;
    s->port = relay__port_of(&a);
    if (ev_add(r->loop, fd, EV_READ, on_peer_readable, s) != 0)
        goto fail;
    rs_insert(r, s);
    s->slot = peer_relays_slot(r->shared->relays, (const struct sockaddr *)&a);
    peer_relays_mark(r->shared->relays, s->slot, s->port, true);
    if (!peer_relays_public(r->shared->relays, (const struct sockaddr *)&a, relayed))
        *relayed = a; /* reported as the external address when one maps it */
    return 0;
fail:
    log_warn_rl(&r->rl_port, "relay", "no relay port available in %u-%u", r->shared->port_lo,
                r->shared->port_hi);
    free(s);
    close(fd);
    return -1;
}

static void ops_relay_close(void *ctx, uint64_t alloc_id)
{
    relay_worker *r = ctx;
    relay_sock *s = rs_remove(r, alloc_id);
    if (!s) {
        relay__tcp_relay_close(r, alloc_id);
        return;
    }
    relay__tx_flush(r); /* nothing queued may go out on a closed (or reused) descriptor */
    peer_relays_mark(r->shared->relays, s->slot, s->port, false);
    ev_del(r->loop, s->fd);
    close(s->fd);
    free(s);
}

static void ops_send_peer(void *ctx, uint64_t alloc_id, const struct sockaddr *peer,
                          const uint8_t *buf, size_t len)
{
    relay_worker *r = ctx;
    relay_sock *s = rs_find(r, alloc_id);
    struct sockaddr_storage direct;
    if (!s)
        return;
    /* hairpin to a public address: straight to the relay socket (the NAT may not hairpin) */
    if (r->shared->n_external && peer_relays_live(r->shared->relays, peer, &direct))
        peer = (const struct sockaddr *)&direct;
    relay__tx_queue(r, s->fd, peer, buf, len);
}

static void ops_send_client(void *ctx, const turn_5tuple *t, const uint8_t *buf, size_t len)
{
    relay_worker *r = ctx;
    if (t->proto != TURN_PROTO_UDP) {
        relay__conn_send(r, t->conn_id, buf, len);
        return;
    }
    if (t->conn_id >= r->n_ls)
        return;
    const relay_lsock *l = &r->ls[t->conn_id];
    if (l->la->addr.ss_family == AF_INET && !l->la->wildcard) {
        relay__tx_queue(r, l->fd, (const struct sockaddr *)&t->client, buf, len);
        return;
    }
    /* an IPv6 socket (maybe dual-stack) names IPv4 addresses in their mapped form */
    struct sockaddr_storage to = t->client, src = t->server;
    if (l->la->addr.ss_family == AF_INET6) {
        relay__map_v6(&t->client, &to);
        relay__map_v6(&t->server, &src);
    }
    if (l->la->wildcard)
        relay__tx_queue_from(r, l->fd, (const struct sockaddr *)&to, &src, buf, len);
    else
        relay__tx_queue(r, l->fd, (const struct sockaddr *)&to, buf, len);
}

int relay__ops_auth(void *ctx, const uint8_t *username, size_t len, int64_t now, char password[128],
                    turn_auth_info *info)
{
    relay_worker *r = ctx;
    cred_lookup lk = keycache_lookup_cached(r->shared->keys); /* never the store */
    cred_info ci;
    int rc = cred_verify(&lk, (const char *)username, len, now, &ci, password);
    if (rc == CRED_E_EXPIRED)
        return TURN_AUTH_EXPIRED;
    if (rc == CRED_E_REVOKED)
        return TURN_AUTH_REVOKED;
    if (rc == CRED_E_UNKNOWN_KEY)
        return TURN_AUTH_UNKNOWN_KEY;
    if (rc == CRED_E_KEY_DELETED)
        return TURN_AUTH_KEY_DELETED;
    if (rc != CRED_OK)
        return TURN_AUTH_REJECT;
    memcpy(info->key_id, ci.key_id, sizeof info->key_id);
    memcpy(info->custom_id, ci.cid, sizeof info->custom_id);
    info->expires = ci.expires;
    relay__policy_fill(r->shared, info, now);
    return TURN_AUTH_OK;
}

/* --- timers, UDP listener, cross-thread events --------------------------------------- */

static void on_turn_timer(ev_loop *loop, ev_timer *t, void *ctx)
{
    relay_worker *r = ctx;
    (void)loop;
    (void)t;
    turn_server_tick(r->turn, util_now_ms());
    relay__arm_timer(r);
}

/* The turn server keeps wall-clock deadlines; the loop's timers are monotonic. */
void relay__arm_timer(relay_worker *r)
{
    if (r->n_tx)
        relay__tx_flush(r);
    if (r->n_dirty)
        relay__flush_conns(r);
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
    relay_lsock *l = ctx;
    relay_worker *r = l->owner;
    (void)loop;
    (void)events;
    turn_5tuple t = {
        .proto = TURN_PROTO_UDP, .conn_id = (uint64_t)(l - r->ls), .server = l->la->addr};
    relay__unmap(&t.server);
    for (int round = 0; round < RELAY_READ_BUDGET / RELAY_BATCH; round++) {
        int n = recv_batch(r, fd, round, l->la->wildcard);
        int64_t now = util_now_ms();
        for (int i = round * RELAY_BATCH; i < round * RELAY_BATCH + n; i++) {
            if (r->mm[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue;
            if (l->la->wildcard && !relay__local_addr(r, i, l->la, &t.server))
                continue; /* no local address: nothing to answer from or relay on */
            memcpy(&t.client, &r->from[i], sizeof t.client);
            relay__unmap(&t.client);
            turn_server_input(r->turn, &t, r->rx[i] + TURN_PEER_HEADROOM, r->mm[i].msg_len, now);
        }
        if (n < RELAY_BATCH)
            break;
    }
    relay__arm_timer(r);
}

/* A lifecycle event on this worker's turn_server: how many allocations it ended. */
static size_t run_event(relay_worker *r, relay_event *e)
{
    int64_t now = util_now_ms();
    switch (e->kind) {
    case RELAY_EV_KEY_DELETED: return turn_server_key_deleted(r->turn, e->text, now);
    case RELAY_EV_SECRET_DELETED: return turn_server_secret_deleted(r->turn, e->text, now);
    case RELAY_EV_REVOKED_HASH: return turn_server_credential_revoked_hash(r->turn, e->text, now);
    case RELAY_EV_BUDGET: {
        char *cid = strchr(e->text, '/'); /* "KEYUID/CID" or "KEYUID" */
        if (cid)
            *cid++ = '\0';
        return turn_server_budget_tripped(r->turn, e->text, cid, now);
    }
    default:
        return turn_server_credential_revoked(r->turn, (const uint8_t *)e->text, strlen(e->text),
                                              now);
    }
}

static void on_wakeup(ev_loop *loop, void *ctx)
{
    relay_worker *r = ctx;
    (void)loop;
    pthread_mutex_lock(&r->q_mu);
    relay_event *e = r->q_head;
    r->q_head = r->q_tail = NULL;
    pthread_mutex_unlock(&r->q_mu);
    while (e) {
        relay_event *next = e->next;
        size_t n;
        if (e->kind == RELAY_EV_CONN) {
            relay__conn_adopt(r, e->conn);
            free(e);
            e = next;
            continue;
        }
        n = run_event(r, e);
        if (n)
            log_info_rl(&r->rl_event, "relay", "%s: ended %zu allocation(s)",
                        e->kind == RELAY_EV_KEY_DELETED ? "key deleted"
                        : e->kind == RELAY_EV_BUDGET    ? "budget exceeded"
                                                        : "credential revoked",
                        n);
        relay__publish(r);
        relay__track_done(r->shared, e->track, n);
        free(e);
        e = next;
    }
    relay__arm_timer(r);
}

static void enqueue(relay_worker *r, int kind, const char *text, relay_track *track)
{
    size_t n = strlen(text);
    relay_event *e = util_xcalloc(1, sizeof *e + n + 1);
    e->kind = kind;
    e->track = track;
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

static void broadcast(relay *r, int kind, const char *text)
{
    if (!r || !r->n_workers)
        return;
    relay_track *t = relay__track_new(r->n_workers);
    for (size_t i = 0; i < r->n_workers; i++)
        enqueue(r->w[i], kind, text, t);
}

void relay_key_deleted(relay *r, const char *key_uid)
{
    broadcast(r, RELAY_EV_KEY_DELETED, key_uid);
}

void relay_credential_revoked(relay *r, const char *username)
{
    broadcast(r, RELAY_EV_REVOKED, username);
}

void relay_credential_revoked_hash(relay *r, const char *username_sha256_hex)
{
    broadcast(r, RELAY_EV_REVOKED_HASH, username_sha256_hex);
}

void relay_secret_deleted(relay *r, const char *secret_id)
{
    broadcast(r, RELAY_EV_SECRET_DELETED, secret_id);
}

void relay_budget_tripped(relay *r, const char *key_uid, const char *custom_id)
{
    char text[STORE_ID_LEN + 1 + 65];
    size_t cl = custom_id ? strlen(custom_id) : 0;
    if (!key_uid || strlen(key_uid) != STORE_ID_LEN || !util_is_lower_hex(key_uid, STORE_ID_LEN) ||
        cl >= 65 || (cl && !cred_cid_valid(custom_id, cl))) {
        log_error("relay", "budget trip ignored: invalid key '%.40s' or customIdentifier '%.70s'",
                  key_uid ? key_uid : "", custom_id ? custom_id : "");
        return;
    }
    snprintf(text, sizeof text, cl ? "%s/%s" : "%s", key_uid, custom_id);
    broadcast(r, RELAY_EV_BUDGET, text);
}

/* --- start / stop -------------------------------------------------------------------- */

static void *loop_main(void *arg)
{
    relay_worker *w = arg;
    ev_run(w->loop);
    return NULL;
}

static void worker_free(relay_worker *w)
{
    if (!w)
        return;
    if (w->running) {
        ev_stop(w->loop);
        pthread_join(w->thread, NULL);
    }
    relay__conns_close_all(w);
    if (w->turn) {
        turn_stats st;
        turn_server_stats(w->turn, &st);
        if (st.challenges_suppressed)
            log_info("relay", "%llu 401/438 answer(s) suppressed by --challenge-rate",
                     (unsigned long long)st.challenges_suppressed);
        turn_server_free(w->turn); /* closes every relay socket through ops */
    }
    relay__usage_dispose(w);
    relay__guard_dispose(w);
    for (size_t i = 0; i < w->rs_nb; i++)
        for (relay_sock *s = w->rs[i], *next; s; s = next) {
            next = s->next;
            close(s->fd);
            free(s);
        }
    free(w->rs);
    free(w->dirty);
    relay__close_listeners(w);
    relay__tcp_dispose(w);
    for (relay_event *e = w->q_head, *next; e; e = next) {
        next = e->next;
        if (e->kind == RELAY_EV_CONN) {
            relay__conn_discard(w, e->conn);
            free(e);
            continue;
        }
        relay__track_done(w->shared, e->track, 0);
        free(e);
    }
    relay__obs_dispose(w);
    if (w->loop)
        ev_loop_free(w->loop);
    pthread_mutex_destroy(&w->q_mu);
    free(w);
}

/* Creates worker i: listeners (the shared addresses get their real ports from worker 0),
 * loop, turn_server. The thread is started later, once every worker exists. */
static relay_worker *worker_new(relay *r, size_t index, const relay_config *cfg, char **err)
{
    relay_worker *w = util_xcalloc(1, sizeof *w);
    w->shared = r;
    w->index = index;
    pthread_mutex_init(&w->q_mu, NULL);
    w->rs_nb = 64;
    w->rs = util_xcalloc(w->rs_nb, sizeof *w->rs);
    relay__guard_init(w, r->challenge_rate);
    if (!(w->loop = ev_loop_new())) {
        *err = util_xasprintf("cannot create a relay event loop: %s", strerror(errno));
        goto fail;
    }
    relay__conns_init(w);
    if (relay__open_listeners(w, r->n_workers == 0, err) != 0)
        goto fail;
    turn_config tc = {.realm = cfg->realm ? cfg->realm : "turnkey",
                      .software = "turnkey",
                      .user_quota = r->user_quota,
                      .max_allocations = r->max_allocations,
                      .nonce_lifetime_s = r->nonce_lifetime_s,
                      .peers = &r->peers,
                      .cid_tag = (uint8_t)r->n_workers}; /* this worker's index */
    memcpy(tc.nonce_secret, r->nonce_secret, sizeof tc.nonce_secret);
    turn_ops ops = {.send_client = ops_send_client,
                    .relay_open = ops_relay_open,
                    .relay_close = ops_relay_close,
                    .send_peer = ops_send_peer,
                    .auth = relay__ops_auth,
                    .auth_candidates = relay__auth_candidates,
                    .quota_acquire = relay__quota_acquire,
                    .quota_release = relay__quota_release,
                    .challenge_ok = r->challenge_rate ? relay__challenge_ok : NULL,
                    .alloc_ended = relay__ops_alloc_ended,
                    .auth_failed = relay__ops_auth_failed,
                    .ctx = w,
                    .tcp_relay_open = relay__tcp_relay_open,
                    .peer_connect = relay__tcp_peer_connect,
                    .peer_close = relay__tcp_peer_close,
                    .data_bind = relay__tcp_data_bind};
    if (!(w->turn = turn_server_new(&tc, &ops))) {
        *err = util_xasprintf("invalid TURN configuration (realm '%s')", tc.realm);
        goto fail;
    }
    ev_timer_init(&w->timer, on_turn_timer, w);
    relay__obs_init(w);
    relay__usage_init(w);
    ev_set_wakeup_cb(w->loop, on_wakeup, w);
    for (size_t i = 0; i < w->n_ls; i++) {
        relay_lsock *l = &w->ls[i];
        int rc = l->kind == RELAY_UDP   ? ev_add(w->loop, l->fd, EV_READ, on_udp_readable, l)
                 : l->kind == RELAY_TCP ? ev_add(w->loop, l->fd, EV_READ, relay__on_accept, w)
                 : l->kind == RELAY_MUX ? ev_add(w->loop, l->fd, EV_READ, relay__on_accept_mux, w)
                                        : ev_add(w->loop, l->fd, EV_READ, relay__on_accept_tls, w);
        if (rc != 0) {
            *err = util_xasprintf("cannot register the TURN listeners");
            goto fail;
        }
    }
    return w;
fail:
    worker_free(w);
    return NULL;
}

/* --relay-ip: one address, or two of different families separated by a comma. */
static int parse_relay_ips(relay *r, const char *list, char **err)
{
    char *dup = util_xstrdup(list ? list : ""), *save = NULL;
    int rc = 0;
    for (char *ip = strtok_r(dup, ",", &save); ip && rc == 0; ip = strtok_r(NULL, ",", &save)) {
        char tmp[160];
        unsigned len;
        struct sockaddr_storage a;
        snprintf(tmp, sizeof tmp, strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
        bool ok = util_parse_addr(tmp, &a, &len) == 0 && strcmp(ip, "0.0.0.0") && strcmp(ip, "::");
        int f = a.ss_family == AF_INET6;
        if (!ok || r->has_relay_ip[f]) {
            *err = util_xasprintf("invalid --relay-ip '%s' (one specific address, or one IPv4 and "
                                  "one IPv6 address separated by a comma; leave it unset to relay "
                                  "on the address each client reached)",
                                  list);
            rc = -1;
            break;
        }
        r->relay_addr[f] = a;
        r->has_relay_ip[f] = true;
    }
    free(dup);
    return rc;
}

/* The first specific listener address of each family (see relay.fallback_addr). */
static void set_fallbacks(relay *r)
{
    for (size_t i = 0; i < r->n_lst; i++) {
        struct sockaddr_storage a = r->lst[i].addr;
        relay__unmap(&a);
        int f = a.ss_family == AF_INET6;
        if (r->lst[i].wildcard || r->has_fallback[f])
            continue;
        relay__set_port(&a, 0);
        r->fallback_addr[f] = a;
        r->has_fallback[f] = true;
    }
}

static int setup_addresses(relay *r, const relay_config *cfg, char **err)
{
    if (relay__setup_listeners(r, cfg, err) != 0)
        return -1;
    r->tls = cfg->tls;
    r->mux_tls = cfg->mux_tls;
    r->http_adopt = cfg->http_adopt;
    r->http_ctx = cfg->http_ctx;
    set_fallbacks(r);
    return parse_relay_ips(r, cfg->relay_ip, err);
}

/* Parses and adds one operator CIDR list (--allow-peer, --deny-peer). */
static int add_ranges(peer_policy *p, const char *const *list, size_t n,
                      int (*add)(peer_policy *, const peer_cidr *), const char *opt, char **err)
{
    for (size_t i = 0; i < n; i++) {
        peer_cidr c;
        if (peer_cidr_parse(list[i], &c) != 0) {
            *err = util_xasprintf("invalid --%s '%s' (want a CIDR such as 192.0.2.0/24)", opt,
                                  list[i]);
            return -1;
        }
        add(p, &c);
    }
    return 0;
}

static int setup_policy(relay *r, const relay_config *cfg, char **err)
{
    if (add_ranges(&r->peers, cfg->allow_peer, cfg->n_allow_peer, peer_policy_add_allow,
                   "allow-peer", err) != 0 ||
        add_ranges(&r->peers, cfg->deny_peer, cfg->n_deny_peer, peer_policy_add_deny, "deny-peer",
                   err) != 0)
        return -1;
    return relay__setup_own_addresses(r, cfg, err);
}

relay *relay_start(const relay_config *cfg, char **err)
{
    *err = NULL;
    relay *r = util_xcalloc(1, sizeof *r);
    r->keys = cfg->keys;
    r->port_lo = cfg->port_lo ? cfg->port_lo : 49152;
    r->port_hi = cfg->port_hi ? cfg->port_hi : 65535;
    peer_policy_init(&r->peers);
    r->relays = peer_relays_new();
    relay__quota_init(r, cfg->user_quota, cfg->max_allocations);
    relay__limits_init(r, cfg->max_conns, cfg->max_conns_per_ip);
    r->handshake_ms =
        cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : RELAY_DEFAULT_HANDSHAKE_MS;
    r->nonce_lifetime_s = cfg->nonce_lifetime_s;
    r->challenge_rate = cfg->challenge_rate;
    unsigned span = (unsigned)(r->port_hi - r->port_lo) + 1;
    if (r->max_allocations > span)
        log_warn("relay",
                 "--max-allocations %u exceeds the %u ports of --relay-ports %u-%u: "
                 "Allocate gets 508 once the ports of a relay address run out",
                 r->max_allocations, span, r->port_lo, r->port_hi);
    log_limiter_init(&r->auth_log);
    r->usage = cfg->usage;
    r->usage_ring = cfg->usage_ring;
    r->usage_last = cfg->usage_last;
    r->usage_ctx = cfg->usage_ctx;
    util_random(r->nonce_secret, sizeof r->nonce_secret);
    size_t n = cfg->threads;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (size_t)cpus : 1;
    }
    if (n > 64)
        n = 64;
    if (setup_addresses(r, cfg, err) != 0 ||
        relay__secret_setup(r, cfg->shared_secret_keys, err) != 0)
        goto fail;
    r->w = util_xcalloc(n, sizeof *r->w);
    for (size_t i = 0; i < n; i++) {
        if (!(r->w[i] = worker_new(r, i, cfg, err)))
            goto fail;
        r->n_workers++;
        if (i == 0 && setup_policy(r, cfg, err) != 0) /* worker 0 fixed the real ports */
            goto fail;
    }
    for (size_t i = 0; i < r->n_workers; i++) {
        if (pthread_create(&r->w[i]->thread, NULL, loop_main, r->w[i]) != 0) {
            *err = util_xasprintf("cannot start a relay thread");
            goto fail;
        }
        r->w[i]->running = true;
    }
    return r;
fail:
    relay_stop(r);
    return NULL;
}

uint16_t relay_listener_port(const relay *r, size_t i)
{
    return i < r->n_lst ? relay__port_of(&r->lst[i].addr) : 0;
}

static uint16_t first_port(const relay *r, unsigned kinds)
{
    for (size_t i = 0; i < r->n_lst; i++)
        if (r->lst[i].kinds & kinds)
            return relay__port_of(&r->lst[i].addr);
    return 0;
}

uint16_t relay_port(const relay *r)
{
    return first_port(r, RELAY_UDP | RELAY_TCP);
}

uint16_t relay_tls_port(const relay *r)
{
    return first_port(r, RELAY_TLS);
}

size_t relay_threads(const relay *r)
{
    return r->n_workers;
}

void relay_stop(relay *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_workers; i++) /* stop every loop before freeing any */
        if (r->w[i]->running) {
            ev_stop(r->w[i]->loop);
            pthread_join(r->w[i]->thread, NULL);
            r->w[i]->running = false;
        }
    for (size_t i = 0; i < r->n_workers; i++)
        worker_free(r->w[i]);
    free(r->w);
    peer_policy_dispose(&r->peers);
    peer_relays_free(r->relays);
    free(r->lst);
    relay__quota_dispose(r);
    relay__limits_dispose(r);
    free(r);
}
