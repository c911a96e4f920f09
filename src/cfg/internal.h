/* cfg internals shared by cfg.c and cfg_coturn.c. */
#ifndef TURNKEY_CFG_INTERNAL_H
#define TURNKEY_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What cfg_coturn.c may do to the configuration being loaded (turnkey option names). */
typedef struct cfg__ops {
    /* Sets a scalar option or adds to a list; 0 or -1 with the message printed. */
    int (*emit)(void *ctx, const char *name, const char *value);
    /* The current value of a string option ("" if none). */
    const char *(*get)(void *ctx, const char *name);
    /* The current entries of a list option. */
    char *const *(*get_list)(void *ctx, const char *name, size_t *n);
    /* Empties a list option (as set by the source being read). */
    void (*clear)(void *ctx, const char *name);
    void *ctx;
} cfg__ops;

#define CFG__COTURN_MAX_IPS 16

/* coturn settings whose effect needs the whole file: listening-ip x listening-port /
 * tls-listening-port, and no-udp / no-tcp. */
typedef struct cfg__coturn {
    char *ips[CFG__COTURN_MAX_IPS];
    size_t n_ips;
    char *port, *tls_port;
    bool no_udp, no_tcp;
} cfg__coturn;

/* Applies one config-file line that uses a coturn (turnserver.conf) name. val is NULL for a
 * bare flag line ("no-tls"). Returns 1 when name is not a coturn name this table knows, 0
 * when applied (or noted in st), -1 on error (one line naming src, e.g. "FILE:LINE"). */
int cfg__coturn_apply(cfg__coturn *st, const char *name, const char *val, const cfg__ops *ops,
                      const char *src, FILE *err);
/* At the end of a file: turns what st noted into listener lists. 0 or -1 (message on err).
 * Disposes of st either way. */
int cfg__coturn_finish(cfg__coturn *st, const cfg__ops *ops, const char *src, FILE *err);
void cfg__coturn_dispose(cfg__coturn *st);
/* Comment lines listing the accepted coturn names (for --print-config). */
void cfg__coturn_print(FILE *out);

#endif
