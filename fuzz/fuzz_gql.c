/* Fuzz target: the GraphQL parser (gql_parse) under small bounds, so the bounds are hit too.
 * A parsed document is walked: every field has a name, every value a valid kind, strings are
 * valid UTF-8 without NUL, and no walk goes deeper or visits more nodes than the bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/gql.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DEPTH = 12, NODES = 512 };

static bool utf8_ok(const char *s)
{
    /* util's checker refuses control characters, which strings may hold after escapes */
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

static void walk_value(const gql_value *v, size_t depth, size_t *nodes)
{
    for (; v; v = v->next) {
        if (++*nodes > NODES || depth > DEPTH || v->kind > GQL_OBJECT || v->line < 1)
            abort();
        if ((v->kind == GQL_STRING || v->kind == GQL_INT || v->kind == GQL_FLOAT ||
             v->kind == GQL_ENUM || v->kind == GQL_VAR) &&
            (!v->s || !utf8_ok(v->s)))
            abort();
        if (v->kind == GQL_LIST || v->kind == GQL_OBJECT)
            walk_value(v->items, depth + 1, nodes);
        else if (v->items)
            abort();
    }
}

static void walk_fields(const gql_field *f, size_t depth, size_t *nodes)
{
    for (; f; f = f->next) {
        if (++*nodes > NODES || depth > DEPTH || !f->name || !*f->name)
            abort();
        for (const gql_value *a = f->args; a; a = a->next)
            if (!a->name)
                abort();
        walk_value(f->args, depth, nodes);
        walk_fields(f->sel, depth + 1, nodes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gql_limits lim = {
        .max_bytes = 4096, .max_depth = DEPTH, .max_tokens = 2048, .max_nodes = NODES};
    gql_doc *d;
    gql_error err;
    if (gql_parse((const char *)data, size, &lim, &d, &err) != 0) {
        if (d || !err.message[0] || strlen(err.message) >= sizeof err.message)
            abort();
        return 0;
    }
    if (!d->sel || size > lim.max_bytes)
        abort();
    size_t nodes = 0;
    for (const gql_var_def *v = d->vars; v; v = v->next) {
        if (!v->name || !v->type || !*v->type)
            abort();
        walk_value(v->def, 1, &nodes);
        nodes++;
    }
    walk_fields(d->sel, 1, &nodes);
    gql_free(d);
    return 0;
}
