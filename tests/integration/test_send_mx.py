"""MX selection: preference order, falling back to the next MX when the first refuses,
never completes the connect, never greets or greets with 421; what happens when every MX
fails; null MX (RFC 7505) and NXDOMAIN."""

import smtp_scripts as S
from checks import (EXIT_BOUNCED, EXIT_DEFERRED, EXIT_OK, assert_delivered, assert_exit,
                    assert_failed)
from servers import DnsZone

FAST = 0.01   # --timeout-scale for tests that wait out a timeout (5 min -> 3 s)


def two_mx(net, domain):
    """Zone with mx1 (preference 10) and mx2 (preference 20) for domain, listed in the
    zone in reverse order so that the order of the records cannot pass for preference."""
    a1, a2 = net.addr(), net.addr()
    port = net.port(a1, a2)
    zone = (DnsZone().mx(domain, "mx2.%s" % domain, 20).mx(domain, "mx1.%s" % domain, 10)
            .a("mx1.%s" % domain, a1).a("mx2.%s" % domain, a2))
    return a1, a2, port, net.dns(zone)


def test_lowest_preference_mx_is_used(net, salvo, message):
    a1, a2, port, dns = two_mx(net, "pref.test")
    s1, s2 = net.sink(a1, port), net.sink(a2, port)
    res = salvo.send(message(), ["u1@pref.test", "u2@pref.test"], dns=dns, mx_port=port)
    assert_exit(res, EXIT_OK)
    for r in ("u1@pref.test", "u2@pref.test"):
        assert_delivered(res, r, mx_addr=a1, mx_host="mx1.pref.test")
    assert sorted(r for m in s1.messages() for r in m["rcpts"]) == ["u1@pref.test", "u2@pref.test"]
    assert s2.messages() == []


def first_mx_fails_then_second_delivers(net, salvo, message, domain, start_first, scale=None):
    a1, a2, port, dns = two_mx(net, domain)
    first = start_first(a1, port)
    second = net.sink(a2, port)
    rcpt = "user@%s" % domain
    res = salvo.send(message(), rcpt, dns=dns, mx_port=port, scale=scale)
    assert_exit(res, EXIT_OK)
    assert_delivered(res, rcpt, mx_addr=a2, mx_port=port, mx_host="mx2.%s" % domain)
    assert [m["rcpts"] for m in second.messages()] == [[rcpt]]
    return first, res


def test_falls_back_when_first_mx_refuses_connections(net, salvo, message):
    first_mx_fails_then_second_delivers(net, salvo, message, "refuse.test",
                                        lambda a, p: None)   # nothing listens on mx1


def test_falls_back_when_first_mx_connect_times_out(net, salvo, message):
    first_mx_fails_then_second_delivers(net, salvo, message, "blackhole.test",
                                        net.blackhole, scale=FAST)


def test_falls_back_when_first_mx_never_greets(net, salvo, message):
    srv, _ = first_mx_fails_then_second_delivers(
        net, salvo, message, "silent.test", lambda a, p: net.raw(a, p, S.SilentGreeting()),
        scale=FAST)
    assert len(srv.connections) >= 1      # it really was tried first


def test_falls_back_when_first_mx_greets_421(net, salvo, message):
    srv, _ = first_mx_fails_then_second_delivers(
        net, salvo, message, "busy.test", lambda a, p: net.raw(a, p, S.Greeting421()))
    assert len(srv.connections) >= 1


def test_every_mx_refusing_defers(net, salvo, message):
    a1, a2, port, dns = two_mx(net, "down.test")        # no server at all
    res = salvo.send(message(), "x@down.test", dns=dns, mx_port=port)
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "x@down.test", "deferred", command="connect", code=None,
                  reply_has=["refused"])


def test_single_mx_greeting_421_defers(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    net.raw(addr, port, S.Greeting421())
    res = salvo.send(message(), "x@busy1.test", routes=[("busy1.test", addr, port)])
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "x@busy1.test", "deferred", command="greeting", code=421)


def test_null_mx_bounces_5_1_10(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    dns = net.dns(DnsZone().null_mx("nomail.test").mx("ok.test", "mx.ok.test")
                  .a("mx.ok.test", addr))
    sink = net.sink(addr, port)
    res = salvo.send(message(), ["a@nomail.test", "b@ok.test"], dns=dns, mx_port=port)
    assert_exit(res, EXIT_BOUNCED)
    assert_failed(res, "a@nomail.test", "bounced", command="dns", code=None, enhanced="5.1.10")
    assert_delivered(res, "b@ok.test", mx_addr=addr)
    assert [m["rcpts"] for m in sink.messages()] == [["b@ok.test"]]


def test_nxdomain_bounces(net, salvo, message):
    dns = net.dns(DnsZone().a("exists.test", "127.0.0.1"))
    res = salvo.send(message(), "a@nonexistent.test", dns=dns, mx_port=net.port())
    assert_exit(res, EXIT_BOUNCED)
    r = assert_failed(res, "a@nonexistent.test", "bounced", command="dns", code=None)
    assert r["enhanced"].startswith("5."), res
