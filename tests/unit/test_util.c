#include "tk_test.h"
#include "turnkey/util.h"

static void t_hex_roundtrip(void)
{
    uint8_t in[4] = {0x00, 0xab, 0x10, 0xff}, out[4];
    char hex[9];
    util_hex_encode(in, 4, hex);
    CHECK_STR(hex, "00ab10ff");
    CHECK_INT(util_hex_decode("00AB10ff", 4, out), 0);
    CHECK(memcmp(in, out, 4) == 0);
    CHECK_INT(util_hex_decode("0g", 1, out), -1);
    CHECK(util_is_lower_hex("00ab10ff", 8));
    CHECK(!util_is_lower_hex("00AB10ff", 8));
    CHECK(!util_is_lower_hex("00ab10f", 8));
}

static void t_random_hex_distinct(void)
{
    char a[65], b[65];
    util_random_hex(32, a);
    util_random_hex(32, b);
    CHECK(util_is_lower_hex(a, 64));
    CHECK(strcmp(a, b) != 0);
}

static void t_sha256(void)
{
    char out[65];
    util_sha256_hex("abc", 3, out);
    CHECK_STR(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void t_rfc3339(void)
{
    char out[32];
    util_rfc3339(1388629200, out);
    CHECK_STR(out, "2014-01-02T02:20:00Z");
}

static void t_utf8(void)
{
    CHECK(util_utf8_valid_no_cc("my-turn-key", 11));
    CHECK(util_utf8_valid_no_cc("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CHECK(util_utf8_valid_no_cc("", 0));
    CHECK(!util_utf8_valid_no_cc("a\nb", 3));
    CHECK(!util_utf8_valid_no_cc("a\x7f", 2));
    CHECK(!util_utf8_valid_no_cc("\xc2\x85", 2));     /* U+0085 NEL is Cc */
    CHECK(!util_utf8_valid_no_cc("\xc0\xaf", 2));     /* overlong */
    CHECK(!util_utf8_valid_no_cc("\xed\xa0\x80", 3)); /* surrogate */
    CHECK(!util_utf8_valid_no_cc("\xe2\x82", 2));     /* truncated */
    CHECK(!util_utf8_valid_no_cc("\xff", 1));
    CHECK(!util_utf8_valid_no_cc("a\0b", 3));
    CHECK(util_utf8_valid_no_cc("\xc2\xa0", 2)); /* U+00A0 is not Cc */
}

static void t_duration(void)
{
    CHECK_INT(util_parse_duration("90"), 90);
    CHECK_INT(util_parse_duration("15m"), 900);
    CHECK_INT(util_parse_duration("2h"), 7200);
    CHECK_INT(util_parse_duration("30d"), 2592000);
    CHECK_INT(util_parse_duration("0"), -1);
    CHECK_INT(util_parse_duration("-5m"), -1);
    CHECK_INT(util_parse_duration("5x"), -1);
    CHECK_INT(util_parse_duration(""), -1);
}

static void t_ct_equal(void)
{
    CHECK(util_ct_equal("abcd", "abcd", 4));
    CHECK(!util_ct_equal("abcd", "abce", 4));
}

/* RFC 4231 (HMAC-SHA256) and RFC 2202 (HMAC-SHA1, HMAC-MD5) vectors, one message given in
 * several pieces (one empty), and a key longer than the block (hashed first). */
static void check_hmac(util_md_id id, const uint8_t *key, size_t keylen, const char *msg,
                       size_t outlen, const char *want_hex)
{
    size_t n = strlen(msg), cut1 = n / 3, cut2 = 2 * n / 3;
    const uint8_t *m = (const uint8_t *)msg;
    const uint8_t *whole[1] = {m};
    size_t whole_len[1] = {n};
    const uint8_t *parts[4] = {m, m + cut1, m + cut2, m + cut2};
    size_t part_len[4] = {cut1, cut2 - cut1, 0, n - cut2};
    uint8_t out[32];
    char hex[65];
    CHECK_INT(util_hmac(id, key, keylen, whole, whole_len, 1, out), 0);
    util_hex_encode(out, outlen, hex);
    CHECK_STR(hex, want_hex);
    memset(out, 0, sizeof out);
    CHECK_INT(util_hmac(id, key, keylen, parts, part_len, 4, out), 0);
    util_hex_encode(out, outlen, hex);
    CHECK_STR(hex, want_hex);
}

static void t_hmac_vectors(void)
{
    uint8_t k0b[20], kaa[131];
    memset(k0b, 0x0b, sizeof k0b);
    memset(kaa, 0xaa, sizeof kaa);
    const uint8_t *jefe = (const uint8_t *)"Jefe";
    check_hmac(UTIL_MD_SHA256, k0b, sizeof k0b, "Hi There", 32,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac(UTIL_MD_SHA256, kaa, sizeof kaa,
               "Test Using Larger Than Block-Size Key - Hash Key First", 32,
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    check_hmac(UTIL_MD_SHA1, jefe, 4, "what do ya want for nothing?", 20,
               "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    check_hmac(UTIL_MD_MD5, jefe, 4, "what do ya want for nothing?", 16,
               "750c783e6ab0b503eaa86e310a5db738");
    CHECK(util_md(UTIL_MD_SHA1) == util_md(UTIL_MD_SHA1)); /* fetched once */
}

int main(void)
{
    TK_RUN(t_hex_roundtrip);
    TK_RUN(t_random_hex_distinct);
    TK_RUN(t_sha256);
    TK_RUN(t_hmac_vectors);
    TK_RUN(t_rfc3339);
    TK_RUN(t_utf8);
    TK_RUN(t_duration);
    TK_RUN(t_ct_equal);
    return tk_test_summary();
}
