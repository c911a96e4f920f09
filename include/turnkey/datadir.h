/* datadir: the data directory (SQLite store, WAL/SHM, the self-signed TLS pair) is private
 * to the service. turnkey runs with umask 077, so whatever it creates there is 0700/0600;
 * datadir_check refuses a directory whose contents others could read or change.
 *
 * Decisions (docs/operations.md "Data directory"):
 *   - the directory itself, if this user owns it and it has group/other bits (an operator's
 *     `mkdir`, a package's 0755), is tightened to 0700 and a warning is logged;
 *   - a directory owned by someone else with group/other bits, and any file or directory
 *     inside with group/other bits, is an error naming the path and the fix (chmod). A file
 *     others could already read (the store holds every TURN key's secret) is the operator's
 *     to look at, not something to paper over. */
#ifndef TURNKEY_DATADIR_H
#define TURNKEY_DATADIR_H

#include <stdbool.h>

enum datadir_rc { DATADIR_OK = 0, DATADIR_MISSING = 1, DATADIR_ERROR = -1 };

/* Checks (and with create, first makes: mkdir 0700) the directory dir. Returns DATADIR_OK,
 * DATADIR_MISSING (dir does not exist and create is false; nothing is made) or
 * DATADIR_ERROR with *err (free()) a one-line reason that names the path and the fix. */
int datadir_check(const char *dir, bool create, char **err);

#endif
