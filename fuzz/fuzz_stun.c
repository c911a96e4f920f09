/* libFuzzer target: stun_parse, every getter, integrity/fingerprint checks, and a re-encode of
 * the parsed attributes that must parse back with valid integrity and fingerprint. */
#include "turnkey/stun.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t KEY[] = "fuzz-key";

static void exercise_getters(const stun_msg *m)
{
    struct sockaddr_storage ss;
    const uint8_t *p;
    size_t len;
    uint32_t u32;
    uint64_t u64;
    uint8_t u8;
    uint16_t u16, list[8];
    bool flag;
    int code;
    for (size_t i = 0; i < m->n_attrs; i++) {
        const stun_attr *a = &m->attrs[i];
        if (a->off + a->len > m->len)
            abort(); /* attributes must lie inside the message */
        stun_attr_xor_address(m, a, &ss);
        stun_attr_address(m, a, &ss);
        stun_get_bytes(m, a->type, &p, &len);
        stun_get_u32(m, a->type, &u32);
        stun_get_u64(m, a->type, &u64);
        stun_get_address_family(m, a->type, &u8);
    }
    stun_get_xor_address(m, STUN_ATTR_XOR_PEER_ADDRESS, &ss);
    stun_get_address(m, STUN_ATTR_MAPPED_ADDRESS, &ss);
    stun_get_username(m, &p, &len);
    stun_get_realm(m, &p, &len);
    stun_get_nonce(m, &p, &len);
    stun_get_software(m, &p, &len);
    stun_get_data(m, &p, &len);
    stun_get_userhash(m, &p);
    stun_get_reservation_token(m, &u64);
    stun_get_lifetime(m, &u32);
    stun_get_requested_transport(m, &u8);
    stun_get_channel_number(m, &u16);
    stun_get_even_port(m, &flag);
    stun_has_attr(m, STUN_ATTR_DONT_FRAGMENT);
    if (stun_get_error_code(m, &code, &p, &len) == STUN_OK && (code < 300 || code > 699))
        abort();
    stun_get_unknown_attributes(m, list, 8, &len);
    stun_get_password_algorithm(m, &u16, &p, &len);
    stun_get_password_algorithms(m, list, 8, &len);
    stun_check_integrity(m, KEY, sizeof KEY - 1);
    stun_check_integrity_sha256(m, KEY, sizeof KEY - 1);
    stun_check_fingerprint(m);
}

/* Re-encodes every stored attribute (except the integrity/fingerprint ones, which are
 * recomputed) and checks the result parses back the same. */
static void reencode(const stun_msg *m)
{
    size_t cap = m->len + 128;
    uint8_t *out = malloc(cap);
    if (!out)
        return;
    stun_builder b;
    stun_builder_begin(&b, out, cap, m->type, m->txid);
    size_t kept = 0;
    for (size_t i = 0; i < m->n_attrs; i++) {
        const stun_attr *a = &m->attrs[i];
        if (a->type == STUN_ATTR_MESSAGE_INTEGRITY ||
            a->type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 || a->type == STUN_ATTR_FINGERPRINT)
            continue;
        stun_builder_add(&b, a->type, stun_attr_value(m, a), a->len);
        kept++;
    }
    bool sealed = kept + 3 <= STUN_MAX_ATTRS;
    if (sealed) {
        stun_builder_add_integrity(&b, KEY, sizeof KEY - 1);
        stun_builder_add_integrity_sha256(&b, KEY, sizeof KEY - 1);
        stun_builder_add_fingerprint(&b);
    }
    int n = stun_builder_finish(&b);
    if (n > 0) {
        stun_msg r;
        if (stun_parse(out, (size_t)n, &r) != STUN_OK || r.type != m->type)
            abort();
        if (r.n_unknown != m->n_unknown)
            abort();
        if (sealed && (stun_check_integrity(&r, KEY, sizeof KEY - 1) != STUN_OK ||
                       stun_check_integrity_sha256(&r, KEY, sizeof KEY - 1) != STUN_OK ||
                       stun_check_fingerprint(&r) != STUN_OK))
            abort();
    } else if (n != STUN_ERR_NO_SPACE) {
        abort(); /* only the 16-bit length may overflow: the capacity has room */
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copy so any read past the end is caught. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    stun_msg m;
    int rc = stun_parse(buf, size, &m);
    stun_is_stun(buf, size);
    if (rc == STUN_OK) {
        if (!stun_is_stun(buf, size) || m.len != size)
            abort();
        exercise_getters(&m);
        reencode(&m);
    }
    uint16_t ch;
    const uint8_t *d;
    size_t dl;
    if (stun_channeldata_parse(buf, size, &ch, &d, &dl) == STUN_OK &&
        (!stun_channel_valid(ch) || d + dl > buf + size))
        abort();
    free(buf);
    return 0;
}
