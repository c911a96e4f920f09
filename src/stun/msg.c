/* stun/msg.c: message header, type bits, parsing and attribute lookup (RFC 8489 §5, §14). */
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

const char *stun_strerror(int rc)
{
    switch (rc) {
    case STUN_OK: return "ok";
    case STUN_ERR_NEED_MORE: return "incomplete frame, need more bytes";
    case STUN_ERR_TRUNCATED: return "truncated message";
    case STUN_ERR_NOT_STUN: return "not a STUN message";
    case STUN_ERR_BAD_LENGTH: return "bad message length";
    case STUN_ERR_BAD_ATTR: return "malformed attribute";
    case STUN_ERR_TOO_MANY_ATTRS: return "too many attributes";
    case STUN_ERR_ORDER: return "attribute out of order";
    case STUN_ERR_NOT_FOUND: return "attribute not found";
    case STUN_ERR_NO_SPACE: return "buffer too small";
    case STUN_ERR_INTEGRITY: return "message integrity check failed";
    case STUN_ERR_FINGERPRINT: return "fingerprint check failed";
    case STUN_ERR_BAD_CHANNEL: return "bad channel number";
    case STUN_ERR_INVALID: return "invalid argument";
    case STUN_ERR_CRYPTO: return "crypto library failure";
    default: return rc > 0 ? "ok" : "unknown error";
    }
}

const char *stun_error_reason(int code)
{
    switch (code) {
    case 300: return "Try Alternate";
    case 400: return "Bad Request";
    case 401: return "Unauthenticated";
    case 403: return "Forbidden";
    case 420: return "Unknown Attribute";
    case 437: return "Allocation Mismatch";
    case 438: return "Stale Nonce";
    case 440: return "Address Family not Supported";
    case 441: return "Wrong Credentials";
    case 442: return "Unsupported Transport Protocol";
    case 443: return "Peer Address Family Mismatch";
    case 446: return "Connection Already Exists";
    case 447: return "Connection Timeout or Failure";
    case 486: return "Allocation Quota Reached";
    case 487: return "Role Conflict";
    case 500: return "Server Error";
    case 508: return "Insufficient Capacity";
    default: return NULL;
    }
}

/* Type bits: M11..M7 C1 M6..M4 C0 M3..M0 (RFC 8489 §5, figure 3). */
uint16_t stun_type(uint16_t method, uint8_t cls)
{
    return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) |
                      ((cls & 1) << 4) | ((cls & 2) << 7));
}

