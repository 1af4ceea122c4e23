"""Assertions shared by the salvo send tests."""

from salvo_cli import EXIT_BOUNCED, EXIT_DEFERRED, EXIT_OK


def assert_exit(res, expected):
    assert res.rc == expected, "expected exit status %d%s" % (expected, res)


def assert_delivered(res, rcpt, mx_addr=None, mx_port=None, mx_host=None):
    r = res.rec(rcpt)
    assert r["status"] == "delivered", "%s not delivered: %r%s" % (rcpt, r, res)
    assert r["code"] is not None and 200 <= r["code"] < 300, "%r%s" % (r, res)
    assert r["command"] in ("end-of-data", "bdat"), "%r%s" % (r, res)
    if mx_addr is not None:
        assert r["mx_addr"] == mx_addr, "%r%s" % (r, res)
    if mx_port is not None:
        assert r["mx_port"] == mx_port, "%r%s" % (r, res)
    if mx_host is not None:
        assert r["mx_host"].rstrip(".").lower() == mx_host, "%r%s" % (r, res)
    return r


def assert_failed(res, rcpt, status, command=None, code="any", enhanced=None, reply_has=()):
    """status: "deferred" or "bounced"; command: a name or a tuple of acceptable names;
    code: an int, None (no SMTP reply) or "any"; reply_has: words the reply must contain
    (case-insensitive; a tuple inside means any one of them)."""
    r = res.rec(rcpt)
    assert r["status"] == status, "%s: expected %s, got %r%s" % (rcpt, status, r, res)
    want_class = "temporary" if status == "deferred" else "permanent"
    assert r["class"] == want_class, "%s: class %r%s" % (rcpt, r, res)
    if command is not None:
        ok = (command,) if isinstance(command, str) else command
        assert r["command"] in ok, "%s: command %r not in %s%s" % (rcpt, r["command"], ok, res)
    if code != "any":
        assert r["code"] == code, "%s: code %r, expected %r%s" % (rcpt, r["code"], code, res)
    if enhanced is not None:
        assert r["enhanced"] == enhanced, "%s: enhanced %r, expected %r%s" % (
            rcpt, r["enhanced"], enhanced, res)
    assert r["reply"].strip(), "%s: empty reply text%s" % (rcpt, res)
    for words in reply_has:
        words = (words,) if isinstance(words, str) else words
        assert any(w.lower() in r["reply"].lower() for w in words), \
            "%s: reply %r lacks %s%s" % (rcpt, r["reply"], " or ".join(words), res)
    return r


def pipelined_group(res, cid):
    """The lines salvo sent on connection cid from its first MAIL up to the first reply it
    received after that MAIL: with pipelining, MAIL, every RCPT and DATA."""
    group, started = [], False
    for c, d, text in res.trace:
        if c != cid:
            continue
        if not started:
            if d == ">" and text.upper().startswith("MAIL FROM"):
                started = True
                group.append(text)
            continue
        if d == "<":
            break
        group.append(text)
    return group


def body_of(content):
    """The body of an RFC 5322 message (after the first empty line), any line ends."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = content.find(sep)
        if i >= 0:
            return content[i + len(sep):]
    return b""


__all__ = ["EXIT_OK", "EXIT_BOUNCED", "EXIT_DEFERRED", "assert_exit", "assert_delivered",
           "assert_failed", "pipelined_group", "body_of"]
