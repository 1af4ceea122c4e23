"""What salvo makes of the server's replies: partial RCPT acceptance, all recipients
refused (no message data may follow), greylisting, 4xx to MAIL, and the exit status when
deferrals and bounces mix."""

import pytest

import smtp_scripts as S
from checks import (EXIT_BOUNCED, EXIT_DEFERRED, EXIT_OK, assert_delivered, assert_exit,
                    assert_failed, body_of)
from conftest import DEFAULT_BODY

NO_SUCH_USER = "550 5.1.1 Recipient address rejected: no such user"
KNOWN_COMMANDS = {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "STARTTLS"}


def routed(net, domain, **opts):
    addr = net.addr()
    port = net.port(addr)
    return net.smtpd(addr, port, **opts), [(domain, addr, port)]


@pytest.mark.parametrize("pipelining", [False, True], ids=["sequential", "pipelined"])
def test_partial_rcpt_acceptance(net, salvo, message, pipelining):
    srv, route = routed(net, "part.test", pipelining=pipelining,
                        reject_rcpts={"gone@part.test": NO_SUCH_USER})
    rcpts = ["a@part.test", "gone@part.test", "b@part.test"]
    res = salvo.send(message(), rcpts, routes=route)
    assert_exit(res, EXIT_BOUNCED)
    assert_delivered(res, "a@part.test")
    assert_delivered(res, "b@part.test")
    assert_failed(res, "gone@part.test", "bounced", command="rcpt", code=550, enhanced="5.1.1",
                  reply_has=["no such user"])
    # the accepted recipients got the message exactly once, in one transaction
    assert [sorted(m["rcpts"]) for m in srv.messages] == [["a@part.test", "b@part.test"]]
    assert body_of(srv.messages[0]["content"]) == DEFAULT_BODY.encode()


@pytest.mark.parametrize("pipelining", [False, True], ids=["sequential", "pipelined"])
def test_all_rcpts_refused_sends_no_message(net, salvo, message, pipelining):
    srv, route = routed(net, "allno.test", pipelining=pipelining,
                        rcpt_reply="550 5.7.1 Relay access denied")
    rcpts = ["a@allno.test", "b@allno.test"]
    res = salvo.send(message(), rcpts, routes=route)
    assert_exit(res, EXIT_BOUNCED)
    for r in rcpts:
        assert_failed(res, r, "bounced", command="rcpt", code=550, enhanced="5.7.1")
    assert srv.messages == []
    cmds = srv.commands()
    assert set(cmds) <= KNOWN_COMMANDS, ("message lines were sent as commands", cmds, res)
    assert not any(r.startswith("500") for c in srv.connections for r in c["replies"]), (
        srv.connections, res)
    if not pipelining:
        # Without PIPELINING salvo waits for the RCPT replies: no DATA after all refused.
        assert "DATA" not in cmds, (cmds, res)


def test_354_after_all_rcpts_refused_gets_only_the_final_dot(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, S.RefuseRcptsButTakeData())
    rcpts = ["a@odd.test", "b@odd.test"]
    res = salvo.send(message(), rcpts, routes=[("odd.test", addr, port)])
    assert_exit(res, EXIT_BOUNCED)
    for r in rcpts:
        assert_failed(res, r, "bounced", command="rcpt", code=550, enhanced="5.1.1")
    msgs = [m for c in srv.connections for m in c["messages"]]
    # if DATA was sent (pipelining) and got 354, the data must be empty
    assert all(m["raw"] == b"" for m in msgs), (msgs, res)


def test_greylisting_defers_then_a_later_run_delivers(net, salvo, message):
    srv, route = routed(net, "grey.test", greylist=True)
    msg = message()
    res = salvo.send(msg, "g@grey.test", routes=route)
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "g@grey.test", "deferred", command="rcpt", code=450, enhanced="4.2.0",
                  reply_has=["greylist"])
    assert srv.messages == []
    res = salvo.send(msg, "g@grey.test", routes=route)
    assert_exit(res, EXIT_OK)
    assert_delivered(res, "g@grey.test")
    assert [m["rcpts"] for m in srv.messages] == [["g@grey.test"]]


def test_4xx_to_mail_defers_every_recipient(net, salvo, message):
    srv, route = routed(net, "full.test", mail_reply="452 4.3.1 Insufficient system storage")
    rcpts = ["a@full.test", "b@full.test"]
    res = salvo.send(message(), rcpts, routes=route)
    assert_exit(res, EXIT_DEFERRED)
    for r in rcpts:
        assert_failed(res, r, "deferred", command="mail", code=452, enhanced="4.3.1")
    assert srv.messages == []


def test_a_bounce_among_deferrals_exits_1(net, salvo, message):
    srv, route = routed(net, "mixed.test", greylist=True,
                        reject_rcpts={"gone@mixed.test": NO_SUCH_USER})
    res = salvo.send(message(), ["grey@mixed.test", "gone@mixed.test"], routes=route)
    assert_exit(res, EXIT_BOUNCED)
    assert_failed(res, "grey@mixed.test", "deferred", command="rcpt", code=450)
    assert_failed(res, "gone@mixed.test", "bounced", command="rcpt", code=550)
    assert srv.messages == []


def test_5xx_after_data_bounces_every_recipient(net, salvo, message):
    srv, route = routed(net, "spam.test", data_reply="554 5.7.1 Message rejected as spam")
    rcpts = ["a@spam.test", "b@spam.test"]
    res = salvo.send(message(), rcpts, routes=route)
    assert_exit(res, EXIT_BOUNCED)
    for r in rcpts:
        assert_failed(res, r, "bounced", command="end-of-data", code=554, enhanced="5.7.1",
                      reply_has=["spam"])
