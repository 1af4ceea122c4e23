"""Crash safety of the durable-state invariant (DESIGN.md section 2): kill -9 the engine in
the middle of a large campaign, or kill one of two replicas, or kill Redis itself, and every
message still reaches exactly one final state; nothing is lost, and the only duplicates at
the receiving server are messages that were in flight (read, not yet settled) at the kill.

Identity of a message: its recipient address u<n>@<domain> (one per campaign row), so it is
the same across retries (a retried message gets a new stream entry id)."""

import collections

from intake_fixtures import (SENDER, KEYS, assert_event_sequences, assert_exactly_one_place,
                             census, engine_args, Events, final_count, inject, pending_of,
                             sink_received, stats, wait_for, wait_heartbeat,
                             write_campaign_files)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

N = 20000                 # campaign size (the figure)
DOMAINS = 10              # spread over 10 destinations (one sink): no single one saturates
MAX_IN_MEMORY = 1000
GUARD_S = 240.0           # hang guard for a whole campaign to finish


def _setup_campaign(net, redis, salvo_bin, tmp_path, n, cid="crash"):
    """A campaign of n recipients over DOMAINS domains, all routed to one smtp-sink."""
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    domain_of = lambda i: "d%d.test" % (i % DOMAINS)   # noqa: E731
    csv_path, text_path = write_campaign_files(str(tmp_path), n, domain_of)
    count, _ = inject(salvo_bin, redis.url, "--from", SENDER, "--recipients", csv_path,
                      "--campaign", cid, "--subject", "Hello {{n}}", "--text", text_path)
    assert count == n, "inject enqueued %d of %d" % (count, n)
    recipients = ["u%d@%s" % (i, domain_of(i)) for i in range(n)]
    routes = [("d%d.test" % k, addr, port) for k in range(DOMAINS)]
    return sink, routes, recipients


def _args(routes, *more):
    # intake.block_ms=100: with the tx lane empty, a blocking read of it holds up bulk
    # reading for block_ms (reported); a short block keeps the campaign quick.
    return engine_args(routes=routes, sets=["intake.block_ms=100",
        "intake.max_in_memory=%d" % MAX_IN_MEMORY, "intake.tx_reserve=100",
        "retry.schedule_s=1", "retry.jitter=0", "progress_interval_s=1",
        "intake.heartbeat_ttl_ms=1000", "intake.claim_interval_ms=500"] + list(more))


def _check_complete(c, sink, recipients, in_flight_at_kills, cid):
    """Everything is final, exactly once, in Redis; the sink has every message; duplicates
    at the sink are bounded by what was in flight at the kills. Returns the dup count."""
    events = Events(c)
    places = census(c, events)
    assert_exactly_one_place(places, recipients)
    finals = assert_event_sequences(events, recipients)
    not_delivered = [(r, e["type"], e.get("reply")) for r, e in finals.items()
                     if e["type"] != "delivered"]
    assert not not_delivered, "%d not delivered, e.g. %s" % (len(not_delivered),
                                                             not_delivered[:5])
    st = stats(c)
    assert st.get("delivered") == len(recipients), "stats %r" % st
    assert stats(c, cid).get("delivered") == len(recipients), "campaign stats %r" % stats(c, cid)
    complete, partial = sink_received(sink)
    counts = collections.Counter(complete)
    lost = [r for r in recipients if r not in counts]
    assert not lost, "%d messages never reached the sink, e.g. %s" % (len(lost), lost[:5])
    assert set(counts) == set(recipients), "unexpected recipients at the sink: %s" % (
        sorted(set(counts) - set(recipients))[:5])
    dups = sum(v - 1 for v in counts.values())
    assert dups <= sum(in_flight_at_kills), (
        "%d duplicates at the sink, but only %d messages were in flight at the kills (%s)" % (
            dups, sum(in_flight_at_kills), in_flight_at_kills))
    assert dups <= MAX_IN_MEMORY * len(in_flight_at_kills)
    return dups, len(partial)


