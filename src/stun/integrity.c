/* stun/integrity.c: MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT
 * (CRC-32, zlib) and long-term key derivation (RFC 8489 §9.2, §14.4-§14.7). OpenSSL supplies the
 * digests (fetched once: util_md); HMAC (RFC 2104, util_hmac) takes the message in pieces
 * (the header with its length field adjusted, then the rest), so nothing is copied. */
#include "turnkey/stun.h"
#include "turnkey/util.h"

#include <openssl/evp.h>
#include <string.h>
#include <zlib.h>

/* FINGERPRINT's CRC-32 (ISO 3309 / ITU-T V.42, RFC 8489 §14.7) is zlib's crc32. */
uint32_t stun_crc32(const uint8_t *buf, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (len > 0) { /* zlib takes uInt lengths */
        uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
        c = crc32(c, buf, n);
        buf += n;
        len -= n;
    }
    return (uint32_t)c;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* HMAC over msg[0, end) with the header length field replaced by (end_len - 20), where
 * end_len is where the message is deemed to end (just after the integrity attribute). */
static int hmac_prefix(util_md_id md, const uint8_t *key, size_t keylen, const uint8_t *msg,
                       size_t end, size_t end_len, uint8_t *out)
{
    uint8_t hdr[4] = {msg[0], msg[1]};
    wr16(hdr + 2, (uint16_t)(end_len - STUN_HEADER_SIZE));
    const uint8_t *p[2] = {hdr, msg + 4};
    size_t len[2] = {4, end - 4};
    return util_hmac(md, key, keylen, p, len, 2, out) == 0 ? STUN_OK : STUN_ERR_CRYPTO;
}

int stun_check_integrity(const stun_msg *m, const uint8_t *key, size_t keylen)
{
    if (!m || (!key && keylen))
        return STUN_ERR_INVALID;
    if (!m->mi_off)
        return STUN_ERR_NOT_FOUND;
    uint8_t mac[EVP_MAX_MD_SIZE];
    int rc = hmac_prefix(UTIL_MD_SHA1, key, keylen, m->buf, m->mi_off, m->mi_off + 24, mac);
    if (rc != STUN_OK)
        return rc;
    return util_ct_equal(mac, m->buf + m->mi_off + 4, 20) ? STUN_OK : STUN_ERR_INTEGRITY;
}

int stun_check_integrity_sha256(const stun_msg *m, const uint8_t *key, size_t keylen)
{
    if (!m || (!key && keylen))
        return STUN_ERR_INVALID;
    if (!m->mi256_off)
        return STUN_ERR_NOT_FOUND;
    const uint8_t *attr = m->buf + m->mi256_off;
    size_t vlen = ((size_t)attr[2] << 8) | attr[3]; /* 16..32, checked by stun_parse */
    uint8_t mac[EVP_MAX_MD_SIZE];
    int rc = hmac_prefix(UTIL_MD_SHA256, key, keylen, m->buf, m->mi256_off, m->mi256_off + 4 + vlen,
                         mac);
    if (rc != STUN_OK)
        return rc;
    return util_ct_equal(mac, attr + 4, vlen) ? STUN_OK : STUN_ERR_INTEGRITY;
}

int stun_check_fingerprint(const stun_msg *m)
{
    if (!m)
        return STUN_ERR_INVALID;
    if (!m->fp_off)
        return STUN_ERR_NOT_FOUND;
    uint32_t want = stun_crc32(m->buf, m->fp_off) ^ STUN_FINGERPRINT_XOR;
    return rd32(m->buf + m->fp_off + 4) == want ? STUN_OK : STUN_ERR_FINGERPRINT;
}

/* md(a ":" b [":" c]) into out. */
static int colon_digest(util_md_id md, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                        const uint8_t *c, size_t clen, bool with_c, uint8_t *out)
{
    if ((!a && alen) || (!b && blen) || (!c && clen) || !out)
        return STUN_ERR_INVALID;
    int rc = STUN_ERR_CRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, util_md(md), NULL) != 1)
        goto out;
    if ((alen && EVP_DigestUpdate(ctx, a, alen) != 1) || EVP_DigestUpdate(ctx, ":", 1) != 1 ||
        (blen && EVP_DigestUpdate(ctx, b, blen) != 1))
        goto out;
    if (with_c &&
        (EVP_DigestUpdate(ctx, ":", 1) != 1 || (clen && EVP_DigestUpdate(ctx, c, clen) != 1)))
        goto out;
    if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        goto out;
    rc = STUN_OK;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* The key is computed over the bytes as given; RFC 8489 asks for OpaqueString (formerly
 * SASLprep) on username and password, which callers must apply beforehand if they accept
 * non-ASCII credentials. */
int stun_long_term_key(const uint8_t *username, size_t ulen, const uint8_t *realm, size_t rlen,
                       const uint8_t *password, size_t plen, uint8_t out[16])
{
    return colon_digest(UTIL_MD_MD5, username, ulen, realm, rlen, password, plen, true, out);
}

int stun_long_term_key_sha256(const uint8_t *username, size_t ulen, const uint8_t *realm,
                              size_t rlen, const uint8_t *password, size_t plen, uint8_t out[32])
{
    return colon_digest(UTIL_MD_SHA256, username, ulen, realm, rlen, password, plen, true, out);
}

int stun_userhash(const uint8_t *username, size_t ulen, const uint8_t *realm, size_t rlen,
                  uint8_t out[32])
{
    return colon_digest(UTIL_MD_SHA256, username, ulen, realm, rlen, NULL, 0, false, out);
}

/* Appends an integrity attribute of type with mdlen bytes: reserve first (the header length
 * then covers the attribute, as §14.5 requires), then MAC everything before it. */
static int add_mac(stun_builder *b, uint16_t type, util_md_id md, size_t mdlen, const uint8_t *key,
                   size_t keylen)
{
    if (!b)
        return STUN_ERR_INVALID;
    if (!key && keylen) {
        if (!b->err)
            b->err = STUN_ERR_INVALID;
        return b->err;
    }
    uint8_t *v = stun_builder_reserve(b, type, mdlen);
    if (!v)
        return b->err;
    size_t start = (size_t)(v - b->buf) - 4;
    uint8_t mac[EVP_MAX_MD_SIZE];
    int rc = hmac_prefix(md, key, keylen, b->buf, start, b->len, mac);
    if (rc != STUN_OK) {
        b->err = rc;
        return rc;
    }
    memcpy(v, mac, mdlen);
    return STUN_OK;
}

int stun_builder_add_integrity(stun_builder *b, const uint8_t *key, size_t keylen)
{
    return add_mac(b, STUN_ATTR_MESSAGE_INTEGRITY, UTIL_MD_SHA1, 20, key, keylen);
}

int stun_builder_add_integrity_sha256(stun_builder *b, const uint8_t *key, size_t keylen)
{
    return add_mac(b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, UTIL_MD_SHA256, 32, key, keylen);
}

int stun_builder_add_fingerprint(stun_builder *b)
{
    if (!b)
        return STUN_ERR_INVALID;
    uint8_t *v = stun_builder_reserve(b, STUN_ATTR_FINGERPRINT, 4);
    if (!v)
        return b->err;
    uint32_t crc = stun_crc32(b->buf, (size_t)(v - b->buf) - 4) ^ STUN_FINGERPRINT_XOR;
    v[0] = (uint8_t)(crc >> 24);
    v[1] = (uint8_t)(crc >> 16);
    v[2] = (uint8_t)(crc >> 8);
    v[3] = (uint8_t)crc;
    return STUN_OK;
}
