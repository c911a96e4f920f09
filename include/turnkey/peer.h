/* peer: where the relay may send (product spec §4.3). Sans-I/O: pure address arithmetic.
 *
 * Decision for a peer address A (peer_allowed), in this order:
 *   1. Port 0, a NULL address or a family other than AF_INET/AF_INET6: denied.
 *   2. An IPv4-mapped address ::ffff:a.b.c.d IS the IPv4 address a.b.c.d for every rule below
 *      (deny list, allow-list, own addresses), because the kernel sends to a.b.c.d. The same
 *      applies to mapped CIDRs given to peer_policy_add_allow (prefix >= 96) and to mapped own
 *      addresses. IPv6 allow ranges that merely contain ::ffff:0:0/96 (e.g. ::/0) do not
 *      open IPv4 addresses.
 *   3. The server's own addresses (peer_policy_add_self; matched by IP, any port, and also when
 *      embedded in a compatible/NAT64/local-use NAT64/6to4 IPv6 address): denied, unless that
 *      address and port is a live relay allocation of this server (peer_policy_set_relays:
 *      hairpin, two relayed clients talking), or that exact address is allow-listed as a single
 *      host (/32 or /128). Allowing 127.0.0.0/8 therefore does not open an own address
 *      127.0.0.1, but allowing 127.0.0.1/32 does (the tests relay through 127.0.0.1 while the
 *      server listens there).
 *   4. Inside an allow-listed range: allowed, even if the deny list covers it. Exactly the
 *      range given is opened; the compatible/NAT64/6to4 forms of an allowed IPv4 address are
 *      NOT opened by an IPv4 range (they reach other hosts: gateways and relays).
 *   5. An operator deny range (peer_policy_add_deny; --deny-peer, coturn's denied-peer-ip),
 *      also when embedded in a compatible/NAT64/6to4 IPv6 address: denied.
 *   6. The built-in deny list: IPv4 0.0.0.0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
 *      192.0.0/24, 192.0.2/24, 192.88.99/24, 192.168/16, 198.18/15, 198.51.100/24,
 *      203.0.113/24, 224/4, 240/4, 255.255.255.255/32, and the cloud address 168.63.129.16/32
 *      (Azure; the other metadata services sit in 169.254/16, 100.64/10 or fc00::/7, see
 *      docs/security.md); IPv6 ::/128, ::1/128, fc00::/7, fe80::/10, fec0::/10, ff00::/8,
 *      100::/64, 2001::/32 (Teredo), 2001:2::/48, 2001:10::/28, 2001:20::/28, 2001:db8::/32,
 *      3fff::/20, 5f00::/16; and an IPv6 address whose embedded IPv4 address is on the IPv4
 *      list: ::/96 (compatible, low 32 bits), 64:ff9b::/96 (NAT64, low 32 bits),
 *      ::ffff:0:0:0/96 (SIIT IPv4-translated, low 32 bits), 2002::/16 (6to4, bits 16..47), local-use NAT64 64:ff9b:1::/48 (RFC 8215:
 *      the IPv4 address of every RFC 6052 layout (/48, /56, /64, /96) whose suffix is zero;
 *      any one on the list denies; bits 64..71 not zero = no NAT64 form = denied). Denied.
 *   7. Everything else: allowed. */
#ifndef TURNKEY_PEER_H
#define TURNKEY_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct peer_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes; host bits zero */
    unsigned prefix;  /* 0..32 or 0..128 */
} peer_cidr;

typedef struct peer_policy {
    peer_cidr *allow; /* normalised: mapped IPv6 ranges stored as IPv4 */
    size_t n_allow, cap_allow;
    peer_cidr *self; /* own addresses as /32 or /128, normalised likewise */
    size_t n_self, cap_self;
    const struct peer_relays *relays; /* live relay ports (hairpin), or NULL */
    peer_cidr *deny;                  /* operator deny ranges, normalised likewise */
    size_t n_deny, cap_deny;
} peer_policy;

/* Parses "a.b.c.d/len", "ipv6/len" or a bare address (= /32 or /128). The prefix is
 * decimal without sign or leading zeros, within the family's range. Host bits beyond the
 * prefix are accepted and cleared ("10.1.2.3/8" is 10.0.0.0/8). No surrounding spaces, no
 * zone ids. Returns 0, or -EINVAL (out untouched). */
