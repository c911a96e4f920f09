/* relay_mux: the first plaintext bytes on the TLS port shared by TURN and HTTPS decide which
 * side gets the connection (STUN / ChannelData vs an HTTP/1.1 method), waiting while they are
 * a prefix of either, and the answer never changes once given. */
#include "tk_test.h"

#include "../../src/relay/internal.h"

static int sniff_str(const char *s)
{
    return relay__mux_sniff((const uint8_t *)s, strlen(s));
}

static const uint8_t binding[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};

static void t_stun_and_channeldata(void)
{
    CHECK_INT(relay__mux_sniff(binding, sizeof binding), RELAY_MUX_TURN);
    CHECK_INT(relay__mux_sniff(binding, 8), RELAY_MUX_TURN);
    for (size_t n = 0; n < 8; n++)
        CHECK_INT(relay__mux_sniff(binding, n), RELAY_MUX_WAIT); /* not yet the cookie */
    uint8_t nocookie[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x43};
    CHECK_INT(relay__mux_sniff(nocookie, sizeof nocookie), RELAY_MUX_BAD);
    const uint8_t chan[8] = {0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4};
    CHECK_INT(relay__mux_sniff(chan, sizeof chan), RELAY_MUX_TURN);
    const uint8_t chan4f[4] = {0x4F, 0xFF, 0x00, 0x00};
    CHECK_INT(relay__mux_sniff(chan4f, sizeof chan4f), RELAY_MUX_TURN);
}

static void t_http_methods(void)
{
    const char *yes[] = {"GET / HTTP/1.1\r\n", "POST /x",     "PUT /",
                         "DELETE /",           "PATCH /",     "HEAD /",
                         "OPTIONS *",          "CONNECT h:1", "TRACE /"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK_INT(sniff_str(yes[i]), RELAY_MUX_HTTP);
    CHECK_INT(sniff_str("GET"), RELAY_MUX_WAIT); /* the space is not there yet */
    CHECK_INT(sniff_str("P"), RELAY_MUX_WAIT);
    CHECK_INT(sniff_str("PA"), RELAY_MUX_WAIT);
    CHECK_INT(sniff_str("GETX /"), RELAY_MUX_TURN);        /* 'G' = 0x47: ChannelData, not HTTP */
    CHECK_INT(sniff_str("PRI * HTTP/2.0"), RELAY_MUX_BAD); /* h2 prior knowledge: not served */
    CHECK_INT(sniff_str("get / HTTP/1.1"), RELAY_MUX_BAD);
    CHECK_INT(sniff_str("HELLO"), RELAY_MUX_TURN); /* 'H' is 0x48: a ChannelData start */
    CHECK_INT(sniff_str("\xff\xff"), RELAY_MUX_BAD);
    CHECK_INT(sniff_str("\x16\x03\x01"), RELAY_MUX_WAIT); /* a STUN-like start, then */
    const uint8_t hello[9] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0x03};
    CHECK_INT(relay__mux_sniff(hello, sizeof hello), RELAY_MUX_BAD); /* no cookie */
    CHECK_INT(relay__mux_sniff(NULL, 0), RELAY_MUX_WAIT);
}

/* Every prefix of each input: WAIT until some length, then one answer for all longer ones. */
static void t_stable_over_prefixes(void)
{
    const char *in[] = {"GET / HTTP/1.1",
                        "POSTMAN",
                        "OPTIONS",
                        "DELETE",
                        "Zebra",
                        "@ABC",
                        "\x01\x01\x00\x00\x21\x12\xA4\x42xx"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        size_t len = strlen(in[i]);
        int decided = RELAY_MUX_WAIT;
        for (size_t n = 0; n <= len; n++) {
            int k = relay__mux_sniff((const uint8_t *)in[i], n);
            if (decided != RELAY_MUX_WAIT)
                CHECK_INT(k, decided);
            decided = k;
        }
    }
}

int main(void)
{
    TK_RUN(t_stun_and_channeldata);
    TK_RUN(t_http_methods);
    TK_RUN(t_stable_over_prefixes);
    return tk_test_summary();
}
