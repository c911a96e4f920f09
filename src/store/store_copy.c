/* store_copy: copies one store into another (SQLite to PostgreSQL and back) through the
 * backends' ops, record by record, skipping what the target already holds, then checks
 * every source record is in the target. See store_copy in include/turnkey/store.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/store.h"
#include "turnkey/util.h"

typedef struct copy_run {
    store *from, *to;
    int64_t now;
    store_copy_counts *c;
    char **err;
} copy_run;

static int fail(copy_run *r, const char *what, const char *id)
{
    *r->err = util_xasprintf("store copy: %s %s", what, id);
    return STORE_ERROR;
}

static bool same_account(const store_account *a, const store_account *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->name, b->name) && a->created == b->created;
}

static int copy_account(copy_run *r, const store_account *a)
{
    store_account got = {0};
    int rc = r->to->ops->account_get(r->to->ctx, a->id, &got);
    if (rc == STORE_NOT_FOUND) {
        if (r->to->ops->account_create(r->to->ctx, a) != STORE_OK)
            return fail(r, "cannot write account", a->id);
        r->c->copied++;
        rc = r->to->ops->account_get(r->to->ctx, a->id, &got);
    }
    bool ok = rc == STORE_OK && same_account(a, &got);
    store_account_clear(&got);
    if (!ok)
        return fail(r, "target differs for account", a->id);
    r->c->accounts++;
    return STORE_OK;
}

static bool same_token(const store_token *a, const store_token *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->account_id, b->account_id) &&
           !strcmp(a->name, b->name) && a->perms == b->perms && a->created == b->created &&
           a->expires == b->expires && a->revoked == b->revoked &&
           !strcmp(a->token_hash, b->token_hash);
}

static int copy_token(copy_run *r, const store_token *t)
{
    store_token got = {0};
    int rc = r->to->ops->token_by_hash(r->to->ctx, t->token_hash, &got);
    if (rc == STORE_NOT_FOUND) {
        if (r->to->ops->token_create(r->to->ctx, t) != STORE_OK)
            return fail(r, "cannot write token", t->id);
        r->c->copied++;
        rc = r->to->ops->token_by_hash(r->to->ctx, t->token_hash, &got);
    } else if (rc == STORE_OK && !got.revoked && t->revoked) { /* revoked since a copy */
        if (r->to->ops->token_revoke(r->to->ctx, t->id, t->revoked) != STORE_OK)
            return fail(r, "cannot revoke token", t->id);
        r->c->copied++;
        store_token_clear(&got);
        rc = r->to->ops->token_by_hash(r->to->ctx, t->token_hash, &got);
    }
    bool ok = rc == STORE_OK && same_token(t, &got);
    store_token_clear(&got);
    if (!ok)
        return fail(r, "target differs for token", t->id);
    r->c->tokens++;
    return STORE_OK;
}

static bool same_key(const store_key *a, const store_key *b)
{
    return !strcmp(a->uid, b->uid) && !strcmp(a->account_id, b->account_id) &&
           !strcmp(a->name, b->name) && a->created == b->created && a->modified == b->modified &&
           !strcmp(a->key_hash, b->key_hash) && memcmp(a->secret, b->secret, STORE_SECRET_LEN) == 0;
}

static int copy_key(copy_run *r, const store_key *k)
{
    store_key got = {0};
    int rc = r->to->ops->key_by_uid(r->to->ctx, k->uid, &got);
    if (rc == STORE_NOT_FOUND) {
        if (r->to->ops->key_create(r->to->ctx, k, SIZE_MAX) != STORE_OK)
            return fail(r, "cannot write key", k->uid);
        r->c->copied++;
        rc = r->to->ops->key_by_uid(r->to->ctx, k->uid, &got);
    }
    bool ok = rc == STORE_OK && same_key(k, &got);
    store_key_clear(&got);
    if (!ok)
        return fail(r, "target differs for key", k->uid);
    r->c->keys++;
    return STORE_OK;
}

