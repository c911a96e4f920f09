/* cfg: config file syntax, coturn (turnserver.conf) names, --print-config round trip. */
#include <stdlib.h>
#include <unistd.h>

#include "tk_test.h"
#include "turnkey/cfg.h"

static char path[64];
static char errbuf[4096];

/* Writes text to a fresh temporary file (path) and loads it with --config; err text in
 * errbuf. Returns cfg_load's result. */
static int load_text(cfg *c, const char *text)
{
    snprintf(path, sizeof path, "/tmp/tk-cfg-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -99;
    close(fd);
    char *argv[] = {"serve", "--config", path, NULL};
    FILE *err = fmemopen(errbuf, sizeof errbuf, "w");
    int rc = cfg_load(c, 3, argv, err);
    fclose(err);
    unlink(path);
    return rc;
}

static void t_coturn_names(void)
{
    cfg c;
    int rc = load_text(&c, "# a turnserver.conf\n"
                           "listening-ip=192.0.2.10\n"
                           "listening-port=3479\n"
                           "tls-listening-port=5350\n"
                           "relay-ip=192.0.2.11\n"
                           "min-port=50000\n"
                           "max-port=50100\n"
                           "realm=example.org\n"
                           "user-quota=0\n"
                           "total-quota=500\n"
                           "cert=/etc/ssl/c.pem\n"
                           "pkey=/etc/ssl/k.pem\n"
                           "allowed-peer-ip=10.0.0.5\n"
                           "denied-peer-ip=203.0.113.0-203.0.113.9\n"
                           "fingerprint\n"
                           "lt-cred-mech\n");
    CHECK_INT(rc, 0);
    CHECK_INT(c.n_turn_listen, 1);
    CHECK_STR(c.turn_listen[0], "192.0.2.10:3479");
    CHECK_INT(c.n_tls_listen, 1);
    CHECK_STR(c.tls_listen[0], "192.0.2.10:5350");
    CHECK_STR(c.relay_ip, "192.0.2.11");
    CHECK_STR(c.relay_ports, "50000-50100");
    CHECK_STR(c.realm, "example.org");
    CHECK_INT(c.user_quota, 1000000);
    CHECK_INT(c.max_allocations, 500);
    CHECK_STR(c.tls_cert, "/etc/ssl/c.pem");
    CHECK_STR(c.tls_key, "/etc/ssl/k.pem");
    CHECK_INT(c.n_allow_peer, 1);
    CHECK_STR(c.allow_peer[0], "10.0.0.5");
    CHECK_INT(c.n_deny_peer, 2); /* .0-.9 = .0/29 + .8/31 */
    CHECK_STR(c.deny_peer[0], "203.0.113.0/29");
    CHECK_STR(c.deny_peer[1], "203.0.113.8/31");
    cfg_free(&c);
}

static void t_no_tls_and_ipv6_host(void)
{
    cfg c;
    CHECK_INT(load_text(&c, "no-tls\nlistening-ip = ::1\n"), 0);
    CHECK_INT(c.n_tls_listen, 0);
    CHECK_INT(c.n_turn_listen, 1);
    CHECK_STR(c.turn_listen[0], "[::1]:3478");
    cfg_free(&c);
    CHECK_INT(load_text(&c, "no-tls = false\n"), 0);
    CHECK_INT(c.n_tls_listen, 1);
    CHECK_STR(c.tls_listen[0], "127.0.0.1:5349");
    cfg_free(&c);
}

/* Several listening-ip lines (either order with the ports) give one listener each. */
static void t_listening_ips_times_ports(void)
{
    cfg c;
    CHECK_INT(load_text(&c, "listening-port=3480\nlistening-ip=10.0.0.5\n"
                            "tls-listening-port=443\nlistening-ip=2001:db8::5\n"),
              0);
    CHECK_INT(c.n_turn_listen, 2);
    CHECK_STR(c.turn_listen[0], "10.0.0.5:3480");
    CHECK_STR(c.turn_listen[1], "[2001:db8::5]:3480");
    CHECK_INT(c.n_tls_listen, 2);
    CHECK_STR(c.tls_listen[0], "10.0.0.5:443");
    CHECK_STR(c.tls_listen[1], "[2001:db8::5]:443");
    cfg_free(&c);
}

/* no-udp / no-tcp: the UDP+TCP listeners become TCP-only / UDP-only ones. */
static void t_no_udp_no_tcp(void)
{
    cfg c;
    CHECK_INT(load_text(&c, "listening-port=3480\nno-udp\n"), 0);
    CHECK_INT(c.n_turn_listen, 0);
    CHECK_INT(c.n_udp_listen, 0);
    CHECK_INT(c.n_tcp_listen, 1);
    CHECK_STR(c.tcp_listen[0], "127.0.0.1:3480");
    cfg_free(&c);
    CHECK_INT(load_text(&c, "no-tcp\nudp-listen = 127.0.0.1:53\n"), 0);
    CHECK_INT(c.n_turn_listen, 0);
    CHECK_INT(c.n_tcp_listen, 0);
    CHECK_INT(c.n_udp_listen, 2);
    CHECK_STR(c.udp_listen[0], "127.0.0.1:53");
    CHECK_STR(c.udp_listen[1], "127.0.0.1:3478");
    cfg_free(&c);
    CHECK_INT(load_text(&c, "no-tcp\nno-udp\n"), -1); /* TLS alone: not served */
    cfg_free(&c);
    CHECK(strstr(errbuf, "no-udp with no-tcp leaves TLS alone") != NULL);
}

static void t_bare_flag_and_spacing(void)
{
    cfg c;
    CHECK_INT(load_text(&c, "bootstrap\n  realm=a  \ndrain-timeout =0\n"), 0);
    CHECK(c.bootstrap);
    CHECK_STR(c.realm, "a");
    CHECK_INT(c.drain_timeout, 0);
    cfg_free(&c);
}

/* Each bad file: its error names the file and the line. */
static void t_errors_name_the_line(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"realm = a\nno-such-thing = 1\n", ":2: unknown setting 'no-such-thing'"},
        {"\n\nrealm\n", ":3: expected 'realm = value'"},
        {"no-udp = sometimes\n", ":1: no-udp is a flag"},
        {"min-port=0\n", ":1: invalid min-port '0'"},
        {"listening-port = x\n", ":1: invalid listening-port 'x'"},
        {"denied-peer-ip = 10.0.0.9-10.0.0.1\n", ":1: denied-peer-ip wants an address"},
        {"allowed-peer-ip = 300.1.1.1\n", ":1: allowed-peer-ip wants an address"},
        {"no-tls = maybe\n", ":1: no-tls is a flag"},
        {"cert\n", ":1: cert needs a value"},
        {"listening-ip = turn.example.com\n", ":1: listening-ip 'turn.example.com' is not an IP"},
        {"user-quota = -1\n", ":1: user-quota must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg c;
        int rc = load_text(&c, cases[i].text);
        cfg_free(&c);
        if (rc != -1 || !strstr(errbuf, cases[i].want) || !strstr(errbuf, path))
            fprintf(stderr, "  case %zu: rc %d, err '%s'\n", i, rc, errbuf);
        CHECK_INT(rc, -1);
        CHECK(strstr(errbuf, cases[i].want) != NULL);
        CHECK(strstr(errbuf, path) != NULL);
    }
}

