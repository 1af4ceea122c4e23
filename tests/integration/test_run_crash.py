"""Crash safety of the durable-state invariant (DESIGN.md section 2): kill -9 the engine in
the middle of a large campaign, or kill one of two replicas, or kill Redis itself, and every
message still reaches exactly one final state; nothing is lost, and the only duplicates at
the receiving server are the at-least-once window: a message the server had accepted (250)
whose settle had not reached Redis when the process died. A graceful stop (SIGTERM) leaves
nothing pending and causes no duplicate, also when a transaction outlasts the grace period.

Identity of a message: its recipient address u<n>@d<k>.test (one per campaign row), so it is
the same across retries (a retried message gets a new stream entry id).

Duplicates are accounted exactly: at each kill the test records which entries were pending
for the dead engine (read, not settled) and which messages the sink already had. A recipient
may appear at the sink once more for every kill at which it was both; any other duplicate
is a bug (the engine delivered a message twice on its own)."""

import collections
import json
import time

from intake_fixtures import (SENDER, KEYS, SlowSmtpd, assert_event_sequences,
                             assert_exactly_one_place, census, engine_args, Events, final_count,
                             inject, pending_of, redis_state, sink_received,
                             sink_received_until, stats, wait_final, wait_for, wait_heartbeat,
                             write_campaign_files, xadd_job)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

N = 20000                 # campaign size (the figure)
DOMAINS = 10              # spread over 10 destinations (one sink): no single one saturates
MAX_IN_MEMORY = 1000
READ_BATCH = 200          # several reads to replay a dead engine's pending entries
STALL_S = 30.0            # hang guard: no message became final for this long
HEARTBEAT_TTL_MS = 5000   # a killed replica's work is claimed 3-5 s after the kill


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
    return engine_args(routes=routes, sets=[
        "intake.block_ms=100", "intake.read_batch=%d" % READ_BATCH,
        "intake.max_in_memory=%d" % MAX_IN_MEMORY, "intake.tx_reserve=100",
        "retry.schedule_s=1", "retry.jitter=0", "progress_interval_s=1",
        "intake.heartbeat_ttl_ms=%d" % HEARTBEAT_TTL_MS, "intake.claim_interval_ms=500"] +
        list(more))


def _sink_counts(sink):
    complete, _ = sink_received(sink)
    return collections.Counter(complete)


class Kill:
    """What was in flight when an engine was killed: the entries pending for it, their
    recipients, and which of those the sink had already accepted (the legitimate duplicate
    window). Taken right after the kill: the sink's view is cut at the kill (plus 0.3 s for
    smtp-sink to write what it had fully received), long before another replica can claim
    the dead one's entries (its heartbeat lives HEARTBEAT_TTL_MS after its last refresh)."""

    def __init__(self, c, instance, sink):
        killed_at = time.time()
        self.pending = pending_of(c, instance)
        pipe = c.pipeline(transaction=False)
        for eid in self.pending:
            for lane in ("tx", "bulk"):
                pipe.xrange(KEYS.stream(lane), eid, eid)
        self.recipients = set()
        for got in pipe.execute():
            if got:
                to = json.loads(got[0][1][b"job"])["to"]
                self.recipients.update([to] if isinstance(to, str) else to)
        self._still_pending(c, instance)
        time.sleep(0.3)
        self._still_pending(c, instance)
        # Only dumps written by then: a replica that claims the dead one's entries later
        # delivers them later.
        at_sink = set(sink_received_until(sink, killed_at + 0.3))
        self.window = {r for r in self.recipients if r in at_sink}

    def _still_pending(self, c, instance):
        still = set(pending_of(c, instance))
        assert still == set(self.pending), (
            "the killed engine's entries were claimed before the test could look at the "
            "sink (%d of %d still pending): the duplicate accounting would be wrong" % (
                len(still & set(self.pending)), len(self.pending)))

    def __repr__(self):
        return "<kill: %d pending, %d of them already at the sink>" % (
            len(self.pending), len(self.window))


