/* api_graphql: POST /client/v4/graphql, Cloudflare's GraphQL Analytics API for the one
 * dataset turnkey has, callsTurnUsageAdaptiveGroups (docs/usage.md "GraphQL"). The request
 * is {"query", "variables", "operationName"}; the answer is {"data", "errors"} with
 * Cloudflare's error objects (message, path, locations, extensions.timestamp). Needs an API
 * token with analytics:read, and the accountTag of every accounts() must be its account.
 * This file: HTTP, authentication, variables and the viewer/accounts levels; the dataset is
 * in api_gql_usage.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/gql.h"
#include "turnkey/util.h"

#define MAX_DATASETS 10 /* dataset fields per request */

/* --- responses ---------------------------------------------------------------------------- */

static void respond(api_response *r, int status, json_t *doc)
{
    r->status = status;
    r->body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15)); /* 0.2, not 0.2000…01 */
    if (!r->body)
        abort(); /* only on OOM: every string in doc is valid UTF-8 */
    r->content_type = "application/json";
    json_decref(doc);
}

static json_t *error_object(const char *msg, json_t *path, int line, int col, int64_t now_ms)
{
    char ts[32];
    util_rfc3339_ms(now_ms, ts);
    json_t *e = json_pack("{s:s, s:o}", "message", msg, "path", path ? path : json_null());
    if (line > 0)
        json_object_set_new(e, "locations", json_pack("[{s:i, s:i}]", "line", line, "column", col));
    json_object_set_new(e, "extensions", json_pack("{s:s}", "timestamp", ts));
    return e;
}

static void respond_error(api_response *r, int status, const char *msg, json_t *path, int line,
                          int col, int64_t now_ms)
{
    json_t *doc =
        json_pack("{s:n, s:[o]}", "data", "errors", error_object(msg, path, line, col, now_ms));
    respond(r, status, doc);
}

json_t *api__gx_fail(api__gx *x, int status, int line, int col, const char *fmt, ...)
{
    if (x->failed)
        return NULL;
    x->failed = true;
    x->status = status;
    x->line = line;
    x->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
    return NULL;
}

/* The error's path: the response keys down to where it happened (lists as "0"). */
static json_t *gx_path(const api__gx *x)
{
    if (x->depth == 0)
        return NULL;
    json_t *p = json_array();
    for (size_t i = 0; i < x->depth && i < API__GX_PATH; i++)
        json_array_append_new(p, json_string(x->path[i]));
    return p;
}

static void push(api__gx *x, const char *key)
{
    if (x->depth < API__GX_PATH)
        x->path[x->depth] = key;
    x->depth++;
}

static void pop(api__gx *x)
{
    x->depth--;
}

/* --- values and variables ------------------------------------------------------------------ */

