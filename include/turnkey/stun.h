/* stun: sans-I/O STUN codec (RFC 8489) with the TURN attributes of RFC 8656, ChannelData
 * and the TCP/TLS stream framer (RFC 8656 §12.5).
 *
 * No sockets, no clocks, no globals. Parsing takes (buf, len) and records references into
 * the caller's buffer (no copies): the buffer must outlive the stun_msg. Encoders write into
 * a caller buffer with an explicit capacity and fail with STUN_ERR_NO_SPACE rather than
 * write past it.
 *
 * Return codes: 0 (or a positive length / kind) on success, a negative STUN_ERR_* otherwise;
 * stun_strerror() names them. */
#ifndef TURNKEY_STUN_H
#define TURNKEY_STUN_H

#include <netinet/in.h> /* struct sockaddr_storage, sockaddr_in, sockaddr_in6 (types only) */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- constants ------------------------------------------------------------------------ */

#define STUN_HEADER_SIZE 20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TXID_SIZE 12
#define STUN_MAX_ATTRS 64   /* attributes stored per message; more is STUN_ERR_TOO_MANY_ATTRS */
#define STUN_MAX_UNKNOWN 16 /* unknown comprehension-required types listed per message */
#define STUN_FINGERPRINT_XOR 0x5354554Eu
#define STUN_CHANNELDATA_HEADER_SIZE 4
/* Largest frame the stream framer can report: a STUN header plus a 16-bit length. A stream
 * reader's buffer of this size always makes progress. */
#define STUN_FRAME_MAX (STUN_HEADER_SIZE + 65535)

/* Methods (12 bits). */
enum {
    STUN_METHOD_BINDING = 0x001,
    STUN_METHOD_ALLOCATE = 0x003,
    STUN_METHOD_REFRESH = 0x004,
    STUN_METHOD_SEND = 0x006,
    STUN_METHOD_DATA = 0x007,
    STUN_METHOD_CREATE_PERMISSION = 0x008,
    STUN_METHOD_CHANNEL_BIND = 0x009,
    STUN_METHOD_CONNECT = 0x00A,            /* RFC 6062 */
    STUN_METHOD_CONNECTION_BIND = 0x00B,    /* RFC 6062 */
    STUN_METHOD_CONNECTION_ATTEMPT = 0x00C, /* RFC 6062 (indication) */
};

/* Classes (2 bits). */
enum {
    STUN_CLASS_REQUEST = 0,
    STUN_CLASS_INDICATION = 1,
    STUN_CLASS_SUCCESS = 2,
    STUN_CLASS_ERROR = 3,
};

/* Attribute types. 0x0000-0x7FFF are comprehension-required, 0x8000-0xFFFF optional. */
enum {
    STUN_ATTR_MAPPED_ADDRESS = 0x0001,
    STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
    STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    STUN_ATTR_CHANNEL_NUMBER = 0x000C,
    STUN_ATTR_LIFETIME = 0x000D,
    STUN_ATTR_XOR_PEER_ADDRESS = 0x0012,
    STUN_ATTR_DATA = 0x0013,
    STUN_ATTR_REALM = 0x0014,
    STUN_ATTR_NONCE = 0x0015,
    STUN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
    STUN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017,
    STUN_ATTR_EVEN_PORT = 0x0018,
    STUN_ATTR_REQUESTED_TRANSPORT = 0x0019,
    STUN_ATTR_DONT_FRAGMENT = 0x001A,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E,
    STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_ATTR_RESERVATION_TOKEN = 0x0022,
    STUN_ATTR_PRIORITY = 0x0024,      /* ICE, RFC 8445 */
    STUN_ATTR_USE_CANDIDATE = 0x0025, /* ICE, RFC 8445 */
    STUN_ATTR_CONNECTION_ID = 0x002A, /* RFC 6062 */
    STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
    STUN_ATTR_ADDRESS_ERROR_CODE = 0x8001,
    STUN_ATTR_PASSWORD_ALGORITHMS = 0x8002,
    STUN_ATTR_ALTERNATE_DOMAIN = 0x8003,
    STUN_ATTR_ICMP = 0x8004,
    STUN_ATTR_SOFTWARE = 0x8022,
    STUN_ATTR_ALTERNATE_SERVER = 0x8023,
    STUN_ATTR_FINGERPRINT = 0x8028,
    STUN_ATTR_ICE_CONTROLLED = 0x8029,
    STUN_ATTR_ICE_CONTROLLING = 0x802A,
    STUN_ATTR_RESPONSE_ORIGIN = 0x802B,
    STUN_ATTR_OTHER_ADDRESS = 0x802C,
};

