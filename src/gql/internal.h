/* gql internals shared by lex.c and parse.c (not a public header). */
#ifndef TURNKEY_GQL_INTERNAL_H
#define TURNKEY_GQL_INTERNAL_H

#include <stdint.h>

#include "turnkey/gql.h"

/* Bump allocator: every node and string of a document; freed at once. */
typedef struct gql__arena {
    struct gql__chunk *head;
    size_t nodes; /* counted allocations (nodes) */
} gql__arena;

void *gql__alloc(gql__arena *a, size_t n);
void gql__arena_free(gql__arena *a);

enum gql__tok_kind {
    TK_EOF,
    TK_PUNCT, /* one of ! $ & ( ) : = @ [ ] { | } ; '.' stands for "..." */
    TK_NAME,
    TK_INT,
    TK_FLOAT,
    TK_STRING, /* regular or block string; value decoded */
};

typedef struct gql__tok {
    enum gql__tok_kind kind;
    char punct;
    const char *start; /* in the source */
    size_t len;
    char *value; /* TK_STRING: decoded (arena); TK_NAME/INT/FLOAT: a NUL-terminated copy */
    bool block;  /* a block string */
    int line, col;
} gql__tok;

typedef struct gql__lexer {
    const char *src;
    size_t len, pos;
    int line, col;
    size_t ntok, max_tokens;
    gql__arena *arena;
    gql_error *err;
} gql__lexer;

/* Fills *t with the next token; -1 with lx->err set on a lexical error or too many tokens. */
int gql__next(gql__lexer *lx, gql__tok *t);
/* Sets err (message formatted, location line/col); always returns -1. */
int gql__fail(gql_error *err, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Whole-document check: valid UTF-8 with no control character but tab, LF and CR. */
int gql__check_source(const char *src, size_t len, gql_error *err);

#endif
