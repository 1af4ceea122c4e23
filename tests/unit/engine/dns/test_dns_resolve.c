/* tests/unit/engine/dns/test_dns_resolve.c — the resolver end to end on the real ring against
 * a real dnsmasq on loopback: MX order, implicit and null MX, NXDOMAIN, no addresses, the
 * cache, IP literals, a silent server, coalescing and teardown with lookups in flight. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/dns/dns.h"
#include "engine/ring/ring.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
#define DEADLINE_MS 5000 /* only a guard against hanging; never a verdict */

static struct ring *ring;
static pid_t dnsmasq_pid = -1;
static uint16_t dnsmasq_port;
static char tmpdir[64];

/* ---- dnsmasq fixture ---- */

static uint16_t free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        return 0;
    close(fd);
    return ntohs(sin.sin_port);
}

/* Sends one A query for probe.test and waits briefly for any answer. */
static bool dnsmasq_answers(uint16_t port)
{
    static const uint8_t q[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                 5, 'p', 'r', 'o', 'b', 'e', 4, 't', 'e', 's', 't', 0,
                                 0, 1, 0, 1 };
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t buf[512];
    bool ok = sendto(fd, q, sizeof q, 0, (struct sockaddr *)&sin, sizeof sin) == sizeof q &&
              recv(fd, buf, sizeof buf, 0) > 0;
    close(fd);
    return ok;
}

static bool start_dnsmasq(void)
{
    char port_arg[32], log_path[128];
    snprintf(port_arg, sizeof port_arg, "--port=%u", dnsmasq_port);
    snprintf(log_path, sizeof log_path, "%s/dnsmasq.log", tmpdir);
    char *argv[] = {
        DNSMASQ, "--no-daemon", port_arg, "--listen-address=127.0.0.1", "--bind-interfaces",
        "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
        "--local=/test/", "--local-ttl=60",
        /* mx.test: one preferred exchanger, two equal backups, one of them dual-stack */
        "--mx-host=mx.test,mx1.mx.test,10", "--mx-host=mx.test,mx2.mx.test,20",
        "--mx-host=mx.test,mx3.mx.test,20",
        "--host-record=mx1.mx.test,127.0.92.1",
        "--host-record=mx2.mx.test,127.0.92.2,2001:db8::2",
        "--host-record=mx3.mx.test,127.0.92.3",
        /* implicit.test: no MX, an address of its own */
        "--host-record=implicit.test,127.0.92.9",
        /* nullmx.test: RFC 7505 — preference 0, root exchange */
        "--dns-rr=nullmx.test,15,000000",
        /* dangling.test: its only exchanger does not exist */
        "--mx-host=dangling.test,nowhere.test,10",
        /* half.test: one exchanger resolves, one does not */
        "--mx-host=half.test,nowhere.test,5", "--mx-host=half.test,mx3.mx.test,10",
        /* txtonly.test: exists, but neither MX nor address */
        "--txt-record=txtonly.test,hello",
        NULL,
    };
    pid_t parent = getpid();
    dnsmasq_pid = fork();
    if (dnsmasq_pid < 0)
        return false;
    if (dnsmasq_pid == 0) {
        /* Dies with the test even when it aborts (a failed assertion, ASan, a timeout). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        execv(DNSMASQ, argv);
        _exit(127);
    }
    for (int i = 0; i < 50; i++) {
        if (dnsmasq_answers(dnsmasq_port))
            return true;
        int status;
        if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
            dnsmasq_pid = -1; /* exited: most likely the port was taken meanwhile */
            return false;
        }
    }
    return false;
}

static void stop_dnsmasq(void)
{
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
        dnsmasq_pid = -1;
    }
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/salvo-dns-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        dnsmasq_port = free_udp_port();
        if (dnsmasq_port && start_dnsmasq())
            break;
        stop_dnsmasq();
    }
    if (dnsmasq_pid < 0) {
        fprintf(stderr, "could not start dnsmasq (log in %s)\n", tmpdir);
        return -1;
    }
    struct ring_config rc = { .entries = 64, .recv_buffers = 16, .recv_buf_bytes = 2048 };
    return ring_create(&ring, &rc) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_dnsmasq();
    ring_destroy(ring);
    char path[128];
    snprintf(path, sizeof path, "%s/dnsmasq.log", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return 0;
}

