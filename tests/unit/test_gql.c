/* gql: the GraphQL parser — documents from Cloudflare's TURN analytics page
 * (https://developers.cloudflare.com/realtime/turn/analytics/), every literal form, the
 * unsupported parts refused by name, syntax errors with locations, and every bound. */
#include <stdlib.h>

#include "tk_test.h"
#include "turnkey/gql.h"
#include "turnkey/util.h"

static gql_doc *parse_ok(const char *src)
{
    gql_doc *d = NULL;
    gql_error err;
    if (gql_parse(src, strlen(src), NULL, &d, &err) != 0)
        fprintf(stderr, "  unexpected parse error: %s (%d:%d)\n", err.message, err.line, err.col);
    return d;
}

static int parse_err(const char *src, const gql_limits *lim, gql_error *err)
{
    gql_doc *d = NULL;
    int rc = gql_parse(src, strlen(src), lim, &d, err);
    gql_free(d);
    return rc;
}

static const gql_field *child(const gql_field *f, const char *key)
{
    for (const gql_field *c = f ? f->sel : NULL; c; c = c->next)
        if (strcmp(gql_response_key(c), key) == 0)
            return c;
    return NULL;
}

/* "Top TURN keys by egress", as the page gave it with literal values (2024 version). */
static const char *const doc_top_keys =
    "query{ viewer { usage: accounts(filter: { accountTag: \"8846293bd06d1af8c106d89ec1454fe6\" "
    "}) { callsTurnUsageAdaptiveGroups( filter: { datetimeMinute_gt: \"2024-07-15T02:07:07Z\" "
    "datetimeMinute_lt: \"2024-08-10T02:07:05Z\" } limit: 2 orderBy: [sum_egressBytes_DESC] ) { "
    "dimensions { keyId } sum { egressBytes } } } } }";

static void t_cloudflare_literal_query(void)
{
    gql_doc *d = parse_ok(doc_top_keys);
    CHECK(d != NULL);
    CHECK(d->op_name == NULL && d->vars == NULL);
    const gql_field *viewer = d->sel;
    CHECK_STR(viewer->name, "viewer");
    CHECK(viewer->next == NULL);
    const gql_field *acc = child(viewer, "usage");
    CHECK(acc != NULL);
    CHECK_STR(acc->name, "accounts");
    CHECK_STR(acc->alias, "usage");
    const gql_value *filter = gql_arg(acc, "filter");
    CHECK(filter && filter->kind == GQL_OBJECT);
    CHECK_STR(filter->items->name, "accountTag");
    CHECK_INT(filter->items->kind, GQL_STRING);
    CHECK_STR(filter->items->s, "8846293bd06d1af8c106d89ec1454fe6");
    const gql_field *ds = child(acc, "callsTurnUsageAdaptiveGroups");
    CHECK(ds != NULL && ds->alias == NULL);
    const gql_value *lim = gql_arg(ds, "limit");
    CHECK(lim && lim->kind == GQL_INT);
    CHECK_STR(lim->s, "2");
    const gql_value *ob = gql_arg(ds, "orderBy");
    CHECK(ob && ob->kind == GQL_LIST && ob->items->kind == GQL_ENUM);
    CHECK_STR(ob->items->s, "sum_egressBytes_DESC");
    CHECK(ob->items->next == NULL);
    const gql_value *f = gql_arg(ds, "filter");
    CHECK_STR(f->items->name, "datetimeMinute_gt");
    CHECK_STR(f->items->next->s, "2024-08-10T02:07:05Z");
    CHECK(child(child(ds, "dimensions"), "keyId") != NULL);
    CHECK(child(child(ds, "sum"), "egressBytes")->sel == NULL);
    gql_free(d);
}

/* "Concurrent connections with data usage over time" (the page's current text): a named
 * query whose variables are used without being declared. */
