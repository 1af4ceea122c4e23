"""Scripts for servers.ScriptedServer: a small, correct SMTP server (BasicSmtp) and hostile
variants that each break one rule in a way real servers (and aiosmtpd) cannot be made to.
A script instance is called once per accepted connection with a servers.RawConn."""

import ssl

from servers import Stop


class BasicSmtp:
    """A plain SMTP server that accepts everything. Per connection it records in
    conn.record: helo, starttls (STARTTLS was asked for), tls (handshake completed),
    messages (mail, rcpts: addresses; mail_arg, rcpt_args: as sent; content: unstuffed bytes;
    raw: the bytes exactly as received between 354 and the final dot; acked: the final dot
    was answered 250), pipelined (see hold_pipeline)."""

    name = "mx.raw.test"
    extensions = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")
    # None: STARTTLS not offered. An ssl.SSLContext: a real handshake. "garbage": answer 220
    # then send bytes that are not TLS. "close": answer 220, read the ClientHello, close.
    # "alert": answer 220, then fail the handshake with a TLS alert (no shared cipher).
    starttls = None
    # When True, a MAIL command is not answered until the DATA command that should follow
    # it in the same pipelined group has arrived too: conn.record["pipelined"] tells whether
    # it did. Without pipelining the client waits for the MAIL reply, the server waits for
    # DATA; the guard below ends that stand-off (it decides nothing: the verdict is the flag).
    hold_pipeline = False
    PIPELINE_HOLD_GUARD_S = 10.0

    def __init__(self, **kw):
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)

    # --- the session ---------------------------------------------------------------------

    def __call__(self, conn):
        conn.txn = None
        conn.record["helo"] = None
        conn.record["pipelined"] = None
        self.greet(conn)
        while True:
            line = conn.readline()
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = text.partition(" ")
            handler = getattr(self, "cmd_" + verb.lower(), None) if verb.isalpha() else None
            if handler is None:
                conn.send("500 5.5.2 Error: command not recognized\r\n")
                continue
            if handler(conn, arg) is False:
                return

    def greet(self, conn):
        conn.send("220 %s ESMTP scripted\r\n" % self.name)

    def ehlo_extensions(self, conn):
        exts = list(self.extensions)
        if self.starttls is not None and not conn.record["tls"]:
            exts.append("STARTTLS")
        return exts

    @staticmethod
    def multiline(code, lines):
        return "".join("%d%s%s\r\n" % (code, "-" if i < len(lines) - 1 else " ", l)
                       for i, l in enumerate(lines))

    def cmd_ehlo(self, conn, arg):
        conn.record["helo"] = arg
        conn.txn = None
        conn.send(self.multiline(250, [self.name] + self.ehlo_extensions(conn)))

    def cmd_helo(self, conn, arg):
        conn.record["helo"] = arg
        conn.txn = None
        conn.send("250 %s\r\n" % self.name)

    def cmd_starttls(self, conn, arg):
        conn.record["starttls"] = True
        if self.starttls is None or conn.record["tls"]:
            conn.send("502 5.5.1 Error: command not implemented\r\n")
            return None
        conn.send("220 2.0.0 Ready to start TLS\r\n")
        if self.starttls == "garbage":
            conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            conn.hold()
            return False
        if self.starttls == "close":
            conn.read_some()    # the ClientHello
            return False        # closes the connection mid-handshake
        if self.starttls == "alert":
            # A real TLS server with no certificate: it can agree on no cipher suite and
            # aborts the handshake with a TLS alert.
            try:
                conn.starttls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            except (ssl.SSLError, OSError):
                return False
            raise AssertionError("a TLS handshake without a server certificate succeeded")
        assert isinstance(self.starttls, ssl.SSLContext)
        conn.starttls(self.starttls)
        conn.record["tls"] = True
        conn.record["helo"] = None
        conn.txn = None
        return None

    @staticmethod
    def path_of(arg):
        """The address inside <...> of a MAIL FROM:/RCPT TO: argument."""
        lt, gt = arg.find("<"), arg.find(">")
        return arg[lt + 1:gt] if 0 <= lt < gt else arg

    def cmd_mail(self, conn, arg):
        if self.hold_pipeline:
            self._wait_for_rest_of_group(conn)
        conn.txn = {"mail": self.path_of(arg), "mail_arg": arg, "rcpts": [], "rcpt_args": []}
        conn.send("250 2.1.0 Ok\r\n")

    def cmd_rcpt(self, conn, arg):
        if conn.txn is None:
            conn.send("503 5.5.1 Error: need MAIL command\r\n")
            return
        conn.txn["rcpts"].append(self.path_of(arg))
        conn.txn["rcpt_args"].append(arg)
        conn.send("250 2.1.5 Ok\r\n")

    def cmd_data(self, conn, arg):
        if conn.txn is None or not conn.txn["rcpts"]:
            conn.send("554 5.5.1 Error: no valid recipients\r\n")
            return
        conn.send("354 End data with <CR><LF>.<CR><LF>\r\n")
        raw, content = [], []
        while True:
            line = conn.readline()
            if line == b".\r\n":
                break
            raw.append(line)
            content.append(line[1:] if line.startswith(b".") else line)
        txn = dict(conn.txn, raw=b"".join(raw), content=b"".join(content), acked=False)
        conn.record["messages"].append(txn)
        conn.txn = None
        return self.end_of_data(conn)

    def end_of_data(self, conn):
        conn.record["messages"][-1]["acked"] = True
        conn.send("250 2.0.0 Ok: queued as 4242\r\n")

    def cmd_rset(self, conn, arg):
        conn.txn = None
        conn.send("250 2.0.0 Ok\r\n")

    def cmd_noop(self, conn, arg):
        conn.send("250 2.0.0 Ok\r\n")

    def cmd_quit(self, conn, arg):
        conn.send("221 2.0.0 Bye\r\n")
        return False

    def _wait_for_rest_of_group(self, conn):
        def group_complete():
            complete_lines = conn.buf.split(b"\n")[:-1]
            return any(l.strip().upper()[:4] in (b"DATA", b"BDAT") for l in complete_lines)
        while not group_complete():
            try:
                conn._fill(self.PIPELINE_HOLD_GUARD_S)
            except TimeoutError:
                conn.record["pipelined"] = False
                return
        conn.record["pipelined"] = True