/* ---- resolver helpers ---- */

struct got {
    int calls;
    struct dns_result res;
    bool inside;             /* the callback ran while it was */
};

static bool in_resolve;

static void on_result(void *arg, const struct dns_result *res)
{
    struct got *g = arg;
    g->calls++;
    g->inside |= in_resolve;
    memcpy(&g->res, res, sizeof *res);
}

static struct dns *mk_dns_at(uint16_t port, unsigned timeout_ms, bool ipv6)
{
    struct dns_config cfg;
    dns_config_defaults(&cfg);
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%u", port);
    cfg.servers = servers;
    cfg.timeout_ms = timeout_ms;
    cfg.ipv6 = ipv6;
    struct dns *d = NULL;
    const char *err = NULL;
    assert_int_equal(dns_create(&d, ring, &cfg, &err), 0);
    return d;
}

static struct dns *mk_dns(void)
{
    return mk_dns_at(dnsmasq_port, 2000, true);
}

static void run_until(int *counter, int want)
{
    uint64_t start = ring_now_ms(ring);
    while (*counter < want && ring_now_ms(ring) - start < DEADLINE_MS)
        assert_int_equal(ring_run_once(ring, 100), 0);
    assert_int_equal(*counter, want);
}

/* Destroys d and lets the ring release what it still holds of it. */
static void destroy_dns(struct dns *d)
{
    dns_destroy(d);
    uint64_t start = ring_now_ms(ring);
    while (ring_pending(ring) > 0 && ring_now_ms(ring) - start < DEADLINE_MS)
        ring_run_once(ring, 10);
    assert_int_equal(ring_pending(ring), 0);
}

static int resolve_mx(struct dns *d, const char *domain, struct got *g)
{
    in_resolve = true;
    int rc = dns_resolve_mx(d, domain, on_result, g);
    in_resolve = false;
    return rc;
}

static int resolve_host(struct dns *d, const char *name, struct got *g)
{
    in_resolve = true;
    int rc = dns_resolve_host(d, name, on_result, g);
    in_resolve = false;
    return rc;
}

static const char *addr_text(const struct sockaddr_storage *ss)
{
    static char buf[INET6_ADDRSTRLEN];
    return ring_addr_to_text((const struct sockaddr *)ss, buf, sizeof buf);
}

/* ---- tests ---- */

static void test_mx_order_and_addresses(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g = { 0 };
    assert_int_equal(resolve_mx(d, "mx.test", &g), 0);
    assert_int_equal(g.calls, 0);
    run_until(&g.calls, 1);
    assert_false(g.inside);
    assert_int_equal(g.res.status, DNS_OK);
    assert_false(g.res.implicit_mx);
    assert_int_equal(g.res.nhosts, 3);
    assert_string_equal(g.res.hosts[0].name, "mx1.mx.test");
    assert_int_equal(g.res.hosts[0].pref, 10);
    assert_int_equal(g.res.hosts[0].naddrs, 1);
    assert_string_equal(addr_text(&g.res.hosts[0].addrs[0]), "127.0.92.1");
    assert_int_equal(g.res.hosts[1].pref, 20);
    assert_int_equal(g.res.hosts[2].pref, 20);
    for (unsigned i = 1; i < 3; i++) {
        const struct dns_host *h = &g.res.hosts[i];
        if (strcmp(h->name, "mx2.mx.test") == 0) {
            assert_int_equal(h->naddrs, 2);
            assert_string_equal(addr_text(&h->addrs[0]), "127.0.92.2"); /* IPv4 first */
            assert_string_equal(addr_text(&h->addrs[1]), "2001:db8::2");
        } else {
            assert_string_equal(h->name, "mx3.mx.test");
            assert_int_equal(h->naddrs, 1);
            assert_string_equal(addr_text(&h->addrs[0]), "127.0.92.3");
        }
    }
    struct dns_stats st;
    dns_get_stats(d, &st);
    assert_int_equal(st.queries, 1 + 3 * 2);
    assert_int_equal(st.cache_misses, 1);
    assert_int_equal(st.cache_hits, 0);
    destroy_dns(d);
}