static void t_cloudflare_named_query_with_variables(void)
{
    const char *src = "query concurrentConnections {\n"
                      "\tviewer {\n"
                      "\t\taccounts(filter: { accountTag: $accountId }) {\n"
                      "\t\t\tcallsTurnUsageAdaptiveGroups(\n"
                      "\t\t\t\tlimit: 10000\n"
                      "\t\t\t\tfilter: { date_geq: $dateFrom, date_leq: $dateTo }\n"
                      "\t\t\t) {\n"
                      "\t\t\t\tdimensions {\n\t\t\t\t\tdatetimeFiveMinutes\n\t\t\t\t}\n"
                      "\t\t\t\tavg {\n\t\t\t\t\tconcurrentConnectionsFiveMinutes\n\t\t\t\t}\n"
                      "\t\t\t\tsum {\n\t\t\t\t\tegressBytes\n\t\t\t\t\tingressBytes\n\t\t\t\t}\n"
                      "\t\t\t}\n\t\t}\n\t}\n}\n";
    gql_doc *d = parse_ok(src);
    CHECK(d != NULL);
    CHECK_STR(d->op_name, "concurrentConnections");
    const gql_field *acc = child(d->sel, "accounts");
    const gql_value *tag = gql_arg(acc, "filter")->items;
    CHECK_INT(tag->kind, GQL_VAR);
    CHECK_STR(tag->s, "accountId");
    CHECK_INT(tag->line, 3);
    CHECK_INT(tag->col, 34); /* tabs are one column */
    const gql_field *ds = child(acc, "callsTurnUsageAdaptiveGroups");
    CHECK_STR(gql_arg(ds, "filter")->items->next->s, "dateTo");
    const gql_field *sum = child(ds, "sum");
    CHECK_STR(sum->sel->name, "egressBytes");
    CHECK_STR(sum->sel->next->name, "ingressBytes");
    CHECK_INT(sum->sel->next->line, 16);
    gql_free(d);
}

static void t_variable_definitions(void)
{
    gql_doc *d = parse_ok("query Q($accountTag: string!, $start: Date = \"2025-10-01\", "
                          "$ids: [String!]! $lim: Int = 5) { viewer { x } }");
    CHECK(d != NULL);
    const gql_var_def *v = d->vars;
    CHECK_STR(v->name, "accountTag");
    CHECK_STR(v->type, "string!");
    CHECK(v->def == NULL);
    v = v->next;
    CHECK_STR(v->type, "Date");
    CHECK(v->def && v->def->kind == GQL_STRING);
    CHECK_STR(v->def->s, "2025-10-01");
    v = v->next;
    CHECK_STR(v->name, "ids");
    CHECK_STR(v->type, "[String!]!");
    v = v->next;
    CHECK_STR(v->def->s, "5");
    CHECK(v->next == NULL);
    gql_free(d);
    gql_error err;
    CHECK_INT(parse_err("query ($a: Int = $b) { x }", NULL, &err), -1);
    CHECK_STR(err.message, "Syntax Error: a default value cannot use a variable.");
    CHECK_INT(parse_err("query ($a: Int, $a: Int) { x }", NULL, &err), -1);
    CHECK_STR(err.message, "There can be only one variable named \"$a\".");
    CHECK_INT(parse_err("query () { x }", NULL, &err), -1);
    CHECK_INT(parse_err("query ($a: Int!!) { x }", NULL, &err), -1);
}

