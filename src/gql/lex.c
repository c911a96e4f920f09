/* gql: the lexer (GraphQL spec §2.1): punctuators, names, numbers, strings and block strings;
 * whitespace, line terminators, commas, comments and the BOM are skipped. Also the arena. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

/* --- arena --------------------------------------------------------------------------- */

#define CHUNK 16384

typedef struct gql__chunk {
    struct gql__chunk *next;
    size_t used, cap;
    max_align_t data[];
} gql__chunk;

void *gql__alloc(gql__arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    gql__chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK ? n : CHUNK;
        c = util_xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void gql__arena_free(gql__arena *a)
{
    for (gql__chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

/* --- errors and source check ------------------------------------------------------------ */

int gql__fail(gql_error *err, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->line = line;
    err->col = col;
    return -1;
}

/* Length of the UTF-8 sequence at s (n bytes left) and its code point; 0 if malformed. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t c = len == 1 ? s[0] : len == 2 ? s[0] & 0x1fu : len == 3 ? s[0] & 0x0fu : s[0] & 0x07u;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

int gql__check_source(const char *src, size_t len, gql_error *err)
{
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_seq(s + i, len - i, &cp);
        if (n == 0)
            return gql__fail(err, 0, 0, "Syntax Error: the document is not valid UTF-8");
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f)
            return gql__fail(err, 0, 0, "Syntax Error: invalid character U+%04X in the document",
                             (unsigned)cp);
        i += n;
    }
    return 0;
}

/* --- reading --------------------------------------------------------------------------- */

static int peek(const gql__lexer *lx, size_t ahead)
{
    return lx->pos + ahead < lx->len ? (unsigned char)lx->src[lx->pos + ahead] : -1;
}

/* Advances one byte, keeping line and column (columns count characters). */
static void adv(gql__lexer *lx)
{
    unsigned char c = (unsigned char)lx->src[lx->pos++];
    if (c == '\n' || (c == '\r' && peek(lx, 0) != '\n')) {
        lx->line++;
        lx->col = 1;
    } else if ((c & 0xc0) != 0x80 && c != '\r') {
        lx->col++;
    }
}

static bool name_start(int c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool name_char(int c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static bool digit(int c)
{
    return c >= '0' && c <= '9';
}

static void skip_ignored(gql__lexer *lx)
{
    for (;;) {
        int c = peek(lx, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            adv(lx);
        } else if (c == 0xef && peek(lx, 1) == 0xbb && peek(lx, 2) == 0xbf) { /* BOM */
            adv(lx), adv(lx), adv(lx);
        } else if (c == '#') {
            while (peek(lx, 0) >= 0 && peek(lx, 0) != '\n' && peek(lx, 0) != '\r')
                adv(lx);
        } else {
            return;
        }
    }
}

static char *copy(gql__lexer *lx, const char *s, size_t n)
{
    char *p = gql__alloc(lx->arena, n + 1);
    memcpy(p, s, n);
    return p;
}

/* One or more digits. */
static int digits(gql__lexer *lx)
{
    if (!digit(peek(lx, 0)))
        return gql__fail(lx->err, lx->line, lx->col,
                         "Syntax Error: Invalid number, expected digit");
    while (digit(peek(lx, 0)))
        adv(lx);
    return 0;
}

static int lex_number(gql__lexer *lx, gql__tok *t)
{
    if (peek(lx, 0) == '-')
        adv(lx);
    if (peek(lx, 0) == '0') {
        adv(lx);
        if (digit(peek(lx, 0)))
            return gql__fail(lx->err, lx->line, lx->col,
                             "Syntax Error: Invalid number, unexpected digit after 0");
    } else if (digits(lx) != 0) {
        return -1;
    }
    t->kind = TK_INT;
    if (peek(lx, 0) == '.') {
        adv(lx);
        if (digits(lx) != 0)
            return -1;
        t->kind = TK_FLOAT;
    }
    if (peek(lx, 0) == 'e' || peek(lx, 0) == 'E') {
        adv(lx);
        if (peek(lx, 0) == '+' || peek(lx, 0) == '-')
            adv(lx);
        if (digits(lx) != 0)
            return -1;
        t->kind = TK_FLOAT;
    }
    if (peek(lx, 0) == '.' || name_start(peek(lx, 0)))
        return gql__fail(lx->err, lx->line, lx->col,
                         "Syntax Error: Invalid number, unexpected character after it");
    t->len = (size_t)(lx->src + lx->pos - t->start);
    t->value = copy(lx, t->start, t->len);
    return 0;
}

static int hex4(gql__lexer *lx, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int c = peek(lx, 0);
        int d = digit(c)                 ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return gql__fail(lx->err, lx->line, lx->col,
                             "Syntax Error: Invalid Unicode escape sequence");
        v = v * 16 + (uint32_t)d;
        adv(lx);
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* \uXXXX (after "\u"), a surrogate pair included; the code point into *cp. */
static int unicode_escape(gql__lexer *lx, uint32_t *cp)
{
    int line = lx->line, col = lx->col;
    if (hex4(lx, cp) != 0)
        return -1;
    if (*cp >= 0xdc00 && *cp <= 0xdfff)
        return gql__fail(lx->err, line, col, "Syntax Error: Invalid Unicode escape sequence");
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        uint32_t lo;
        if (peek(lx, 0) != '\\' || peek(lx, 1) != 'u')
            return gql__fail(lx->err, line, col, "Syntax Error: Invalid Unicode escape sequence");
        adv(lx), adv(lx);
        if (hex4(lx, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
            return gql__fail(lx->err, line, col, "Syntax Error: Invalid Unicode escape sequence");
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (*cp == 0)
        return gql__fail(lx->err, line, col, "Syntax Error: \\u0000 is not supported in strings");
    return 0;
}

static int escape(gql__lexer *lx, char *out, size_t *o)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    int c = peek(lx, 0);
    const char *hit = c > 0 ? strchr(from, c) : NULL;
    if (hit) {
        adv(lx);
        out[(*o)++] = to[hit - from];
        return 0;
    }
    if (c != 'u')
        return gql__fail(lx->err, lx->line, lx->col,
                         "Syntax Error: Invalid character escape sequence");
    adv(lx);
    uint32_t cp;
    if (unicode_escape(lx, &cp) != 0)
        return -1;
    *o += put_utf8(out + *o, cp);
    return 0;
}

/* A regular string (after the opening quote). Escapes never grow the text: \uXXXX (6
 * bytes) is at most 3 bytes of UTF-8, a surrogate pair (12) is 4. */
static int lex_string(gql__lexer *lx, gql__tok *t)
{
    char *out = gql__alloc(lx->arena, lx->len - lx->pos + 1);
    size_t o = 0;
    for (;;) {
        int c = peek(lx, 0);
        if (c < 0 || c == '\n' || c == '\r')
            return gql__fail(lx->err, t->line, t->col, "Syntax Error: Unterminated string");
        if (c == '"') {
            adv(lx);
            break;
        }
        if (c == '\\') {
            adv(lx);
            if (escape(lx, out, &o) != 0)
                return -1;
            continue;
        }
        out[o++] = (char)c;
        adv(lx);
    }
    out[o] = '\0';
    t->value = out;
    return 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

static size_t indent_of(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* The next line of raw[*pos..n): its start and length; *pos moves past its terminator. */
static bool next_line(const char *raw, size_t n, size_t *pos, const char **ls, size_t *ll)
{
    if (*pos > n)
        return false;
    size_t i = *pos;
    while (i < n && raw[i] != '\n' && raw[i] != '\r')
        i++;
    *ls = raw + *pos;
    *ll = i - *pos;
    if (i < n && raw[i] == '\r' && i + 1 < n && raw[i + 1] == '\n')
        i++;
    *pos = i + 1;
    return true;
}

/* The spec's BlockStringValue(): common indentation removed, blank first and last lines
 * dropped, lines joined by "\n". raw already has \""" replaced by """. */
static char *block_value(gql__lexer *lx, const char *raw, size_t n)
{
    size_t common = (size_t)-1, pos = 0, ll, first_text = (size_t)-1, last_text = 0;
    const char *ls;
    for (size_t i = 0; next_line(raw, n, &pos, &ls, &ll); i++) {
        size_t ind = indent_of(ls, ll);
        if (i > 0 && ind < ll && ind < common)
            common = ind;
        if (!blank(ls, ll)) {
            first_text = first_text == (size_t)-1 ? i : first_text;
            last_text = i;
        }
    }
    char *out = gql__alloc(lx->arena, n + 1);
    size_t o = 0;
    pos = 0;
    for (size_t i = 0; first_text != (size_t)-1 && next_line(raw, n, &pos, &ls, &ll); i++) {
        if (i > 0 && common != (size_t)-1) {
            size_t cut = ll < common ? ll : common;
            ls += cut;
            ll -= cut;
        }
        if (i < first_text || i > last_text)
            continue;
        if (i > first_text)
            out[o++] = '\n';
        memcpy(out + o, ls, ll);
        o += ll;
    }
    out[o] = '\0';
    return out;
}

/* A block string (after the opening """). */
static int lex_block_string(gql__lexer *lx, gql__tok *t)
{
    char *raw = gql__alloc(lx->arena, lx->len - lx->pos + 1);
    size_t n = 0;
    for (;;) {
        int c = peek(lx, 0);
        if (c < 0)
            return gql__fail(lx->err, t->line, t->col, "Syntax Error: Unterminated string");
        if (c == '"' && peek(lx, 1) == '"' && peek(lx, 2) == '"') {
            adv(lx), adv(lx), adv(lx);
            break;
        }
        if (c == '\\' && peek(lx, 1) == '"' && peek(lx, 2) == '"' && peek(lx, 3) == '"') {
            adv(lx), adv(lx), adv(lx), adv(lx);
            memcpy(raw + n, "\"\"\"", 3);
            n += 3;
            continue;
        }
        raw[n++] = (char)c;
        adv(lx);
    }
    t->value = block_value(lx, raw, n);
    t->block = true;
    return 0;
}

static int lex_token(gql__lexer *lx, gql__tok *t)
{
    int c = peek(lx, 0);
    if (c < 0) {
        t->kind = TK_EOF;
        return 0;
    }
    if (strchr("!$&():=@[]{|}", c)) {
        t->kind = TK_PUNCT;
        t->punct = (char)c;
        adv(lx);
    } else if (c == '.') {
        if (peek(lx, 1) != '.' || peek(lx, 2) != '.')
            return gql__fail(lx->err, t->line, t->col, "Syntax Error: Unexpected character \".\"");
        adv(lx), adv(lx), adv(lx);
        t->kind = TK_PUNCT;
        t->punct = '.';
    } else if (name_start(c)) {
        while (name_char(peek(lx, 0)))
            adv(lx);
        t->kind = TK_NAME;
        t->value = copy(lx, t->start, (size_t)(lx->src + lx->pos - t->start));
    } else if (c == '-' || digit(c)) {
        return lex_number(lx, t);
    } else if (c == '"') {
        t->kind = TK_STRING;
        if (peek(lx, 1) == '"' && peek(lx, 2) == '"') {
            adv(lx), adv(lx), adv(lx);
            return lex_block_string(lx, t);
        }
        adv(lx);
        return lex_string(lx, t);
    } else if (c < 0x80) {
        return gql__fail(lx->err, t->line, t->col, "Syntax Error: Unexpected character \"%c\"", c);
    } else {
        return gql__fail(lx->err, t->line, t->col, "Syntax Error: Unexpected character");
    }
    return 0;
}

int gql__next(gql__lexer *lx, gql__tok *t)
{
    skip_ignored(lx);
    memset(t, 0, sizeof *t);
    t->start = lx->src + lx->pos;
    t->line = lx->line;
    t->col = lx->col;
    if (lx->pos < lx->len && ++lx->ntok > lx->max_tokens)
        return gql__fail(lx->err, t->line, t->col,
                         "the document has too many tokens (more than %zu)", lx->max_tokens);
    if (lex_token(lx, t) != 0)
        return -1;
    t->len = (size_t)(lx->src + lx->pos - t->start);
    return 0;
}
