/* api internals shared by the files of src/api (not a public header). */
#ifndef TURNKEY_API_INTERNAL_H
#define TURNKEY_API_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>

#include "turnkey/api.h"

#define API__MAX_SEGS 12

struct api_server {
    store *st;
    api_config cfg;
    api_hooks hooks;
    keycache *keys;
    bool own_keys;
    _Atomic bool draining; /* api_set_draining: /readyz answers 503 */
};

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
/* Percent-decodes seg into out (cap bytes incl. NUL); -1 if malformed, too long or has NUL. */
int api__decode_segment(const char *seg, size_t len, char *out, size_t cap);
/* Parses an optional JSON object body. *obj = NULL for an empty body. Returns 0, or -1
 * with the error response already written. */
int api__parse_body(const api_request *req, json_t **obj, api_response *r);
/* Extracts the token of "Authorization: Bearer <token>": 0 ok, -1 malformed. */
int api__bearer(const char *authorization, const char **tok, size_t *len);

/* Credential plane: /v1/turn/keys/{key_id}/credentials/... (path.seg[0..2] = v1,turn,keys) */
void api__cred_route(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                     api_response *r);

#endif
