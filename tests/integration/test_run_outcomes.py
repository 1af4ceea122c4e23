"""`salvo run` outcomes, one recipient at a time: greylisting is deferred then delivered on a
later attempt; a 550 is bounced once and never retried; a destination that refuses
connections for the whole maximum age expires; every malformed job is dead-lettered with its
reason and a `rejected` event; a repeated idempotency key is not sent twice."""

import json

from intake_fixtures import (SENDER, KEYS, assert_event_sequences, assert_exactly_one_place,
                             census, dead_letters, engine_args, Events, stats, wait_for,
                             wait_heartbeat, xadd_job)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

GUARD_S = 90.0


def _msg(subject="outcome test", text="Hello.\n"):
    return {"from": "Sender <%s>" % SENDER, "subject": subject, "text": text}


def _job(to, jid, **kw):
    j = {"from": SENDER, "to": to, "message": _msg(subject="job %s" % jid), "id": jid,
         "meta": {"case": jid}}
    j.update(kw)
    return j


def _rcpt_commands(smtpd, address):
    """How many RCPT commands for this address the server received, over all connections."""
    n = 0
    with smtpd.lock:
        for conn in smtpd.connections:
            for cmd, arg in conn["commands"]:
                arg = arg or ""
                lt, gt = arg.find("<"), arg.find(">")
                if cmd == "RCPT" and 0 <= lt < gt and arg[lt + 1:gt].lower() == address.lower():
                    n += 1
    return n


def test_greylisted_then_delivered_550_bounced_once_down_destination_expires(
        net, redis_server, engines):
    c = redis_server.client()
    grey_addr = net.addr()
    grey_port = net.port(grey_addr)
    smtpd = net.smtpd(grey_addr, grey_port, greylist=True, reject_rcpts={
        "bad@grey.test": "550 5.1.1 <bad@grey.test>: Recipient address rejected: no such user",
        "mixed-bad@grey.test": "550 5.1.1 <mixed-bad@grey.test>: no such user"})
    down_addr = net.addr()
    down_port = net.port(down_addr)          # nothing listens there: connection refused
    e = engines.start(redis_server.url, "a", *engine_args(
        routes=[("grey.test", grey_addr, grey_port), ("down.test", down_addr, down_port)],
        sets=["retry.schedule_s=1", "retry.jitter=0", "retry.max_age_s=3",
              "intake.promote_interval_ms=100"]))
    wait_heartbeat(c, e)
    # The global maximum age is 3 s (for down.test); the greylisted and bounced messages
    # get 10 minutes of their own, so only the down destination can expire.
    ids = {
        "grey": xadd_job(c, _job("grey@grey.test", "grey", max_age_s=600)),
        "bad": xadd_job(c, _job("bad@grey.test", "bad", max_age_s=600)),
        "mixed": xadd_job(c, _job(["mixed-ok@grey.test", "mixed-bad@grey.test"], "mixed",
                                  max_age_s=600)),
        "down": xadd_job(c, _job("down@down.test", "down")),
    }
    rcpts = ["grey@grey.test", "bad@grey.test", "mixed-ok@grey.test", "mixed-bad@grey.test",
             "down@down.test"]
    events = Events(c)

    def all_final():
        by = events.by_recipient()
        return all(r in by and by[r][-1]["type"] in ("delivered", "bounced", "expired")
                   for r in rcpts)
    wait_for(all_final, GUARD_S, "every recipient final", engines=[e])
    e.term()
    finals = assert_event_sequences(events, rcpts)
    by = events.by_recipient()

    # greylisted: deferred (450 at RCPT) on attempt 1, delivered on a later attempt
    for r, jid in (("grey@grey.test", "grey"), ("mixed-ok@grey.test", "mixed")):
        seq = by[r]
        assert [x["type"] for x in seq] == ["deferred", "delivered"], (r, seq)
        d, ok = seq
        assert d["smtp_code"] == 450 and d["command"] == "rcpt", d
        assert d["attempt"] == 1 and ok["attempt"] == 2, seq
        assert d["next_attempt_at"], d
        assert d["job_id"] == ok["job_id"] == jid, seq
        assert d["meta"] == ok["meta"] == {"case": jid}, seq
        # message_id is the message's first stream entry id, kept across retries
        assert d["message_id"] == ok["message_id"] == ids[jid], seq
        assert ok["smtp_code"] == 250, ok
    # 550: exactly one event, bounced; RCPT for it sent once, never retried
    for r in ("bad@grey.test", "mixed-bad@grey.test"):
        assert [x["type"] for x in by[r]] == ["bounced"], (r, by[r])
        b = by[r][0]
        assert b["smtp_code"] == 550 and b["enhanced_code"] == "5.1.1", b
        assert b["command"] == "rcpt" and b["bounce_class"] == "hard", b
        assert _rcpt_commands(smtpd, r) == 1, "%s: RCPT sent %d times" % (
            r, _rcpt_commands(smtpd, r))
    # the partially bounced job was retried with only its deferred recipient
    assert _rcpt_commands(smtpd, "mixed-ok@grey.test") == 2
    # down destination: deferred, then expired; never delivered
    seq = by["down@down.test"]
    types = [x["type"] for x in seq]
    assert types[-1] == "expired" and types[0] == "deferred" and \
        set(types[:-1]) == {"deferred"}, seq
    assert seq[-1]["reason"] == "expired", seq[-1]
    # it expired by age: 1 attempt of the default 30 was made
    assert "age" in (seq[-1]["detail"] or ""), "expired by age, detail says %r: %s" % (
        seq[-1]["detail"], [(x["type"], x["attempt"], x["timestamp"], x["queue_ms"],
                             x["reply"], x["detail"]) for x in seq])
    assert seq[-1]["job_id"] == "down", seq[-1]
    assert all(x["command"] in ("connect", None) for x in seq[:-1]), seq
    # delivered exactly once at the server
    got = [r for m in smtpd.messages for r in m["rcpts"]]
    assert sorted(got) == ["grey@grey.test", "mixed-ok@grey.test"], got
    st = stats(c)
    assert (st.get("delivered"), st.get("bounced"), st.get("expired")) == (2, 2, 1), st
    assert st.get("deferred", 0) >= 3, st
    assert_exactly_one_place(census(c, events), rcpts)
    assert {r: f["type"] for r, f in finals.items()} == {
        "grey@grey.test": "delivered", "mixed-ok@grey.test": "delivered",
        "bad@grey.test": "bounced", "mixed-bad@grey.test": "bounced",
        "down@down.test": "expired"}


