"""salvo send delivers: MX lookup to smtp-sinks on several addresses, static routes,
pipelining, implicit MX, --source-ip, --ehlo, standard input, plain (non-JSON) output."""

import collections

import smtp_scripts as S
from checks import EXIT_OK, assert_delivered, assert_exit, body_of, pipelined_group
from conftest import DEFAULT_BODY
from servers import DnsZone


def test_several_domains_and_recipients_by_mx(net, salvo, message):
    domains = ["alpha.test", "beta.test", "gamma.test"]
    addrs = {d: net.addr() for d in domains}
    port = net.port(*addrs.values())
    zone = DnsZone()
    for d in domains:
        zone.mx(d, "mx.%s" % d, 10).a("mx.%s" % d, addrs[d])
    dns = net.dns(zone)
    sinks = {d: net.sink(addrs[d], port) for d in domains}
    rcpts = ["%s@%s" % (u, d) for d in domains for u in ("ann", "bob")]

    res = salvo.send(message(), rcpts, dns=dns, mx_port=port)

    assert_exit(res, EXIT_OK)
    assert len(res.records) == len(rcpts), res
    for d in domains:
        for u in ("ann", "bob"):
            assert_delivered(res, "%s@%s" % (u, d), mx_addr=addrs[d], mx_port=port,
                             mx_host="mx.%s" % d)
        got = collections.Counter(r for m in sinks[d].messages() for r in m["rcpts"])
        assert got == {"ann@%s" % d: 1, "bob@%s" % d: 1}, (d, got, res)
        for m in sinks[d].messages():
            assert m["mail"].split()[0] == "<sender@origin.test>", m
            assert body_of(m["content"]) == DEFAULT_BODY.replace("\r\n", "\n").encode(), m


def test_static_routes_need_no_dns(net, salvo, message):
    a1, a2 = net.addr(), net.addr()
    p1, p2 = net.port(a1), net.port(a2)
    s1, s2 = net.sink(a1, p1), net.sink(a2, p2)
    res = salvo.send(message(), ["x@routed-one.test", "y@routed-two.test"],
                     routes=[("routed-one.test", a1, p1), ("routed-two.test", a2, p2)])
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "x@routed-one.test", mx_addr=a1, mx_port=p1)
    assert_delivered(res, "y@routed-two.test", mx_addr=a2, mx_port=p2)
    assert [m["rcpts"] for m in s1.messages()] == [["x@routed-one.test"]]
    assert [m["rcpts"] for m in s2.messages()] == [["y@routed-two.test"]]


def test_pipelining_sends_mail_rcpt_data_before_reading_replies(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    # The server answers nothing after MAIL until DATA has arrived as well.
    srv = net.raw(addr, port, S.BasicSmtp(hold_pipeline=True))
    rcpts = ["p1@pipe.test", "p2@pipe.test", "p3@pipe.test"]
    res = salvo.send(message(), rcpts, routes=[("pipe.test", addr, port)])
    assert_exit(res, EXIT_OK)
    for r in rcpts:
        assert_delivered(res, r, mx_addr=addr, mx_port=port)
    delivering = [c for c in srv.connections if c["messages"]]
    assert len(delivering) == 1, srv.connections
    assert delivering[0]["pipelined"] is True, (
        "the server never saw DATA while its MAIL reply was held back", res)
    assert [m["rcpts"] for m in delivering[0]["messages"]] == [rcpts], delivering[0]

    # And the -v trace shows the whole group went out before the first reply to it.
    cids = res.connection_ids()
    assert cids, "no [cN] trace lines on stderr with -v%s" % res
    groups = [pipelined_group(res, c) for c in cids]
    group = next((g for g in groups if g), [])
    verbs = [t.split(":")[0].split()[0].upper() for t in group]
    assert verbs == ["MAIL"] + ["RCPT"] * len(rcpts) + ["DATA"], (group, res)


def test_no_pipelining_when_the_server_does_not_offer_it(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port, pipelining=False)
    rcpts = ["n1@nopipe.test", "n2@nopipe.test"]
    res = salvo.send(message(), rcpts, routes=[("nopipe.test", addr, port)])
    assert_exit(res, EXIT_OK)
    for r in rcpts:
        assert_delivered(res, r)
    assert [sorted(m["rcpts"]) for m in srv.messages] == [rcpts]
    # every command waits for the previous reply: MAIL is alone before its reply
    groups = [g for g in (pipelined_group(res, c) for c in res.connection_ids()) if g]
    assert groups, "no MAIL in the -v trace%s" % res
    for g in groups:
        assert len(g) == 1, ("sent without waiting for the MAIL reply", g, res)


def test_implicit_mx_uses_the_domains_address(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    dns = net.dns(DnsZone().a("bare.test", addr))
    sink = net.sink(addr, port)
    res = salvo.send(message(), "who@bare.test", dns=dns, mx_port=port)
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "who@bare.test", mx_addr=addr, mx_port=port, mx_host="bare.test")
    assert [m["rcpts"] for m in sink.messages()] == [["who@bare.test"]]


def test_source_ip_is_the_address_the_server_sees(net, salvo, message):
    addr, src = net.addr(), net.src()
    port = net.port(addr)
    dns = net.dns(DnsZone().mx("egress.test", "mx.egress.test").a("mx.egress.test", addr))
    sink = net.sink(addr, port)
    res = salvo.send(message(), "r@egress.test", dns=dns, mx_port=port,
                     extra=["--source-ip", src])
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "r@egress.test", mx_addr=addr)
    assert r["source_addr"] == src, res
    assert [m["client_addr"] for m in sink.messages()] == [src]


def test_ehlo_name_is_what_the_server_sees(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port)
    res = salvo.send(message(), "r@helo.test", routes=[("helo.test", addr, port)],
                     extra=["--ehlo", "out1.salvo-client.test"])
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "r@helo.test")
    assert [m["helo"] for m in srv.messages] == ["out1.salvo-client.test"]
    assert any(t.upper() == "EHLO OUT1.SALVO-CLIENT.TEST" for t in res.sent()), res


def test_message_from_stdin(net, salvo, tmp_path):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port)
    data = (b"From: <sender@origin.test>\r\nTo: <a@stdin.test>\r\nSubject: stdin\r\n"
            b"Message-ID: <stdin-1@origin.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            b"\r\nread from standard input\r\n")
    route = [("stdin.test", addr, port)]
    res = salvo.send(None, "a@stdin.test", routes=route, stdin=data)       # no FILE
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "a@stdin.test")
    res = salvo.send("-", "b@stdin.test", routes=route, stdin=data)        # FILE is "-"
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "b@stdin.test")
    assert [m["rcpts"] for m in srv.messages] == [["a@stdin.test"], ["b@stdin.test"]]
    for m in srv.messages:
        assert body_of(m["content"]) == b"read from standard input\r\n", m
        assert b"Message-ID: <stdin-1@origin.test>\r\n" in m["content"], m


def test_plain_output_names_each_recipient(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    net.sink(addr, port)
    res = salvo.run("send", "--from", "sender@origin.test", "--to", "one@plain.test",
                    "--to", "two@plain.test", "--route", "plain.test=%s:%d" % (addr, port),
                    message())
    assert_exit(res, EXIT_OK)
    assert "one@plain.test" in res.stdout and "two@plain.test" in res.stdout, res
