"""IP warm-up (docs/shaping.md#ip-warm-up): a source on day 3 of its plan sends exactly its
day-3 cap and the rest waits in the retry set (not bounced, not deferred); a provider's own
ramp caps mail to that provider inside the global cap; a day-1 source carries fewer messages
than a warm one in the same pool, and every message still goes."""

import datetime
import json
import subprocess
import time

from intake_fixtures import (SENDER, Events, engine_args, wait_for, wait_heartbeat,
                             xadd_job)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)
from shaping_fixtures import write_rules

GUARD_S = 90.0
PLAN = {"t": {"daily": [5, 10, 15, 20], "providers": {"prov": {"daily": [3, 3, 3, 3]}}}}


def utc_date(days_ago):
    return (datetime.datetime.now(datetime.timezone.utc).date()
            - datetime.timedelta(days=days_ago)).isoformat()


def away_from_midnight():
    """Caps are per UTC day: a test that straddles midnight would see two windows."""
    now = datetime.datetime.now(datetime.timezone.utc)
    left = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    if left < 90:
        time.sleep(left + 2)


def _job(rcpt, pool=None):
    j = {"from": SENDER, "to": rcpt,
         "message": {"from": SENDER, "subject": "warm-up", "text": "Hello.\n"}}
    if pool:
        j["pool"] = pool
    return j


def start(engines, redis, tmp_path, sources, pools, routes, rules):
    config = tmp_path / "salvo.json"
    config.write_text(json.dumps({"egress": {"sources": sources, "pools": pools,
                                             "default_pool": list(pools)[0]}}))
    rules_path = write_rules(tmp_path / "rules.json", rules)
    c = redis.client()
    e = engines.start(redis.url, "a", "--config", str(config), *engine_args(
        routes=routes, sets=["shaping.file=%s" % rules_path, "retry.jitter=0",
                             "intake.promote_interval_ms=100", "shutdown_grace_s=5"]))
    wait_heartbeat(c, e)
    return c, e


def delay_count(c):
    return c.zcard("salvo:{p0}:delay")


