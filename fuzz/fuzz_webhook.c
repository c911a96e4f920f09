/* Fuzz target: the webhook URL check and event-type names (src/webhook/webhook_util.c):
 * whatever the input, an accepted URL is http:// or https:// with a host, printable ASCII,
 * at most WEBHOOK_URL_MAX bytes, without user:password@ or a #fragment; a refusal says why.
 * The signature is computed for every input too (any bytes, any length). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "turnkey/util.h"
#include "turnkey/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char err[128] = "";
    size_t n = strlen(s);
    if (webhook_url_check(s, err, sizeof err) == 0) {
        size_t skip = !strncasecmp(s, "https://", 8) ? 8 : !strncasecmp(s, "http://", 7) ? 7 : 0;
        const char *a = s + skip;
        size_t alen = strcspn(a, "/?");
        if (!skip || n > WEBHOOK_URL_MAX || strchr(s, '#') || alen == 0 || memchr(a, '@', alen))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                abort();
    } else if (!err[0]) {
        abort();
    }
    unsigned k = webhook_kind_parse(s);
    if (k && strcmp(webhook_kind_name(k), s) != 0)
        abort();
    char sig[65];
    webhook_sign("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1700000000,
                 (const char *)data, size, sig);
    if (strlen(sig) != 64 || !util_is_lower_hex(sig, 64))
        abort();
    free(s);
    return 0;
}
