/* cli: the operator commands — `turnkey account|token|key|audit|store …` — working on the
 * store that `turnkey serve` uses (--data DIR or --store URL). Each prints its answer on
 * stdout (the new secret or id on the last line) and returns the exit status: 0, or
 * non-zero with a one-line reason on stderr. */
#ifndef TURNKEY_CLI_H
#define TURNKEY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "turnkey/store.h"

#define TURNKEY_VERSION "0.1.0"

/* True for the command names cli_run handles. */
bool cli_is_command(const char *cmd);
/* Runs `turnkey CMD SUB ARGS…` (argv: the arguments after SUB). */
int cli_run(const char *cmd, const char *sub, int argc, char **argv);
/* The top-level usage text (every command). */
void cli_usage(FILE *out);
/* Opens the store named by loc (a URL, when set) or the data directory data. With create
 * false a missing store is an error (said on stderr) and nothing is created. NULL on error. */
store *cli_open_store(const char *data, const char *loc, bool create);

#endif