# ----------------------------------------------------------------------------------------
# malformed jobs

MAX_JOB_BYTES = 4096


def _malformed_cases():
    ok = {"from": SENDER, "to": "x@ok.test", "message": _msg()}
    raw = lambda d: json.dumps(d)   # noqa: E731
    without = lambda k: raw({kk: v for kk, v in ok.items() if kk != k})   # noqa: E731
    return [
        # (name, job text or None for an entry without a "job" field, reason, detail words)
        ("bad json", '{"from": "%s", "to": ["x@ok.test"' % SENDER, "bad_json", ()),
        ("not an object", '["x@ok.test"]', "bad_json", ()),
        ("missing from", without("from"), "missing_field", ("from",)),
        ("missing to", without("to"), "missing_field", ("to",)),
        ("invalid address", raw(dict(ok, to="not an address")), "invalid_address", ("to",)),
        ("invalid sender", raw(dict(ok, **{"from": "a@@b"})), "invalid_address", ("from",)),
        ("subject injection", raw(dict(ok, message=_msg(
            subject="Hi\r\nBcc: victim@evil.test"))), "header_injection", ("subject",)),
        ("header value injection", raw(dict(ok, message=dict(_msg(), headers={
            "X-Custom": "v\r\nBcc: victim@evil.test"}))), "header_injection", ("X-Custom",)),
        ("header name injection", raw(dict(ok, message=dict(_msg(), headers={
            "X-A: b\r\nBcc": "victim@evil.test"}))), "header_injection", ()),
        ("unknown campaign", raw({"from": SENDER, "to": "x@ok.test", "campaign": "nope"}),
         "unknown_campaign", ("nope",)),
        ("oversized", raw(dict(ok, message=_msg(text="x" * (2 * MAX_JOB_BYTES)))),
         "oversized", ()),
        ("unknown field", raw(dict(ok, bogus=1)), "invalid_field", ("bogus",)),
        ("no job field", None, "missing_field", ("job",)),
    ]