static int copy_account_children(copy_run *r, const char *account_id)
{
    store_token *toks = NULL;
    store_key *keys = NULL;
    size_t nt = 0, nk = 0;
    int rc = r->from->ops->token_list(r->from->ctx, account_id, &toks, &nt);
    for (size_t i = 0; rc == STORE_OK && i < nt; i++)
        rc = copy_token(r, &toks[i]);
    if (rc == STORE_OK)
        rc = r->from->ops->key_list(r->from->ctx, account_id, &keys, &nk);
    for (size_t i = 0; rc == STORE_OK && i < nk; i++) {
        rc = copy_key(r, &keys[i]);
        if (rc == STORE_OK && store__copy_secrets(r->from, r->to, keys[i].uid, &r->c->copied,
                                                  &r->c->secrets) != STORE_OK)
            rc = fail(r, "target differs for the shared secrets of key", keys[i].uid);
        if (rc == STORE_OK && store__copy_policy(r->from, r->to, keys[i].uid, &r->c->copied,
                                                 &r->c->policies) != STORE_OK)
            rc = fail(r, "target differs for the policy of key", keys[i].uid);
    }
    store_token_array_free(toks, nt);
    store_key_array_free(keys, nk);
    return rc;
}

/* Revocations: collected from the source first (a callback must not write), then added
 * (adding an existing one changes nothing) and checked. */
typedef struct rev {
    char key_uid[STORE_ID_LEN + 1];
    char hash[65];
    int64_t expires;
} rev;

typedef struct revs {
    rev *v;
    size_t n, cap;
} revs;

static void collect(void *arg, const char *key_uid, const char *username_hash, int64_t expires)
{
    revs *rs = arg;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->v = util_xrealloc(rs->v, rs->cap * sizeof *rs->v);
    }
    rev *e = &rs->v[rs->n++];
    snprintf(e->key_uid, sizeof e->key_uid, "%s", key_uid);
    snprintf(e->hash, sizeof e->hash, "%s", username_hash);
    e->expires = expires;
}

static int copy_revocations(copy_run *r)
{
    revs rs = {0};
    int rc = r->from->ops->revoke_each(r->from->ctx, r->now, collect, &rs);
    if (rc != STORE_OK)
        *r->err = util_xstrdup("store copy: cannot read the source's revocations");
    for (size_t i = 0; rc == STORE_OK && i < rs.n; i++) {
        bool there = false;
        rc = r->to->ops->revoke_check(r->to->ctx, rs.v[i].key_uid, rs.v[i].hash, &there);
        if (rc == STORE_OK && !there) {
            rc = r->to->ops->revoke_add(r->to->ctx, rs.v[i].key_uid, rs.v[i].hash, rs.v[i].expires,
                                        0, STORE_NO_LIMIT);
            r->c->copied++;
            if (rc == STORE_OK)
                rc = r->to->ops->revoke_check(r->to->ctx, rs.v[i].key_uid, rs.v[i].hash, &there);
        }
        if (rc != STORE_OK || !there)
            rc = fail(r, "target lacks a revocation of key", rs.v[i].key_uid);
        else
            r->c->revocations++;
    }
    free(rs.v);
    return rc;
}

int store_copy(store *from, store *to, int64_t now, store_copy_counts *counts, char **err)
{
    memset(counts, 0, sizeof *counts);
    *err = NULL;
    copy_run r = {.from = from, .to = to, .now = now, .c = counts, .err = err};
    store_account *accts = NULL;
    size_t na = 0;
    int rc = from->ops->account_list(from->ctx, &accts, &na);
    if (rc != STORE_OK)
        *err = util_xstrdup("store copy: cannot read the source's accounts");
    for (size_t i = 0; rc == STORE_OK && i < na; i++)
        rc = copy_account(&r, &accts[i]);
    for (size_t i = 0; rc == STORE_OK && i < na; i++)
        rc = copy_account_children(&r, accts[i].id);
    store_account_array_free(accts, na);
    if (rc == STORE_OK)
        rc = copy_revocations(&r);
    if (rc != STORE_OK && !*err)
        *err = util_xstrdup("store copy: store error");
    return rc;
}
