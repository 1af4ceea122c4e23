"""Self-checks of the integration fixtures, without salvo: each server starts, answers the
way the salvo tests rely on, records what they read, and stops. If one of these fails, the
salvo test results mean nothing."""

import smtplib
import socket
import ssl

import pytest

import smtp_scripts as S
from netutil import dns_query
from servers import DnsZone


def refused(addr, port):
    try:
        socket.create_connection((addr, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_dnsmasq_serves_mx_a_null_mx_and_nxdomain(net):
    a1, a2, a3 = net.addr(), net.addr(), net.addr()
    zone = (DnsZone().mx("two.test", "mx2.two.test", 20).mx("two.test", "mx1.two.test", 10)
            .a("mx1.two.test", a1).a("mx2.two.test", a2).a("bare.test", a3).null_mx("null.test"))
    dns = net.dns(zone)
    rcode, ans = dns.query("two.test", "MX")
    assert rcode == 0
    assert sorted(ans) == [("MX", 10, "mx1.two.test"), ("MX", 20, "mx2.two.test")]
    assert dns.query("mx1.two.test", "A") == (0, [("A", a1)])
    assert dns.query("mx2.two.test", "A") == (0, [("A", a2)])
    assert dns.query("mx1.two.test", "AAAA") == (0, [])           # NODATA, not an error
    assert dns.query("bare.test", "MX") == (0, [])                # implicit MX: no MX...
    assert dns.query("bare.test", "A") == (0, [("A", a3)])        # ...but an address
    assert dns.query("null.test", "MX") == (0, [("MX", 0, "")])   # RFC 7505 null MX
    assert dns.query("nowhere.test", "MX")[0] == 3                 # NXDOMAIN
    assert dns.query("nowhere.test", "A")[0] == 3
    dns.stop()
    with pytest.raises(OSError):
        dns_query(dns.addr, dns.port, "two.test", "MX", guard_s=0.5)


def test_smtp_sink_records_client_address_helo_envelope_and_content(net):
    addr, src = net.addr(), net.src()
    port = net.port(addr)
    sink = net.sink(addr, port)
    with smtplib.SMTP(addr, port, local_hostname="client.example",
                      source_address=(src, 0), timeout=10) as c:
        code, caps = c.ehlo()
        assert code == 250 and b"PIPELINING" in caps and b"8BITMIME" in caps
        c.sendmail("a@origin.test", ["x@d.test", "y@d.test"],
                   b"Subject: t\r\n\r\n.leading dot\r\nbody\r\n")
        # complete as soon as the 250 came back
        msgs = sink.messages()
    assert len(msgs) == 1
    m = msgs[0]
    assert m["client_addr"] == src and m["helo"] == "client.example"
    assert m["mail"] == "<a@origin.test>" and m["rcpts"] == ["x@d.test", "y@d.test"]
    assert m["content"] == b"Subject: t\n\n.leading dot\nbody\n"
    sink.stop()
    assert refused(addr, port)


def test_smtp_sink_flags_pass_through(net):
    addr = net.addr()
    port = net.port(addr)
    net.sink(addr, port, "-8")
    with smtplib.SMTP(addr, port, timeout=10) as c:
        _, caps = c.ehlo()
        assert b"8BITMIME" not in caps


def test_smtpd_extensions_greylist_rejects_and_records(net):
    addr, src = net.addr(), net.src()
    port = net.port(addr)
    srv = net.smtpd(addr, port, pipelining=True, eightbitmime=False, greylist=True,
                    reject_rcpts={"bad@d.test": "550 5.1.1 <bad@d.test>: no such user"})
    with smtplib.SMTP(addr, port, local_hostname="helo.example", source_address=(src, 0),
                      timeout=10) as c:
        code, caps = c.ehlo()
        assert code == 250
        assert b"PIPELINING" in caps and b"ENHANCEDSTATUSCODES" in caps
        assert b"8BITMIME" not in caps and b"SMTPUTF8" not in caps and b"STARTTLS" not in caps
        assert b"AUTH" not in caps
        assert c.mail("s@origin.test")[0] == 250
        assert c.rcpt("good@d.test")[0] == 450        # greylisted the first time
        assert c.rcpt("good@d.test")[0] == 250        # then let through
        assert c.rcpt("bad@d.test")[0] == 550
        # smtplib dot-stuffs: ".dot" goes out as "..dot", and must come back as ".dot"
        assert c.data(b"Subject: x\r\n\r\n.dot\r\nbody\r\n")[0] == 250
    assert len(srv.connections) == 1
    conn = srv.connections[0]
    assert conn["peer"][0] == src
    assert [c for c, _ in conn["commands"]][:2] == ["EHLO", "MAIL"]
    assert srv.commands().count("RCPT") == 3
    assert len(srv.messages) == 1
    m = srv.messages[0]
    assert m["rcpts"] == ["good@d.test"] and m["helo"] == "helo.example" and not m["tls"]
    assert m["content"] == b"Subject: x\r\n\r\n.dot\r\nbody\r\n"
    srv.stop()
    assert refused(addr, port)


def test_smtpd_starttls_with_test_ca(net, pki):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port, name="mx.tls.test", tls=pki.server_cert("mx.tls.test"))
    good = ssl.create_default_context(cafile=pki.ca_good)
    with smtplib.SMTP(addr, port, timeout=10) as c:
        c._host = "mx.tls.test"    # the name the certificate is checked against
        assert b"STARTTLS" in c.ehlo()[1]
        assert c.starttls(context=good)[0] == 220
        assert c.ehlo()[0] == 250
        c.sendmail("s@origin.test", ["r@tls.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert srv.messages[0]["tls"] and srv.connections[0]["tls"]
    # the unrelated CA does not verify this server
    wrong = ssl.create_default_context(cafile=pki.ca_other)
    with smtplib.SMTP(addr, port, timeout=10) as c:
        c._host = "mx.tls.test"
        c.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(context=wrong)


def test_raw_basic_server_delivers_and_detects_pipelining(net):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, S.BasicSmtp(hold_pipeline=True, PIPELINE_HOLD_GUARD_S=0.5))
    # a pipelining client: MAIL, RCPT, DATA in one write
    with socket.create_connection((addr, port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"220 ")
        f.write(b"EHLO c.example\r\n"); f.flush()
        lines = [f.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(f.readline())
        assert b"PIPELINING" in b"".join(lines)
        f.write(b"MAIL FROM:<s@o.test>\r\nRCPT TO:<r@d.test>\r\nDATA\r\n"); f.flush()
        assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        f.write(b"a\nb\r\n..c\r\n.\r\n"); f.flush()
        assert f.readline().startswith(b"250 ")
        f.write(b"QUIT\r\n"); f.flush()
        assert f.readline().startswith(b"221")
    rec = srv.connections[0]
    assert rec["pipelined"] is True
    assert rec["messages"][0]["raw"] == b"a\nb\r\n..c\r\n"       # bare LF kept as received
    assert rec["messages"][0]["content"] == b"a\nb\r\n.c\r\n"
    # a client that waits for each reply is seen as not pipelining
    with smtplib.SMTP(addr, port, timeout=10) as c:
        c.sendmail("s@o.test", ["r@d.test"], b"x\r\n")
    assert srv.connections[1]["pipelined"] is False
    srv.stop()
    assert refused(addr, port)


def _converse(addr, port, send=(), until=None, guard_s=3.0):
    """Sends each of `send` after reading the reply to the previous one (a line with a
    space after the code), then reads until `until` shows up, the server closes, or (when
    until is None) the guard passes. Returns all bytes read."""
    got = b""
    with socket.create_connection((addr, port), timeout=guard_s) as s:
        def read_until(pred):
            nonlocal got
            try:
                while not pred(got):
                    d = s.recv(1 << 20)
                    if not d:
                        return
                    got += d
            except socket.timeout:
                pass
        for line in send:
            mark = len(got)
            read_until(lambda g: g[mark:].endswith(b"\r\n") and
                       g[mark:].rsplit(b"\r\n", 2)[-2][3:4] == b" ")
            s.sendall(line)
        read_until(lambda g: until is not None and until in g)
    return got


@pytest.mark.parametrize("script, send, until, check", [
    (S.SilentGreeting(), [], None, lambda g: g == b""),
    (S.Greeting421(), [], b"\n", lambda g: g.startswith(b"421 ")),
    (S.NonNumericGreeting(), [], b"\n", lambda g: g.startswith(b"hello there")),
    (S.GreetingWithoutCrlf(), [], None, lambda g: g.startswith(b"220 ") and b"\n" not in g),
    (S.HugeGreetingLine(), [], b"\r\n", lambda g: len(g) == (1 << 20) + 6),
    (S.MisnumberedEhlo(), [b"EHLO c\r\n"], b"251 PIPELINING\r\n",
     lambda g: g.endswith(b"\r\n250-mx.raw.test\r\n251 PIPELINING\r\n")),
    (S.EndlessEhlo(), [b"EHLO c\r\n"], b"250 ok\r\n",
     lambda g: g.count(b"250-x\r\n") == 10000 and g.endswith(b"250 ok\r\n")),
    (S.GarbageAtMail(), [b"EHLO c\r\n", b"MAIL FROM:<a@b.test>\r\n"], b"say\r\n",
     lambda g: g.endswith(b"250 ENHANCEDSTATUSCODES\r\nOK, whatever you say\r\n")),
    (S.CloseAfterRcpt(), [b"EHLO c\r\n", b"MAIL FROM:<a@b.test>\r\n", b"RCPT TO:<c@d.test>\r\n"],
     b"never", lambda g: g.endswith(b"250 2.1.0 Ok\r\n")),
    (S.StallAfterData(), [b"EHLO c\r\n", b"MAIL FROM:<a@b.test>\r\n", b"RCPT TO:<c@d.test>\r\n",
                          b"DATA\r\n", b"x\r\n.\r\n"], None,
     lambda g: g.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")),
    (S.BasicSmtp(starttls="garbage"), [b"EHLO c\r\n", b"STARTTLS\r\n"], b"Bad Request",
     lambda g: b"250 STARTTLS\r\n220 2.0.0 Ready to start TLS\r\nHTTP/1.1 400" in g),
], ids=["silent", "421", "non-numeric", "no-crlf", "huge-line", "misnumbered", "endless-ehlo",
        "garbage-at-mail", "close-after-rcpt", "stall-after-data", "starttls-garbage"])
def test_hostile_scripts_misbehave_as_designed(net, script, send, until, check):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, script)
    got = _converse(addr, port, send, until, guard_s=1.0 if until is None else 5.0)
    assert check(got), got[-300:]
    srv.stop()
    assert refused(addr, port)


@pytest.mark.parametrize("broken", ["close", "alert"])
def test_starttls_broken_handshake_scripts_fail_the_handshake(net, broken):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, S.BasicSmtp(starttls=broken))
    with smtplib.SMTP(addr, port, timeout=10) as c:
        assert b"STARTTLS" in c.ehlo()[1]
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, OSError)) as e:
            c.starttls(context=ctx)
        if broken == "alert":
            assert "ALERT" in str(e.value).upper(), e.value
    srv.stop()
    assert srv.connections[0]["starttls"] and not srv.connections[0]["tls"]
    assert srv.connections[0]["error"] is None


def test_blackhole_connect_never_completes(net):
    addr = net.addr()
    port = net.port(addr)
    net.blackhole(addr, port)
    with pytest.raises(socket.timeout):
        socket.create_connection((addr, port), timeout=0.5)
