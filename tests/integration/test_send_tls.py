"""STARTTLS policies against aiosmtpd with certificates from a test CA, and against raw
servers whose TLS is broken: verify (right CA, wrong CA, wrong name), required,
opportunistic (with fallback to plaintext after a failed handshake), disabled."""

import pytest

import smtp_scripts as S
from checks import (EXIT_DEFERRED, EXIT_OK, assert_delivered, assert_exit, assert_failed)
from servers import DnsZone

TLS_FAIL_COMMANDS = ("tls-handshake", "starttls")


def tls_server(net, pki, domain, cert_name=None, ca="good"):
    """aiosmtpd offering STARTTLS as mx.<domain>, found through an MX record, with a
    certificate for cert_name (default: the MX name) signed by the given test CA."""
    mx = "mx.%s" % domain
    addr = net.addr()
    port = net.port(addr)
    dns = net.dns(DnsZone().mx(domain, mx).a(mx, addr))
    srv = net.smtpd(addr, port, name=mx, tls=pki.server_cert(cert_name or mx, ca=ca))
    return srv, dns, port


def test_verify_with_the_right_ca_delivers_over_verified_tls(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "secure.test")
    res = salvo.send(message(), "v@secure.test", dns=dns, mx_port=port, tls="verify",
                     extra=["--ca-file", pki.ca_good])
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "v@secure.test", mx_host="mx.secure.test")
    assert r["tls_version"].startswith("TLS"), r
    assert r["tls_cipher"], r
    assert r["tls_verified"] is True, r
    assert [m["tls"] for m in srv.messages] == [True]


def test_verify_with_the_wrong_ca_defers_naming_the_certificate(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "wrongca.test")
    res = salvo.send(message(), "v@wrongca.test", dns=dns, mx_port=port, tls="verify",
                     extra=["--ca-file", pki.ca_other])
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "v@wrongca.test", "deferred", command=TLS_FAIL_COMMANDS,
                  reply_has=["certificate"])
    assert srv.messages == []
    assert "MAIL" not in srv.commands(), res


def test_verify_with_a_certificate_for_another_name_defers(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "wrongname.test", cert_name="somebody-else.test")
    res = salvo.send(message(), "v@wrongname.test", dns=dns, mx_port=port, tls="verify",
                     extra=["--ca-file", pki.ca_good])
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "v@wrongname.test", "deferred", command=TLS_FAIL_COMMANDS,
                  reply_has=[("certificate", "hostname", "name")])
    assert srv.messages == []


def test_required_does_not_verify_but_encrypts(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "req.test", ca="other")
    res = salvo.send(message(), "v@req.test", dns=dns, mx_port=port, tls="required",
                     extra=["--ca-file", pki.ca_good])
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "v@req.test")
    assert r["tls_version"].startswith("TLS") and r["tls_verified"] is False, r
    assert [m["tls"] for m in srv.messages] == [True]


def test_opportunistic_is_the_default_and_uses_tls(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "opp.test")
    res = salvo.send(message(), "v@opp.test", dns=dns, mx_port=port)
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "v@opp.test")
    assert r["tls_version"].startswith("TLS"), r
    assert [m["tls"] for m in srv.messages] == [True]


def test_disabled_never_starts_tls(net, salvo, message, pki):
    srv, dns, port = tls_server(net, pki, "plain.test")
    res = salvo.send(message(), "v@plain.test", dns=dns, mx_port=port, tls="disabled")
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "v@plain.test")
    assert r["tls_version"] == "" and r["tls_verified"] is False, r
    assert "STARTTLS" not in srv.commands()
    assert [m["tls"] for m in srv.messages] == [False]


def test_required_against_a_server_without_starttls_defers(net, salvo, message):
    addr = net.addr()
    port = net.port(addr)
    srv = net.smtpd(addr, port)            # no STARTTLS offered
    res = salvo.send(message(), "v@notls.test", routes=[("notls.test", addr, port)],
                     tls="required")
    assert_exit(res, EXIT_DEFERRED)
    assert_failed(res, "v@notls.test", "deferred")
    assert srv.messages == []
    assert "MAIL" not in srv.commands(), res


@pytest.mark.parametrize("broken", ["garbage", "close", "alert"])
def test_opportunistic_reconnects_in_plaintext_after_a_failed_handshake(net, salvo, message,
                                                                         broken):
    addr = net.addr()
    port = net.port(addr)
    srv = net.raw(addr, port, S.BasicSmtp(starttls=broken))
    res = salvo.send(message(), "v@broken-%s.test" % broken,
                     routes=[("broken-%s.test" % broken, addr, port)], tls="opportunistic")
    assert_exit(res, EXIT_OK)
    r = assert_delivered(res, "v@broken-%s.test" % broken, mx_addr=addr)
    assert r["tls_version"] == "", r
    tried = [c for c in srv.connections if c["starttls"]]
    delivered = [c for c in srv.connections if c["messages"]]
    assert tried and not any(c["messages"] for c in tried), srv.connections
    assert len(delivered) == 1 and not delivered[0]["starttls"], srv.connections
    assert [m["rcpts"] for m in delivered[0]["messages"]] == [["v@broken-%s.test" % broken]]

# --tls required against broken handshakes: see test_send_hostile.py (starttls-then-*).
