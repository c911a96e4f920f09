/* cli: the operator commands (account, token, key, audit, store copy) on the same store
 * `turnkey serve` uses. See include/turnkey/cli.h. */
#include "turnkey/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnkey/api.h"
#include "internal.h"
#include "turnkey/audit.h"
#include "turnkey/datadir.h"
#include "turnkey/log.h"
#include "turnkey/store.h"
#include "turnkey/util.h"

void cli_usage(FILE *out)
{
    fprintf(
        out,
        "turnkey %s — a self-hostable TURN service, wire-compatible with Cloudflare Realtime "
        "TURN\n\n"
        "usage:\n"
        "  turnkey serve [--data DIR] [--api-listen ADDR:PORT] [--turn-listen ADDR:PORT] ...\n"
        "                                 run the API and relay (turnkey serve --help)\n"
        "  turnkey account create [--data DIR] [--name N]\n"
        "  turnkey account list [--data DIR]\n"
        "  turnkey token create [--data DIR] --account ID --permissions "
        "calls:read[,calls:write]\n"
        "                       [--name N] [--expires-in DURATION (90s, 15m, 12h, 30d)]\n"
        "  turnkey token list [--data DIR] [--account ID]\n"
        "  turnkey token revoke [--data DIR] TOKEN_ID\n"
        "  turnkey key list [--data DIR] --account ID\n"
        "  turnkey key secret add|list|delete --account ID --key UID [SECRET_ID]\n"
        "                     [--algorithm sha1|sha256] [--max-ttl SECONDS]\n"
        "  turnkey key policy get|clear KEY_ID [--account ID]\n"
        "  turnkey key policy set KEY_ID [--json DOC] [--daily-bytes N] [--monthly-bytes N]\n"
        "                     [--custom-identifier-daily-bytes N]\n"
        "                     [--custom-identifier-monthly-bytes N]\n"
        "                     [--action notify|stop_minting|end_allocations]\n"
        "                     [--thresholds P,P...] [--max-ttl SECONDS] [--allocation-quota N]\n"
        "                     [--mint-rate-per-key N] [--mint-rate-per-source N]\n"
        "                     [--bandwidth-bps N]   (merged like PATCH; none clears a field)\n"
        "  turnkey store copy --from STORE --to STORE   (copy a store; idempotent)\n"
        "every command takes --store postgres://… or sqlite:FILE in place of --data DIR\n"
        "  turnkey audit list [--data DIR] --account ID [QUERY (since=...&action.type=...)]\n"
        "  turnkey version\n",
        TURNKEY_VERSION);
}

typedef struct cli_opts {
    const char *data, *store, *from, *to, *name, *account, *permissions, *expires_in, *positional;
    const char *key, *algorithm, *max_ttl; /* key secret (issue 15) */
} cli_opts;

static int parse_cli(int argc, char **argv, cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data = getenv("TURNKEY_DATA") ? getenv("TURNKEY_DATA") : "./var";
    o->store = getenv("TURNKEY_STORE") ? getenv("TURNKEY_STORE") : "";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--data"))
            dst = &o->data;
        else if (!strcmp(a, "--store"))
            dst = &o->store;
        else if (!strcmp(a, "--from"))
            dst = &o->from;
        else if (!strcmp(a, "--to"))
            dst = &o->to;
        else if (!strcmp(a, "--name"))
            dst = &o->name;
        else if (!strcmp(a, "--account"))
            dst = &o->account;
        else if (!strcmp(a, "--permissions"))
            dst = &o->permissions;
        else if (!strcmp(a, "--expires-in"))
            dst = &o->expires_in;
        else if (!strcmp(a, "--key"))
            dst = &o->key;
        else if (!strcmp(a, "--algorithm"))
            dst = &o->algorithm;
        else if (!strcmp(a, "--max-ttl"))
            dst = &o->max_ttl;
        else if (a[0] == '-') {
            fprintf(stderr, "turnkey: unknown option '%s'\n", a);
            return -1;
        } else if (!o->positional) {
            o->positional = a;
            continue;
        } else {
            fprintf(stderr, "turnkey: unexpected argument '%s'\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "turnkey: option %s needs a value\n", a);
            return -1;
        }
        *dst = argv[++i];
    }
    return 0;
}

