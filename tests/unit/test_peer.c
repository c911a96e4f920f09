#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "tk_test.h"
#include "turnkey/peer.h"

/* Builds a sockaddr_in/in6 from a literal; the family follows from the text. */
static const struct sockaddr *sa(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
            return NULL;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
            return NULL;
    }
    return (const struct sockaddr *)ss;
}

static int allowed(const peer_policy *p, const char *ip)
{
    struct sockaddr_storage ss;
    const struct sockaddr *a = sa(&ss, ip, 3478);
    if (!a) {
        fprintf(stderr, "  bad literal %s\n", ip);
        return -1;
    }
    return peer_allowed(p, a) ? 1 : 0;
}

static int check_all(const peer_policy *p, const char *const *ips, size_t n, int want)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (allowed(p, ips[i]) != want) {
            fprintf(stderr, "  %s: expected %s\n", ips[i], want ? "allowed" : "denied");
            ok = 0;
        }
    }
    return ok;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void t_cidr_parse(void)
{
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("127.0.0.1/32", &c), 0);
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 32);
    CHECK(c.addr[0] == 127 && c.addr[3] == 1);
    CHECK_INT(peer_cidr_parse("10.0.0.0/8", &c), 0);
    CHECK_INT(c.prefix, 8);
    CHECK_INT(peer_cidr_parse("::1/128", &c), 0);
    CHECK_INT(c.family, AF_INET6);
    CHECK(c.addr[15] == 1 && c.prefix == 128);
    CHECK_INT(peer_cidr_parse("2001:db8::/32", &c), 0);
    CHECK(c.addr[0] == 0x20 && c.addr[1] == 0x01 && c.addr[2] == 0x0d && c.addr[3] == 0xb8);
    CHECK_INT(peer_cidr_parse("8.8.8.8", &c), 0); /* bare address = host */
    CHECK_INT(c.prefix, 32);
    CHECK_INT(peer_cidr_parse("2606:4700::1111", &c), 0);
    CHECK_INT(c.prefix, 128);
    CHECK_INT(peer_cidr_parse("0.0.0.0/0", &c), 0);
    CHECK_INT(c.prefix, 0);
    CHECK_INT(peer_cidr_parse("::ffff:1.2.3.4/120", &c), 0);
    CHECK_INT(c.family, AF_INET6);
    /* host bits are accepted and cleared */
    CHECK_INT(peer_cidr_parse("10.1.2.3/8", &c), 0);
    CHECK(c.addr[0] == 10 && c.addr[1] == 0 && c.addr[2] == 0 && c.addr[3] == 0);
    CHECK_INT(peer_cidr_parse("100.127.255.255/10", &c), 0);
    CHECK(c.addr[0] == 100 && c.addr[1] == 64 && c.addr[2] == 0);
    CHECK_INT(peer_cidr_parse("fe bf::1/10", &c), -EINVAL);
    CHECK_INT(peer_cidr_parse("febf::1/10", &c), 0);
    CHECK(c.addr[0] == 0xfe && c.addr[1] == 0x80 && c.addr[15] == 0);
}