static const struct gql_var_def *var_def(const api__gx *x, const char *name)
{
    for (const gql_var_def *d = x->doc->vars; d; d = d->next)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

/* A variable's value: given in variables, else its default; an undeclared variable is
 * looked up in variables too (Cloudflare's documented queries use them undeclared). */
static json_t *variable(api__gx *x, const gql_value *v)
{
    const gql_var_def *d = var_def(x, v->s);
    json_t *given = x->vars ? json_object_get(x->vars, v->s) : NULL;
    if (given)
        return json_incref(given);
    if (d && d->def)
        return api__gx_value(x, d->def);
    if (d && d->type[strlen(d->type) - 1] != '!')
        return json_null();
    if (d)
        return api__gx_fail(x, 400, v->line, v->col,
                            "Variable \"$%s\" of required type \"%s\" was not provided.", v->s,
                            d->type);
    return api__gx_fail(x, 400, v->line, v->col, "Variable \"$%s\" is not defined.", v->s);
}

static json_t *number(api__gx *x, const gql_value *v)
{
    char *end;
    if (v->kind == GQL_INT) {
        errno = 0;
        long long n = strtoll(v->s, &end, 10);
        if (errno || *end || n < INT32_MIN || n > INT32_MAX)
            return api__gx_fail(x, 400, v->line, v->col,
                                "Int cannot represent non 32-bit signed integer value: %s", v->s);
        return json_integer(n);
    }
    double d = strtod(v->s, &end);
    if (!isfinite(d))
        return api__gx_fail(x, 400, v->line, v->col, "Float cannot represent the value %s", v->s);
    return json_real(d);
}

static json_t *compound(api__gx *x, const gql_value *v)
{
    json_t *out = v->kind == GQL_LIST ? json_array() : json_object();
    for (const gql_value *i = v->items; i; i = i->next) {
        json_t *j = api__gx_value(x, i);
        if (!j) {
            json_decref(out);
            return NULL;
        }
        if (v->kind == GQL_LIST)
            json_array_append_new(out, j);
        else
            json_object_set_new(out, i->name, j);
    }
    return out;
}

json_t *api__gx_value(api__gx *x, const gql_value *v)
{
    switch (v->kind) {
    case GQL_NULL: return json_null();
    case GQL_BOOL: return json_boolean(v->boolean);
    case GQL_INT:
    case GQL_FLOAT: return number(x, v);
    case GQL_STRING:
    case GQL_ENUM: return json_string(v->s);
    case GQL_VAR: return variable(x, v);
    case GQL_LIST:
    case GQL_OBJECT: return compound(x, v);
    }
    return api__gx_fail(x, 400, v->line, v->col, "unknown value");
}

int api__gx_unique_keys(api__gx *x, const gql_field *sel)
{
    for (const gql_field *f = sel; f; f = f->next)
        for (const gql_field *g = f->next; g; g = g->next)
            if (strcmp(gql_response_key(f), gql_response_key(g)) == 0) {
                api__gx_fail(x, 400, g->line, g->col,
                             "the response key \"%s\" appears twice (field merging is not "
                             "supported: use an alias)",
                             gql_response_key(g));
                return -1;
            }
    return 0;
}

/* --- viewer and accounts -------------------------------------------------------------------- */

static int no_args(api__gx *x, const gql_field *f)
{
    if (f->args) {
        api__gx_fail(x, 400, f->args->line, f->args->col, "unknown argument \"%s\" on field \"%s\"",
                     f->args->name, f->name);
        return -1;
    }
    if (!f->sel) {
        api__gx_fail(x, 400, f->line, f->col, "object field must have selections: \"%s\"", f->name);
        return -1;
    }
    return api__gx_unique_keys(x, f->sel);
}

/* accounts(filter: {accountTag: "…"}): the account tag, or NULL with the error set. */
static char *account_tag(api__gx *x, const gql_field *f, const char *token_account)
{
    for (const gql_value *a = f->args; a; a = a->next)
        if (strcmp(a->name, "filter") != 0) {
            api__gx_fail(x, 400, a->line, a->col, "unknown argument \"%s\" on field \"accounts\"",
                         a->name);
            return NULL;
        }
    const gql_value *fv = gql_arg(f, "filter");
    json_t *filter = fv ? api__gx_value(x, fv) : NULL;
    char *tag = NULL;
    const char *k;
    json_t *v;
    if (fv && !filter)
        return NULL;
    json_object_foreach(filter, k, v)
    {
        if (strcmp(k, "accountTag") != 0) {
            api__gx_fail(x, 400, fv->line, fv->col,
                         "the accounts filter \"%s\" is not supported: give accountTag", k);
            goto done;
        }
    }
    v = json_object_get(filter, "accountTag");
    if (!json_is_string(v)) {
        api__gx_fail(x, 400, f->line, f->col,
                     "accounts needs filter: {accountTag: \"<account id>\"} (one account)");
        goto done;
    }
    if (strcmp(json_string_value(v), token_account) != 0) {
        api__gx_fail(x, 403, f->line, f->col, "not authorized for that account");
        goto done;
    }
    tag = util_xstrdup(json_string_value(v));
done:
    json_decref(filter);
    return tag;
}

typedef json_t *(*resolve_fn)(api__gx *x, const gql_field *f, const char *ctx);

/* The object of a selection set: each field's value under its response key. */
static json_t *object_of(api__gx *x, const gql_field *sel, resolve_fn fn, const char *ctx)
{
    json_t *o = json_object();
    for (const gql_field *c = sel; c && !x->failed; c = c->next) {
        push(x, gql_response_key(c));
        json_t *v = fn(x, c, ctx);
        if (!v && !x->failed) /* every NULL must come with its error: never a dropped key */
            api__gx_fail(x, 500, c->line, c->col, "Internal server error");
        if (v)
            json_object_set_new(o, gql_response_key(c), v);
        if (!x->failed)
            pop(x);
    }
    return o;
}

static json_t *account_field(api__gx *x, const gql_field *c, const char *acct)
{
    if (strcmp(c->name, "callsTurnUsageAdaptiveGroups") != 0)
        return api__gx_fail(x, 400, c->line, c->col,
                            "unknown field \"%s\" on accounts: turnkey has one dataset, "
                            "callsTurnUsageAdaptiveGroups",
                            c->name);
    if (++x->datasets > MAX_DATASETS)
        return api__gx_fail(x, 400, c->line, c->col, "a request may query at most %d datasets",
                            MAX_DATASETS);
    return api__gql_usage(x, c, acct);
}

static json_t *accounts(api__gx *x, const gql_field *f, const char *token_account)
{
    if (!f->sel)
        return api__gx_fail(x, 400, f->line, f->col,
                            "object field must have selections: \"accounts\"");
    char *acct = account_tag(x, f, token_account);
    if (!acct || api__gx_unique_keys(x, f->sel) != 0) {
        free(acct);
        return NULL;
    }
    push(x, "0");
    json_t *o = object_of(x, f->sel, account_field, acct);
    if (!x->failed)
        pop(x);
    free(acct);
    return json_pack("[o]", o);
}

static json_t *viewer_field(api__gx *x, const gql_field *c, const char *token_account)
{
    if (strcmp(c->name, "accounts") == 0)
        return accounts(x, c, token_account);
    if (strcmp(c->name, "zones") == 0)
        return api__gx_fail(x, 400, c->line, c->col,
                            "zones are not supported: turnkey answers account-scoped queries");
    return api__gx_fail(x, 400, c->line, c->col, "unknown field \"%s\" on viewer", c->name);
}

static json_t *root_field(api__gx *x, const gql_field *f, const char *token_account)
{
    if (strcmp(f->name, "viewer") == 0)
        return no_args(x, f) == 0 ? object_of(x, f->sel, viewer_field, token_account) : NULL;
    if (f->name[0] == '_' && f->name[1] == '_')
        return api__gx_fail(x, 400, f->line, f->col, "introspection (%s) is not supported",
                            f->name);
    return api__gx_fail(x, 400, f->line, f->col, "unknown field \"%s\" on the query root", f->name);
}

static json_t *execute(api__gx *x, const char *token_account)
{
    if (api__gx_unique_keys(x, x->doc->sel) != 0)
        return NULL;
    json_t *data = object_of(x, x->doc->sel, root_field, token_account);
    if (x->failed) {
        json_decref(data);
        return NULL;
    }
    return data;
}

/* --- the request ------------------------------------------------------------------------------ */

/* {"query": "...", "variables": {...}|null, "operationName": "..."|null}; NULL on error
 * (written). */
static json_t *request_body(const api_request *req, int64_t now_ms, api_response *r)
{
    if (req->body_too_large) {
        respond_error(r, 413, "the request is too large (limit 65536 bytes)", NULL, 0, 0, now_ms);
        return NULL;
    }
    json_t *body = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *why = NULL;
    if (!json_is_object(body))
        why = "failed to recognize JSON request: the body must be a JSON object "
              "{\"query\": \"...\", \"variables\": {...}}";
    else if (!json_is_string(json_object_get(body, "query")))
        why = "the request has no query (a string)";
    else if (json_object_get(body, "variables") &&
             !json_is_object(json_object_get(body, "variables")) &&
             !json_is_null(json_object_get(body, "variables")))
        why = "variables must be a JSON object";
    if (why) {
        json_decref(body);
        respond_error(r, 400, why, NULL, 0, 0, now_ms);
        return NULL;
    }
    return body;
}

static bool operation_name_ok(json_t *body, const gql_doc *doc)
{
    json_t *name = json_object_get(body, "operationName");
    if (!name || json_is_null(name))
        return true;
    return json_is_string(name) && doc->op_name &&
           strcmp(json_string_value(name), doc->op_name) == 0;
}

static void run(api_server *a, json_t *body, const char *token_account, int64_t now_ms,
                api_response *r)
{
    json_t *q = json_object_get(body, "query");
    gql_doc *doc;
    gql_error perr;
    if (gql_parse(json_string_value(q), json_string_length(q), NULL, &doc, &perr) != 0) {
        respond_error(r, 400, perr.message, NULL, perr.line, perr.line ? perr.col : 0, now_ms);
        return;
    }
    if (!operation_name_ok(body, doc)) {
        respond_error(r, 400, "Unknown operation named in operationName.", NULL, 0, 0, now_ms);
        gql_free(doc);
        return;
    }
    json_t *vars = json_object_get(body, "variables");
    api__gx x = {
        .st = a->st, .doc = doc, .vars = json_is_object(vars) ? vars : NULL, .now_ms = now_ms};
    json_t *data = execute(&x, token_account);
    if (data)
        respond(r, 200, json_pack("{s:o, s:n}", "data", data, "errors"));
    else
        respond_error(r, x.status, x.msg, gx_path(&x), x.line, x.col, now_ms);
    gql_free(doc);
}

/* The token: any authentication failure is Cloudflare's 401 "Unauthorized" here (in the
 * GraphQL shape); a store fault is 500. */
static int authenticate(api_server *a, const api_request *req, int64_t now_ms, store_token *tok,
                        api_response *r)
{
    api_response scratch;
    memset(&scratch, 0, sizeof scratch);
    int rc = api__authenticate(a, req, now_ms, tok, &scratch);
    int status = scratch.status;
    api_response_clear(&scratch);
    if (rc == 0)
        return 0;
    if (status == 500) {
        respond_error(r, 500, "Internal server error", NULL, 0, 0, now_ms);
    } else {
        respond_error(r, 401,
                      req->authorization ? "Unauthorized"
                                         : "Unauthorized: send an API token as "
                                           "Authorization: Bearer <token>",
                      NULL, 0, 0, now_ms);
        r->www_authenticate = "Bearer";
    }
    return -1;
}

void api__route_graphql(api_server *a, const api_request *req, const api__path *p, int64_t now_ms,
                        api_response *r)
{
    (void)p;
    if (strcmp(req->method, "POST") != 0) {
        respond_error(r, 405,
                      "use POST with a JSON body {\"query\": \"...\", \"variables\": {...}}", NULL,
                      0, 0, now_ms);
        r->allow = "POST";
        return;
    }
    store_token tok;
    if (authenticate(a, req, now_ms, &tok, r) != 0)
        return;
    if (!(tok.perms & STORE_PERM_ANALYTICS_READ)) {
        respond_error(r, 403,
                      "not authorized for that account: the token lacks the analytics:read "
                      "permission",
                      NULL, 0, 0, now_ms);
    } else {
        json_t *body = request_body(req, now_ms, r);
        if (body)
            run(a, body, tok.account_id, now_ms, r);
        json_decref(body);
    }
    store_token_clear(&tok);
}
