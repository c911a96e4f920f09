/* Fuzz target: the audit_logs query string (audit_params_parse, audit_parse_time) and the
 * log record formatter with the input as a value (one line out, always). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/audit.h"
#include "turnkey/log.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    audit_params p;
    char err[128];
    if (audit_params_parse(s, "acct", &p, err, sizeof err) == 0) {
        if (p.page < 1 || p.per_page < 1 || p.per_page > AUDIT_PER_PAGE_MAX)
            abort();
        if (p.q.limit != p.per_page || p.q.offset != (p.page - 1) * p.per_page)
            abort();
    }
    int64_t ms;
    (void)audit_parse_time(s, &ms);
    char line[512];
    log_field f[] = {LOG_B("v", data, size)};
    for (int fmt = LOG_TEXT; fmt <= LOG_JSON; fmt++) {
        size_t n = log_format_event(line, sizeof line, (enum log_format)fmt, "T", LOG_INFO, "m", 0,
                                    s, f, 1);
        if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1) || strlen(line) != n)
            abort();
    }
    free(s);
    return 0;
}
