/* libFuzzer target: the stream framer. The input is framed three ways — all at once,
 * byte by byte, and in chunks whose sizes come from the input — and every way must produce
 * the same frames and end in the same state. */
#include "turnkey/stun.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 1024

typedef struct {
    int kind;
    size_t frame_len, consumed;
} rec;

typedef struct {
    rec frames[MAX_FRAMES];
    size_t n;
    int end; /* NEED_MORE or the fatal error */
    size_t left;
} result;

/* Frames data fed in chunks of chunk(i) bytes (0 = all at once) into an exact-size buffer. */
static void run(const uint8_t *data, size_t size, const uint8_t *sizes, size_t nsizes, size_t fixed,
                result *res)
{
    uint8_t *acc = malloc(size ? size : 1);
    size_t have = 0, pos = 0, i = 0;
    res->n = 0;
    res->end = STUN_ERR_NEED_MORE;
    for (;;) {
        size_t c = fixed ? fixed : nsizes ? 1 + sizes[i % nsizes] % 64 : size;
        i++;
        if (c > size - pos)
            c = size - pos;
        memcpy(acc + have, data + pos, c);
        have += c;
        pos += c;
        for (;;) {
            size_t fl, cons;
            int rc = stun_frame_next(acc, have, &fl, &cons);
            if (rc == STUN_ERR_NEED_MORE) {
                if (cons <= have)
                    abort(); /* must ask for more than it has */
                break;
            }
            if (rc < 0) {
                res->end = rc;
                goto out;
            }
            if (cons > have || fl > cons || cons - fl > 3 || (rc == STUN_FRAME_STUN && fl != cons))
                abort();
            if (res->n < MAX_FRAMES)
                res->frames[res->n++] = (rec){rc, fl, cons};
            memmove(acc, acc + cons, have - cons);
            have -= cons;
        }
        if (pos == size)
            break;
    }
out:
    res->left = have + (size - pos);
    free(acc);
}

static void same(const result *a, const result *b)
{
    if (a->n != b->n || a->end != b->end || a->left != b->left)
        abort();
    for (size_t i = 0; i < a->n; i++)
        if (a->frames[i].kind != b->frames[i].kind ||
            a->frames[i].frame_len != b->frames[i].frame_len ||
            a->frames[i].consumed != b->frames[i].consumed)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result *r = calloc(3, sizeof *r); /* large: off the stack */
    if (!r)
        return 0;
    run(data, size, NULL, 0, 0, &r[0]);
    run(data, size, NULL, 0, 1, &r[1]);
    run(data, size, data, size < 16 ? size : 16, 0, &r[2]);
    same(&r[0], &r[1]);
    same(&r[0], &r[2]);
    free(r);
    return 0;
}