def test_malformed_jobs_are_dead_lettered_with_reason_and_rejected_event(
        net, redis_server, engines):
    c = redis_server.client()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    e = engines.start(redis_server.url, "a", *engine_args(
        routes=[("ok.test", addr, port)],
        sets=["limits.max_job_bytes=%d" % MAX_JOB_BYTES]))
    wait_heartbeat(c, e)
    cases = _malformed_cases()
    entries = {}
    for name, job, reason, words in cases:
        if job is None:
            eid = c.xadd(KEYS.tx, {"payload": "no job here"}).decode()
        else:
            eid = xadd_job(c, job)
        entries[eid] = (name, job, reason, words)
    good = xadd_job(c, {"from": SENDER, "to": "good@ok.test", "message": _msg(), "id": "good"})
    events = Events(c)

    def settled():
        events.poll()
        seen = {ev["message_id"] for ev in events.events}
        return set(entries) | {good} <= seen
    wait_for(settled, GUARD_S, "an event for every job", engines=[e])
    e.term()

    dead = dead_letters(c)
    problems = []
    used = set()
    for eid, (name, job, reason, words) in entries.items():
        evs = [ev for ev in events.events if ev["message_id"] == eid]
        if [ev["type"] for ev in evs] != ["rejected"] or evs[0]["reason"] != reason:
            problems.append("%s: events %r, expected one rejected with reason %s" % (
                name, [(ev["type"], ev["reason"], ev["detail"]) for ev in evs], reason))
        elif not evs[0]["detail"]:
            problems.append("%s: rejected event without detail" % name)
        # A dead letter carries the job as the producer wrote it; an oversized job may be
        # stored truncated (or empty), and an entry without a job field has none.
        payload = (job or "").encode()
        matches = [(i, d) for i, (_, d) in enumerate(dead) if i not in used and (
            d["job"] == payload or (name in ("oversized", "no job field") and
                                    d["reason"] == reason and
                                    payload.startswith(d["job"] or b"")))]
        if len(matches) != 1 and not (matches and name in ("oversized", "no job field")):
            problems.append("%s: %d dead letters with its payload" % (name, len(matches)))
            continue
        used.add(matches[0][0])
        matches = [matches[0][1]]
        d = matches[0]
        if d["reason"] != reason:
            problems.append("%s: dead letter reason %r, expected %r (detail %r)" % (
                name, d["reason"], reason, d["detail"]))
        if not d["detail"] or not all(w.lower() in d["detail"].lower() for w in words):
            problems.append("%s: dead letter detail %r lacks %s" % (name, d["detail"], words))
    assert not problems, "\n".join(problems)
    assert len(dead) == len(cases), "dead letters: %r" % dead
    # nothing malformed was delivered; the good one was, once
    rcpts = [r for m in sink.messages() for r in m["rcpts"]]
    assert rcpts == ["good@ok.test"], rcpts
    assert [ev["type"] for ev in events.events if ev["message_id"] == good] == ["delivered"]
    st = stats(c)
    assert st.get("rejected") == len(cases) and st.get("delivered") == 1, st
    # and nothing is left anywhere
    assert c.xlen(KEYS.tx) == 0 and c.zcard(KEYS.delay) == 0, "left over: %d in stream, " \
        "%d waiting" % (c.xlen(KEYS.tx), c.zcard(KEYS.delay))


def test_repeated_idempotency_key_is_not_sent_twice(net, redis_server, engines):
    c = redis_server.client()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    e = engines.start(redis_server.url, "a", *engine_args(routes=[("ok.test", addr, port)]))
    wait_heartbeat(c, e)
    events = Events(c)

    def job(to, key):
        return {"from": SENDER, "to": to, "message": _msg(), "idempotency_key": key}
    # the same key twice in one go (both read in one batch), and a third time later
    first = xadd_job(c, job("once@ok.test", "order-42"))
    second = xadd_job(c, job("twice@ok.test", "order-42"))
    other = xadd_job(c, job("other@ok.test", "order-43"))
    wait_for(lambda: {first, second, other} <= {ev["message_id"] for ev in events.of_type(
        "delivered", "rejected", "bounced", "deferred")}, GUARD_S, "three outcomes",
        engines=[e])
    third = xadd_job(c, job("thrice@ok.test", "order-42"))
    wait_for(lambda: third in {ev["message_id"] for ev in events.of_type(
        "delivered", "rejected", "bounced", "deferred")}, GUARD_S, "the late repeat's outcome",
        engines=[e])
    e.term()
    types = {eid: [(ev["type"], ev["reason"]) for ev in events.events if ev["message_id"] == eid]
             for eid in (first, second, other, third)}
    assert types[first] == [("delivered", None)], types
    assert types[other] == [("delivered", None)], types
    assert types[second] == [("rejected", "duplicate")], types
    assert types[third] == [("rejected", "duplicate")], types
    assert dead_letters(c) == [], "a duplicate is not a malformed job: %r" % dead_letters(c)
    rcpts = sorted(r for m in sink.messages() for r in m["rcpts"])
    assert rcpts == ["once@ok.test", "other@ok.test"], rcpts
    assert c.get(KEYS.idem("order-42")) is not None and c.ttl(KEYS.idem("order-42")) > 0
