/* Fuzz target: arbitrary bytes as a config file (turnkey and coturn names, bare flags,
 * ranges) through cfg_load; fuzz_cfg covers flags. Invariants (abort()): cfg_load answers 0
 * or -1; an error leaves one message; a file that loads prints (--print-config) a file that
 * loads to the same configuration. The file is a memfd named by /proc/self/fd/N. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "turnkey/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads text as the --config file; returns cfg_load's answer; err text in errbuf. */
static int load(cfg *c, const void *text, size_t len, char *errbuf, size_t cap)
{
    int fd = memfd_create("fuzz-cfg", MFD_CLOEXEC);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char a0[] = "serve", a1[] = "--config";
    char *argv[] = {a0, a1, path, NULL};
    FILE *err = fmemopen(errbuf, cap, "w");
    int rc = cfg_load(c, 3, argv, err);
    fclose(err);
    close(fd);
    return rc;
}

static char *print(const cfg *c, size_t *n)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    cfg_print_config(c, f);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char errbuf[8192];
    cfg c;
    memset(errbuf, 0, sizeof errbuf);
    int rc = load(&c, data, size, errbuf, sizeof errbuf);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1 && strncmp(errbuf, "turnkey: ", 9) != 0)
        abort();
    if (rc == 0 && size < 3000) { /* printed lines stay under the line limit */
        size_t n1, n2;
        char *p1 = print(&c, &n1);
        cfg c2;
        if (load(&c2, p1, n1, errbuf, sizeof errbuf) != 0)
            abort();
        char *p2 = print(&c2, &n2);
        if (n1 != n2 || memcmp(p1, p2, n1) != 0)
            abort();
        cfg_free(&c2);
        free(p1);
        free(p2);
    }
    cfg_free(&c);
    return 0;
}
