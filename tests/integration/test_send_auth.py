"""SMTP AUTH to a smarthost (static route with credentials): PLAIN or LOGIN, only ever over
TLS; a wrong password is a clean failure; no TLS means the credentials are never sent."""

import json
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from checks import EXIT_DEFERRED, EXIT_OK, assert_exit


class _Relay:
    """A smarthost that accepts one user and records who authenticated and what arrived."""

    def __init__(self):
        self.logins = []        # (mechanism, login) of every AUTH attempt
        self.messages = []      # (authenticated login or None, rcpt_tos)

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.logins.append((mechanism, auth_data.login.decode()))
        if auth_data.login == b"relay-user" and auth_data.password == b"s3cret:pass":
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        # this aiosmtpd version sends nothing for a bare failure: give the reply explicitly
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")

    async def handle_DATA(self, server, session, envelope):
        who = session.auth_data if session.authenticated else None
        self.messages.append((who, list(envelope.rcpt_tos)))
        return "250 2.0.0 Relayed"


def _relay(net, pki, tls=True, auth_mechanisms=None):
    addr = net.addr()
    port = net.port(addr)
    relay = _Relay()
    kw = {}
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*pki.server_cert("smarthost.test"))
        kw["tls_context"] = ctx
    ctrl = Controller(relay, hostname=addr, port=port, authenticator=relay.authenticator,
                      auth_require_tls=True, require_starttls=False, **kw)
    ctrl.start()
    return relay, ctrl, addr, port


def _send(salvo, message, addr, port, user, password, tls="required"):
    return salvo.send(message(), "someone@far.test", tls=tls,
                      extra=["--route", "far.test=%s:%s@%s:%d" % (user, password, addr, port)])


def test_auth_over_starttls_delivers(net, salvo, message, pki):
    relay, ctrl, addr, port = _relay(net, pki)
    try:
        res = _send(salvo, message, addr, port, "relay-user", "s3cret:pass")
    finally:
        ctrl.stop()
    assert_exit(res, EXIT_OK)
    assert relay.logins and relay.logins[0] == ("PLAIN", "relay-user"), relay.logins
    assert relay.messages == [("relay-user", ["someone@far.test"])], relay.messages
    rec = json.loads(res.stdout.splitlines()[0])
    assert rec["tls_version"].startswith("TLS"), rec
    # the trace never shows the credentials
    assert "s3cret" not in res.stderr and "cmVsYXktdXNlcg" not in res.stderr, res.stderr


def test_wrong_password_is_a_clean_failure(net, salvo, message, pki):
    relay, ctrl, addr, port = _relay(net, pki)
    try:
        res = _send(salvo, message, addr, port, "relay-user", "wrong")
    finally:
        ctrl.stop()
    assert_exit(res, EXIT_DEFERRED)
    rec = json.loads(res.stdout.splitlines()[0])
    assert rec["status"] == "deferred" and rec["command"] == "auth", rec
    assert rec["code"] == 535, rec
    assert relay.messages == [], "nothing may be relayed without authentication"


def test_no_tls_means_credentials_are_never_sent(net, salvo, message, pki):
    relay, ctrl, addr, port = _relay(net, pki, tls=False)
    try:
        res = _send(salvo, message, addr, port, "relay-user", "s3cret:pass", tls="opportunistic")
    finally:
        ctrl.stop()
    assert_exit(res, EXIT_DEFERRED)
    rec = json.loads(res.stdout.splitlines()[0])
    assert rec["status"] == "deferred" and rec["command"] == "auth", rec
    assert "TLS" in rec["reply"], rec
    assert relay.logins == [] and relay.messages == [], (relay.logins, relay.messages)
    assert "AUTH" not in "".join(l for l in res.stderr.splitlines() if "] >" in l), res.stderr
