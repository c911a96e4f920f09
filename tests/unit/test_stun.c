/* Unit tests for the stun module: RFC 5769 vectors (parse, XOR addresses, MESSAGE-INTEGRITY,
 * FINGERPRINT, byte-exact rebuild), malformed input, builder capacity, ChannelData, framer. */
#include "tk_test.h"
#include "turnkey/stun.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

/* ---- RFC 5769 test vectors (hex as printed in the RFC) ---------------------------------- */

static const char V_REQUEST[] = /* §2.1 sample request */
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74"
    "00 24 00 04 6e 00 01 ff"
    "80 29 00 08 93 2f f9 b1 51 26 3b 36"
    "00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20"
    "00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2"
    "80 28 00 04 e5 7a 3b cf";

static const char V_IPV4[] = /* §2.2 sample IPv4 response */
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 08 00 01 a1 47 e1 12 a6 43"
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7"
    "80 28 00 04 c0 7d 4c 96";

static const char V_IPV6[] = /* §2.3 sample IPv6 response */
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"
    "00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41"
    "80 28 00 04 c8 fb 0b 4c";

static const char V_LONG_TERM[] = /* §2.4 sample request with long-term authentication */
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00"
    "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79"
    "36 34 73 41"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";

static const char SHORT_TERM_PW[] = "VOkJxbRl1RmTxUk/WvJxBt";
/* "マトリックス" in UTF-8 */
static const char LT_USER[] =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
static const char LT_NONCE[] = "f//499k954d6OL34oL9FSTvy64sA";

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex with whitespace to bytes; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v = hexval(*s);
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            if (n < cap)
                out[n] = (uint8_t)(hi << 4 | v);
            n++;
            hi = -1;
        }
    }
    return n;
}

static bool bytes_eq(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static const uint8_t *pw(void)
{
    return (const uint8_t *)SHORT_TERM_PW;
}

/* ---- RFC 5769 -------------------------------------------------------------------------- */

static void t_rfc5769_request(void)
{
    uint8_t buf[256];
    size_t n = unhex(V_REQUEST, buf, sizeof buf);
    CHECK_INT(n, 108);
    stun_msg m;
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(m.method, STUN_METHOD_BINDING);
    CHECK_INT(m.cls, STUN_CLASS_REQUEST);
    CHECK_INT(m.n_attrs, 6);
    CHECK_INT(m.n_unknown, 0); /* PRIORITY is known, ICE-CONTROLLED optional */
    CHECK(m.mi_off == 20 + 20 + 8 + 12 + 16);
    CHECK(m.fp_off == m.mi_off + 24);
    CHECK(m.mi256_off == 0);
    const uint8_t *v;
    size_t len;
    CHECK_INT(stun_get_software(&m, &v, &len), STUN_OK);
    CHECK(bytes_eq(v, len, "STUN test client"));
    CHECK_INT(stun_get_username(&m, &v, &len), STUN_OK);
    CHECK(bytes_eq(v, len, "evtj:h6vY"));
    uint32_t prio;
    CHECK_INT(stun_get_u32(&m, STUN_ATTR_PRIORITY, &prio), STUN_OK);
    CHECK(prio == 0x6e0001ffu);
    uint64_t tie;
    CHECK_INT(stun_get_u64(&m, STUN_ATTR_ICE_CONTROLLED, &tie), STUN_OK);
    CHECK(tie == 0x932ff9b151263b36ull);
    CHECK_INT(stun_check_integrity(&m, pw(), strlen(SHORT_TERM_PW)), STUN_OK);
    CHECK_INT(stun_check_integrity(&m, (const uint8_t *)"wrong", 5), STUN_ERR_INTEGRITY);
    CHECK_INT(stun_check_integrity_sha256(&m, pw(), 22), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_check_fingerprint(&m), STUN_OK);

    /* Tampering with a covered byte breaks both. */
    buf[30] ^= 1;
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(stun_check_integrity(&m, pw(), 22), STUN_ERR_INTEGRITY);
    CHECK_INT(stun_check_fingerprint(&m), STUN_ERR_FINGERPRINT);
    buf[30] ^= 1;

    /* Rebuilt byte for byte (the vector pads with spaces). */
    uint8_t out[256];
    stun_builder b;
    CHECK_INT(stun_builder_begin(&b, out, sizeof out,
                                 stun_type(STUN_METHOD_BINDING, STUN_CLASS_REQUEST), buf + 8),
              STUN_OK);
    b.pad_byte = 0x20;
    stun_builder_add(&b, STUN_ATTR_SOFTWARE, "STUN test client", 16);
    stun_builder_add_u32(&b, STUN_ATTR_PRIORITY, 0x6e0001ff);
    stun_builder_add_u64(&b, STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
    stun_builder_add(&b, STUN_ATTR_USERNAME, "evtj:h6vY", 9);
    stun_builder_add_integrity(&b, pw(), 22);
    stun_builder_add_fingerprint(&b);
    CHECK_INT(stun_builder_finish(&b), (int)n);
    CHECK(memcmp(out, buf, n) == 0);
}

static void check_sockaddr_v4(const struct sockaddr_storage *ss, const char *ip, uint16_t port,
                              int *ok)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char str[INET_ADDRSTRLEN];
    *ok = ss->ss_family == AF_INET && ntohs(sin->sin_port) == port &&
          inet_ntop(AF_INET, &sin->sin_addr, str, sizeof str) && strcmp(str, ip) == 0;
}

static void check_sockaddr_v6(const struct sockaddr_storage *ss, const char *ip, uint16_t port,
                              int *ok)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char str[INET6_ADDRSTRLEN];
    *ok = ss->ss_family == AF_INET6 && ntohs(sin6->sin6_port) == port &&
          inet_ntop(AF_INET6, &sin6->sin6_addr, str, sizeof str) && strcmp(str, ip) == 0;
}

/* Shared by §2.2 and §2.3: parse, decode, verify, rebuild. */
static void check_response_vector(const char *hex, int family, const char *ip)
{
    uint8_t buf[256];
    size_t n = unhex(hex, buf, sizeof buf);
    stun_msg m;
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(m.method, STUN_METHOD_BINDING);
    CHECK_INT(m.cls, STUN_CLASS_SUCCESS);
    const uint8_t *v;
    size_t len;
    CHECK_INT(stun_get_software(&m, &v, &len), STUN_OK);
    CHECK(bytes_eq(v, len, "test vector"));
    struct sockaddr_storage ss;
    CHECK_INT(stun_get_xor_address(&m, STUN_ATTR_XOR_MAPPED_ADDRESS, &ss), STUN_OK);
    int ok = 0;
    if (family == AF_INET)
        check_sockaddr_v4(&ss, ip, 32853, &ok);
    else
        check_sockaddr_v6(&ss, ip, 32853, &ok);
    CHECK(ok);
    CHECK_INT(stun_get_address(&m, STUN_ATTR_MAPPED_ADDRESS, &ss), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_check_integrity(&m, pw(), 22), STUN_OK);
    CHECK_INT(stun_check_fingerprint(&m), STUN_OK);

    uint8_t out[256];
    stun_builder b;
    stun_builder_begin_response(&b, out, sizeof out,
                                &(stun_msg){.method = STUN_METHOD_BINDING, .txid = buf + 8},
                                STUN_CLASS_SUCCESS);
    b.pad_byte = 0x20;
    stun_builder_add(&b, STUN_ATTR_SOFTWARE, "test vector", 11);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&ss);
    stun_builder_add_integrity(&b, pw(), 22);
    stun_builder_add_fingerprint(&b);
    CHECK_INT(stun_builder_finish(&b), (int)n);
    CHECK(memcmp(out, buf, n) == 0);
}

