"""Hostile servers: each must end in a clean temporary failure -- exit 75, the recipient
deferred with a sensible command and reply, no crash, no hang, no sanitizer report.
Timeouts are scaled down (--timeout-scale 0.01) so that waiting one out takes seconds;
the hang guard (60 s) only stops a stuck run."""

import pytest

import smtp_scripts as S
from checks import EXIT_DEFERRED, assert_exit, assert_failed

FAST = 0.01
TIMEOUT = ("timeout", "timed out")
MALFORMED = ("malformed", "invalid", "bad", "protocol", "syntax", "too long", "too many")
CLOSED = ("closed", "reset", "lost", "eof", "disconnect")
TLS = ("tls", "ssl", "handshake")

# (id, script, acceptable commands, words the reply must contain, tls policy)
CASES = [
    ("greeting-never-comes", S.SilentGreeting(), ("greeting",), [TIMEOUT], None),
    ("non-numeric-greeting", S.NonNumericGreeting(), ("greeting",), [MALFORMED], None),
    ("greeting-without-crlf", S.GreetingWithoutCrlf(), ("greeting",), [TIMEOUT], None),
    ("1mb-greeting-line", S.HugeGreetingLine(), ("greeting",), [MALFORMED], None),
    ("misnumbered-ehlo-reply", S.MisnumberedEhlo(), ("ehlo", "helo"), [MALFORMED], None),
    ("10000-line-ehlo-reply", S.EndlessEhlo(), ("ehlo", "helo"), [MALFORMED], None),
    ("non-numeric-mail-reply", S.GarbageAtMail(), ("mail",), [MALFORMED], None),
    ("close-after-rcpt", S.CloseAfterRcpt(), ("rcpt",), [CLOSED], None),
    ("stall-after-data", S.StallAfterData(), ("end-of-data",), [TIMEOUT], None),
    ("starttls-then-garbage", S.BasicSmtp(starttls="garbage"), ("tls-handshake", "starttls"),
     [TLS], "required"),
    ("starttls-then-close", S.BasicSmtp(starttls="close"), ("tls-handshake", "starttls"),
     [], "required"),
    ("starttls-then-alert", S.BasicSmtp(starttls="alert"), ("tls-handshake", "starttls"),
     [TLS], "required"),
]


@pytest.mark.parametrize("script, commands, reply_has, tls", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_server_gives_a_clean_deferral(net, salvo, message, script, commands,
                                               reply_has, tls):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, script)
    rcpts = ["h1@hostile.test", "h2@hostile.test"]
    res = salvo.send(message(), rcpts, routes=[("hostile.test", addr, port)], scale=FAST,
                     tls=tls)
    assert_exit(res, EXIT_DEFERRED)
    for r in rcpts:
        rec = assert_failed(res, r, "deferred", command=commands, code=None,
                            reply_has=reply_has)
        assert rec["mx_addr"] == addr and rec["mx_port"] == port, rec
    assert srv.connections, "salvo never connected%s" % res
    # (a server that stalls after the final dot has the content, but never accepted it)
    assert not any(m["acked"] for c in srv.connections for m in c["messages"]), srv.connections
    assert all(c["error"] is None for c in srv.connections), srv.connections