static void t_cidr_parse_rejects(void)
{
    static const char *const bad[] = {
        "",
        "/",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/8/8",
        "10.0.0.0/8 ",
        " 10.0.0.0/8",
        "10.0.0/8",
        "10.0.0.0.0",
        "256.0.0.1",
        "010.0.0.1",
        "1.2.3.4x",
        "fe80::1%eth0",
        "::1/1a",
        "garbage",
        ":::",
        "1::2::3",
        "10.0.0.0/0008",
        "2001:db8::/4294967328",
        "0000:0000:0000:0000:0000:0000:0000:0000:0000/64",
    };
    for (size_t i = 0; i < COUNT(bad); i++) {
        peer_cidr c = {.family = 12345};
        if (peer_cidr_parse(bad[i], &c) != -EINVAL || c.family != 12345) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
}

static void t_denied_ranges(void)
{
    static const char *const deny[] = {
        /* IPv4 list: first, inner and last addresses */
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.254",
        "255.255.255.255",
        /* IPv6 list */
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf:ffff::1",
        "ff02::1",
        "ff0e::1",
        "100::1",
        "100::ffff:ffff:ffff:ffff",
        "2001:db8::1",
        "2001:db8:ffff::1",
        /* embedded IPv4: mapped, compatible, NAT64, 6to4 */
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",
        "::0.0.0.2",
        "64:ff9b::7f00:1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::192.168.0.1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2002:c0a8:101:1::1",
        "2002:e000:1::",
        /* local-use NAT64 64:ff9b:1::/48 (product spec §4.3): the IPv4 address of each RFC
         * 6052 layout is checked (/96, /48), and a set "u" octet (bits 64..71) is no NAT64 form */
        "64:ff9b:1::a00:1",
        "64:ff9b:1::7f00:1",
        "64:ff9b:1:ffff:0:0:a9fe:a9fe",
        "64:ff9b:1:a00:0:100::",
        "64:ff9b:1:0:100::808:808",
        /* issue 11: SIIT IPv4-translated with a denied IPv4, site-local, Teredo (whole /32,
         * even with a public obfuscated IPv4), benchmarking, ORCHID(v2), documentation,
         * SRv6, and the cloud addresses (Azure wireserver; AWS IMDS IPv6; Alibaba; GCP) */
        "::ffff:0:7f00:1",
        "::ffff:0:a9fe:a9fe",
        "::ffff:0:a00:1",
        "fec0::1",
        "feff:ffff::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:2::1",
        "2001:2:0:ffff::1",
        "2001:10::1",
        "2001:1f:ffff::1",
        "2001:20::1",
        "2001:2f:ffff::1",
        "3fff::1",
        "3fff:fff:ffff::1",
        "5f00::1",
        "168.63.129.16",
        "::ffff:168.63.129.16",
        "64:ff9b::a83f:8110",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd20:ce::254",
        "100.100.100.200",
        "169.254.169.254",
        "169.254.0.23",
    };
    peer_policy p;
    peer_policy_init(&p);
    CHECK(check_all(&p, deny, COUNT(deny), 0));
    peer_policy_dispose(&p);
}

static void t_public_allowed(void)
{
    static const char *const ok[] = {
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "::8.8.8.8",
        /* just outside denied ranges */
        "1.0.0.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.0.3.1",
        "192.88.98.1",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.101.1",
        "203.0.114.1",
        "223.255.255.255",
        "fbff::1",
        "100:0:0:1::1",
        "2001:db9::1",
        "2001:4860:4860::8888",
        "::2:0:0:1",
        "64:ff9b:1::808:808",
        "64:ff9b:1:ffff::101:101",
        /* the neighbours of the new ranges stay open */
        "::ffff:0:808:808",
        "2001:1::1",
        "2001:3::1",
        "2001:4:112::1",
        "2001:30::1",
        "3fff:1000::1",
        "4000::1",
        "168.63.129.15",
        "168.63.129.17",
    };
    peer_policy p;
    peer_policy_init(&p);
    CHECK(check_all(&p, ok, COUNT(ok), 1));
    peer_policy_dispose(&p);
}

static void t_port_and_family(void)
{
    peer_policy p;
    peer_policy_init(&p);
    struct sockaddr_storage ss;
    CHECK(!peer_allowed(&p, sa(&ss, "8.8.8.8", 0)));
    CHECK(!peer_allowed(&p, sa(&ss, "2606:4700::1111", 0)));
    CHECK(peer_allowed(&p, sa(&ss, "8.8.8.8", 1)));
    CHECK(!peer_allowed(&p, NULL));
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    CHECK(!peer_allowed(&p, (struct sockaddr *)&ss));
    CHECK_INT(peer_policy_add_self(&p, (struct sockaddr *)&ss), -EINVAL);
    peer_cidr bad = {.family = AF_INET, .prefix = 33};
    CHECK_INT(peer_policy_add_allow(&p, &bad), -EINVAL);
    bad.family = AF_UNIX;
    bad.prefix = 0;
    CHECK_INT(peer_policy_add_allow(&p, &bad), -EINVAL);
    peer_policy_dispose(&p);
}

static void t_allow_exact_range(void)
{
    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("127.0.0.1/32", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "127.0.0.1"), 1);
    CHECK_INT(allowed(&p, "::ffff:127.0.0.1"), 1); /* mapped = the same address */
    CHECK_INT(allowed(&p, "127.0.0.2"), 0);
    CHECK_INT(allowed(&p, "127.0.0.0"), 0);
    CHECK_INT(allowed(&p, "::ffff:127.0.0.2"), 0);
    /* other embeddings reach other hosts: not opened by the IPv4 range */
    CHECK_INT(allowed(&p, "64:ff9b::7f00:1"), 0);
    CHECK_INT(allowed(&p, "2002:7f00:1::"), 0);
    CHECK_INT(allowed(&p, "::127.0.0.1"), 0);
    CHECK_INT(allowed(&p, "10.0.0.1"), 0);

    CHECK_INT(peer_cidr_parse("10.1.0.0/16", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "10.1.255.255"), 1);
    CHECK_INT(allowed(&p, "10.2.0.0"), 0);
    /* a mapped allow range is normalised to IPv4 */
    CHECK_INT(peer_cidr_parse("::ffff:192.168.5.0/120", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "192.168.5.77"), 1);
    CHECK_INT(allowed(&p, "::ffff:192.168.5.77"), 1);
    CHECK_INT(allowed(&p, "192.168.6.1"), 0);
    /* IPv6 ranges */
    CHECK_INT(peer_cidr_parse("fd00:1::/32", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "fd00:1:2::3"), 1);
    CHECK_INT(allowed(&p, "fd00:2::1"), 0);
    CHECK_INT(peer_cidr_parse("64:ff9b::/96", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "64:ff9b::10.9.9.9"), 1); /* literally inside an allowed range */
    CHECK_INT(allowed(&p, "10.9.9.9"), 0);
    peer_policy_dispose(&p);
}

