/* audit: the audit log's rules above the store — writing a record for one control-plane
 * change (and its log line), the Cloudflare audit-log JSON shape of a record, and the
 * query string of GET /client/v4/accounts/{account_id}/audit_logs (also `turnkey audit
 * list`). Sans-I/O apart from the store call; never a secret in a record. */
#ifndef TURNKEY_AUDIT_H
#define TURNKEY_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "turnkey/store.h"

#define AUDIT_PER_PAGE_DEFAULT 100
#define AUDIT_PER_PAGE_MAX 1000

/* Who made a change. */
typedef struct audit_actor {
    const char *type; /* "user" (an API token), "admin" (the CLI), "turn_key" (a key's bearer) */
    const char *id;   /* token id, "cli", or the key uid */
    const char *ip;   /* source address or NULL */
    const char *interface; /* "API" or "CLI" */
} audit_actor;

/* Stores one record (old/new: JSON objects or NULL, borrowed) and writes its log line.
 * Returns the store's code; a failed audit write is logged as an error. */
int audit_record(store *s, const audit_actor *who, const char *account_id, const char *action,
                 const char *resource_type, const char *resource_id, json_t *old_value,
                 json_t *new_value, int64_t now_ms);

/* The record in Cloudflare's audit-log shape (a new reference). */
json_t *audit_to_json(const store_audit *e);

/* A parsed query string. */
typedef struct audit_params {
    store_audit_query q; /* its strings point into buf */
    size_t page, per_page;
    char buf[512];
} audit_params;

/* Parses `since`, `before` (RFC 3339 date or date-time), `action.type`, `resource.id`, `id`,
 * `page` (>= 1), `per_page` (1..1000), `direction` (asc|desc) from a raw (percent-encoded)
 * query string (NULL = empty); unknown parameters are ignored, as Cloudflare does.
 * 0, or -1 with a message naming the parameter in err. */
int audit_params_parse(const char *query, const char *account_id, audit_params *p, char *err,
                       size_t cap);

/* "2019-04-30" or "2019-04-30T01:02:03Z" / "...03.5+02:00" to ms since the epoch; -1 bad. */
int audit_parse_time(const char *s, int64_t *ms);

/* `turnkey audit list --account ID [QUERY]`: one JSON record per line on out (the API's
 * query string and shape); 0, 1 (store error) or 2 (bad query). */
int audit_cli_list(store *s, const char *account_id, const char *query, FILE *out, FILE *err);
/* A change made with the CLI (actor type "admin", id "cli", interface "CLI"). */
int audit_cli_record(store *s, const char *account_id, const char *action,
                     const char *resource_type, const char *resource_id, json_t *old_value,
                     json_t *new_value);

#endif
