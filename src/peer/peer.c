/* peer: relay destination policy (spec §4.3). See include/turnkey/peer.h for the rules. */
#include "turnkey/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/util.h"

#define V4(a, b, c, d, len)                                                                        \
    {                                                                                              \
        AF_INET, {a, b, c, d}, len                                                                 \
    }
#define V6(len, ...)                                                                               \
    {                                                                                              \
        AF_INET6, {__VA_ARGS__}, len                                                               \
    }

static const peer_cidr deny_v4[] = {
    V4(0, 0, 0, 0, 8), V4(10, 0, 0, 0, 8), V4(100, 64, 0, 0, 10), V4(127, 0, 0, 0, 8),
    V4(169, 254, 0, 0, 16), V4(172, 16, 0, 0, 12), V4(192, 0, 0, 0, 24), V4(192, 0, 2, 0, 24),
    V4(192, 88, 99, 0, 24), V4(192, 168, 0, 0, 16), V4(198, 18, 0, 0, 15), V4(198, 51, 100, 0, 24),
    V4(203, 0, 113, 0, 24), V4(224, 0, 0, 0, 4), V4(240, 0, 0, 0, 4), V4(255, 255, 255, 255, 32),
    /* cloud platform addresses outside every special-purpose range (docs/security.md) */
    V4(168, 63, 129, 16, 32), /* Azure wireserver / DNS / health probes */
};

static const peer_cidr deny_v6[] = {
    V6(128, 0),                     /* :: */
    V6(128, [15] = 1),              /* ::1 */
    V6(7, 0xfc),                    /* fc00::/7 */
    V6(10, 0xfe, 0x80),             /* fe80::/10 */
    V6(8, 0xff),                    /* ff00::/8 */
    V6(64, 0x01, 0x00),             /* 100::/64 */
    V6(32, 0x20, 0x01, 0x0d, 0xb8), /* 2001:db8::/32 */
    V6(10, 0xfe, 0xc0),             /* fec0::/10 site-local (deprecated, RFC 3879) */
    V6(32, 0x20, 0x01, 0x00, 0x00), /* 2001::/32 Teredo: carries an IPv4 server and client */
    V6(48, 0x20, 0x01, 0x00, 0x02), /* 2001:2::/48 benchmarking (RFC 5180) */
    V6(28, 0x20, 0x01, 0x00, 0x10), /* 2001:10::/28 ORCHID (RFC 4843) */
    V6(28, 0x20, 0x01, 0x00, 0x20), /* 2001:20::/28 ORCHIDv2 (RFC 7343) */
    V6(20, 0x3f, 0xff),             /* 3fff::/20 documentation (RFC 9637) */
    V6(16, 0x5f, 0x00),             /* 5f00::/16 SRv6 SIDs (RFC 9602) */
};

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64_prefix[12] = {0x00, 0x64, 0xff, 0x9b};
/* ::ffff:0:a.b.c.d, SIIT "IPv4-translated" (RFC 2765 §2.1) */
static const uint8_t translated_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
static const uint8_t zero12[12];

static unsigned family_bits(int family)
{
    return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

static void clear_host_bits(peer_cidr *c)
{
    unsigned bytes = family_bits(c->family) / 8;
    for (unsigned i = 0; i < 16; i++) {
        unsigned first_bit = i * 8;
        if (i >= bytes || first_bit >= c->prefix)
            c->addr[i] = 0;
        else if (first_bit + 8 > c->prefix)
            c->addr[i] &= (uint8_t)(0xff00u >> (c->prefix - first_bit));
    }
}

bool peer_cidr_contains(const peer_cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family || c->prefix > family_bits(family))
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (addr[full] & mask) == c->addr[full];
}

/* Decimal 0..max, no sign, no leading zeros, at least one digit. -1 if malformed. */
static int parse_prefix(const char *s, unsigned max)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= max ? (int)v : -1;
}

int peer_cidr_parse(const char *s, peer_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    if (hlen == 0 || hlen >= sizeof host)
        return -EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = '\0';

    peer_cidr c = {.family = memchr(host, ':', hlen) ? AF_INET6 : AF_INET};
    if (inet_pton(c.family, host, c.addr) != 1)
        return -EINVAL;
    unsigned bits = family_bits(c.family);
    int prefix = slash ? parse_prefix(slash + 1, bits) : (int)bits;
    if (prefix < 0)
        return -EINVAL;
    c.prefix = (unsigned)prefix;
    clear_host_bits(&c);
    *out = c;
    return 0;
}