def _check_complete(c, sink, recipients, kills, cid):
    """Everything is final, exactly once, in Redis; the sink has every message; every
    duplicate at the sink is explained by the kills. Returns (dups, aborted txns)."""
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
    unexplained = {}
    for r, v in counts.items():
        allowed = 1 + sum(1 for k in kills if r in k.window)
        if v > allowed:
            unexplained[r] = (v, allowed, [r in k.recipients for k in kills])
    assert not unexplained, (
        "%d recipients received more often than the at-least-once window allows "
        "(%d duplicates in all; kills %s); e.g. {recipient: (received, allowed, "
        "[pending at each kill])}: %s" % (len(unexplained), dups, kills,
                                          dict(list(unexplained.items())[:8])))
    assert dups <= MAX_IN_MEMORY * max(1, len(kills))
    return dups, len(partial)


def test_kill9_mid_campaign_then_restart_loses_nothing(net, redis_server, engines, salvo_bin,
                                                       tmp_path):
    c = redis_server.client()
    sink, routes, recipients = _setup_campaign(net, redis_server, salvo_bin, tmp_path, N)
    args = _args(routes)
    kills = []
    # Two kills: at about 20 % and 55 % of the campaign, each restart with the same name.
    for frac in (0.20, 0.55):
        e = engines.start(redis_server.url, "a", *args)
        wait_final(c, frac * N, [e], stall_s=STALL_S)
        e.kill9()
        k = Kill(c, "a", sink)
        assert len(k.pending) <= MAX_IN_MEMORY, (
            "%d entries pending for the killed engine, more than intake.max_in_memory=%d" % (
                len(k.pending), MAX_IN_MEMORY))
        kills.append(k)
    assert any(k.pending for k in kills), "nothing was in flight at the kills: proved nothing"
    e = engines.start(redis_server.url, "a", *args)
    wait_final(c, N, [e], stall_s=STALL_S)
    e.term()
    dups, partial = _check_complete(c, sink, recipients, kills, "crash")
    print("kills %s, duplicates at the sink %d, aborted transactions %d" % (kills, dups, partial))
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
    wait_for(both_working, 240, "both replicas delivering, 25% final", engines=[a, b])
    a.kill9()
    k = Kill(c, "a", sink)
    assert k.pending, "replica a had nothing pending when killed: the test proved nothing"
    assert len(k.pending) <= MAX_IN_MEMORY
    # b must take them over (a's heartbeat expires after 1 s) and finish the campaign.
    wait_final(c, N, [b], stall_s=STALL_S)
    assert not pending_of(c, "a"), "entries still pending for the dead replica: %s" % (
        redis_state(c))
    b.term()
    dups, partial = _check_complete(c, sink, recipients, [k], "crash")
    # Every message pending for a at the kill was finished by b.
    events.poll()
    final_by_rcpt = {e["recipient"]: e for e in events.events if e["type"] == "delivered"}
    not_b = [(r, final_by_rcpt.get(r, {}).get("instance")) for r in sorted(k.recipients)
             if final_by_rcpt.get(r, {}).get("instance") != "b"]
    assert not not_b, "%d of the dead replica's %d pending messages were not finished by b, " \
        "e.g. %s" % (len(not_b), len(k.recipients), not_b[:5])
    inst = collections.Counter(e["instance"] for e in events.events)
    print("%s, duplicates %d, aborted %d, events per instance %s" % (
        k, dups, partial, dict(inst)))
    consumers = [x["name"].decode() for x in c.xinfo_consumers(KEYS.bulk, "salvo")]
    assert "a" not in consumers, "the dead consumer was not removed: %s" % consumers


