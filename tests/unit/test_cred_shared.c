/* The shared-secret username parser and passwords (issue 15). Vectors: openssl dgst
 * -sha1/-sha256 -hmac north-relay-shared-secret over "1700000000:alice" | base64. */
#include <string.h>

#include "tk_test.h"
#include "turnkey/cred.h"

#define KID "0123456789abcdef0123456789abcdef"

static int parse(const char *u, cred_shared_name *nm)
{
    return cred_shared_parse(u, strlen(u), nm);
}

static void t_grammar(void)
{
    cred_shared_name nm;
    CHECK_INT(parse("1700000000", &nm), CRED_OK);
    CHECK_INT(nm.expires, 1700000000);
    CHECK(nm.user == NULL && nm.user_len == 0 && nm.key_id[0] == '\0');
    CHECK_INT(parse("1700000000:alice", &nm), CRED_OK);
    CHECK_INT(nm.user_len, 5);
    CHECK(memcmp(nm.user, "alice", 5) == 0);
    CHECK_STR(nm.key_id, "");
    /* Synapse's user ids carry ':' and '@'; the key named at the end */
    CHECK_INT(parse("1700000000:@alice:example.org~" KID, &nm), CRED_OK);
    CHECK_STR(nm.key_id, KID);
    CHECK_INT(nm.user_len, strlen("@alice:example.org~" KID));
    CHECK_INT(parse("1700000000:~" KID, &nm), CRED_OK);
    CHECK_STR(nm.key_id, KID);
    /* not a key name: uppercase, short, no mark */
    CHECK_INT(parse("1700000000:a~0123456789ABCDEF0123456789abcdef", &nm), CRED_OK);
    CHECK_STR(nm.key_id, "");
    CHECK_INT(parse("1700000000:a~123456789abcdef0123456789abcdef", &nm), CRED_OK);
    CHECK_STR(nm.key_id, "");
    CHECK_INT(parse("1700000000:a" KID, &nm), CRED_OK);
    CHECK_STR(nm.key_id, "");
    CHECK_INT(parse("1700000000:", &nm), CRED_OK); /* empty user: coturn accepts it too */
    CHECK_INT(nm.user_len, 0);
}

static void t_malformed(void)
{
    cred_shared_name nm;
    const char *bad[] = {"",
                         ":alice",
                         "0:alice",
                         "01700000000:a",
                         "-1700000000",
                         "+17:a",
                         "17x:a",
                         "9223372036854775808:a",
                         "1700000000:a\tb",
                         "1700000000:a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(parse(bad[i], &nm), CRED_E_MALFORMED);
        CHECK(nm.expires == 0 && nm.user == NULL);
    }
    CHECK_INT(cred_shared_parse("1700000000:a\0b", 14, &nm), CRED_E_MALFORMED);
    char big[CRED_USERNAME_MAX + 1];
    memset(big, 'a', sizeof big);
    memcpy(big, "1700000000:", 11);
    CHECK_INT(cred_shared_parse(big, CRED_USERNAME_MAX - 1, &nm), CRED_OK);
    CHECK_INT(cred_shared_parse(big, CRED_USERNAME_MAX, &nm), CRED_E_MALFORMED);
    CHECK_INT(cred_shared_parse(NULL, 3, &nm), CRED_E_MALFORMED);
}

static void t_passwords(void)
{
    const char *s = "north-relay-shared-secret", *u = "1700000000:alice";
    char pw[CRED_PASSWORD_MAX];
    CHECK_INT(cred_shared_password(false, s, strlen(s), u, strlen(u), pw), CRED_OK);
    CHECK_STR(pw, "QiLJOB0TMQz63IW0FsJ/Vx8qOVE=");
    CHECK_INT(cred_shared_password(true, s, strlen(s), u, strlen(u), pw), CRED_OK);
    CHECK_STR(pw, "v6Zk+YL5w2SYRKy0XHxzS/Kqz1FJDo3anlbatcfEqh0=");
    CHECK_INT(cred_shared_password(false, NULL, 0, u, strlen(u), pw), CRED_E_MALFORMED);
    CHECK_STR(pw, "");
}

int main(void)
{
    TK_RUN(t_grammar);
    TK_RUN(t_malformed);
    TK_RUN(t_passwords);
    return tk_test_summary();
}
