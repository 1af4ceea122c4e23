"""Adaptive backoff rules (docs/shaping.md#adaptive-backoff): a provider's "421 try again
later" fires a suspend rule; both replicas stop sending to that destination until the
suspension ends (it is shared through Redis), then everything is delivered. A bounce rule
bounces what is queued, with the provider's reply in the event."""

import json
import threading
import time

from aiosmtpd.controller import Controller

from intake_fixtures import (Events, engine_args, engines, redis_factory,  # noqa: F401
                             redis_server, wait_final, wait_heartbeat)
from netutil import START_GUARD_S
from shaping_fixtures import inject_campaign, write_rules

SUSPEND_S = 4


class ThrottlingHandler:
    """Answers the n-th RCPT (1-based, counted over all connections) with `reply`; every
    other RCPT is accepted. Records (monotonic time, rcpt, code) of each RCPT."""

    def __init__(self, nth, reply):
        self.nth, self.reply = nth, reply
        self.lock = threading.Lock()
        self.rcpts = []
        self.delivered = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        with self.lock:
            n = len(self.rcpts) + 1
            code = self.reply if n == self.nth else "250 2.1.5 Ok"
            self.rcpts.append((time.monotonic(), address, int(code[:3])))
        if code.startswith("250"):
            envelope.rcpt_tos.append(address)
        return code

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.delivered.extend(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def start_server(net, handler):
    addr = net.addr()
    port = net.port(addr)
    ctl = Controller(handler, hostname=addr, port=port, ready_timeout=START_GUARD_S)
    ctl.start()
    return ctl, addr, port


def start_engines(engines, redis, rules, routes, names=("a", "b")):
    c = redis.client()
    es = []
    for name in names:
        e = engines.start(redis.url, name, *engine_args(
            routes=routes, sets=["shaping.file=%s" % rules, "retry.jitter=0",
                                 "intake.promote_interval_ms=100", "shutdown_grace_s=5",
                                 "intake.read_batch=20"]))
        wait_heartbeat(c, e)
        es.append(e)
    return c, es


def test_421_rule_suspends_both_replicas_and_recovers(net, redis_server, engines, salvo_bin,
                                                      tmp_path):
    h = ThrottlingHandler(10, "421 4.7.0 Try again later, closing connection.")
    ctl, addr, port = start_server(net, h)
    try:
        rules = write_rules(tmp_path / "rules.json", {
            "domains": {"slow.test": {"max_msgs_per_second": 10, "burst": 0,
                                      "retry_schedule_s": [1]}},
            "backoff_rules": [{"name": "try-later", "match": "^421 4\\.7\\.0 .*try again later",
                               "action": "suspend", "duration_s": SUSPEND_S}]})
        c, es = start_engines(engines, redis_server, rules, [("slow.test", addr, port)])
        rcpts = ["u%d@slow.test" % i for i in range(60)]
        inject_campaign(salvo_bin, redis_server.url, tmp_path, "bo", rcpts)
        wait_final(c, len(rcpts), es, cid="bo", stall_s=30.0, guard_s=120.0)
        for e in es:
            e.term()
        with h.lock:
            seen = list(h.rcpts)
            delivered = list(h.delivered)
        t421 = [t for t, _, code in seen if code == 421]
        assert len(t421) == 1, seen[:15]
        t0 = t421[0]
        # the replica that got the 421 stops at once; the other learns within a second
        # (holds are polled every second); nobody sends until the suspension ends
        quiet = [(round(t - t0, 2), r) for t, r, _ in seen if t0 + 1.5 < t < t0 + SUSPEND_S - 0.3]
        after = [t - t0 for t, _, _ in seen if t > t0]
        print("421 at +0; RCPTs after it at %s" % [round(x, 2) for x in after[:8]])
        assert not quiet, "RCPTs during the suspension: %s" % quiet
        assert after and max(after) >= SUSPEND_S - 0.3, "nothing was sent after the suspension"
        assert sorted(set(delivered)) == sorted(rcpts) and len(delivered) == len(rcpts)
        events = Events(c)
        assert events.count("delivered") == len(rcpts)
        # the throttled recipient was deferred once, with the reply; the rest waited unattempted
        deferred = events.of_type("deferred")
        assert len(deferred) == 1 and deferred[0]["smtp_code"] == 421, deferred
        # the suspension is visible to every replica, in Redis
        holds = c.hgetall("salvo:{p0}:holds")
        assert holds, "no hold in Redis"
        hold = json.loads(list(holds.values())[0])
        assert hold["rule"] == "try-later" and hold["action"] == "suspend", hold
        assert "Try again later" in hold["reason"]
        log = "".join(e.stderr() for e in es)
        assert "backoff: rule try-later: suspend" in log, log[-2000:]
    finally:
        ctl.stop()


def test_bounce_rule_bounces_the_queue(net, redis_server, engines, salvo_bin, tmp_path):
    h = ThrottlingHandler(3, "550 5.7.1 Service unavailable; client host blocked using a "
                             "blocklist (S3150)")
    ctl, addr, port = start_server(net, h)
    try:
        rules = write_rules(tmp_path / "rules.json", {
            "domains": {"blocked.test": {"max_msgs_per_second": 5, "burst": 0}},
            "backoff_rules": [{"name": "blocked", "match": "\\(S3150\\)", "action": "bounce",
                               "duration_s": 60}]})
        c, es = start_engines(engines, redis_server, rules, [("blocked.test", addr, port)],
                              names=("a",))
        rcpts = ["u%d@blocked.test" % i for i in range(20)]
        inject_campaign(salvo_bin, redis_server.url, tmp_path, "bl", rcpts)
        wait_final(c, len(rcpts), es, cid="bl", stall_s=30.0, guard_s=60.0)
        es[0].term()
        events = Events(c)
        bounced = events.of_type("bounced")
        delivered = events.of_type("delivered")
        print("%d delivered, %d bounced; RCPTs seen %d" % (len(delivered), len(bounced),
                                                           len(h.rcpts)))
        assert len(delivered) == 2 and len(bounced) == 18, (len(delivered), len(bounced))
        by_rule = [b for b in bounced if "backoff rule blocked" in (b["reply"] or "")]
        assert len(by_rule) == 17 and all(b["enhanced_code"] == "5.7.1" for b in by_rule)
        assert "S3150" in by_rule[0]["reply"]
        # nothing more reached the server after the rule fired
        assert len(h.rcpts) == 3
    finally:
        ctl.stop()
