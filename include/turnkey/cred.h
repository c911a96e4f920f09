/* cred: stateless TURN credentials (sans-I/O; no sockets, no store, no clock — time is passed in).
 *
 * A TURN key (id = 32 lowercase hex) has a 32-byte server-side secret. Minting derives a
 * username that carries expiry, key id, a per-mint random salt and optional customIdentifier
 * plus a truncated HMAC-SHA256 tag, and a password = HMAC-SHA256 of the username under a
 * different label. Any relay that knows the key's secret verifies a credential offline.
 * The salt makes every mint distinct (per-username relay quotas and revocation are then
 * per credential, not shared by everyone minted with the same inputs in the same second).
 *
 * Username grammar (see docs/credentials.md for the full description):
 *   username = expiry ":" key-id ":" salt ":" tag [ ":" cid ]
 *   expiry   = %x31-39 *18DIGIT          ; unix seconds, 1..INT64_MAX, no leading zero/sign
 *   key-id   = 32lowerhex
 *   salt     = 16lowerhex                ; 8 random bytes (CSPRNG) per mint
 *   tag      = 32lowerhex                ; HMAC-SHA256(secret, "turnkey/cred/tag/v2" 0x00 ...)[0..16)
 *   cid      = 1*64( ALPHA / DIGIT / "." / "_" / ":" / "-" )
 *
 * Also: the coturn-compatible shared-secret scheme (product spec §4.2). */
#ifndef TURNKEY_CRED_H
#define TURNKEY_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRED_SECRET_LEN 32
#define CRED_USERNAME_MAX 256 /* buffer size incl. NUL */
#define CRED_PASSWORD_MAX 128 /* buffer size incl. NUL */
#define CRED_CID_MAX 64       /* max customIdentifier length */
#define CRED_KEY_ID_LEN 32    /* lowercase hex chars */
#define CRED_TAG_HEX_LEN 32   /* 128-bit tag as lowercase hex */
#define CRED_SALT_LEN 8       /* random salt bytes per mint */
#define CRED_SALT_HEX_LEN 16  /* salt as lowercase hex in the username */

enum {
    CRED_OK = 0,
    CRED_E_MALFORMED = -1,
    CRED_E_UNKNOWN_KEY = -2,
    CRED_E_BAD_TAG = -3,
    CRED_E_EXPIRED = -4,
    CRED_E_REVOKED = -5,
    CRED_E_KEY_DELETED = -6 /* the lookup knows the key was deleted */
};

typedef struct cred_info {
    char key_id[33];
    int64_t expires;
    char cid[CRED_CID_MAX + 1];  /* "" when the credential carries none */
    uint8_t salt[CRED_SALT_LEN]; /* the username's salt, decoded (for cred_mint_salted) */
} cred_info;

/* customIdentifier rule: 1..64 chars of [A-Za-z0-9._:-] */
bool cred_cid_valid(const char *cid, size_t len);

/* Mint: cid may be NULL or "" for none. expires = unix seconds (>= 1). Returns CRED_OK or
 * CRED_E_MALFORMED (bad key_id/cid/expires). Writes NUL-terminated username and password.
 * Draws a fresh CRED_SALT_LEN-byte salt from the CSPRNG (util_random), so two mints return
 * distinct credentials even with identical inputs (barring a 64-bit salt collision). */
int cred_mint(const char *key_id, const uint8_t secret[CRED_SECRET_LEN], int64_t expires,
              const char *cid, char username[CRED_USERNAME_MAX], char password[CRED_PASSWORD_MAX]);

/* Deterministic core of cred_mint with a caller-supplied salt (tests, fuzzers, re-minting a
 * parsed credential from cred_info.salt). Same contract as cred_mint; salt NULL → MALFORMED.
 * Production code must use cred_mint: a reused salt reintroduces identical credentials. */