static void t_rfc5769_ipv4(void)
{
    check_response_vector(V_IPV4, AF_INET, "192.0.2.1");
}

static void t_rfc5769_ipv6(void)
{
    check_response_vector(V_IPV6, AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677");
}

static void t_rfc5769_long_term(void)
{
    uint8_t buf[256];
    size_t n = unhex(V_LONG_TERM, buf, sizeof buf);
    CHECK_INT(n, 116);
    stun_msg m;
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(m.n_unknown, 0);
    const uint8_t *user, *realm, *nonce;
    size_t ulen, rlen, nlen;
    CHECK_INT(stun_get_username(&m, &user, &ulen), STUN_OK);
    CHECK(bytes_eq(user, ulen, LT_USER));
    CHECK_INT(stun_get_realm(&m, &realm, &rlen), STUN_OK);
    CHECK(bytes_eq(realm, rlen, "example.org"));
    CHECK_INT(stun_get_nonce(&m, &nonce, &nlen), STUN_OK);
    CHECK(bytes_eq(nonce, nlen, LT_NONCE));
    CHECK_INT(stun_check_fingerprint(&m), STUN_ERR_NOT_FOUND);

    uint8_t key[16], want[16];
    CHECK_INT(stun_long_term_key(user, ulen, realm, rlen, (const uint8_t *)"TheMatrIX", 9, key),
              STUN_OK);
    unhex("e8ca7ad59d5eb0518e312911d2dab2a9", want, sizeof want); /* md5sum of the same bytes */
    CHECK(memcmp(key, want, 16) == 0);
    CHECK_INT(stun_check_integrity(&m, key, 16), STUN_OK);
    CHECK_INT(stun_long_term_key(user, ulen, realm, rlen, (const uint8_t *)"thematrix", 9, key),
              STUN_OK);
    CHECK_INT(stun_check_integrity(&m, key, 16), STUN_ERR_INTEGRITY);

    /* Rebuilt byte for byte (zero padding here). */
    stun_long_term_key(user, ulen, realm, rlen, (const uint8_t *)"TheMatrIX", 9, key);
    uint8_t out[256];
    stun_builder b;
    stun_builder_begin(&b, out, sizeof out, 0x0001, buf + 8);
    stun_builder_add(&b, STUN_ATTR_USERNAME, LT_USER, strlen(LT_USER));
    stun_builder_add(&b, STUN_ATTR_NONCE, LT_NONCE, strlen(LT_NONCE));
    stun_builder_add(&b, STUN_ATTR_REALM, "example.org", 11);
    stun_builder_add_integrity(&b, key, 16);
    CHECK_INT(stun_builder_finish(&b), (int)n);
    CHECK(memcmp(out, buf, n) == 0);
}

/* Every proper prefix of every vector fails to parse, from an exactly sized heap copy so
 * ASan catches any read past it. */
static void t_truncations(void)
{
    const char *vecs[] = {V_REQUEST, V_IPV4, V_IPV6, V_LONG_TERM};
    for (size_t v = 0; v < 4; v++) {
        uint8_t buf[256];
        size_t n = unhex(vecs[v], buf, sizeof buf);
        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, buf, cut);
            stun_msg m;
            int rc = stun_parse(copy, cut, &m);
            free(copy);
            CHECK(rc < 0);
            /* Same prefix with the length field adjusted: attributes cut in the middle. */
            if (cut >= 20 && cut % 4 == 0 && cut < n) {
                uint8_t adj[256];
                memcpy(adj, buf, cut);
                adj[2] = (uint8_t)((cut - 20) >> 8);
                adj[3] = (uint8_t)(cut - 20);
                rc = stun_parse(adj, cut, &m);
                CHECK(rc == STUN_OK || rc == STUN_ERR_BAD_ATTR);
            }
        }
        stun_msg m;
        CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    }
}

static void t_header_errors(void)
{
    uint8_t buf[256], bad[260];
    size_t n = unhex(V_IPV4, buf, sizeof buf);
    stun_msg m;
    CHECK_INT(stun_parse(NULL, 0, &m), STUN_ERR_TRUNCATED);
    CHECK_INT(stun_parse(buf, n, NULL), STUN_ERR_INVALID);
    memcpy(bad, buf, n);
    bad[0] |= 0x80;
    CHECK_INT(stun_parse(bad, n, &m), STUN_ERR_NOT_STUN);
    CHECK(!stun_is_stun(bad, n));
    CHECK(stun_is_stun(buf, n));
    memcpy(bad, buf, n);
    bad[5] ^= 1;
    CHECK_INT(stun_parse(bad, n, &m), STUN_ERR_NOT_STUN);
    memcpy(bad, buf, n);
    bad[3] = 0x3d; /* not a multiple of 4 */
    CHECK_INT(stun_parse(bad, n, &m), STUN_ERR_BAD_LENGTH);
    memcpy(bad, buf, n);
    memset(bad + n, 0, 4); /* trailing bytes beyond the declared length */
    CHECK_INT(stun_parse(bad, n + 4, &m), STUN_ERR_BAD_LENGTH);
    memcpy(bad, buf, n);
    bad[3] = 0x38; /* shorter declared length than the buffer */
    CHECK_INT(stun_parse(bad, n, &m), STUN_ERR_BAD_LENGTH);
}

static void t_attr_overrun(void)
{
    uint8_t buf[256];
    size_t n = unhex(V_IPV4, buf, sizeof buf);
    stun_msg m;
    buf[23] = 0x40; /* SOFTWARE claims 64 bytes */
    CHECK_INT(stun_parse(buf, n, &m), STUN_ERR_BAD_ATTR);
    n = unhex(V_IPV4, buf, sizeof buf);
    buf[n - 5] = 5; /* FINGERPRINT value 5 bytes: overruns and is the wrong size */
    CHECK_INT(stun_parse(buf, n, &m), STUN_ERR_BAD_ATTR);
    n = unhex(V_IPV4, buf, sizeof buf);
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    size_t mi = m.mi_off;
    CHECK_INT(mi, 48);
    buf[mi + 3] = 0x10; /* MESSAGE-INTEGRITY with 16 bytes (then junk follows) */
    CHECK_INT(stun_parse(buf, n, &m), STUN_ERR_BAD_ATTR);
    /* Well-formed walk, but MESSAGE-INTEGRITY / FINGERPRINT of the wrong size. */
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0001, (const uint8_t *)"0123456789ab");
    stun_builder_reserve(&b, STUN_ATTR_MESSAGE_INTEGRITY, 16);
    CHECK_INT(stun_parse(buf, (size_t)stun_builder_finish(&b), &m), STUN_ERR_BAD_ATTR);
    stun_builder_begin(&b, buf, sizeof buf, 0x0001, (const uint8_t *)"0123456789ab");
    stun_builder_reserve(&b, STUN_ATTR_FINGERPRINT, 8);
    CHECK_INT(stun_parse(buf, (size_t)stun_builder_finish(&b), &m), STUN_ERR_BAD_ATTR);
}

