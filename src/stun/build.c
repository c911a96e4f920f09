/* stun/build.c: message builder over a caller buffer with an explicit capacity. */
#include "turnkey/stun.h"

#include <string.h>

/* Builder states (stun_builder.state). */
enum { ST_OPEN = 0, ST_AFTER_MI = 1, ST_AFTER_MI256 = 2, ST_SEALED = 3 };

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

static int fail(stun_builder *b, int err)
{
    if (b->err == 0)
        b->err = err;
    return b->err;
}

int stun_builder_begin(stun_builder *b, uint8_t *buf, size_t cap, uint16_t type,
                       const uint8_t txid[STUN_TXID_SIZE])
{
    if (!b)
        return STUN_ERR_INVALID;
    *b = (stun_builder){.buf = buf, .cap = cap};
    if (!txid || (type & 0xC000) != 0 || (!buf && cap != 0))
        return fail(b, STUN_ERR_INVALID);
    if (cap < STUN_HEADER_SIZE)
        return fail(b, STUN_ERR_NO_SPACE);
    wr16(buf, type);
    wr16(buf + 2, 0);
    wr32(buf + 4, STUN_MAGIC_COOKIE);
    memcpy(buf + 8, txid, STUN_TXID_SIZE);
    b->len = STUN_HEADER_SIZE;
    return STUN_OK;
}

int stun_builder_begin_response(stun_builder *b, uint8_t *buf, size_t cap, const stun_msg *req,
                                uint8_t cls)
{
    if (!req || !req->txid) {
        if (b)
            *b = (stun_builder){.buf = buf, .cap = cap, .err = STUN_ERR_INVALID};
        return STUN_ERR_INVALID;
    }
    return stun_builder_begin(b, buf, cap, stun_type(req->method, cls), req->txid);
}

/* Appends a header for an attribute of type with len value bytes (+ padding), checks the
 * ordering rules around MI / MI-SHA256 / FINGERPRINT, updates the message length. */
static uint8_t *reserve(stun_builder *b, uint16_t type, size_t len)
{
    if (b->err)
        return NULL;
    bool ok = b->state == ST_OPEN ||
              (b->state == ST_AFTER_MI &&
               (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 || type == STUN_ATTR_FINGERPRINT)) ||
              (b->state == ST_AFTER_MI256 && type == STUN_ATTR_FINGERPRINT);
    if (!ok) {
        fail(b, STUN_ERR_ORDER);
        return NULL;
    }
    if (len > 0xFFFF) {
        fail(b, STUN_ERR_NO_SPACE);
        return NULL;
    }
    size_t padded = (len + 3) & ~(size_t)3;
    size_t body = b->len - STUN_HEADER_SIZE + 4 + padded;
    if (body > 0xFFFF || b->cap - b->len < 4 + padded) {
        fail(b, STUN_ERR_NO_SPACE);
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    wr16(p, type);
    wr16(p + 2, (uint16_t)len);
    memset(p + 4 + len, b->pad_byte, padded - len);
    b->len += 4 + padded;
    wr16(b->buf + 2, (uint16_t)body);
    if (type == STUN_ATTR_FINGERPRINT)
        b->state = ST_SEALED;
    else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
        b->state = ST_AFTER_MI256;
    else if (type == STUN_ATTR_MESSAGE_INTEGRITY)
        b->state = ST_AFTER_MI;
    return p + 4;
}

uint8_t *stun_builder_reserve(stun_builder *b, uint16_t type, size_t len)
{
    return b ? reserve(b, type, len) : NULL;
}

int stun_builder_add(stun_builder *b, uint16_t type, const void *val, size_t len)
{
    if (!b)
        return STUN_ERR_INVALID;
    if (!val && len)
        return fail(b, STUN_ERR_INVALID);
    uint8_t *p = reserve(b, type, len);
    if (!p)
        return b->err;
    if (len)
        memcpy(p, val, len);
    return STUN_OK;
}

int stun_builder_add_u32(stun_builder *b, uint16_t type, uint32_t v)
{
    uint8_t tmp[4];
    wr32(tmp, v);
    return stun_builder_add(b, type, tmp, sizeof tmp);
}

int stun_builder_add_u64(stun_builder *b, uint16_t type, uint64_t v)
{
    uint8_t tmp[8];
    wr32(tmp, (uint32_t)(v >> 32));
    wr32(tmp + 4, (uint32_t)v);
    return stun_builder_add(b, type, tmp, sizeof tmp);
}

/* Encodes family/port/address; xor applies the cookie (and transaction id for IPv6). */
static int add_address(stun_builder *b, uint16_t type, const struct sockaddr *sa, bool xor)
{
    if (!b)
        return STUN_ERR_INVALID;
    uint8_t v[20] = {0}, addr[16];
    uint16_t port;
    size_t alen;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        v[1] = STUN_FAMILY_IPV4;
        port = ntohs(sin->sin_port);
        memcpy(addr, &sin->sin_addr, 4);
        alen = 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        v[1] = STUN_FAMILY_IPV6;
        port = ntohs(sin6->sin6_port);
        memcpy(addr, &sin6->sin6_addr, 16);
        alen = 16;
    } else {
        return fail(b, STUN_ERR_INVALID);
    }
    if (xor) {
        if (b->len < STUN_HEADER_SIZE)
            return fail(b, b->err ? b->err : STUN_ERR_INVALID);
        const uint8_t *key = b->buf + 4; /* cookie || transaction id, as written by begin */
        port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
        for (size_t i = 0; i < alen; i++)
            addr[i] ^= key[i];
    }
    wr16(v + 2, port);
    memcpy(v + 4, addr, alen);
    return stun_builder_add(b, type, v, 4 + alen);
}

