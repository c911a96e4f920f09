/* api: the HTTP API's request handling, sans-I/O. A request (method, raw path, the headers
 * that matter, body) and the current time go in; a status, headers and a JSON body come out.
 * The HTTP server (src/http) only moves bytes. Control plane: Cloudflare API v4 TURN keys
 * and token verification. Credential plane: mint / revoke TURN credentials.
 * Status codes and error codes: docs/api.md. */
#ifndef TURNKEY_API_H
#define TURNKEY_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "turnkey/keycache.h"
#include "turnkey/store.h"

#define API_MAX_BODY 65536    /* largest accepted request body */
#define API_MAX_NAME 1024     /* TURN key name, bytes */
#define API_TTL_DEFAULT 86400 /* credential lifetime when the request gives none */
#define API_TTL_MAX 172800

/* Observability hooks (all optional): the whole /metrics text, and readiness. */
typedef struct api_obs {
    /* GET /metrics: the exposition text (heap, free()); NULL = 503. */
    char *(*metrics)(void *ctx);
    /* GET /readyz (when not draining): true if ready; else a reason written into reason. */
    bool (*ready)(void *ctx, char *reason, size_t cap);
    void *ctx;
} api_obs;

typedef struct api_config {
    size_t max_keys;              /* TURN keys per account (default 1000) */
    const char *const *stun_urls; /* "stun:host:3478", ... */
    size_t n_stun;
    const char *const *turn_urls; /* "turn:host:3478?transport=udp", "turns:...", ... */
    size_t n_turn;
    keycache *keys;   /* shared key/revocation cache; NULL = the api makes its own */
    bool health_only; /* a relay-role node: only /healthz and /readyz are served */
    /* Store health for /readyz: NULL = healthy, else the reason it answers 503 with. */
    const char *(*store_problem)(void *ctx);
    void *store_problem_ctx;
    const api_obs *obs; /* NULL: /metrics answers 503, /readyz only checks draining */
    /* Usage API (issue 14): result_info.as_of is usage_as_of(usage_ctx) (ms: this node's
     * last usage batch), or now - usage_lag_ms when that is NULL or 0 (nothing flushed here:
     * the other nodes' batches are at most that old). */
    int64_t (*usage_as_of)(void *ctx);
    void *usage_ctx;
    int64_t usage_lag_ms;
    size_t max_revocations; /* live revocations per TURN key (default 100000; then 409) */
} api_config;

/* Optional observer of control-plane changes that live state must follow (a relay ending
 * allocations of a deleted key or a revoked credential). Called after the store commits. */
typedef struct api_hooks {
    void (*key_deleted)(void *ctx, const char *key_uid);
    void (*credential_revoked)(void *ctx, const char *key_uid, const char *username,
                               int64_t expires);
    void *ctx;
    void (*secret_deleted)(void *ctx, const char *secret_id); /* issue 15; may be NULL */
} api_hooks;

typedef struct api_server api_server;

api_server *api_new(store *st, const api_config *cfg, const api_hooks *hooks);
void api_free(api_server *a);
/* Shutting down: from now on /readyz answers 503 {"status":"draining"} (/healthz stays 200).
 * Thread-safe. */
void api_set_draining(api_server *a);

typedef struct api_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* raw (still percent-encoded) path, no query string */
    const char *authorization; /* header values or NULL */
    const char *x_auth_key;
    const char *x_auth_email;
    const uint8_t *body;
    size_t body_len;
    bool body_too_large;     /* the server discarded a body over API_MAX_BODY */
    const char *query;       /* raw query string without '?', or NULL */
    const char *remote_addr; /* the client's address ("192.0.2.1", "2001:db8::1"), or NULL */
} api_request;

typedef struct api_response {
    int status;
    char *body;                   /* heap JSON (free with api_response_clear), NULL = empty */
    const char *content_type;     /* static; NULL when there is no body */
    const char *allow;            /* static; set on 405 */
    const char *www_authenticate; /* static; set on 401 */
    const char *route;            /* static: the templated route ("/metrics", "other") */
} api_response;

/* Handles one request. now_ms = wall clock in milliseconds. Never fails: every outcome,
 * including store faults (500), is a response. */
void api_handle(api_server *a, const api_request *req, int64_t now_ms, api_response *out);
void api_response_clear(api_response *r);

/* Counts one answered request (route template x method x status class) and its duration
 * (measured by the HTTP server). Thread-safe, lock-free. */
void api_observe(api_server *a, const char *method, const api_response *r, int64_t duration_us);
/* The result of GET …/turn_keys/{key_id}/policy (issue 14 §4), which `turnkey key policy
 * get` prints too: {"policy", "modified", "status": {"tripped", "budgets"}} of the key at
 * now_s. A new reference, or NULL on a store error. */
struct json_t;
struct json_t *api_policy_result(store *st, const char *key_uid, int64_t now_s);

struct metrics_buf;
/* The api's own metrics: HTTP requests and durations, credentials minted and revoked. */
void api_metrics(api_server *a, struct metrics_buf *b);

#endif
