"""The message arrives as written: dot-stuffing on the wire, undone by the server; every
line end (bare LF, bare CR, CRLF) arrives as CRLF; a last line without a line end is
completed."""

import re

import smtp_scripts as S
from checks import EXIT_OK, assert_delivered, assert_exit, body_of

DOTTY_BODY = (b".\r\n"                  # a lone dot: would end DATA if not stuffed
              b"..two dots\r\n"
              b".leading dot\r\n"
              b"middle . line\r\n"
              b"\r\n"
              b".\r\n"
              b"last line\r\n")


def no_bare_line_ends(raw):
    return re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None


def test_dot_stuffing_round_trip_through_aiosmtpd(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port)
    res = salvo.send(message(body=DOTTY_BODY), "d@dots.test", routes=[("dots.test", addr, port)])
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "d@dots.test")
    assert len(srv.messages) == 1
    assert body_of(srv.messages[0]["content"]) == DOTTY_BODY


def test_dot_stuffing_on_the_wire(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, S.BasicSmtp())
    res = salvo.send(message(body=DOTTY_BODY), "d@wire.test", routes=[("wire.test", addr, port)])
    assert_exit(res, EXIT_OK)
    msgs = [m for c in srv.connections for m in c["messages"]]
    assert len(msgs) == 1
    wire_body = body_of(msgs[0]["raw"])
    assert wire_body == (b"..\r\n...two dots\r\n..leading dot\r\nmiddle . line\r\n\r\n"
                         b"..\r\nlast line\r\n"), wire_body


def test_bare_lf_and_cr_arrive_as_crlf(net, salvo, tmp_path):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port)
    lf_message = (b"From: <sender@origin.test>\nTo: <l@lf.test>\nSubject: bare LF\n"
                  b"Date: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-ID: <lf-1@origin.test>\n\n"
                  b"unix line one\nunix line two\r\ndos line\rold mac line\n.dot after LF\n"
                  b"no final line end")
    path = tmp_path / "lf.eml"
    path.write_bytes(lf_message)
    res = salvo.send(str(path), "l@lf.test", routes=[("lf.test", addr, port)])
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "l@lf.test")
    content = srv.messages[0]["content"]
    assert no_bare_line_ends(content), content
    assert body_of(content) == (b"unix line one\r\nunix line two\r\ndos line\r\nold mac line\r\n"
                                b".dot after LF\r\nno final line end\r\n"), content
    assert b"Subject: bare LF\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n" in content
