/* relay/relay_listen.c: the relay's addresses — listening sockets (several per worker, on
 * specific or wildcard addresses), the local address of a datagram on a wildcard UDP socket
 * (IP_PKTINFO / IPV6_RECVPKTINFO), and the server's own addresses for the peer policy and
 * the hairpin registry. */
#include "internal.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnkey/util.h"

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void relay__unmap(struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    if (ss->ss_family != AF_INET6 || memcmp(&in6->sin6_addr, mapped_prefix, 12) != 0)
        return;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
    memcpy(&in.sin_addr, (const uint8_t *)&in6->sin6_addr + 12, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &in, sizeof in);
}

void relay__map_v6(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
    if (in->ss_family != AF_INET) {
        *out = *in;
        return;
    }
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)in;
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = v4->sin_port};
    memcpy(&v6.sin6_addr, mapped_prefix, 12);
    memcpy((uint8_t *)&v6.sin6_addr + 12, &v4->sin_addr, 4);
    memset(out, 0, sizeof *out);
    memcpy(out, &v6, sizeof v6);
}

void relay__set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

uint16_t relay__port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static bool is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

int relay__setup_listeners(relay *r, const relay_config *cfg, char **err)
{
    r->lst = util_xcalloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof *r->lst);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        relay_laddr *la = &r->lst[i];
        unsigned len;
        la->text = cfg->listeners[i].addr;
        la->kinds = cfg->listeners[i].kinds;
        if (util_parse_addr(la->text, &la->addr, &len) != 0) {
            *err = util_xasprintf("invalid listener address '%s' (want ADDR:PORT)", la->text);
            return -1;
        }
        if (((la->kinds & RELAY_TLS) && !cfg->tls) ||
            ((la->kinds & RELAY_MUX) && (!cfg->mux_tls || !cfg->http_adopt))) {
            *err = util_xasprintf("TLS listener %s without a certificate", la->text);
            return -1;
        }
        la->wildcard = is_any(&la->addr);
        r->n_lst++;
    }
    /* [::] is dual-stack, unless an IPv4 listener shares its port and kind */
    for (size_t i = 0; i < r->n_lst; i++) {
        relay_laddr *a = &r->lst[i];
        for (size_t k = 0; a->wildcard && a->addr.ss_family == AF_INET6 && k < r->n_lst; k++) {
            const relay_laddr *b = &r->lst[k];
            uint16_t port = relay__port_of(&a->addr);
            if (b->addr.ss_family == AF_INET && port && port == relay__port_of(&b->addr) &&
                (a->kinds & b->kinds))
                a->v6only = true;
        }
    }
    return 0;
}

/* A UDP listener carries every client of its worker: give it deep kernel buffers so a burst
 * is queued, not dropped (SO_*BUFFORCE passes net.core.[rw]mem_max when running as root). */
static void grow_buffers(int fd)
{
    int size = RELAY_LISTENER_SOCKBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

/* Family options: dual-stack or not for [::], and the local address of each datagram on a
 * wildcard UDP socket. */
static int family_opts(int fd, const relay_laddr *la, int type)
{
    int one = 1, v6only = la->v6only;
    if (la->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
        return -1;
    if (type != SOCK_DGRAM || !la->wildcard)
        return 0;
    if (la->addr.ss_family == AF_INET)
        return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
}

/* Binds one listener. SO_REUSEPORT lets every worker bind the same address: the kernel
 * spreads UDP 5-tuples and TCP connections over them, always sending one 5-tuple to the
 * same worker. */
static int bind_one(relay_laddr *la, int type, bool reuseport)
{
    socklen_t alen = relay__addr_len(la->addr.ss_family);
    int fd = socket(la->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (type == SOCK_DGRAM)
        grow_buffers(fd);
    if (family_opts(fd, la, type) != 0 || bind(fd, (struct sockaddr *)&la->addr, alen) != 0 ||
        (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    socklen_t got = sizeof la->addr;
    getsockname(fd, (struct sockaddr *)&la->addr, &got);
    return fd;
}

/* The first worker binds without SO_REUSEPORT first (a probe), so a port that another
 * process holds is an error instead of being silently shared; with port 0 the probe picks
 * the port the others then bind. */
static int open_one(relay_laddr *la, int type, const char *what, bool first, char **err)
{
    if (first) {
        int probe = bind_one(la, type, false);
        if (probe < 0)
            goto fail;
        close(probe);
    }
    int fd = bind_one(la, type, true);
    if (fd >= 0)
        return fd;
fail:;
    int e = errno;
    *err =
        util_xasprintf("cannot open the TURN %s listener on %s: %s", what, la->text, strerror(e));
    errno = e; /* the caller retries EADDRINUSE */
    return -1;
}

static const struct {
    unsigned kind;
    int type;
    const char *what;
} kinds[] = {{RELAY_UDP, SOCK_DGRAM, "UDP"},
             {RELAY_TCP, SOCK_STREAM, "TCP"},
             {RELAY_TLS, SOCK_STREAM, "TLS"},
             {RELAY_MUX, SOCK_STREAM, "shared TLS"}};

/* Opens every socket kind of listener la for worker w. 0, or -1 with errno and *err. */
static int open_kinds(relay_worker *w, relay_laddr *la, bool first, char **err)
{
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!(la->kinds & kinds[k].kind))
            continue;
        int fd = open_one(la, kinds[k].type, kinds[k].what, first, err);
        if (fd < 0)
            return -1;
        w->ls[w->n_ls++] = (relay_lsock){.fd = fd, .kind = kinds[k].kind, .la = la, .owner = w};
    }
    return 0;
}

/* With port 0 the first kind's socket picks the port and the others bind the same number,
 * which another process may hold for that protocol (EADDRINUSE): then every socket of this
 * listener is closed and a new port tried, a bounded number of times. */
int relay__open_listeners(relay_worker *w, bool first, char **err)
{
    relay *r = w->shared;
    w->ls = util_xcalloc(r->n_lst * 3 + 1, sizeof *w->ls);
    for (size_t i = 0; i < r->n_lst; i++) {
        relay_laddr *la = &r->lst[i];
        bool any_port = first && relay__port_of(&la->addr) == 0;
        for (int attempt = 0;; attempt++) {
            size_t mark = w->n_ls;
            if (open_kinds(w, la, first, err) == 0)
                break;
            if (!any_port || errno != EADDRINUSE || attempt == 31)
                return -1;
            free(*err);
            *err = NULL;
            while (w->n_ls > mark)
                close(w->ls[--w->n_ls].fd);
            relay__set_port(&la->addr, 0);
        }
    }
    return 0;
}

void relay__close_listeners(relay_worker *w)
{
    for (size_t i = 0; i < w->n_ls; i++)
        close(w->ls[i].fd);
    free(w->ls);
    w->ls = NULL;
    w->n_ls = 0;
}

bool relay__local_addr(relay_worker *r, int i, const relay_laddr *la, struct sockaddr_storage *out)
{
    struct msghdr *h = &r->mm[i].msg_hdr;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        memset(out, 0, sizeof *out);
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in *in = (struct sockaddr_in *)out;
            in->sin_family = AF_INET;
            in->sin_addr = pi.ipi_addr;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
            in6->sin6_family = AF_INET6;
            in6->sin6_addr = pi.ipi6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                in6->sin6_scope_id = (uint32_t)pi.ipi6_ifindex;
        } else {
            continue;
        }
        relay__set_port(out, relay__port_of(&la->addr));
        relay__unmap(out);
        return true;
    }
    return false;
}

size_t relay__put_pktinfo(uint8_t *buf, const struct sockaddr_storage *src)
{
    struct cmsghdr *c = (struct cmsghdr *)(void *)buf;
    if (src->ss_family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = ((const struct sockaddr_in *)src)->sin_addr};
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        return CMSG_SPACE(sizeof pi);
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)src;
    struct in6_pktinfo pi = {.ipi6_addr = in6->sin6_addr,
                             .ipi6_ifindex = (unsigned)in6->sin6_scope_id};
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
}