int peer_cidr_parse(const char *s, peer_cidr *out);
/* True if the address (same family, 4 or 16 bytes) lies in c. */
bool peer_cidr_contains(const peer_cidr *c, int family, const uint8_t *addr);

/* Empty allow-list and own-address list; the built-in deny list always applies. */
void peer_policy_init(peer_policy *p);
void peer_policy_dispose(peer_policy *p);
/* Adds an operator allow range (copied). -EINVAL if c's family is not AF_INET/AF_INET6 or
 * the prefix is out of range, else 0. */
int peer_policy_add_allow(peer_policy *p, const peer_cidr *c);
/* Adds an operator deny range (copied); checked after the allow-list (rule 5). -EINVAL as
 * for peer_policy_add_allow, else 0. */
int peer_policy_add_deny(peer_policy *p, const peer_cidr *c);
/* Adds one of the server's own addresses (listener or relay; the port is ignored).
 * -EINVAL if the family is not AF_INET/AF_INET6, else 0. */
int peer_policy_add_self(peer_policy *p, const struct sockaddr *sa);

/* The live relay allocations of this server, for hairpinning. Not owned; may be NULL. */
void peer_policy_set_relays(peer_policy *p, const struct peer_relays *relays);

/* May the relay send to this peer (sockaddr_in or sockaddr_in6)? See the rules above. */
bool peer_allowed(const peer_policy *p, const struct sockaddr *sa);
/* The same decision with the rule that denied (for metrics): PEER_ALLOWED or the class. */
enum peer_deny {
    PEER_ALLOWED = 0,
    PEER_DENY_INVALID,  /* rule 1: port 0, no address, another family */
    PEER_DENY_SELF,     /* rule 3: one of the server's own addresses */
    PEER_DENY_OPERATOR, /* rule 5: --deny-peer */
    PEER_DENY_BUILTIN,  /* rule 6: the built-in deny list */
    PEER_DENY__N
};
int peer_deny_class(const peer_policy *p, const struct sockaddr *sa);
const char *peer_deny_name(int cls); /* "invalid", "self", "operator", "builtin"; "?" */

/* --- relay addresses in use (hairpin) ---------------------------------------------------
 * A fixed set of relay bind addresses ("slots", registered before the relay threads start)
 * with one atomic bitmap of live ports each: peer_relays_mark sets or clears a port when a
 * relay socket opens or closes (any thread), the queries read it without locks. External
 * mappings (--external-ip PUBLIC[/PRIVATE]) say which public address a relay bound on a
 * private address is reported as: with a PRIVATE, relays bound on exactly that address; without
 * one, every relay slot of that family. */
#define PEER_RELAYS_MAX_SLOTS 64
typedef struct peer_relays peer_relays;

peer_relays *peer_relays_new(void);
void peer_relays_free(peer_relays *r);
/* Registers a relay bind address (the port is ignored; IPv4-mapped becomes IPv4). Returns
 * its slot (an existing one for a known address), or -1 (full or not AF_INET/AF_INET6). */
int peer_relays_add_slot(peer_relays *r, const struct sockaddr *sa);
/* Adds PUBLIC[/PRIVATE] (priv NULL = none). -EINVAL on family mismatch, -EEXIST when the
 * family already has a mapping, else 0. */
int peer_relays_add_external(peer_relays *r, const struct sockaddr *pub,
                             const struct sockaddr *priv);
/* The slot of a bind address, or -1. */
int peer_relays_slot(const peer_relays *r, const struct sockaddr *sa);
void peer_relays_mark(peer_relays *r, int slot, uint16_t port, bool live);
/* What an allocation relayed on `bound` reports (XOR-RELAYED-ADDRESS): the mapped public
 * address with bound's port, or bound itself. True when mapped. */
bool peer_relays_public(const peer_relays *r, const struct sockaddr *bound,
                        struct sockaddr_storage *out);
/* Is sa (a slot address or a mapped public address, with a port) a live relay socket of this
 * server? If so and `direct` is not NULL, *direct is the socket's bound address (a public
 * address becomes the private one: send there, the NAT may not hairpin). */
bool peer_relays_live(const peer_relays *r, const struct sockaddr *sa,
                      struct sockaddr_storage *direct);

#endif