static size_t build_simple(uint8_t *out, size_t cap, bool mi, bool fp)
{
    static const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    stun_builder b;
    stun_builder_begin(&b, out, cap, stun_type(STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST), txid);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 600);
    if (mi)
        stun_builder_add_integrity(&b, (const uint8_t *)"k", 1);
    if (fp)
        stun_builder_add_fingerprint(&b);
    int len = stun_builder_finish(&b);
    return len > 0 ? (size_t)len : 0;
}

/* Appends an attribute to a complete message and fixes the header length. */
static size_t append_attr(uint8_t *buf, size_t n, uint16_t type, const char *val, size_t vlen)
{
    buf[n] = (uint8_t)(type >> 8);
    buf[n + 1] = (uint8_t)type;
    buf[n + 2] = 0;
    buf[n + 3] = (uint8_t)vlen;
    memset(buf + n + 4, 0, (vlen + 3) & ~(size_t)3);
    memcpy(buf + n + 4, val, vlen);
    n += 4 + ((vlen + 3) & ~(size_t)3);
    buf[2] = (uint8_t)((n - 20) >> 8);
    buf[3] = (uint8_t)(n - 20);
    return n;
}

static void t_after_fingerprint_and_integrity(void)
{
    uint8_t buf[256];
    stun_msg m;
    size_t n = build_simple(buf, sizeof buf, false, true);
    CHECK(n > 0);
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(stun_check_fingerprint(&m), STUN_OK);
    n = append_attr(buf, n, STUN_ATTR_SOFTWARE, "x", 1);
    CHECK_INT(stun_parse(buf, n, &m), STUN_ERR_ORDER);

    /* A second FINGERPRINT is also "after FINGERPRINT". */
    n = build_simple(buf, sizeof buf, false, true);
    n = append_attr(buf, n, STUN_ATTR_FINGERPRINT, "abcd", 4);
    CHECK_INT(stun_parse(buf, n, &m), STUN_ERR_ORDER);

    /* After MESSAGE-INTEGRITY other attributes are ignored (RFC 8489 §14.5), unknown ones
     * included, and the integrity still verifies. */
    n = build_simple(buf, sizeof buf, true, false);
    n = append_attr(buf, n, STUN_ATTR_DATA, "abc", 3);
    n = append_attr(buf, n, 0x0003, "abcd", 4);
    CHECK_INT(stun_parse(buf, n, &m), STUN_OK);
    CHECK_INT(m.n_ignored, 2);
    CHECK_INT(m.n_unknown, 0);
    CHECK(!stun_has_attr(&m, STUN_ATTR_DATA));
    CHECK_INT(stun_check_integrity(&m, (const uint8_t *)"k", 1), STUN_OK);
}

static void t_unknown_attributes(void)
{
    static const uint8_t txid[12] = {0};
    uint8_t buf[256], resp[256];
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    stun_builder_add_u32(&b, 0x0003, 0);  /* CHANGE-REQUEST: not supported */
    stun_builder_add(&b, 0x7FFF, "z", 1); /* unknown, comprehension-required */
    stun_builder_add_u32(&b, 0x0003, 0);  /* duplicate: listed once */
    stun_builder_add(&b, 0xC001, "q", 1); /* unknown, comprehension-optional */
    stun_builder_add(&b, STUN_ATTR_USE_CANDIDATE, NULL, 0);
    int n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    CHECK_INT(m.n_unknown, 2);
    CHECK_INT(m.unknown[0], 0x0003);
    CHECK_INT(m.unknown[1], 0x7FFF);
    CHECK(stun_has_attr(&m, STUN_ATTR_USE_CANDIDATE));
    CHECK(stun_attr_is_known(STUN_ATTR_PRIORITY));
    CHECK(stun_attr_is_known(0xC001));
    CHECK(!stun_attr_is_known(0x0003));

    /* The 420 response. */
    stun_builder_begin_response(&b, resp, sizeof resp, &m, STUN_CLASS_ERROR);
    stun_builder_add_error_code(&b, 420, NULL);
    stun_builder_add_unknown_attributes(&b, m.unknown, m.n_unknown);
    stun_builder_add_fingerprint(&b);
    n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg r;
    CHECK_INT(stun_parse(resp, (size_t)n, &r), STUN_OK);
    CHECK_INT(r.type, 0x0111);
    CHECK(memcmp(r.txid, m.txid, 12) == 0);
    int code;
    const uint8_t *reason;
    size_t rlen;
    CHECK_INT(stun_get_error_code(&r, &code, &reason, &rlen), STUN_OK);
    CHECK_INT(code, 420);
    CHECK(bytes_eq(reason, rlen, "Unknown Attribute"));
    uint16_t list[1];
    size_t count;
    CHECK_INT(stun_get_unknown_attributes(&r, list, 1, &count), STUN_OK);
    CHECK_INT(count, 2);
    CHECK_INT(list[0], 0x0003);
    CHECK_INT(stun_check_fingerprint(&r), STUN_OK);
}

static void t_many_unknown_and_too_many_attrs(void)
{
    static const uint8_t txid[12] = {0};
    uint8_t buf[1024];
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    for (uint16_t i = 0; i < STUN_MAX_ATTRS; i++)
        stun_builder_add(&b, (uint16_t)(0x7000 + i), NULL, 0);
    int n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    CHECK_INT(m.n_unknown, STUN_MAX_ATTRS);
    CHECK_INT(m.unknown[STUN_MAX_UNKNOWN - 1], 0x7000 + STUN_MAX_UNKNOWN - 1);
    stun_builder_add(&b, STUN_ATTR_SOFTWARE, NULL, 0);
    n = stun_builder_finish(&b);
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_ERR_TOO_MANY_ATTRS);
}

/* Builds the same message into every capacity from 0 to its length: all but the last fail
 * with NO_SPACE, none writes past the (exactly sized, heap) buffer. */
static int build_full(uint8_t *out, size_t cap)
{
    static const uint8_t txid[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(5000)};
    inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
    static const uint16_t unk[3] = {0x0003, 0x7001, 0x7002};
    stun_builder b;
    stun_builder_begin(&b, out, cap, stun_type(STUN_METHOD_ALLOCATE, STUN_CLASS_ERROR), txid);
    stun_builder_add_error_code(&b, 420, "Unknown Attribute");
    stun_builder_add_unknown_attributes(&b, unk, 3);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&sin6);
    stun_builder_add(&b, STUN_ATTR_SOFTWARE, "turnkey", 7);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 600);
    uint8_t *d = stun_builder_reserve(&b, STUN_ATTR_DATA, 5);
    if (d)
        memcpy(d, "hello", 5);
    stun_builder_add_integrity(&b, (const uint8_t *)"key", 3);
    stun_builder_add_integrity_sha256(&b, (const uint8_t *)"key", 3);
    stun_builder_add_fingerprint(&b);
    return stun_builder_finish(&b);
}

