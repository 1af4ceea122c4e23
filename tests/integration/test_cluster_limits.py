"""Cluster-wide limits (docs/shaping.md#cluster-wide-limits): with two replicas on one Redis,
a domain's message rate and connection limit hold for the two together, measured at the
server — and `replica_local` makes a limit per replica again."""

import collections

from intake_fixtures import (engine_args, engines, redis_factory, redis_server,  # noqa: F401
                             wait_heartbeat)
from shaping_fixtures import (counting_smtpd, finish_all_delivered, gaps_summary,
                              inject_campaign, rate_of, write_rules)

RATE = 20.0
TOLERANCE = 0.10
SKIP = 10


def start_two(engines, redis, rules, routes, sets=()):
    c = redis.client()
    es = []
    for name in ("a", "b"):
        e = engines.start(redis.url, name, *engine_args(
            routes=routes, sets=["shaping.file=%s" % rules, "retry.jitter=0",
                                 "intake.promote_interval_ms=100", "shutdown_grace_s=5",
                                 "intake.read_batch=50"] + list(sets)))
        wait_heartbeat(c, e)
        es.append(e)
    return c, es


def finish_two(c, es, rcpts, cid, received):
    """Both replicas done: the first one's checks (finish_all_delivered) cover the shared
    Redis and the server; the second is stopped cleanly."""
    es[1].term()
    return finish_all_delivered(c, es[0], rcpts, {cid: len(rcpts)}, received)


def test_two_replicas_share_one_rate(net, redis_server, engines, salvo_bin, tmp_path):
    srv, addr, port = counting_smtpd(net)
    rules = write_rules(tmp_path / "rules.json", {
        "defaults": {"max_connections": 10, "max_msgs_per_second": 1000, "burst": 1000},
        "domains": {"rate.test": {"max_msgs_per_second": RATE, "burst": 0}}})
    c, es = start_two(engines, redis_server, rules, [("rate.test", addr, port)])
    rcpts = ["u%d@rate.test" % i for i in range(300)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "shared", rcpts)
    # both replicas must be sending for the test to mean anything
    from intake_fixtures import wait_final
    wait_final(c, len(rcpts), es, cid="shared", stall_s=30.0, guard_s=120.0)
    events = finish_two(c, es, rcpts, "shared", srv.received)
    by = collections.Counter(ev["instance"] for ev in events.of_type("delivered"))
    times = srv.times()
    steady = times[SKIP:]
    rate = rate_of(steady)
    print("two replicas: %.2f msg/s at the server over %d messages (%s); delivered by %s"
          % (rate, len(steady), gaps_summary(steady), dict(by)))
    assert len(by) == 2 and min(by.values()) >= 30, "one replica did nearly all: %s" % dict(by)
    assert abs(rate - RATE) <= RATE * TOLERANCE, (
        "combined %.2f msg/s, limit %.0f/s +-%d%% (%s; by replica %s)" % (
            rate, RATE, TOLERANCE * 100, gaps_summary(steady), dict(by)))


def test_two_replicas_share_one_connection_limit(net, redis_server, engines, salvo_bin,
                                                 tmp_path):
    # a slow server keeps every connection busy, so each replica alone would open all 3
    srv, addr, port = counting_smtpd(net, delay_s=0.05)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"conns.test": {"max_connections": 3, "max_msgs_per_connection": 15}}})
    c, es = start_two(engines, redis_server, rules, [("conns.test", addr, port)])
    rcpts = ["u%d@conns.test" % i for i in range(300)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "conns", rcpts)
    from intake_fixtures import wait_final
    wait_final(c, len(rcpts), es, cid="conns", stall_s=30.0, guard_s=120.0)
    events = finish_two(c, es, rcpts, "conns", srv.received)
    snap = srv.snapshot()
    by = collections.Counter(ev["instance"] for ev in events.of_type("delivered"))
    print("peak %d connections at the server, %d opened; delivered by %s" % (
        snap["peak"], len(snap["conns"]), dict(by)))
    assert len(by) == 2, "one replica did all: %s" % dict(by)
    assert snap["peak"] <= 3, "the server saw %d connections at once (limit 3)" % snap["peak"]
    # the limit was used, not starved: leases moved between the replicas
    assert snap["peak"] >= 2


def test_replica_local_limit_is_per_replica(net, redis_server, engines, salvo_bin, tmp_path):
    """replica_local: each replica keeps its own 2 connections, so two replicas may hold 4."""
    srv, addr, port = counting_smtpd(net, delay_s=0.05)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"local.test": {"max_connections": 2, "max_msgs_per_connection": 20,
                                   "replica_local": True}}})
    c, es = start_two(engines, redis_server, rules, [("local.test", addr, port)])
    rcpts = ["u%d@local.test" % i for i in range(300)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "local", rcpts)
    from intake_fixtures import wait_final
    wait_final(c, len(rcpts), es, cid="local", stall_s=30.0, guard_s=120.0)
    finish_two(c, es, rcpts, "local", srv.received)
    snap = srv.snapshot()
    print("replica_local: peak %d connections" % snap["peak"])
    assert 3 <= snap["peak"] <= 4, snap["peak"]
    # nothing was leased in Redis for it
    assert not list(c.scan_iter("*conns:*local*"))


def test_connection_leases_are_shared_fairly(net, redis_server, engines, salvo_bin, tmp_path):
    """Connections that never end on their own (no per-connection cap) must still be shared:
    a replica waiting with none makes the holder of more than its fair share (limit /
    replicas that want it) close one, so both replicas deliver."""
    srv, addr, port = counting_smtpd(net, delay_s=0.02)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"fair.test": {"max_connections": 4, "max_msgs_per_connection": 1000000}}})
    c = redis_server.client()
    routes = [("fair.test", addr, port)]
    sets = ["shaping.file=%s" % rules, "retry.jitter=0", "intake.promote_interval_ms=100",
            "shutdown_grace_s=5", "intake.read_batch=20", "intake.max_in_memory=100",
            "intake.tx_reserve=10"]
    # a alone first: it takes all 4 connections, and they would never end by themselves
    a = engines.start(redis_server.url, "a", *engine_args(routes=routes, sets=sets))
    wait_heartbeat(c, a)
    rcpts = ["u%d@fair.test" % i for i in range(1000)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "fair", rcpts)
    from intake_fixtures import wait_final, wait_for
    wait_for(lambda: srv.snapshot()["open"] == 4 and srv.count() >= 50, 30.0,
             "a holding 4 connections", engines=[a])
    b = engines.start(redis_server.url, "b", *engine_args(routes=routes, sets=sets))
    wait_heartbeat(c, b)
    es = [a, b]
    wait_final(c, len(rcpts), es, cid="fair", stall_s=30.0, guard_s=120.0)
    events = finish_two(c, es, rcpts, "fair", srv.received)
    snap = srv.snapshot()
    by = collections.Counter(ev["instance"] for ev in events.of_type("delivered"))
    print("fair share: peak %d connections, %d opened; delivered by %s" % (
        snap["peak"], len(snap["conns"]), dict(by)))
    assert snap["peak"] <= 4, snap["peak"]
    # b got connections: a gave back what was beyond its share (2 of 4)
    assert len(snap["conns"]) >= 6, "a never closed a connection for b"
    assert len(by) == 2 and by["b"] >= len(rcpts) // 5, dict(by)
