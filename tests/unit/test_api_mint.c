/* api: the credential plane's key authentication against a complete key cache (the way every
 * node runs it: the change feed follows the store). An unknown key id is answered from
 * memory, as a wrong bearer is — never by a store query — and a key this api just created
 * mints at once. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test.h"
#include "turnkey/api.h"
#include "turnkey/keycache.h"
#include "turnkey/log.h"
#include "turnkey/store.h"

static api_response post(api_server *a, const char *path, const char *bearer, const char *body)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", bearer);
    api_request req = {.method = "POST",
                       .path = path,
                       .authorization = auth,
                       .body = (const uint8_t *)body,
                       .body_len = body ? strlen(body) : 0,
                       .remote_addr = "192.0.2.9"};
    api_response r;
    api_handle(a, &req, 1700000000000LL, &r);
    return r;
}

static int mint(api_server *a, const char *uid, const char *bearer, char **body)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/turn/keys/%s/credentials/generate-ice-servers", uid);
    api_response r = post(a, path, bearer, "{\"ttl\":600}");
    int status = r.status;
    if (body)
        *body = r.body ? strdup(r.body) : NULL;
    api_response_clear(&r);
    return status;
}

static void t_complete_cache_answers_from_memory(void)
{
    char *err = NULL;
    store *st = store_open(":memory:", &err);
    CHECK(st != NULL);
    store_account acct;
    store_token tok;
    char token[STORE_TOKEN_LEN + 1];
    CHECK_INT(store_account_create(st, "a", 1, &acct), STORE_OK);
    CHECK_INT(
        store_token_create(st, acct.id, "t", STORE_PERM_READ | STORE_PERM_WRITE, 0, 1, &tok, token),
        STORE_OK);
    keycache *kc = keycache_new(st);
    CHECK_INT(keycache_preload(kc), 0);
    keycache_set_complete(kc, true); /* what the change feed does at start */
    api_config cfg = {.keys = kc};
    api_server *a = api_new(st, &cfg, NULL);

    /* a key created through this api mints at once (no feed runs here) */
    char path[160];
    snprintf(path, sizeof path, "/client/v4/accounts/%s/calls/turn_keys", acct.id);
    api_response r = post(a, path, token, "{\"name\":\"k\"}");
    CHECK_INT(r.status, 201);
    json_t *doc = json_loads(r.body ? r.body : "", 0, NULL);
    const char *uid = json_string_value(json_object_get(json_object_get(doc, "result"), "uid"));
    const char *bearer = json_string_value(json_object_get(json_object_get(doc, "result"), "key"));
    CHECK(uid && bearer);
    if (uid && bearer)
        CHECK_INT(mint(a, uid, bearer, NULL), 201);

    /* a key the store has but this cache was never told of (another node's, before the feed
     * brings it) is unknown here: the answer comes from memory, not from a store query */
    store_key behind;
    char behind_bearer[65];
    CHECK_INT(store_key_create(st, acct.id, "b", 10, 1, &behind, behind_bearer), STORE_OK);
    char *unknown_body = NULL, *wrong_body = NULL;
    CHECK_INT(mint(a, behind.uid, behind_bearer, &unknown_body), 401);
    /* and that answer is the wrong bearer's, byte for byte */
    if (uid)
        CHECK_INT(mint(a, uid, behind_bearer, &wrong_body), 401);
    CHECK(unknown_body && wrong_body && strcmp(unknown_body, wrong_body) == 0);
    /* once the cache learns the key (the feed's refresh), it mints */
    CHECK_INT(keycache_refresh(kc, behind.uid), 0);
    CHECK_INT(mint(a, behind.uid, behind_bearer, NULL), 201);

    free(unknown_body);
    free(wrong_body);
    json_decref(doc);
    api_response_clear(&r);
    store_key_clear(&behind);
    store_token_clear(&tok);
    store_account_clear(&acct);
    api_free(a);
    keycache_free(kc);
    store_close(st);
}

/* Before the cache is complete (a process that never preloaded), a key missing from memory
 * is still looked up in the store. */
static void t_incomplete_cache_falls_back(void)
{
    char *err = NULL;
    store *st = store_open(":memory:", &err);
    CHECK(st != NULL);
    store_account acct;
    CHECK_INT(store_account_create(st, "a", 1, &acct), STORE_OK);
    store_key k;
    char bearer[65];
    CHECK_INT(store_key_create(st, acct.id, "k", 10, 1, &k, bearer), STORE_OK);
    api_config cfg = {0};
    api_server *a = api_new(st, &cfg, NULL);
    CHECK_INT(mint(a, k.uid, bearer, NULL), 201);
    store_key_clear(&k);
    store_account_clear(&acct);
    api_free(a);
    store_close(st);
}

int main(void)
{
    log_set_level(LOG_WARN);
    TK_RUN(t_complete_cache_answers_from_memory);
    TK_RUN(t_incomplete_cache_falls_back);
    return tk_test_summary();
}
