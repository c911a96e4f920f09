#include "tk_test.h"
#include "turnkey/cred.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define KEY_A "0123456789abcdef0123456789abcdef"
#define KEY_B "fedcba9876543210fedcba9876543210"
#define NOW 1700000000LL

/* Fixed salt for the deterministic vectors: f0 e1 d2 c3 b4 a5 96 87. */
static const uint8_t SALT_X[CRED_SALT_LEN] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87};

/* Fixed in-memory key table for cred_verify. */
typedef struct table {
    uint8_t secret_a[CRED_SECRET_LEN];
    uint8_t secret_b[CRED_SECRET_LEN];
    const char *revoked; /* one revoked username, or NULL */
    int revoked_calls;
} table;

static int tbl_secret(void *ctx, const char *key_id, uint8_t secret[CRED_SECRET_LEN])
{
    table *t = ctx;
    if (strcmp(key_id, KEY_A) == 0) {
        memcpy(secret, t->secret_a, CRED_SECRET_LEN);
        return 0;
    }
    if (strcmp(key_id, KEY_B) == 0) {
        memcpy(secret, t->secret_b, CRED_SECRET_LEN);
        return 0;
    }
    return -1;
}

static bool tbl_revoked(void *ctx, const char *key_id, const char *username, size_t len)
{
    table *t = ctx;
    (void)key_id;
    t->revoked_calls++;
    return t->revoked && strlen(t->revoked) == len && memcmp(t->revoked, username, len) == 0;
}

static void tbl_init(table *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < CRED_SECRET_LEN; i++) {
        t->secret_a[i] = (uint8_t)i; /* 000102…1f, matches the shell-computed vectors */
        t->secret_b[i] = (uint8_t)(0xa5 ^ (i * 7));
    }
}

static cred_lookup lookup_of(table *t)
{
    cred_lookup lk = {tbl_secret, tbl_revoked, t};
    return lk;
}

static void t_roundtrip_no_cid(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], p2[CRED_PASSWORD_MAX];
    cred_info info;

    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 3600, NULL, u, p), CRED_OK);
    CHECK(strlen(u) <= 255);
    CHECK(strlen(p) > 0 && strlen(p) < CRED_PASSWORD_MAX);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, p2), CRED_OK);
    CHECK_STR(p2, p);
    CHECK_STR(info.key_id, KEY_A);
    CHECK_INT(info.expires, NOW + 3600);
    CHECK_STR(info.cid, "");
    CHECK_INT(t.revoked_calls, 1);

    /* The parsed salt re-mints the same credential. */
    char u2[CRED_USERNAME_MAX], p3[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, info.expires, NULL, info.salt, u2, p3), CRED_OK);
    CHECK_STR(u2, u);
    CHECK_STR(p3, p);

    /* "" is the same as NULL. */
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, info.expires, "", info.salt, u2, p3), CRED_OK);
    CHECK_STR(u2, u);
    CHECK_STR(p3, p);
}

static void t_roundtrip_cid(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], p2[CRED_PASSWORD_MAX];
    cred_info info;
    const char *cid = "user:42.room_7-x";

    CHECK_INT(cred_mint(KEY_B, t.secret_b, NOW + 60, cid, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, p2), CRED_OK);
    CHECK_STR(p2, p);
    CHECK_STR(info.key_id, KEY_B);
    CHECK_INT(info.expires, NOW + 60);
    CHECK_STR(info.cid, cid);
    char u2[CRED_USERNAME_MAX], p3[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint_salted(KEY_B, t.secret_b, info.expires, info.cid, info.salt, u2, p3),
              CRED_OK);
    CHECK_STR(u2, u);
    CHECK_STR(p3, p);

    /* Maximal username: 19-digit expiry + 64-char cid stays within 255 chars (167). */
    char big[CRED_CID_MAX + 1];
    memset(big, 'Z', CRED_CID_MAX);
    big[CRED_CID_MAX] = '\0';
    CHECK_INT(cred_mint(KEY_B, t.secret_b, INT64_MAX, big, u, p), CRED_OK);
    CHECK_INT(strlen(u), 19 + 1 + 32 + 1 + 16 + 1 + 32 + 1 + 64);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, p2), CRED_OK);
    CHECK_INT(info.expires, INT64_MAX);
    CHECK_STR(info.cid, big);
}

