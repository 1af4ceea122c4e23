"""Connection limits from the shaping rules, counted at the server (docs/shaping.md): a
domain's max_connections is never exceeded; domains with the same MX host set (or the same
static route host) are one site and share one connection limit (MX rollup); a provider
matched by domain suffix shares its limit across domains on different servers.

The server counts connections itself (+1 when it accepts one, -1 when it answers QUIT, or
when the connection is gone without one), over its whole life. Every message must also be
delivered exactly once (events and server)."""

import collections

from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)
from shaping_fixtures import (counting_smtpd, finish_all_delivered as _finish, inject_campaign,
                              peak_overlap, start_engine as _start, write_rules)
import servers

SERVER_DELAY_S = 0.05      # per message: enough that a single connection could not keep up
LIMIT = 3


def _conn_report(*srvs):
    out = []
    for s in srvs:
        snap = s.snapshot()
        per = collections.Counter(m["conn"] for m in snap["messages"])
        out.append("%s:%d peak %d, %d connections, messages per connection %s" % (
            s.addr, s.port, snap["peak"], len(snap["conns"]), sorted(per.values())))
    return "; ".join(out)


def test_domain_max_connections_never_exceeded(net, redis_server, engines, salvo_bin,
                                              tmp_path):
    srv, addr, port = counting_smtpd(net, delay_s=SERVER_DELAY_S)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"conn.test": {"max_connections": LIMIT}}})
    c, e = _start(engines, redis_server, rules, routes=[("conn.test", addr, port)])
    rcpts = ["u%d@conn.test" % i for i in range(200)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "conn", rcpts)
    _finish(c, e, rcpts, {"conn": len(rcpts)}, srv.received)
    snap = srv.snapshot()
    print(_conn_report(srv))
    assert snap["peak"] <= LIMIT, "the server saw %d connections at once (limit %d): %s" % (
        snap["peak"], LIMIT, _conn_report(srv))
    # the limit was what held it back: with 200 messages queued and a slow server the
    # engine uses every connection it may (else this test proves nothing)
    assert snap["peak"] == LIMIT, "only %d connections at once: %s" % (
        snap["peak"], _conn_report(srv))
    assert peak_overlap(snap["conns"]) <= LIMIT


def test_same_static_route_host_shares_the_limit(net, redis_server, engines, salvo_bin,
                                                 tmp_path):
    """Two domains routed to one host: one site, one connection limit (not one each)."""
    srv, addr, port = counting_smtpd(net, delay_s=SERVER_DELAY_S)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"one.test": {"max_connections": LIMIT},
                    "two.test": {"max_connections": LIMIT}}})
    c, e = _start(engines, redis_server, rules,
                  routes=[("one.test", addr, port), ("two.test", addr, port)])
    rcpts = ["u%d@%s" % (i, "one.test" if i % 2 else "two.test") for i in range(200)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "both", rcpts)
    _finish(c, e, rcpts, {"both": len(rcpts)}, srv.received)
    snap = srv.snapshot()
    print(_conn_report(srv))
    assert snap["peak"] <= LIMIT, (
        "two domains on one route host had %d connections open at once (shared limit %d): "
        "%s" % (snap["peak"], LIMIT, _conn_report(srv)))
    # both domains were really sent concurrently through the shared slots
    doms = {m["rcpts"][0].split("@")[1] for m in snap["messages"]}
    assert doms == {"one.test", "two.test"}, doms


def test_mx_rollup_domains_with_same_mx_set_share_the_limit(net, redis_server, engines,
                                                            salvo_bin, tmp_path):
    """Two domains whose MX sets are the same hosts (in another order, another case): one
    site. A third domain on another MX set is a separate site with its own limit."""
    # every MX host listens on the one --mx-port, each on its own address
    addr, oaddr = net.addr(), net.addr()
    port = net.port(addr, oaddr)
    srv, _, _ = counting_smtpd(net, addr=addr, port=port, delay_s=SERVER_DELAY_S)
    other, _, _ = counting_smtpd(net, addr=oaddr, port=port, delay_s=SERVER_DELAY_S)
    zone = (servers.DnsZone()
            .mx("one.test", "mx1.hoster.test", 10).mx("one.test", "mx2.hoster.test", 20)
            .mx("two.test", "MX2.hoster.test", 10).mx("two.test", "mx1.hoster.test", 20)
            .mx("solo.test", "mx.solo.test", 10)
            .a("mx1.hoster.test", addr).a("mx2.hoster.test", addr)
            .a("mx.solo.test", oaddr))
    dns = net.dns(zone)
    rules = write_rules(tmp_path / "rules.json", {"defaults": {"max_connections": LIMIT}})
    c, e = _start(engines, redis_server, rules,
                  extra=["--resolver", dns.resolver, "--mx-port", str(port)])
    rcpts = ["u%d@%s" % (i, ("one.test", "two.test", "solo.test")[i % 3]) for i in range(300)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "mx", rcpts)
    _finish(c, e, rcpts, {"mx": len(rcpts)}, lambda: srv.received() + other.received())
    snap, osnap = srv.snapshot(), other.snapshot()
    print(_conn_report(srv, other))
    doms = {m["rcpts"][0].split("@")[1] for m in snap["messages"]}
    assert doms == {"one.test", "two.test"}, doms
    assert snap["peak"] <= LIMIT, (
        "one.test and two.test (same MX set) had %d connections open at once, shared limit "
        "%d: %s" % (snap["peak"], LIMIT, _conn_report(srv, other)))
    assert osnap["peak"] <= LIMIT, _conn_report(srv, other)
    # the third site is not held back by the first: it had its own connections
    assert osnap["peak"] >= 2, _conn_report(srv, other)


def test_provider_by_domain_suffix_shares_the_limit_across_servers(
        net, redis_server, engines, salvo_bin, tmp_path):
    """A provider matched by recipient domain suffix: its domains are on different servers
    (different sites by MX), but share the provider's connection limit."""
    s1, a1, p1 = counting_smtpd(net, delay_s=SERVER_DELAY_S)
    s2, a2, p2 = counting_smtpd(net, delay_s=SERVER_DELAY_S)
    rules = write_rules(tmp_path / "rules.json", {
        "defaults": {"max_connections": 8},
        "providers": [{"name": "bigmail", "domain_suffixes": ["bigmail.test"],
                       "limits": {"max_connections": LIMIT}}]})
    c, e = _start(engines, redis_server, rules,
                  routes=[("a.bigmail.test", a1, p1), ("b.bigmail.test", a2, p2)])
    rcpts = ["u%d@%s" % (i, "a.bigmail.test" if i % 2 else "b.bigmail.test")
             for i in range(200)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "prov", rcpts)
    _finish(c, e, rcpts, {"prov": len(rcpts)}, lambda: s1.received() + s2.received())
    both = s1.snapshot()["conns"] + s2.snapshot()["conns"]
    peak = peak_overlap(both)
    print("provider peak across both servers %d; %s" % (peak, _conn_report(s1, s2)))
    assert peak <= LIMIT, (
        "provider bigmail (limit %d) had %d connections open at once over its two servers: "
        "%s" % (LIMIT, peak, _conn_report(s1, s2)))
    assert s1.received() and s2.received()
