/* util/util_crypto.c: message digests fetched once, HMAC over pieces.
 *
 * OpenSSL 3 resolves the algorithm behind EVP_sha256() & co. again (a locked method-store
 * lookup) on every EVP_DigestInit_ex, and its one-shot HMAC() also builds an EVP_MAC context
 * each call: for the short inputs of STUN and TURN credentials that costs several times the
 * hashing itself. util_md() fetches each digest once per process (pthread_once; the table is
 * never written again) and util_hmac() composes RFC 2104 HMAC over it, so the per-request
 * cost is the hashing. */
#include "turnkey/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#define HMAC_BLOCK 64 /* block size of MD5, SHA-1 and SHA-256 */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static const EVP_MD *md_table[3]; /* written once by fetch_all, read-only afterwards */

static void fetch_all(void)
{
    static const char *const names[3] = {"MD5", "SHA1", "SHA256"};
    const EVP_MD *legacy[3] = {EVP_md5(), EVP_sha1(), EVP_sha256()};
    for (int i = 0; i < 3; i++) {
        EVP_MD *md = EVP_MD_fetch(NULL, names[i], NULL); /* kept for the process lifetime */
        md_table[i] = md ? md : legacy[i]; /* e.g. MD5 absent from a FIPS provider: slow path */
    }
}

const struct evp_md_st *util_md(util_md_id id)
{
    pthread_once(&md_once, fetch_all);
    return md_table[id];
}

/* md(pad || pieces) into out. */
static int digest_pad(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t pad[HMAC_BLOCK],
                      const uint8_t *const *p, const size_t *len, size_t n, uint8_t *out)
{
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, HMAC_BLOCK) != 1)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (len[i] && EVP_DigestUpdate(ctx, p[i], len[i]) != 1)
            return -1;
    return EVP_DigestFinal_ex(ctx, out, NULL) == 1 ? 0 : -1;
}

int util_hmac(util_md_id id, const uint8_t *key, size_t keylen, const uint8_t *const *p,
              const size_t *len, size_t n, uint8_t *out)
{
    const EVP_MD *md = util_md(id);
    uint8_t k[HMAC_BLOCK] = {0}, pad[HMAC_BLOCK], inner[EVP_MAX_MD_SIZE];
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        goto out;
    if (keylen > HMAC_BLOCK) {
        if (EVP_Digest(key, keylen, k, NULL, md, NULL) != 1)
            goto out;
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    if (digest_pad(ctx, md, pad, p, len, n, inner) != 0)
        goto out;
    for (int i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x5C;
    const uint8_t *outer[1] = {inner};
    size_t outer_len[1] = {(size_t)EVP_MD_get_size(md)};
    rc = digest_pad(ctx, md, pad, outer, outer_len, 1, out);
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    return rc;
}
