/* turn/server.c: construction, input dispatch, Binding, and the long-term credential
 * mechanism (RFC 8489 §9.2) that guards every TURN request.
 *
 * Authentication order (one decision per request, never cached):
 *   no MESSAGE-INTEGRITY(-SHA256), under 28 bytes (no attribute: an Allocate needs
 *     REQUESTED-TRANSPORT)                  → 400 (40 bytes: no amplification)
 *   no MESSAGE-INTEGRITY(-SHA256)            → 401 + REALM + NONCE (ops.challenge_ok may
 *                                              suppress it and every 438: rate limit)
 *   USERNAME, REALM or NONCE missing         → 400 (no REALM/NONCE, no MI)
 *   REALM not ours                           → 401 + REALM + NONCE
 *   NONCE not ours, expired or other 5-tuple → 438 + REALM + fresh NONCE
 *   PASSWORD-ALGORITHM other than MD5/SHA-256→ 400
 *   ops->auth not OK, or credential expired  → 401 + REALM + NONCE
 *   integrity mismatch                       → 401 + REALM + NONCE
 * The nonce is checked before ops->auth (RFC 8489 checks it after the integrity) so a replayed
 * or foreign nonce never costs a credential lookup; a client only sees a 438 sooner.
 * Key: MD5(username ":" realm ":" password), or SHA-256 of the same when the request carries
 * PASSWORD-ALGORITHM = SHA-256. When the request has MESSAGE-INTEGRITY-SHA256 that attribute
 * is checked, otherwise MESSAGE-INTEGRITY. USERHASH (username anonymity) is not supported: a
 * request without USERNAME is a 400. The nonce advertises no security features, so clients
 * are never required to send PASSWORD-ALGORITHM(S). */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT(field, v)                                                                          \
    do {                                                                                           \
        if (!(field))                                                                              \
            (field) = (v);                                                                         \
    } while (0)

static bool config_ok(const turn_config *cfg, const turn_ops *ops)
{
    if (!cfg || !ops || !cfg->realm || !cfg->peers)
        return false;
    size_t rl = strlen(cfg->realm);
    if (rl == 0 || rl > 763 || (cfg->software && strlen(cfg->software) > 763))
        return false;
    return ops->send_client && ops->relay_open && ops->relay_close && ops->send_peer && ops->auth &&
           !ops->quota_acquire == !ops->quota_release &&
           !ops->tcp_relay_open == !ops->peer_connect && !ops->peer_connect == !ops->peer_close &&
           !ops->peer_close == !ops->data_bind;
}

turn_server *turn_server_new(const turn_config *cfg, const turn_ops *ops)
{
    if (!config_ok(cfg, ops))
        return NULL;
    turn_server *s = util_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->ops = *ops;
    DEFAULT(s->cfg.nonce_lifetime_s, 600);
    DEFAULT(s->cfg.alloc_default_s, 600);
    DEFAULT(s->cfg.alloc_max_s, 3600);
    DEFAULT(s->cfg.permission_s, 300);
    DEFAULT(s->cfg.channel_s, 600);
    DEFAULT(s->cfg.user_quota, 10);
    DEFAULT(s->cfg.max_allocations, 100000);
    DEFAULT(s->cfg.max_tcp_per_alloc, 64);
    DEFAULT(s->cfg.max_tcp_conns, 4096);
    s->realm = util_xstrdup(cfg->realm);
    s->realm_len = strlen(s->realm);
    s->cfg.realm = s->realm;
    if (cfg->software) {
        s->software = util_xstrdup(cfg->software);
        s->software_len = strlen(s->software);
        s->cfg.software = s->software;
    }
    /* The hash-table key is derived from the nonce secret so runs are reproducible. */
    static const char label[] = "turnkey turn hash key";
    uint8_t mac[32];
    const uint8_t *msg = (const uint8_t *)label;
    size_t msg_len = sizeof label - 1;
    if (util_hmac(UTIL_MD_SHA256, cfg->nonce_secret, sizeof cfg->nonce_secret, &msg, &msg_len, 1,
                  mac) != 0)
        util_random(mac, sizeof mac);
    memcpy(s->hash_key, mac, sizeof s->hash_key);
    memcpy(s->sip_k, mac + 16, sizeof s->sip_k);
    timer_heap_init(&s->timers);
    turn__hmap_init(&s->by_tuple);
    turn__hmap_init(&s->by_id);
    turn__hmap_init(&s->users);
    turn__hmap_init(&s->users_by_sha);
    turn__hmap_init(&s->keys);
    turn__hmap_init(&s->perms);
    turn__hmap_init(&s->chans_by_num);
    turn__hmap_init(&s->chans_by_peer);
    s->next_id = 1;
    s->scratch = util_xmalloc(TURN__SCRATCH_CAP);
    turn__tcp_init(s);
    return s;
}

