/* turn/nonce.c: stateless nonces (RFC 8489 §9.2) and canonical 5-tuple / address keys.
 *
 * NONCE = hex(expiry in Unix seconds, 4 bytes) || hex(serial, 2 bytes) || hex(6-byte MAC of
 * expiry || serial || canonical 5-tuple): 24 characters. The serial counts the nonces this
 * server issued, so two nonces for one 5-tuple within one second still differ (a repeat
 * needs 65,536 challenges in that second); (short: it goes into every unauthenticated 401, see
 * docs/security.md on amplification). The MAC is SipHash-2-4 (a keyed PRF made for short
 * inputs) under the first 128-bit half of nonce_secret (random from the CSPRNG at start), so
 * nonces cannot be predicted without the secret: it is computed on every request, and a full
 * HMAC-SHA256 through OpenSSL cost a quarter of the relay's instructions per Allocate. A nonce is valid until its expiry and only
 * on the 5-tuple (for TCP/TLS: the connection) it was issued to; nothing is stored. The
 * nonce carries no RFC 8489 "obMatJos2" security-feature cookie: this server does not
 * advertise PASSWORD-ALGORITHMS or USERHASH support (see server.c). */
#include "internal.h"

#include "turnkey/util.h"

#include <string.h>

#define MAC_LEN 6
#define EXP_LEN 6 /* expiry (4) + serial (2): what the MAC covers */

size_t turn__addr_key(const struct sockaddr *sa, bool with_port, uint8_t *out)
{
    memset(out, 0, with_port ? 19 : 17);
    uint16_t port = 0; /* network order, copied as bytes */
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        out[0] = 4;
        memcpy(out + 1, &s4->sin_addr, 4);
        port = s4->sin_port;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        out[0] = 6;
        memcpy(out + 1, &s6->sin6_addr, 16);
        port = s6->sin6_port;
    }
    if (!with_port)
        return 17;
    memcpy(out + 17, &port, 2);
    return 19;
}

void turn__tuple_key(const turn_5tuple *t, uint8_t out[TURN__TUPLE_KEY_LEN])
{
    memset(out, 0, TURN__TUPLE_KEY_LEN);
    out[0] = (uint8_t)t->proto;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(t->conn_id >> (56 - 8 * i));
    turn__addr_key((const struct sockaddr *)&t->client, true, out + 9);
    turn__addr_key((const struct sockaddr *)&t->server, true, out + 28);
}

void turn__tkey_load(const turn_5tuple *t, turn__tkey *k)
{
    k->proto = (uint8_t)t->proto;
    k->conn_id = t->conn_id;
    turn__addr_load((const struct sockaddr *)&t->client, &k->client);
    turn__addr_load((const struct sockaddr *)&t->server, &k->server);
}

static void nonce_mac(const turn_server *s, const turn_5tuple *t, const uint8_t exp[EXP_LEN],
                      uint8_t mac[MAC_LEN])
{
    uint8_t msg[EXP_LEN + TURN__TUPLE_KEY_LEN];
    memcpy(msg, exp, EXP_LEN);
    turn__tuple_key(t, msg + EXP_LEN);
    uint64_t a = turn__siphash(s->cfg.nonce_secret, msg, sizeof msg); /* first 6 bytes used */
    for (int i = 0; i < MAC_LEN; i++)
        mac[i] = (uint8_t)(a >> (8 * i));
}

void turn__nonce_make(turn_server *s, const turn_5tuple *t, int64_t now_ms,
                      char out[TURN__NONCE_LEN])
{
    int64_t exp_s = (now_ms + 999) / 1000 + (int64_t)s->cfg.nonce_lifetime_s;
    uint32_t exp = exp_s < 0 ? 0 : exp_s > UINT32_MAX ? UINT32_MAX : (uint32_t)exp_s;
    uint16_t serial = s->nonce_serial++;
    uint8_t raw[EXP_LEN + MAC_LEN];
    char hex[2 * sizeof raw + 1];
    for (int i = 0; i < 4; i++)
        raw[i] = (uint8_t)(exp >> (24 - 8 * i));
    raw[4] = (uint8_t)(serial >> 8);
    raw[5] = (uint8_t)serial;
    nonce_mac(s, t, raw, raw + EXP_LEN);
    util_hex_encode(raw, sizeof raw, hex);
    memcpy(out, hex, TURN__NONCE_LEN);
}

bool turn__nonce_check(const turn_server *s, const turn_5tuple *t, int64_t now_ms,
                       const uint8_t *nonce, size_t len)
{
    uint8_t raw[EXP_LEN + MAC_LEN], mac[MAC_LEN];
    if (len != TURN__NONCE_LEN || util_hex_decode((const char *)nonce, sizeof raw, raw) != 0)
        return false;
    uint32_t exp = 0;
    for (int i = 0; i < 4; i++)
        exp = (exp << 8) | raw[i];
    nonce_mac(s, t, raw, mac);
    if (!util_ct_equal(mac, raw + EXP_LEN, MAC_LEN))
        return false;
    return (int64_t)exp * 1000 > now_ms;
}
