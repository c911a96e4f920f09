/* util: small shared helpers — allocation that aborts on OOM, hex, CSPRNG, SHA-256, HMAC,
 * constant-time compare, RFC 3339 time, UTF-8 validation. No state (apart from the digests
 * fetched once, read-only afterwards). */
#ifndef TURNKEY_UTIL_H
#define TURNKEY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Allocation: abort with a message on OOM (never returns NULL). */
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t size);
void *util_xrealloc(void *p, size_t n);
char *util_xstrdup(const char *s);
char *util_xstrndup(const char *s, size_t n);
char *util_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lowercase hex of n bytes into out (2n+1 bytes incl. NUL). */
void util_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly 2n hex chars (either case) into n bytes; -1 on a bad char. */
int util_hex_decode(const char *in, size_t n, uint8_t *out);
/* Percent-decodes [s, s+len) into out (cap bytes, NUL-terminated); with plus_is_space a '+'
 * is a space (query strings). -1 if an escape is malformed, a NUL results or out is too
 * small. */
int util_percent_decode(const char *s, size_t len, bool plus_is_space, char *out, size_t cap);
/* True if s is exactly len chars of lowercase hex. */
bool util_is_lower_hex(const char *s, size_t len);

/* Fills buf with cryptographically secure random bytes; aborts if the CSPRNG fails. */
void util_random(uint8_t *buf, size_t n);
/* n random bytes as lowercase hex into out (2n+1 bytes). */
void util_random_hex(size_t n, char *out);

/* SHA-256 of data as 64 lowercase hex chars + NUL into out[65]. */
void util_sha256_hex(const void *data, size_t n, char out[65]);

/* Digests fetched once per process (util_crypto.c): pass util_md(...) wherever OpenSSL takes
 * an EVP_MD instead of EVP_sha256() & co., which OpenSSL 3 re-resolves on every use. */
struct evp_md_st;
typedef enum util_md_id { UTIL_MD_MD5 = 0, UTIL_MD_SHA1 = 1, UTIL_MD_SHA256 = 2 } util_md_id;
const struct evp_md_st *util_md(util_md_id id);
/* HMAC (RFC 2104) under key over the concatenation of the n pieces p[i] (len[i] bytes each)
 * into out (16, 20 or 32 bytes). 0 on success, -1 on an OpenSSL failure. */
int util_hmac(util_md_id id, const uint8_t *key, size_t keylen, const uint8_t *const *p,
              const size_t *len, size_t n, uint8_t *out);

/* Constant-time equality of two equal-length buffers. */
bool util_ct_equal(const void *a, const void *b, size_t n);

/* Current wall-clock time in seconds / milliseconds since the epoch. */
int64_t util_now(void);
int64_t util_now_ms(void);
/* Monotonic milliseconds. */
int64_t util_mono_ms(void);
/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (or with .mmm if ms != 0 is wanted: use _ms). out >= 32. */
void util_rfc3339(int64_t unix_seconds, char out[32]);
/* RFC 3339 UTC with milliseconds: "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void util_rfc3339_ms(int64_t unix_ms, char out[32]);

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) with no Unicode Cc code points
 * (U+0000-001F, U+007F, U+0080-009F). */
bool util_utf8_valid_no_cc(const char *s, size_t len);

/* Parses "host:port", "[v6]:port" or ":port" (IPv4 any) into a sockaddr (numeric hosts
 * only); *len gets the sockaddr length. 0 ok, -1 malformed. */
struct sockaddr_storage;
int util_parse_addr(const char *s, struct sockaddr_storage *out, unsigned *len);
/* "1.2.3.4:5" / "[::1]:5" into out (>= 64 bytes). */
void util_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Parses a duration "90", "90s", "15m", "12h", "30d" into seconds; -1 if malformed or <= 0. */
int64_t util_parse_duration(const char *s);

#endif