def warmup_state(salvo_bin, redis, tmp_path):
    out = subprocess.run([salvo_bin, "shaping", "warmup", "--config", str(tmp_path / "salvo.json"),
                          "--redis", redis.url, "--set",
                          "shaping.file=%s" % (tmp_path / "rules.json"), "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_day3_source_sends_exactly_its_cap(net, redis_server, engines, salvo_bin, tmp_path):
    away_from_midnight()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    c, e = start(engines, redis_server, tmp_path,
                 {"w3": {"ip": net.addr(), "warmup": {"plan": "t", "start": utc_date(2)}}},
                 {"p": {"w3": 1}}, [("warm.test", addr, port)],
                 {"providers": [{"name": "prov", "domain_suffixes": ["prov.test"]}],
                  "warmup_plans": PLAN})
    for n in range(40):
        xadd_job(c, _job("r%d@warm.test" % n))
    wait_for(lambda: len(sink.messages()) >= 15, GUARD_S, "15 messages at the sink", engines=[e])
    # the other 25 wait for tomorrow's window in the retry set
    wait_for(lambda: delay_count(c) == 25, GUARD_S, "25 messages in the retry set", engines=[e])
    time.sleep(2.0)
    assert len(sink.messages()) == 15, "day 3 of [5, 10, 15, 20] allows 15"
    assert delay_count(c) == 25
    e.term()
    events = Events(c)
    assert events.count("delivered") == 15
    for kind in ("bounced", "deferred", "expired"):
        assert events.count(kind) == 0, events.of_type(kind)[:2]
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = (today - datetime.date(1970, 1, 1)).days
    assert int(c.get("salvo:{p0}:wu:w3:used:*:d%d" % day)) == 15
    # each waiting message is due at the next UTC midnight or later (not retried in a loop)
    due = [s for _, s in c.zrange("salvo:{p0}:delay", 0, -1, withscores=True)]
    midnight_ms = (day + 1) * 86400 * 1000
    assert min(due) >= midnight_ms - 2000, (min(due), midnight_ms)
    # the state an operator (and the API) reads: day 3, cap 15, all used
    st = warmup_state(salvo_bin, redis_server, tmp_path)["sources"]
    assert len(st) == 1, st
    w3 = st[0]
    assert (w3["source"], w3["plan"], w3["day"], w3["step"], w3["warm"]) == ("w3", "t", 3, 3, False), w3
    assert w3["start"] == utc_date(2)
    glob = [r for r in w3["ramps"] if r["provider"] is None][0]
    assert (glob["day_cap"], glob["day_used"], glob["day_remaining"]) == (15, 15, 0), glob
    prov = [r for r in w3["ramps"] if r["provider"] == "prov"][0]
    assert prov["day_cap"] == 3 and prov["day_used"] == 0, prov
    assert w3["today"]["other"]["sent"] == 15, w3["today"]


def test_provider_ramp_inside_the_global_cap(net, redis_server, engines, tmp_path):
    away_from_midnight()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    c, e = start(engines, redis_server, tmp_path,
                 {"w1": {"ip": net.addr(), "warmup": {"plan": "t", "start": utc_date(0)}}},
                 {"p": {"w1": 1}}, [("prov.test", addr, port), ("other.test", addr, port)],
                 {"providers": [{"name": "prov", "domain_suffixes": ["prov.test"]}],
                  "warmup_plans": PLAN})
    for n in range(10):
        xadd_job(c, _job("p%d@prov.test" % n))
        xadd_job(c, _job("o%d@other.test" % n))
    # day 1: 5 in all, of which at most 3 to the provider "prov"
    wait_for(lambda: delay_count(c) + len(sink.messages()) == 20 and len(sink.messages()) >= 5,
             GUARD_S, "every message sent or waiting", engines=[e])
    time.sleep(2.0)
    e.term()
    got = [m["rcpts"][0] for m in sink.messages()]
    prov = [r for r in got if r.endswith("@prov.test")]
    print("sent %s" % got)
    assert len(got) == 5, got
    assert len(prov) <= 3, prov
    assert delay_count(c) == 15


def test_day1_source_carries_fewer_than_a_warm_one(net, redis_server, engines, tmp_path):
    away_from_midnight()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    new_ip, old_ip = net.addr(), net.addr()
    c, e = start(engines, redis_server, tmp_path,
                 {"new": {"ip": new_ip, "warmup": {"plan": "t", "start": utc_date(0)}},
                  "old": {"ip": old_ip}},
                 {"p": {"new": 1, "old": 1}}, [("mix.test", addr, port)],
                 {"providers": [{"name": "prov", "domain_suffixes": ["prov.test"]}],
                  "warmup_plans": PLAN})
    for n in range(40):
        xadd_job(c, _job("r%d@mix.test" % n))
    wait_for(lambda: len(sink.messages()) >= 40, GUARD_S, "all 40 messages at the sink",
             engines=[e])
    e.term()
    by = {}
    for m in sink.messages():
        by[m["client_addr"]] = by.get(m["client_addr"], 0) + 1
    print("by source address: %s" % by)
    # the pool is 1:1, but the day-1 source stops at its cap of 5; the warm one takes the rest
    assert by.get(new_ip) == 5 and by.get(old_ip) == 35, by
    events = Events(c)
    assert events.count("delivered") == 40 and events.count("bounced") == 0


def test_ramp_holds_after_a_day_with_too_many_bounces(net, redis_server, engines, salvo_bin,
                                                      tmp_path):
    """Data-driven warm-up: yesterday this source bounced 12% at a provider (over the plan's
    5%), so today its ramp does not advance — day 3 sends day 2's cap (10, not 15), the
    events say why, and `salvo shaping warmup` shows the held day."""
    away_from_midnight()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    c = redis_server.client()
    today = (datetime.datetime.now(datetime.timezone.utc).date() - datetime.date(1970, 1, 1)).days
    # what the replicas recorded yesterday (the source's state and its outcome counts)
    c.hset("salvo:{p0}:wu:h3:state", mapping={"last_day": today - 1, "held": 0, "reason": ""})
    c.hset("salvo:{p0}:wu:h3:stats:%d" % (today - 1),
           mapping={"prov:sent": 200, "prov:bounced": 24, "prov:deferred": 0})
    plan = {"t": dict(PLAN["t"], hold={"bounce_rate": 0.05, "min_messages": 100})}
    c2, e = start(engines, redis_server, tmp_path,
                  {"h3": {"ip": net.addr(), "warmup": {"plan": "t", "start": utc_date(2)}}},
                  {"p": {"h3": 1}}, [("held.test", addr, port)],
                  {"providers": [{"name": "prov", "domain_suffixes": ["prov.test"]}],
                   "warmup_plans": plan})
    for n in range(30):
        xadd_job(c, _job("r%d@held.test" % n))
    wait_for(lambda: len(sink.messages()) >= 10 and delay_count(c) == 20, GUARD_S,
             "10 sent and 20 waiting", engines=[e])
    time.sleep(1.5)
    assert len(sink.messages()) == 10, "a held day-3 ramp stays at step 2: cap 10"
    e.term()
    assert "ramp held" in e.stderr(), e.stderr()[-2000:]
    delivered = Events(c).of_type("delivered")
    assert len(delivered) == 10
    note = delivered[0]["warmup_hold"]
    assert note and "step 2 (day 3)" in note and "bounce rate 12.0% over 5.0%" in note, note
    st = warmup_state(salvo_bin, redis_server, tmp_path)["sources"][0]
    assert (st["day"], st["held_days"], st["step"]) == (3, 1, 2), st
    assert "bounce rate" in st["hold_reason"]