void turn_server_free(turn_server *s)
{
    if (!s)
        return;
    while (s->allocs)
        turn__alloc_end(s, s->allocs, TURN_END_SHUTDOWN);
    turn__hmap_dispose(&s->by_tuple);
    turn__hmap_dispose(&s->by_id);
    turn__hmap_dispose(&s->users);
    turn__hmap_dispose(&s->users_by_sha);
    turn__hmap_dispose(&s->keys);
    turn__hmap_dispose(&s->perms);
    turn__hmap_dispose(&s->chans_by_num);
    turn__hmap_dispose(&s->chans_by_peer);
    turn__tcp_dispose(s);
    timer_heap_dispose(&s->timers);
    free(s->scratch);
    free(s->realm);
    free(s->software);
    free(s);
}

bool turn__family_ok(const turn__alloc *a, const struct sockaddr *peer)
{
    if (peer->sa_family == a->family)
        return (a->open & TURN__OPEN_FIRST) != 0;
    return peer->sa_family == AF_INET6 && (a->open & TURN__OPEN_SECOND);
}

uint64_t turn__relay_id(const turn__alloc *a, int family)
{
    return family == a->family ? a->id : a->id | TURN_RELAY_ID_DUAL;
}

static void handle_binding(turn__req *r)
{
    if (r->m->n_unknown) {
        turn__reply_error(r, 420, 0);
        return;
    }
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_MAPPED_ADDRESS,
                                 (const struct sockaddr *)&r->t->client);
    turn__reply_send(r, &b);
}

/* The long-term key for this request's password algorithm. */
static bool derive_key(turn__req *r, const char *password)
{
    uint16_t alg = STUN_PASSWORD_ALG_MD5;
    const uint8_t *params, *realm = (const uint8_t *)r->s->realm;
    size_t plen, rlen = r->s->realm_len, pwlen = strlen(password);
    if (stun_has_attr(r->m, STUN_ATTR_PASSWORD_ALGORITHM))
        stun_get_password_algorithm(r->m, &alg, &params, &plen);
    if (alg == STUN_PASSWORD_ALG_SHA256) {
        r->keylen = 32;
        return stun_long_term_key_sha256(r->user, r->user_len, realm, rlen,
                                         (const uint8_t *)password, pwlen, r->key) == STUN_OK;
    }
    r->keylen = 16;
    return stun_long_term_key(r->user, r->user_len, realm, rlen, (const uint8_t *)password, pwlen,
                              r->key) == STUN_OK;
}

/* Password algorithm acceptable: absent, MD5 or SHA-256 (well-formed). */
static bool password_alg_ok(const stun_msg *m)
{
    if (!stun_has_attr(m, STUN_ATTR_PASSWORD_ALGORITHM))
        return true;
    uint16_t alg;
    const uint8_t *params;
    size_t plen;
    if (stun_get_password_algorithm(m, &alg, &params, &plen) != STUN_OK)
        return false;
    return alg == STUN_PASSWORD_ALG_MD5 || alg == STUN_PASSWORD_ALG_SHA256;
}

