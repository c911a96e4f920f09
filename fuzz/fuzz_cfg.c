/* Fuzz target: the input's lines as `turnkey serve` arguments (listener lists, --external-ip,
 * --public-host ...), loaded with cfg_load and turned into iceServers URLs; and the first line
 * alone as an --external-ip value. --config, --help and --print-config are dropped (no
 * files, no stdout). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "turnkey/cfg.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"serve"};
    int argc = 1;
    for (char *save = NULL, *t = strtok_r(s, "\n", &save); t && argc <= MAX_ARGS;
         t = strtok_r(NULL, "\n", &save))
        if (!strstr(t, "--config") && strcmp(t, "--help") && strcmp(t, "-h") &&
            strcmp(t, "--print-config"))
            argv[argc++] = t;
    struct sockaddr_storage pub, priv;
    bool hp;
    if (argc > 1)
        (void)cfg_parse_external(argv[1], &pub, &priv, &hp);
    FILE *err = fopen("/dev/null", "w");
    cfg c;
    if (cfg_load(&c, argc, argv, err) == 0) {
        char **stun, **turn;
        size_t ns, nt;
        if (cfg_ice_urls(&c, &stun, &ns, &turn, &nt, err) == 0) {
            cfg_free_urls(stun, ns);
            cfg_free_urls(turn, nt);
        }
    }
    cfg_free(&c);
    fclose(err);
    free(s);
    return 0;
}