static void test_cache_hit_on_second_lookup(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g1 = { 0 }, g2 = { 0 };
    assert_int_equal(resolve_mx(d, "mx.test", &g1), 0);
    run_until(&g1.calls, 1);
    struct dns_stats before, after;
    dns_get_stats(d, &before);
    /* Case and a trailing dot do not matter; still never answered inside the call. */
    assert_int_equal(resolve_mx(d, "MX.Test.", &g2), 0);
    assert_int_equal(g2.calls, 0);
    run_until(&g2.calls, 1);
    assert_false(g2.inside);
    dns_get_stats(d, &after);
    assert_int_equal(after.queries, before.queries);
    assert_int_equal(after.cache_hits, before.cache_hits + 1);
    assert_int_equal(g2.res.status, DNS_OK);
    assert_int_equal(g2.res.nhosts, 3);
    assert_string_equal(g2.res.hosts[0].name, "mx1.mx.test");
    assert_int_equal(g2.res.hosts[0].naddrs, 1);

    /* The exchangers were cached as hosts too. */
    struct got g3 = { 0 };
    assert_int_equal(resolve_host(d, "mx2.mx.test", &g3), 0);
    run_until(&g3.calls, 1);
    dns_get_stats(d, &after);
    assert_int_equal(after.queries, before.queries);
    assert_int_equal(after.cache_hits, before.cache_hits + 2);
    assert_int_equal(g3.res.status, DNS_OK);
    assert_int_equal(g3.res.hosts[0].naddrs, 2);
    destroy_dns(d);
}

static void test_implicit_mx(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g = { 0 };
    assert_int_equal(resolve_mx(d, "implicit.test", &g), 0);
    run_until(&g.calls, 1);
    assert_int_equal(g.res.status, DNS_OK);
    assert_true(g.res.implicit_mx);
    assert_int_equal(g.res.nhosts, 1);
    assert_string_equal(g.res.hosts[0].name, "implicit.test");
    assert_int_equal(g.res.hosts[0].naddrs, 1);
    assert_string_equal(addr_text(&g.res.hosts[0].addrs[0]), "127.0.92.9");
    destroy_dns(d);
}

static void test_null_mx(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g = { 0 };
    assert_int_equal(resolve_mx(d, "nullmx.test", &g), 0);
    run_until(&g.calls, 1);
    assert_int_equal(g.res.status, DNS_NULLMX);
    assert_non_null(g.res.error);
    assert_int_equal(g.res.nhosts, 0);
    destroy_dns(d);
}

static void test_nxdomain(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g = { 0 }, g2 = { 0 };
    assert_int_equal(resolve_mx(d, "does-not-exist.test", &g), 0);
    run_until(&g.calls, 1);
    assert_int_equal(g.res.status, DNS_NXDOMAIN);
    assert_non_null(g.res.error);
    /* Negative answers are cached as well. */
    struct dns_stats st;
    dns_get_stats(d, &st);
    assert_int_equal(resolve_mx(d, "does-not-exist.test", &g2), 0);
    run_until(&g2.calls, 1);
    assert_int_equal(g2.res.status, DNS_NXDOMAIN);
    struct dns_stats st2;
    dns_get_stats(d, &st2);
    assert_int_equal(st2.queries, st.queries);
    assert_int_equal(st2.cache_hits, st.cache_hits + 1);
    destroy_dns(d);
}

static void test_no_hosts(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
    /* MX whose only exchanger does not exist: permanent. */
    assert_int_equal(resolve_mx(d, "dangling.test", &g1), 0);
    /* No MX and no address records: permanent. */
    assert_int_equal(resolve_mx(d, "txtonly.test", &g2), 0);
    /* One exchanger missing: the other is used. */
    assert_int_equal(resolve_mx(d, "half.test", &g3), 0);
    run_until(&g1.calls, 1);
    run_until(&g2.calls, 1);
    run_until(&g3.calls, 1);
    assert_int_equal(g1.res.status, DNS_NOHOSTS);
    assert_int_equal(g1.res.nhosts, 0);
    assert_int_equal(g2.res.status, DNS_NOHOSTS);
    assert_int_equal(g3.res.status, DNS_OK);
    assert_int_equal(g3.res.nhosts, 1);
    assert_string_equal(g3.res.hosts[0].name, "mx3.mx.test");
    assert_int_equal(g3.res.hosts[0].pref, 10);
    destroy_dns(d);
}