static void t_builder_capacity(void)
{
    uint8_t ref[512];
    int full = build_full(ref, sizeof ref);
    CHECK(full > 0);
    stun_msg m;
    CHECK_INT(stun_parse(ref, (size_t)full, &m), STUN_OK);
    CHECK_INT(stun_check_integrity(&m, (const uint8_t *)"key", 3), STUN_OK);
    CHECK_INT(stun_check_integrity_sha256(&m, (const uint8_t *)"key", 3), STUN_OK);
    CHECK_INT(stun_check_fingerprint(&m), STUN_OK);
    for (size_t cap = 0; cap <= (size_t)full; cap++) {
        uint8_t *buf = malloc(cap);
        int rc = build_full(buf, cap);
        if (cap < (size_t)full) {
            CHECK_INT(rc, STUN_ERR_NO_SPACE);
        } else {
            CHECK_INT(rc, full);
            CHECK(memcmp(buf, ref, cap) == 0);
        }
        free(buf);
    }
}

static void t_builder_errors(void)
{
    static const uint8_t txid[12] = {0};
    uint8_t buf[256];
    stun_builder b;
    CHECK_INT(stun_builder_begin(&b, buf, sizeof buf, 0xC001, txid), STUN_ERR_INVALID);
    CHECK_INT(stun_builder_finish(&b), STUN_ERR_INVALID);

    /* Order: nothing but MI-SHA256 / FINGERPRINT after MI; only FINGERPRINT after MI-SHA256;
     * nothing after FINGERPRINT. Errors are sticky. */
    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    stun_builder_add_integrity(&b, (const uint8_t *)"k", 1);
    CHECK_INT(stun_builder_add(&b, STUN_ATTR_SOFTWARE, "x", 1), STUN_ERR_ORDER);
    CHECK_INT(stun_builder_add_fingerprint(&b), STUN_ERR_ORDER);
    CHECK_INT(stun_builder_finish(&b), STUN_ERR_ORDER);

    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    CHECK_INT(stun_builder_add_integrity_sha256(&b, (const uint8_t *)"k", 1), STUN_OK);
    CHECK_INT(stun_builder_add_integrity(&b, (const uint8_t *)"k", 1), STUN_ERR_ORDER);

    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    CHECK_INT(stun_builder_add_fingerprint(&b), STUN_OK);
    CHECK_INT(stun_builder_add_integrity(&b, (const uint8_t *)"k", 1), STUN_ERR_ORDER);

    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    CHECK_INT(stun_builder_add_error_code(&b, 200, NULL), STUN_ERR_INVALID);
    CHECK_INT(stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 1), STUN_ERR_INVALID);

    stun_builder_begin(&b, buf, sizeof buf, 0x0001, txid);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    CHECK_INT(stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, &sa), STUN_ERR_INVALID);

    /* The 16-bit message length: 0xFFFF bytes of DATA do not fit behind a header. */
    uint8_t *big = malloc(70000);
    stun_builder_begin(&b, big, 70000, 0x0017, txid);
    CHECK(stun_builder_reserve(&b, STUN_ATTR_DATA, 0xFFFF) == NULL);
    CHECK_INT(stun_builder_finish(&b), STUN_ERR_NO_SPACE);
    stun_builder_begin(&b, big, 70000, 0x0017, txid);
    CHECK(stun_builder_reserve(&b, STUN_ATTR_DATA, 0xFFFF - 4 - 3) != NULL);
    CHECK_INT(stun_builder_finish(&b), 20 + 0xFFFC);
    free(big);
}

/* A maximal message: the last attribute's value sits past offset 65535. */
static void t_max_size_message(void)
{
    static const uint8_t txid[12] = {5};
    size_t cap = STUN_FRAME_MAX;
    uint8_t *buf = malloc(cap);
    stun_builder b;
    stun_builder_begin(&b, buf, cap, 0x0017, txid);
    uint8_t *d = stun_builder_reserve(&b, STUN_ATTR_DATA, 65520);
    if (d)
        memset(d, 0x5A, 65520);
    stun_builder_add(&b, STUN_ATTR_SOFTWARE, "x", 1);
    int n = stun_builder_finish(&b);
    stun_msg m;
    int rc = stun_parse(buf, (size_t)(n > 0 ? n : 0), &m);
    const uint8_t *p = NULL;
    size_t len = 0;
    int rc2 = stun_get_software(&m, &p, &len);
    size_t fl = 0, cons = 0;
    int rc3 = stun_frame_next(buf, (size_t)(n > 0 ? n : 0), &fl, &cons);
    bool ok = p && p == buf + 65548 && len == 1 && p[0] == 'x';
    free(buf);
    CHECK_INT(n, 20 + 65532);
    CHECK_INT(rc, STUN_OK);
    CHECK_INT(rc2, STUN_OK);
    CHECK(ok);
    CHECK_INT(rc3, STUN_FRAME_STUN);
    CHECK_INT(fl, 20 + 65532);
}

static void t_method_class(void)
{
    CHECK_INT(stun_type(STUN_METHOD_BINDING, STUN_CLASS_REQUEST), 0x0001);
    CHECK_INT(stun_type(STUN_METHOD_BINDING, STUN_CLASS_SUCCESS), 0x0101);
    CHECK_INT(stun_type(STUN_METHOD_BINDING, STUN_CLASS_ERROR), 0x0111);
    CHECK_INT(stun_type(STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST), 0x0003);
    CHECK_INT(stun_type(STUN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS), 0x0103);
    CHECK_INT(stun_type(STUN_METHOD_ALLOCATE, STUN_CLASS_ERROR), 0x0113);
    CHECK_INT(stun_type(STUN_METHOD_REFRESH, STUN_CLASS_REQUEST), 0x0004);
    CHECK_INT(stun_type(STUN_METHOD_SEND, STUN_CLASS_INDICATION), 0x0016);
    CHECK_INT(stun_type(STUN_METHOD_DATA, STUN_CLASS_INDICATION), 0x0017);
    CHECK_INT(stun_type(STUN_METHOD_CREATE_PERMISSION, STUN_CLASS_SUCCESS), 0x0108);
    CHECK_INT(stun_type(STUN_METHOD_CHANNEL_BIND, STUN_CLASS_ERROR), 0x0119);
    CHECK_INT(stun_type(0xFFF, STUN_CLASS_ERROR), 0x3FFF);
    for (uint16_t method = 0; method < 0x1000; method++)
        for (uint8_t cls = 0; cls < 4; cls++) {
            uint16_t t = stun_type(method, cls);
            CHECK((t & 0xC000) == 0);
            CHECK_INT(stun_type_method(t), method);
            CHECK_INT(stun_type_class(t), cls);
        }
}

