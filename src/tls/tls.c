/* tls: see include/turnkey/tls.h. */
#include "turnkey/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "turnkey/util.h"

struct tls_server {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    unsigned alpn; /* TLS_ALPN_* the server selects */
};

static const struct {
    unsigned flag;
    const char *name;
} alpn_names[] = {{TLS_ALPN_TURN, "stun.turn"}, {TLS_ALPN_HTTP, "http/1.1"}}; /* preference */

/* The ALPN choice: the first protocol of ours (in our order) the client offers; none (no
 * ALPN in the answer) when there is no overlap. h2 is never chosen: it is not served. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    unsigned mode = (unsigned)(uintptr_t)arg;
    (void)ssl;
    for (size_t k = 0; k < sizeof alpn_names / sizeof alpn_names[0]; k++) {
        size_t len = strlen(alpn_names[k].name);
        if (!(mode & alpn_names[k].flag))
            continue;
        for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
            if (i + 1u + in[i] > inlen)
                break; /* malformed list: OpenSSL checks it, but stay inside it anyway */
            if (in[i] == len && memcmp(in + i + 1, alpn_names[k].name, len) == 0) {
                *out = in + i + 1;
                *outlen = in[i];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static char *ssl_error(const char *what, const char *file)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return util_xasprintf("%s %s: %s", what, file, buf[0] ? buf : "unknown error");
}

static SSL_CTX *make_ctx(const char *cert_file, const char *key_file, unsigned alpn, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        *err = ssl_error("cannot create a TLS context for", cert_file);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        *err = ssl_error("cannot load the TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        *err = ssl_error("cannot load the TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        *err = ssl_error("the TLS key does not match the certificate", cert_file);
        goto fail;
    }
    if (alpn)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, (void *)(uintptr_t)alpn);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

tls_server *tls_server_new_alpn(const char *cert_file, const char *key_file, unsigned alpn,
                                char **err)
{
    *err = NULL;
    SSL_CTX *ctx = make_ctx(cert_file, key_file, alpn, err);
    if (!ctx)
        return NULL;
    tls_server *t = util_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->ctx = ctx;
    t->alpn = alpn;
    return t;
}

tls_server *tls_server_new(const char *cert_file, const char *key_file, char **err)
{
    return tls_server_new_alpn(cert_file, key_file, 0, err);
}

int tls_server_reload(tls_server *t, const char *cert_file, const char *key_file, char **err)
{
    *err = NULL;
    SSL_CTX *ctx = make_ctx(cert_file, key_file, t->alpn, err);
    if (!ctx)
        return -1;
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* live SSL objects hold their own reference */
    return 0;
}

SSL *tls_server_ssl(tls_server *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_conn_close(SSL *ssl, int fd)
{
    SSL_free(ssl);
    ERR_clear_error();
    close(fd);
}

void tls_server_free(tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static int write_pem(const char *path, int mode, EVP_PKEY *key, X509 *cert)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    return (fclose(f) == 0 && ok == 1) ? 0 : -1;
}

int tls_ensure_self_signed(const char *cert_file, const char *key_file, const char *host,
                           char **err)
{
    struct stat st;
    *err = NULL;
    if (stat(cert_file, &st) == 0 && stat(key_file, &st) == 0)
        return 0;
    int rc = -1;
    X509 *x = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key || !(x = X509_new()))
        goto out;
    uint8_t serial[16];
    util_random(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"turnkey", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0);
    X509_set_issuer_name(x, name);
    struct in6_addr a6;
    struct in_addr a4;
    bool is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    char *san = util_xasprintf("%s:%s", is_ip ? "IP" : "DNS", host);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    free(san);
    if (!ext)
        goto out;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!X509_sign(x, key, EVP_sha256()))
        goto out;
    if (write_pem(key_file, 0600, key, NULL) != 0 || write_pem(cert_file, 0600, NULL, x) != 0) {
        *err = util_xasprintf("cannot write the self-signed TLS pair %s / %s", cert_file, key_file);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && !*err)
        *err = ssl_error("cannot generate a self-signed certificate for", host);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}
