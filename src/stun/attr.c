/* stun/attr.c: attribute value decoders (RFC 8489 §14, RFC 8656 §18). */
#include "turnkey/stun.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Decodes family/port/address (8 or 20 bytes); xor_key is NULL for plain addresses, else the
 * 16 bytes cookie || transaction id. */
static int decode_address(const uint8_t *v, size_t len, const uint8_t *xor_key,
                          struct sockaddr_storage *out)
{
    if (len < 4)
        return STUN_ERR_BAD_ATTR;
    uint8_t family = v[1];
    uint16_t port = rd16(v + 2);
    size_t alen = family == STUN_FAMILY_IPV4 ? 4 : family == STUN_FAMILY_IPV6 ? 16 : 0;
    if (alen == 0 || len != 4 + alen)
        return STUN_ERR_BAD_ATTR;
    uint8_t addr[16];
    memcpy(addr, v + 4, alen);
    if (xor_key) {
        port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
        for (size_t i = 0; i < alen; i++)
            addr[i] ^= xor_key[i];
    }
    memset(out, 0, sizeof *out);
    if (family == STUN_FAMILY_IPV4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        memcpy(&sin6->sin6_addr, addr, 16);
    }
    return STUN_OK;
}

int stun_attr_xor_address(const stun_msg *m, const stun_attr *a, struct sockaddr_storage *out)
{
    if (!m || !a || !out)
        return STUN_ERR_INVALID;
    uint8_t key[16] = {0x21, 0x12, 0xA4, 0x42};
    memcpy(key + 4, m->txid, STUN_TXID_SIZE);
    return decode_address(stun_attr_value(m, a), a->len, key, out);
}

int stun_attr_address(const stun_msg *m, const stun_attr *a, struct sockaddr_storage *out)
{
    if (!m || !a || !out)
        return STUN_ERR_INVALID;
    return decode_address(stun_attr_value(m, a), a->len, NULL, out);
}

int stun_get_xor_address(const stun_msg *m, uint16_t type, struct sockaddr_storage *out)
{
    const stun_attr *a = stun_msg_find(m, type);
    return a ? stun_attr_xor_address(m, a, out) : STUN_ERR_NOT_FOUND;
}

int stun_get_address(const stun_msg *m, uint16_t type, struct sockaddr_storage *out)
{
    const stun_attr *a = stun_msg_find(m, type);
    return a ? stun_attr_address(m, a, out) : STUN_ERR_NOT_FOUND;
}

/* Finds type and checks min <= len <= max. */
static int get_sized(const stun_msg *m, uint16_t type, size_t min, size_t max, const uint8_t **val,
                     size_t *len)
{
    const stun_attr *a = stun_msg_find(m, type);
    if (!a)
        return STUN_ERR_NOT_FOUND;
    if (a->len < min || a->len > max)
        return STUN_ERR_BAD_ATTR;
    *val = stun_attr_value(m, a);
    if (len)
        *len = a->len;
    return STUN_OK;
}

int stun_get_bytes(const stun_msg *m, uint16_t type, const uint8_t **val, size_t *len)
{
    return get_sized(m, type, 0, 0xFFFF, val, len);
}

int stun_get_username(const stun_msg *m, const uint8_t **val, size_t *len)
{
    return get_sized(m, STUN_ATTR_USERNAME, 0, 512, val, len);
}

int stun_get_realm(const stun_msg *m, const uint8_t **val, size_t *len)
{
    return get_sized(m, STUN_ATTR_REALM, 0, 763, val, len);
}

int stun_get_nonce(const stun_msg *m, const uint8_t **val, size_t *len)
{
    return get_sized(m, STUN_ATTR_NONCE, 0, 763, val, len);
}

int stun_get_software(const stun_msg *m, const uint8_t **val, size_t *len)
{
    return get_sized(m, STUN_ATTR_SOFTWARE, 0, 763, val, len);
}

int stun_get_data(const stun_msg *m, const uint8_t **val, size_t *len)
{
    return get_sized(m, STUN_ATTR_DATA, 0, 0xFFFF, val, len);
}

int stun_get_userhash(const stun_msg *m, const uint8_t **val)
{
    return get_sized(m, STUN_ATTR_USERHASH, 32, 32, val, NULL);
}

int stun_get_reservation_token(const stun_msg *m, uint64_t *token)
{
    return stun_get_u64(m, STUN_ATTR_RESERVATION_TOKEN, token);
}

int stun_get_u32(const stun_msg *m, uint16_t type, uint32_t *v)
{
    const uint8_t *p;
    int rc = get_sized(m, type, 4, 4, &p, NULL);
    if (rc == STUN_OK)
        *v = rd32(p);
    return rc;
}

