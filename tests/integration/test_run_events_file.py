"""The JSON-lines events file: one line per event, the same events as the Redis stream, and
reopened on SIGHUP so that log rotation (rename, then SIGHUP) loses nothing."""

import json
import os
import signal

from intake_fixtures import (SENDER, engine_args, Events, wait_for, wait_heartbeat, xadd_job)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

GUARD_S = 60.0


def _job(to, n):
    return {"from": SENDER, "to": to, "id": "j%d" % n,
            "message": {"from": SENDER, "subject": "rotation %d" % n, "text": "Hello.\n"}}


def _lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_events_file_matches_the_stream_and_reopens_on_sighup(net, redis_server, engines,
                                                              tmp_path):
    c = redis_server.client()
    addr = net.addr()
    port = net.port(addr)
    net.sink(addr, port)
    path = str(tmp_path / "events.jsonl")
    e = engines.start(redis_server.url, "a", *engine_args(
        routes=[("rot.test", addr, port)], events_file=path))
    wait_heartbeat(c, e)

    for n in range(5):
        xadd_job(c, _job("r%d@rot.test" % n, n))
    wait_for(lambda: len(_lines(path)) >= 5, GUARD_S, "5 events in the file", engines=[e])

    # rotate: rename the file, then SIGHUP: later events go to a new file at the same path
    rotated = path + ".1"
    os.rename(path, rotated)
    os.kill(e.pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in e.stderr(), GUARD_S, "the SIGHUP log line", engines=[e])
    for n in range(5, 10):
        xadd_job(c, _job("r%d@rot.test" % n, n))
    wait_for(lambda: len(_lines(path)) >= 5, GUARD_S, "5 events in the new file", engines=[e])
    e.term()

    old, new = _lines(rotated), _lines(path)
    assert {x["recipient"] for x in old} == {"r%d@rot.test" % n for n in range(5)}, old
    assert {x["recipient"] for x in new} == {"r%d@rot.test" % n for n in range(5, 10)}, new
    assert all(x["type"] == "delivered" for x in old + new), old + new
    # the file holds exactly the events of the stream, nothing more and nothing less
    ev = Events(c)
    ev.poll()
    stream_ids = sorted(x["event_id"] for x in ev.events)
    assert sorted(x["event_id"] for x in old + new) == stream_ids
