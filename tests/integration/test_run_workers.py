"""Worker threads (docs/operations.md#worker-threads): `salvo run` with workers=2 runs two
event loops, each its own io_uring, resolver, delivery layer and Redis consumer
("<instance>-w0", "<instance>-w1"). Both deliver; nothing is lost or duplicated; a limit
still holds for the process (and the cluster), because workers share it through Redis; a
kill -9 and a restart lose nothing."""

import collections
import json
import signal
import time

from intake_fixtures import (Events, assert_event_sequences, engine_args, wait_final,
                             wait_for, wait_heartbeat)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)
from shaping_fixtures import (counting_smtpd, gaps_summary, inject_campaign, rate_of,
                              write_rules)

DOMAINS = 8


def start(engines, redis, routes, sets=(), instance="a"):
    c = redis.client()
    args = engine_args(routes=routes, sets=["workers=2", "retry.jitter=0",
                                            "intake.promote_interval_ms=100",
                                            "intake.read_batch=100", "shutdown_grace_s=5",
                                            "retry.schedule_s=1"] + list(sets))
    e = engines.start(redis.url, instance, *args)
    for w in ("w0", "w1"):
        wait_for(lambda w=w: c.exists("salvo:{p0}:hb:%s-%s" % (instance, w)), 20.0,
                 "heartbeat of worker %s" % w, engines=[e])
    return c, e


def test_two_workers_deliver_everything_once(net, redis_server, engines, salvo_bin, tmp_path):
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    routes = [("d%d.test" % i, addr, port) for i in range(DOMAINS)]
    c, e = start(engines, redis_server, routes)
    rcpts = ["u%d@d%d.test" % (i, i % DOMAINS) for i in range(3000)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "w", rcpts)
    wait_final(c, len(rcpts), [e], cid="w", stall_s=30.0, guard_s=120.0)
    e.term()
    assert e.rc == 0
    assert "2 workers" in e.stderr()
    events = Events(c)
    finals = assert_event_sequences(events, rcpts)
    assert all(f["type"] == "delivered" for f in finals.values())
    by = collections.Counter(ev["instance"] for ev in events.of_type("delivered"))
    print("delivered by worker: %s" % dict(by))
    assert sorted(by) == ["a-w0", "a-w1"] and min(by.values()) >= 300, dict(by)
    got = collections.Counter(r for m in sink.messages() for r in m["rcpts"])
    assert sorted(got) == sorted(rcpts) and max(got.values()) == 1


def test_two_workers_share_one_rate(net, redis_server, engines, salvo_bin, tmp_path):
    rate = 20.0
    srv, addr, port = counting_smtpd(net)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"rate.test": {"max_msgs_per_second": rate, "burst": 0}}})
    c, e = start(engines, redis_server, [("rate.test", addr, port)],
                 sets=["shaping.file=%s" % rules, "intake.read_batch=20"])
    rcpts = ["u%d@rate.test" % i for i in range(200)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "r", rcpts)
    wait_final(c, len(rcpts), [e], cid="r", stall_s=30.0, guard_s=120.0)
    e.term()
    times = srv.times()[10:]
    got = rate_of(times)
    by = collections.Counter(ev["instance"] for ev in Events(c).of_type("delivered"))
    print("two workers: %.2f msg/s (%s); by worker %s" % (got, gaps_summary(times), dict(by)))
    assert len(by) == 2, dict(by)
    assert abs(got - rate) <= rate * 0.10, "%.2f msg/s for a %.0f/s limit" % (got, rate)


def test_kill9_and_restart_with_two_workers_loses_nothing(net, redis_server, engines,
                                                         salvo_bin, tmp_path):
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    routes = [("d%d.test" % i, addr, port) for i in range(DOMAINS)]
    c, e = start(engines, redis_server, routes)
    rcpts = ["u%d@d%d.test" % (i, i % DOMAINS) for i in range(4000)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "k", rcpts)
    wait_for(lambda: len(sink.messages()) >= 800, 60.0, "800 deliveries", engines=[e])
    e.kill9()
    c2, e2 = start(engines, redis_server, routes)
    wait_final(c2, len(rcpts), [e2], cid="k", stall_s=30.0, guard_s=120.0)
    e2.term()
    assert e2.rc == 0
    events = Events(c2)
    finals = assert_event_sequences(events, rcpts)
    assert all(f["type"] == "delivered" for f in finals.values())
    got = collections.Counter(r for m in sink.messages() for r in m["rcpts"])
    assert sorted(got) == sorted(rcpts), "lost %d" % (len(rcpts) - len(got))
    dups = sum(n - 1 for n in got.values())
    print("after kill -9: %d duplicates at the server (in-flight window)" % dups)
    # only messages in flight at the kill may go twice: at most what two workers hold
    assert dups <= 2 * 5000 // 2
