"""Helpers for the traffic-shaping integration tests (docs/shaping.md): an aiosmtpd server
that records, per message, the server-side receive time and the connection it came on, and
counts connections open at once (peak over its whole life); writing rules files; campaigns;
the achieved rate at the server.

Servers started here register with the `net` fixture (net._started) so they are stopped at
teardown, pass or fail, like every other server of these tests."""

import asyncio
import collections
import itertools
import json
import os
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from intake_fixtures import (SENDER, Events, assert_event_sequences, assert_exactly_one_place,
                             census, engine_args, inject, wait_final, wait_heartbeat)
from netutil import START_GUARD_S


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP that counts the connections open at once on its owner."""

    def __init__(self, handler, owner, **kw):
        super().__init__(handler, **kw)
        self.owner = owner
        self.conn_id = None

    def connection_made(self, transport):
        first = self._original_transport is None and self.conn_id is None
        super().connection_made(transport)
        if first:
            self.conn_id = self.owner._opened(self.session.peer)

    async def push(self, status):
        # The connection's end, as the client sees it: it waits for the reply to QUIT
        # before it closes, so it cannot open a replacement before this moment. (Counting
        # the end only at connection_lost would race with the next accept, which may run
        # first in another server's thread.)
        st = status if isinstance(status, str) else status.decode("ascii", "replace")
        if st.startswith("221") and self.conn_id is not None:
            self.owner._closed(self.conn_id, quit=True)
        await super().push(status)

    def connection_lost(self, exc):
        if self.conn_id is not None:
            self.owner._closed(self.conn_id)
        super().connection_lost(exc)


class _CountingHandler:
    def __init__(self, owner):
        self.o = owner

    async def handle_DATA(self, server, session, envelope):
        o = self.o
        if o.delay_s:
            await asyncio.sleep(o.delay_s)
        o._message(server.conn_id, session.peer, envelope)
        return "250 2.0.0 Ok: queued"


class _CountingController(Controller):
    def __init__(self, owner, handler, **kw):
        self.owner = owner
        super().__init__(handler, **kw)

    def factory(self):
        return _CountingSMTP(self.handler, self.owner, **self.SMTP_kwargs)


class CountingSmtpd:
    """aiosmtpd on addr:port. Records:
      messages: {"t": time.monotonic() at end of data, "rcpts", "conn" (connection number),
                 "peer", "content"} for every message it answered 250;
      conns:    {"id", "peer", "opened", "closed" (monotonic times), "quit" (ended by
                QUIT, not dropped)} per connection;
      peak:     the most connections open at once over its whole life (counted in the
                server's own event loop: +1 in connection_made, -1 when it answers QUIT
                with 221 or, without QUIT, in connection_lost).
    delay_s: how long it waits before answering each end of data (may be changed live)."""

    _ids = itertools.count(1)

    def __init__(self, addr, port, delay_s=0.0, name="mx.shaping.test"):
        self.addr, self.port, self.delay_s = addr, port, delay_s
        self.lock = threading.Lock()
        self.messages = []
        self.conns = {}
        self.open = 0
        self.peak = 0
        self.peak_at = None
        self.running = False
        self.controller = _CountingController(
            self, _CountingHandler(self), hostname=addr, port=port, server_hostname=name,
            ready_timeout=START_GUARD_S, decode_data=False)
        self.controller.start()
        # The controller's own readiness probe opened (and closed) one connection: start
        # counting from a clean slate.
        time.sleep(0.1)
        with self.lock:
            self.conns.clear()
            self.open = 0
            self.peak = 0
        self.running = True

    # called from the server's event loop
    def _opened(self, peer):
        cid = next(self._ids)
        with self.lock:
            self.conns[cid] = {"id": cid, "peer": peer, "opened": time.monotonic(),
                               "closed": None, "quit": False}
            self.open += 1
            if self.open > self.peak:
                self.peak = self.open
                self.peak_at = time.monotonic()
        return cid

    def _closed(self, cid, quit=False):
        with self.lock:
            c = self.conns.get(cid)
            if c is not None and c["closed"] is None:
                c["closed"] = time.monotonic()
                c["quit"] = quit
                self.open -= 1

    def _message(self, cid, peer, envelope):
        with self.lock:
            self.messages.append({"t": time.monotonic(), "rcpts": list(envelope.rcpt_tos),
                                  "conn": cid, "peer": peer,
                                  "content": envelope.original_content})

    # reading
    def received(self):
        with self.lock:
            return [r for m in self.messages for r in m["rcpts"]]

    def count(self):
        with self.lock:
            return sum(len(m["rcpts"]) for m in self.messages)

    def times(self):
        with self.lock:
            return sorted(m["t"] for m in self.messages)

    def snapshot(self):
        with self.lock:
            return {"open": self.open, "peak": self.peak,
                    "conns": [dict(c) for c in self.conns.values()],
                    "messages": [dict(m) for m in self.messages]}

    def stop(self):
        if self.running:
            self.running = False
            self.controller.stop()


def counting_smtpd(net, addr=None, port=None, delay_s=0.0):
    """Starts a CountingSmtpd on a fresh loopback address (or addr) and a free port (or
    port), registered with net for teardown. Returns (server, addr, port)."""
    addr = addr or net.addr()
    port = port or net.port(addr)
    srv = net._started(CountingSmtpd(addr, port, delay_s=delay_s))
    return srv, addr, port


def peak_overlap(conn_records):
    """The most connections open at once over several servers' connection records (each
    {"opened", "closed"}), from the recorded intervals: a connection still open counts as
    open until now."""
    points = []
    now = time.monotonic()
    for c in conn_records:
        points.append((c["opened"], 1))
        points.append((c["closed"] if c["closed"] is not None else now, -1))
    # at equal times, closes first: a connection that ended exactly when the next began
    # does not overlap it
    points.sort(key=lambda p: (p[0], p[1]))
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def write_rules(path, rules):
    """Writes a rules file (dict -> JSON, or text as given) atomically (rename), so a
    SIGHUP never reads half a file. Returns the path as str."""
    path = str(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(rules if isinstance(rules, str) else json.dumps(rules, indent=1))
    os.replace(tmp, path)
    return path


def campaign(tmp_path, name, rcpts):
    """A campaign CSV (email,n) and text template for the given recipients; returns
    (csv path, text path)."""
    csv_path = os.path.join(str(tmp_path), "%s.csv" % name)
    with open(csv_path, "w") as f:
        f.write("email,n\n")
        for i, r in enumerate(rcpts):
            f.write("%s,%d\n" % (r, i))
    text_path = os.path.join(str(tmp_path), "%s.txt" % name)
    with open(text_path, "w") as f:
        f.write("Hello {{n}},\nshaping test message {{n}}.\nEND-OF-MESSAGE-{{n}}\n")
    return csv_path, text_path


def inject_campaign(salvo_bin, redis_url, tmp_path, cid, rcpts):
    csv_path, text_path = campaign(tmp_path, cid, rcpts)
    n, _ = inject(salvo_bin, redis_url, "--from", SENDER, "--recipients", csv_path,
                  "--campaign", cid, "--subject", "shaping {{n}}", "--text", text_path)
    assert n == len(rcpts), "inject enqueued %d of %d" % (n, len(rcpts))


def rate_of(times):
    """Messages per second over sorted receive times: (n - 1) intervals over the span."""
    if len(times) < 2 or times[-1] <= times[0]:
        return float("inf")
    return (len(times) - 1) / (times[-1] - times[0])


def gaps_summary(times):
    """min / median / max gap between consecutive receive times (for failure messages)."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    if not gaps:
        return "no gaps"
    return "gaps min %.4fs median %.4fs max %.4fs over %d" % (
        gaps[0], gaps[len(gaps) // 2], gaps[-1], len(gaps))


def start_engine(engines, redis, rules_path, routes=(), extra=(), sets=()):
    """`salvo run` with the rules file, TLS off, fast retry promotion; waits for its
    heartbeat. Returns (redis client, Engine)."""
    c = redis.client()
    e = engines.start(redis.url, "a", *engine_args(
        routes=routes, sets=["shaping.file=%s" % rules_path, "retry.jitter=0",
                             "intake.promote_interval_ms=100", "shutdown_grace_s=5",
                             "progress_interval_s=1"] + list(sets), extra=extra))
    wait_heartbeat(c, e)
    return c, e


def finish_all_delivered(c, e, rcpts, cids, received, guard_s=120.0):
    """Waits until every recipient is final (cids: {campaign id: how many recipients}), stops the
    engine (SIGTERM, exit 0, no sanitizer report), and checks: all delivered, each exactly
    once at the server(s) (received: a callable returning the recipients the servers
    accepted), one delivered event each and no deferral, nothing left in any queue.
    Returns the Events."""
    for cid, n in cids.items():
        wait_final(c, n, [e], cid=cid, stall_s=30.0, guard_s=guard_s)
    e.term()
    events = Events(c)
    finals = assert_event_sequences(events, rcpts)
    bad = {r: f["type"] for r, f in finals.items() if f["type"] != "delivered"}
    assert not bad, "not delivered: %s" % list(bad.items())[:10]
    assert events.count("deferred") == 0, "deferrals: %s" % events.of_type("deferred")[:3]
    counts = collections.Counter(received())
    dup = {r: n for r, n in counts.items() if n > 1}
    assert not dup, "delivered more than once at the server: %s" % list(dup.items())[:10]
    assert sorted(counts) == sorted(rcpts), "server got %d distinct of %d" % (
        len(counts), len(rcpts))
    assert_exactly_one_place(census(c, events), rcpts)
    return events