/* --print-config output, read back as a config file, prints the same text. */
static void t_print_config_round_trip(void)
{
    cfg c;
    CHECK_INT(load_text(&c, "realm = r\nallow-peer = 10.1.0.0/16\nallow-peer = 10.2.0.0/16\n"
                            "deny-peer = 198.51.100.0/24\nbootstrap = true\nmax-keys = 7\n"
                            "tls-listen =\n"),
              0);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    FILE *f = open_memstream(&a, &na);
    cfg_print_config(&c, f);
    fclose(f);
    cfg_free(&c);
    CHECK(strstr(a, "\nrealm = r\n") && strstr(a, "\n#data = ./var\n"));
    CHECK(strstr(a, "\nallow-peer = 10.2.0.0/16\n") && strstr(a, "\ntls-listen = \n"));
    CHECK(strstr(a, "\n#turn-listen = 127.0.0.1:3478\n") && strstr(a, "\n#udp-listen = (none)\n"));
    int rc = load_text(&c, a);
    f = open_memstream(&b, &nb);
    cfg_print_config(&c, f);
    fclose(f);
    cfg_free(&c);
    int same = rc == 0 && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    CHECK_INT(rc, 0);
    CHECK(same);
}

/* A line over the limit is an error, not two settings. */
static void t_long_line(void)
{
    char text[6000];
    memset(text, 'a', sizeof text);
    memcpy(text, "realm = ", 8);
    memcpy(text + 4200, "\nrealm = b\n", 12);
    text[4212] = '\0';
    cfg c;
    int rc = load_text(&c, text);
    cfg_free(&c);
    CHECK_INT(rc, -1);
    CHECK(strstr(errbuf, ":1: line longer than 4094 bytes") != NULL);
}

int main(void)
{
    TK_RUN(t_long_line);
    TK_RUN(t_coturn_names);
    TK_RUN(t_no_tls_and_ipv6_host);
    TK_RUN(t_listening_ips_times_ports);
    TK_RUN(t_no_udp_no_tcp);
    TK_RUN(t_bare_flag_and_spacing);
    TK_RUN(t_errors_name_the_line);
    TK_RUN(t_print_config_round_trip);
    return tk_test_summary();
}
