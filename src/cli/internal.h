/* cli internals shared by its files (not a public header). */
#ifndef TURNKEY_CLI_INTERNAL_H
#define TURNKEY_CLI_INTERNAL_H

/* `turnkey key secret add|list|delete` (cli_secret.c; issue 15). */
typedef struct cli__secret_args {
    const char *action; /* add, list, delete */
    const char *data, *store, *account, *key, *algorithm, *max_ttl;
    const char *id; /* delete: the secret id */
} cli__secret_args;
int cli__secret(const cli__secret_args *a);

/* `turnkey key policy get|set|clear KEY_ID ...` (cli_policy.c; issue 14 §4): argv from the
 * action on. */
int cli__policy(int argc, char **argv);

#endif