static void t_address_roundtrip(void)
{
    const char *v6[] = {"2001:db8::1", "::", "::ffff:192.0.2.9", "fe80::1:2:3:4",
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    const char *v4[] = {"203.0.113.7", "0.0.0.0", "255.255.255.255"};
    uint8_t txid[12];
    for (int i = 0; i < 12; i++)
        txid[i] = (uint8_t)(0x5A ^ (i * 37));
    for (size_t i = 0; i < 5 + 3; i++) {
        struct sockaddr_storage in = {0}, out;
        uint16_t port = (uint16_t)(i * 9001 + 1);
        if (i < 5) {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&in;
            s->sin6_family = AF_INET6;
            s->sin6_port = htons(port);
            inet_pton(AF_INET6, v6[i], &s->sin6_addr);
        } else {
            struct sockaddr_in *s = (struct sockaddr_in *)&in;
            s->sin_family = AF_INET;
            s->sin_port = htons(port);
            inet_pton(AF_INET, v4[i - 5], &s->sin_addr);
        }
        uint8_t buf[128];
        stun_builder b;
        stun_builder_begin(&b, buf, sizeof buf, 0x0101, txid);
        stun_builder_add_xor_address(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&in);
        stun_builder_add_address(&b, STUN_ATTR_MAPPED_ADDRESS, (struct sockaddr *)&in);
        int n = stun_builder_finish(&b);
        CHECK(n > 0);
        stun_msg m;
        CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
        int ok = 0;
        char str[INET6_ADDRSTRLEN];
        const void *addr = i < 5 ? (const void *)&((struct sockaddr_in6 *)&in)->sin6_addr
                                 : (const void *)&((struct sockaddr_in *)&in)->sin_addr;
        inet_ntop(in.ss_family, addr, str, sizeof str);
        CHECK_INT(stun_get_xor_address(&m, STUN_ATTR_XOR_RELAYED_ADDRESS, &out), STUN_OK);
        if (i < 5)
            check_sockaddr_v6(&out, str, port, &ok);
        else
            check_sockaddr_v4(&out, str, port, &ok);
        CHECK(ok);
        CHECK_INT(stun_get_address(&m, STUN_ATTR_MAPPED_ADDRESS, &out), STUN_OK);
        if (i < 5)
            check_sockaddr_v6(&out, str, port, &ok);
        else
            check_sockaddr_v4(&out, str, port, &ok);
        CHECK(ok);
        /* The XOR value differs from the plain one (address bytes are masked). */
        const stun_attr *xa = stun_msg_find(&m, STUN_ATTR_XOR_RELAYED_ADDRESS);
        const stun_attr *pa = stun_msg_find(&m, STUN_ATTR_MAPPED_ADDRESS);
        CHECK(memcmp(stun_attr_value(&m, xa), stun_attr_value(&m, pa), xa->len) != 0);
    }
}

static void t_bad_address_values(void)
{
    static const uint8_t txid[12] = {0};
    uint8_t buf[128];
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0101, txid);
    stun_builder_add(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, "\0\3\0\0\1\2\3\4", 8); /* family 3 */
    stun_builder_add(&b, STUN_ATTR_MAPPED_ADDRESS, "\0\1\0\0\1\2\3", 7);       /* short */
    stun_builder_add(&b, STUN_ATTR_XOR_PEER_ADDRESS, "\0\2\0\0\1\2\3\4", 8);   /* v6, 4 bytes */
    int n = stun_builder_finish(&b);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    struct sockaddr_storage ss;
    CHECK_INT(stun_get_xor_address(&m, STUN_ATTR_XOR_MAPPED_ADDRESS, &ss), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_address(&m, STUN_ATTR_MAPPED_ADDRESS, &ss), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_xor_address(&m, STUN_ATTR_XOR_PEER_ADDRESS, &ss), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_xor_address(&m, STUN_ATTR_XOR_RELAYED_ADDRESS, &ss), STUN_ERR_NOT_FOUND);
}

static void t_turn_getters(void)
{
    static const uint8_t txid[12] = {7};
    uint8_t buf[512], hash[32];
    memset(hash, 0xAB, sizeof hash);
    struct sockaddr_in p1 = {.sin_family = AF_INET, .sin_port = htons(1000)};
    struct sockaddr_in p2 = {.sin_family = AF_INET, .sin_port = htons(2000)};
    inet_pton(AF_INET, "198.51.100.1", &p1.sin_addr);
    inet_pton(AF_INET, "198.51.100.2", &p2.sin_addr);
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, stun_type(STUN_METHOD_ALLOCATE, 0), txid);
    stun_builder_add_u32(&b, STUN_ATTR_LIFETIME, 3600);
    stun_builder_add_requested_transport(&b, STUN_TRANSPORT_UDP);
    stun_builder_add_address_family(&b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, STUN_FAMILY_IPV6);
    stun_builder_add_address_family(&b, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, STUN_FAMILY_IPV6);
    stun_builder_add(&b, STUN_ATTR_EVEN_PORT, "\x80", 1);
    stun_builder_add(&b, STUN_ATTR_DONT_FRAGMENT, NULL, 0);
    stun_builder_add_u64(&b, STUN_ATTR_RESERVATION_TOKEN, 0x0102030405060708ull);
    stun_builder_add_channel_number(&b, 0x4001);
    stun_builder_add(&b, STUN_ATTR_DATA, "", 0);
    stun_builder_add(&b, STUN_ATTR_PASSWORD_ALGORITHM, "\0\2\0\0", 4);
    stun_builder_add(&b, STUN_ATTR_PASSWORD_ALGORITHMS, "\0\2\0\0\0\1\0\3xyz\0", 12);
    stun_builder_add(&b, STUN_ATTR_USERHASH, hash, 32);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&p1);
    stun_builder_add_xor_address(&b, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&p2);
    int n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    CHECK_INT(m.n_unknown, 0);
    uint32_t life;
    CHECK_INT(stun_get_lifetime(&m, &life), STUN_OK);
    CHECK_INT(life, 3600);
    uint8_t u8;
    CHECK_INT(stun_get_requested_transport(&m, &u8), STUN_OK);
    CHECK_INT(u8, 17);
    CHECK_INT(stun_get_address_family(&m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &u8), STUN_OK);
    CHECK_INT(u8, STUN_FAMILY_IPV6);
    CHECK_INT(stun_get_address_family(&m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, &u8), STUN_OK);
    CHECK_INT(u8, STUN_FAMILY_IPV6);
    bool r = false;
    CHECK_INT(stun_get_even_port(&m, &r), STUN_OK);
    CHECK(r);
    CHECK(stun_has_attr(&m, STUN_ATTR_DONT_FRAGMENT));
    uint64_t tok;
    CHECK_INT(stun_get_reservation_token(&m, &tok), STUN_OK);
    CHECK(tok == 0x0102030405060708ull);
    uint16_t ch;
    CHECK_INT(stun_get_channel_number(&m, &ch), STUN_OK);
    CHECK_INT(ch, 0x4001);
    CHECK(stun_channel_valid(ch));
    const uint8_t *p;
    size_t len = 99;
    CHECK_INT(stun_get_data(&m, &p, &len), STUN_OK);
    CHECK_INT(len, 0);
    uint16_t alg, algs[4];
    CHECK_INT(stun_get_password_algorithm(&m, &alg, &p, &len), STUN_OK);
    CHECK_INT(alg, STUN_PASSWORD_ALG_SHA256);
    CHECK_INT(len, 0);
    CHECK_INT(stun_get_password_algorithms(&m, algs, 4, &len), STUN_OK);
    CHECK_INT(len, 2);
    CHECK_INT(algs[0], 2);
    CHECK_INT(algs[1], 1);
    CHECK_INT(stun_get_userhash(&m, &p), STUN_OK);
    CHECK(memcmp(p, hash, 32) == 0);
    /* Repeated XOR-PEER-ADDRESS (CreatePermission may carry several). */
    const stun_attr *a = stun_msg_find(&m, STUN_ATTR_XOR_PEER_ADDRESS);
    struct sockaddr_storage ss;
    int ok;
    CHECK_INT(stun_attr_xor_address(&m, a, &ss), STUN_OK);
    check_sockaddr_v4(&ss, "198.51.100.1", 1000, &ok);
    CHECK(ok);
    a = stun_msg_find_next(&m, STUN_ATTR_XOR_PEER_ADDRESS, a);
    CHECK(a != NULL);
    CHECK_INT(stun_attr_xor_address(&m, a, &ss), STUN_OK);
    check_sockaddr_v4(&ss, "198.51.100.2", 2000, &ok);
    CHECK(ok);
    CHECK(stun_msg_find_next(&m, STUN_ATTR_XOR_PEER_ADDRESS, a) == NULL);
    /* Absent. */
    CHECK_INT(stun_get_nonce(&m, &p, &len), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_get_error_code(&m, &ok, &p, &len), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_check_integrity(&m, (const uint8_t *)"k", 1), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_check_fingerprint(&m), STUN_ERR_NOT_FOUND);
}

