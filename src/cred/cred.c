/* cred: see include/turnkey/cred.h and docs/credentials.md */
#include "turnkey/cred.h"

#include "turnkey/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define TAG_LEN 16           /* bytes of HMAC-SHA256 kept in the username (128 bits) */
#define EXPIRY_DIGITS_MAX 19 /* INT64_MAX = 9223372036854775807 */

/* Domain-separation labels; the trailing NUL is part of the MAC input (sizeof includes it). */
static const char TAG_LABEL[] = "turnkey/cred/tag/v2";
static const char PASSWORD_LABEL[] = "turnkey/cred/password/v1";

/* Strict decimal: 1..19 digits, first digit 1-9, value <= INT64_MAX. -1 if malformed. */
static int64_t parse_u63(const char *s, size_t len)
{
    int64_t v = 0;
    if (len == 0 || len > EXPIRY_DIGITS_MAX || s[0] < '1' || s[0] > '9')
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    return v;
}

/* Exactly n chars of lowercase hex at s (s need not be NUL-terminated). */
static bool lower_hex_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool cid_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

bool cred_cid_valid(const char *cid, size_t len)
{
    if (!cid || len == 0 || len > CRED_CID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!cid_char((unsigned char)cid[i]))
            return false;
    return true;
}

/* HMAC-SHA256(secret, msg) into out[32]. 0 on success, -1 on an OpenSSL failure. */
static int hmac256(const uint8_t secret[CRED_SECRET_LEN], const uint8_t *msg, size_t n,
                   uint8_t out[32])
{
    return util_hmac(UTIL_MD_SHA256, secret, CRED_SECRET_LEN, &msg, &n, 1, out);
}

/* tag = HMAC-SHA256(secret, TAG_LABEL || 0x00 || u64be(expires) || key_id[32] ||
 *                           salt[8] || u8(cid_len) || cid)[0..16) */
