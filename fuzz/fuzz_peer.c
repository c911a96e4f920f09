/* Fuzz target: arbitrary bytes as a CIDR string, and as a peer address checked against a
 * policy whose allow-list and own addresses also come from the input. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnkey/peer.h"
#include "turnkey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_address(peer_policy *p, const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (size >= 18 && (data[0] & 1)) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_port, data + 1, 2);
        memcpy(&s6->sin6_addr, data + 3, 16 <= size - 3 ? 16 : size - 3);
    } else if (size >= 7) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_port, data + 1, 2);
        memcpy(&s4->sin_addr, data + 3, 4);
    } else {
        ss.ss_family = size ? data[0] : AF_UNSPEC; /* odd families must be refused */
    }
    (void)peer_allowed(p, (const struct sockaddr *)&ss);
    (void)peer_policy_add_self(p, (const struct sockaddr *)&ss);
    (void)peer_allowed(p, (const struct sockaddr *)&ss);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = util_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    peer_policy p;
    peer_policy_init(&p);
    peer_cidr c;
    if (peer_cidr_parse(s, &c) == 0) {
        if (c.family != AF_INET && c.family != AF_INET6)
            abort();
        if (c.prefix > (c.family == AF_INET ? 32u : 128u))
            abort();
        if (!peer_cidr_contains(&c, c.family, c.addr)) /* the network address is inside */
            abort();
        if (peer_policy_add_allow(&p, &c) != 0)
            abort();
    }
    check_address(&p, data, size);
    peer_policy_dispose(&p);
    free(s);
    return 0;
}
