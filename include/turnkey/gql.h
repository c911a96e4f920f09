/* gql: a small strict parser of GraphQL executable documents (the October 2021 spec's
 * grammar), for the analytics endpoint. Supported: one query operation (the shorthand
 * `{ ... }` or `query Name($v: Type = default) { ... }`), fields with aliases, arguments and
 * selection sets, every literal value (int, float, string, block string, boolean, null,
 * enum, list, object) and variables; whitespace, commas and comments are insignificant.
 * Refused with an error naming them: fragments (definitions, spreads, inline fragments),
 * directives, mutations, subscriptions, several operations, type-system definitions.
 *
 * Bounded: the document size, the nesting depth, the token count and the node count (see
 * gql_limits); every bound gives an error, never a cut document. Sans-I/O, no globals; a
 * document owns all its memory (one arena, freed by gql_free). */
#ifndef TURNKEY_GQL_H
#define TURNKEY_GQL_H

#include <stdbool.h>
#include <stddef.h>

#define GQL_MAX_BYTES 65536 /* document size */
#define GQL_MAX_DEPTH 32    /* nested selection sets, lists, objects and list types */
#define GQL_MAX_TOKENS 16384
#define GQL_MAX_NODES 4096 /* fields, values, arguments and variable definitions */

typedef struct gql_limits {
    size_t max_bytes, max_depth, max_tokens, max_nodes; /* 0 = the default above */
} gql_limits;

enum gql_kind {
    GQL_NULL,
    GQL_BOOL,
    GQL_INT,    /* s = the lexeme ("-12") */
    GQL_FLOAT,  /* s = the lexeme ("1.5e3") */
    GQL_STRING, /* s = the decoded value (block strings too); never holds a NUL */
    GQL_ENUM,   /* s = the name */
    GQL_VAR,    /* s = the variable name without '$' */
    GQL_LIST,   /* items */
    GQL_OBJECT, /* items, each with its field name in name */
};

/* A value; also an argument (name = argument name) or an object field (name = field). */
typedef struct gql_value {
    enum gql_kind kind;
    const char *name; /* argument / object field name, else NULL */
    const char *s;    /* see gql_kind; NULL for NULL, BOOL, LIST, OBJECT */
    bool boolean;
    struct gql_value *items; /* LIST / OBJECT members, linked through next */
    struct gql_value *next;
    int line, col; /* where it starts (1-based) */
} gql_value;

typedef struct gql_field {
    const char *alias; /* NULL when the field has none */
    const char *name;
    gql_value *args;        /* arguments, linked through next (name set) */
    struct gql_field *sel;  /* the selection set's fields; NULL for a leaf */
    struct gql_field *next; /* the next field of the enclosing selection set */
    int line, col;
} gql_field;

typedef struct gql_var_def {
    const char *name; /* without '$' */
    const char *type; /* as written, normalised: "String!", "[Int!]" */
    gql_value *def;   /* default value or NULL */
    struct gql_var_def *next;
} gql_var_def;

typedef struct gql_doc {
    const char *op_name; /* NULL for an anonymous operation */
    gql_var_def *vars;
    gql_field *sel; /* the operation's selection set (at least one field) */
    struct gql__arena *arena;
} gql_doc;

typedef struct gql_error {
    char message[256];
    int line, col; /* 0 when the error has no location (size, encoding) */
} gql_error;

/* Parses src[0..len). 0 and *out (free with gql_free), or -1 with *err filled and *out NULL.
 * lim may be NULL (defaults). */
int gql_parse(const char *src, size_t len, const gql_limits *lim, gql_doc **out, gql_error *err);
void gql_free(gql_doc *d);

/* The response key of a field: its alias, else its name. */
const char *gql_response_key(const gql_field *f);
/* The argument named name of f, or NULL. */
const gql_value *gql_arg(const gql_field *f, const char *name);

#endif