def test_kill9_mid_campaign_then_restart_loses_nothing(net, redis_server, engines, salvo_bin,
                                                       tmp_path):
    c = redis_server.client()
    sink, routes, recipients = _setup_campaign(net, redis_server, salvo_bin, tmp_path, N)
    args = _args(routes)
    in_flight = []
    # Two kills: at about 20 % and 55 % of the campaign, each restart with the same name.
    for frac in (0.20, 0.55):
        e = engines.start(redis_server.url, "a", *args)
        wait_for(lambda: final_count(c) >= frac * N, GUARD_S,
                 "%.0f%% of the campaign final" % (frac * 100), engines=[e])
        e.kill9()
        pending = pending_of(c, "a")
        assert len(pending) <= MAX_IN_MEMORY, (
            "%d entries pending for the killed engine, more than intake.max_in_memory=%d" % (
                len(pending), MAX_IN_MEMORY))
        in_flight.append(len(pending))
    assert sum(in_flight) > 0, "the kills found nothing in flight: the test proved nothing"
    e = engines.start(redis_server.url, "a", *args)
    wait_for(lambda: final_count(c) >= N, GUARD_S, "every message final", engines=[e])
    e.term()
    dups, partial = _check_complete(c, sink, recipients, in_flight, "crash")
    print("in flight at kills %s, duplicates at the sink %d, aborted transactions %d" % (
        in_flight, dups, partial))
    assert final_count(c) == N


def test_two_replicas_survivor_claims_the_dead_ones_work(net, redis_server, engines,
                                                         salvo_bin, tmp_path):
    c = redis_server.client()
    sink, routes, recipients = _setup_campaign(net, redis_server, salvo_bin, tmp_path, N)
    args = _args(routes)
    a = engines.start(redis_server.url, "a", *args)
    b = engines.start(redis_server.url, "b", *args)
    wait_heartbeat(c, a)
    wait_heartbeat(c, b)
    events = Events(c)

    def both_working():
        events.poll()
        inst = collections.Counter(e["instance"] for e in events.events)
        return final_count(c) >= 0.25 * N and inst["a"] > 0 and inst["b"] > 0
    wait_for(both_working, GUARD_S, "both replicas delivering, 25% final", engines=[a, b])
    a.kill9()
    orphans = pending_of(c, "a")
    assert orphans, "replica a had nothing pending when killed: the test proved nothing"
    assert len(orphans) <= MAX_IN_MEMORY
    # b must take them over (a's heartbeat expires after 1 s) and finish the campaign.
    wait_for(lambda: final_count(c) >= N, GUARD_S, "every message final", engines=[b])
    assert not pending_of(c, "a"), "entries still pending for the dead replica"
    b.term()
    dups, partial = _check_complete(c, sink, recipients, [len(orphans)], "crash")
    # Each entry pending for a at the kill was settled by b under the same entry id.
    events.poll()
    final_by_id = {e["message_id"]: e for e in events.events if e["type"] == "delivered"}
    not_b = [(i, final_by_id.get(i, {}).get("instance")) for i in orphans
             if final_by_id.get(i, {}).get("instance") != "b"]
    assert not not_b, "%d of the dead replica's %d pending entries were not settled by b, " \
        "e.g. %s" % (len(not_b), len(orphans), not_b[:5])
    assert "claimed" in b.stderr()
    inst = collections.Counter(e["instance"] for e in events.events)
    print("orphans %d, duplicates %d, aborted %d, events per instance %s" % (
        len(orphans), dups, partial, dict(inst)))
    consumers = [x["name"].decode() for x in c.xinfo_consumers(KEYS.bulk, "salvo")]
    assert "a" not in consumers, "the dead consumer was not removed: %s" % consumers


def test_redis_restart_mid_run_engine_reconnects(net, redis_factory, engines, salvo_bin,
                                                 tmp_path):
    redis = redis_factory(aof=True)
    c = redis.client()
    sink, routes, recipients = _setup_campaign(net, redis, salvo_bin, tmp_path, N)
    e = engines.start(redis.url, "a", *_args(routes))
    wait_for(lambda: final_count(c) >= 0.25 * N, GUARD_S, "25% final", engines=[e])
    c.close()
    redis.restart(hard=True, down_s=2.0)   # kill -9, 2 s of refused connections, start
    c = redis.client()
    after_restart = final_count(c)
    assert 0 < after_restart < N, "restart was not mid-run (%d final)" % after_restart
    wait_for(lambda: final_count(c) >= N, GUARD_S, "every message final after the restart",
             engines=[e])
    e.term()
    # Duplicates are possible only for messages in memory when Redis died.
    dups, partial = _check_complete(c, sink, recipients, [MAX_IN_MEMORY], "crash")
    err = e.stderr()
    assert "connection lost" in err or "unavailable" in err, "the engine never saw Redis go"
    print("final after restart %d, duplicates %d, aborted %d" % (after_restart, dups, partial))