/* Vectors computed independently with `openssl dgst -sha256 -mac HMAC -macopt hexkey:…`
 * (see docs/credentials.md), secret = 00 01 … 1f, salt = f0 e1 d2 c3 b4 a5 96 87. */
static void t_known_vector(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], pw[CRED_PASSWORD_MAX];
    cred_info info;

    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, 1700000000, "room-42", SALT_X, u, p), CRED_OK);
    CHECK_STR(u, "1700000000:0123456789abcdef0123456789abcdef:f0e1d2c3b4a59687:"
                 "bdabe6ca60cf5fbb94e42011718ada0d:room-42");
    CHECK_STR(p, "ZuEwKKBp6ZHGSLn817uF5vSiosMHP4QGzdeMOfnYl6Q=");
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW - 1, &info, pw), CRED_OK);
    CHECK_STR(pw, p);
    CHECK(memcmp(info.salt, SALT_X, CRED_SALT_LEN) == 0);
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, 1700000000, NULL, SALT_X, u, p), CRED_OK);
    CHECK_STR(u, "1700000000:0123456789abcdef0123456789abcdef:f0e1d2c3b4a59687:"
                 "17844c39d54aab378cc0f1a520db10e0");
    CHECK_STR(p, "q1G4sOqPKSAgFnZH/TGOYimiS4J/SH1yMYmVq5oUFvY=");

    /* The v1 username of the same inputs (no salt, tag label v1) is no longer accepted. */
    const char *v1 = "1700000000:0123456789abcdef0123456789abcdef:517cb639311f0ce924625add0ef84af4";
    CHECK_INT(cred_parse(v1, strlen(v1), &info), CRED_E_MALFORMED);
    CHECK_INT(cred_verify(&lk, v1, strlen(v1), NOW - 1, NULL, NULL), CRED_E_MALFORMED);

    /* NULL salt. */
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, 1700000000, NULL, NULL, u, p), CRED_E_MALFORMED);
    CHECK_STR(u, "");
    CHECK_STR(p, "");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The bug this salt fixes: identical inputs in the same second used to mint byte-identical
 * credentials (shared relay quota, revoking one revoked all). 1000 mints → 1000 distinct. */
#define N_MINTS 1000
static void t_mints_distinct(void)
{
    static char us[N_MINTS][CRED_USERNAME_MAX], ps[N_MINTS][CRED_PASSWORD_MAX];
    const char *cids[] = {NULL, "room-42"};
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);

    for (size_t c = 0; c < 2; c++) {
        for (int i = 0; i < N_MINTS; i++) {
            cred_info info;
            char pw[CRED_PASSWORD_MAX];
            CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 600, cids[c], us[i], ps[i]), CRED_OK);
            CHECK_INT(cred_verify(&lk, us[i], strlen(us[i]), NOW, &info, pw), CRED_OK);
            CHECK_STR(pw, ps[i]);
            CHECK_INT(info.expires, NOW + 600);
            CHECK_STR(info.cid, cids[c] ? cids[c] : "");
        }
        qsort(us, N_MINTS, sizeof us[0], cmp_str);
        qsort(ps, N_MINTS, sizeof ps[0], cmp_str);
        int dup_u = 0, dup_p = 0;
        for (int i = 1; i < N_MINTS; i++) {
            dup_u += strcmp(us[i - 1], us[i]) == 0;
            dup_p += strcmp(ps[i - 1], ps[i]) == 0;
        }
        CHECK_INT(dup_u, 0);
        CHECK_INT(dup_p, 0);
    }

    /* Revoking one of two same-input credentials leaves the other valid. */
    char u1[CRED_USERNAME_MAX], u2[CRED_USERNAME_MAX], p1[CRED_PASSWORD_MAX], p2[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 600, "same", u1, p1), CRED_OK);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 600, "same", u2, p2), CRED_OK);
    t.revoked = u1;
    CHECK_INT(cred_verify(&lk, u1, strlen(u1), NOW, NULL, NULL), CRED_E_REVOKED);
    CHECK_INT(cred_verify(&lk, u2, strlen(u2), NOW, NULL, NULL), CRED_OK);

    /* cred_mint_salted: the salt alone decides; same salt → same, other salt → different. */
    uint8_t s2[CRED_SALT_LEN];
    memcpy(s2, SALT_X, sizeof s2);
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 600, "same", SALT_X, u1, p1), CRED_OK);
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 600, "same", s2, u2, p2), CRED_OK);
    CHECK_STR(u1, u2);
    CHECK_STR(p1, p2);
    s2[CRED_SALT_LEN - 1] ^= 1;
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 600, "same", s2, u2, p2), CRED_OK);
    CHECK(strcmp(u1, u2) != 0);
    CHECK(strcmp(p1, p2) != 0);
    /* The tag covers the salt: u1's tag with u2's salt does not verify. */
    char *salt1 = strchr(strchr(u1, ':') + 1, ':') + 1;
    char *salt2 = strchr(strchr(u2, ':') + 1, ':') + 1;
    CHECK(strncmp(salt1, salt2, CRED_SALT_HEX_LEN) != 0);
    memcpy(salt1, salt2, CRED_SALT_HEX_LEN);
    CHECK_INT(cred_check(u1, strlen(u1), t.secret_a, NULL, NULL), CRED_E_BAD_TAG);
}

