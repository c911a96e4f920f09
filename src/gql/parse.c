/* gql: the recursive-descent parser of executable documents (GraphQL spec §2.2-2.10), with
 * the unsupported parts refused by name and every bound checked. One token of lookahead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

typedef struct parser {
    gql__lexer lx;
    gql__tok tok; /* the current token */
    size_t depth, max_depth, max_nodes;
    gql_error *err;
} parser;

static int advance(parser *p)
{
    return gql__next(&p->lx, &p->tok);
}

static void *node(parser *p, size_t size)
{
    p->lx.arena->nodes++;
    return gql__alloc(p->lx.arena, size);
}

static int check_nodes(parser *p)
{
    if (p->lx.arena->nodes > p->max_nodes)
        return gql__fail(p->err, p->tok.line, p->tok.col,
                         "the document has too many nodes (more than %zu)", p->max_nodes);
    return 0;
}

static int enter(parser *p)
{
    if (++p->depth > p->max_depth)
        return gql__fail(p->err, p->tok.line, p->tok.col,
                         "the document is nested too deeply (more than %zu levels)", p->max_depth);
    return 0;
}

/* How the current token reads in a message: "}" / Name "x" / <EOF> / Int "1". */
static void describe(const gql__tok *t, char *out, size_t cap)
{
    static const char *const kinds[] = {"<EOF>", "", "Name", "Int", "Float", "String"};
    if (t->kind == TK_EOF)
        snprintf(out, cap, "<EOF>");
    else if (t->kind == TK_PUNCT)
        snprintf(out, cap, "\"%s\"", t->punct == '.' ? "..." : (char[]){t->punct, 0});
    else
        snprintf(out, cap, "%s \"%.*s\"", kinds[t->kind], (int)(t->len > 40 ? 40 : t->len),
                 t->start);
}

static int unexpected(parser *p, const char *expected)
{
    char found[80];
    describe(&p->tok, found, sizeof found);
    if (expected)
        return gql__fail(p->err, p->tok.line, p->tok.col, "Syntax Error: Expected %s, found %s.",
                         expected, found);
    return gql__fail(p->err, p->tok.line, p->tok.col, "Syntax Error: Unexpected %s.", found);
}

static bool is_punct(const parser *p, char c)
{
    return p->tok.kind == TK_PUNCT && p->tok.punct == c;
}

static bool is_name(const parser *p, const char *s)
{
    return p->tok.kind == TK_NAME && strcmp(p->tok.value, s) == 0;
}

static int expect_punct(parser *p, char c)
{
    if (!is_punct(p, c)) {
        char want[8];
        snprintf(want, sizeof want, "\"%s\"", c == '.' ? "..." : (char[]){c, 0});
        return unexpected(p, want);
    }
    return advance(p);
}

static int expect_name(parser *p, const char **out)
{
    if (p->tok.kind != TK_NAME)
        return unexpected(p, "Name");
    *out = p->tok.value;
    return advance(p);
}

/* Refusals of the parts this parser does not support (the token is where they start). */
static int unsupported(parser *p, const char *what)
{
    return gql__fail(p->err, p->tok.line, p->tok.col, "%s are not supported", what);
}

static int refuse_directive(parser *p)
{
    return is_punct(p, '@') ? unsupported(p, "directives (@...)") : 0;
}

/* --- values ---------------------------------------------------------------------------- */

static int parse_value(parser *p, bool is_const, gql_value **out);

static bool duplicate(const gql_value *list, const char *name)
{
    for (const gql_value *v = list; v; v = v->next)
        if (strcmp(v->name, name) == 0)
            return true;
    return false;
}

/* `name: value` pairs up to `close` (arguments: at least one; object fields: any). */
static int parse_named_values(parser *p, bool is_const, char close, bool need_one, const char *what,
                              gql_value **out)
{
    gql_value **tail = out;
    *out = NULL;
    if (need_one && is_punct(p, close))
        return unexpected(p, "Name");
    while (!is_punct(p, close)) {
        int line = p->tok.line, col = p->tok.col;
        const char *name = NULL;
        gql_value *v;
        if (expect_name(p, &name) != 0 || expect_punct(p, ':') != 0 ||
            parse_value(p, is_const, &v) != 0)
            return -1;
        if (duplicate(*out, name))
            return gql__fail(p->err, line, col, "There can be only one %s named \"%s\".", what,
                             name);
        v->name = name;
        *tail = v;
        tail = &v->next;
    }
    return advance(p);
}

static int parse_list(parser *p, bool is_const, gql_value *v)
{
    gql_value **tail = &v->items;
    while (!is_punct(p, ']')) {
        if (parse_value(p, is_const, tail) != 0)
            return -1;
        tail = &(*tail)->next;
    }
    return advance(p);
}

