/* cfg_coturn: coturn's turnserver.conf names that a turnkey config file accepts, so an
 * existing coturn file mostly works. One table: adding a row is enough. Only names whose
 * meaning turnkey shares are mapped; everything else stays an error naming the line. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "turnkey/peer.h"
#include "turnkey/util.h"

enum kind {
    K_SAME,   /* the value as is */
    K_IP,     /* listening-ip: noted; the listeners are built at the end of the file */
    K_PORT,   /* listening-port: noted likewise */
    K_TLS,    /* tls-listening-port: noted likewise */
    K_NO_UDP, /* flag: the UDP+TCP listeners become TCP-only, no UDP-only ones */
    K_NO_TCP, /* flag: the UDP+TCP listeners become UDP-only, no TCP-only ones */
    K_LO,     /* replaces LO in LO-HI */
    K_HI,     /* replaces HI in LO-HI */
    K_QUOTA,  /* an integer; coturn's 0 (= no limit) becomes `max` */
    K_OFF,    /* flag: the list option becomes empty (off) */
    K_RANGE,  /* an address, a CIDR or coturn's IPv4 range A-B (split into CIDRs) */
    K_IGNORE, /* flag for something turnkey always does */
    K_REFUSE, /* a coturn setting with no file equivalent: an error saying what to do */
};

typedef struct alias {
    const char *coturn; /* name in turnserver.conf */
    const char *ours;   /* turnkey option it sets (NULL for K_IGNORE) */
    enum kind kind;
    const char *note; /* K_QUOTA: the maximum; K_IGNORE: why */
} alias;

static const alias aliases[] = {
    /* listening-ip (repeatable) x listening-port: the turn-listen list; x tls-listening-port:
     * the tls-listen list. Without listening-ip the hosts stay those of turn-listen (default
     * 127.0.0.1, where coturn would listen on every address). */
    {"listening-ip", "turn-listen", K_IP, NULL},
    {"listening-port", "turn-listen", K_PORT, NULL},
    {"tls-listening-port", "tls-listen", K_TLS, NULL},
    /* relay-ip, realm, external-ip: turnkey's options have coturn's names and meaning */
    {"min-port", "relay-ports", K_LO, NULL},
    {"max-port", "relay-ports", K_HI, NULL},
    {"user-quota", "user-quota", K_QUOTA, "1000000"},
    {"total-quota", "max-allocations", K_QUOTA, "10000000"},
    {"cert", "tls-cert", K_SAME, NULL},
    {"pkey", "tls-key", K_SAME, NULL},
    {"allowed-peer-ip", "allow-peer", K_RANGE, NULL},
    {"denied-peer-ip", "deny-peer", K_RANGE, NULL},
    {"no-tls", "tls-listen", K_OFF, NULL},
    {"no-udp", "tcp-listen", K_NO_UDP, NULL},
    {"no-tcp", "udp-listen", K_NO_TCP, NULL},
    {"fingerprint", NULL, K_IGNORE, "FINGERPRINT is always answered in kind"},
    {"lt-cred-mech", NULL, K_IGNORE, "long-term credentials are the only mechanism"},
    {"no-cli", NULL, K_IGNORE, "there is no telnet CLI"},
    {"no-dtls", NULL, K_IGNORE, "there is no DTLS listener"},
    {"no-tlsv1", NULL, K_IGNORE, "TLS below 1.2 is never accepted"},
    {"no-tlsv1_1", NULL, K_IGNORE, "TLS below 1.2 is never accepted"},
    {"no-multicast-peers", NULL, K_IGNORE, "multicast peers are always denied"},
    {"no-loopback-peers", NULL, K_IGNORE, "loopback peers are denied unless --allow-peer"},
    {"use-auth-secret", NULL, K_REFUSE,
     "shared secrets belong to TURN keys: `turnkey key secret add --account ID --key UID`, "
     "then --shared-secret-keys UID (docs/migrating-from-coturn.md)"},
    {"static-auth-secret", NULL, K_REFUSE,
     "shared secrets belong to TURN keys and live in the store: `turnkey key secret add "
     "--account ID --key UID` prints a new one for the app (docs/migrating-from-coturn.md)"},
};
#define N_ALIASES (sizeof aliases / sizeof aliases[0])