/* Address family octet of the (XOR-)address and *-ADDRESS-FAMILY attributes. */
enum { STUN_FAMILY_IPV4 = 0x01, STUN_FAMILY_IPV6 = 0x02 };

/* PASSWORD-ALGORITHM values (RFC 8489 §18.5). */
enum { STUN_PASSWORD_ALG_MD5 = 0x0001, STUN_PASSWORD_ALG_SHA256 = 0x0002 };

/* REQUESTED-TRANSPORT protocol numbers. */
enum { STUN_TRANSPORT_UDP = 17, STUN_TRANSPORT_TCP = 6 };

/* Return codes. */
enum {
    STUN_OK = 0,
    STUN_ERR_NEED_MORE = -1,      /* framer: incomplete frame, read more bytes */
    STUN_ERR_TRUNCATED = -2,      /* buffer shorter than the header or the declared length */
    STUN_ERR_NOT_STUN = -3,       /* top bits not 00, or wrong magic cookie */
    STUN_ERR_BAD_LENGTH = -4,     /* length not a multiple of 4 or not matching the buffer */
    STUN_ERR_BAD_ATTR = -5,       /* attribute overruns the message or has a malformed value */
    STUN_ERR_TOO_MANY_ATTRS = -6, /* more than STUN_MAX_ATTRS attributes */
    STUN_ERR_ORDER = -7,          /* attribute after FINGERPRINT; builder misuse of MI/FP order */
    STUN_ERR_NOT_FOUND = -8,      /* attribute absent */
    STUN_ERR_NO_SPACE = -9,       /* encoder capacity, or the 16-bit length, exceeded */
    STUN_ERR_INTEGRITY = -10,     /* MESSAGE-INTEGRITY(-SHA256) mismatch */
    STUN_ERR_FINGERPRINT = -11,   /* FINGERPRINT mismatch */
    STUN_ERR_BAD_CHANNEL = -12,   /* ChannelData channel number outside 0x4000-0x7FFF */
    STUN_ERR_INVALID = -13,       /* bad argument (NULL, unsupported family, bad code...) */
    STUN_ERR_CRYPTO = -14,        /* OpenSSL failure */
};

/* Framer results (positive). */
enum { STUN_FRAME_STUN = 1, STUN_FRAME_CHANNELDATA = 2 };

/* Static English description of a return code; never NULL. */
const char *stun_strerror(int rc);

/* Standard reason phrase for a STUN error code used by TURN (300, 400, 401, 403, 420, 437,
 * 438, 440, 441, 442, 443, 446, 447, 486, 487, 500, 508); NULL for other codes. */
const char *stun_error_reason(int code);

/* ---- message type ----------------------------------------------------------------------- */

uint16_t stun_type(uint16_t method, uint8_t cls); /* method 12 bits, class 2 bits */
uint16_t stun_type_method(uint16_t type);
uint8_t stun_type_class(uint16_t type);

/* ---- parsing ---------------------------------------------------------------------------- */

typedef struct {
    uint16_t type;
    uint16_t len; /* value length, without padding */
    uint32_t off; /* offset of the value from the start of the message (may exceed 65535) */
} stun_attr;

typedef struct {
    const uint8_t *buf; /* the message (== the parsed buffer) */
    size_t len;         /* 20 + header length */
    uint16_t type;
    uint16_t method;
    uint8_t cls;
    const uint8_t *txid; /* 12 bytes inside buf */
    size_t n_attrs;
    stun_attr attrs[STUN_MAX_ATTRS]; /* in message order; ignored ones after MI not stored */
    /* Offsets of the attribute *headers* from the start of the message; 0 when absent. */
    size_t mi_off, mi256_off, fp_off;
    size_t n_ignored; /* attributes after MESSAGE-INTEGRITY that were ignored (§14.5) */
    /* Unknown comprehension-required attribute types (< 0x8000, not in the known set),
     * deduplicated; n_unknown counts them all, at most STUN_MAX_UNKNOWN are listed. A request
     * with n_unknown > 0 must be answered 420 with UNKNOWN-ATTRIBUTES. */
    size_t n_unknown;
    uint16_t unknown[STUN_MAX_UNKNOWN];
} stun_msg;