static bool url_safe(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c > 0x7e || c == '/' || c == '?' || c == '#' || c == '%')
            return false;
    }
    return true;
}

static void t_username_charset(void)
{
    table t;
    tbl_init(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, "a.b:c_d-E9", u, p), CRED_OK);
    CHECK(url_safe(u));
    CHECK_INT(cred_mint(KEY_A, t.secret_a, 1, NULL, u, p), CRED_OK);
    CHECK(url_safe(u));
}

/* Every byte of a minted username, replaced by several other bytes, never verifies. */
static void t_every_byte_altered(void)
{
    static const unsigned char repl[] = {'0', '1', '9', 'a', 'f', 'g', 'A',  'F',  'Z',  ':',
                                         '.', '-', '_', '/', ' ', '%', 0x00, 0x7f, 0x80, 0xff};
    const char *cids[] = {NULL, "cid:with.dots-and_ok"};
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);

    for (size_t c = 0; c < sizeof cids / sizeof cids[0]; c++) {
        char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
        CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 1000, cids[c], u, p), CRED_OK);
        size_t len = strlen(u);
        int tried = 0;
        for (size_t i = 0; i < len; i++) {
            for (size_t r = 0; r < sizeof repl; r++) {
                if ((unsigned char)u[i] == repl[r])
                    continue;
                char m[CRED_USERNAME_MAX], pw[CRED_PASSWORD_MAX];
                cred_info info;
                memcpy(m, u, len + 1);
                m[i] = (char)repl[r];
                int rc = cred_verify(&lk, m, len, NOW, &info, pw);
                if (rc == CRED_OK)
                    fprintf(stderr, "  accepted altered username at %zu: %.*s\n", i, (int)len, m);
                /* Altering a key_id byte may land on an unknown key; anything but OK is a reject,
                 * but outside the key id only MALFORMED or BAD_TAG are possible. */
                CHECK(rc != CRED_OK);
                CHECK(rc == CRED_E_MALFORMED || rc == CRED_E_BAD_TAG || rc == CRED_E_UNKNOWN_KEY);
                CHECK_STR(pw, "");
                CHECK_STR(info.key_id, "");
                tried++;
            }
            /* Also: each single-bit flip. */
            for (int b = 0; b < 8; b++) {
                char m[CRED_USERNAME_MAX];
                memcpy(m, u, len + 1);
                m[i] = (char)((unsigned char)m[i] ^ (1u << b));
                CHECK(cred_verify(&lk, m, len, NOW, NULL, NULL) != CRED_OK);
                CHECK(cred_check(m, len, t.secret_a, NULL, NULL) != CRED_OK);
            }
        }
        CHECK(tried > (int)len * 10);
    }
}