static void t_literals(void)
{
    gql_doc *d = parse_ok("{ f(i: -12, z: 0, fl: 1.5e3, f2: -0.25, t: true, n: null, e: ASC, "
                          "l: [1, [\"a\"], {}], o: {a: 1, b: {c: false}}, s: \"a\\\"\\\\\\/\\b\\f"
                          "\\n\\r\\t\\u00e9\\uD83D\\uDE00\", u: \"\xc3\xa9\") }");
    CHECK(d != NULL);
    const gql_value *a = d->sel->args;
    CHECK(a->kind == GQL_INT && !strcmp(a->s, "-12"));
    a = a->next;
    CHECK(a->kind == GQL_INT && !strcmp(a->s, "0"));
    a = a->next;
    CHECK(a->kind == GQL_FLOAT && !strcmp(a->s, "1.5e3"));
    a = a->next;
    CHECK(a->kind == GQL_FLOAT && !strcmp(a->s, "-0.25"));
    a = a->next;
    CHECK(a->kind == GQL_BOOL && a->boolean);
    a = a->next;
    CHECK_INT(a->kind, GQL_NULL);
    a = a->next;
    CHECK(a->kind == GQL_ENUM && !strcmp(a->s, "ASC"));
    a = a->next;
    CHECK_INT(a->kind, GQL_LIST);
    CHECK_INT(a->items->next->kind, GQL_LIST);
    CHECK_STR(a->items->next->items->s, "a");
    CHECK(a->items->next->next->kind == GQL_OBJECT && a->items->next->next->items == NULL);
    a = a->next;
    CHECK_STR(a->items->next->items->name, "c");
    CHECK(a->items->next->items->kind == GQL_BOOL && !a->items->next->items->boolean);
    a = a->next;
    CHECK_STR(a->s, "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    a = a->next;
    CHECK_STR(a->s, "\xc3\xa9");
    gql_free(d);
}

static void t_block_strings(void)
{
    gql_doc *d =
        parse_ok("{ f(a: \"\"\"\n    first\n      second\n\n    third \\\"\"\" \n  \n\"\"\", "
                 "b: \"\"\"  one line  \"\"\", c: \"\"\"\"\"\") }");
    CHECK(d != NULL);
    const gql_value *a = d->sel->args;
    CHECK_STR(a->s, "first\n  second\n\nthird \"\"\" ");
    CHECK_STR(a->next->s, "  one line  ");
    CHECK_STR(a->next->next->s, "");
    gql_free(d);
    gql_error err;
    CHECK_INT(parse_err("{ f(a: \"\"\"never closed) }", NULL, &err), -1);
    CHECK_STR(err.message, "Syntax Error: Unterminated string");
}

static void t_ignored_tokens(void)
{
    gql_doc *d = parse_ok("\xef\xbb\xbf# a comment\r\n,,{ ,a # trailing\r b\n,c: d(x: 1,,,) }");
    CHECK(d != NULL);
    CHECK_STR(d->sel->name, "a");
    CHECK_STR(d->sel->next->name, "b");
    CHECK_INT(d->sel->next->line, 3);
    CHECK_STR(d->sel->next->next->alias, "c");
    CHECK_STR(d->sel->next->next->name, "d");
    gql_free(d);
}

static void t_unsupported_named(void)
{
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"{ viewer { ...F } } fragment F on Viewer { x }",
         "fragments (fragment spreads and inline fragments) are not supported"},
        {"{ viewer { ... on Viewer { x } } }",
         "fragments (fragment spreads and inline fragments) are not supported"},
        {"fragment F on Viewer { x }", "fragments (fragment definitions) are not supported"},
        {"{ viewer @include(if: true) { x } }", "directives (@...) are not supported"},
        {"query Q @cached { x }", "directives (@...) are not supported"},
        {"query ($a: Int @d) { x }", "directives (@...) are not supported"},
        {"mutation { deleteKey }", "mutations are not supported"},
        {"subscription { s }", "subscriptions are not supported"},
        {"{ a } { b }", "several operations in one document are not supported"},
        {"query A { a } query B { b }", "several operations in one document are not supported"},
        {"type Viewer { x: Int }",
         "type system definitions (only executable documents) are not supported"},
        {"\"desc\" scalar Time",
         "type system definitions (only executable documents) are not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gql_error err;
        CHECK_INT(parse_err(cases[i].src, NULL, &err), -1);
        CHECK_STR(err.message, cases[i].msg);
        CHECK(err.line == 1 && err.col > 0);
    }
}