static void t_malformed_values(void)
{
    static const uint8_t txid[12] = {0};
    uint8_t buf[2048], big[800];
    memset(big, 'a', sizeof big);
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0003, txid);
    stun_builder_add(&b, STUN_ATTR_LIFETIME, "\0\0\1", 3);
    stun_builder_add(&b, STUN_ATTR_REQUESTED_TRANSPORT, "\x11", 1);
    stun_builder_add(&b, STUN_ATTR_CHANNEL_NUMBER, "\x40\x01\0\0\0", 5);
    stun_builder_add(&b, STUN_ATTR_EVEN_PORT, "\x80\0", 2);
    stun_builder_add(&b, STUN_ATTR_ERROR_CODE, "\0\0\2\0", 4); /* class 2 */
    stun_builder_add(&b, STUN_ATTR_UNKNOWN_ATTRIBUTES, "\0\3\0", 3);
    stun_builder_add(&b, STUN_ATTR_PASSWORD_ALGORITHM, "\0\1\0\5", 4);
    stun_builder_add(&b, STUN_ATTR_PASSWORD_ALGORITHMS, "\0\1\0\4\0", 5);
    stun_builder_add(&b, STUN_ATTR_USERHASH, big, 31);
    stun_builder_add(&b, STUN_ATTR_USERNAME, big, 513);
    stun_builder_add(&b, STUN_ATTR_REALM, big, 764);
    stun_builder_add(&b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, "\1", 1);
    int n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    uint32_t u32;
    uint8_t u8;
    uint16_t u16, list[2];
    bool r;
    int code;
    const uint8_t *p;
    size_t len;
    CHECK_INT(stun_get_lifetime(&m, &u32), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_requested_transport(&m, &u8), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_channel_number(&m, &u16), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_even_port(&m, &r), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_error_code(&m, &code, &p, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_unknown_attributes(&m, list, 2, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_password_algorithm(&m, &u16, &p, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_password_algorithms(&m, list, 2, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_userhash(&m, &p), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_username(&m, &p, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_realm(&m, &p, &len), STUN_ERR_BAD_ATTR);
    CHECK_INT(stun_get_address_family(&m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, &u8),
              STUN_ERR_BAD_ATTR);
}

static void t_error_codes(void)
{
    static const int codes[] = {300, 400, 401, 403, 420, 437, 438, 440,
                                441, 442, 446, 447, 486, 500, 508};
    static const uint8_t txid[12] = {3};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *reason = stun_error_reason(codes[i]);
        CHECK(reason != NULL && reason[0] != '\0');
        uint8_t buf[256];
        stun_builder b;
        stun_builder_begin(&b, buf, sizeof buf, 0x0113, txid);
        stun_builder_add_error_code(&b, codes[i], NULL);
        int n = stun_builder_finish(&b);
        stun_msg m;
        CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
        int code;
        const uint8_t *p;
        size_t len;
        CHECK_INT(stun_get_error_code(&m, &code, &p, &len), STUN_OK);
        CHECK_INT(code, codes[i]);
        CHECK(bytes_eq(p, len, reason));
    }
    CHECK_STR(stun_error_reason(438), "Stale Nonce");
    CHECK_STR(stun_error_reason(401), "Unauthenticated");
    CHECK(stun_error_reason(499) == NULL);
    /* Custom reason, and a code without a standard phrase. */
    uint8_t buf[64];
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0113, txid);
    stun_builder_add_error_code(&b, 599, NULL);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)stun_builder_finish(&b), &m), STUN_OK);
    int code;
    const uint8_t *p;
    size_t len = 9;
    CHECK_INT(stun_get_error_code(&m, &code, &p, &len), STUN_OK);
    CHECK_INT(code, 599);
    CHECK_INT(len, 0);
    for (int rc = 0; rc >= STUN_ERR_CRYPTO; rc--)
        CHECK(strcmp(stun_strerror(rc), "unknown error") != 0);
    CHECK_STR(stun_strerror(-999), "unknown error");
}