static int compute_tag(const uint8_t secret[CRED_SECRET_LEN], int64_t expires, const char *key_id,
                       const uint8_t salt[CRED_SALT_LEN], const char *cid, size_t cid_len,
                       uint8_t tag[TAG_LEN])
{
    uint8_t msg[sizeof TAG_LABEL + 8 + CRED_KEY_ID_LEN + CRED_SALT_LEN + 1 + CRED_CID_MAX];
    uint8_t mac[32];
    size_t n = 0;
    int rc = -1;

    memcpy(msg, TAG_LABEL, sizeof TAG_LABEL);
    n += sizeof TAG_LABEL;
    for (int i = 7; i >= 0; i--)
        msg[n++] = (uint8_t)((uint64_t)expires >> (8 * i));
    memcpy(msg + n, key_id, CRED_KEY_ID_LEN);
    n += CRED_KEY_ID_LEN;
    memcpy(msg + n, salt, CRED_SALT_LEN);
    n += CRED_SALT_LEN;
    msg[n++] = (uint8_t)cid_len;
    memcpy(msg + n, cid, cid_len);
    n += cid_len;

    if (hmac256(secret, msg, n, mac) != 0)
        goto cleanup;
    memcpy(tag, mac, TAG_LEN);
    rc = 0;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

/* password = base64(HMAC-SHA256(secret, PASSWORD_LABEL || 0x00 || username)), 44 chars. */
static int compute_password(const uint8_t secret[CRED_SECRET_LEN], const char *username, size_t len,
                            char password[CRED_PASSWORD_MAX])
{
    uint8_t msg[sizeof PASSWORD_LABEL + CRED_USERNAME_MAX];
    uint8_t mac[32];
    int rc = -1;

    if (len >= CRED_USERNAME_MAX)
        goto cleanup;
    memcpy(msg, PASSWORD_LABEL, sizeof PASSWORD_LABEL);
    memcpy(msg + sizeof PASSWORD_LABEL, username, len);
    if (hmac256(secret, msg, sizeof PASSWORD_LABEL + len, mac) != 0)
        goto cleanup;
    /* 32 bytes → 44 base64 chars + NUL, well under CRED_PASSWORD_MAX. */
    EVP_EncodeBlock((unsigned char *)password, mac, (int)sizeof mac);
    rc = 0;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int cred_mint_salted(const char *key_id, const uint8_t secret[CRED_SECRET_LEN], int64_t expires,
                     const char *cid, const uint8_t salt[CRED_SALT_LEN],
                     char username[CRED_USERNAME_MAX], char password[CRED_PASSWORD_MAX])
{
    uint8_t tag[TAG_LEN];
    char tag_hex[2 * TAG_LEN + 1];
    char salt_hex[CRED_SALT_HEX_LEN + 1];
    size_t cid_len = 0;
    int n, rc = CRED_E_MALFORMED;

    if (username)
        username[0] = '\0';
    if (password)
        password[0] = '\0';
    memset(tag, 0, sizeof tag);
    if (!key_id || !secret || !salt || !username || !password || expires < 1)
        goto cleanup;
    if (strnlen(key_id, CRED_KEY_ID_LEN + 1) != CRED_KEY_ID_LEN ||
        !util_is_lower_hex(key_id, CRED_KEY_ID_LEN))
        goto cleanup;
    if (cid) {
        cid_len = strnlen(cid, CRED_CID_MAX + 1);
        if (cid_len != 0 && !cred_cid_valid(cid, cid_len))
            goto cleanup;
    }
    if (compute_tag(secret, expires, key_id, salt, cid ? cid : "", cid_len, tag) != 0)
        goto cleanup;
    util_hex_encode(tag, TAG_LEN, tag_hex);
    util_hex_encode(salt, CRED_SALT_LEN, salt_hex);
    if (cid_len)
        n = snprintf(username, CRED_USERNAME_MAX, "%lld:%s:%s:%s:%s", (long long)expires, key_id,
                     salt_hex, tag_hex, cid);
    else
        n = snprintf(username, CRED_USERNAME_MAX, "%lld:%s:%s:%s", (long long)expires, key_id,
                     salt_hex, tag_hex);
    if (n < 0 || n >= CRED_USERNAME_MAX)
        goto cleanup;
    if (compute_password(secret, username, (size_t)n, password) != 0)
        goto cleanup;
    rc = CRED_OK;
cleanup:
    if (rc != CRED_OK && username)
        username[0] = '\0';
    if (rc != CRED_OK && password)
        password[0] = '\0';
    OPENSSL_cleanse(tag, sizeof tag);
    return rc;
}

int cred_mint(const char *key_id, const uint8_t secret[CRED_SECRET_LEN], int64_t expires,
              const char *cid, char username[CRED_USERNAME_MAX], char password[CRED_PASSWORD_MAX])
{
    uint8_t salt[CRED_SALT_LEN];
    util_random(salt, sizeof salt);
    int rc = cred_mint_salted(key_id, secret, expires, cid, salt, username, password);
    OPENSSL_cleanse(salt, sizeof salt);
    return rc;
}

/* Splits a username into its fields; tag_hex points into username (CRED_TAG_HEX_LEN chars). */
static int parse_fields(const char *u, size_t len, cred_info *out, const char **tag_hex)
{
    cred_info info;
    const char *colon;
    size_t elen, pos, cid_len;

    memset(&info, 0, sizeof info);
    if (!u || len == 0 || len >= CRED_USERNAME_MAX)
        return CRED_E_MALFORMED;
    colon = memchr(u, ':', len < EXPIRY_DIGITS_MAX + 1 ? len : EXPIRY_DIGITS_MAX + 1);
    if (!colon)
        return CRED_E_MALFORMED;
    elen = (size_t)(colon - u);
    info.expires = parse_u63(u, elen);
    if (info.expires < 1)
        return CRED_E_MALFORMED;
    pos = elen + 1;
    /* key-id ":" salt ":" tag */
    if (len - pos < CRED_KEY_ID_LEN + 1 + CRED_SALT_HEX_LEN + 1 + CRED_TAG_HEX_LEN)
        return CRED_E_MALFORMED;
    if (!lower_hex_n(u + pos, CRED_KEY_ID_LEN) || u[pos + CRED_KEY_ID_LEN] != ':')
        return CRED_E_MALFORMED;
    memcpy(info.key_id, u + pos, CRED_KEY_ID_LEN);
    pos += CRED_KEY_ID_LEN + 1;
    if (!lower_hex_n(u + pos, CRED_SALT_HEX_LEN) || u[pos + CRED_SALT_HEX_LEN] != ':' ||
        util_hex_decode(u + pos, CRED_SALT_LEN, info.salt) != 0)
        return CRED_E_MALFORMED;
    pos += CRED_SALT_HEX_LEN + 1;
    if (!lower_hex_n(u + pos, CRED_TAG_HEX_LEN))
        return CRED_E_MALFORMED;
    *tag_hex = u + pos;
    pos += CRED_TAG_HEX_LEN;
    /* [ ":" cid ] */
    if (pos < len) {
        if (u[pos] != ':')
            return CRED_E_MALFORMED;
        pos++;
        cid_len = len - pos;
        if (!cred_cid_valid(u + pos, cid_len))
            return CRED_E_MALFORMED;
        memcpy(info.cid, u + pos, cid_len);
    }
    *out = info;
    return CRED_OK;
}

int cred_parse(const char *username, size_t len, cred_info *out)
{
    cred_info info;
    const char *tag_hex = NULL;
    int rc = parse_fields(username, len, &info, &tag_hex);
    if (out) {
        if (rc == CRED_OK)
            *out = info;
        else
            memset(out, 0, sizeof *out);
    }
    return rc;
}

int cred_check(const char *username, size_t len, const uint8_t secret[CRED_SECRET_LEN],
               cred_info *info, char password[CRED_PASSWORD_MAX])
{
    cred_info parsed;
    const char *tag_hex = NULL;
    uint8_t given[TAG_LEN], want[TAG_LEN];
    int rc;

    memset(given, 0, sizeof given);
    memset(want, 0, sizeof want);
    rc = parse_fields(username, len, &parsed, &tag_hex);
    if (rc != CRED_OK)
        goto cleanup;
    if (!secret || util_hex_decode(tag_hex, TAG_LEN, given) != 0) {
        rc = CRED_E_MALFORMED;
        goto cleanup;
    }
    if (compute_tag(secret, parsed.expires, parsed.key_id, parsed.salt, parsed.cid,
                    strlen(parsed.cid), want) != 0) {
        rc = CRED_E_BAD_TAG; /* fail closed */
        goto cleanup;
    }
    /* Constant time: never memcmp() a MAC. */
    if (CRYPTO_memcmp(given, want, TAG_LEN) != 0) {
        rc = CRED_E_BAD_TAG;
        goto cleanup;
    }
    if (password && compute_password(secret, username, len, password) != 0) {
        rc = CRED_E_BAD_TAG; /* fail closed */
        goto cleanup;
    }
    rc = CRED_OK;
cleanup:
    if (info) {
        if (rc == CRED_OK)
            *info = parsed;
        else
            memset(info, 0, sizeof *info);
    }
    if (rc != CRED_OK && password)
        password[0] = '\0';
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

int cred_verify(const cred_lookup *lk, const char *username, size_t len, int64_t now,
                cred_info *info, char password[CRED_PASSWORD_MAX])
{
    cred_info parsed;
    uint8_t secret[CRED_SECRET_LEN];
    char pw[CRED_PASSWORD_MAX];
    int rc;

    memset(&parsed, 0, sizeof parsed);
    memset(secret, 0, sizeof secret);
    pw[0] = '\0';
    if (!lk || !lk->key_secret) {
        rc = CRED_E_MALFORMED;
        goto cleanup;
    }
    rc = cred_parse(username, len, &parsed);
    if (rc != CRED_OK)
        goto cleanup;
    int found = lk->key_secret(lk->ctx, parsed.key_id, secret);
    if (found != 0) {
        rc = found == CRED_LOOKUP_DELETED ? CRED_E_KEY_DELETED : CRED_E_UNKNOWN_KEY;
        goto cleanup;
    }
    rc = cred_check(username, len, secret, &parsed, pw);
    if (rc != CRED_OK)
        goto cleanup;
    if (parsed.expires <= now) {
        rc = CRED_E_EXPIRED;
        goto cleanup;
    }
    if (lk->is_revoked && lk->is_revoked(lk->ctx, parsed.key_id, username, len)) {
        rc = CRED_E_REVOKED;
        goto cleanup;
    }
    rc = CRED_OK;
cleanup:
    OPENSSL_cleanse(secret, sizeof secret);
    if (info) {
        if (rc == CRED_OK)
            *info = parsed;
        else
            memset(info, 0, sizeof *info);
    }
    if (password) {
        if (rc == CRED_OK)
            memcpy(password, pw, strlen(pw) + 1);
        else
            password[0] = '\0';
    }
    OPENSSL_cleanse(pw, sizeof pw);
    return rc;
}

const char *cred_strerror(int rc)
{
    switch (rc) {
    case CRED_OK: return "ok";
    case CRED_E_MALFORMED: return "malformed credential";
    case CRED_E_UNKNOWN_KEY: return "unknown key";
    case CRED_E_BAD_TAG: return "credential not minted by this key";
    case CRED_E_EXPIRED: return "credential expired";
    case CRED_E_REVOKED: return "credential revoked";
    case CRED_E_KEY_DELETED: return "key deleted";
    default: return "unknown error";
    }
}

int cred_coturn_password(const uint8_t *secret, size_t secret_len, const char *username, size_t len,
                         char password[CRED_PASSWORD_MAX])
{
    static const uint8_t empty[1] = {0};
    uint8_t mac[EVP_MAX_MD_SIZE];
    int rc = CRED_E_MALFORMED;

    if (!password)
        return CRED_E_MALFORMED;
    password[0] = '\0';
    if ((!secret && secret_len) || (!username && len) || secret_len > INT32_MAX)
        goto cleanup;
    const uint8_t *msg = username ? (const uint8_t *)username : empty;
    if (util_hmac(UTIL_MD_SHA1, secret ? secret : empty, secret_len, &msg, &len, 1, mac) != 0)
        goto cleanup;
    /* 20 bytes → 28 base64 chars + NUL. */
    EVP_EncodeBlock((unsigned char *)password, mac, 20);
    rc = CRED_OK;
cleanup:
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int64_t cred_coturn_expiry(const char *username, size_t len)
{
    const char *colon;
    if (!username)
        return -1;
    colon = memchr(username, ':', len);
    return parse_u63(username, colon ? (size_t)(colon - username) : len);
}