static void t_syntax_errors(void)
{
    static const struct {
        const char *src, *msg;
        int line, col;
    } cases[] = {
        {"", "Syntax Error: Unexpected <EOF>.", 1, 1},
        {"{ }", "Syntax Error: Expected Name, found \"}\".", 1, 3},
        {"{ a(b: 1 }", "Syntax Error: Expected Name, found \"}\".", 1, 10},
        {"{ a() }", "Syntax Error: Expected Name, found \")\".", 1, 5},
        {"{ a(b: 1, b: 2) }", "There can be only one argument named \"b\".", 1, 11},
        {"{ a(b: {c: 1, c: 2}) }", "There can be only one input field named \"c\".", 1, 15},
        {"{\n  a(b: 0123) }", "Syntax Error: Invalid number, unexpected digit after 0", 2, 9},
        {"{ a(b: 1.) }", "Syntax Error: Invalid number, expected digit", 1, 10},
        {"{ a(b: 1e) }", "Syntax Error: Invalid number, expected digit", 1, 10},
        {"{ a(b: 12abc) }", "Syntax Error: Invalid number, unexpected character after it", 1, 10},
        {"{ a(b: \"x\ny\") }", "Syntax Error: Unterminated string", 1, 8},
        {"{ a(b: \"\\q\") }", "Syntax Error: Invalid character escape sequence", 1, 10},
        {"{ a(b: \"\\uZZZZ\") }", "Syntax Error: Invalid Unicode escape sequence", 1, 11},
        {"{ a(b: \"\\uDE00\") }", "Syntax Error: Invalid Unicode escape sequence", 1, 11},
        {"{ a(b: \"\\uD83Dx\") }", "Syntax Error: Invalid Unicode escape sequence", 1, 11},
        {"{ a(b: \"\\u0000\") }", "Syntax Error: \\u0000 is not supported in strings", 1, 11},
        {"{ a(b: $) }", "Syntax Error: Expected Name, found \")\".", 1, 9},
        {"{ a(b: ) }", "Syntax Error: Unexpected \")\".", 1, 8},
        {"{ a.b }", "Syntax Error: Unexpected character \".\"", 1, 4},
        {"{ a ; }", "Syntax Error: Unexpected character \";\"", 1, 5},
        {"{ a } extra", "Syntax Error: Unexpected Name \"extra\".", 1, 7},
        {"{ a", "Syntax Error: Expected Name, found <EOF>.", 1, 4},
        {"{ \xc3\xa9 }", "Syntax Error: Unexpected character", 1, 3},
        {"{ a \x01 }", "Syntax Error: invalid character U+0001 in the document", 0, 0},
        {"{ a \xff }", "Syntax Error: the document is not valid UTF-8", 0, 0},
        {"{ a \xed\xa0\x80 }", "Syntax Error: the document is not valid UTF-8", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gql_error err;
        if (parse_err(cases[i].src, NULL, &err) != -1 || strcmp(err.message, cases[i].msg) ||
            err.line != cases[i].line || err.col != cases[i].col)
            fprintf(stderr, "  case %zu: \"%s\" at %d:%d\n", i, err.message, err.line, err.col);
        CHECK_STR(err.message, cases[i].msg);
        CHECK_INT(err.line, cases[i].line);
        CHECK_INT(err.col, cases[i].col);
    }
}

/* "{ a { a { ... } } }" with n selection sets. */
static char *nested(size_t n)
{
    char *s = util_xmalloc(n * 6 + 8);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, i ? "a { " : "{ ");
    s[o++] = 'x';
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, " }");
    s[o] = '\0';
    return s;
}