uint16_t stun_type_method(uint16_t type)
{
    return (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
}

uint8_t stun_type_class(uint16_t type)
{
    return (uint8_t)(((type >> 4) & 1) | ((type >> 7) & 2));
}

bool stun_is_stun(const uint8_t *buf, size_t len)
{
    return buf && len >= STUN_HEADER_SIZE && (buf[0] & 0xC0) == 0 &&
           rd32(buf + 4) == STUN_MAGIC_COOKIE;
}

bool stun_attr_is_known(uint16_t type)
{
    if (type >= 0x8000)
        return true; /* comprehension-optional: never a 420 */
    switch (type) {
    case STUN_ATTR_MAPPED_ADDRESS:
    case STUN_ATTR_USERNAME:
    case STUN_ATTR_MESSAGE_INTEGRITY:
    case STUN_ATTR_ERROR_CODE:
    case STUN_ATTR_UNKNOWN_ATTRIBUTES:
    case STUN_ATTR_CHANNEL_NUMBER:
    case STUN_ATTR_LIFETIME:
    case STUN_ATTR_XOR_PEER_ADDRESS:
    case STUN_ATTR_DATA:
    case STUN_ATTR_REALM:
    case STUN_ATTR_NONCE:
    case STUN_ATTR_XOR_RELAYED_ADDRESS:
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case STUN_ATTR_EVEN_PORT:
    case STUN_ATTR_REQUESTED_TRANSPORT:
    case STUN_ATTR_DONT_FRAGMENT:
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    case STUN_ATTR_PASSWORD_ALGORITHM:
    case STUN_ATTR_USERHASH:
    case STUN_ATTR_XOR_MAPPED_ADDRESS:
    case STUN_ATTR_RESERVATION_TOKEN:
    case STUN_ATTR_PRIORITY:
    case STUN_ATTR_USE_CANDIDATE:
    case STUN_ATTR_CONNECTION_ID: return true;
    default: return false;
    }
}

static void note_unknown(stun_msg *m, uint16_t type)
{
    size_t listed = m->n_unknown < STUN_MAX_UNKNOWN ? m->n_unknown : STUN_MAX_UNKNOWN;
    for (size_t i = 0; i < listed; i++)
        if (m->unknown[i] == type)
            return;
    if (m->n_unknown < STUN_MAX_UNKNOWN)
        m->unknown[m->n_unknown] = type;
    m->n_unknown++;
}

/* Value-length rules for the attributes whose offsets parse records. */
static bool security_attr_len_ok(uint16_t type, uint16_t len)
{
    switch (type) {
    case STUN_ATTR_MESSAGE_INTEGRITY: return len == 20;
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256: return len >= 16 && len <= 32 && len % 4 == 0;
    case STUN_ATTR_FINGERPRINT: return len == 4;
    default: return true;
    }
}

static int header_check(const uint8_t *buf, size_t len)
{
    if (!buf || len < STUN_HEADER_SIZE)
        return STUN_ERR_TRUNCATED;
    if ((buf[0] & 0xC0) != 0 || rd32(buf + 4) != STUN_MAGIC_COOKIE)
        return STUN_ERR_NOT_STUN;
    size_t body = rd16(buf + 2);
    if (body % 4 != 0)
        return STUN_ERR_BAD_LENGTH;
    if (STUN_HEADER_SIZE + body > len)
        return STUN_ERR_TRUNCATED;
    if (STUN_HEADER_SIZE + body != len)
        return STUN_ERR_BAD_LENGTH;
    return STUN_OK;
}

/* Records one attribute (at header offset off) according to where it sits relative to the
 * integrity and fingerprint attributes. */
static int take_attr(stun_msg *m, uint16_t type, uint16_t alen, size_t off)
{
    if (m->fp_off)
        return STUN_ERR_ORDER; /* FINGERPRINT must be last */
    if (!security_attr_len_ok(type, alen))
        return STUN_ERR_BAD_ATTR;
    bool after_mi = m->mi_off != 0, after_mi256 = m->mi256_off != 0;
    if (type == STUN_ATTR_FINGERPRINT) {
        m->fp_off = off;
    } else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 && !after_mi256) {
        m->mi256_off = off;
    } else if (type == STUN_ATTR_MESSAGE_INTEGRITY && !after_mi && !after_mi256) {
        m->mi_off = off;
    } else if (after_mi || after_mi256) {
        m->n_ignored++; /* §14.5 / §14.6: ignore what follows the integrity attributes */
        return STUN_OK;
    }
    if (m->n_attrs >= STUN_MAX_ATTRS)
        return STUN_ERR_TOO_MANY_ATTRS;
    if (!stun_attr_is_known(type))
        note_unknown(m, type);
    m->attrs[m->n_attrs++] = (stun_attr){.type = type, .len = alen, .off = (uint32_t)(off + 4)};
    return STUN_OK;
}

int stun_parse(const uint8_t *buf, size_t len, stun_msg *out)
{
    if (!out)
        return STUN_ERR_INVALID;
    memset(out, 0, sizeof *out);
    int rc = header_check(buf, len);
    if (rc != STUN_OK)
        return rc;
    out->buf = buf;
    out->len = len;
    out->type = rd16(buf);
    out->method = stun_type_method(out->type);
    out->cls = stun_type_class(out->type);
    out->txid = buf + 8;

    size_t off = STUN_HEADER_SIZE;
    while (off < len) {
        if (len - off < 4)
            return STUN_ERR_BAD_ATTR;
        uint16_t type = rd16(buf + off), alen = rd16(buf + off + 2);
        if (len - off - 4 < alen)
            return STUN_ERR_BAD_ATTR;
        rc = take_attr(out, type, alen, off);
        if (rc != STUN_OK)
            return rc;
        off += 4 + (((size_t)alen + 3) & ~(size_t)3); /* len is a multiple of 4: stays <= len */
    }
    return STUN_OK;
}

const stun_attr *stun_msg_find_next(const stun_msg *m, uint16_t type, const stun_attr *prev)
{
    if (!m)
        return NULL;
    size_t i = prev ? (size_t)(prev - m->attrs) + 1 : 0;
    for (; i < m->n_attrs; i++)
        if (m->attrs[i].type == type)
            return &m->attrs[i];
    return NULL;
}

const stun_attr *stun_msg_find(const stun_msg *m, uint16_t type)
{
    return stun_msg_find_next(m, type, NULL);
}

const uint8_t *stun_attr_value(const stun_msg *m, const stun_attr *a)
{
    return m->buf + a->off;
}