/* True if buf looks like a STUN message: >= 20 bytes, top two bits 0, magic cookie. */
bool stun_is_stun(const uint8_t *buf, size_t len);

/* Parses exactly one STUN message occupying all len bytes. Validates the header (top bits,
 * cookie, length multiple of 4 and == len - 20), walks attributes with padding, records
 * MI / MI-SHA256 / FINGERPRINT offsets and checks their value lengths, ignores (§14.5)
 * attributes after MESSAGE-INTEGRITY other than MI-SHA256 and FINGERPRINT, rejects anything
 * after FINGERPRINT. Returns 0 or a negative STUN_ERR_*. out is fully written either way. */
int stun_parse(const uint8_t *buf, size_t len, stun_msg *out);

/* True if type is in the set of attributes this codec knows (comprehension-required ones
 * listed above plus every 0x8000+ type, which never needs a 420). */
bool stun_attr_is_known(uint16_t type);

/* First attribute of type, or NULL. */
const stun_attr *stun_msg_find(const stun_msg *m, uint16_t type);
/* Next attribute of type after prev (NULL prev = first), or NULL. For repeated attributes
 * such as XOR-PEER-ADDRESS in CreatePermission. */
const stun_attr *stun_msg_find_next(const stun_msg *m, uint16_t type, const stun_attr *prev);
/* Pointer to the attribute's value inside the message. */
const uint8_t *stun_attr_value(const stun_msg *m, const stun_attr *a);

/* ---- attribute decoders ------------------------------------------------------------------
 * Per-attribute forms (stun_attr_*) decode one attribute; message forms (stun_get_*) decode the
 * first attribute of the type and return STUN_ERR_NOT_FOUND when there is none. Malformed
 * values give STUN_ERR_BAD_ATTR. */

/* XOR-MAPPED-ADDRESS / XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS (any XOR-encoded address;
 * IPv6 uses cookie + transaction id). Writes a sockaddr_in or sockaddr_in6 into out. */
int stun_attr_xor_address(const stun_msg *m, const stun_attr *a, struct sockaddr_storage *out);
int stun_get_xor_address(const stun_msg *m, uint16_t type, struct sockaddr_storage *out);
/* Plain address attributes: MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS. */
int stun_attr_address(const stun_msg *m, const stun_attr *a, struct sockaddr_storage *out);
int stun_get_address(const stun_msg *m, uint16_t type, struct sockaddr_storage *out);

/* Raw value (pointer into the message + length) of any attribute. */
int stun_get_bytes(const stun_msg *m, uint16_t type, const uint8_t **val, size_t *len);
/* Text attributes, with the RFC 8489 length limits enforced: USERNAME < 513 bytes,
 * REALM / NONCE / SOFTWARE <= 763 bytes. Not NUL-terminated. */
int stun_get_username(const stun_msg *m, const uint8_t **val, size_t *len);
int stun_get_realm(const stun_msg *m, const uint8_t **val, size_t *len);
int stun_get_nonce(const stun_msg *m, const uint8_t **val, size_t *len);
int stun_get_software(const stun_msg *m, const uint8_t **val, size_t *len);
/* DATA: any length (including 0). */
int stun_get_data(const stun_msg *m, const uint8_t **val, size_t *len);
/* USERHASH: exactly 32 bytes. */
int stun_get_userhash(const stun_msg *m, const uint8_t **val);
/* RESERVATION-TOKEN: exactly 8 bytes, as a big-endian integer. */
int stun_get_reservation_token(const stun_msg *m, uint64_t *token);

/* 4-byte big-endian value (LIFETIME, PRIORITY...). */
int stun_get_u32(const stun_msg *m, uint16_t type, uint32_t *v);
/* 8-byte big-endian value (ICE-CONTROLLED / ICE-CONTROLLING tie-breaker). */
int stun_get_u64(const stun_msg *m, uint16_t type, uint64_t *v);
int stun_get_lifetime(const stun_msg *m, uint32_t *seconds);
/* REQUESTED-TRANSPORT: the protocol octet (17 = UDP). The RFFU octets are ignored on receipt
 * as RFC 8656 §18.11 requires; the value must be 4 bytes. */
int stun_get_requested_transport(const stun_msg *m, uint8_t *protocol);
/* REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY: the raw family octet (1 or 2 are the
 * defined values; others are returned for the caller to answer 440 / 400). */
