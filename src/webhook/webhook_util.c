/* webhook_util: the webhook's pure parts — URL validation, event kinds, the signature and
 * the retry backoff (see webhook.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "turnkey/util.h"
#include "turnkey/webhook.h"

static const struct {
    unsigned kind;
    const char *name;
} kinds[] = {{STORE_WEBHOOK_ALLOCATION_ENDED, "allocation.ended"},
             {STORE_WEBHOOK_BUDGET_THRESHOLD, "budget.threshold"},
             {STORE_WEBHOOK_BUDGET_EXCEEDED, "budget.exceeded"}};

unsigned webhook_kind_parse(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].name, name))
            return kinds[i].kind;
    return 0;
}

const char *webhook_kind_name(unsigned kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return "";
}

static int fail(char *err, size_t cap, const char *msg)
{
    snprintf(err, cap, "%s", msg);
    return -1;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* [s, e): "host", "host:port", "[v6]" or "[v6]:port". */
static int check_authority(const char *s, const char *e, char *err, size_t cap)
{
    if (s == e)
        return fail(err, cap, "url must name a host");
    if (memchr(s, '@', (size_t)(e - s)))
        return fail(err, cap, "url must not contain user:password@");
    const char *h = s, *he;
    if (*s == '[') {
        he = memchr(s, ']', (size_t)(e - s));
        if (!he || he == s + 1)
            return fail(err, cap, "url has a malformed [IPv6] host");
        for (const char *p = s + 1; p < he; p++)
            if (!strchr("0123456789abcdefABCDEF:.", *p))
                return fail(err, cap, "url has a malformed [IPv6] host");
        he++;
    } else {
        he = h;
        while (he < e && *he != ':')
            if (!host_char(*he++))
                return fail(err, cap, "url host may hold only letters, digits, '-', '.', '_'");
        if (he == h)
            return fail(err, cap, "url must name a host");
    }
    if (he == e)
        return 0;
    if (*he != ':' || he + 1 == e || e - he > 6)
        return fail(err, cap, "url has a malformed port");
    long port = 0;
    for (const char *p = he + 1; p < e; p++) {
        if (*p < '0' || *p > '9')
            return fail(err, cap, "url has a malformed port");
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535 ? 0 : fail(err, cap, "url port must be 1-65535");
}

int webhook_url_check(const char *url, char *err, size_t cap)
{
    size_t n = strlen(url);
    if (n == 0 || n > WEBHOOK_URL_MAX)
        return fail(err, cap, "url must be 1 to 2048 characters");
    for (size_t i = 0; i < n; i++)
        if (url[i] <= 0x20 || url[i] >= 0x7f)
            return fail(err, cap, "url must be printable ASCII without spaces (percent-encode)");
    size_t skip = !strncasecmp(url, "https://", 8) ? 8 : !strncasecmp(url, "http://", 7) ? 7 : 0;
    if (!skip)
        return fail(err, cap, "url must start with http:// or https://");
    if (strchr(url, '#'))
        return fail(err, cap, "url must not have a #fragment");
    const char *a = url + skip;
    return check_authority(a, a + strcspn(a, "/?"), err, cap);
}

void webhook_sign(const char *secret, int64_t t, const char *body, size_t len, char out[65])
{
    char ts[32];
    int tn = snprintf(ts, sizeof ts, "%lld.", (long long)t);
    const uint8_t *p[2] = {(const uint8_t *)ts, (const uint8_t *)body};
    size_t l[2] = {(size_t)tn, len};
    uint8_t mac[32];
    if (util_hmac(UTIL_MD_SHA256, (const uint8_t *)secret, strlen(secret), p, l, 2, mac) != 0)
        memset(mac, 0, sizeof mac); /* never a valid signature: the receiver refuses it */
    util_hex_encode(mac, sizeof mac, out);
}

int64_t webhook_backoff_ms(int failures, int64_t cap_ms, uint32_t rnd)
{
    int64_t d = 1000;
    for (int i = 1; i < failures && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    if (d < 2)
        return d < 1 ? 1 : d;
    int64_t half = d / 2;
    return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}