static void t_bound_depth(void)
{
    gql_error err;
    char *ok = nested(GQL_MAX_DEPTH), *deep = nested(GQL_MAX_DEPTH + 1);
    int rc_ok = parse_err(ok, NULL, &err), rc_deep = parse_err(deep, NULL, &err);
    free(ok);
    free(deep);
    CHECK_INT(rc_ok, 0);
    CHECK_INT(rc_deep, -1);
    CHECK_STR(err.message, "the document is nested too deeply (more than 32 levels)");
    /* lists and objects count as levels too */
    gql_limits lim = {.max_depth = 3};
    CHECK_INT(parse_err("{ a(b: [[1]]) }", &lim, &err), 0);
    CHECK_INT(parse_err("{ a(b: [[[1]]]) }", &lim, &err), -1);
    CHECK_INT(parse_err("{ a(b: {c: {d: {e: 1}}}) }", &lim, &err), -1);
    CHECK_INT(parse_err("query ($v: [[[Int]]]) { a }", &lim, &err), -1);
    CHECK_STR(err.message, "the document is nested too deeply (more than 3 levels)");
}

static void t_bound_size(void)
{
    gql_error err;
    size_t n = GQL_MAX_BYTES;
    char *s = util_xmalloc(n + 2);
    memset(s, ' ', n + 1);
    memcpy(s, "{ a }", 5);
    s[n] = '\0';
    int rc_ok = parse_err(s, NULL, &err);
    s[n] = ' ';
    s[n + 1] = '\0';
    int rc_big = parse_err(s, NULL, &err);
    free(s);
    CHECK_INT(rc_ok, 0);
    CHECK_INT(rc_big, -1);
    CHECK_STR(err.message, "the document is too large (more than 65536 bytes)");
}

static void t_bound_tokens_and_nodes(void)
{
    gql_error err;
    gql_limits lim = {.max_tokens = 5};
    CHECK_INT(parse_err("{ a b c }", &lim, &err), 0); /* 5 tokens */
    CHECK_INT(parse_err("{ a b c d }", &lim, &err), -1);
    CHECK_STR(err.message, "the document has too many tokens (more than 5)");
    CHECK_INT(err.col, 11);
    lim = (gql_limits){.max_nodes = 4};
    CHECK_INT(parse_err("{ a(x: [1, 2]) }", &lim, &err), 0); /* field, list, 2 ints */
    CHECK_INT(parse_err("{ a(x: [1, 2, 3]) }", &lim, &err), -1);
    CHECK_STR(err.message, "the document has too many nodes (more than 4)");
    /* the defaults: a document of many small fields within the byte bound hits them */
    size_t n = GQL_MAX_NODES + 1;
    char *s = util_xmalloc(n * 2 + 4);
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++)
        s[o++] = 'a', s[o++] = ' ';
    s[o++] = '}';
    s[o] = '\0';
    int rc = parse_err(s, NULL, &err);
    free(s);
    CHECK_INT(rc, -1);
    CHECK_STR(err.message, "the document has too many nodes (more than 4096)");
    s = util_xmalloc(GQL_MAX_TOKENS * 2 + 16);
    o = (size_t)sprintf(s, "{a(x:[");
    for (size_t i = 0; i < GQL_MAX_TOKENS; i++)
        s[o++] = '1', s[o++] = ' ';
    memcpy(s + o, "])}", 4);
    lim = (gql_limits){.max_nodes = 100000};
    rc = parse_err(s, &lim, &err);
    free(s);
    CHECK_INT(rc, -1);
    CHECK_STR(err.message, "the document has too many tokens (more than 16384)");
}

int main(void)
{
    TK_RUN(t_cloudflare_literal_query);
    TK_RUN(t_cloudflare_named_query_with_variables);
    TK_RUN(t_variable_definitions);
    TK_RUN(t_literals);
    TK_RUN(t_block_strings);
    TK_RUN(t_ignored_tokens);
    TK_RUN(t_unsupported_named);
    TK_RUN(t_syntax_errors);
    TK_RUN(t_bound_depth);
    TK_RUN(t_bound_size);
    TK_RUN(t_bound_tokens_and_nodes);
    return tk_test_summary();
}