/* Opens the store at loc (postgres://…, sqlite:FILE) or, when loc is empty, in the data
 * directory after checking its permissions. Unless create, a location without a store is
 * an error (an operator command must not make an empty one). */
store *cli_open_store(const char *data, const char *loc, bool create)
{
    char *err = NULL;
    if (loc && *loc) {
        if (!create && !store_exists(loc)) {
            fprintf(stderr, "turnkey: no store at %s\n", loc);
            return NULL;
        }
        store *s = store_open(loc, &err);
        if (!s) {
            fprintf(stderr, "turnkey: %s\n", err ? err : "cannot open store");
            store_free_err(err);
        }
        return s;
    }
    if (!create && !store_exists(data)) { /* before any check: change nothing */
        fprintf(stderr,
                "turnkey: no store in %s (no turnkey.db there): check --data / TURNKEY_DATA, or "
                "create one with `turnkey account create --data %s` or `turnkey serve`\n",
                data, data);
        return NULL;
    }
    if (datadir_check(data, create, &err) != DATADIR_OK) {
        fprintf(stderr, "turnkey: %s\n", err ? err : "no data directory");
        free(err);
        return NULL;
    }
    store *s = store_open(data, &err);
    if (!s) {
        fprintf(stderr, "turnkey: %s\n", err ? err : "cannot open store");
        store_free_err(err);
    }
    return s;
}

static int check_name(const char *name)
{
    if (name && (strlen(name) > API_MAX_NAME || !util_utf8_valid_no_cc(name, strlen(name)))) {
        fprintf(stderr, "turnkey: --name must be at most 1024 bytes of UTF-8 without control "
                        "characters\n");
        return -1;
    }
    return 0;
}

static int cmd_account(const char *sub, const cli_opts *o)
{
    int rc = 1;
    store *s = NULL;
    if (strcmp(sub, "create") && strcmp(sub, "list")) {
        fprintf(stderr, "turnkey: unknown command 'account %s' (create, list)\n", sub);
        return 2;
    }
    if (check_name(o->name) != 0 ||
        !(s = cli_open_store(o->data, o->store, !strcmp(sub, "create"))))
        goto out;
    if (!strcmp(sub, "create")) {
        store_account a;
        if (store_account_create(s, o->name, util_now(), &a) != STORE_OK) {
            fprintf(stderr, "turnkey: could not create the account (store error)\n");
            goto out;
        }
        json_t *nv = json_pack("{s:s, s:s}", "id", a.id, "name", a.name);
        audit_cli_record(s, a.id, "create", "account", a.id, NULL, nv);
        json_decref(nv);
        fprintf(stderr, "created account '%s'\n", a.name);
        printf("%s\n", a.id);
        store_account_clear(&a);
    } else {
        store_account *list;
        size_t n;
        if (store_account_list(s, &list, &n) != STORE_OK) {
            fprintf(stderr, "turnkey: could not list accounts (store error)\n");
            goto out;
        }
        printf("%-32s  %-20s  %s\n", "ID", "CREATED", "NAME");
        for (size_t i = 0; i < n; i++) {
            char ts[32];
            util_rfc3339(list[i].created, ts);
            printf("%-32s  %-20s  %s\n", list[i].id, ts, list[i].name);
        }
        store_account_array_free(list, n);
    }
    rc = 0;
out:
    store_close(s);
    return rc;
}