static int parse_compound(parser *p, bool is_const, gql_value *v)
{
    bool list = is_punct(p, '[');
    v->kind = list ? GQL_LIST : GQL_OBJECT;
    if (enter(p) != 0 || advance(p) != 0)
        return -1;
    int rc = list ? parse_list(p, is_const, v)
                  : parse_named_values(p, is_const, '}', false, "input field", &v->items);
    p->depth--;
    return rc;
}

static int parse_scalar(parser *p, bool is_const, gql_value *v)
{
    gql__tok *t = &p->tok;
    if (is_punct(p, '$')) {
        if (is_const)
            return gql__fail(p->err, t->line, t->col,
                             "Syntax Error: a default value cannot use a variable.");
        v->kind = GQL_VAR;
        if (advance(p) != 0)
            return -1;
        return expect_name(p, &v->s);
    }
    if (t->kind == TK_INT || t->kind == TK_FLOAT || t->kind == TK_STRING) {
        v->kind = t->kind == TK_INT ? GQL_INT : t->kind == TK_FLOAT ? GQL_FLOAT : GQL_STRING;
        v->s = t->value;
    } else if (t->kind == TK_NAME) {
        if (!strcmp(t->value, "true") || !strcmp(t->value, "false")) {
            v->kind = GQL_BOOL;
            v->boolean = t->value[0] == 't';
        } else if (!strcmp(t->value, "null")) {
            v->kind = GQL_NULL;
        } else {
            v->kind = GQL_ENUM;
            v->s = t->value;
        }
    } else {
        return unexpected(p, NULL);
    }
    return advance(p);
}

static int parse_value(parser *p, bool is_const, gql_value **out)
{
    gql_value *v = node(p, sizeof *v);
    *out = v;
    v->line = p->tok.line;
    v->col = p->tok.col;
    if (check_nodes(p) != 0)
        return -1;
    if (is_punct(p, '[') || is_punct(p, '{'))
        return parse_compound(p, is_const, v);
    return parse_scalar(p, is_const, v);
}

/* --- variable definitions --------------------------------------------------------------- */

/* Type: Name, [Type], each optionally followed by "!"; written into buf normalised. */
static int parse_type(parser *p, char *buf, size_t cap, size_t *n)
{
    if (enter(p) != 0)
        return -1;
    const char *name = NULL;
    if (is_punct(p, '[')) {
        if (advance(p) != 0)
            return -1;
        *n += (size_t)snprintf(buf + *n, cap - *n, "[");
        if (parse_type(p, buf, cap, n) != 0 || expect_punct(p, ']') != 0)
            return -1;
        *n += (size_t)snprintf(buf + *n, cap - *n, "]");
    } else {
        if (expect_name(p, &name) != 0)
            return -1;
        *n += (size_t)snprintf(buf + *n, cap - *n, "%s", name);
    }
    if (*n >= cap)
        return gql__fail(p->err, p->tok.line, p->tok.col, "a variable type is too long");
    if (is_punct(p, '!')) {
        if (advance(p) != 0)
            return -1;
        *n += (size_t)snprintf(buf + *n, cap - *n, "!");
    }
    p->depth--;
    return 0;
}

static int parse_var_def(parser *p, gql_var_def *vars, gql_var_def **out)
{
    int line = p->tok.line, col = p->tok.col;
    gql_var_def *d = node(p, sizeof *d);
    if (check_nodes(p) != 0 || expect_punct(p, '$') != 0 || expect_name(p, &d->name) != 0 ||
        expect_punct(p, ':') != 0)
        return -1;
    for (gql_var_def *o = vars; o; o = o->next)
        if (strcmp(o->name, d->name) == 0)
            return gql__fail(p->err, line, col, "There can be only one variable named \"$%s\".",
                             d->name);
    char buf[256];
    size_t n = 0;
    if (parse_type(p, buf, sizeof buf, &n) != 0)
        return -1;
    if (n >= sizeof buf)
        return gql__fail(p->err, line, col, "a variable type is too long");
    char *type = gql__alloc(p->lx.arena, n + 1);
    memcpy(type, buf, n);
    d->type = type;
    if (is_punct(p, '=')) {
        if (advance(p) != 0 || parse_value(p, true, &d->def) != 0)
            return -1;
    }
    *out = d;
    return refuse_directive(p);
}

static int parse_var_defs(parser *p, gql_var_def **out)
{
    if (advance(p) != 0) /* "(" */
        return -1;
    if (is_punct(p, ')'))
        return unexpected(p, "\"$\"");
    gql_var_def **tail = out;
    while (!is_punct(p, ')')) {
        if (parse_var_def(p, *out, tail) != 0)
            return -1;
        tail = &(*tail)->next;
    }
    return advance(p);
}

/* --- selections --------------------------------------------------------------------------- */

static int parse_selection_set(parser *p, gql_field **out);

