"""Loopback addresses, free ports, bounded waiting, and a tiny DNS client used to check the
DNS fixture really answers. No salvo code is involved here."""

import itertools
import random
import socket
import struct
import threading
import time

# Hang guards: how long a fixture waits for a server to come up or a condition to hold.
# They only stop a broken run from hanging; no verdict depends on them.
START_GUARD_S = 15.0
COND_GUARD_S = 15.0


class AddressPool:
    """Hands out loopback addresses that no other server in this pytest session uses, so
    servers never fight over (address, port) pairs and a sink can be told apart by address.
    Destinations get 127.0.<10..>.<1..250>; egress (source) addresses are 127.0.0.20-99."""

    def __init__(self):
        self._lock = threading.Lock()
        self._dest = itertools.count()
        self._src = itertools.count()

    def dest(self):
        with self._lock:
            n = next(self._dest)
        return "127.0.%d.%d" % (10 + n // 250, 1 + n % 250)

    def source(self):
        with self._lock:
            n = next(self._src)
        if n >= 80:
            raise RuntimeError("out of egress test addresses")
        return "127.0.0.%d" % (20 + n)


POOL = AddressPool()


def _can_bind(addr, port, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(*addrs, udp=False):
    """A TCP port (and UDP too when udp=True) free on every given address at once.
    Chosen below the kernel's ephemeral range so outgoing connections never take it."""
    addrs = addrs or ("127.0.0.1",)
    rnd = random.Random()
    for _ in range(2000):
        port = rnd.randrange(11000, 32000)
        if all(_can_bind(a, port, socket.SOCK_STREAM) for a in addrs) and (
                not udp or all(_can_bind(a, port, socket.SOCK_DGRAM) for a in addrs)):
            return port
    raise RuntimeError("no free port on %s" % (addrs,))


def wait_until(pred, guard_s=COND_GUARD_S, what="condition", step_s=0.02):
    """Polls pred() until it returns a true value (returned). The guard only stops a hang."""
    deadline = time.monotonic() + guard_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("hang guard: %s did not happen within %.0fs" % (what, guard_s))
        time.sleep(step_s)


def tcp_greeting(addr, port, guard_s=2.0):
    """Connects, returns the first line the server sends (or raises). Sends QUIT politely."""
    with socket.create_connection((addr, port), timeout=guard_s) as s:
        buf = b""
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        return buf.split(b"\n", 1)[0].decode("latin-1").rstrip("\r")


# --- a minimal DNS client (UDP), enough to prove the DNS fixture answers what we think ---

QTYPE = {"A": 1, "MX": 15, "AAAA": 28}


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(msg, off):
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        labels.append(msg[off + 1:off + 1 + n].decode("ascii"))
        off += 1 + n
    if not jumped:
        end = off
    return ".".join(labels), end


def dns_query(server, port, name, qtype, guard_s=2.0):
    """Returns (rcode, answers): rcode 0 = NOERROR, 3 = NXDOMAIN; answers a list of
    ("MX", pref, exchange) / ("A", ip) / (type, rdata-bytes) for the asked name."""
    tid = random.randrange(65536)
    pkt = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(
        ">HH", QTYPE[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(guard_s)
    try:
        s.sendto(pkt, (server, port))
        while True:
            msg, _ = s.recvfrom(65535)
            if struct.unpack(">H", msg[:2])[0] == tid:
                break
    finally:
        s.close()
    flags, qd, an = struct.unpack(">HHH", msg[2:8])
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        _, off = _read_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 15:
            pref = struct.unpack(">H", rdata[:2])[0]
            exch, _ = _read_name(msg, off + 2)
            answers.append(("MX", pref, exch))
        elif rtype == 1:
            answers.append(("A", socket.inet_ntoa(rdata)))
        else:
            answers.append((rtype, rdata))
        off += rdlen
    return flags & 0xF, answers
