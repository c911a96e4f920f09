/* libFuzzer target: the shared TLS port's sniffer (relay__mux_sniff). Every prefix of the
 * input is classified; once an answer other than WAIT is given, every longer prefix gets the
 * same one, and it never reads past n (ASan: the prefix is copied to an exact-size buffer). */
#include <stdlib.h>
#include <string.h>

#include "../src/relay/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64)
        size = 64; /* the answer is known within 8 bytes */
    int decided = RELAY_MUX_WAIT;
    for (size_t n = 0; n <= size; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, data, n);
        int k = relay__mux_sniff(p, n);
        free(p);
        if (k < RELAY_MUX_BAD || k > RELAY_MUX_HTTP || (decided != RELAY_MUX_WAIT && k != decided))
            abort();
        if (n >= 8 && k == RELAY_MUX_WAIT)
            abort(); /* eight bytes always decide */
        decided = k;
    }
    return 0;
}