static int token_create(store *s, const cli_opts *o)
{
    unsigned perms = store_perms_parse(o->permissions);
    int64_t expires = 0, now = util_now();
    if (!o->account || !perms) {
        fprintf(stderr, "turnkey: token create needs --account ID and --permissions "
                        "calls:read[,calls:write]\n");
        return 1;
    }
    if (o->expires_in) {
        int64_t d = util_parse_duration(o->expires_in);
        if (d <= 0) {
            fprintf(stderr, "turnkey: --expires-in must be a duration like 90s, 15m, 12h or 30d\n");
            return 1;
        }
        expires = now + d;
    }
    if (check_name(o->name) != 0)
        return 1;
    store_token t;
    char tok[STORE_TOKEN_LEN + 1];
    int rc = store_token_create(s, o->account, o->name, perms, expires, now, &t, tok);
    if (rc == STORE_NOT_FOUND) {
        fprintf(stderr, "turnkey: no account %s (see turnkey account list)\n", o->account);
        return 1;
    }
    if (rc != STORE_OK) {
        fprintf(stderr, "turnkey: could not create the token (store error)\n");
        return 1;
    }
    char p[64], exp[32] = "never";
    store_perms_format(perms, p, sizeof p);
    if (expires)
        util_rfc3339(expires, exp);
    json_t *nv = json_pack("{s:s, s:s, s:s, s:s}", "id", t.id, "name", t.name, "permissions", p,
                           "expires", exp);
    audit_cli_record(s, t.account_id, "create", "token", t.id, NULL, nv);
    json_decref(nv);
    fprintf(stderr, "created token %s for account %s (%s, expires %s); it is shown once:\n", t.id,
            t.account_id, p, exp);
    printf("%s\n", tok);
    store_token_clear(&t);
    return 0;
}

static int token_list(store *s, const cli_opts *o)
{
    store_token *list;
    size_t n;
    if (store_token_list(s, o->account, &list, &n) != STORE_OK) {
        fprintf(stderr, "turnkey: could not list tokens (store error)\n");
        return 1;
    }
    int64_t now = util_now();
    printf("%-32s  %-32s  %-22s  %-8s  %-20s  %s\n", "ID", "ACCOUNT", "PERMISSIONS", "STATUS",
           "EXPIRES", "NAME");
    for (size_t i = 0; i < n; i++) {
        char p[64], exp[32] = "never";
        store_perms_format(list[i].perms, p, sizeof p);
        if (list[i].expires)
            util_rfc3339(list[i].expires, exp);
        const char *status = list[i].revoked                               ? "revoked"
                             : (list[i].expires && list[i].expires <= now) ? "expired"
                                                                           : "active";
        printf("%-32s  %-32s  %-22s  %-8s  %-20s  %s\n", list[i].id, list[i].account_id, p, status,
               exp, list[i].name);
    }
    store_token_array_free(list, n);
    return 0;
}

/* The account of token id (for its audit record); "" when not found. */
static void token_account(store *s, const char *id, char acct[STORE_ID_LEN + 1])
{
    store_token *list;
    size_t n;
    if (store_token_list(s, NULL, &list, &n) != STORE_OK)
        return;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i].id, id))
            snprintf(acct, STORE_ID_LEN + 1, "%s", list[i].account_id);
    store_token_array_free(list, n);
}

static int cmd_audit(const char *sub, const cli_opts *o)
{
    if (strcmp(sub, "list") || !o->account) {
        fprintf(stderr, "turnkey: usage: turnkey audit list --account ID [--data DIR] [QUERY]\n");
        return 2;
    }
    store *s = cli_open_store(o->data, o->store, false);
    if (!s)
        return 1;
    int rc = audit_cli_list(s, o->account, o->positional, stdout, stderr);
    store_close(s);
    return rc;
}

static int cmd_token(const char *sub, const cli_opts *o)
{
    int rc = 1;
    store *s = NULL;
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
        fprintf(stderr, "turnkey: unknown command 'token %s' (create, list, revoke)\n", sub);
        return 2;
    }
    if (!strcmp(sub, "revoke") && !o->positional) {
        fprintf(stderr, "turnkey: token revoke needs a TOKEN_ID (see turnkey token list)\n");
        return 2;
    }
    if (!(s = cli_open_store(o->data, o->store, false)))
        goto out;
    if (!strcmp(sub, "create"))
        rc = token_create(s, o);
    else if (!strcmp(sub, "list"))
        rc = token_list(s, o);
    else {
        char acct[STORE_ID_LEN + 1] = "";
        token_account(s, o->positional, acct);
        int r = store_token_revoke(s, o->positional, util_now());
        if (r == STORE_OK && acct[0])
            audit_cli_record(s, acct, "revoke", "token", o->positional, NULL, NULL);
        if (r == STORE_NOT_FOUND)
            fprintf(stderr, "turnkey: no active token %s\n", o->positional);
        else if (r != STORE_OK)
            fprintf(stderr, "turnkey: could not revoke the token (store error)\n");
        else
            printf("revoked token %s\n", o->positional);
        rc = r == STORE_OK ? 0 : 1;
    }
