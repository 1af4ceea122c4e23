"""Messages that need an extension the server lacks fail locally and permanently:
8-bit content without 8BITMIME -> 5.6.3, a non-ASCII address without SMTPUTF8 -> 5.6.7.
With the extension offered, the same messages go through and are labelled."""

from checks import EXIT_BOUNCED, EXIT_OK, assert_delivered, assert_exit, assert_failed, body_of

EIGHT_BIT_BODY = "Grüße aus Köln, ça va? – naïve café\r\n"


def routed(net, domain, **opts):
    addr = net.addr()
    port = net.port(addr)
    return net.smtpd(addr, port, **opts), [(domain, addr, port)]


def test_8bit_message_to_server_without_8bitmime_bounces_5_6_3(net, salvo, message):
    srv, route = routed(net, "seven.test", eightbitmime=False)
    res = salvo.send(message(body=EIGHT_BIT_BODY), "r@seven.test", routes=route)
    assert_exit(res, EXIT_BOUNCED)
    assert_failed(res, "r@seven.test", "bounced", command="local", enhanced="5.6.3")
    assert srv.messages == []
    assert "DATA" not in srv.commands(), (srv.connections, res)


def test_8bit_message_to_server_with_8bitmime_is_delivered_and_labelled(net, salvo, message):
    srv, route = routed(net, "eight.test", eightbitmime=True)
    res = salvo.send(message(body=EIGHT_BIT_BODY), "r@eight.test", routes=route)
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "r@eight.test")
    assert len(srv.messages) == 1
    m = srv.messages[0]
    assert body_of(m["content"]) == EIGHT_BIT_BODY.encode("utf-8")
    assert "BODY=8BITMIME" in [o.upper() for o in m["mail_options"]], m["mail_options"]


def test_non_ascii_recipient_to_server_without_smtputf8_bounces_5_6_7(net, salvo, message):
    srv, route = routed(net, "utf.test", smtputf8=False)
    rcpt = "jörg@utf.test"
    res = salvo.send(message(), rcpt, routes=route)
    assert_exit(res, EXIT_BOUNCED)
    assert_failed(res, rcpt, "bounced", enhanced="5.6.7")
    assert srv.messages == []
    # the address never went on the wire (aiosmtpd would answer a non-ASCII line with 500)
    assert "RCPT" not in srv.commands(), (srv.connections, res)
    assert not any(r.startswith("500") for c in srv.connections for r in c["replies"]), (
        srv.connections, res)


def test_non_ascii_recipient_to_server_with_smtputf8_is_delivered(net, salvo, message):
    srv, route = routed(net, "utf8ok.test", smtputf8=True)
    rcpt = "jörg@utf8ok.test"
    res = salvo.send(message(), rcpt, routes=route)
    assert_exit(res, EXIT_OK)
    assert_delivered(res, rcpt)
    assert [m["rcpts"] for m in srv.messages] == [[rcpt]]
    assert "SMTPUTF8" in [o.upper() for o in srv.messages[0]["mail_options"]]