static bool flag_value(const char *val, bool *on)
{
    if (!val || !strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
        *on = true;
    else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
        *on = false;
    else
        return false;
    return true;
}

static bool valid_port(const char *v)
{
    char *end;
    long p = strtol(v, &end, 10);
    return v[0] >= '0' && v[0] <= '9' && !*end && p >= 1 && p <= 65535;
}

/* ADDR:PORT with the port (K_PORT) or the address (K_IP) replaced; NULL if cur has no ':'. */
static char *hostport(const char *cur, const char *val, enum kind k)
{
    const char *colon = strrchr(cur, ':');
    if (!colon)
        return NULL;
    if (k == K_PORT)
        return util_xasprintf("%.*s:%s", (int)(colon - cur), cur, val);
    return util_xasprintf(strchr(val, ':') ? "[%s]:%s" : "%s:%s", val, colon + 1);
}

/* Emits the CIDRs covering lo..hi (at most 62). */
static int emit_v4_range(uint32_t lo, uint32_t hi, const char *ours, const cfg__ops *ops)
{
    uint64_t a = lo;
    while (a <= hi) {
        uint64_t size = a ? (a & (~a + 1)) : (1ull << 32);
        while (a + size - 1 > hi)
            size >>= 1;
        unsigned prefix = 32;
        for (uint64_t s = size; s > 1; s >>= 1)
            prefix--;
        struct in_addr ia = {.s_addr = htonl((uint32_t)a)};
        char txt[INET_ADDRSTRLEN], cidr[INET_ADDRSTRLEN + 4];
        inet_ntop(AF_INET, &ia, txt, sizeof txt);
        snprintf(cidr, sizeof cidr, "%s/%u", txt, prefix);
        if (ops->emit(ops->ctx, ours, cidr) != 0)
            return -1;
        a += size;
    }
    return 0;
}

static int apply_range(const alias *al, const char *val, const cfg__ops *ops, const char *src,
                       FILE *err)
{
    const char *dash = strchr(val, '-');
    peer_cidr c;
    if (!dash) {
        if (peer_cidr_parse(val, &c) == 0)
            return ops->emit(ops->ctx, al->ours, val);
    } else {
        char a[64], b[64];
        struct in_addr lo, hi;
        snprintf(a, sizeof a, "%.*s", (int)(dash - val), val);
        snprintf(b, sizeof b, "%s", dash + 1);
        if (inet_pton(AF_INET, a, &lo) == 1 && inet_pton(AF_INET, b, &hi) == 1 &&
            ntohl(lo.s_addr) <= ntohl(hi.s_addr))
            return emit_v4_range(ntohl(lo.s_addr), ntohl(hi.s_addr), al->ours, ops);
    }
    fprintf(err, "turnkey: %s: %s wants an address, a CIDR or an IPv4 range A-B, got '%s'\n", src,
            al->coturn, val);
    return -1;
}

/* The flag kinds: 0 done, -1 error. */
static int apply_flag(cfg__coturn *st, const alias *al, const char *val, const cfg__ops *ops,
                      const char *src, FILE *err)
{
    bool on;
    if (!flag_value(val, &on)) {
        fprintf(err, "turnkey: %s: %s is a flag (no value, or true/false), got '%s'\n", src,
                al->coturn, val);
        return -1;
    }
    if (al->kind == K_OFF && on)
        ops->clear(ops->ctx, al->ours);
    if (al->kind == K_NO_UDP)
        st->no_udp = on;
    if (al->kind == K_NO_TCP)
        st->no_tcp = on;
    return 0;
}

/* listening-ip / listening-port / tls-listening-port: noted for cfg__coturn_finish. */
static int note_listener(cfg__coturn *st, const alias *al, const char *val, const char *src,
                         FILE *err)
{
    if (al->kind == K_IP) {
        uint8_t bin[16];
        if (st->n_ips == CFG__COTURN_MAX_IPS ||
            (inet_pton(AF_INET, val, bin) != 1 && inet_pton(AF_INET6, val, bin) != 1)) {
            fprintf(err,
                    "turnkey: %s: listening-ip '%s' is not an IP address, or one too many "
                    "(at most %d)\n",
                    src, val, CFG__COTURN_MAX_IPS);
            return -1;
        }
        st->ips[st->n_ips++] = util_xstrdup(val);
        return 0;
    }
    if (!valid_port(val)) {
        fprintf(err, "turnkey: %s: invalid %s '%s'\n", src, al->coturn, val);
        return -1;
    }
    char **slot = al->kind == K_PORT ? &st->port : &st->tls_port;
    free(*slot);
    *slot = util_xstrdup(val);
    return 0;
}

static int apply_one(cfg__coturn *st, const alias *al, const char *val, const cfg__ops *ops,
                     const char *src, FILE *err)
{
    if (al->kind == K_REFUSE) {
        fprintf(err, "turnkey: %s: %s is not a file setting in turnkey: %s\n", src, al->coturn,
                al->note);
        return -1;
    }
    if (al->kind == K_IGNORE || al->kind == K_OFF || al->kind == K_NO_UDP || al->kind == K_NO_TCP)
        return apply_flag(st, al, val, ops, src, err);
    if (!val || !*val) {
        fprintf(err, "turnkey: %s: %s needs a value\n", src, al->coturn);
        return -1;
    }
    if (al->kind == K_IP || al->kind == K_PORT || al->kind == K_TLS)
        return note_listener(st, al, val, src, err);
    if (al->kind == K_SAME)
        return ops->emit(ops->ctx, al->ours, val);
    if (al->kind == K_RANGE)
        return apply_range(al, val, ops, src, err);
    if (al->kind == K_QUOTA)
        return ops->emit(ops->ctx, al->ours, strcmp(val, "0") ? val : al->note);
    /* K_LO, K_HI */
    const char *cur = ops->get(ops->ctx, al->ours), *dash = strchr(cur, '-');
    if (!valid_port(val) || !dash) {
        fprintf(err, "turnkey: %s: invalid %s '%s'\n", src, al->coturn, val);
        return -1;
    }
    char *v = al->kind == K_LO ? util_xasprintf("%s%s", val, dash)
                               : util_xasprintf("%.*s-%s", (int)(dash - cur), cur, val);
    int rc = ops->emit(ops->ctx, al->ours, v);
    free(v);
    return rc;
}

int cfg__coturn_apply(cfg__coturn *st, const char *name, const char *val, const cfg__ops *ops,
                      const char *src, FILE *err)
{
    int found = 0;
    for (size_t i = 0; i < N_ALIASES; i++) {
        if (strcmp(aliases[i].coturn, name) != 0)
            continue;
        found = 1;
        if (apply_one(st, &aliases[i], val, ops, src, err) != 0)
            return -1;
    }
    return found ? 0 : 1;
}

/* Replaces list `name` by its entries with the hosts (st->ips, if any) and the port (if
 * given) that coturn's lines named. An empty list (off) stays off. */
static int rebuild(const cfg__coturn *st, const char *name, const char *port, const cfg__ops *ops)
{
    size_t n;
    char *const *cur = ops->get_list(ops->ctx, name, &n);
    if (n == 0 || (!st->n_ips && !port))
        return 0;
    size_t m = st->n_ips ? st->n_ips : n;
    char **out = util_xcalloc(m, sizeof *out);
    for (size_t i = 0; i < m; i++) {
        char *v = st->n_ips ? hostport(cur[0], st->ips[i], K_IP) : util_xstrdup(cur[i]);
        if (v && port) {
            char *w = hostport(v, port, K_PORT);
            free(v);
            v = w;
        }
        out[i] = v;
    }
    ops->clear(ops->ctx, name);
    int rc = 0;
    for (size_t i = 0; i < m; i++) {
        if (rc == 0 && out[i])
            rc = ops->emit(ops->ctx, name, out[i]);
        free(out[i]);
    }
    free(out);
    return rc;
}

/* no-udp / no-tcp: the UDP+TCP listeners move to the TCP-only / UDP-only lists. */
static int split_protocols(const cfg__coturn *st, const cfg__ops *ops)
{
    if (!st->no_udp && !st->no_tcp)
        return 0;
    const char *keep = st->no_udp ? "tcp-listen" : "udp-listen";
    if (st->no_udp)
        ops->clear(ops->ctx, "udp-listen");
    if (st->no_tcp)
        ops->clear(ops->ctx, "tcp-listen");
    size_t n;
    char *const *cur = ops->get_list(ops->ctx, "turn-listen", &n);
    char **moved = util_xcalloc(n ? n : 1, sizeof *moved);
    for (size_t i = 0; i < n; i++)
        moved[i] = util_xstrdup(cur[i]);
    ops->clear(ops->ctx, "turn-listen");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = ops->emit(ops->ctx, keep, moved[i]);
        free(moved[i]);
    }
    free(moved);
    return rc;
}