/* ::ffff:a.b.c.d/(96+n) becomes a.b.c.d/n. */
static void normalise_cidr(peer_cidr *c)
{
    if (c->family != AF_INET6 || c->prefix < 96 || memcmp(c->addr, mapped_prefix, 12) != 0)
        return;
    uint8_t v4[4];
    memcpy(v4, c->addr + 12, 4);
    memset(c->addr, 0, sizeof c->addr);
    memcpy(c->addr, v4, 4);
    c->family = AF_INET;
    c->prefix -= 96;
}

bool peer__from_sockaddr(const struct sockaddr *sa, struct addr *out)
{
    if (!sa)
        return false;
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        out->family = AF_INET;
        memcpy(out->a, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    out->port = ntohs(in6->sin6_port);
    if (memcmp(&in6->sin6_addr, mapped_prefix, 12) == 0) {
        out->family = AF_INET;
        memcpy(out->a, (const uint8_t *)&in6->sin6_addr + 12, 4);
    } else {
        out->family = AF_INET6;
        memcpy(out->a, &in6->sin6_addr, 16);
    }
    return true;
}

static bool in_list(const peer_cidr *list, size_t n, int family, const uint8_t *a)
{
    for (size_t i = 0; i < n; i++)
        if (peer_cidr_contains(&list[i], family, a))
            return true;
    return false;
}

/* The IPv4 addresses that may be embedded in an IPv6 address: compatible (::/96), NAT64
 * (64:ff9b::/96), SIIT IPv4-translated (::ffff:0:0:0/96) and 6to4 (2002::/16) have one
 * (Teredo's 2001::/32 is denied whole). The local-use NAT64 prefix 64:ff9b:1::/48
 * (RFC 8215) is cut to /48, /56, /64 or /96 by its operator, which we cannot know, so every
 * RFC 6052 §2.2 layout whose suffix is zero is a candidate. Bits 64..71 (the "u" octet) are
 * zero in every layout: with them set the address is no NAT64 form at all and *opaque is
 * set (the caller denies it). Fills up to 4 candidates and returns how many. */
static size_t embedded_v4(const struct addr *a, uint8_t v4[4][4], bool *opaque)
{
    static const uint8_t local_nat64[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    static const struct {
        uint8_t pos[4], suffix;
    } layout[4] = {
        {{6, 7, 9, 10}, 11}, {{7, 9, 10, 11}, 12}, {{9, 10, 11, 12}, 13}, {{12, 13, 14, 15}, 16}};
    *opaque = false;
    if (a->family != AF_INET6)
        return 0;
    if (memcmp(a->a, zero12, 12) == 0 || memcmp(a->a, nat64_prefix, 12) == 0 ||
        memcmp(a->a, translated_prefix, 12) == 0) {
        memcpy(v4[0], a->a + 12, 4);
        return 1;
    }
    if (a->a[0] == 0x20 && a->a[1] == 0x02) {
        memcpy(v4[0], a->a + 2, 4);
        return 1;
    }
    if (memcmp(a->a, local_nat64, sizeof local_nat64) != 0)
        return 0;
    if (a->a[8] != 0) {
        *opaque = true;
        return 0;
    }
    size_t n = 0;
    for (size_t l = 0; l < 4; l++) {
        bool zero = true;
        for (size_t k = layout[l].suffix; k < 16; k++)
            zero = zero && a->a[k] == 0;
        if (!zero)
            continue;
        for (size_t k = 0; k < 4; k++)
            v4[n][k] = a->a[layout[l].pos[k]];
        n++;
    }
    return n;
}

/* True if one of the IPv4 addresses embedded in a (see embedded_v4) is in list, or a is
 * a local-use NAT64 address of no valid layout. */
static bool embedded_in(const struct addr *a, const peer_cidr *list, size_t n_list)
{
    uint8_t v4[4][4];
    bool opaque;
    size_t n = embedded_v4(a, v4, &opaque);
    for (size_t i = 0; i < n; i++)
        if (in_list(list, n_list, AF_INET, v4[i]))
            return true;
    return opaque;
}

static bool denied(const struct addr *a)
{
    enum { N4 = sizeof deny_v4 / sizeof deny_v4[0], N6 = sizeof deny_v6 / sizeof deny_v6[0] };
    if (a->family == AF_INET)
        return in_list(deny_v4, N4, AF_INET, a->a);
    if (in_list(deny_v6, N6, AF_INET6, a->a))
        return true;
    return embedded_in(a, deny_v4, N4);
}

static bool is_self(const peer_policy *p, const struct addr *a)
{
    if (in_list(p->self, p->n_self, a->family, a->a))
        return true;
    uint8_t v4[4][4];
    bool opaque;
    size_t n = embedded_v4(a, v4, &opaque);
    for (size_t i = 0; i < n; i++)
        if (in_list(p->self, p->n_self, AF_INET, v4[i]))
            return true;
    return false;
}

/* Allow-listed as a single host (/32 or /128), exactly this address. */
static bool host_allowed(const peer_policy *p, const struct addr *a)
{
    unsigned bits = family_bits(a->family);
    for (size_t i = 0; i < p->n_allow; i++)
        if (p->allow[i].prefix == bits && peer_cidr_contains(&p->allow[i], a->family, a->a))
            return true;
    return false;
}

void peer_policy_init(peer_policy *p)
{
    memset(p, 0, sizeof *p);
}

void peer_policy_dispose(peer_policy *p)
{
    free(p->allow);
    free(p->self);
    free(p->deny);
    peer_policy_init(p);
}

static void push(peer_cidr **list, size_t *n, size_t *cap, const peer_cidr *c)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *list = util_xrealloc(*list, *cap * sizeof **list);
    }
    (*list)[(*n)++] = *c;
}