def test_redis_restart_mid_run_engine_reconnects(net, redis_factory, engines, salvo_bin,
                                                 tmp_path):
    redis = redis_factory(aof=True)
    c = redis.client()
    sink, routes, recipients = _setup_campaign(net, redis, salvo_bin, tmp_path, N)
    e = engines.start(redis.url, "a", *_args(routes))
    wait_final(c, 0.25 * N, [e], stall_s=STALL_S)
    c.close()
    redis.restart(hard=True, down_s=2.0)   # kill -9, 2 s of refused connections, start
    c = redis.client()
    after_restart = final_count(c)
    assert 0 < after_restart < N, "restart was not mid-run (%d final)" % after_restart
    wait_final(c, N, [e], stall_s=STALL_S)
    e.term()
    # Redis died, not the engine: with --appendfsync always Redis lost nothing it had
    # acknowledged, and the engine keeps every outcome it could not settle and settles it
    # when Redis is back (the settle script skips what it already did). So no message may
    # be sent twice: the at-least-once window (a 250 whose settle never reached Redis)
    # needs the engine to die.
    events = Events(c)
    assert_exactly_one_place(census(c, events), recipients)
    assert_event_sequences(events, recipients)
    counts = _sink_counts(sink)
    lost = [r for r in recipients if r not in counts]
    assert not lost, "%d messages never reached the sink, e.g. %s" % (len(lost), lost[:5])
    dups = {r: v for r, v in counts.items() if v > 1}
    assert not dups, "%d messages sent more than once across a Redis restart, e.g. %s" % (
        len(dups), list(dups.items())[:5])
    assert stats(c).get("delivered") == N, "stats %r" % stats(c)
    err = e.stderr()
    assert "connection lost" in err, "the engine never saw Redis go"
    print("final when Redis came back %d" % after_restart)


def test_sigterm_mid_campaign_finishes_in_memory_work_then_restart_sends_no_duplicates(
        net, redis_server, engines, salvo_bin, tmp_path):
    """The graceful counterpart of kill -9: SIGTERM stops reading, finishes what is in
    memory, settles it and exits 0, so nothing is left pending and a restart sends nothing
    twice."""
    c = redis_server.client()
    sink, routes, recipients = _setup_campaign(net, redis_server, salvo_bin, tmp_path, N)
    args = _args(routes, "shutdown_grace_s=60")
    e = engines.start(redis_server.url, "a", *args)
    wait_final(c, 0.3 * N, [e], stall_s=STALL_S)
    e.term()
    left = pending_of(c, "a")
    assert not left, "%d entries left pending after a graceful stop: %s" % (
        len(left), redis_state(c))
    stopped_at = final_count(c)
    assert stopped_at < N, "the campaign finished before the stop: proved nothing"
    assert not c.exists(KEYS.hb("a")), "the heartbeat outlived a graceful stop"
    e = engines.start(redis_server.url, "a", *args)
    wait_final(c, N, [e], stall_s=STALL_S)
    e.term()
    dups, _ = _check_complete(c, sink, recipients, [], "crash")
    assert dups == 0, "%d messages sent twice across a graceful restart" % dups
    print("stopped at %d final" % stopped_at)


def test_sigterm_with_a_transaction_outlasting_the_grace_exits_cleanly(net, redis_server,
                                                                        engines):
    """SIGTERM while the server sits on the end of data longer than shutdown_grace_s: the
    engine gives up on it, exits 0 with no sanitizer report, and leaves the message pending;
    a restart delivers everything."""
    c = redis_server.client()
    addr = net.addr()
    port = net.port(addr)
    slow = net._started(SlowSmtpd(addr, port, delay_s=5.0))
    args = engine_args(routes=[("slow.test", addr, port)], sets=[
        "shutdown_grace_s=1", "delivery.max_conns_per_dest=1", "retry.schedule_s=1",
        "retry.jitter=0"])
    e = engines.start(redis_server.url, "a", *args)
    wait_heartbeat(c, e)
    rcpts = ["r%d@slow.test" % i for i in range(3)]
    for r in rcpts:
        xadd_job(c, {"from": SENDER, "to": r, "message": {
            "from": SENDER, "subject": "grace", "text": "END-OF-MESSAGE-%s\n" % r}})
    wait_for(lambda: slow.started, 30, "the first message's data at the server", engines=[e])
    e.term(guard_s=60)          # exit 0, no sanitizer report
    slow.delay_s = 0
    e = engines.start(redis_server.url, "a", *args)
    wait_final(c, len(rcpts), [e], stall_s=STALL_S)
    e.term()
    events = Events(c)
    assert_exactly_one_place(census(c, events), rcpts)
    finals = assert_event_sequences(events, rcpts)
    assert {f["type"] for f in finals.values()} == {"delivered"}, finals
    got = collections.Counter(r for m in slow.messages for r in m["rcpts"])
    assert set(got) == set(rcpts), got
    # at most the one whose 250 came after the engine had gone can arrive twice
    assert sum(got.values()) - len(rcpts) <= 1, got
