/* Fuzz target: the usage API's query string (usage_params_parse): whatever the input, a
 * success leaves a query the store accepts (known step, since < until, bounded page). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/usage.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    usage_params p;
    char err[160];
    for (int allow_key = 0; allow_key < 2; allow_key++) {
        err[0] = '\0';
        if (usage_params_parse(s, 1700000000, allow_key, &p, err, sizeof err) != 0) {
            if (!err[0] || !memchr(err, '\0', sizeof err))
                abort();
            continue;
        }
        int64_t st = p.f.step;
        if (st != 60 && st != 300 && st != 900 && st != 3600 && st != 86400)
            abort();
        if (p.f.since >= p.f.until || p.f.since < 0 || p.page < 1 || p.per_page < 1 ||
            p.per_page > USAGE_PER_PAGE_MAX || p.f.limit != p.per_page ||
            p.f.offset != (p.page - 1) * p.per_page)
            abort();
        if (!allow_key && (p.f.group_by & STORE_USAGE_BY_KEY))
            abort();
        if (p.f.group_by &
            ~(unsigned)(STORE_USAGE_BY_KEY | STORE_USAGE_BY_CUSTOM_ID | STORE_USAGE_BY_USERNAME))
            abort();
    }
    free(s);
    return 0;
}