/* With the key-id known and fixed, altering the other fields gives exactly MALFORMED/BAD_TAG
 * under cred_check (no key lookup involved). */
static void t_every_byte_altered_check(void)
{
    static const unsigned char repl[] = {'0', '7', 'a', 'e', 'B', ':', '.', 0x00, 0xff};
    table t;
    tbl_init(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 1000, "x.y", u, p), CRED_OK);
    size_t len = strlen(u);
    for (size_t i = 0; i < len; i++) {
        for (size_t r = 0; r < sizeof repl; r++) {
            if ((unsigned char)u[i] == repl[r])
                continue;
            char m[CRED_USERNAME_MAX];
            memcpy(m, u, len + 1);
            m[i] = (char)repl[r];
            int rc = cred_check(m, len, t.secret_a, NULL, NULL);
            CHECK(rc == CRED_E_MALFORMED || rc == CRED_E_BAD_TAG);
        }
    }
}

static void t_truncation_extension(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    const char *cids[] = {NULL, "abc"};
    for (size_t c = 0; c < 2; c++) {
        char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
        CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 1000, cids[c], u, p), CRED_OK);
        size_t len = strlen(u);
        for (size_t l = 0; l < len; l++)
            CHECK(cred_verify(&lk, u, l, NOW, NULL, NULL) != CRED_OK);
        /* Dropping a prefix. */
        for (size_t s = 1; s < len; s++)
            CHECK(cred_verify(&lk, u + s, len - s, NOW, NULL, NULL) != CRED_OK);
        /* Extensions: appended bytes (including ones that keep a valid cid shape). */
        const char *ext[] = {"x", ":", ":x", "0", "\n", " ", "\0", ":abc", "a"};
        for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
            char m[CRED_USERNAME_MAX + 8];
            size_t el = strlen(ext[e]) ? strlen(ext[e]) : 1;
            memcpy(m, u, len);
            memcpy(m + len, ext[e], el);
            CHECK(cred_verify(&lk, m, len + el, NOW, NULL, NULL) != CRED_OK);
        }
        /* Prefixed bytes. */
        char m[CRED_USERNAME_MAX + 2];
        m[0] = '1';
        memcpy(m + 1, u, len);
        CHECK(cred_verify(&lk, m, len + 1, NOW, NULL, NULL) != CRED_OK);
        m[0] = '0';
        CHECK_INT(cred_parse(m, len + 1, NULL), CRED_E_MALFORMED);
    }
}

static void t_wrong_secret(void)
{
    table t;
    tbl_init(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], pw[CRED_PASSWORD_MAX];
    cred_info info;
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 10, "c", u, p), CRED_OK);
    CHECK_INT(cred_check(u, strlen(u), t.secret_b, &info, pw), CRED_E_BAD_TAG);
    CHECK_STR(pw, "");
    CHECK_INT(cred_check(u, strlen(u), t.secret_a, &info, pw), CRED_OK);
    CHECK_STR(pw, p);

    /* Key table maps KEY_A to the wrong secret → BAD_TAG via verify. */
    memcpy(t.secret_a, t.secret_b, CRED_SECRET_LEN);
    cred_lookup lk = lookup_of(&t);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, pw), CRED_E_BAD_TAG);
    CHECK_STR(pw, "");
    CHECK_STR(info.key_id, "");

    /* A username minted by key B presented with key A's id swapped in → BAD_TAG. */
    tbl_init(&t);
    CHECK_INT(cred_mint(KEY_B, t.secret_b, NOW + 10, NULL, u, p), CRED_OK);
    memcpy(strchr(u, ':') + 1, KEY_A, 32);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, NULL, NULL), CRED_E_BAD_TAG);
}

