"""A destination that must wait long for its rate (more than 2 s for the next token) pushes
its queued messages back to the Redis retry set with the time they may go, instead of
holding them in memory (docs/shaping.md, DESIGN section 2): with max_msgs_per_minute 10 and
40 messages, the first 10 (the minute's allowance) are delivered at once; the other 30 wait
in salvo:{p0}:delay with due times at most one token interval (6 s) ahead, their payloads
still at attempt 0, with no `deferred` event; later ones are delivered, on attempt 1, no
faster than the allowance refills."""

import json
import time

from intake_fixtures import (KEYS, Events, assert_exactly_one_place, census, pending_of,
                             redis_state, stats, wait_for)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)
from shaping_fixtures import counting_smtpd, inject_campaign, start_engine, write_rules

N = 40
PER_MIN = 10
INTERVAL_S = 60.0 / PER_MIN
OBSERVE_S = 14.0


def _waiting(c):
    """{member: (due ms, payload dict)} of the retry set."""
    out = {}
    data = c.hgetall(KEYS.delay_data)
    for m, score in c.zrange(KEYS.delay, 0, -1, withscores=True):
        out[m.decode()] = (score, json.loads(data[m]) if m in data else None)
    return out


def test_throttled_messages_wait_in_the_retry_set(net, redis_server, engines, salvo_bin,
                                                  tmp_path):
    srv, addr, port = counting_smtpd(net)
    rules = write_rules(tmp_path / "rules.json", {
        "domains": {"slow.test": {"max_msgs_per_minute": PER_MIN}}})
    c, e = start_engine(engines, redis_server, rules, routes=[("slow.test", addr, port)])
    rcpts = ["u%d@slow.test" % i for i in range(N)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "thr", rcpts)
    wait_for(lambda: srv.count() >= PER_MIN, 30.0, "the first %d delivered" % PER_MIN,
             engines=[e])
    t_first = srv.times()[0]

    # All the undelivered ones end up in the retry set (none held by the engine): wait for
    # a moment where the server count plus the retry set account for all 40.
    seen = {}

    def all_waiting():
        delivered = srv.count()
        w = _waiting(c)
        now_ms = time.time() * 1000
        if delivered + len(w) == N and len(w) > 0:
            seen.update(delivered=delivered, waiting=w, now_ms=now_ms,
                        pending=pending_of(c, e.instance),
                        stream=c.xlen(KEYS.bulk) + c.xlen(KEYS.tx))
            return True
        return False
    wait_for(all_waiting, 20.0, "the throttled messages in the retry set", engines=[e],
             step_s=0.02)
    w, now_ms = seen["waiting"], seen["now_ms"]
    assert seen["delivered"] <= PER_MIN + 3, seen["delivered"]
    assert len(w) >= N - PER_MIN - 3, "only %d in the retry set: %s" % (len(w), redis_state(c))
    problems = []
    for m, (due, payload) in w.items():
        if payload is None:
            problems.append("%s: no payload" % m)
            continue
        st = payload.get("_state", {})
        if st.get("attempt") != 0:
            problems.append("%s: _state.attempt %r (a throttled message was not attempted)" % (
                m, st.get("attempt")))
        # due: when a token is available, at most one interval ahead (the promotion
        # may be up to intake.promote_interval_ms late: 100 ms here, allow 1 s)
        if not now_ms - 1000 <= due <= now_ms + INTERVAL_S * 1000 + 1000:
            problems.append("%s: due %+.0f ms from now" % (m, due - now_ms))
    assert not problems, "%d problems in the retry set, e.g. %s" % (len(problems), problems[:5])
    assert any(due > now_ms for due, _ in w.values()), "no due time in the future"

    # No deferral was reported for them, and nothing counted as deferred.
    events = Events(c)
    assert events.count("deferred") == 0, events.of_type("deferred")[:3]
    assert stats(c, "thr").get("deferred", 0) == 0 and stats(c).get("deferred", 0) == 0, \
        stats(c)

    # Later ones are delivered, on their first attempt, no faster than the allowance refills.
    deadline = time.monotonic() + OBSERVE_S
    while time.monotonic() < deadline:
        e.check_alive()
        time.sleep(0.2)
    elapsed = time.monotonic() - t_first
    got = srv.count()
    print("%d delivered %.1fs after the first; retry set %d; stats %s" % (
        got, elapsed, c.zcard(KEYS.delay), stats(c)))
    assert got > PER_MIN, "nothing delivered after the first %d in %.0fs: %s" % (
        PER_MIN, elapsed, redis_state(c))
    # allowance 10, refilling one per 6 s (+1: a token may have just come due)
    bound = PER_MIN + int(elapsed / INTERVAL_S) + 1
    assert got <= bound, "%d delivered within %.1fs, allowance %d a minute allows %d" % (
        got, elapsed, PER_MIN, bound)
    e.term()
    events = Events(c)
    delivered = events.of_type("delivered")
    assert len(delivered) == got, (len(delivered), got)
    assert all(ev["attempt"] == 1 for ev in delivered), [
        (ev["recipient"], ev["attempt"]) for ev in delivered if ev["attempt"] != 1]
    assert events.count("deferred") == 0, events.of_type("deferred")[:3]
    assert sorted(srv.received()) == sorted(ev["recipient"] for ev in delivered)
    # after the engine stopped: every recipient delivered or waiting, exactly once
    places = census(c, events)
    assert_exactly_one_place(places, rcpts)
    left = _waiting(c)
    assert len(left) == N - got, (len(left), N - got)
    assert all(p["_state"]["attempt"] == 0 for _, p in left.values()), [
        p["_state"] for _, p in left.values()]
