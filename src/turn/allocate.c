/* turn/allocate.c: Allocate (RFC 8656 §7.2) and Refresh (§8).
 *
 * Allocate checks, in order, after authentication:
 *   5-tuple already allocated: same transaction id → the stored success response again,
 *     otherwise 437;
 *   REQUESTED-TRANSPORT missing/malformed → 400, not UDP → 442;
 *   DONT-FRAGMENT: accepted and ignored (the relay does not set DF);
 *   RESERVATION-TOKEN: with EVEN-PORT or REQUESTED-ADDRESS-FAMILY → 400, otherwise 508 (this
 *     server never reserves a relayed address, so no token is valid);
 *   REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY → 400; REQUESTED-ADDRESS-FAMILY
 *     malformed → 400, neither IPv4 nor IPv6 → 440; ADDITIONAL-ADDRESS-FAMILY not IPv6 → 400;
 *   EVEN-PORT with the R bit → 508 (no reservations); without it: accepted, but the port's
 *     parity is whatever relay_open chose (not guaranteed even);
 *   an end_allocations budget trip covers the credential (info.budget_blocked) → 486
 *     "Budget Exceeded";
 *   the user's allocations >= info.alloc_quota (0: cfg.user_quota) → 486; allocations >=
 *     max_allocations → 508 (or as quota_acquire says, given the same limit);
 *   quota_acquire says the server is draining → 508 "Server Draining";
 *   relay_open: TURN_RELAY_ERR_FAMILY → 440, any other failure → 508.
 * ADDITIONAL-ADDRESS-FAMILY (dual allocation) opens a second, IPv6 relay under the relay id
 * id | TURN_RELAY_ID_DUAL; when it cannot be opened the allocation stands with IPv4 only and
 * an ADDRESS-ERROR-CODE (440 / 508) for IPv6 in the success response (§7.2). Refresh with
 * LIFETIME 0 and REQUESTED-ADDRESS-FAMILY closes one relay of a dual allocation.
 *
 * Lifetimes (§7.2, §8): min(requested, max); below the default → the default; the result is
 * finally capped at max (so a configured max below the default wins), and the allocation
 * never outlives the credential (auth info expires). The allocation keeps the bandwidth cap
 * of the credential that created it (info.bandwidth_bps, data.c). */
#include "internal.h"

#include "turnkey/util.h"

#include <stdlib.h>
#include <string.h>

uint32_t turn__lifetime(const turn_server *s, bool has, uint32_t requested)
{
    uint32_t v = s->cfg.alloc_default_s;
    if (has) {
        uint32_t want = requested < s->cfg.alloc_max_s ? requested : s->cfg.alloc_max_s;
        if (want > v)
            v = want;
    }
    return v < s->cfg.alloc_max_s ? v : s->cfg.alloc_max_s;
}

/* Deadline of a lifetime starting now, capped at the credential's expiry. */
static int64_t deadline(const turn__req *r, uint32_t lifetime_s)
{
    int64_t d = r->now_ms + (int64_t)lifetime_s * 1000;
    int64_t exp = r->info.expires;
    if (exp > 0 && exp < INT64_MAX / 1000 && exp * 1000 < d)
        d = exp * 1000;
    return d;
}

/* Seconds left until d, rounded up (a live allocation never reports 0). */
static uint32_t seconds_left(int64_t d, int64_t now_ms)
{
    int64_t ms = d - now_ms;
    return ms <= 0 ? 0 : (uint32_t)((ms + 999) / 1000);
}

static bool lifetime_attr(const stun_msg *m, uint32_t *v, bool *bad)
{
    *bad = false;
    if (!stun_has_attr(m, STUN_ATTR_LIFETIME))
        return false;
    if (stun_get_lifetime(m, v) != STUN_OK) {
        *bad = true;
        return false;
    }
    return true;
}

/* The attribute checks before any resource is taken. Returns 0, or the error code; *family
 * gets the relay family, *dual whether an IPv6 second family was asked for. */