static void test_resolve_host(void **state)
{
    (void)state;
    struct dns *d = mk_dns_at(dnsmasq_port, 2000, false);
    struct got g1 = { 0 }, g2 = { 0 };
    assert_int_equal(resolve_host(d, "mx2.mx.test", &g1), 0);
    assert_int_equal(resolve_host(d, "unknown.test", &g2), 0);
    run_until(&g1.calls, 1);
    run_until(&g2.calls, 1);
    assert_int_equal(g1.res.status, DNS_OK);
    assert_int_equal(g1.res.nhosts, 1);
    assert_int_equal(g1.res.hosts[0].naddrs, 1); /* ipv6 off: no AAAA */
    assert_string_equal(addr_text(&g1.res.hosts[0].addrs[0]), "127.0.92.2");
    assert_int_equal(g2.res.status, DNS_NXDOMAIN);
    struct dns_stats st;
    dns_get_stats(d, &st);
    assert_int_equal(st.queries, 2);
    destroy_dns(d);
}

static void test_ip_literals(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
    assert_int_equal(resolve_host(d, "127.0.92.55", &g1), 0);
    assert_int_equal(resolve_host(d, "2001:db8::55", &g2), 0);
    assert_int_equal(resolve_mx(d, "[IPv6:2001:db8::56]", &g3), 0);
    assert_int_equal(g1.calls + g2.calls + g3.calls, 0);
    run_until(&g1.calls, 1);
    run_until(&g2.calls, 1);
    run_until(&g3.calls, 1);
    assert_false(g1.inside || g2.inside || g3.inside);
    assert_int_equal(g1.res.status, DNS_OK);
    assert_int_equal(g1.res.nhosts, 1);
    assert_int_equal(g1.res.hosts[0].naddrs, 1);
    assert_string_equal(addr_text(&g1.res.hosts[0].addrs[0]), "127.0.92.55");
    assert_string_equal(addr_text(&g2.res.hosts[0].addrs[0]), "2001:db8::55");
    assert_int_equal(g3.res.status, DNS_OK);
    assert_string_equal(addr_text(&g3.res.hosts[0].addrs[0]), "2001:db8::56");
    struct dns_stats st;
    dns_get_stats(d, &st);
    assert_int_equal(st.queries, 0);
    destroy_dns(d);
}

static void test_invalid_name(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g1 = { 0 }, g2 = { 0 };
    assert_int_equal(resolve_mx(d, "", &g1), 0);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(resolve_mx(d, longname, &g2), 0);
    run_until(&g1.calls, 1);
    run_until(&g2.calls, 1);
    assert_int_equal(g1.res.status, DNS_NXDOMAIN);
    assert_int_equal(g2.res.status, DNS_NXDOMAIN);
    destroy_dns(d);
}