int cred_mint_salted(const char *key_id, const uint8_t secret[CRED_SECRET_LEN], int64_t expires,
                     const char *cid, const uint8_t salt[CRED_SALT_LEN],
                     char username[CRED_USERNAME_MAX], char password[CRED_PASSWORD_MAX]);

/* Parse without any secret (strict: exact format, no extra bytes, no leading zeros/sign in
 * numbers, lowercase hex). CRED_OK (out filled) or CRED_E_MALFORMED. */
int cred_parse(const char *username, size_t len, cred_info *out);

/* Check the username's built-in tag under `secret` in constant time (CRYPTO_memcmp) →
 * CRED_OK / CRED_E_BAD_TAG / CRED_E_MALFORMED; on OK fill info and compute the password
 * (info and password may be NULL if not wanted). Does NOT check expiry. */
int cred_check(const char *username, size_t len, const uint8_t secret[CRED_SECRET_LEN],
               cred_info *info, char password[CRED_PASSWORD_MAX]);

/* What the relay and the revoke endpoint call: */
#define CRED_LOOKUP_DELETED (-2)
typedef struct cred_lookup {
    /* 0 found (secret filled), -1 unknown, CRED_LOOKUP_DELETED known to be deleted */
    int (*key_secret)(void *ctx, const char *key_id, uint8_t secret[CRED_SECRET_LEN]);
    /* may be NULL */
    bool (*is_revoked)(void *ctx, const char *key_id, const char *username, size_t len);
    void *ctx;
} cred_lookup;

/* parse → key_secret → check tag → expiry (expires <= now → CRED_E_EXPIRED) → revoked.
 * On CRED_OK fills info and password (the long-term-credential password the relay uses for
 * MESSAGE-INTEGRITY); info/password may be NULL. On error, info is zeroed and password is "".
 * The secret copy is wiped (OPENSSL_cleanse). */
int cred_verify(const cred_lookup *lk, const char *username, size_t len, int64_t now,
                cred_info *info, char password[CRED_PASSWORD_MAX]);

/* Static English description of a CRED_* code. */
const char *cred_strerror(int rc);

/* coturn-compatible shared-secret scheme (product spec §4.2, optional per deployment):
 * username "<unix-expiry>[:<user>]", password = base64(HMAC-SHA1(secret, username)).
 * Returns CRED_OK or CRED_E_MALFORMED (NULL arguments). Does not validate the username. */
int cred_coturn_password(const uint8_t *secret, size_t secret_len, const char *username, size_t len,
                         char password[CRED_PASSWORD_MAX]);

/* Parses the expiry prefix of a coturn REST username ("1700000000:alice" or "1700000000");
 * -1 if malformed (empty, non-digit, sign, leading zero, > INT64_MAX). */
int64_t cred_coturn_expiry(const char *username, size_t len);

/* Shared secrets bound to TURN keys (issue 15, docs/credentials.md "Shared secrets per
 * key"): username = expiry [ ":" user ], where user is any bytes 0x20-0x7e or >= 0x80
 * (Synapse puts "@alice:example.org" there) and may end in "~" + 32 lowercase hex, which
 * names the TURN key whose secrets the relay tries. */
#define CRED_SHARED_KEY_MARK '~'
typedef struct cred_shared_name {
    int64_t expires;
    const char *user; /* points into the username; user_len 0 when absent */
    size_t user_len;
    char key_id[CRED_KEY_ID_LEN + 1]; /* "" when the username names no key */
} cred_shared_name;
/* Strict parse: CRED_OK or CRED_E_MALFORMED (bad expiry, a control byte or NUL, too long). */
int cred_shared_parse(const char *username, size_t len, cred_shared_name *out);
/* password = base64(HMAC-SHA1 or HMAC-SHA256(secret, username)); sha256: false = SHA-1
 * (coturn's, 28 chars), true = 44 chars. CRED_OK or CRED_E_MALFORMED. */
int cred_shared_password(bool sha256, const char *secret, size_t secret_len, const char *username,
                         size_t len, char password[CRED_PASSWORD_MAX]);

#endif