out:
    store_close(s);
    return rc;
}

static int cmd_key(const char *sub, const cli_opts *o)
{
    if (strcmp(sub, "list") || !o->account) {
        fprintf(stderr, "turnkey: usage: turnkey key list --account ID [--data DIR]\n");
        return 2;
    }
    store *s = cli_open_store(o->data, o->store, false);
    if (!s)
        return 1;
    store_key *keys;
    size_t n;
    int rc = 1;
    if (store_key_list(s, o->account, &keys, &n) == STORE_OK) {
        printf("%-32s  %-24s  %-24s  %s\n", "UID", "CREATED", "MODIFIED", "NAME");
        for (size_t i = 0; i < n; i++) {
            char c[32], m[32];
            util_rfc3339_ms(keys[i].created, c);
            util_rfc3339_ms(keys[i].modified, m);
            printf("%-32s  %-24s  %-24s  %s\n", keys[i].uid, c, m, keys[i].name);
        }
        store_key_array_free(keys, n);
        rc = 0;
    } else {
        fprintf(stderr, "turnkey: could not list keys (store error)\n");
    }
    store_close(s);
    return rc;
}

/* --- serve ----------------------------------------------------------------------------- */

/* Control-plane changes that must reach live allocations. */
static int cmd_store(const char *sub, const cli_opts *o)
{
    if (strcmp(sub, "copy") || !o->from || !o->to) {
        fprintf(stderr, "turnkey: usage: turnkey store copy --from STORE --to STORE\n");
        return 2;
    }
    int rc = 1;
    store *from = NULL, *to = NULL;
    char *err = NULL;
    store_copy_counts c;
    if (!(from = cli_open_store(o->from, o->from, false)) ||
        !(to = cli_open_store(o->to, o->to, true)))
        goto out;
    if (store_copy(from, to, util_now(), &c, &err) != STORE_OK) {
        fprintf(stderr, "turnkey: %s\n", err);
        goto out;
    }
    printf("copied %zu record(s); verified in the target: %zu account(s), %zu token(s), %zu "
           "key(s), %zu revocation(s), %zu shared secret(s), %zu key policy(ies)\n",
           c.copied, c.accounts, c.tokens, c.keys, c.revocations, c.secrets, c.policies);
    rc = 0;
out:
    free(err);
    store_close(from);
    store_close(to);
    return rc;
}

int cli_run(const char *cmd, const char *sub, int argc, char **argv)
{
    cli_opts o;
    log_set_level(LOG_WARN); /* operator commands: only the answer and real problems */
    if (!strcmp(cmd, "key") && !strcmp(sub, "policy")) /* its own options */
        return cli__policy(argc, argv);
    bool secret = !strcmp(cmd, "key") && !strcmp(sub, "secret"); /* parsed below */
    if (!secret && parse_cli(argc, argv, &o) != 0)
        return 2;
    if (!strcmp(cmd, "account"))
        return cmd_account(sub, &o);
    if (!strcmp(cmd, "token"))
        return cmd_token(sub, &o);
    if (!strcmp(cmd, "store"))
        return cmd_store(sub, &o);
    if (!strcmp(cmd, "audit"))
        return cmd_audit(sub, &o);
    if (!strcmp(cmd, "key") && !strcmp(sub, "secret")) { /* key secret ACTION ... */
        if (argc < 1 || parse_cli(argc - 1, argv + 1, &o) != 0)
            return cli__secret(&(cli__secret_args){.action = NULL});
        cli__secret_args sa = {argv[0], o.data,      o.store,   o.account,
                               o.key,   o.algorithm, o.max_ttl, o.positional};
        return cli__secret(&sa);
    }
    if (!strcmp(cmd, "key"))
        return cmd_key(sub, &o);
    fprintf(stderr, "turnkey: unknown command '%s' (see turnkey help)\n", cmd);
    return 2;
}

bool cli_is_command(const char *cmd)
{
    static const char *const cmds[] = {"account", "token", "key", "store", "audit"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i]))
            return true;
    return false;
}