static void t_allow_v6_any_does_not_open_v4(void)
{
    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("::/0", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "::1"), 1);
    CHECK_INT(allowed(&p, "fe80::1"), 1);
    CHECK_INT(allowed(&p, "::ffff:10.0.0.1"), 0);
    CHECK_INT(allowed(&p, "10.0.0.1"), 0);
    peer_policy_dispose(&p);
}

static void t_self(void)
{
    peer_policy p;
    peer_policy_init(&p);
    struct sockaddr_storage ss;
    CHECK_INT(peer_policy_add_self(&p, sa(&ss, "127.0.0.1", 3478)), 0);
    CHECK_INT(peer_policy_add_self(&p, sa(&ss, "::ffff:203.0.114.5", 3478)), 0); /* public */
    CHECK_INT(peer_policy_add_self(&p, sa(&ss, "2606:4700::5", 3478)), 0);
    /* own public addresses are denied on any port, in any embedding */
    CHECK_INT(allowed(&p, "203.0.114.5"), 0);
    CHECK_INT(allowed(&p, "::ffff:203.0.114.5"), 0);
    CHECK_INT(allowed(&p, "64:ff9b::203.0.114.5"), 0);
    CHECK_INT(allowed(&p, "2002:cb00:7205::1"), 0);
    CHECK_INT(allowed(&p, "203.0.114.6"), 1);
    CHECK_INT(allowed(&p, "2606:4700::5"), 0);
    CHECK_INT(allowed(&p, "2606:4700::6"), 1);

    /* a wider allow range does not open an own address... */
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("127.0.0.0/8", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "127.0.0.2"), 1);
    CHECK_INT(allowed(&p, "127.0.0.1"), 0);
    CHECK_INT(peer_cidr_parse("203.0.114.0/24", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "203.0.114.5"), 0);
    /* ...the exact host does (the tests relay through 127.0.0.1 where the server listens) */
    CHECK_INT(peer_cidr_parse("127.0.0.1/32", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "127.0.0.1"), 1);
    CHECK_INT(allowed(&p, "::ffff:127.0.0.1"), 1);
    CHECK_INT(peer_cidr_parse("::ffff:203.0.114.5", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "203.0.114.5"), 1);
    peer_policy_dispose(&p);
}

static void t_contains(void)
{
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("172.16.0.0/12", &c), 0);
    uint8_t in[4] = {172, 31, 1, 1}, out[4] = {172, 32, 0, 0};
    CHECK(peer_cidr_contains(&c, AF_INET, in));
    CHECK(!peer_cidr_contains(&c, AF_INET, out));
    uint8_t v6[16] = {172, 16};
    CHECK(!peer_cidr_contains(&c, AF_INET6, v6));
    CHECK_INT(peer_cidr_parse("0.0.0.0/0", &c), 0);
    CHECK(peer_cidr_contains(&c, AF_INET, out));
}

/* --deny-peer: public ranges become denied (also in mapped and embedded forms); an
 * allow range still opens inside them. */
static void t_operator_deny(void)
{
    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    CHECK_INT(peer_cidr_parse("198.18.0.0/15", &c), 0); /* already denied: no change */
    CHECK_INT(peer_policy_add_deny(&p, &c), 0);
    CHECK_INT(peer_cidr_parse("8.8.0.0/16", &c), 0);
    CHECK_INT(peer_policy_add_deny(&p, &c), 0);
    CHECK_INT(peer_cidr_parse("2606:4700::/32", &c), 0);
    CHECK_INT(peer_policy_add_deny(&p, &c), 0);
    CHECK_INT(allowed(&p, "8.8.4.4"), 0);
    CHECK_INT(allowed(&p, "::ffff:8.8.4.4"), 0);
    CHECK_INT(allowed(&p, "64:ff9b::8.8.4.4"), 0);
    CHECK_INT(allowed(&p, "2606:4700::1111"), 0);
    CHECK_INT(allowed(&p, "8.9.0.1"), 1);
    CHECK_INT(allowed(&p, "2606:4701::1"), 1);
    CHECK_INT(peer_cidr_parse("8.8.4.0/24", &c), 0);
    CHECK_INT(peer_policy_add_allow(&p, &c), 0);
    CHECK_INT(allowed(&p, "8.8.4.4"), 1);
    CHECK_INT(allowed(&p, "8.8.8.8"), 0);
    c.prefix = 33;
    CHECK_INT(peer_policy_add_deny(&p, &c), -EINVAL);
    peer_policy_dispose(&p);
}

int main(void)
{
    TK_RUN(t_operator_deny);
    TK_RUN(t_cidr_parse);
    TK_RUN(t_cidr_parse_rejects);
    TK_RUN(t_denied_ranges);
    TK_RUN(t_public_allowed);
    TK_RUN(t_port_and_family);
    TK_RUN(t_allow_exact_range);
    TK_RUN(t_allow_v6_any_does_not_open_v4);
    TK_RUN(t_self);
    TK_RUN(t_contains);
    return tk_test_summary();
}