int stun_get_address_family(const stun_msg *m, uint16_t type, uint8_t *family);
/* CHANNEL-NUMBER: the raw 16-bit number (check range with stun_channel_valid). */
int stun_get_channel_number(const stun_msg *m, uint16_t *channel);
/* EVEN-PORT: *reserve = the R bit. */
int stun_get_even_port(const stun_msg *m, bool *reserve);
/* Presence of a flag attribute (DONT-FRAGMENT, USE-CANDIDATE): true if present. */
bool stun_has_attr(const stun_msg *m, uint16_t type);
/* ERROR-CODE: code = class * 100 + number (300..699), reason as UTF-8 bytes. */
int stun_get_error_code(const stun_msg *m, int *code, const uint8_t **reason, size_t *reason_len);
/* UNKNOWN-ATTRIBUTES: copies up to cap types to out, *n = total listed in the attribute. */
int stun_get_unknown_attributes(const stun_msg *m, uint16_t *out, size_t cap, size_t *n);
/* PASSWORD-ALGORITHM: algorithm number and its parameters (pointer into the message). */
int stun_get_password_algorithm(const stun_msg *m, uint16_t *alg, const uint8_t **params,
                                size_t *params_len);
/* PASSWORD-ALGORITHMS: copies up to cap algorithm numbers, *n = total (parameters skipped). */
int stun_get_password_algorithms(const stun_msg *m, uint16_t *algs, size_t cap, size_t *n);

/* ---- integrity -------------------------------------------------------------------------- */

/* MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) with key (short-term: the password;
 * long-term: stun_long_term_key). 0 if valid, STUN_ERR_NOT_FOUND if absent,
 * STUN_ERR_INTEGRITY on mismatch. Constant-time comparison. */
int stun_check_integrity(const stun_msg *m, const uint8_t *key, size_t keylen);
/* MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, §14.6), accepting truncations of 16..32 bytes. */
int stun_check_integrity_sha256(const stun_msg *m, const uint8_t *key, size_t keylen);
/* FINGERPRINT (§14.7): 0 if valid, STUN_ERR_NOT_FOUND, STUN_ERR_FINGERPRINT. */
int stun_check_fingerprint(const stun_msg *m);

/* Long-term key MD5(username ":" realm ":" password) into out[16] (RFC 8489 §9.2.2).
 * Bytes are used as given: no SASLprep / OpaqueString processing is applied, so callers
 * pass already-normalised strings (ASCII passwords are unaffected). 0 or STUN_ERR_CRYPTO. */
int stun_long_term_key(const uint8_t *username, size_t ulen, const uint8_t *realm, size_t rlen,
                       const uint8_t *password, size_t plen, uint8_t out[16]);
/* The SHA-256 password algorithm: SHA-256(username ":" realm ":" password) into out[32]. */
int stun_long_term_key_sha256(const uint8_t *username, size_t ulen, const uint8_t *realm,
                              size_t rlen, const uint8_t *password, size_t plen, uint8_t out[32]);
/* USERHASH value SHA-256(username ":" realm) into out[32] (§14.4). */
int stun_userhash(const uint8_t *username, size_t ulen, const uint8_t *realm, size_t rlen,
                  uint8_t out[32]);
/* CRC-32 (ISO-HDLC, as used by FINGERPRINT before the XOR). */
uint32_t stun_crc32(const uint8_t *buf, size_t len);

/* ---- builder ----------------------------------------------------------------------------
 * Errors are sticky: after the first failure every call returns the same error and
 * stun_builder_finish reports it, so callers may check only the final result. The header
 * length is kept current after every step. */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;       /* bytes written so far */
    int err;          /* first error, 0 if none */
    uint8_t state;    /* internal: 0 open, 1 after MI, 2 after MI-SHA256, 3 after FINGERPRINT */
    uint8_t pad_byte; /* value of padding bytes, 0 by default (RFC 5769 vectors use 0x20) */
} stun_builder;

/* Starts a message of type (stun_type(method, cls)) with the 12-byte transaction id. */
int stun_builder_begin(stun_builder *b, uint8_t *buf, size_t cap, uint16_t type,
                       const uint8_t txid[STUN_TXID_SIZE]);
/* Starts a response of class cls to req (same method and transaction id). */
int stun_builder_begin_response(stun_builder *b, uint8_t *buf, size_t cap, const stun_msg *req,
                                uint8_t cls);
/* Appends an attribute header and padding, returns a pointer to len value bytes for the caller
 * to fill (e.g. DATA read in place), or NULL on error (see b->err). */
