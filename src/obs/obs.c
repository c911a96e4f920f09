/* obs: /metrics, readiness and the ended-allocation log lines (see obs.h). Every label value
 * comes from a fixed set (turn_*_name, transports, families): none is a username,
 * customIdentifier, address or id. */
#include "turnkey/obs.h"
#include "turnkey/usage.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/log.h"
#include "turnkey/metrics.h"
#include "turnkey/util.h"
#include "turnkey/spend.h"
#include "turnkey/webhook.h"

struct obs {
    obs_config cfg;
    _Atomic(api_server *) api;
    _Atomic bool draining;
};

static const char *const transports[3] = {"udp", "tcp", "tls"};

obs *obs_new(const obs_config *cfg)
{
    obs *o = util_xcalloc(1, sizeof *o);
    o->cfg = *cfg;
    return o;
}

void obs_free(obs *o)
{
    free(o);
}

void obs_set_api(obs *o, api_server *api)
{
    atomic_store(&o->api, api);
}

void obs_set_draining(obs *o)
{
    atomic_store(&o->draining, true);
}

api_obs obs_api_hooks(obs *o)
{
    return (api_obs){.metrics = obs_metrics, .ready = obs_ready, .ctx = o};
}

/* --- readiness ----------------------------------------------------------------------- */

bool obs_ready(void *ctx, char *reason, size_t cap)
{
    obs *o = ctx;
    store_account acc;
    int rc = store_account_get(o->cfg.st, "00000000000000000000000000000000", &acc);
    if (rc == STORE_OK)
        store_account_clear(&acc);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        snprintf(reason, cap, "store unavailable");
        return false;
    }
    for (size_t i = 0; i < o->cfg.n_listeners; i++)
        if (!o->cfg.rel || relay_listener_port(o->cfg.rel, i) == 0) {
            snprintf(reason, cap, "TURN listener %zu is not bound", i + 1);
            return false;
        }
    if (o->cfg.rel && relay_paused_listeners(o->cfg.rel) > 0) {
        snprintf(reason, cap,
                 "a TURN TCP/TLS listener is paused: out of file descriptors (accept failed "
                 "with EMFILE/ENFILE)");
        return false;
    }
    if (atomic_load(&o->draining)) {
        snprintf(reason, cap, "draining");
        return false;
    }
    return true;
}

/* --- /metrics ------------------------------------------------------------------------ */

static void requests(metrics_buf *b, const turn_stats *t)
{
    char lab[160];
    metrics_family(b, "turnkey_stun_requests_total", "counter",
                   "STUN/TURN requests answered, by transport, method and result (success or "
                   "the error code).");
    for (int p = 0; p < 3; p++)
        for (int m = 0; m < TURN_M__N; m++)
            for (int r = 0; r < TURN_R__N; r++) {
                uint64_t v = t->requests[p][m][r];
                if (!v && r != TURN_R_SUCCESS)
                    continue; /* error codes appear once seen (still a fixed set) */
                snprintf(lab, sizeof lab, "transport=\"%s\",method=\"%s\",result=\"%s\"",
                         transports[p], turn_method_name(m), turn_result_name(r));
                metrics_u64(b, "turnkey_stun_requests_total", lab, v);
            }
    metrics_family(b, "turnkey_auth_failures_total", "counter",
                   "Failed TURN authentications, by reason (all answered 401, or 438 for a "
                   "stale nonce).");
    for (int r = 0; r < TURN_AF__N; r++) {
        snprintf(lab, sizeof lab, "reason=\"%s\"", turn_auth_fail_name(r));
        metrics_u64(b, "turnkey_auth_failures_total", lab, t->auth_failures[r]);
    }
}