static int allocate_checks(const stun_msg *m, int *family, bool *dual)
{
    uint8_t proto, fam;
    bool has_raf = stun_has_attr(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    bool has_aaf = stun_has_attr(m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    bool has_even = stun_has_attr(m, STUN_ATTR_EVEN_PORT);
    *family = AF_INET;
    *dual = false;
    if (stun_get_requested_transport(m, &proto) != STUN_OK)
        return 400;
    if (proto != STUN_TRANSPORT_UDP)
        return 442;
    if (stun_has_attr(m, STUN_ATTR_RESERVATION_TOKEN))
        return (has_even || has_raf) ? 400 : 508;
    if (has_raf && has_aaf)
        return 400;
    if (has_raf) {
        if (stun_get_address_family(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &fam) != STUN_OK)
            return 400;
        if (fam != STUN_FAMILY_IPV4 && fam != STUN_FAMILY_IPV6)
            return 440;
        *family = fam == STUN_FAMILY_IPV6 ? AF_INET6 : AF_INET;
    }
    if (has_aaf) {
        if (stun_get_address_family(m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, &fam) != STUN_OK ||
            fam != STUN_FAMILY_IPV6)
            return 400;
        *dual = true;
    }
    if (has_even) {
        bool reserve;
        if (stun_get_even_port(m, &reserve) != STUN_OK)
            return 400;
        if (reserve)
            return 508;
    }
    uint32_t lt;
    bool bad;
    lifetime_attr(m, &lt, &bad);
    return bad ? 400 : 0;
}

/* ADDRESS-ERROR-CODE (RFC 8656 §18.13): family, reserved, class, number, reason. */
static void add_address_error(stun_builder *b, uint8_t family, int code)
{
    const char *reason = stun_error_reason(code);
    size_t rlen = strlen(reason);
    uint8_t *p = stun_builder_reserve(b, STUN_ATTR_ADDRESS_ERROR_CODE, 4 + rlen);
    if (!p)
        return;
    p[0] = family;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, rlen);
}

/* dual_code: 0 = no second family asked; 1 = the IPv6 relay opened (a second
 * XOR-RELAYED-ADDRESS); else the ADDRESS-ERROR-CODE for IPv6 (440 or 508). */
static void allocate_success(turn__req *r, turn__alloc *a, uint32_t lifetime_s, int dual_code)
{
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_RELAYED_ADDRESS,
                                 (const struct sockaddr *)&a->relayed);
    if (dual_code == 1)
        stun_builder_add_xor_address(&b, STUN_ATTR_XOR_RELAYED_ADDRESS,
                                     (const struct sockaddr *)&a->relayed2);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, lifetime_s);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_MAPPED_ADDRESS,
                                 (const struct sockaddr *)&r->t->client);
    if (dual_code > 1)
        add_address_error(&b, STUN_FAMILY_IPV6, dual_code);
    int n = turn__reply_send(r, &b);
    if (n > 0) {
        a->resp = util_xmalloc((size_t)n);
        memcpy(a->resp, buf, (size_t)n);
        a->resp_len = (size_t)n;
    }
}

/* The IPv6 relay of a dual allocation: 1 opened, else the ADDRESS-ERROR-CODE to report
 * (440: no IPv6 relay address here, 508: no port). The allocation stands either way. */
static int open_second(turn_server *s, turn__alloc *a, const turn_5tuple *t)
{
    uint64_t rid = a->id | TURN_RELAY_ID_DUAL;
    int rc = s->ops.relay_open(s->ops.ctx, rid, AF_INET6, t, &a->relayed2);
    if (rc == 0 && a->relayed2.ss_family == AF_INET6) {
        a->open |= TURN__OPEN_SECOND;
        return 1;
    }
    if (rc == 0)
        s->ops.relay_close(s->ops.ctx, rid);
    return rc == TURN_RELAY_ERR_FAMILY ? 440 : 508;
}

/* Opens the relay and completes the allocation; returns 0 or an error code (a is freed). */
static int allocate_open(turn__req *r, turn__alloc *a, int family, bool dual, bool tcp)
{
    turn_server *s = r->s;
    int rc = (tcp ? s->ops.tcp_relay_open : s->ops.relay_open)(s->ops.ctx, a->id, family, r->t,
                                                               &a->relayed);
    if (rc != 0 || a->relayed.ss_family != family) {
        if (rc == 0)
            s->ops.relay_close(s->ops.ctx, a->id); /* opened, but not what was asked */
        turn__alloc_remove(s, a, false);
        return rc == TURN_RELAY_ERR_FAMILY ? 440 : 508;
    }
    a->family = family;
    a->open = TURN__OPEN_FIRST;
    a->tcp = tcp;
    turn__bw_init(a, tcp ? 0 : r->info.bandwidth_bps, r->now_ms); /* RFC 6062 pipes: no cap */
    int dual_code = dual ? open_second(s, a, r->t) : 0;
    turn__count_opened(s, a);
    a->info = r->info;
    memcpy(a->key, r->key, r->keylen);
    a->keylen = r->keylen;
    memcpy(a->txid, r->m->txid, STUN_TXID_SIZE);
    uint32_t lt = 0;
    bool bad;
    bool has = lifetime_attr(r->m, &lt, &bad);
    int64_t d = deadline(r, turn__lifetime(s, has, lt));
    turn__alloc_schedule(s, a, d);
    allocate_success(r, a, seconds_left(d, r->now_ms), dual_code);
    return 0;
}

/* The budget, then the quotas; false = refused (the error is sent). u: the username's
 * record, NULL when it holds no allocation. */