uint8_t *stun_builder_reserve(stun_builder *b, uint16_t type, size_t len);
/* Raw attribute. val may be NULL when len is 0. */
int stun_builder_add(stun_builder *b, uint16_t type, const void *val, size_t len);
int stun_builder_add_u32(stun_builder *b, uint16_t type, uint32_t v);
int stun_builder_add_u64(stun_builder *b, uint16_t type, uint64_t v);
/* XOR-encoded address attribute from a sockaddr_in / sockaddr_in6. */
int stun_builder_add_xor_address(stun_builder *b, uint16_t type, const struct sockaddr *sa);
/* Plain (MAPPED-ADDRESS style) address attribute. */
int stun_builder_add_address(stun_builder *b, uint16_t type, const struct sockaddr *sa);
/* ERROR-CODE for code 300..699; reason NULL = stun_error_reason(code) (or "" if none). */
int stun_builder_add_error_code(stun_builder *b, int code, const char *reason);
int stun_builder_add_unknown_attributes(stun_builder *b, const uint16_t *types, size_t n);
/* REQUESTED-TRANSPORT / CHANNEL-NUMBER / *-ADDRESS-FAMILY with zero RFFU. */
int stun_builder_add_requested_transport(stun_builder *b, uint8_t protocol);
int stun_builder_add_channel_number(stun_builder *b, uint16_t channel);
int stun_builder_add_address_family(stun_builder *b, uint16_t type, uint8_t family);
/* MESSAGE-INTEGRITY (HMAC-SHA1). After it only MI-SHA256 and FINGERPRINT may be added. */
int stun_builder_add_integrity(stun_builder *b, const uint8_t *key, size_t keylen);
/* MESSAGE-INTEGRITY-SHA256 (full 32 bytes). After it only FINGERPRINT may be added. */
int stun_builder_add_integrity_sha256(stun_builder *b, const uint8_t *key, size_t keylen);
/* FINGERPRINT: the last attribute. */
int stun_builder_add_fingerprint(stun_builder *b);
/* Total message length (> 0), or the first error. */
int stun_builder_finish(const stun_builder *b);

/* ---- ChannelData (RFC 8656 §12.4) ----------------------------------------------------- */

/* Channel numbers: RFC 8656 §12 has clients pick 0x4000-0x4FFF and reserves 0x5000-0x7FFF
 * for DTLS-SRTP multiplexing, which a TURN server port never carries. RFC 5766 clients
 * (coturn's turnutils_uclient among them) still pick from 0x4000-0x7FFF, so the server
 * accepts the whole RFC 5766 range for interoperability; 0x8000+ stays invalid.
 * True if the first byte is 0x40..0x7F (a channel number 0x4000-0x7FFF). */
bool stun_is_channeldata(const uint8_t *buf, size_t len);
/* True for channel numbers 0x4000-0x7FFF (see above). */
bool stun_channel_valid(uint16_t channel);
/* Parses a ChannelData message: channel, data pointer into buf, data length. len must cover
 * 4 + data length, plus at most 3 padding bytes (padding is optional over UDP). */
int stun_channeldata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                           size_t *data_len);
/* Writes the 4-byte header; returns 4. */
int stun_channeldata_header(uint8_t *buf, size_t cap, uint16_t channel, size_t data_len);
/* Writes header + data (data may already sit at buf + 4, or overlap) + zero padding to a
 * multiple of 4 if pad (streams). Returns the total length. */
int stun_channeldata_build(uint8_t *buf, size_t cap, uint16_t channel, const uint8_t *data,
                           size_t data_len, bool pad);

/* ---- stream framer (TCP/TLS, RFC 8656 §12.5) ------------------------------------------- */

/* Given the bytes buffered so far, reports the first frame:
 *   STUN_FRAME_STUN or STUN_FRAME_CHANNELDATA: *frame_len = message length (20 + L, or 4 + L),
 *     *consumed = bytes to drop from the stream (ChannelData padded to a multiple of 4);
 *   STUN_ERR_NEED_MORE: incomplete; *consumed = total bytes needed if already known, else the
 *     header bytes needed to learn it; *frame_len = 0;
 *   STUN_ERR_NOT_STUN / STUN_ERR_BAD_CHANNEL / STUN_ERR_BAD_LENGTH: fatal, close the stream.
 * Any prefix of a valid stream gives NEED_MORE, never an error. */
int stun_frame_next(const uint8_t *buf, size_t len, size_t *frame_len, size_t *consumed);

#endif
