"""SIGHUP reloads the shaping rules file (docs/shaping.md, `salvo run --help`): a campaign
paced at 2 messages per second speeds up to 20 per second once the file says so and the
engine gets SIGHUP, with no connection dropped and nothing deferred; a SIGHUP with an invalid
file keeps the rules in force (the log says so, naming the bad field) and the engine keeps
running and sending at the old (reloaded) pace. Rates are measured at the server from its
own receive times, +-10%."""

import os
import signal
import time

from intake_fixtures import wait_for
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)
from shaping_fixtures import (counting_smtpd, finish_all_delivered, gaps_summary,
                              inject_campaign, rate_of, start_engine, write_rules)

SLOW, FAST = 2.0, 20.0
TOLERANCE = 0.10
N1, N2 = 100, 80
BEFORE = 12          # messages sent at the slow pace before the reload


def _rules(rate):
    return {"defaults": {"max_connections": 3},
            "domains": {"hup.test": {"max_msgs_per_second": rate, "burst": 0}}}


def _check_rate(times, want, what):
    got = rate_of(times)
    msg = "%s: %.2f msg/s over %d messages (%.2fs), expected %.0f/s +-%d%%; %s" % (
        what, got, len(times), times[-1] - times[0], want, TOLERANCE * 100,
        gaps_summary(times))
    print(msg)
    assert abs(got - want) <= want * TOLERANCE, msg


def test_sighup_reloads_rules_and_keeps_them_on_a_bad_file(net, redis_server, engines,
                                                          salvo_bin, tmp_path):
    srv, addr, port = counting_smtpd(net)
    rules = write_rules(tmp_path / "rules.json", _rules(SLOW))
    c, e = start_engine(engines, redis_server, rules, routes=[("hup.test", addr, port)])
    first = ["a%d@hup.test" % i for i in range(N1)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "one", first)

    # --- the slow pace, then a reload to the fast one
    wait_for(lambda: srv.count() >= BEFORE, 60.0, "%d messages at the slow pace" % BEFORE,
             engines=[e])
    write_rules(rules, _rules(FAST))
    t_hup = time.monotonic()
    os.kill(e.pid, signal.SIGHUP)
    wait_for(lambda: "shaping rules reloaded" in e.stderr(), 15.0, "the reload logged",
             engines=[e])
    wait_for(lambda: srv.count() >= N1, 60.0, "the first campaign delivered", engines=[e])
    times = srv.times()
    slow = [t for t in times if t < t_hup]
    fast = [t for t in times if t > t_hup + 0.5]        # after the switch has settled
    assert len(slow) >= BEFORE, len(slow)
    _check_rate(slow[2:], SLOW, "before SIGHUP (max_msgs_per_second %.0f)" % SLOW)
    assert len(fast) >= 40, "only %d messages after the reload" % len(fast)
    _check_rate(fast, FAST, "after SIGHUP (max_msgs_per_second %.0f)" % FAST)

    # --- an invalid file: the rules in force (20/s) stay
    write_rules(rules, '{"domains": {"hup.test": {"max_msgs_per_second": 1, '
                       '"max_msgs_per_secnd": 1}}}')
    log_before = len(e.stderr())
    os.kill(e.pid, signal.SIGHUP)
    wait_for(lambda: "not reloaded" in e.stderr()[log_before:], 15.0,
             "the failed reload logged", engines=[e])
    log = e.stderr()[log_before:]
    line = [ln for ln in log.splitlines() if "not reloaded" in ln][0]
    assert "max_msgs_per_secnd" in line, "the log does not name the bad field: %r" % line
    assert "old ones stay" in line or "old rules" in line or "keep" in line, line
    time.sleep(0.5)
    e.check_alive()
    t_bad = time.monotonic()
    second = ["b%d@hup.test" % i for i in range(N2)]
    inject_campaign(salvo_bin, redis_server.url, tmp_path, "two", second)
    wait_for(lambda: srv.count() >= N1 + N2, 60.0, "the second campaign delivered",
             engines=[e])
    after_bad = [t for t in srv.times() if t > t_bad][5:]
    # with no rules at all the 80 would arrive at once; at the first file's 2/s or the bad
    # file's 1/s, in 40 s or more
    _check_rate(after_bad, FAST, "after a SIGHUP with an invalid file (20/s must stay)")

    finish_all_delivered(c, e, first + second, {"one": N1, "two": N2}, srv.received)
    # no connection was cut by either reload: every one ended with QUIT
    dropped = [x for x in srv.snapshot()["conns"] if not x["quit"]]
    assert not dropped, "%d connections ended without QUIT (dropped): %s" % (
        len(dropped), dropped[:3])
