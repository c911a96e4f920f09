/* turn/stats.c: the counters of a turn_server (the outward path: the relay publishes them,
 * metrics and usage accounting read them), their label names, and the allocation-ended
 * report. Counting is plain arithmetic on the server's own thread: no atomics here. */
#include "internal.h"

static const char *name_of(const char *const *names, size_t n, int i)
{
    return i >= 0 && (size_t)i < n ? names[i] : "?";
}

#define NAME_OF(arr, i) name_of((arr), sizeof(arr) / sizeof(arr)[0], (i))

const char *turn_auth_fail_name(int reason)
{
    static const char *const n[] = {"bad_integrity", "bad_credential", "unknown_key",
                                    "expired",       "revoked",        "key_deleted",
                                    "stale_nonce",   "wrong_realm"};
    return NAME_OF(n, reason);
}

const char *turn_end_reason_name(int reason)
{
    static const char *const n[] = {"expired", "client",   "conn_closed",    "key_deleted",
                                    "revoked", "shutdown", "budget_exceeded"};
    _Static_assert(sizeof n / sizeof n[0] == TURN_END__N, "a name per end reason");
    return NAME_OF(n, reason);
}

const char *turn_method_name(int m)
{
    static const char *const n[] = {"binding",           "allocate",     "refresh",
                                    "create_permission", "channel_bind", "other"};
    return NAME_OF(n, m);
}

static const int result_codes[TURN_R__N] = {0,   400, 401, 403, 420, 437, 438,
                                            440, 441, 442, 443, 486, 508, -1};

const char *turn_result_name(int r)
{
    static const char *const n[] = {"success", "400", "401", "403", "420", "437", "438",
                                    "440",     "441", "442", "443", "486", "508", "other"};
    return NAME_OF(n, r);
}

const char *turn_drop_name(int d)
{
    static const char *const n[] = {"no_allocation", "no_permission", "no_channel", "peer_policy",
                                    "family",        "malformed",     "too_large",  "bandwidth"};
    _Static_assert(sizeof n / sizeof n[0] == TURN_DROP__N, "a name per drop reason");
    return NAME_OF(n, d);
}

static int method_index(uint16_t method)
{
    switch (method) {
    case STUN_METHOD_BINDING: return TURN_M_BINDING;
    case STUN_METHOD_ALLOCATE: return TURN_M_ALLOCATE;
    case STUN_METHOD_REFRESH: return TURN_M_REFRESH;
    case STUN_METHOD_CREATE_PERMISSION: return TURN_M_CREATE_PERMISSION;
    case STUN_METHOD_CHANNEL_BIND: return TURN_M_CHANNEL_BIND;
    default: return TURN_M_OTHER;
    }
}

static int result_index(int code)
{
    for (int i = 0; i < TURN_R_OTHER; i++)
        if (result_codes[i] == code)
            return i;
    return TURN_R_OTHER;
}

void turn__count_reply(turn__req *r)
{
    unsigned proto = (unsigned)r->t->proto < 3 ? (unsigned)r->t->proto : 0;
    r->s->stats.requests[proto][method_index(r->m->method)][result_index(r->code)]++;
}

void turn__auth_failed(turn__req *r, int reason)
{
    turn_server *s = r->s;
    if (reason < 0 || reason >= TURN_AF__N)
        return;
    s->stats.auth_failures[reason]++;
    if (s->ops.auth_failed)
        s->ops.auth_failed(s->ops.ctx, r->t, reason, r->user, r->user ? r->user_len : 0);
}

bool turn__peer_allowed(turn_server *s, const struct sockaddr *peer)
{
    int cls = peer_deny_class(s->cfg.peers, peer);
    if (cls > PEER_ALLOWED && cls < PEER_DENY__N)
        s->stats.peer_denials[cls]++;
    return cls == PEER_ALLOWED;
}

static size_t *by_slot(turn_server *s, const turn__alloc *a)
{
    unsigned proto = (unsigned)a->tuple.proto < 3 ? (unsigned)a->tuple.proto : 0;
    return &s->stats.allocs_by[proto][a->family == AF_INET6 ? 1 : 0];
}

void turn__count_opened(turn_server *s, turn__alloc *a)
{
    a->opened = true;
    a->start_ms = s->now_ms;
    a->usage_ms = s->now_ms;
    s->stats.allocs_created++;
    (*by_slot(s, a))++;
}

/* What a accrued since its marks; the marks move to now. */
static turn_usage take_usage(turn__alloc *a, int64_t now_ms)
{
    turn_usage u = {.egress_bytes = a->traffic.client_tx.bytes - a->usage_egress,
                    .ingress_bytes = a->traffic.client_rx.bytes - a->usage_ingress,
                    .alloc_ms = now_ms > a->usage_ms ? (uint64_t)(now_ms - a->usage_ms) : 0};
    a->usage_egress = a->traffic.client_tx.bytes;
    a->usage_ingress = a->traffic.client_rx.bytes;
    if (now_ms > a->usage_ms)
        a->usage_ms = now_ms;
    return u;
}

static turn_alloc_report report_of(const turn__alloc *a, int reason, int64_t end_ms)
{
    return (turn_alloc_report){.alloc_id = a->id,
                               .info = &a->info,
                               .username = a->user->name,
                               .username_len = a->user->len,
                               .transport = a->tuple.proto,
                               .family = a->family,
                               .start_ms = a->start_ms,
                               .end_ms = end_ms,
                               .reason = reason,
                               .traffic = a->traffic};
}

void turn_server_usage(turn_server *s, int64_t now_ms, turn_usage_fn fn, void *arg)
{
    for (turn__alloc *a = s ? s->allocs : NULL; a; a = a->next) {
        if (!a->opened)
            continue;
        turn_alloc_report rep = report_of(a, -1, now_ms);
        rep.unreported = take_usage(a, now_ms);
        fn(arg, &rep, &rep.unreported);
    }
}

void turn__alloc_end(turn_server *s, turn__alloc *a, int reason)
{
    if (a->opened) {
        (*by_slot(s, a))--;
        if (reason >= 0 && reason < TURN_END__N)
            s->stats.allocs_ended[reason]++;
        if (s->ops.alloc_ended) {
            turn_alloc_report rep = report_of(a, reason, s->now_ms);
            rep.unreported = take_usage(a, s->now_ms);
            s->ops.alloc_ended(s->ops.ctx, &rep);
        }
    }
    turn__alloc_remove(s, a, true);
}

void turn_server_stats_at(const turn_server *s, int64_t now_ms, turn_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    *out = s->stats;
    out->allocations = s->by_id.count;
    out->permissions = s->n_perms;
    out->channels = s->n_chans;
    out->allocs_active_1m = 0;
    for (const turn__alloc *a = s->allocs; a; a = a->next)
        if (a->opened && a->last_data_ms && now_ms - a->last_data_ms < 60000)
            out->allocs_active_1m++;
}

void turn_server_stats(const turn_server *s, turn_stats *out)
{
    turn_server_stats_at(s, s ? s->now_ms : 0, out);
}

bool turn_server_alloc_traffic(const turn_server *s, uint64_t alloc_id, turn_traffic *out)
{
    const turn__alloc *a = s ? turn__alloc_find_id(s, alloc_id) : NULL;
    if (!a)
        return false;
    *out = a->traffic;
    return true;
}