static void t_integrity_sha256_truncated(void)
{
    static const uint8_t txid[12] = {4};
    const uint8_t key[] = "a long-term key";
    uint8_t buf[256];
    stun_builder b;
    stun_builder_begin(&b, buf, sizeof buf, 0x0003, txid);
    stun_builder_add(&b, STUN_ATTR_USERNAME, "alice", 5);
    uint8_t *v = stun_builder_reserve(&b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 16);
    CHECK(v != NULL);
    uint8_t mac[32];
    unsigned maclen = 0;
    CHECK(HMAC(EVP_sha256(), key, (int)sizeof key - 1, buf, (size_t)(v - buf) - 4, mac, &maclen));
    memcpy(v, mac, 16);
    stun_builder_add_fingerprint(&b);
    int n = stun_builder_finish(&b);
    CHECK(n > 0);
    stun_msg m;
    CHECK_INT(stun_parse(buf, (size_t)n, &m), STUN_OK);
    CHECK_INT(stun_check_integrity_sha256(&m, key, sizeof key - 1), STUN_OK);
    CHECK_INT(stun_check_integrity(&m, key, sizeof key - 1), STUN_ERR_NOT_FOUND);
    CHECK_INT(stun_check_fingerprint(&m), STUN_OK);
    CHECK_INT(stun_check_integrity_sha256(&m, key, sizeof key - 2), STUN_ERR_INTEGRITY);
    buf[v - buf + 15] ^= 0x80;
    CHECK_INT(stun_check_integrity_sha256(&m, key, sizeof key - 1), STUN_ERR_INTEGRITY);

    /* A 12-byte MI-SHA256 is malformed. */
    stun_builder_begin(&b, buf, sizeof buf, 0x0003, txid);
    stun_builder_reserve(&b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 12);
    CHECK_INT(stun_parse(buf, (size_t)stun_builder_finish(&b), &m), STUN_ERR_BAD_ATTR);

    /* Keys longer than the HMAC block are hashed first (RFC 2104); compare with OpenSSL. */
    uint8_t longkey[100];
    memset(longkey, 0x11, sizeof longkey);
    stun_builder_begin(&b, buf, sizeof buf, 0x0003, txid);
    stun_builder_add_integrity(&b, longkey, sizeof longkey);
    n = stun_builder_finish(&b);
    CHECK(HMAC(EVP_sha1(), longkey, sizeof longkey, buf, 20, mac, &maclen));
    CHECK(memcmp(mac, buf + 24, 20) == 0);
}

static void t_keys(void)
{
    uint8_t out[32], want[32];
    const uint8_t *u = (const uint8_t *)"user", *r = (const uint8_t *)"realm";
    CHECK_INT(stun_long_term_key(u, 4, r, 5, (const uint8_t *)"pass", 4, out), STUN_OK);
    unhex("8493fbc53ba582fb4c044c456bdc40eb", want, 16);
    CHECK(memcmp(out, want, 16) == 0);
    CHECK_INT(stun_long_term_key_sha256(u, 4, r, 5, (const uint8_t *)"pass", 4, out), STUN_OK);
    unhex("07e934117abd40836e7c6329b54731b2b2d2a5f9a71f544922d75e0730d8251b", want, 32);
    CHECK(memcmp(out, want, 32) == 0);
    CHECK_INT(stun_userhash(u, 4, r, 5, out), STUN_OK);
    unhex("6a3029116b47aa98bcaa325399733dc1a23cd57e26b81bef3ff6531ce624e2da", want, 32);
    CHECK(memcmp(out, want, 32) == 0);
    CHECK_INT(stun_long_term_key(NULL, 1, r, 5, u, 4, out), STUN_ERR_INVALID);
}

static void t_crc32(void)
{
    CHECK(stun_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(stun_crc32(NULL, 0) == 0);
    /* zlib vs. the bitwise definition on varied data. */
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < sizeof data; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    CHECK(stun_crc32(data, sizeof data) == (c ^ 0xFFFFFFFFu));
    for (int byte = 0; byte < 256; byte++) {
        uint8_t one = (uint8_t)byte;
        uint32_t x = 0xFFFFFFFFu ^ one;
        for (int k = 0; k < 8; k++)
            x = (x & 1) ? (x >> 1) ^ 0xEDB88320u : x >> 1;
        CHECK(stun_crc32(&one, 1) == (x ^ 0xFFFFFFFFu));
    }
}

/* ---- ChannelData ------------------------------------------------------------------------ */

static void t_channeldata(void)
{
    uint8_t buf[32];
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x4001, (const uint8_t *)"hello", 5, false),
              9);
    CHECK(stun_is_channeldata(buf, 9));
    CHECK(!stun_is_stun(buf, 9));
    uint16_t ch;
    const uint8_t *d;
    size_t dl;
    CHECK_INT(stun_channeldata_parse(buf, 9, &ch, &d, &dl), STUN_OK);
    CHECK_INT(ch, 0x4001);
    CHECK(bytes_eq(d, dl, "hello"));
    CHECK_INT(stun_channeldata_parse(buf, 8, &ch, &d, &dl), STUN_ERR_TRUNCATED);
    CHECK_INT(stun_channeldata_parse(buf, 3, &ch, &d, &dl), STUN_ERR_TRUNCATED);
    /* Padded (streams): 12 bytes, padding zero, still parses. */
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x4FFF, (const uint8_t *)"hello", 5, true),
              12);
    CHECK(buf[9] == 0 && buf[10] == 0 && buf[11] == 0);
    CHECK_INT(stun_channeldata_parse(buf, 12, &ch, &d, &dl), STUN_OK);
    CHECK_INT(ch, 0x4FFF);
    CHECK_INT(dl, 5);
    CHECK_INT(stun_channeldata_parse(buf, 13, &ch, &d, &dl), STUN_ERR_BAD_LENGTH);
    /* Bad channels. */
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x3FFF, NULL, 0, false),
              STUN_ERR_BAD_CHANNEL);
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x8000, NULL, 0, false),
              STUN_ERR_BAD_CHANNEL);
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x52DA, NULL, 0, false),
              4); /* RFC 5766 range */
    buf[0] = 0x80;
    CHECK_INT(stun_channeldata_parse(buf, 12, &ch, &d, &dl), STUN_ERR_BAD_CHANNEL);
    CHECK(!stun_is_channeldata(buf, 12));
    /* Capacity, in-place data, header only. */
    CHECK_INT(stun_channeldata_build(buf, 11, 0x4000, (const uint8_t *)"hello", 5, true),
              STUN_ERR_NO_SPACE);
    memcpy(buf + 4, "abc", 3);
    CHECK_INT(stun_channeldata_build(buf, sizeof buf, 0x4000, buf + 4, 3, true), 8);
    CHECK_INT(stun_channeldata_parse(buf, 8, &ch, &d, &dl), STUN_OK);
    CHECK(bytes_eq(d, dl, "abc"));
    CHECK_INT(stun_channeldata_header(buf, 4, 0x4002, 1000), 4);
    CHECK(buf[0] == 0x40 && buf[1] == 0x02 && buf[2] == 0x03 && buf[3] == 0xE8);
    CHECK_INT(stun_channeldata_header(buf, 3, 0x4002, 1000), STUN_ERR_NO_SPACE);
    CHECK(stun_channel_valid(0x4000) && stun_channel_valid(0x4FFF));
    CHECK(stun_channel_valid(0x5000) && stun_channel_valid(0x7FFF));
    CHECK(!stun_channel_valid(0x3FFF) && !stun_channel_valid(0x8000));
}

/* ---- framer ----------------------------------------------------------------------------- */

typedef struct {
    int kind;
    size_t frame_len, consumed;
} frame_rec;