static int auth_fail_reason(int rc)
{
    switch (rc) {
    case TURN_AUTH_EXPIRED: return TURN_AF_EXPIRED;
    case TURN_AUTH_REVOKED: return TURN_AF_REVOKED;
    case TURN_AUTH_UNKNOWN_KEY: return TURN_AF_UNKNOWN_KEY;
    case TURN_AUTH_KEY_DELETED: return TURN_AF_KEY_DELETED;
    default: return TURN_AF_BAD_CREDENTIAL;
    }
}

/* ops->auth_candidates: the first candidate whose MESSAGE-INTEGRITY matches authenticates
 * r (at most TURN_AUTH_CANDIDATES_MAX key derivations and integrity checks). */
static bool check_candidates(turn__req *r)
{
    turn_server *s = r->s;
    turn_auth_candidate c[TURN_AUTH_CANDIDATES_MAX];
    int64_t now_s = r->now_ms / 1000;
    bool ok = false;
    int n = s->ops.auth_candidates(s->ops.ctx, r->user, r->user_len, now_s, c,
                                   TURN_AUTH_CANDIDATES_MAX);
    if (n <= 0) {
        turn__auth_failed(r, n == 0 ? TURN_AF_BAD_CREDENTIAL : auth_fail_reason(n));
        return false;
    }
    for (int i = 0; i < n && i < TURN_AUTH_CANDIDATES_MAX && !ok; i++) {
        turn_auth_info *in = &c[i].info;
        c[i].password[sizeof c[i].password - 1] = '\0';
        in->key_id[sizeof in->key_id - 1] = '\0';
        in->custom_id[sizeof in->custom_id - 1] = '\0';
        in->secret_id[sizeof in->secret_id - 1] = '\0';
        if ((in->expires > 0 && in->expires <= now_s) || !derive_key(r, c[i].password))
            continue;
        int rc = r->m->mi256_off ? stun_check_integrity_sha256(r->m, r->key, r->keylen)
                                 : stun_check_integrity(r->m, r->key, r->keylen);
        if (rc == STUN_OK) {
            r->info = *in;
            ok = true;
        }
    }
    if (!ok)
        turn__auth_failed(r, TURN_AF_BAD_INTEGRITY);
    explicit_bzero(c, sizeof c);
    return ok;
}

/* Verifies the credential and the integrity; on failure sends the error and returns false. */
static bool authenticate(turn__req *r)
{
    const stun_msg *m = r->m;
    turn_server *s = r->s;
    const uint8_t *realm, *nonce;
    size_t rlen, nlen;
    char password[128] = {0};
    int code = 401, flags = TURN__WITH_NONCE;
    bool ok = false;
    if (!m->mi_off && !m->mi256_off) {
        if (m->len < TURN__CHALLENGE_MIN) { /* bare header: a small 400, no challenge */
            turn__reply_error(r, 400, 0);
            return false;
        }
        goto fail;
    }
    if (stun_get_username(m, &r->user, &r->user_len) != STUN_OK ||
        stun_get_realm(m, &realm, &rlen) != STUN_OK ||
        stun_get_nonce(m, &nonce, &nlen) != STUN_OK) {
        code = 400;
        flags = 0;
        goto fail;
    }
    if (rlen != s->realm_len || memcmp(realm, s->realm, rlen) != 0) {
        turn__auth_failed(r, TURN_AF_WRONG_REALM);
        goto fail;
    }
    if (!turn__nonce_check(s, r->t, r->now_ms, nonce, nlen)) {
        code = 438;
        turn__auth_failed(r, TURN_AF_STALE_NONCE);
        goto fail;
    }
    if (!password_alg_ok(m)) {
        code = 400;
        flags = 0;
        goto fail;
    }
    memset(&r->info, 0, sizeof r->info);
    if (s->ops.auth_candidates) {
        if (!check_candidates(r))
            goto fail;
        goto authed;
    }
    int64_t now_s = r->now_ms / 1000;
    int arc = s->ops.auth(s->ops.ctx, r->user, r->user_len, now_s, password, &r->info);
    if (arc != TURN_AUTH_OK) {
        turn__auth_failed(r, auth_fail_reason(arc));
        goto fail;
    }
    password[sizeof password - 1] = '\0';
    r->info.key_id[sizeof r->info.key_id - 1] = '\0';
    r->info.custom_id[sizeof r->info.custom_id - 1] = '\0';
    if (r->info.expires > 0 && r->info.expires <= now_s) {
        turn__auth_failed(r, TURN_AF_EXPIRED);
        goto fail; /* strict expiry even if the lookup let it through */
    }
    if (!derive_key(r, password))
        goto fail;
    int rc = m->mi256_off ? stun_check_integrity_sha256(m, r->key, r->keylen)
                          : stun_check_integrity(m, r->key, r->keylen);
    if (rc != STUN_OK) {
        turn__auth_failed(r, TURN_AF_BAD_INTEGRITY);
        goto fail;
    }
authed:
    r->authed = true;
    r->mi256 = m->mi256_off != 0;
    ok = true;
    goto out;
fail:
    turn__reply_error(r, code, flags);
out:
    explicit_bzero(password, sizeof password);
    return ok;
}