int stun_get_u64(const stun_msg *m, uint16_t type, uint64_t *v)
{
    const uint8_t *p;
    int rc = get_sized(m, type, 8, 8, &p, NULL);
    if (rc == STUN_OK)
        *v = ((uint64_t)rd32(p) << 32) | rd32(p + 4);
    return rc;
}

int stun_get_lifetime(const stun_msg *m, uint32_t *seconds)
{
    return stun_get_u32(m, STUN_ATTR_LIFETIME, seconds);
}

int stun_get_requested_transport(const stun_msg *m, uint8_t *protocol)
{
    const uint8_t *p;
    int rc = get_sized(m, STUN_ATTR_REQUESTED_TRANSPORT, 4, 4, &p, NULL);
    if (rc == STUN_OK)
        *protocol = p[0];
    return rc;
}

int stun_get_address_family(const stun_msg *m, uint16_t type, uint8_t *family)
{
    const uint8_t *p;
    int rc = get_sized(m, type, 4, 4, &p, NULL);
    if (rc == STUN_OK)
        *family = p[0];
    return rc;
}

int stun_get_channel_number(const stun_msg *m, uint16_t *channel)
{
    const uint8_t *p;
    int rc = get_sized(m, STUN_ATTR_CHANNEL_NUMBER, 4, 4, &p, NULL);
    if (rc == STUN_OK)
        *channel = rd16(p);
    return rc;
}

int stun_get_even_port(const stun_msg *m, bool *reserve)
{
    const uint8_t *p;
    int rc = get_sized(m, STUN_ATTR_EVEN_PORT, 1, 1, &p, NULL);
    if (rc == STUN_OK)
        *reserve = (p[0] & 0x80) != 0;
    return rc;
}

bool stun_has_attr(const stun_msg *m, uint16_t type)
{
    return stun_msg_find(m, type) != NULL;
}

int stun_get_error_code(const stun_msg *m, int *code, const uint8_t **reason, size_t *reason_len)
{
    const uint8_t *p;
    size_t len;
    int rc = get_sized(m, STUN_ATTR_ERROR_CODE, 4, 4 + 763, &p, &len);
    if (rc != STUN_OK)
        return rc;
    int cls = p[2] & 0x07, num = p[3];
    if (cls < 3 || cls > 6 || num > 99)
        return STUN_ERR_BAD_ATTR;
    *code = cls * 100 + num;
    if (reason)
        *reason = p + 4;
    if (reason_len)
        *reason_len = len - 4;
    return STUN_OK;
}

int stun_get_unknown_attributes(const stun_msg *m, uint16_t *out, size_t cap, size_t *n)
{
    const uint8_t *p;
    size_t len;
    int rc = get_sized(m, STUN_ATTR_UNKNOWN_ATTRIBUTES, 0, 0xFFFF, &p, &len);
    if (rc != STUN_OK)
        return rc;
    if (len % 2 != 0)
        return STUN_ERR_BAD_ATTR;
    for (size_t i = 0; i < len / 2 && i < cap; i++)
        out[i] = rd16(p + 2 * i);
    *n = len / 2;
    return STUN_OK;
}

int stun_get_password_algorithm(const stun_msg *m, uint16_t *alg, const uint8_t **params,
                                size_t *params_len)
{
    const uint8_t *p;
    size_t len;
    int rc = get_sized(m, STUN_ATTR_PASSWORD_ALGORITHM, 4, 0xFFFF, &p, &len);
    if (rc != STUN_OK)
        return rc;
    size_t plen = rd16(p + 2);
    /* Parameters are padded to 4 bytes inside the value. */
    if (4 + ((plen + 3) & ~(size_t)3) != len)
        return STUN_ERR_BAD_ATTR;
    *alg = rd16(p);
    if (params)
        *params = p + 4;
    if (params_len)
        *params_len = plen;
    return STUN_OK;
}

int stun_get_password_algorithms(const stun_msg *m, uint16_t *algs, size_t cap, size_t *n)
{
    const uint8_t *p;
    size_t len;
    int rc = get_sized(m, STUN_ATTR_PASSWORD_ALGORITHMS, 0, 0xFFFF, &p, &len);
    if (rc != STUN_OK)
        return rc;
    size_t count = 0, off = 0;
    while (off < len) {
        if (len - off < 4)
            return STUN_ERR_BAD_ATTR;
        size_t plen = ((size_t)rd16(p + off + 2) + 3) & ~(size_t)3;
        if (len - off - 4 < plen)
            return STUN_ERR_BAD_ATTR;
        if (count < cap)
            algs[count] = rd16(p + off);
        count++;
        off += 4 + plen;
    }
    *n = count;
    return STUN_OK;
}
