"""Real servers on loopback for the integration tests: dnsmasq (DNS), Postfix's smtp-sink,
scripted aiosmtpd servers, a raw scripted socket server for behaviour no real server has,
and a "black hole" listener whose connects never complete. Each class starts in its
constructor (or raises), records what it saw, and stops in stop(). No mocks: salvo talks
to these over real sockets."""

import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from netutil import START_GUARD_S, dns_query, tcp_greeting, wait_until

DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"


def _stop_process(proc, guard_s=5.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(guard_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(guard_s)


# ----------------------------------------------------------------------------------------
# DNS


class DnsZone:
    """Records for the test domains (all under .test). Build it, then hand it to Dnsmasq."""

    def __init__(self):
        self.args = []
        self.mx_records = []       # (domain, host, pref)
        self.a_records = []        # (name, ip)
        self.null_mx_domains = []

    def mx(self, domain, host, pref=10):
        self.args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        self.mx_records.append((domain, host, pref))
        return self

    def a(self, name, ip):
        self.args.append("--host-record=%s,%s" % (name, ip))
        self.a_records.append((name, ip))
        return self

    def null_mx(self, domain):
        # RFC 7505: one MX with preference 0 and exchange "." -- rdata 0x0000 0x00.
        self.args.append("--dns-rr=%s,15,000000" % domain)
        self.null_mx_domains.append(domain)
        return self


class Dnsmasq:
    """dnsmasq answering only from the given zone for *.test (NXDOMAIN for other .test
    names), on 127.0.0.1:<port> (UDP and TCP). Queries are logged to self.log_path."""

    READY_NAME = "dns-ready.test"

    def __init__(self, zone, port, workdir):
        self.port = port
        self.addr = "127.0.0.1"
        self.zone = zone
        self.log_path = os.path.join(workdir, "dnsmasq-%d.log" % port)
        cmd = [DNSMASQ, "--no-daemon", "--port=%d" % port, "--listen-address=127.0.0.1",
               "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
               "--pid-file=", "--user=root", "--local=/test/", "--log-queries",
               "--log-facility=-", "--host-record=%s,127.0.0.1" % self.READY_NAME] + zone.args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_until(self._ready, START_GUARD_S, "dnsmasq on port %d answering" % port)
        except BaseException:
            self.stop()
            raise

    @property
    def resolver(self):
        """The value for salvo's --resolver."""
        return "%s:%d" % (self.addr, self.port)

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("dnsmasq exited: %s" % self.log())
        try:
            rcode, ans = dns_query(self.addr, self.port, self.READY_NAME, "A", guard_s=0.5)
        except OSError:
            return False
        return rcode == 0 and ("A", "127.0.0.1") in ans

    def query(self, name, qtype):
        return dns_query(self.addr, self.port, name, qtype)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        _stop_process(self.proc)
        self._log.close()


# ----------------------------------------------------------------------------------------
# Postfix smtp-sink


class SmtpSink:
    """Postfix's smtp-sink on addr:port. Every mail transaction is dumped to its own file
    (-d), which carries the client's address (X-Client-Addr), the EHLO argument, the MAIL and
    RCPT arguments and the message itself: messages() parses them. smtp-sink writes and closes
    the dump before it answers the final "." with 250, so the dump is complete once the client
    has been told the mail was accepted. Extra flags go straight to smtp-sink (e.g. "-8" to
    not announce 8BITMIME, "-p" to not announce PIPELINING)."""

    def __init__(self, addr, port, workdir, flags=(), name=None):
        self.addr, self.port = addr, port
        self.name = name or "sink-%s" % addr
        # smtp-sink runs as nobody (we are root): its dump directory must not sit under a
        # private directory such as pytest's tmp_path.
        self.dump_dir = tempfile.mkdtemp(prefix="salvo-sink-")
        os.chmod(self.dump_dir, 0o777)
        self.log_path = os.path.join(workdir, "smtp-sink-%s-%d.log" % (addr, port))
        self._log = open(self.log_path, "wb")
        cmd = [SMTP_SINK, "-u", "nobody", "-a", "-C", "-F", "-h", self.name,
               "-d", self.dump_dir + "/%Y%m%d%H%M%S."] + list(flags) + [
               "%s:%d" % (addr, port), "64"]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_until(self._ready, START_GUARD_S, "smtp-sink on %s:%d" % (addr, port))
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink exited: %s" % self.log())
        try:
            return tcp_greeting(self.addr, self.port, 0.5).startswith("220")
        except OSError:
            return False

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def messages(self):
        """One dict per received transaction: client_addr, helo, mail (the MAIL argument
        text), rcpts (addresses without <>), content (bytes, LF line ends, unstuffed)."""
        out = []
        for fn in sorted(os.listdir(self.dump_dir)):
            with open(os.path.join(self.dump_dir, fn), "rb") as f:
                out.append(_parse_sink_dump(f.read()))
        return out

    def stop(self):
        _stop_process(self.proc)
        self._log.close()
        shutil.rmtree(self.dump_dir, ignore_errors=True)


def _parse_sink_dump(data):
    lines = data.split(b"\n")
    msg = {"client_addr": None, "helo": None, "mail": None, "rcpts": [], "rcpt_args": []}
    i = 0
    while i < len(lines):
        line = lines[i].decode("utf-8", "replace")
        i += 1
        if line.startswith("X-Client-Addr: "):
            msg["client_addr"] = line[len("X-Client-Addr: "):]
        elif line.startswith("X-Helo-Args: "):
            msg["helo"] = line[len("X-Helo-Args: "):]
        elif line.startswith("X-Mail-Args: "):
            msg["mail"] = line[len("X-Mail-Args: "):]
        elif line.startswith("X-Rcpt-Args: "):
            arg = line[len("X-Rcpt-Args: "):]
            msg["rcpt_args"].append(arg)
            addr = arg.split(None, 1)[0] if arg else ""
            msg["rcpts"].append(addr[1:-1] if addr.startswith("<") and addr.endswith(">") else addr)
        elif line.startswith("Received: "):
            i += 2   # the two continuation lines of smtp-sink's own Received: header
            break
    body = b"\n".join(lines[i:])
    if body.endswith(b"\n\n"):
        body = body[:-1]   # the empty line smtp-sink appends after each message
    msg["content"] = body
    return msg


# ----------------------------------------------------------------------------------------
# aiosmtpd, scripted through options


class _Handler:
    def __init__(self, owner):
        self.o = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        o = self.o
        exts = [r[4:] for r in responses[1:]]
        keep = []
        for e in exts:
            word = e.split()[0].upper() if e else ""
            if word in ("AUTH", "HELP"):
                continue
            if word == "8BITMIME" and not o.eightbitmime:
                continue
            if word == "SMTPUTF8" and not o.smtputf8:
                continue
            keep.append(e)
        if o.pipelining:
            keep.append("PIPELINING")
        if o.enhanced:
            keep.append("ENHANCEDSTATUSCODES")
        lines = [responses[0][4:]] + keep
        return ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.o.mail_reply:
            return self.o.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        o = self.o
        if address in o.reject_rcpts:
            return o.reject_rcpts[address]
        if o.greylist:
            key = (envelope.mail_from, address)
            with o.lock:
                seen = key in o.greylist_seen
                o.greylist_seen.add(key)
            if not seen:
                return "450 4.2.0 <%s>: Recipient address rejected: Greylisted" % address
        if o.rcpt_reply:
            return o.rcpt_reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        o = self.o
        rec = server.record
        with o.lock:
            o.messages.append({
                "peer": session.peer, "helo": session.host_name, "tls": session.ssl is not None,
                "mail_from": envelope.mail_from, "mail_options": list(envelope.mail_options),
                "rcpts": list(envelope.rcpt_tos), "content": envelope.original_content,
                "conn": rec,
            })
        if o.data_reply:
            return o.data_reply
        return "250 2.0.0 Ok: queued"


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that records, per connection, the peer, every command name it
    dispatched, every reply it pushed and whether STARTTLS completed."""

    def __init__(self, handler, owner, **kw):
        super().__init__(handler, **kw)
        self.owner = owner
        self.record = None
        for name, meth in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._wrap(name, meth)

    def _wrap(self, name, meth):
        @functools.wraps(meth)
        async def wrapper(arg):
            if self.record is not None:
                self.record["commands"].append((name, arg))
            return await meth(arg)
        return wrapper

    def connection_made(self, transport):
        starttls = self._original_transport is not None
        super().connection_made(transport)
        if starttls:
            if self.record is not None:
                self.record["tls"] = True
        elif self.owner.ready:
            self.record = {"peer": self.session.peer, "commands": [], "replies": [],
                           "tls": False}
            with self.owner.lock:
                self.owner.connections.append(self.record)

    async def push(self, status):
        if self.record is not None:
            self.record["replies"].append(status if isinstance(status, str)
                                          else status.decode("utf-8", "replace"))
        await super().push(status)


class _Controller(Controller):
    def __init__(self, owner, handler, **kw):
        self.owner = owner
        super().__init__(handler, **kw)

    def factory(self):
        return _RecordingSMTP(self.handler, self.owner, **self.SMTP_kwargs)


class Smtpd:
    """A scripted aiosmtpd server on addr:port.
    Options: name (greeting/EHLO host name), pipelining (advertise PIPELINING; aiosmtpd does
    not by default, but it handles pipelined input), eightbitmime, smtputf8, enhanced,
    tls=(certfile, keyfile) to offer STARTTLS, greylist (450 on the first RCPT of each
    (sender, recipient) pair), reject_rcpts={address: reply}, mail_reply / rcpt_reply /
    data_reply (fixed replies overriding the default 250s).
    Records: connections (peer, commands, replies, tls) and messages (peer, helo, tls,
    mail_from, mail_options, rcpts, content = the bytes received, unstuffed)."""

    def __init__(self, addr, port, *, name="mx.aiosmtpd.test", pipelining=False,
                 eightbitmime=True, smtputf8=False, enhanced=True, tls=None, greylist=False,
                 reject_rcpts=None, mail_reply=None, rcpt_reply=None, data_reply=None):
        self.addr, self.port, self.name = addr, port, name
        self.pipelining, self.eightbitmime, self.smtputf8 = pipelining, eightbitmime, smtputf8
        self.enhanced, self.greylist = enhanced, greylist
        self.reject_rcpts = dict(reject_rcpts or {})
        self.mail_reply, self.rcpt_reply, self.data_reply = mail_reply, rcpt_reply, data_reply
        self.greylist_seen = set()
        self.lock = threading.Lock()
        self.connections = []
        self.messages = []
        self.ready = False
        tls_context = None
        if tls:
            tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_context.load_cert_chain(*tls)
        self.controller = _Controller(
            self, _Handler(self), hostname=addr, port=port, server_hostname=name,
            ready_timeout=START_GUARD_S, enable_SMTPUTF8=smtputf8, decode_data=False,
            tls_context=tls_context, require_starttls=False, auth_require_tls=True)
        self.controller.start()
        self.ready = True

    def commands(self):
        """All command names received, over all connections, in order."""
        with self.lock:
            return [c for conn in self.connections for c, _ in conn["commands"]]

    def stop(self):
        if self.ready:
            self.ready = False
            self.controller.stop()


# ----------------------------------------------------------------------------------------
# Raw scripted server


class Stop(Exception):
    """The server is stopping, the peer closed, or a read exceeded its hang guard."""


class RawConn:
    """One accepted connection handed to a script. Reads are bounded by a hang guard and
    end (raising Stop) when the server stops."""

    READ_GUARD_S = 30.0

    def __init__(self, sock, server, record):
        self.sock = sock
        self.server = server
        self.record = record
        self.buf = b""
        sock.settimeout(0.2)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.record["sent"].append(data if len(data) <= 4096 else data[:4096] + b"...")
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Stop("send: %s" % e)

    def _fill(self, guard_s):
        waited = 0.0
        while True:
            if self.server.stopping.is_set():
                raise Stop("server stopping")
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                waited += 0.2
                if waited >= guard_s:
                    raise TimeoutError("read guard")
                continue
            except OSError as e:
                raise Stop("recv: %s" % e)
            if not d:
                raise Stop("peer closed")
            self.buf += d
            return

    def readline(self, guard_s=None):
        """The next line including its line end. Raises Stop on EOF/stop, TimeoutError when
        nothing came within guard_s (default READ_GUARD_S)."""
        guard_s = self.READ_GUARD_S if guard_s is None else guard_s
        while b"\n" not in self.buf:
            self._fill(guard_s)
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        self.record["received"].append(line)
        return line

    def read_some(self, guard_s=None):
        """Whatever bytes are buffered or arrive next."""
        if not self.buf:
            self._fill(self.READ_GUARD_S if guard_s is None else guard_s)
        d, self.buf = self.buf, b""
        return d

    def hold(self):
        """Says nothing more; discards input until the peer closes or the server stops."""
        try:
            while True:
                self.buf = b""
                self._fill(3600)
        except (Stop, TimeoutError):
            pass

    def starttls(self, context):
        self.sock.settimeout(self.READ_GUARD_S)
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(0.2)
        self.buf = b""

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ScriptedServer:
    """A TCP server on addr:port that runs script(conn) in a thread for each connection.
    Records one dict per connection in self.connections: peer, received (lines), sent, plus
    whatever the script adds (e.g. starttls, messages, pipelined)."""

    def __init__(self, addr, port, script):
        self.addr, self.port, self.script = addr, port, script
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections = []
        self._conns = []
        self._threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            rec = {"peer": peer, "received": [], "sent": [], "messages": [], "starttls": False,
                   "tls": False, "error": None}
            conn = RawConn(s, self, rec)
            with self.lock:
                self.connections.append(rec)
                self._conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn):
        try:
            self.script(conn)
        except (Stop, TimeoutError):
            pass
        except Exception as e:  # noqa: BLE001 -- recorded for the test to see
            conn.record["error"] = repr(e)
        finally:
            conn.close()

    def stop(self):
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.lsock.close()
        self._acceptor.join(5)
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)


# ----------------------------------------------------------------------------------------
# A destination whose TCP connects never complete


class Blackhole:
    """A listener with a full accept queue that never accepts: further SYNs are dropped by
    the kernel, so a connect() to addr:port hangs until the client's own timeout."""

    def __init__(self, addr, port):
        self.addr, self.port = addr, port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, port))
        self.lsock.listen(0)
        self.fillers = []
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect((addr, port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        # Prove it: a fresh connect must not complete.
        wait_until(self._probe_hangs, START_GUARD_S, "black hole at %s:%d" % (addr, port))

    def _probe_hangs(self):
        p = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        p.settimeout(0.3)
        try:
            p.connect((self.addr, self.port))
            return False
        except socket.timeout:
            return True
        finally:
            p.close()

    def stop(self):
        if self.lsock.fileno() < 0:
            return
        for c in self.fillers:
            c.close()
        self.lsock.close()