static void dispatch_authed(turn__req *r)
{
    turn_server *s = r->s;
    if (r->m->method == STUN_METHOD_ALLOCATE) {
        turn__handle_allocate(r);
        return;
    }
    if (r->m->method == STUN_METHOD_CONNECTION_BIND) { /* on a new connection: no allocation */
        turn__handle_connection_bind(r);
        return;
    }
    turn__alloc *a = turn__alloc_find_tuple(s, r->t);
    if (!a) {
        turn__reply_error(r, 437, 0);
        return;
    }
    if (!turn__same_user(a, r->user, r->user_len)) {
        turn__reply_error(r, 441, 0);
        return;
    }
    a->info = r->info;
    memcpy(a->key, r->key, r->keylen);
    a->keylen = r->keylen;
    switch (r->m->method) {
    case STUN_METHOD_REFRESH: turn__handle_refresh(r, a); break;
    case STUN_METHOD_CREATE_PERMISSION: turn__handle_create_permission(r, a); break;
    case STUN_METHOD_CONNECT: turn__handle_connect(r, a); break;
    default:
        if (a->tcp)
            turn__reply_error(r, 400, 0); /* no channels on a TCP allocation (RFC 6062) */
        else
            turn__handle_channel_bind(r, a);
        break;
    }
}

static void handle_request(turn_server *s, const turn_5tuple *t, const stun_msg *m, int64_t now_ms)
{
    turn__req r = {.s = s, .t = t, .m = m, .now_ms = now_ms};
    switch (m->method) {
    case STUN_METHOD_BINDING: handle_binding(&r); return;
    case STUN_METHOD_ALLOCATE:
    case STUN_METHOD_REFRESH:
    case STUN_METHOD_CREATE_PERMISSION:
    case STUN_METHOD_CHANNEL_BIND:
    case STUN_METHOD_CONNECT:
    case STUN_METHOD_CONNECTION_BIND: break;
    default: turn__reply_error(&r, 400, 0); return;
    }
    if (!authenticate(&r))
        goto out;
    if (m->n_unknown) {
        turn__reply_error(&r, 420, 0);
        goto out;
    }
    dispatch_authed(&r);
out:
    explicit_bzero(r.key, sizeof r.key);
}

void turn_server_input(turn_server *s, const turn_5tuple *t, const uint8_t *buf, size_t len,
                       int64_t now_ms)
{
    if (!s || !t || !buf || len == 0)
        return;
    s->now_ms = now_ms;
    if (stun_is_channeldata(buf, len)) {
        turn__handle_channeldata(s, t, buf, len);
        return;
    }
    stun_msg m;
    if (stun_parse(buf, len, &m) != STUN_OK)
        return; /* garbage gets no answer */
    if (m.fp_off && stun_check_fingerprint(&m) != STUN_OK)
        return;
    if (m.cls == STUN_CLASS_INDICATION && m.method == STUN_METHOD_SEND)
        turn__handle_send(s, t, &m);
    else if (m.cls == STUN_CLASS_REQUEST)
        handle_request(s, t, &m, now_ms);
    /* other indications, responses and errors from clients are ignored */
}