static void test_silent_server_tempfails(void **state)
{
    (void)state;
    /* A bound UDP socket nobody reads: queries vanish without an ICMP error. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);

    struct dns *d = mk_dns_at(ntohs(sin.sin_port), 100, true);
    struct got g1 = { 0 }, g2 = { 0 };
    assert_int_equal(resolve_mx(d, "mx.test", &g1), 0);
    assert_int_equal(resolve_host(d, "mx1.mx.test", &g2), 0);
    run_until(&g1.calls, 1);
    run_until(&g2.calls, 1);
    assert_int_equal(g1.res.status, DNS_TEMPFAIL);
    assert_non_null(g1.res.error);
    assert_int_equal(g2.res.status, DNS_TEMPFAIL);
    destroy_dns(d);
    close(fd);
}

static void test_coalesces_identical_lookups(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g[3] = { { 0 } };
    int total = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(resolve_mx(d, "mx.test", &g[i]), 0);
    for (uint64_t start = ring_now_ms(ring);
         total < 3 && ring_now_ms(ring) - start < DEADLINE_MS;) {
        ring_run_once(ring, 100);
        total = g[0].calls + g[1].calls + g[2].calls;
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].res.status, DNS_OK);
        assert_int_equal(g[i].res.nhosts, 3);
    }
    struct dns_stats st;
    dns_get_stats(d, &st);
    assert_int_equal(st.queries, 1 + 3 * 2);
    destroy_dns(d);
}

static void test_destroy_with_lookups_in_flight(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
    assert_int_equal(resolve_mx(d, "mx.test", &g1), 0);
    assert_int_equal(resolve_host(d, "mx3.mx.test", &g2), 0);
    assert_int_equal(resolve_host(d, "127.0.92.1", &g3), 0); /* queued for delivery */
    ring_run_once(ring, 0); /* sockets opened, maybe some answers in */
    int before = g1.calls + g2.calls + g3.calls;
    destroy_dns(d);
    assert_int_equal(g1.calls + g2.calls + g3.calls, before);
}

struct reentrant {
    struct dns *d;
    int calls;
    bool destroy;
    struct got again;
};

static void on_reentrant(void *arg, const struct dns_result *res)
{
    struct reentrant *r = arg;
    (void)res;
    r->calls++;
    if (r->destroy)
        dns_destroy(r->d);
    else
        assert_int_equal(dns_resolve_mx(r->d, "mx.test", on_result, &r->again), 0);
}

static void test_callbacks_may_reenter(void **state)
{
    (void)state;
    struct dns *d = mk_dns();
    struct reentrant a = { .d = d };
    assert_int_equal(dns_resolve_mx(d, "implicit.test", on_reentrant, &a), 0);
    run_until(&a.calls, 1);
    run_until(&a.again.calls, 1);
    assert_int_equal(a.again.res.status, DNS_OK);

    /* Destroying from a callback: the other completed lookup is then not reported. */
    struct reentrant b = { .d = d, .destroy = true };
    struct got other = { 0 };
    assert_int_equal(dns_resolve_host(d, "127.0.92.1", on_reentrant, &b), 0);
    assert_int_equal(dns_resolve_host(d, "127.0.92.2", on_result, &other), 0);
    run_until(&b.calls, 1);
    for (int i = 0; i < 5; i++)
        ring_run_once(ring, 10);
    assert_int_equal(other.calls, 0);
    uint64_t start = ring_now_ms(ring);
    while (ring_pending(ring) > 0 && ring_now_ms(ring) - start < DEADLINE_MS)
        ring_run_once(ring, 10);
    assert_int_equal(ring_pending(ring), 0);
}

static void test_status_text_and_defaults(void **state)
{
    (void)state;
    assert_string_equal(dns_status_to_text(DNS_OK), "ok");
    assert_string_equal(dns_status_to_text(DNS_NULLMX), "nullmx");
    struct dns_config cfg;
    dns_config_defaults(&cfg);
    assert_int_equal(cfg.timeout_ms, 2000);
    assert_int_equal(cfg.tries, 2);
    assert_int_equal(cfg.cache_entries, 10000);
    assert_true(cfg.ipv6);
    struct dns *d = NULL;
    const char *err = NULL;
    cfg.servers = "not a server list";
    assert_int_not_equal(dns_create(&d, ring, &cfg, &err), 0);
    assert_non_null(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mx_order_and_addresses),
        cmocka_unit_test(test_cache_hit_on_second_lookup),
        cmocka_unit_test(test_implicit_mx),
        cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_nxdomain),
        cmocka_unit_test(test_no_hosts),
        cmocka_unit_test(test_resolve_host),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_invalid_name),
        cmocka_unit_test(test_silent_server_tempfails),
        cmocka_unit_test(test_coalesces_identical_lookups),
        cmocka_unit_test(test_destroy_with_lookups_in_flight),
        cmocka_unit_test(test_callbacks_may_reenter),
        cmocka_unit_test(test_status_text_and_defaults),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