int stun_builder_add_xor_address(stun_builder *b, uint16_t type, const struct sockaddr *sa)
{
    return add_address(b, type, sa, true);
}

int stun_builder_add_address(stun_builder *b, uint16_t type, const struct sockaddr *sa)
{
    return add_address(b, type, sa, false);
}

int stun_builder_add_error_code(stun_builder *b, int code, const char *reason)
{
    if (!b)
        return STUN_ERR_INVALID;
    if (code < 300 || code > 699)
        return fail(b, STUN_ERR_INVALID);
    if (!reason)
        reason = stun_error_reason(code);
    if (!reason)
        reason = "";
    size_t rlen = strlen(reason);
    if (rlen > 763)
        return fail(b, STUN_ERR_INVALID);
    uint8_t *p = reserve(b, STUN_ATTR_ERROR_CODE, 4 + rlen);
    if (!p)
        return b->err;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, rlen);
    return STUN_OK;
}

int stun_builder_add_unknown_attributes(stun_builder *b, const uint16_t *types, size_t n)
{
    if (!b)
        return STUN_ERR_INVALID;
    if (!types && n)
        return fail(b, STUN_ERR_INVALID);
    if (n > 0xFFFF / 2)
        return fail(b, STUN_ERR_NO_SPACE);
    uint8_t *p = reserve(b, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
    if (!p)
        return b->err;
    for (size_t i = 0; i < n; i++)
        wr16(p + 2 * i, types[i]);
    return STUN_OK;
}

int stun_builder_add_requested_transport(stun_builder *b, uint8_t protocol)
{
    return stun_builder_add_u32(b, STUN_ATTR_REQUESTED_TRANSPORT, (uint32_t)protocol << 24);
}

int stun_builder_add_channel_number(stun_builder *b, uint16_t channel)
{
    return stun_builder_add_u32(b, STUN_ATTR_CHANNEL_NUMBER, (uint32_t)channel << 16);
}

int stun_builder_add_address_family(stun_builder *b, uint16_t type, uint8_t family)
{
    return stun_builder_add_u32(b, type, (uint32_t)family << 24);
}

int stun_builder_finish(const stun_builder *b)
{
    if (!b)
        return STUN_ERR_INVALID;
    if (b->err)
        return b->err;
    return (int)b->len;
}