/* Builds a stream of the four vectors interleaved with ChannelData of several lengths. */
static size_t make_stream(uint8_t *s, size_t cap, frame_rec *want, size_t *nwant)
{
    const char *vecs[] = {V_REQUEST, V_IPV4, V_IPV6, V_LONG_TERM};
    static const size_t cd_lens[] = {5, 0, 4, 1, 7};
    size_t n = 0, k = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t vl = unhex(vecs[i], s + n, cap - n);
        want[k++] = (frame_rec){STUN_FRAME_STUN, vl, vl};
        n += vl;
        uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        size_t dl = cd_lens[i];
        int cl = stun_channeldata_build(s + n, cap - n, (uint16_t)(0x4000 + i), payload, dl, true);
        want[k++] = (frame_rec){STUN_FRAME_CHANNELDATA, 4 + dl, (size_t)cl};
        n += (size_t)cl;
    }
    *nwant = k;
    return n;
}

/* Feeds s in chunks whose sizes come from chunk(i); checks the frames come out as want. */
static int feed(const uint8_t *s, size_t n, const frame_rec *want, size_t nwant,
                size_t (*chunk)(size_t i, size_t arg), size_t arg)
{
    uint8_t acc[1024];
    size_t have = 0, got = 0, pos = 0;
    for (size_t i = 0; pos < n; i++) {
        size_t c = chunk(i, arg);
        if (c > n - pos)
            c = n - pos;
        memcpy(acc + have, s + pos, c);
        have += c;
        pos += c;
        for (;;) {
            size_t fl, cons;
            int rc = stun_frame_next(acc, have, &fl, &cons);
            if (rc == STUN_ERR_NEED_MORE) {
                if (cons <= have)
                    return 0; /* must ask for more than it has */
                break;
            }
            if (rc < 0 || got >= nwant)
                return 0;
            if (rc != want[got].kind || fl != want[got].frame_len || cons != want[got].consumed)
                return 0;
            if (rc == STUN_FRAME_STUN) {
                stun_msg m;
                if (stun_parse(acc, fl, &m) != STUN_OK)
                    return 0;
            }
            got++;
            memmove(acc, acc + cons, have - cons);
            have -= cons;
        }
    }
    return got == nwant && have == 0;
}

static size_t split_at(size_t i, size_t arg)
{
    return i == 0 ? arg : (size_t)-1;
}

static size_t by_bytes(size_t i, size_t arg)
{
    (void)i;
    return arg;
}

static size_t varied(size_t i, size_t arg)
{
    return 1 + (i * 7 + arg) % 13;
}

static void t_framer_splits(void)
{
    uint8_t s[1024];
    frame_rec want[16];
    size_t nwant;
    size_t n = make_stream(s, sizeof s, want, &nwant);
    CHECK_INT(nwant, 8);
    CHECK(feed(s, n, want, nwant, split_at, n));
    for (size_t k = 0; k <= n; k++)
        CHECK(feed(s, n, want, nwant, split_at, k));
    for (size_t step = 1; step <= 9; step++)
        CHECK(feed(s, n, want, nwant, by_bytes, step));
    for (size_t seed = 0; seed < 13; seed++)
        CHECK(feed(s, n, want, nwant, varied, seed));
    /* Every proper prefix of the first frame needs more, never errors. */
    for (size_t k = 0; k < want[0].consumed; k++) {
        size_t fl, cons;
        CHECK_INT(stun_frame_next(s, k, &fl, &cons), STUN_ERR_NEED_MORE);
        CHECK(cons > k);
        if (k >= 4)
            CHECK_INT(cons, want[0].consumed);
    }
    /* Same for a padded ChannelData frame. */
    const uint8_t *cd = s + want[0].consumed;
    for (size_t k = 0; k < want[1].consumed; k++) {
        size_t fl, cons;
        CHECK_INT(stun_frame_next(cd, k, &fl, &cons), STUN_ERR_NEED_MORE);
        CHECK(cons > k);
    }
}

static void t_framer_errors(void)
{
    size_t fl, cons;
    const uint8_t hi[] = {0x80, 0, 0, 0};
    CHECK_INT(stun_frame_next(hi, 1, &fl, &cons), STUN_ERR_NOT_STUN);
    const uint8_t c0[] = {0xC0};
    CHECK_INT(stun_frame_next(c0, 1, &fl, &cons), STUN_ERR_NOT_STUN);
    const uint8_t ch5[] = {0x52, 0xDA, 0x00, 0x00}; /* RFC 5766 range: a frame */
    CHECK_INT(stun_frame_next(ch5, 4, &fl, &cons), STUN_FRAME_CHANNELDATA);
    CHECK_INT(cons, 4);
    const uint8_t badlen[] = {0x00, 0x01, 0x00, 0x02, 0x21, 0x12, 0xA4, 0x42};
    CHECK_INT(stun_frame_next(badlen, 3, &fl, &cons), STUN_ERR_NEED_MORE);
    CHECK_INT(stun_frame_next(badlen, 4, &fl, &cons), STUN_ERR_BAD_LENGTH);
    const uint8_t badcookie[] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x13};
    CHECK_INT(stun_frame_next(badcookie, 5, &fl, &cons), STUN_ERR_NEED_MORE);
    CHECK_INT(stun_frame_next(badcookie, 6, &fl, &cons), STUN_ERR_NOT_STUN);
    /* Largest lengths: just need more. */
    const uint8_t maxstun[] = {0x00, 0x01, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42};
    CHECK_INT(stun_frame_next(maxstun, 8, &fl, &cons), STUN_ERR_NEED_MORE);
    CHECK_INT(cons, 20 + 0xFFFC);
    const uint8_t maxcd[] = {0x4F, 0xFF, 0xFF, 0xFF};
    CHECK_INT(stun_frame_next(maxcd, 4, &fl, &cons), STUN_ERR_NEED_MORE);
    CHECK_INT(cons, 65540); /* 4 + 65535, padded */
    CHECK(cons <= STUN_FRAME_MAX);
    CHECK_INT(stun_frame_next(NULL, 0, &fl, &cons), STUN_ERR_NEED_MORE);
    CHECK_INT(stun_frame_next(hi, 1, NULL, &cons), STUN_ERR_INVALID);
}

int main(void)
{
    TK_RUN(t_rfc5769_request);
    TK_RUN(t_rfc5769_ipv4);
    TK_RUN(t_rfc5769_ipv6);
    TK_RUN(t_rfc5769_long_term);
    TK_RUN(t_truncations);
    TK_RUN(t_header_errors);
    TK_RUN(t_attr_overrun);
    TK_RUN(t_after_fingerprint_and_integrity);
    TK_RUN(t_unknown_attributes);
    TK_RUN(t_many_unknown_and_too_many_attrs);
    TK_RUN(t_builder_capacity);
    TK_RUN(t_builder_errors);
    TK_RUN(t_max_size_message);
    TK_RUN(t_method_class);
    TK_RUN(t_address_roundtrip);
    TK_RUN(t_bad_address_values);
    TK_RUN(t_turn_getters);
    TK_RUN(t_malformed_values);
    TK_RUN(t_error_codes);
    TK_RUN(t_integrity_sha256_truncated);
    TK_RUN(t_keys);
    TK_RUN(t_crc32);
    TK_RUN(t_channeldata);
    TK_RUN(t_framer_splits);
    TK_RUN(t_framer_errors);
    return tk_test_summary();
}
