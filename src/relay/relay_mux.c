/* relay_mux: one TLS port for TURN and the HTTPS API (--shared-tls-listen). The relay
 * accepts it like a TURN TLS listener (the same connection caps and --handshake-timeout,
 * which runs until the connection is told apart and, for TURN, until its first valid STUN
 * message). Once the handshake is done:
 *   ALPN "stun.turn"                      -> TURN over TLS, on this connection;
 *   ALPN "http/1.1"                       -> HTTP: handed to the HTTPS side (relay_config
 *                                            http_adopt) with the bytes read so far;
 *   no ALPN: the first bytes decide       -> a STUN header (first two bits 0, the magic
 *                                            cookie at 4..7) or ChannelData (0x40-0x4F, not
 *                                            an HTTP method) is TURN; "GET " and the other
 *                                            HTTP/1.1 methods are HTTP;
 *   anything else                         -> closed.
 * h2 is never selected (tls.c), so an h2-only client falls back to HTTP/1.1 or leaves. */
#include <openssl/ssl.h>
#include <string.h>

#include "internal.h"

/* HTTP/1.1 request methods (RFC 9110 §9, PATCH: RFC 5789), each with its space. */
static const char *const methods[] = {"GET ",   "HEAD ",    "POST ",    "PUT ",  "DELETE ",
                                      "PATCH ", "OPTIONS ", "CONNECT ", "TRACE "};

/* RELAY_MUX_HTTP for a method, RELAY_MUX_WAIT while in[0..n) is a proper prefix of one, else RELAY_MUX_BAD. */
static int sniff_http(const uint8_t *in, size_t n)
{
    int rc = RELAY_MUX_BAD;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        size_t len = strlen(methods[i]);
        size_t k = n < len ? n : len;
        if (memcmp(in, methods[i], k) != 0)
            continue;
        if (n >= len)
            return RELAY_MUX_HTTP;
        rc = RELAY_MUX_WAIT;
    }
    return rc;
}

int relay__mux_sniff(const uint8_t *in, size_t n)
{
    static const uint8_t cookie[4] = {0x21, 0x12, 0xA4, 0x42};
    if (n == 0)
        return RELAY_MUX_WAIT;
    if ((in[0] & 0xC0) == 0) { /* a STUN message */
        if (n < 8)
            return RELAY_MUX_WAIT;
        return memcmp(in + 4, cookie, 4) == 0 ? RELAY_MUX_TURN : RELAY_MUX_BAD;
    }
    int http = sniff_http(in, n);
    if (http != RELAY_MUX_BAD)
        return http;
    return (in[0] & 0xF0) == 0x40 ? RELAY_MUX_TURN : RELAY_MUX_BAD; /* ChannelData 0x4000-0x4FFF */
}

static int classify(relay_conn *c)
{
    if (!c->tls_done)
        return RELAY_MUX_WAIT;
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (len == 9 && !memcmp(p, "stun.turn", 9))
        return RELAY_MUX_TURN;
    if (len == 8 && !memcmp(p, "http/1.1", 8))
        return RELAY_MUX_HTTP;
    return relay__mux_sniff(c->in, c->in_len);
}

int relay__mux_step(relay_conn *c)
{
    int k = classify(c);
    if (k == RELAY_MUX_TURN)
        c->mux = false;
    else if (k == RELAY_MUX_HTTP)
        c->dead = c->handoff = true; /* conn_free hands it over */
    return k;
}

void relay__mux_handoff(relay_worker *r, relay_conn *c)
{
    relay *s = r->shared;
    s->http_adopt(s->http_ctx, c->fd, c->ssl, c->in, c->in_len, &c->t.client);
    c->ssl = NULL;
    c->fd = -1;
}