static void t_expiry(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], pw[CRED_PASSWORD_MAX];
    cred_info info;

    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, NULL, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, pw), CRED_E_EXPIRED);
    CHECK_STR(pw, "");
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW + 100, NULL, NULL), CRED_E_EXPIRED);
    /* cred_check ignores expiry. */
    CHECK_INT(cred_check(u, strlen(u), t.secret_a, NULL, NULL), CRED_OK);

    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW - 1, NULL, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, NULL, NULL), CRED_E_EXPIRED);

    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 1, NULL, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, pw), CRED_OK);
    CHECK_STR(pw, p);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW + 1, NULL, NULL), CRED_E_EXPIRED);

    /* Tag is checked before expiry: a forged expired username is BAD_TAG, not EXPIRED. */
    CHECK_INT(cred_mint(KEY_A, t.secret_b, NOW - 5, NULL, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, NULL, NULL), CRED_E_BAD_TAG);

    /* Bad expiry at mint. */
    CHECK_INT(cred_mint(KEY_A, t.secret_a, 0, NULL, u, p), CRED_E_MALFORMED);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, -5, NULL, u, p), CRED_E_MALFORMED);
    CHECK_STR(u, "");
    CHECK_STR(p, "");
}

static void t_revoked(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], u2[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], pw[CRED_PASSWORD_MAX];
    cred_info info;

    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 100, "r", u, p), CRED_OK);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 100, "s", u2, p), CRED_OK);
    t.revoked = u;
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, pw), CRED_E_REVOKED);
    CHECK_STR(pw, "");
    CHECK_INT(cred_verify(&lk, u2, strlen(u2), NOW, &info, pw), CRED_OK);
    /* Expired beats revoked (expiry is checked first). */
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW + 100, NULL, NULL), CRED_E_EXPIRED);
    /* No is_revoked callback: fine. */
    lk.is_revoked = NULL;
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, NULL, NULL), CRED_OK);
}

static void t_unknown_key(void)
{
    table t;
    tbl_init(&t);
    cred_lookup lk = lookup_of(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX], pw[CRED_PASSWORD_MAX];
    cred_info info;
    const char *other = "00000000000000000000000000000000";
    CHECK_INT(cred_mint(other, t.secret_a, NOW + 100, NULL, u, p), CRED_OK);
    CHECK_INT(cred_verify(&lk, u, strlen(u), NOW, &info, pw), CRED_E_UNKNOWN_KEY);
    CHECK_STR(pw, "");
    CHECK_INT(t.revoked_calls, 0);
    /* Malformed beats unknown key. */
    CHECK_INT(cred_verify(&lk, "junk", 4, NOW, &info, pw), CRED_E_MALFORMED);
    CHECK_INT(cred_verify(NULL, u, strlen(u), NOW, &info, pw), CRED_E_MALFORMED);
}

static void t_cid_rules(void)
{
    char s[CRED_CID_MAX + 2];
    memset(s, 'a', sizeof s);
    CHECK(cred_cid_valid(s, 1));
    CHECK(cred_cid_valid(s, 64));
    CHECK(!cred_cid_valid(s, 65));
    CHECK(!cred_cid_valid("", 0));
    CHECK(!cred_cid_valid(NULL, 3));
    CHECK(cred_cid_valid("AZaz09._:-", 10));
    const char bad[] = " /?#%@!+=~\"'\\\t\n,;&$*()[]{}<>|^`";
    for (size_t i = 0; i < sizeof bad - 1; i++) {
        char c[4] = {'a', bad[i], 'b', 0};
        CHECK(!cred_cid_valid(c, 3));
    }
    CHECK(!cred_cid_valid("a\0b", 3));
    CHECK(!cred_cid_valid("\xc3\xa9", 2));

    table t;
    tbl_init(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
    s[65] = '\0'; /* 65 chars */
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, s, u, p), CRED_E_MALFORMED);
    s[64] = '\0';
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, s, u, p), CRED_OK);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, "a b", u, p), CRED_E_MALFORMED);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW, "a/b", u, p), CRED_E_MALFORMED);
    /* Bad key ids. */
    CHECK_INT(cred_mint("0123456789ABCDEF0123456789abcdef", t.secret_a, NOW, NULL, u, p),
              CRED_E_MALFORMED);
    CHECK_INT(cred_mint("0123456789abcdef0123456789abcde", t.secret_a, NOW, NULL, u, p),
              CRED_E_MALFORMED);
    CHECK_INT(cred_mint(KEY_A "0", t.secret_a, NOW, NULL, u, p), CRED_E_MALFORMED);
    CHECK_INT(cred_mint(NULL, t.secret_a, NOW, NULL, u, p), CRED_E_MALFORMED);
}