static int parse_field(parser *p, gql_field **out)
{
    gql_field *f = node(p, sizeof *f);
    *out = f;
    f->line = p->tok.line;
    f->col = p->tok.col;
    if (check_nodes(p) != 0 || expect_name(p, &f->name) != 0)
        return -1;
    if (is_punct(p, ':')) {
        f->alias = f->name;
        if (advance(p) != 0 || expect_name(p, &f->name) != 0)
            return -1;
    }
    if (is_punct(p, '(')) {
        if (advance(p) != 0 || parse_named_values(p, false, ')', true, "argument", &f->args) != 0)
            return -1;
    }
    if (refuse_directive(p) != 0)
        return -1;
    if (is_punct(p, '{'))
        return parse_selection_set(p, &f->sel);
    return 0;
}

static int parse_selection_set(parser *p, gql_field **out)
{
    if (enter(p) != 0 || expect_punct(p, '{') != 0)
        return -1;
    if (is_punct(p, '}'))
        return unexpected(p, "Name");
    gql_field **tail = out;
    while (!is_punct(p, '}')) {
        if (is_punct(p, '.'))
            return unsupported(p, "fragments (fragment spreads and inline fragments)");
        if (p->tok.kind != TK_NAME)
            return unexpected(p, "Name");
        if (parse_field(p, tail) != 0)
            return -1;
        tail = &(*tail)->next;
    }
    p->depth--;
    return advance(p);
}

/* --- definitions ---------------------------------------------------------------------------- */

static int parse_operation(parser *p, gql_doc *d)
{
    if (is_name(p, "query")) {
        if (advance(p) != 0)
            return -1;
        if (p->tok.kind == TK_NAME && expect_name(p, &d->op_name) != 0)
            return -1;
        if (is_punct(p, '(') && parse_var_defs(p, &d->vars) != 0)
            return -1;
        if (refuse_directive(p) != 0)
            return -1;
    }
    return parse_selection_set(p, &d->sel);
}

static const char *const type_system[] = {"schema", "scalar", "type",      "interface", "union",
                                          "enum",   "input",  "directive", "extend",    NULL};

static int parse_definition(parser *p, gql_doc *d)
{
    if (is_punct(p, '{') || is_name(p, "query")) {
        if (d->sel)
            return gql__fail(p->err, p->tok.line, p->tok.col,
                             "several operations in one document are not supported");
        return parse_operation(p, d);
    }
    if (is_name(p, "mutation"))
        return unsupported(p, "mutations");
    if (is_name(p, "subscription"))
        return unsupported(p, "subscriptions");
    if (is_name(p, "fragment"))
        return unsupported(p, "fragments (fragment definitions)");
    for (size_t i = 0; type_system[i]; i++)
        if (is_name(p, type_system[i]))
            return unsupported(p, "type system definitions (only executable documents)");
    if (p->tok.kind == TK_STRING)
        return unsupported(p, "type system definitions (only executable documents)");
    return unexpected(p, NULL);
}

int gql_parse(const char *src, size_t len, const gql_limits *lim, gql_doc **out, gql_error *err)
{
    memset(err, 0, sizeof *err);
    *out = NULL;
    gql_limits l = lim ? *lim : (gql_limits){0};
    l.max_bytes = l.max_bytes ? l.max_bytes : GQL_MAX_BYTES;
    if (len > l.max_bytes)
        return gql__fail(err, 0, 0, "the document is too large (more than %zu bytes)", l.max_bytes);
    if (gql__check_source(src, len, err) != 0)
        return -1;
    gql__arena *arena = util_xcalloc(1, sizeof *arena);
    gql_doc *d = gql__alloc(arena, sizeof *d);
    d->arena = arena;
    parser p = {.lx = {.src = src,
                       .len = len,
                       .line = 1,
                       .col = 1,
                       .max_tokens = l.max_tokens ? l.max_tokens : GQL_MAX_TOKENS,
                       .arena = arena,
                       .err = err},
                .max_depth = l.max_depth ? l.max_depth : GQL_MAX_DEPTH,
                .max_nodes = l.max_nodes ? l.max_nodes : GQL_MAX_NODES,
                .err = err};
    int rc = advance(&p);
    if (rc == 0 && p.tok.kind == TK_EOF)
        rc = unexpected(&p, NULL);
    while (rc == 0 && p.tok.kind != TK_EOF)
        rc = parse_definition(&p, d);
    if (rc != 0) {
        gql_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

void gql_free(gql_doc *d)
{
    if (!d)
        return;
    gql__arena *a = d->arena;
    gql__arena_free(a);
    free(a);
}

const char *gql_response_key(const gql_field *f)
{
    return f->alias ? f->alias : f->name;
}

const gql_value *gql_arg(const gql_field *f, const char *name)
{
    for (const gql_value *v = f->args; v; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}
