/* libFuzzer target for the credential module: arbitrary bytes as a username through
 * cred_parse / cred_check / cred_verify against a one-key in-memory table, plus the coturn
 * helpers. Invariants are enforced with abort(). */
#include "turnkey/cred.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_KEY_ID "0123456789abcdef0123456789abcdef"
#define FZ_NOW 1700000000LL

static const uint8_t fz_secret[CRED_SECRET_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static int fz_key_secret(void *ctx, const char *key_id, uint8_t secret[CRED_SECRET_LEN])
{
    (void)ctx;
    if (strcmp(key_id, FZ_KEY_ID) != 0)
        return -1;
    memcpy(secret, fz_secret, CRED_SECRET_LEN);
    return 0;
}

/* A credential whose customIdentifier ends in ":revoked" (or is "revoked") counts as revoked. */
static bool fz_is_revoked(void *ctx, const char *key_id, const char *username, size_t len)
{
    (void)ctx;
    (void)key_id;
    return len >= 8 && memcmp(username + len - 8, ":revoked", 8) == 0;
}

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Mint from (expires, cid, salt), verify it, then check that single-byte changes are rejected.
 * Also mints with cred_mint (random salt): it verifies and differs from the salted mint. */
static void mint_roundtrip(const cred_lookup *lk, int64_t expires, const char *cid,
                           const uint8_t salt[CRED_SALT_LEN], uint8_t flip, size_t flip_pos)
{
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], p2[CRED_PASSWORD_MAX];
    char ru[CRED_USERNAME_MAX], rp[CRED_PASSWORD_MAX];
    cred_info info;
    int src = cred_mint_salted(FZ_KEY_ID, fz_secret, expires, cid, salt, u, p);
    int rrc = cred_mint(FZ_KEY_ID, fz_secret, expires, cid, ru, rp);
    REQUIRE(src == rrc);
    if (src != CRED_OK) {
        REQUIRE(u[0] == '\0' && p[0] == '\0' && ru[0] == '\0' && rp[0] == '\0');
        return;
    }
    size_t len = strlen(u);
    REQUIRE(len > 0 && len <= 255);
    REQUIRE(strpbrk(u, "/?#% ") == NULL);
    int rc = cred_verify(lk, u, len, expires - 1, &info, p2);
    if (fz_is_revoked(NULL, FZ_KEY_ID, u, len))
        REQUIRE(rc == CRED_E_REVOKED);
    else
        REQUIRE(rc == CRED_OK && strcmp(p, p2) == 0 && info.expires == expires &&
                strcmp(info.cid, cid ? cid : "") == 0 &&
                memcmp(info.salt, salt, CRED_SALT_LEN) == 0);
    REQUIRE(cred_verify(lk, u, len, expires, NULL, NULL) == CRED_E_EXPIRED);
    /* Random salt: same shape, verifies, and (barring a 2^-64 event) a different credential. */
    REQUIRE(strlen(ru) == len && strcmp(ru, u) != 0 && strcmp(rp, p) != 0);
    REQUIRE(cred_check(ru, len, fz_secret, NULL, p2) == CRED_OK && strcmp(p2, rp) == 0);
    if (flip) {
        u[flip_pos % len] = (char)(u[flip_pos % len] ^ flip);
        REQUIRE(cred_check(u, len, fz_secret, NULL, NULL) != CRED_OK);
        REQUIRE(cred_verify(lk, u, len, 0, NULL, NULL) != CRED_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    cred_lookup lk = {fz_key_secret, fz_is_revoked, NULL};
    cred_info pinfo, cinfo, vinfo;
    char cpw[CRED_PASSWORD_MAX], vpw[CRED_PASSWORD_MAX];

    /* 1. Arbitrary bytes as a turnkey username. */
    int prc = cred_parse(s, size, &pinfo);
    REQUIRE(prc == CRED_OK || prc == CRED_E_MALFORMED);
    if (prc == CRED_OK) {
        /* Parsing is strict, so the fields re-serialise to exactly the input. */
        char re[CRED_USERNAME_MAX + 1];
        REQUIRE(size <= 255);
        REQUIRE(pinfo.expires >= 1);
        REQUIRE(strlen(pinfo.key_id) == 32 && is_lower_hex(pinfo.key_id, 32));
        REQUIRE(pinfo.cid[0] == '\0' || cred_cid_valid(pinfo.cid, strlen(pinfo.cid)));
        char salt_hex[CRED_SALT_HEX_LEN + 1];
        for (int i = 0; i < CRED_SALT_LEN; i++)
            snprintf(salt_hex + 2 * i, 3, "%02x", pinfo.salt[i]);
        int n = snprintf(re, sizeof re, "%lld:%s:%s:", (long long)pinfo.expires, pinfo.key_id,
                         salt_hex);
        REQUIRE(n > 0 && (size_t)n + CRED_TAG_HEX_LEN <= size);
        REQUIRE(memcmp(re, s, (size_t)n) == 0);
        REQUIRE(is_lower_hex(s + n, CRED_TAG_HEX_LEN));
        size_t rest = size - (size_t)n - CRED_TAG_HEX_LEN;
        if (pinfo.cid[0]) {
            REQUIRE(rest == strlen(pinfo.cid) + 1 && s[size - rest] == ':');
            REQUIRE(memcmp(s + size - rest + 1, pinfo.cid, rest - 1) == 0);
        } else {
            REQUIRE(rest == 0);
        }
    } else {
        REQUIRE(pinfo.key_id[0] == '\0');
    }

    int crc = cred_check(s, size, fz_secret, &cinfo, cpw);
    REQUIRE(crc == CRED_OK || crc == CRED_E_BAD_TAG || crc == CRED_E_MALFORMED);
    REQUIRE((crc == CRED_E_MALFORMED) == (prc == CRED_E_MALFORMED));
    if (crc != CRED_OK)
        REQUIRE(cpw[0] == '\0');

    int64_t nows[2] = {FZ_NOW, 0};
    for (int i = 0; i < 2; i++) {
        int vrc = cred_verify(&lk, s, size, nows[i], &vinfo, vpw);
        REQUIRE(vrc <= 0 && vrc >= CRED_E_REVOKED);
        if (prc == CRED_E_MALFORMED)
            REQUIRE(vrc == CRED_E_MALFORMED);
        if (vrc == CRED_OK) {
            /* Only a username minted by the key verifies: re-minting with the parsed salt
             * reproduces it exactly. */
            char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
            REQUIRE(crc == CRED_OK && strcmp(cpw, vpw) == 0);
            REQUIRE(vinfo.expires > nows[i]);
            REQUIRE(memcmp(vinfo.salt, pinfo.salt, CRED_SALT_LEN) == 0);
            REQUIRE(cred_mint_salted(vinfo.key_id, fz_secret, vinfo.expires,
                                     vinfo.cid[0] ? vinfo.cid : NULL, vinfo.salt, u, p) == CRED_OK);
            REQUIRE(strlen(u) == size && memcmp(u, s, size) == 0);
            REQUIRE(strcmp(p, vpw) == 0);
        } else {
            REQUIRE(vpw[0] == '\0' && vinfo.key_id[0] == '\0');
            if (vrc == CRED_E_EXPIRED || vrc == CRED_E_REVOKED)
                REQUIRE(crc == CRED_OK);
            if (vrc == CRED_E_BAD_TAG)
                REQUIRE(crc == CRED_E_BAD_TAG);
        }
    }

    /* 2. The bytes as expiry / customIdentifier / salt for a fresh mint: expiry = bytes 0..8,
     * flip = byte 8, cid = bytes 9.. (at most 64), salt = the last 8 bytes (zero if < 17). */
    if (size >= 9) {
        uint64_t e = 0;
        for (int i = 0; i < 8; i++)
            e = e << 8 | data[i];
        int64_t expires = (int64_t)(e >> 1);
        if (expires < 2)
            expires = 2;
        char cid[CRED_CID_MAX + 1];
        size_t cl = size - 9 < CRED_CID_MAX ? size - 9 : CRED_CID_MAX;
        memcpy(cid, s + 9, cl);
        cid[cl] = '\0';
        uint8_t salt[CRED_SALT_LEN] = {0};
        if (size >= 17)
            memcpy(salt, data + size - CRED_SALT_LEN, CRED_SALT_LEN);
        mint_roundtrip(&lk, expires, cid, salt, data[8], size);
    }

    /* 3. coturn helpers: no crashes, sane outputs. */
    char cp[CRED_PASSWORD_MAX];
    REQUIRE(cred_coturn_password(fz_secret, sizeof fz_secret, s, size, cp) == CRED_OK);
    REQUIRE(strlen(cp) == 28);
    int64_t ce = cred_coturn_expiry(s, size);
    REQUIRE(ce == -1 || ce >= 1);
    return 0;
}