static bool admit(turn__req *r, const turn__user *u)
{
    turn_server *s = r->s;
    if (r->info.budget_blocked) {
        turn__reply_error_reason(r, 486, "Budget Exceeded", 0);
        return false;
    }
    if (s->ops.quota_acquire) {
        int q = s->ops.quota_acquire(s->ops.ctx, r->user, r->user_len, r->info.alloc_quota);
        if (q == TURN_QUOTA_OK)
            return true;
        turn__reply_error_reason(r, q == TURN_QUOTA_USER ? 486 : 508,
                                 q == TURN_QUOTA_DRAINING ? "Server Draining" : NULL, 0);
        return false;
    }
    uint32_t limit = r->info.alloc_quota ? r->info.alloc_quota : s->cfg.user_quota;
    int code = u && u->count >= limit ? 486 : s->by_id.count >= s->cfg.max_allocations ? 508 : 0;
    if (code)
        turn__reply_error(r, code, 0);
    return code == 0;
}

void turn__handle_allocate(turn__req *r)
{
    turn_server *s = r->s;
    turn__alloc *a = turn__alloc_find_tuple(s, r->t);
    if (a) {
        if (memcmp(a->txid, r->m->txid, STUN_TXID_SIZE) == 0 && a->resp &&
            turn__same_user(a, r->user, r->user_len))
            s->ops.send_client(s->ops.ctx, r->t, a->resp, a->resp_len);
        else
            turn__reply_error(r, 437, 0);
        return;
    }
    int family = AF_INET;
    bool dual = false;
    uint8_t proto;
    bool tcp = s->ops.tcp_relay_open && stun_get_requested_transport(r->m, &proto) == STUN_OK &&
               proto == STUN_TRANSPORT_TCP;
    int code = tcp ? turn__tcp_allocate_checks(r, &family) : allocate_checks(r->m, &family, &dual);
    if (code) {
        turn__reply_error(r, code, 0);
        return;
    }
    turn__user *u = turn__user_get(s, r->user, r->user_len, false);
    if (!admit(r, u))
        return;
    if (!u)
        u = turn__user_get(s, r->user, r->user_len, true);
    a = turn__alloc_insert(s, r->t, u, r->info.key_id);
    code = allocate_open(r, a, family, dual, tcp);
    if (code)
        turn__reply_error(r, code, 0);
}

static void refresh_success(turn__req *r, uint32_t left)
{
    uint8_t buf[TURN__REPLY_CAP];
    stun_builder b;
    turn__reply_begin(r, &b, buf, sizeof buf, STUN_CLASS_SUCCESS);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, left);
    turn__reply_send(r, &b);
}

/* Closes one relay of a dual allocation whose both relays are open (its permissions and
 * channels of that family stay, unused); false when that would leave none. */
static bool close_one(turn_server *s, turn__alloc *a, int family)
{
    if (a->open != (TURN__OPEN_FIRST | TURN__OPEN_SECOND))
        return false;
    s->ops.relay_close(s->ops.ctx, turn__relay_id(a, family));
    a->open &= (uint8_t)(family == a->family ? ~TURN__OPEN_FIRST : ~TURN__OPEN_SECOND);
    return true;
}

void turn__handle_refresh(turn__req *r, turn__alloc *a)
{
    turn_server *s = r->s;
    uint32_t lt = 0;
    bool bad;
    bool has = lifetime_attr(r->m, &lt, &bad);
    uint8_t fam;
    if (bad) {
        turn__reply_error(r, 400, 0);
        return;
    }
    int only = 0; /* REQUESTED-ADDRESS-FAMILY: the one family of a dual allocation to delete */
    if (stun_has_attr(r->m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY)) {
        if (stun_get_address_family(r->m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &fam) != STUN_OK) {
            turn__reply_error(r, 400, 0);
            return;
        }
        only = fam == STUN_FAMILY_IPV6 ? AF_INET6 : fam == STUN_FAMILY_IPV4 ? AF_INET : -1;
        struct sockaddr_storage probe = {.ss_family = (sa_family_t)(only > 0 ? only : 0)};
        if (only < 0 || !turn__family_ok(a, (const struct sockaddr *)&probe)) {
            turn__reply_error(r, 443, 0);
            return;
        }
    }
    if (has && lt == 0 && only && close_one(r->s, a, only)) {
        refresh_success(r, 0);
        return;
    }
    uint32_t left = 0;
    if (!(has && lt == 0)) {
        int64_t d = deadline(r, turn__lifetime(s, has, lt));
        turn__alloc_schedule(s, a, d);
        left = seconds_left(d, r->now_ms);
    }
    /* Deleting first: once the client reads the answer, the quota slot is free (another
     * relay thread may already be handling its next Allocate). */
    if (has && lt == 0)
        turn__alloc_end(s, a, TURN_END_CLIENT);
    refresh_success(r, left);
}
