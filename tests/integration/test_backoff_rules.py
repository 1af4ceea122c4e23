"""Adaptive backoff rules (docs/shaping.md#adaptive-backoff): a provider's "421 try again
later" fires a suspend rule; both replicas stop sending to that destination until the
suspension ends (it is shared through Redis), then everything is delivered. A bounce rule
bounces what is queued, with the provider's reply in the event."""

import collections
import json
import subprocess
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
        # events name the shaping site whose limits and holds applied
        assert deferred[0]["site"] == "mx:%s" % addr, deferred[0]["site"]
        # the suspension is visible to every replica, in Redis
        holds = c.hgetall("salvo:{p0}:holds")
        assert holds, "no hold in Redis"
        hold = json.loads(list(holds.values())[0])
        assert hold["rule"] == "try-later" and hold["action"] == "suspend", hold
        assert "Try again later" in hold["reason"]
        log = "".join(e.stderr() for e in es)
        assert "backoff: rule try-later: suspend" in log, log[-2000:]
        # and an operator sees it (while it lasts: the whole run took longer than it)
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
        by_rule = [b for b in bounced if "backoff rule blocked: " in (b["reply"] or "")]
        assert len(by_rule) == 17 and all(b["enhanced_code"] == "5.7.1" for b in by_rule)
        assert "S3150" in by_rule[0]["reply"]
        # nothing more reached the server after the rule fired
        assert len(h.rcpts) == 3
    finally:
        ctl.stop()


def shaping(salvo_bin, redis, *args):
    out = subprocess.run([salvo_bin, "shaping"] + list(args) + ["--redis", redis.url],
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout, out.stderr


def test_manual_suspend_and_resume(net, redis_server, engines, salvo_bin, tmp_path):
    """An operator's hold uses the same mechanism: `salvo shaping suspend` stops every replica
    sending to the scope, `holds` lists it, `resume` ends it; mail that waited goes again
    within the hold recheck time (5 minutes), new mail at once."""
    h = ThrottlingHandler(0, "")
    ctl, addr, port = start_server(net, h)
    try:
        rules = write_rules(tmp_path / "rules.json", {})
        rc, out, err = shaping(salvo_bin, redis_server, "suspend", "domain:hold.test", "--for",
                               "600", "--reason", "maintenance window")
        assert rc == 0, err
        c, es = start_engines(engines, redis_server, rules, [("hold.test", addr, port)],
                              names=("a",))
        inject_campaign(salvo_bin, redis_server.url, tmp_path, "held",
                        ["h%d@hold.test" % i for i in range(10)])
        deadline = time.monotonic() + 30
        while c.zcard("salvo:{p0}:delay") < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.zcard("salvo:{p0}:delay") == 10, "the held mail did not wait in the retry set"
        assert not h.rcpts, "mail went to a suspended domain"
        now_ms = time.time() * 1000
        due = [s for _, s in c.zrange("salvo:{p0}:delay", 0, -1, withscores=True)]
        assert all(now_ms + 200_000 < d <= now_ms + 301_000 for d in due), [d - now_ms for d in due]
        rc, out, err = shaping(salvo_bin, redis_server, "holds", "--json")
        assert rc == 0, err
        holds = json.loads(out)
        assert [x["key"] for x in holds] == ["domain:hold.test"], holds
        assert holds[0]["rule"] == "manual" and holds[0]["reason"] == "maintenance window"
        assert 590 <= holds[0]["remaining_s"] <= 600
        rc, out, err = shaping(salvo_bin, redis_server, "resume", "domain:hold.test")
        assert rc == 0, err
        rc, out, err = shaping(salvo_bin, redis_server, "holds")
        assert rc == 0 and "no holds in force" in out, out
        time.sleep(1.5)   # replicas read holds every second
        inject_campaign(salvo_bin, redis_server.url, tmp_path, "after",
                        ["a%d@hold.test" % i for i in range(10)])
        wait_final(c, 10, es, cid="after", stall_s=20.0, guard_s=30.0)
        es[0].term()
        assert sorted(h.delivered) == sorted("a%d@hold.test" % i for i in range(10))
        # bad requests get a clear error
        rc, _, err = shaping(salvo_bin, redis_server, "suspend", "nonsense", "--for", "5")
        assert rc == 64 and "bad SCOPE" in err
        rc, _, err = shaping(salvo_bin, redis_server, "suspend", "domain:x.test")
        assert rc == 64 and "--for" in err
        rc, _, err = shaping(salvo_bin, redis_server, "suspend", "domain:x.test", "--for", "5",
                             "--action", "reduce_rate")
        assert rc == 64 and "--rate" in err
    finally:
        ctl.stop()


def test_pool_sends_around_a_suspended_source(net, redis_server, engines, salvo_bin, tmp_path):
    """A hold on one source at a destination (suspend_source, or `salvo shaping suspend
    dest:SOURCE|SITE`) makes the pool send that destination's mail from its other sources,
    instead of letting it wait."""
    from intake_fixtures import SENDER, wait_for, xadd_job
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    ip_a, ip_b = net.addr(), net.addr()
    config = tmp_path / "salvo.json"
    config.write_text(json.dumps({"egress": {
        "sources": {"ip-a": {"ip": ip_a}, "ip-b": {"ip": ip_b}},
        "pools": {"p": {"ip-a": 1, "ip-b": 1}}, "default_pool": "p"}}))
    rules = write_rules(tmp_path / "rules.json", {})
    c = redis_server.client()
    e = engines.start(redis_server.url, "a", "--config", str(config), *engine_args(
        routes=[("pool.test", addr, port)], sets=["shaping.file=%s" % rules, "retry.jitter=0",
                                                  "intake.promote_interval_ms=100"]))
    wait_heartbeat(c, e)

    def job(n):
        return {"from": SENDER, "to": "r%d@pool.test" % n,
                "message": {"from": SENDER, "subject": "pool", "text": "Hello.\n"}}
    for n in range(10):
        xadd_job(c, job(n))
    wait_for(lambda: len(sink.messages()) >= 10, 30.0, "the first 10", engines=[e])
    rc, out, err = shaping(salvo_bin, redis_server, "suspend", "dest:ip-a|mx:%s" % addr,
                           "--for", "600", "--reason", "test")
    assert rc == 0, err
    time.sleep(1.5)   # every replica reads holds each second
    for n in range(10, 40):
        xadd_job(c, job(n))
    wait_for(lambda: len(sink.messages()) >= 40, 30.0, "all 40", engines=[e])
    e.term()
    later = [m for m in sink.messages() if int(m["rcpts"][0][1:].split("@")[0]) >= 10]
    by = collections.Counter(m["client_addr"] for m in later)
    print("after the hold on ip-a: %s" % dict(by))
    assert by == {ip_b: 30}, dict(by)
