/* bench/turn_micro.c: a micro-benchmark of the TURN state machine's relay path, no sockets.
 *
 * F flows (default 50, like `make bench`'s 50-flow row), each with an allocation, a permission
 * and a channel to the echo peer 127.0.0.1:7490. Then N rounds: every flow sends one 100-byte
 * ChannelData (turn_server_input) and gets one peer datagram back (turn_server_peer_input).
 * Prints ns per relayed packet (each round = 2 packets per flow). The fake ops are the unit
 * tests' (tests/unit/test_turn_fixture.h), so the numbers include a memcpy of each payload.
 *
 * Build (no Makefile rule; from the repo root, after `make build` for build/release):
 *   cc -std=c17 -D_GNU_SOURCE -O2 -g -Iinclude -Itests/unit bench/turn_micro.c \
 *      build/release/libturnkey.a $(pkg-config --libs libmicrohttpd jansson sqlite3 libssl \
 *      libcrypto) -lpthread -lm -o build/turn_micro
 * Run: build/turn_micro [flows] [rounds]
 * Instructions per packet: valgrind --tool=callgrind --toggle-collect=relay_rounds \
 *      build/turn_micro 50 2000   → total Ir / (2 * flows * rounds). */
#include "test_turn_fixture.h"

#include <stdio.h>
#include <time.h>

static fake F;

static __attribute__((noinline)) void relay_rounds(client *cl, const uint64_t *ids, int flows,
                                                   long rounds, const struct sockaddr *peer)
{
    uint8_t pkt[4 + 100];
    memset(pkt, 0xAB, sizeof pkt);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < flows; i++) {
            uint16_t ch = (uint16_t)(0x4000 + i % 0x3FFF);
            pkt[0] = (uint8_t)(ch >> 8);
            pkt[1] = (uint8_t)ch;
            pkt[2] = 0;
            pkt[3] = 100;
            turn_server_input(F.s, &cl[i].t, pkt, sizeof pkt, F.now);
            turn_server_peer_input(F.s, ids[i], peer, pkt + 4, 100, F.now);
        }
    }
}

int main(int argc, char **argv)
{
    int flows = argc > 1 ? atoi(argv[1]) : 50;
    long rounds = argc > 2 ? atol(argv[2]) : 200000;
    if (flows < 1 || flows > 10000 || rounds < 1)
        return 2;
    fx_init(&F);
    (void)tk__cur_failed; /* tk_test.h harness state, unused here */
    client *cl = calloc((size_t)flows, sizeof *cl);
    uint64_t *ids = calloc((size_t)flows, sizeof *ids);
    struct sockaddr_storage peer;
    fx_addr(&peer, "127.0.0.1", 7490);
    for (int i = 0; i < flows; i++) {
        char ip[32], user[32];
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 250, 1 + i % 250);
        snprintf(user, sizeof user, "u%d", i); /* one user each: the default quota is 10 */
        fx_client(&cl[i], TURN_PROTO_UDP, ip, (uint16_t)(40000 + i), user);
        if (fx_allocate(&F, &cl[i]) != 0 ||
            fx_bind(&F, &cl[i], (uint16_t)(0x4000 + i % 0x3FFF), "127.0.0.1", 7490) != 0) {
            fprintf(stderr, "setup failed at flow %d\n", i);
            return 1;
        }
        ids[i] = F.last_open_id;
    }
    int before_peer = F.n_peer, before_client = F.n_client;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    relay_rounds(cl, ids, flows, rounds, (const struct sockaddr *)&peer);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long pk = 2L * flows * rounds;
    if (F.n_peer - before_peer != flows * rounds || F.n_client - before_client != flows * rounds) {
        fprintf(stderr, "relayed %d to peers, %d to clients, expected %ld each\n",
                F.n_peer - before_peer, F.n_client - before_client, (long)flows * rounds);
        return 1;
    }
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("flows=%d rounds=%ld packets=%ld ns/packet=%.1f\n", flows, rounds, pk, ns / (double)pk);
    free(cl);
    free(ids);
    fx_free(&F);
    return 0;
}