# --- hostile variants ------------------------------------------------------------------


class SilentGreeting(BasicSmtp):
    """Accepts the connection and never says a word."""

    def greet(self, conn):
        conn.hold()
        raise Stop("silent")


class Greeting421(BasicSmtp):
    """Greets with 421 and hangs up."""

    def greet(self, conn):
        conn.send("421 4.3.2 %s Service not available, try later\r\n" % self.name)
        raise Stop("421")


class NonNumericGreeting(BasicSmtp):
    """A greeting with no reply code."""

    def greet(self, conn):
        conn.send("hello there, this is not an SMTP reply\r\n")
        conn.hold()
        raise Stop("non-numeric")


class GreetingWithoutCrlf(BasicSmtp):
    """Starts a greeting, never ends the line, then says nothing."""

    def greet(self, conn):
        conn.send("220 %s ESMTP but the line never ends" % self.name)
        conn.hold()
        raise Stop("no crlf")


class HugeGreetingLine(BasicSmtp):
    """A 1 MiB greeting line."""

    def greet(self, conn):
        conn.send(b"220 " + b"x" * (1 << 20) + b"\r\n")
        conn.hold()
        raise Stop("huge line")


class MisnumberedEhlo(BasicSmtp):
    """A multi-line EHLO reply whose lines carry different codes (250- then 251)."""

    def cmd_ehlo(self, conn, arg):
        conn.record["helo"] = arg
        conn.send("250-%s\r\n251 PIPELINING\r\n" % self.name)


class EndlessEhlo(BasicSmtp):
    """An EHLO reply of 10,000 continuation lines before the last one."""

    LINES = 10000

    def cmd_ehlo(self, conn, arg):
        conn.record["helo"] = arg
        conn.send(b"250-x\r\n" * self.LINES + b"250 ok\r\n")


class GarbageAtMail(BasicSmtp):
    """Answers MAIL with text that is not an SMTP reply, then goes quiet."""

    def cmd_mail(self, conn, arg):
        conn.send("OK, whatever you say\r\n")
        conn.hold()
        return False


class CloseAfterRcpt(BasicSmtp):
    """Hangs up as soon as it reads a RCPT command, without answering it."""

    def cmd_rcpt(self, conn, arg):
        return False


class StallAfterData(BasicSmtp):
    """Takes the whole message after 354, then never answers the final dot."""

    def end_of_data(self, conn):
        conn.hold()
        return False


class RefuseRcptsButTakeData(BasicSmtp):
    """Refuses every RCPT with 550, yet (wrongly) answers a pipelined DATA with 354: a
    client must then end the data at once with a lone dot, sending no message line."""

    def cmd_rcpt(self, conn, arg):
        conn.send("550 5.1.1 <%s>: Recipient address rejected\r\n" % self.path_of(arg))

    def cmd_data(self, conn, arg):
        conn.txn = conn.txn or {"mail": None, "mail_arg": None, "rcpts": [], "rcpt_args": []}
        conn.txn["rcpts"].append("(none)")
        return super().cmd_data(conn, arg)