int cfg__coturn_finish(cfg__coturn *st, const cfg__ops *ops, const char *src, FILE *err)
{
    int rc = 0;
    if (st->no_udp && st->no_tcp) {
        fprintf(err,
                "turnkey: %s: no-udp with no-tcp leaves TLS alone, which turnkey does not "
                "serve without a UDP or TCP listener\n",
                src);
        rc = -1;
    } else if (rebuild(st, "turn-listen", st->port, ops) != 0 ||
               rebuild(st, "tls-listen", st->tls_port, ops) != 0 || split_protocols(st, ops) != 0) {
        fprintf(err, "turnkey: %s: the coturn listener settings do not combine\n", src);
        rc = -1;
    }
    cfg__coturn_dispose(st);
    return rc;
}

void cfg__coturn_dispose(cfg__coturn *st)
{
    for (size_t i = 0; i < st->n_ips; i++)
        free(st->ips[i]);
    free(st->port);
    free(st->tls_port);
    memset(st, 0, sizeof *st);
}

static const char *kind_note(enum kind k)
{
    switch (k) {
    case K_IP: return " (the address of each; repeatable)";
    case K_PORT:
    case K_TLS: return " (the port of each)";
    case K_NO_UDP: return " (turn-listen becomes TCP-only: tcp-listen)";
    case K_NO_TCP: return " (turn-listen becomes UDP-only: udp-listen)";
    case K_LO: return " (LO)";
    case K_HI: return " (HI)";
    case K_QUOTA: return " (0 = the largest value)";
    case K_OFF: return " = \"\" (off)";
    case K_RANGE: return " (an IPv4 range A-B becomes CIDRs)";
    default: return "";
    }
}

void cfg__coturn_print(FILE *out)
{
    fprintf(out, "# coturn (turnserver.conf) names accepted in this file, and what they set\n"
                 "# (relay-ip, realm and external-ip are the same names in both):\n");
    for (size_t i = 0; i < N_ALIASES; i++) {
        const alias *a = &aliases[i];
        if (a->kind == K_IGNORE)
            fprintf(out, "#   %-20s accepted and ignored: %s\n", a->coturn, a->note);
        else if (a->kind == K_REFUSE)
            fprintf(out, "#   %-20s refused: %s\n", a->coturn, a->note);
        else
            fprintf(out, "#   %-20s %s%s\n", a->coturn, a->ours, kind_note(a->kind));
    }
}
