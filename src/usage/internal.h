/* usage internals shared by the files of src/usage (not a public header): the small chained
 * hash table both the worker carry and the aggregator use. */
#ifndef TURNKEY_USAGE_INTERNAL_H
#define TURNKEY_USAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every element starts with a node (the table frees elements with free()). */
typedef struct usage__node {
    struct usage__node *next;
    uint64_t hash;
} usage__node;

typedef struct usage__table {
    usage__node **b;
    size_t nb, n; /* buckets (a power of two), elements */
} usage__table;

void usage__table_init(usage__table *t);
void usage__table_clear(usage__table *t); /* frees every element */
void usage__table_free(usage__table *t);
/* Inserts x (x->hash set); true if the table grew (bucket indexes changed). */
bool usage__table_insert(usage__table *t, usage__node *x);
static inline usage__node **usage__table_bucket(const usage__table *t, uint64_t h)
{
    return &t->b[h & (t->nb - 1)];
}
/* FNV-1a over key, customIdentifier and username (each followed by a separator). */
uint64_t usage__hash_str(uint64_t h, const char *s);
uint64_t usage__hash_id(const char *key, const char *cid, const char *user);
#define USAGE__HASH_SEED 14695981039346656037ull

#endif