static void t_parse_strict(void)
{
    cred_info info;
    const char *tag = "00112233445566778899aabbccddeeff";
    const char *salt = "8899aabbccddeeff";
    const uint8_t salt_bytes[CRED_SALT_LEN] = {0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    char buf[512];
#define P(s) cred_parse((s), strlen(s), &info)
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_OK);
    CHECK_INT(info.expires, 1700000000);
    CHECK_STR(info.key_id, KEY_A);
    CHECK_STR(info.cid, "");
    CHECK(memcmp(info.salt, salt_bytes, CRED_SALT_LEN) == 0);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:a:b:c", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_OK);
    CHECK_STR(info.cid, "a:b:c");
    snprintf(buf, sizeof buf, "9223372036854775807:%s:%s:%s", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_OK);
    CHECK_INT(info.expires, INT64_MAX);

    const char *bad_expiry[] = {
        "",     "0",     "01700000000",         "+1700000000",         "-1700000000",
        " 170", "17x00", "9223372036854775808", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_expiry / sizeof bad_expiry[0]; i++) {
        snprintf(buf, sizeof buf, "%s:%s:%s:%s", bad_expiry[i], KEY_A, salt, tag);
        CHECK_INT(P(buf), CRED_E_MALFORMED);
        CHECK_STR(info.key_id, "");
    }
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", "0123456789ABCDEF0123456789abcdef", salt, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", KEY_A, salt,
             "00112233445566778899AABBCCDDEEFF");
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:", KEY_A, salt, tag); /* empty cid after ':' */
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%sx", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s;%s:%s", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s;%s", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000::%s:%s:%s", KEY_A, salt, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:%065d", KEY_A, salt, tag, 0); /* 65-char cid */
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:%064d", KEY_A, salt, tag, 0); /* 64-char cid */
    CHECK_INT(P(buf), CRED_OK);
    /* The salt: exactly 16 lowercase hex chars, between key-id and tag. */
    const char *bad_salt[] = {"",
                              "8899aabbccddeef",   /* 15 */
                              "8899aabbccddeeff0", /* 17 */
                              "8899AABBCCDDEEFF",  /* uppercase */
                              "8899aabbccddeefF",  /* one uppercase */
                              "8899aabbccddeefg",  /* not hex */
                              "8899aabb:cddeeff",  /* ':' inside */
                              "8899aabbccdd eef"};
    for (size_t i = 0; i < sizeof bad_salt / sizeof bad_salt[0]; i++) {
        snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", KEY_A, bad_salt[i], tag);
        CHECK_INT(P(buf), CRED_E_MALFORMED);
        snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:cid", KEY_A, bad_salt[i], tag);
        CHECK_INT(P(buf), CRED_E_MALFORMED);
        CHECK_STR(info.key_id, "");
    }
    /* The v1 layout (no salt) is malformed, with or without a cid that looks like a tag. */
    snprintf(buf, sizeof buf, "1700000000:%s:%s", KEY_A, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    snprintf(buf, sizeof buf, "1700000000:%s:%s:room-42", KEY_A, tag);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    /* Salt and tag swapped. */
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", KEY_A, tag, salt);
    CHECK_INT(P(buf), CRED_E_MALFORMED);
    CHECK_INT(cred_parse(NULL, 0, &info), CRED_E_MALFORMED);
    CHECK_INT(cred_parse("", 0, &info), CRED_E_MALFORMED);
    /* Embedded NUL: len counts, NUL is not a valid cid char. */
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s:ab", KEY_A, salt, tag);
    size_t l = strlen(buf);
    buf[l - 1] = '\0';
    CHECK_INT(cred_parse(buf, l, &info), CRED_E_MALFORMED);
    /* Embedded NUL in the salt. */
    snprintf(buf, sizeof buf, "1700000000:%s:%s:%s", KEY_A, salt, tag);
    l = strlen(buf);
    buf[11 + 32 + 1 + 3] = '\0';
    CHECK_INT(cred_parse(buf, l, &info), CRED_E_MALFORMED);
#undef P
}