static void allocations(metrics_buf *b, const turn_stats *t)
{
    char lab[96];
    metrics_family(b, "turnkey_allocations", "gauge",
                   "Live allocations, by client transport and relayed address family.");
    for (int p = 0; p < 3; p++)
        for (int f = 0; f < 2; f++) {
            snprintf(lab, sizeof lab, "transport=\"%s\",family=\"%s\"", transports[p],
                     f ? "ipv6" : "ipv4");
            metrics_u64(b, "turnkey_allocations", lab, t->allocs_by[p][f]);
        }
    metrics_family(b, "turnkey_allocations_active_1m", "gauge",
                   "Live allocations that relayed data in the last 60 seconds.");
    metrics_u64(b, "turnkey_allocations_active_1m", NULL, t->allocs_active_1m);
    metrics_family(b, "turnkey_allocations_created_total", "counter", "Allocations created.");
    metrics_u64(b, "turnkey_allocations_created_total", NULL, t->allocs_created);
    metrics_family(b, "turnkey_allocations_ended_total", "counter",
                   "Allocations ended, by reason.");
    for (int r = 0; r < TURN_END__N; r++) {
        snprintf(lab, sizeof lab, "reason=\"%s\"", turn_end_reason_name(r));
        metrics_u64(b, "turnkey_allocations_ended_total", lab, t->allocs_ended[r]);
    }
    metrics_family(b, "turnkey_permissions", "gauge", "Live permissions.");
    metrics_u64(b, "turnkey_permissions", NULL, t->permissions);
    metrics_family(b, "turnkey_channels", "gauge", "Live channel bindings.");
    metrics_u64(b, "turnkey_channels", NULL, t->channels);
}

static void traffic(metrics_buf *b, const turn_stats *t)
{
    const struct {
        const char *leg, *dir;
        const turn_flow *f;
    } flows[4] = {{"client", "rx", &t->traffic.client_rx},
                  {"client", "tx", &t->traffic.client_tx},
                  {"peer", "rx", &t->traffic.peer_rx},
                  {"peer", "tx", &t->traffic.peer_tx}};
    char lab[64];
    metrics_family(b, "turnkey_relayed_bytes_total", "counter",
                   "Relayed bytes, live (published every second), by leg and direction: client "
                   "= TURN messages with their framing, peer = UDP payloads.");
    for (int i = 0; i < 4; i++) {
        snprintf(lab, sizeof lab, "leg=\"%s\",direction=\"%s\"", flows[i].leg, flows[i].dir);
        metrics_u64(b, "turnkey_relayed_bytes_total", lab, flows[i].f->bytes);
    }
    metrics_family(b, "turnkey_relayed_packets_total", "counter",
                   "Relayed packets, by leg and direction.");
    for (int i = 0; i < 4; i++) {
        snprintf(lab, sizeof lab, "leg=\"%s\",direction=\"%s\"", flows[i].leg, flows[i].dir);
        metrics_u64(b, "turnkey_relayed_packets_total", lab, flows[i].f->packets);
    }
    metrics_family(b, "turnkey_peer_denials_total", "counter",
                   "Peers the policy denied (relayed datagrams, CreatePermission and ChannelBind "
                   "peers), by the rule that denied: invalid, self, operator, builtin.");
    for (int c = PEER_ALLOWED + 1; c < PEER_DENY__N; c++) {
        snprintf(lab, sizeof lab, "class=\"%s\"", peer_deny_name(c));
        metrics_u64(b, "turnkey_peer_denials_total", lab, t->peer_denials[c]);
    }
    metrics_family(b, "turnkey_dropped_packets_total", "counter",
                   "Datagrams the relay dropped, by reason (peer_policy = peer-policy denials).");
    for (int d = 0; d < TURN_DROP__N; d++) {
        snprintf(lab, sizeof lab, "reason=\"%s\"", turn_drop_name(d));
        metrics_u64(b, "turnkey_dropped_packets_total", lab, t->drops[d]);
    }
}

static void relay_metrics(obs *o, metrics_buf *b)
{
    relay_stats rs;
    relay_stats_read(o->cfg.rel, &rs);
    requests(b, &rs.turn);
    allocations(b, &rs.turn);
    traffic(b, &rs.turn);
    metrics_family(b, "turnkey_tls_handshakes_total", "counter", "TURN-over-TLS handshakes.");
    metrics_u64(b, "turnkey_tls_handshakes_total", "result=\"ok\"", rs.tls_ok);
    metrics_u64(b, "turnkey_tls_handshakes_total", "result=\"failed\"", rs.tls_failed);
    metrics_family(b, "turnkey_revocation_close_seconds", "histogram",
                   "From a key deletion or credential revocation (after its store commit) to "
                   "the last allocation it ended being closed.");
    metrics_histogram(b, "turnkey_revocation_close_seconds", NULL, relay_revoke_bounds,
                      rs.revoke_hist, RELAY_REVOKE_BUCKETS, (double)rs.revoke_sum_us / 1e6);
    metrics_family(b, "turnkey_ended_events_dropped_total", "counter",
                   "Allocation-ended records lost to a full ring (the main thread fell behind).");
    metrics_u64(b, "turnkey_ended_events_dropped_total", NULL, rs.ended_dropped);
}

