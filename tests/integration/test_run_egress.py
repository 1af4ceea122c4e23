"""Egress sources and pools: messages leave from the sources of their pool in the pool's
weights (seen at the server as the client address), greet with each source's EHLO name, and a
job naming a pool that does not exist is dead-lettered."""

import json

from intake_fixtures import (SENDER, dead_letters, engine_args, Events, wait_for,
                             wait_heartbeat, xadd_job)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

GUARD_S = 90.0


def _job(n, pool=None):
    j = {"from": SENDER, "to": "r%d@egress.test" % n,
         "message": {"from": SENDER, "subject": "egress %d" % n, "text": "Hello.\n"}}
    if pool:
        j["pool"] = pool
    return j


def test_pools_share_load_by_weight_and_use_each_sources_ehlo(net, redis_server, engines,
                                                             tmp_path):
    c = redis_server.client()
    addr = net.addr()
    port = net.port(addr)
    sink = net.sink(addr, port)
    src_a, src_b, src_c = net.addr(), net.addr(), net.addr()
    config = tmp_path / "salvo.json"
    config.write_text(json.dumps({
        "egress": {
            "sources": {"ip-a": {"ip": src_a, "ehlo": "a.sender.test"},
                        "ip-b": {"ip": src_b, "ehlo": "b.sender.test"},
                        "ip-c": {"ip": src_c, "ehlo": "c.sender.test"}},
            "pools": {"bulk": {"ip-a": 3, "ip-b": 1}, "vip": {"ip-c": 1}},
            "default_pool": "bulk"},
    }))
    e = engines.start(redis_server.url, "a", "--config", str(config), *engine_args(
        routes=[("egress.test", addr, port)]))
    wait_heartbeat(c, e)
    for n in range(200):
        xadd_job(c, _job(n))                     # default pool: bulk
    for n in range(200, 220):
        xadd_job(c, _job(n, pool="vip"))
    xadd_job(c, _job(999, pool="no-such-pool"))
    wait_for(lambda: len(sink.messages()) >= 220, GUARD_S, "220 messages at the sink",
             engines=[e])
    wait_for(lambda: len(dead_letters(c)) >= 1, GUARD_S, "the dead letter", engines=[e])
    e.term()

    by_src = {}
    helo = {}
    for m in sink.messages():
        n = int(m["rcpts"][0].split("@")[0][1:])
        by_src.setdefault(m["client_addr"], []).append(n)
        helo.setdefault(m["client_addr"], set()).add(m["helo"])
    assert sorted(by_src) == sorted([src_a, src_b, src_c]), by_src.keys()
    # smooth weighted round robin: exactly 3:1 over the 200 bulk messages
    assert len(by_src[src_a]) == 150 and len(by_src[src_b]) == 50, {
        k: len(v) for k, v in by_src.items()}
    assert sorted(by_src[src_c]) == list(range(200, 220)), by_src[src_c]
    assert helo[src_a] == {"a.sender.test"} and helo[src_b] == {"b.sender.test"}, helo
    assert helo[src_c] == {"c.sender.test"}, helo
    ev = Events(c)
    ev.poll()
    names = {x["recipient"]: (x["egress_source"], x["egress_ip"]) for x in ev.events
             if x["type"] == "delivered"}
    assert names["r200@egress.test"] == ("ip-c", src_c), names["r200@egress.test"]
    assert {names["r%d@egress.test" % n][0] for n in range(200)} == {"ip-a", "ip-b"}
    (dl,) = dead_letters(c)
    assert dl[1]["reason"] == "invalid_field" and "no-such-pool" in dl[1]["detail"], dl


def test_a_pool_naming_an_unknown_source_is_a_config_error(salvo, tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"egress": {"sources": {"a": {"ip": "127.0.0.1"}},
                                             "pools": {"p": {"b": 1}}}}))
    res = salvo.run("check-config", str(config))
    assert res.rc == 78, res
    assert "egress.pools.p.b" in res.stderr, res