void peer_policy_set_relays(peer_policy *p, const struct peer_relays *relays)
{
    p->relays = relays;
}

static int add_range(peer_cidr **list, size_t *n, size_t *cap, const peer_cidr *c)
{
    unsigned bits = family_bits(c->family);
    if (bits == 0 || c->prefix > bits)
        return -EINVAL;
    peer_cidr norm = *c;
    clear_host_bits(&norm);
    normalise_cidr(&norm);
    push(list, n, cap, &norm);
    return 0;
}

int peer_policy_add_allow(peer_policy *p, const peer_cidr *c)
{
    return add_range(&p->allow, &p->n_allow, &p->cap_allow, c);
}

int peer_policy_add_deny(peer_policy *p, const peer_cidr *c)
{
    return add_range(&p->deny, &p->n_deny, &p->cap_deny, c);
}

static bool operator_denied(const peer_policy *p, const struct addr *a)
{
    return in_list(p->deny, p->n_deny, a->family, a->a) || embedded_in(a, p->deny, p->n_deny);
}

int peer_policy_add_self(peer_policy *p, const struct sockaddr *sa)
{
    struct addr a;
    if (!peer__from_sockaddr(sa, &a))
        return -EINVAL;
    peer_cidr c = {.family = a.family, .prefix = family_bits(a.family)};
    memcpy(c.addr, a.a, sizeof c.addr);
    push(&p->self, &p->n_self, &p->cap_self, &c);
    return 0;
}

int peer_deny_class(const peer_policy *p, const struct sockaddr *sa)
{
    struct addr a;
    if (!peer__from_sockaddr(sa, &a) || a.port == 0)
        return PEER_DENY_INVALID;
    if (is_self(p, &a))
        return host_allowed(p, &a) || (p->relays && peer_relays_live(p->relays, sa, NULL))
                   ? PEER_ALLOWED
                   : PEER_DENY_SELF;
    if (in_list(p->allow, p->n_allow, a.family, a.a))
        return PEER_ALLOWED;
    return operator_denied(p, &a) ? PEER_DENY_OPERATOR
           : denied(&a)           ? PEER_DENY_BUILTIN
                                  : PEER_ALLOWED;
}

bool peer_allowed(const peer_policy *p, const struct sockaddr *sa)
{
    return peer_deny_class(p, sa) == PEER_ALLOWED;
}

const char *peer_deny_name(int cls)
{
    static const char *const n[PEER_DENY__N] = {"allowed", "invalid", "self", "operator",
                                                "builtin"};
    return cls >= 0 && cls < PEER_DENY__N ? n[cls] : "?";
}