static void key_count(obs *o, metrics_buf *b)
{
    store_account *accs;
    size_t n_acc, keys = 0;
    if (store_account_list(o->cfg.st, &accs, &n_acc) != STORE_OK)
        return;
    for (size_t i = 0; i < n_acc; i++) {
        store_key *k;
        size_t n;
        if (store_key_list(o->cfg.st, accs[i].id, &k, &n) == STORE_OK) {
            keys += n;
            store_key_array_free(k, n);
        }
    }
    store_account_array_free(accs, n_acc);
    metrics_family(b, "turnkey_keys", "gauge", "TURN keys in the store.");
    metrics_u64(b, "turnkey_keys", NULL, keys);
}

char *obs_metrics(void *ctx)
{
    obs *o = ctx;
    metrics_buf b;
    char ver[64], lab[96], reason[128];
    metrics_init(&b);
    metrics_escape(o->cfg.version ? o->cfg.version : "", ver, sizeof ver);
    snprintf(lab, sizeof lab, "version=\"%s\"", ver);
    metrics_family(&b, "turnkey_build_info", "gauge", "Build information (always 1).");
    metrics_u64(&b, "turnkey_build_info", lab, 1);
    metrics_family(&b, "turnkey_ready", "gauge", "1 when /readyz answers 200.");
    metrics_u64(&b, "turnkey_ready", NULL, obs_ready(o, reason, sizeof reason));
    metrics_family(&b, "turnkey_draining", "gauge", "1 while draining (SIGTERM).");
    metrics_u64(&b, "turnkey_draining", NULL, atomic_load(&o->draining));
    if (o->cfg.rel)
        relay_metrics(o, &b);
    if (o->cfg.usage) {
        relay_stats rs;
        relay_stats_read(o->cfg.rel, &rs);
        usage_agg_metrics(o->cfg.usage, rs.usage_refused, &b);
    }
    if (o->cfg.webhook)
        webhook_metrics(o->cfg.webhook, &b);
    if (o->cfg.spend)
        spend_metrics(o->cfg.spend, &b);
    api_server *api = atomic_load(&o->api);
    if (api)
        api_metrics(api, &b);
    key_count(o, &b);
    metrics_process(&b);
    return metrics_take(&b);
}

/* --- ended allocations --------------------------------------------------------------- */

static void log_ended(void *ctx, const relay_ended *e)
{
    obs *o = ctx;
    log_fields(LOG_INFO, "relay", "allocation ended", LOG_S("key", e->key_id),
               LOG_S("custom_id", e->custom_id), LOG_S("username", e->username),
               LOG_S("transport", (unsigned)e->transport < 3 ? transports[e->transport] : "?"),
               LOG_S("family", e->family == AF_INET6 ? "ipv6" : "ipv4"),
               LOG_I("duration_ms", e->end_ms - e->start_ms),
               LOG_S("reason", turn_end_reason_name(e->reason)),
               LOG_U("client_rx_bytes", e->traffic.client_rx.bytes),
               LOG_U("client_tx_bytes", e->traffic.client_tx.bytes),
               LOG_U("peer_rx_bytes", e->traffic.peer_rx.bytes),
               LOG_U("peer_tx_bytes", e->traffic.peer_tx.bytes),
               LOG_U("client_rx_packets", e->traffic.client_rx.packets),
               LOG_U("client_tx_packets", e->traffic.client_tx.packets),
               LOG_U("peer_rx_packets", e->traffic.peer_rx.packets),
               LOG_U("peer_tx_packets", e->traffic.peer_tx.packets));
    if (o->cfg.on_ended)
        o->cfg.on_ended(o->cfg.ctx, e);
}

size_t obs_tick(obs *o)
{
    return o->cfg.rel ? relay_drain_ended(o->cfg.rel, log_ended, o) : 0;
}