static void t_password_properties(void)
{
    table t;
    tbl_init(&t);
    char u1[CRED_USERNAME_MAX], p1[CRED_PASSWORD_MAX], u2[CRED_USERNAME_MAX], p2[CRED_PASSWORD_MAX];
    /* Deterministic for a given salt; cred_mint (random salt) differs. */
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 5, "x", SALT_X, u1, p1), CRED_OK);
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 5, "x", SALT_X, u2, p2), CRED_OK);
    CHECK_STR(u1, u2);
    CHECK_STR(p1, p2);
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 5, "x", u2, p2), CRED_OK);
    CHECK(strcmp(u1, u2) != 0);
    CHECK(strcmp(p1, p2) != 0);
    /* Same fields and salt, different key id + secret → different username and password. */
    CHECK_INT(cred_mint_salted(KEY_B, t.secret_b, NOW + 5, "x", SALT_X, u2, p2), CRED_OK);
    CHECK(strcmp(u1, u2) != 0);
    CHECK(strcmp(p1, p2) != 0);
    /* Same key id, different secret → different tag and password. */
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_b, NOW + 5, "x", SALT_X, u2, p2), CRED_OK);
    CHECK(strcmp(u1, u2) != 0);
    CHECK(strcmp(p1, p2) != 0);
    /* Different expiry / cid → different password. */
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 6, "x", SALT_X, u2, p2), CRED_OK);
    CHECK(strcmp(p1, p2) != 0);
    CHECK_INT(cred_mint_salted(KEY_A, t.secret_a, NOW + 5, "y", SALT_X, u2, p2), CRED_OK);
    CHECK(strcmp(p1, p2) != 0);
    /* Password is not the tag (different label): 44-char base64 of a 32-byte MAC. */
    CHECK_INT(strlen(p1), 44);
    CHECK(p1[43] == '=');
    CHECK(strstr(u1, p1) == NULL);
}

/* Constant-time comparison: tags differing only in the first or only in the last byte both
 * fail; and the implementation compares the MAC with CRYPTO_memcmp (checked in the source). */
static void t_tag_compare(void)
{
    table t;
    tbl_init(&t);
    char u[CRED_USERNAME_MAX], p[CRED_PASSWORD_MAX];
    CHECK_INT(cred_mint(KEY_A, t.secret_a, NOW + 100, NULL, u, p), CRED_OK);
    size_t len = strlen(u);
    size_t tag_start = len - CRED_TAG_HEX_LEN;
    CHECK(u[tag_start - 1] == ':');
    const size_t pos[] = {tag_start, tag_start + 1, len - 2, len - 1}; /* first byte, last byte */
    for (size_t i = 0; i < 4; i++) {
        char m[CRED_USERNAME_MAX];
        memcpy(m, u, len + 1);
        m[pos[i]] = m[pos[i]] == '0' ? '1' : '0';
        CHECK_INT(cred_check(m, len, t.secret_a, NULL, NULL), CRED_E_BAD_TAG);
    }

    /* By construction: the tag comparison in the source goes through CRYPTO_memcmp. */
    const char *paths[] = {"src/cred/cred.c", "../src/cred/cred.c", "../../src/cred/cred.c"};
    FILE *f = NULL;
    for (size_t i = 0; i < 3 && !f; i++)
        f = fopen(paths[i], "r");
    CHECK(f != NULL);
    static char src[1 << 16];
    size_t n = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[n] = '\0';
    CHECK(strstr(src, "CRYPTO_memcmp(given, want, TAG_LEN)") != NULL);
    CHECK(strstr(src, " memcmp(given") == NULL && strstr(src, "strcmp(tag") == NULL);
}

