"""Head-of-line blocking and the memory budget: a large campaign to a destination that takes
one message per second over one connection must not hold up mail to other destinations
queued behind it in the same lane, and must not make the engine's memory grow with the
backlog (DESIGN.md section 2: a message that cannot be sent soon waits in the retry set,
not in memory; section 8: memory bounded by configuration, not by queue length)."""

import time

from intake_fixtures import (SENDER, KEYS, SlowSmtpd, assert_exactly_one_place, census,
                             engine_args, Events, inject, redis_state, stats, wait_heartbeat)
from intake_fixtures import engines, redis_factory, redis_server  # noqa: F401 (fixtures)

N_SLOW = 2000
N_FAST = 200
MAX_IN_MEMORY = 500
GUARD_S = 60.0
# The engine's own growth allowed over its idle baseline: 500 small messages in memory need
# a few MB; 64 MB is generous. ASan's quarantine is off for the engine here, so freed memory
# it would hold back does not count.
MEM_BOUND_KB = 64 * 1024


def _campaign(tmp_path, name, local, domain, n):
    csv_path = tmp_path / ("%s.csv" % name)
    with open(csv_path, "w") as f:
        f.write("email,n\n")
        for i in range(n):
            f.write("%s%d@%s,%d\n" % (local, i, domain, i))
    text = tmp_path / ("%s.txt" % name)
    text.write_text("Hello {{n}}\nEND-OF-MESSAGE-{{n}}\n")
    return str(csv_path), str(text), ["%s%d@%s" % (local, i, domain) for i in range(n)]


def test_slow_destination_does_not_hold_up_others_and_memory_stays_bounded(
        net, redis_server, engines, salvo_bin, tmp_path):
    c = redis_server.client()
    slow_addr, fast_addr = net.addr(), net.addr()
    slow_port, fast_port = net.port(slow_addr), net.port(fast_addr)
    slow = net._started(SlowSmtpd(slow_addr, slow_port, delay_s=1.0))
    fast = net.sink(fast_addr, fast_port)
    e = engines.start(redis_server.url, "a", *engine_args(
        routes=[("slow.test", slow_addr, slow_port), ("fast.test", fast_addr, fast_port)],
        sets=["delivery.max_conns_per_dest=1", "intake.max_in_memory=%d" % MAX_IN_MEMORY,
              "intake.tx_reserve=50", "shutdown_grace_s=2", "progress_interval_s=1"]),
        env={"ASAN_OPTIONS": "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"})
    wait_heartbeat(c, e)
    time.sleep(0.5)
    baseline = e.mem()
    # The slow campaign first, then the fast one behind it in the same (bulk) lane.
    s_csv, s_text, slow_rcpts = _campaign(tmp_path, "slow", "s", "slow.test", N_SLOW)
    f_csv, f_text, fast_rcpts = _campaign(tmp_path, "fast", "f", "fast.test", N_FAST)
    for cid, csv_path, text, n in (("slow", s_csv, s_text, N_SLOW),
                                   ("fast", f_csv, f_text, N_FAST)):
        count, _ = inject(salvo_bin, redis_server.url, "--from", SENDER, "--recipients",
                          csv_path, "--campaign", cid, "--subject", "{{n}}", "--text", text)
        assert count == n
    t0 = time.monotonic()
    samples = []
    deadline = t0 + GUARD_S
    while True:
        e.check_alive()
        samples.append(e.mem()["VmRSS"])
        fast_done = stats(c, "fast").get("delivered", 0)
        if fast_done >= N_FAST:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                "hang guard: %d of %d fast messages delivered after %.0fs while the slow "
                "destination got %d of %d (head-of-line blocking?); queues %s; memory %s%s" % (
                    fast_done, N_FAST, GUARD_S, len(slow.received()), N_SLOW,
                    redis_state(c), e.mem(), e.describe(3000)))
        time.sleep(0.2)
    fast_time = time.monotonic() - t0
    slow_done = len(slow.received())
    mem = e.mem()
    e.term()
    # All fast ones delivered while the slow destination was nowhere near finished.
    assert slow_done < N_SLOW // 4, (
        "the fast destination finished only after %d of %d slow messages" % (slow_done, N_SLOW))
    got = sorted(r for m in fast.messages() for r in m["rcpts"])
    assert got == sorted(fast_rcpts), "fast sink got %d messages, %d unique" % (
        len(got), len(set(got)))
    # Memory: bounded by configuration, not by the 2,000-message backlog.
    growth = mem["VmHWM"] - baseline["VmRSS"]
    assert growth < MEM_BOUND_KB, (
        "engine peak RSS %d kB is %d kB above its idle %d kB (bound %d kB)" % (
            mem["VmHWM"], growth, baseline["VmRSS"], MEM_BOUND_KB))
    # Nothing lost: every message is delivered, waiting or ready, exactly once.
    events = Events(c)
    assert_exactly_one_place(census(c, events), slow_rcpts + fast_rcpts)
    print("fast done in %.1fs with %d/%d slow delivered; RSS idle %d kB, peak %d kB, "
          "samples max %d kB; slow waiting %d, ready %d" % (
              fast_time, slow_done, N_SLOW, baseline["VmRSS"], mem["VmHWM"], max(samples),
              c.zcard(KEYS.delay), c.xlen(KEYS.bulk)))
