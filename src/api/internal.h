/* api internals shared by the files of src/api (not a public header). */
#ifndef TURNKEY_API_INTERNAL_H
#define TURNKEY_API_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "turnkey/api.h"

#define API__MAX_SEGS 12
#define API__N_ROUTES 17  /* templated routes, "other" included (api.c) */
#define API__N_METHODS 7  /* GET POST PUT PATCH DELETE HEAD other */
#define API__N_BUCKETS 10 /* request-duration histogram */

/* Lock-free counters (api_obs.c). */
typedef struct api__counters {
    _Atomic uint64_t http[API__N_ROUTES][API__N_METHODS][5]; /* status class 1xx..5xx */
    _Atomic uint64_t dur[API__N_ROUTES][API__N_BUCKETS + 1];
    _Atomic uint64_t dur_sum_us[API__N_ROUTES];
    _Atomic uint64_t minted[2]; /* generate-ice-servers, generate */
    _Atomic uint64_t revoked;
} api__counters;

struct api_server {
    store *st;
    api_config cfg;
    api_hooks hooks;
    keycache *keys;
    bool own_keys;
    _Atomic bool draining; /* api_set_draining: /readyz answers 503 */
    api__counters ctr;
    policy_limiter *limiter;   /* the mint rate limits (issue 14 §4) */
    pthread_mutex_t policy_mu; /* serializes this node's policy writes (api_policy.c) */
};

/* The templated routes, by index (api.c); the last is "other". */
extern const char *const api__route_names[API__N_ROUTES];

/* A request path split into raw (percent-encoded) segments. */
typedef struct api__path {
    const char *seg[API__MAX_SEGS];
    size_t len[API__MAX_SEGS];
    size_t n;
    bool too_many;
} api__path;

/* v4 envelope: errors[] with one item (pointer may be NULL). */
void api__error(api_response *r, int status, int code, const char *msg, const char *pointer);
/* Takes ownership of result. */
void api__ok(api_response *r, int status, json_t *result, json_t *messages);
/* 200 with result and result_info (pagination); takes ownership of both. */
void api__ok_info(api_response *r, json_t *result, json_t *result_info);
/* Percent-decodes seg into out (cap bytes incl. NUL); -1 if malformed, too long or has NUL. */
int api__decode_segment(const char *seg, size_t len, char *out, size_t cap);
/* Parses an optional JSON object body. *obj = NULL for an empty body. Returns 0, or -1
 * with the error response already written. */
int api__parse_body(const api_request *req, json_t **obj, api_response *r);
/* Extracts the token of "Authorization: Bearer <token>": 0 ok, -1 malformed. */
int api__bearer(const char *authorization, const char **tok, size_t *len);

/* api_obs.c: GET /metrics and GET /readyz|/healthz (path.n == 1). */
void api__route_metrics(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r);
void api__route_health(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                       api_response *r);
void api__method_not_allowed(api_response *r, const char *allow);

/* Control-plane authentication (API token): 0 and *tok filled (store_token_clear it), or
 * -1 with the error written. */
int api__authenticate(api_server *a, const api_request *req, int64_t now_ms, store_token *tok,
                      api_response *r);
bool api__account_id_ok(const char *s);
void api__bad_identifier(api_response *r, const char *path);

/* Records one control-plane change made through the API (and logs it); old/new borrowed. */
void api__audit(api_server *a, const api_request *req, const char *actor_type, const char *actor_id,
                const char *account_id, const char *action, const char *resource_type,
                const char *resource_id, json_t *old_value, json_t *new_value, int64_t now_ms);

/* api_audit.c: GET /client/v4/accounts/{account_id}/audit_logs */
void api__route_audit(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                      api_response *r);

/* api_usage.c: GET .../calls/turn_keys/{key_id}/usage and .../calls/usage (issue 14) */
void api__route_usage(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                      api_response *r);
/* api_secret.c: …/turn_keys/{key_id}/shared_secrets[/{id}] (issue 15) */
void api__route_secrets(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r);

/* api_policy.c: GET|PUT|PATCH|DELETE .../turn_keys/{key_id}/policy (issue 14 §4) */
void api__route_policy(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                       api_response *r);

/* api_webhook.c: GET|PUT|DELETE .../accounts/{account_id}/calls/webhook (issue 14) */
void api__route_webhook(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r);

/* Credential plane: /v1/turn/keys/{key_id}/credentials/... (path.seg[0..2] = v1,turn,keys) */
void api__cred_route(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                     api_response *r);

/* api_graphql.c: POST /client/v4/graphql, the GraphQL analytics endpoint (issue 14). */
void api__route_graphql(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r);

/* GraphQL execution state shared by api_graphql.c and api_gql_usage.c. Execution stops at
 * the first error (the response then has data null and that one error). */
struct gql_doc;
struct gql_field;
struct gql_value;
#define API__GX_PATH 8
typedef struct api__gx {
    store *st;
    const struct gql_doc *doc;
    json_t *vars; /* the request's variables (an object) or NULL */
    int64_t now_ms;
    size_t datasets;                /* dataset fields executed (bounded) */
    const char *path[API__GX_PATH]; /* response keys down to the current field */
    size_t depth;
    bool failed;
    int status, line, col; /* the error's HTTP status and location (0 = none) */
    char msg[320];
} api__gx;

/* Records the first error (later ones are dropped); always returns NULL. */
json_t *api__gx_fail(api__gx *x, int status, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A value with its variables substituted, as JSON (enums become strings); NULL on error. */
json_t *api__gx_value(api__gx *x, const struct gql_value *v);
/* Every response key of the selection set is unique (no field merging); -1 on error. */
int api__gx_unique_keys(api__gx *x, const struct gql_field *sel);
/* callsTurnUsageAdaptiveGroups of one account (api_gql_usage.c): the groups array. */
json_t *api__gql_usage(api__gx *x, const struct gql_field *f, const char *account_id);

#endif
