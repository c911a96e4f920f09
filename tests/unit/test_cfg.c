/* cfg: repeatable listener options (a later source replaces an earlier one's list), the
 * --external-ip syntax, and the iceServers URL builder (Cloudflare's order, hosts, refusals). */
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "tk_test.h"
#include "turnkey/cfg.h"

/* Loads argv (after "serve") with a clean environment; returns cfg_load's result and the
 * error text in errbuf. */
static int load(cfg *c, const char *const *args, size_t n, char *errbuf, size_t cap)
{
    char *argv[32] = {"serve"};
    for (size_t i = 0; i < n && i + 1 < 32; i++)
        argv[i + 1] = (char *)args[i];
    FILE *err = fmemopen(errbuf, cap, "w");
    int rc = cfg_load(c, (int)n + 1, argv, err);
    fclose(err);
    return rc;
}

static char *join(char **urls, size_t n)
{
    static char buf[4096];
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(buf, urls[i], sizeof buf - strlen(buf) - 2);
        if (i + 1 < n)
            strncat(buf, " ", sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

/* URLs of a configuration: "STUN | TURN", or "ERR: message". */
static const char *urls_of(const char *const *args, size_t n)
{
    static char out[8192];
    char errbuf[512] = "";
    cfg c;
    if (load(&c, args, n, errbuf, sizeof errbuf) != 0) {
        snprintf(out, sizeof out, "ERR: %s", errbuf);
        cfg_free(&c);
        return out;
    }
    char **stun, **turn;
    size_t ns, nt;
    FILE *err = fmemopen(errbuf, sizeof errbuf, "w");
    int rc = cfg_ice_urls(&c, &stun, &ns, &turn, &nt, err);
    fclose(err);
    if (rc != 0) {
        snprintf(out, sizeof out, "ERR: %s", errbuf);
    } else {
        snprintf(out, sizeof out, "%s | ", join(stun, ns));
        strncat(out, join(turn, nt), sizeof out - strlen(out) - 1);
    }
    cfg_free_urls(stun, ns);
    cfg_free_urls(turn, nt);
    cfg_free(&c);
    return out;
}

#define URLS(...)                                                                                  \
    urls_of((const char *const[]){__VA_ARGS__},                                                    \
            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

static void t_defaults(void)
{
    CHECK_STR(URLS("--log-level", "info"),
              "stun:127.0.0.1:3478 | turn:127.0.0.1:3478?transport=udp "
              "turn:127.0.0.1:3478?transport=tcp turns:127.0.0.1:5349?transport=tcp");
}

static void t_cloudflare_order(void)
{
    /* given in a scrambled order: the URL groups still come stun, udp, tcp, tls */
    CHECK_STR(URLS("--tls-listen", "0.0.0.0:5349", "--tcp-listen", "0.0.0.0:80", "--tls-listen",
                   "0.0.0.0:443", "--udp-listen", "0.0.0.0:443", "--turn-listen", "0.0.0.0:3478",
                   "--public-host", "turn.example.com"),
              "stun:turn.example.com:3478 | turn:turn.example.com:3478?transport=udp "
              "turn:turn.example.com:443?transport=udp turn:turn.example.com:3478?transport=tcp "
              "turn:turn.example.com:80?transport=tcp turns:turn.example.com:5349?transport=tcp "
              "turns:turn.example.com:443?transport=tcp");
    /* port 53 only when configured; two families on one port give one URL */
    CHECK_STR(URLS("--turn-listen", "0.0.0.0:3478", "--turn-listen", "[::]:3478", "--udp-listen",
                   "0.0.0.0:53", "--tls-listen", "", "--external-ip", "100.200.0.10/10.0.0.2"),
              "stun:100.200.0.10:3478 | turn:100.200.0.10:3478?transport=udp "
              "turn:100.200.0.10:53?transport=udp turn:100.200.0.10:3478?transport=tcp");
}

static void t_hosts(void)
{
    /* without --public-host: --external-ip (both families), else each listener's address */
    CHECK_STR(URLS("--turn-listen", "[::]:3478", "--tls-listen", "", "--external-ip", "2001:db8::5",
                   "--external-ip", "100.200.0.10"),
              "stun:[2001:db8::5]:3478 stun:100.200.0.10:3478 | "
              "turn:[2001:db8::5]:3478?transport=udp turn:[2001:db8::5]:3478?transport=tcp "
              "turn:100.200.0.10:3478?transport=udp turn:100.200.0.10:3478?transport=tcp");
    CHECK_STR(
        URLS("--turn-listen", "127.0.0.1:3478", "--turn-listen", "[::1]:3479", "--tls-listen", ""),
        "stun:127.0.0.1:3478 stun:[::1]:3479 | turn:127.0.0.1:3478?transport=udp "
        "turn:[::1]:3479?transport=udp turn:127.0.0.1:3478?transport=tcp "
        "turn:[::1]:3479?transport=tcp");
    /* --public-host wins over --external-ip */
    CHECK_STR(URLS("--turn-listen", "0.0.0.0:3478", "--tls-listen", "", "--external-ip",
                   "100.200.0.10", "--public-host", "a.test,b.test"),
              "stun:a.test:3478 stun:b.test:3478 | turn:a.test:3478?transport=udp "
              "turn:a.test:3478?transport=tcp turn:b.test:3478?transport=udp "
              "turn:b.test:3478?transport=tcp");
}

static void t_wildcard_refused(void)
{
    const char *r = URLS("--turn-listen", "0.0.0.0:3478");
    CHECK(strstr(r, "ERR: ") == r);
    CHECK(strstr(r, "'0.0.0.0:3478' needs --public-host or --external-ip"));
    r = URLS("--turn-listen", "127.0.0.1:3478", "--tcp-listen", "[::]:80");
    CHECK(strstr(r, "'[::]:80' needs --public-host or --external-ip"));
    r = URLS("--turn-listen", "127.0.0.1:3478", "--udp-listen", "nonsense");
    CHECK(strstr(r, "invalid --udp-listen 'nonsense'"));
}

static void t_layers(void)
{
    char errbuf[256];
    cfg c;
    /* repeats within one source add up; the environment's list is replaced by the flags' */
    setenv("TURNKEY_TURN_LISTEN", "127.0.0.1:1", 1);
    setenv("TURNKEY_ALLOW_PEER", "10.0.0.0/8", 1);
    const char *a1[] = {"--turn-listen", "127.0.0.1:2", "--turn-listen=127.0.0.1:3", "--allow-peer",
                        "10.1.0.0/16"};
    CHECK_INT(load(&c, a1, 5, errbuf, sizeof errbuf), 0);
    CHECK_INT(c.n_turn_listen, 2);
    CHECK_STR(c.turn_listen[0], "127.0.0.1:2");
    CHECK_STR(c.turn_listen[1], "127.0.0.1:3");
    CHECK_INT(c.n_allow_peer, 2); /* allow-peer adds across sources, as before */
    CHECK_INT(c.n_tls_listen, 1); /* untouched: the default */
    cfg_free(&c);
    const char *a2[] = {"--tls-listen", ""};
    CHECK_INT(load(&c, a2, 2, errbuf, sizeof errbuf), 0);
    CHECK_INT(c.n_turn_listen, 1); /* from the environment */
    CHECK_STR(c.turn_listen[0], "127.0.0.1:1");
    CHECK_INT(c.n_tls_listen, 0); /* "" = off */
    cfg_free(&c);
    unsetenv("TURNKEY_TURN_LISTEN");
    unsetenv("TURNKEY_ALLOW_PEER");
}

static void t_external_syntax(void)
{
    struct sockaddr_storage pub, priv;
    bool hp;
    CHECK_INT(cfg_parse_external("100.200.0.10", &pub, &priv, &hp), 0);
    CHECK(!hp && pub.ss_family == AF_INET);
    CHECK_INT(cfg_parse_external("100.200.0.10/10.0.0.2", &pub, &priv, &hp), 0);
    CHECK(hp && priv.ss_family == AF_INET);
    CHECK(((struct sockaddr_in *)&priv)->sin_addr.s_addr == inet_addr("10.0.0.2"));
    CHECK_INT(cfg_parse_external("2001:db8::1/fd00::2", &pub, &priv, &hp), 0);
    CHECK(hp && pub.ss_family == AF_INET6);
    static const char *bad[] = {"",
                                "/",
                                "1.2.3.4/",
                                "/1.2.3.4",
                                "1.2.3",
                                "0.0.0.0",
                                "::",
                                "1.2.3.4/0.0.0.0",
                                "1.2.3.4/::1",
                                "::1/1.2.3.4",
                                "a.example",
                                "1.2.3.4:3478",
                                "1.2.3.4/5.6.7.8/9.9.9.9",
                                "1.2.3.4 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(cfg_parse_external(bad[i], &pub, &priv, &hp), -1);
    char errbuf[256];
    cfg c;
    const char *twice[] = {"--external-ip", "1.2.3.4", "--external-ip", "5.6.7.8"};
    CHECK_INT(load(&c, twice, 4, errbuf, sizeof errbuf), -1);
    CHECK(strstr(errbuf, "at most one per address family"));
    cfg_free(&c);
    const char *both[] = {"--external-ip", "1.2.3.4/10.0.0.1", "--external-ip", "2001:db8::1"};
    CHECK_INT(load(&c, both, 4, errbuf, sizeof errbuf), 0);
    CHECK_INT(c.n_external_ip, 2);
    cfg_free(&c);
}

int main(void)
{
    TK_RUN(t_defaults);
    TK_RUN(t_cloudflare_order);
    TK_RUN(t_hosts);
    TK_RUN(t_wildcard_refused);
    TK_RUN(t_layers);
    TK_RUN(t_external_syntax);
    return tk_test_summary();
}
