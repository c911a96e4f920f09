/* cred_shared: the username grammar and password of shared secrets bound to TURN keys
 * (issue 15; see include/turnkey/cred.h and docs/credentials.md). Sans-I/O. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "turnkey/cred.h"
#include "turnkey/util.h"

/* Exactly n lowercase hex chars at s (s need not be NUL-terminated). */
static bool hex_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool user_byte(unsigned char c)
{
    return c >= 0x20 && c != 0x7f;
}

int cred_shared_parse(const char *u, size_t len, cred_shared_name *out)
{
    cred_shared_name nm;
    memset(&nm, 0, sizeof nm);
    if (out)
        memset(out, 0, sizeof *out);
    if (!u || len == 0 || len >= CRED_USERNAME_MAX)
        return CRED_E_MALFORMED;
    const char *colon = memchr(u, ':', len);
    size_t elen = colon ? (size_t)(colon - u) : len;
    nm.expires = cred_coturn_expiry(u, elen);
    if (nm.expires < 1)
        return CRED_E_MALFORMED;
    if (colon) {
        nm.user = colon + 1;
        nm.user_len = len - elen - 1;
        for (size_t i = 0; i < nm.user_len; i++)
            if (!user_byte((unsigned char)nm.user[i]))
                return CRED_E_MALFORMED;
        const char *tail = nm.user + nm.user_len - (CRED_KEY_ID_LEN + 1);
        if (nm.user_len >= CRED_KEY_ID_LEN + 1 && tail[0] == CRED_SHARED_KEY_MARK &&
            hex_n(tail + 1, CRED_KEY_ID_LEN))
            memcpy(nm.key_id, tail + 1, CRED_KEY_ID_LEN);
    }
    if (out)
        *out = nm;
    return CRED_OK;
}

int cred_shared_password(bool sha256, const char *secret, size_t secret_len, const char *username,
                         size_t len, char password[CRED_PASSWORD_MAX])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    if (!password)
        return CRED_E_MALFORMED;
    password[0] = '\0';
    if (!secret || !username || len >= CRED_USERNAME_MAX)
        return CRED_E_MALFORMED;
    const uint8_t *msg = (const uint8_t *)username;
    if (util_hmac(sha256 ? UTIL_MD_SHA256 : UTIL_MD_SHA1, (const uint8_t *)secret, secret_len, &msg,
                  &len, 1, mac) != 0)
        return CRED_E_MALFORMED;
    EVP_EncodeBlock((unsigned char *)password, mac, sha256 ? 32 : 20);
    OPENSSL_cleanse(mac, sizeof mac);
    return CRED_OK;
}
