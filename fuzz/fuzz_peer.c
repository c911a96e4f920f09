/* Fuzz target: arbitrary bytes as a CIDR string, and as a peer address checked against a
 * policy whose allow-list and own addresses also come from the input. Every IPv4 answer is
 * compared with the spec's rules written out independently below; the mapped form must
 * answer the same; an own address is never reachable except through the allow entry. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/peer.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The IPv4 deny list of product spec §4.3, written out again here (not taken from
 * src/peer) so that the fuzzer checks the policy against the spec instead of itself. */
static bool spec_denied_v4(const uint8_t a[4])
{
    static const struct {
        uint8_t net[4];
        unsigned len;
    } list[] = {
        {{0, 0, 0, 0}, 8},          {{10, 0, 0, 0}, 8},       {{100, 64, 0, 0}, 10},
        {{127, 0, 0, 0}, 8},        {{169, 254, 0, 0}, 16},   {{172, 16, 0, 0}, 12},
        {{192, 0, 0, 0}, 24},       {{192, 0, 2, 0}, 24},     {{192, 88, 99, 0}, 24},
        {{192, 168, 0, 0}, 16},     {{198, 18, 0, 0}, 15},    {{198, 51, 100, 0}, 24},
        {{203, 0, 113, 0}, 24},     {{224, 0, 0, 0}, 4},      {{240, 0, 0, 0}, 4},
        {{255, 255, 255, 255}, 32}, {{168, 63, 129, 16}, 32}, /* Azure wireserver (docs/security.md) */
    };
    uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        uint32_t n = (uint32_t)list[i].net[0] << 24 | (uint32_t)list[i].net[1] << 16 |
                     (uint32_t)list[i].net[2] << 8 | list[i].net[3];
        uint32_t mask = list[i].len == 32 ? 0xffffffffu : ~(0xffffffffu >> list[i].len);
        if ((v & mask) == n)
            return true;
    }
    return false;
}

/* What the spec says of an IPv4 peer (rules 3-6 of peer.h): own addresses only through an
 * exact single-host allow entry, allow ranges open the deny list, the rest follows it. */
static bool expected_v4(const peer_cidr *allow, const uint8_t a[4], uint16_t port, bool self)
{
    if (port == 0)
        return false;
    bool in_allow = allow && peer_cidr_contains(allow, AF_INET, a);
    if (self)
        return in_allow && allow->prefix == 32;
    return in_allow || !spec_denied_v4(a);
}

static void check_address(peer_policy *p, const peer_cidr *allow, const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    bool v4 = false;
    uint8_t a4[4] = {0};
    uint16_t port = 0;
    if (size >= 18 && (data[0] & 1)) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_port, data + 1, 2);
        memcpy(&s6->sin6_addr, data + 3, 16 <= size - 3 ? 16 : size - 3);
    } else if (size >= 7) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_port, data + 1, 2);
        memcpy(&s4->sin_addr, data + 3, 4);
        memcpy(a4, data + 3, 4);
        port = ntohs(s4->sin_port);
        v4 = true;
    } else {
        ss.ss_family = size ? data[0] : AF_UNSPEC; /* odd families must be refused */
    }
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    bool fam_ok = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
    bool before = peer_allowed(p, sa);
    if (!fam_ok && before)
        abort(); /* only IPv4 and IPv6 peers */
    if (v4 && before != expected_v4(allow, a4, port, false))
        abort();
    if (v4) { /* the IPv4-mapped form is the same peer */
        struct sockaddr_in6 m;
        memset(&m, 0, sizeof m);
        m.sin6_family = AF_INET6;
        m.sin6_port = htons(port);
        m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m.sin6_addr.s6_addr[12], a4, 4);
        if (peer_allowed(p, (const struct sockaddr *)&m) != before)
            abort();
    }
    int self = peer_policy_add_self(p, sa);
    if ((self == 0) != fam_ok)
        abort();
    bool after = peer_allowed(p, sa);
    if (v4 && after != expected_v4(allow, a4, port, true))
        abort();
    const uint8_t *addr =
        ss.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr : a4;
    if (fam_ok && after && !(allow && peer_cidr_contains(allow, ss.ss_family, addr)))
        abort(); /* an own address is reachable only through an allow entry */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    const peer_cidr *allow = NULL;
    if (peer_cidr_parse(s, &c) == 0) {
        if (c.family != AF_INET && c.family != AF_INET6)
            abort();
        if (c.prefix > (c.family == AF_INET ? 32u : 128u))
            abort();
        if (!peer_cidr_contains(&c, c.family, c.addr)) /* the network address is inside */
            abort();
        if (peer_policy_add_allow(&p, &c) != 0)
            abort();
        allow = &c;
        /* peer.h rule 2: a mapped range ::ffff:a.b.c.d/(96+n) is the IPv4 range a.b.c.d/n */
        static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
        if (c.family == AF_INET6 && c.prefix >= 96 && memcmp(c.addr, mapped, 12) == 0) {
            memmove(c.addr, c.addr + 12, 4);
            memset(c.addr + 4, 0, 12);
            c.family = AF_INET;
            c.prefix -= 96;
        }
    }
    check_address(&p, allow, data, size);
    peer_policy_dispose(&p);
    free(s);
    return 0;
}