/* --- own addresses ------------------------------------------------------------------- */

/* An address relays may bind on: a hairpin slot, and one of the server's own addresses. */
static void add_relay_addr(relay *r, const struct sockaddr_storage *ss)
{
    struct sockaddr_storage a = *ss;
    relay__unmap(&a);
    peer_relays_add_slot(r->relays, (struct sockaddr *)&a);
    peer_policy_add_self(&r->peers, (struct sockaddr *)&a);
}

/* Every address of the host's interfaces of the wildcard's families (IPv4 too for a dual-
 * stack [::]). Interface addresses added after start are not known. */
static int add_interface_addrs(relay *r, const relay_laddr *la, char **err)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) {
        *err = util_xasprintf("cannot list the interface addresses: %s", strerror(errno));
        return -1;
    }
    bool v4 = la->addr.ss_family == AF_INET || !la->v6only;
    bool v6 = la->addr.ss_family == AF_INET6;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || !((i->ifa_addr->sa_family == AF_INET && v4) ||
                              (i->ifa_addr->sa_family == AF_INET6 && v6)))
            continue;
        struct sockaddr_storage ss = {0};
        memcpy(&ss, i->ifa_addr, relay__addr_len(i->ifa_addr->sa_family));
        add_relay_addr(r, &ss);
    }
    freeifaddrs(ifs);
    return 0;
}

int relay__setup_own_addresses(relay *r, const relay_config *cfg, char **err)
{
    for (int f = 0; f < 2; f++)
        if (r->has_relay_ip[f])
            add_relay_addr(r, &r->relay_addr[f]);
    for (size_t i = 0; i < r->n_lst; i++) {
        const relay_laddr *la = &r->lst[i];
        if (!la->wildcard) {
            /* without --relay-ip of its family, relays bind where the request arrived */
            struct sockaddr_storage u = la->addr;
            relay__unmap(&u);
            if (r->has_relay_ip[u.ss_family == AF_INET6])
                peer_policy_add_self(&r->peers, (const struct sockaddr *)&la->addr);
            else
                add_relay_addr(r, &la->addr);
        } else if (add_interface_addrs(r, la, err) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->n_external; i++) {
        const relay_external *e = &cfg->external[i];
        int rc = peer_relays_add_external(r->relays, (const struct sockaddr *)&e->pub,
                                          e->has_priv ? (const struct sockaddr *)&e->priv : NULL);
        if (rc != 0) {
            *err = util_xasprintf("--external-ip: %s", rc == -EEXIST
                                                           ? "at most one per address family"
                                                           : "PUBLIC and PRIVATE differ in family");
            return -1;
        }
        peer_policy_add_self(&r->peers, (const struct sockaddr *)&e->pub);
        if (e->has_priv)
            peer_policy_add_self(&r->peers, (const struct sockaddr *)&e->priv);
        r->n_external++;
    }
    peer_policy_set_relays(&r->peers, r->relays);
    return 0;
}
