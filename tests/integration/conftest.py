"""Fixtures for the `salvo send` integration tests. Every server a test uses is started by
the test on its own loopback address and free port, and stopped at teardown, pass or fail.

  salvo  -- runs the real binary ($SALVO_BIN, default <repo>/build/salvo)
  net    -- starts servers: net.dns(zone), net.sink(...), net.smtpd(...), net.raw(...),
            net.blackhole(...); hands out addresses (net.addr(), net.src()) and ports
  pki    -- test CAs and server certificates (session-wide)
  message -- writes RFC 5322 message files into the test's tmp dir
"""

import itertools
import os

import pytest

import salvo_cli
import servers
from netutil import POOL, free_port
from pki import Pki

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SENDER = "sender@origin.test"


class Net:
    def __init__(self, workdir):
        self.workdir = workdir
        self._running = []

    def _started(self, obj):
        self._running.append(obj)
        return obj

    # addresses and ports
    def addr(self):
        """A destination address (127.0.x.y) no other server of this session uses."""
        return POOL.dest()

    def src(self):
        """An egress address for --source-ip (127.0.0.2x...)."""
        return POOL.source()

    def port(self, *addrs):
        """A TCP port free on all the given addresses (for --mx-port, all MX hosts listen on
        the same port, each on its own address)."""
        return free_port(*addrs)

    # servers
    def dns(self, zone):
        return self._started(servers.Dnsmasq(zone, free_port("127.0.0.1", udp=True),
                                             self.workdir))

    def sink(self, addr, port, *flags, name=None):
        return self._started(servers.SmtpSink(addr, port, self.workdir, flags, name=name))

    def smtpd(self, addr, port, **opts):
        return self._started(servers.Smtpd(addr, port, **opts))

    def raw(self, addr, port, script):
        return self._started(servers.ScriptedServer(addr, port, script))

    def blackhole(self, addr, port):
        return self._started(servers.Blackhole(addr, port))

    def stop_all(self):
        errors = []
        while self._running:
            obj = self._running.pop()
            try:
                obj.stop()
            except Exception as e:  # noqa: BLE001 -- stop the rest, then report
                errors.append(repr(e))
        if errors:
            raise RuntimeError("stopping servers failed: %s" % errors)


@pytest.fixture
def net(tmp_path):
    n = Net(str(tmp_path))
    try:
        yield n
    finally:
        n.stop_all()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(str(tmp_path_factory.mktemp("pki")))


class Salvo:
    def __init__(self, binary):
        self.binary = binary

    def run(self, *args, stdin=None, guard_s=salvo_cli.HANG_GUARD_S, json_out=None):
        """`salvo args...` exactly as given."""
        return salvo_cli.run(self.binary, [str(a) for a in args], stdin=stdin,
                             guard_s=guard_s, json_out=json_out)

    def send(self, msg, to, *, dns=None, mx_port=None, routes=(), scale=None, tls=None,
             sender=SENDER, extra=(), stdin=None, guard_s=salvo_cli.HANG_GUARD_S):
        """`salvo send --json -v ...`: msg is a file path (or "-"/None for stdin), to an
        address or a list, dns a Dnsmasq (its --resolver), routes (domain, host, port)s."""
        args = ["send", "--json", "-v", "--from", sender]
        for rcpt in ([to] if isinstance(to, str) else to):
            args += ["--to", rcpt]
        if dns is not None:
            args += ["--resolver", dns.resolver]
        if mx_port is not None:
            args += ["--mx-port", str(mx_port)]
        for domain, host, port in routes:
            args += ["--route", "%s=%s:%d" % (domain, host, port)]
        if scale is not None:
            args += ["--timeout-scale", str(scale)]
        if tls is not None:
            args += ["--tls", tls]
        args += list(extra)
        if msg is not None:
            args.append(str(msg))
        return self.run(*args, stdin=stdin, guard_s=guard_s)


@pytest.fixture(scope="session")
def salvo_bin():
    path = os.environ.get("SALVO_BIN") or os.path.join(REPO, "build", "salvo")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("salvo binary not found at %s (build it, or set SALVO_BIN)" % path,
                    pytrace=False)
    return path


@pytest.fixture
def salvo(salvo_bin):
    return Salvo(salvo_bin)


_msg_ids = itertools.count(1)

DEFAULT_BODY = "Hello from the salvo integration tests.\r\n"


def make_message(dirpath, body=DEFAULT_BODY, subject="salvo integration test", to="rcpt@dest.test",
                 extra_headers=(), newline="\r\n", name=None):
    """Writes a complete RFC 5322 message (body is bytes or str, written as given) and
    returns (path, bytes written)."""
    n = next(_msg_ids)
    headers = ["From: Sender <%s>" % SENDER, "To: <%s>" % to, "Subject: %s" % subject,
               "Date: Thu, 01 Jan 2026 00:00:00 +0000",
               "Message-ID: <it-%d@origin.test>" % n] + list(extra_headers)
    head = (newline.join(headers) + newline + newline).encode("utf-8")
    data = head + (body.encode("utf-8") if isinstance(body, str) else body)
    path = os.path.join(dirpath, name or "msg-%d.eml" % n)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


@pytest.fixture
def message(tmp_path):
    """message(body=..., ...) -> path of a message file in the test's tmp dir."""
    def make(**kw):
        return make_message(str(tmp_path), **kw)[0]
    return make
