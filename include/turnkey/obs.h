/* obs: the main thread's end of the outward path. It renders GET /metrics (relay counters
 * summed over the workers, the api's HTTP and credential counters, keys, readiness, process
 * figures), answers readiness, and drains the relay's ended-allocation rings once a second
 * into one log line per allocation. The hook for usage accounting (issue 14) sits here too:
 * every drained record is handed to on_ended when set. */
#ifndef TURNKEY_OBS_H
#define TURNKEY_OBS_H

#include <stdbool.h>
#include <stddef.h>

#include "turnkey/api.h"
#include "turnkey/relay.h"
#include "turnkey/store.h"

typedef struct obs_config {
    const char *version;
    store *st;
    relay *rel;         /* NULL: no relay metrics */
    size_t n_listeners; /* TURN listeners configured (each must be bound to be ready) */
    /* optional consumer of every ended allocation (main thread), after its log line */
    void (*on_ended)(void *ctx, const relay_ended *e);
    void *ctx;
    const struct usage_agg *usage; /* NULL: no turnkey_usage_* metrics (issue 14) */
    struct webhook *webhook;       /* NULL: no turnkey_webhook_* metrics (issue 14) */
    struct spend *spend;           /* NULL: no turnkey_spend_* metrics (issue 14) */
} obs_config;

typedef struct obs obs;

obs *obs_new(const obs_config *cfg);
void obs_free(obs *o);
/* The api whose counters /metrics includes (set once it exists). */
void obs_set_api(obs *o, api_server *api);
void obs_set_draining(obs *o);
/* The hooks for api_config.obs (ctx = o). */
api_obs obs_api_hooks(obs *o);
/* Drains the ended-allocation rings (main thread only); returns how many records. */
size_t obs_tick(obs *o);

/* For the hooks and tests. */
char *obs_metrics(void *o);
bool obs_ready(void *o, char *reason, size_t cap);

#endif
