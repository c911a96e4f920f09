/* peer internals shared by the files of src/peer (not a public header). */
#ifndef TURNKEY_PEER_INTERNAL_H
#define TURNKEY_PEER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* A peer address after normalisation (IPv4-mapped IPv6 becomes IPv4). */
struct addr {
    int family;
    uint8_t a[16];
    uint16_t port; /* host byte order */
};

/* Normalises sa into out; false for NULL or a family other than AF_INET/AF_INET6. */
bool peer__from_sockaddr(const struct sockaddr *sa, struct addr *out);
/* Writes a as a sockaddr_in / sockaddr_in6 with port. */
void peer__to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *out);

#endif
