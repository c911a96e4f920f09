/* libFuzzer target for the shared-secret username parser (issue 15): arbitrary bytes
 * through cred_shared_parse and cred_shared_password. Invariants are enforced with
 * abort(). */
#include "turnkey/cred.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *u = (const char *)data;
    cred_shared_name nm;
    int rc = cred_shared_parse(u, size, &nm);
    REQUIRE(rc == CRED_OK || rc == CRED_E_MALFORMED);
    if (rc != CRED_OK) {
        REQUIRE(nm.expires == 0 && nm.user == NULL && nm.key_id[0] == '\0');
        return 0;
    }
    REQUIRE(size > 0 && size < CRED_USERNAME_MAX);
    REQUIRE(nm.expires >= 1);
    REQUIRE(nm.expires == cred_coturn_expiry(u, size));
    REQUIRE(memchr(u, '\0', size) == NULL);
    if (nm.user) {
        REQUIRE(nm.user > u && nm.user[-1] == ':');
        REQUIRE(nm.user + nm.user_len == u + size);
    } else {
        REQUIRE(memchr(u, ':', size) == NULL);
    }
    size_t klen = strlen(nm.key_id);
    REQUIRE(klen == 0 || klen == CRED_KEY_ID_LEN);
    if (klen) {
        REQUIRE(nm.user_len >= CRED_KEY_ID_LEN + 1);
        REQUIRE(u[size - CRED_KEY_ID_LEN - 1] == CRED_SHARED_KEY_MARK);
        REQUIRE(memcmp(u + size - CRED_KEY_ID_LEN, nm.key_id, CRED_KEY_ID_LEN) == 0);
        REQUIRE(lower_hex(nm.key_id, CRED_KEY_ID_LEN));
    }
    char pw1[CRED_PASSWORD_MAX], pw2[CRED_PASSWORD_MAX];
    REQUIRE(cred_shared_password(false, "s", 1, u, size, pw1) == CRED_OK && strlen(pw1) == 28);
    REQUIRE(cred_shared_password(true, "s", 1, u, size, pw2) == CRED_OK && strlen(pw2) == 44);
    char pw3[CRED_PASSWORD_MAX];
    REQUIRE(cred_coturn_password((const uint8_t *)"s", 1, u, size, pw3) == CRED_OK);
    REQUIRE(strcmp(pw1, pw3) == 0);
    return 0;
}