/* coturn REST vectors computed with:
 *   printf '%s' '1700000000:alice' | openssl dgst -sha1 -hmac 'north-relay-shared-secret' -binary | base64
 *   printf '%s' '1700000000'       | openssl dgst -sha1 -hmac 'north-relay-shared-secret' -binary | base64 */
static void t_coturn(void)
{
    const char *secret = "north-relay-shared-secret";
    char p[CRED_PASSWORD_MAX];
    CHECK_INT(
        cred_coturn_password((const uint8_t *)secret, strlen(secret), "1700000000:alice", 16, p),
        CRED_OK);
    CHECK_STR(p, "QiLJOB0TMQz63IW0FsJ/Vx8qOVE=");
    CHECK_INT(cred_coturn_password((const uint8_t *)secret, strlen(secret), "1700000000", 10, p),
              CRED_OK);
    CHECK_STR(p, "MJX9GuR8VDtalyPeL/6ZcP+mbiE=");
    CHECK_INT(
        cred_coturn_password((const uint8_t *)secret, strlen(secret) - 1, "1700000000", 10, p),
        CRED_OK);
    CHECK(strcmp(p, "MJX9GuR8VDtalyPeL/6ZcP+mbiE=") != 0);
    CHECK_INT(cred_coturn_password(NULL, 0, "", 0, p), CRED_OK);
    CHECK_INT(strlen(p), 28);
    CHECK_INT(cred_coturn_password(NULL, 4, "x", 1, p), CRED_E_MALFORMED);

    CHECK_INT(cred_coturn_expiry("1700000000:alice", 16), 1700000000);
    CHECK_INT(cred_coturn_expiry("1700000000", 10), 1700000000);
    CHECK_INT(cred_coturn_expiry("1700000000:a:b", 14), 1700000000);
    CHECK_INT(cred_coturn_expiry("1700000000:alice", 4), 1700);
    CHECK_INT(cred_coturn_expiry("9223372036854775807", 19), INT64_MAX);
    CHECK_INT(cred_coturn_expiry("9223372036854775808", 19), -1);
    CHECK_INT(cred_coturn_expiry("alice:1700000000", 16), -1);
    CHECK_INT(cred_coturn_expiry(":alice", 6), -1);
    CHECK_INT(cred_coturn_expiry("", 0), -1);
    CHECK_INT(cred_coturn_expiry("-17", 3), -1);
    CHECK_INT(cred_coturn_expiry("+17", 3), -1);
    CHECK_INT(cred_coturn_expiry("017:a", 5), -1);
    CHECK_INT(cred_coturn_expiry("17 :a", 5), -1);
    CHECK_INT(cred_coturn_expiry(NULL, 0), -1);
}

static void t_strerror(void)
{
    const int codes[] = {CRED_OK,        CRED_E_MALFORMED, CRED_E_UNKNOWN_KEY,
                         CRED_E_BAD_TAG, CRED_E_EXPIRED,   CRED_E_REVOKED};
    for (size_t i = 0; i < 6; i++) {
        CHECK(cred_strerror(codes[i]) != NULL);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(cred_strerror(codes[i]), cred_strerror(codes[j])) != 0);
    }
    CHECK(cred_strerror(12345) != NULL);
}

int main(void)
{
    TK_RUN(t_roundtrip_no_cid);
    TK_RUN(t_roundtrip_cid);
    TK_RUN(t_known_vector);
    TK_RUN(t_mints_distinct);
    TK_RUN(t_username_charset);
    TK_RUN(t_every_byte_altered);
    TK_RUN(t_every_byte_altered_check);
    TK_RUN(t_truncation_extension);
    TK_RUN(t_wrong_secret);
    TK_RUN(t_expiry);
    TK_RUN(t_revoked);
    TK_RUN(t_unknown_key);
    TK_RUN(t_cid_rules);
    TK_RUN(t_parse_strict);
    TK_RUN(t_password_properties);
    TK_RUN(t_tag_compare);
    TK_RUN(t_coturn);
    TK_RUN(t_strerror);
    return tk_test_summary();
}
