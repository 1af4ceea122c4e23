"""`salvo inject` streams a recipient list: a 1,000,000-row CSV is enqueued with memory that
does not grow with the file (its peak RSS is compared with a 10,000-row run of the same
command, and bounded absolutely). Also checks the printed count and what landed in Redis."""

import json
import os
import re
import subprocess

from intake_fixtures import SENDER, KEYS
from intake_fixtures import redis_factory, redis_server  # noqa: F401 (fixtures)
import salvo_cli

ROWS = 1000000
SMALL_ROWS = 10000
GUARD_S = 240.0
# ASan's quarantine is off for these runs so that freed memory it holds back does not
# count; without ASan the option is ignored.
ENV = {"ASAN_OPTIONS": "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}
ABS_BOUND_KB = 100 * 1024          # the figure
GROWTH_BOUND_KB = 16 * 1024        # 100x more rows may not cost more than this


def _csv(path, rows):
    with open(path, "w") as f:
        f.write("email,first_name,n\n")
        for i in range(rows):
            f.write("user%d@bulk%d.test,Name %d,%d\n" % (i, i % 97, i, i))


def _inject_peak(salvo_bin, redis, csv_path, text_path, cid):
    """Runs inject under /usr/bin/time -v: (count printed, peak RSS kB, stderr)."""
    argv = ["/usr/bin/time", "-v", salvo_bin, "inject", "--redis", redis.url, "--quiet",
            "--from", SENDER, "--recipients", csv_path, "--campaign", cid,
            "--subject", "Hello {{first_name}}", "--text", text_path]
    env = dict(os.environ, **ENV)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=GUARD_S)
    out, err = p.stdout.decode(), p.stderr.decode("utf-8", "replace")
    for marker in salvo_cli.SANITIZER_MARKERS:
        assert marker not in err, "sanitizer report from inject:\n%s" % err[-6000:]
    assert p.returncode == 0, "inject exited %d\n%s\n%s" % (p.returncode, out, err[-4000:])
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    assert m, "no /usr/bin/time report:\n%s" % err[-2000:]
    return int(out.strip().splitlines()[-1]), int(m.group(1)), err


def test_inject_million_row_csv_streams_with_little_memory(redis_factory, salvo_bin,
                                                           tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Hi {{first_name}}, you are number {{n}}.\n")
    small_csv, big_csv = str(tmp_path / "small.csv"), str(tmp_path / "big.csv")
    _csv(small_csv, SMALL_ROWS)
    _csv(big_csv, ROWS)

    r_small = redis_factory()
    n_small, peak_small, _ = _inject_peak(salvo_bin, r_small, small_csv, str(text), "small")
    assert n_small == SMALL_ROWS
    r_small.stop()

    redis = redis_factory()
    c = redis.client()
    n, peak, _ = _inject_peak(salvo_bin, redis, big_csv, str(text), "big")
    assert n == ROWS, "inject printed %d, expected %d" % (n, ROWS)
    assert c.xlen(KEYS.bulk) == ROWS
    first = c.xrange(KEYS.bulk, "-", "+", count=1)[0][1][b"job"]
    last = c.xrevrange(KEYS.bulk, "+", "-", count=1)[0][1][b"job"]
    fj = json.loads(first)
    assert (fj["from"], fj["to"], fj["campaign"], fj["merge"]) == (
        SENDER, "user0@bulk0.test", "big", {"first_name": "Name 0", "n": "0"}), first
    lj = json.loads(last)
    assert lj["to"] == "user%d@bulk%d.test" % (ROWS - 1, (ROWS - 1) % 97), last
    assert lj["merge"] == {"first_name": "Name %d" % (ROWS - 1), "n": str(ROWS - 1)}, last
    camp = json.loads(c.get(KEYS.campaign("big")))
    assert camp["message"]["subject"] == "Hello {{first_name}}", camp
    print("inject peak RSS: %d rows %d kB, %d rows %d kB" % (SMALL_ROWS, peak_small, ROWS,
                                                            peak))
    assert peak - peak_small < GROWTH_BOUND_KB, (
        "inject peak RSS grows with the input: %d kB for %d rows, %d kB for %d rows" % (
            peak_small, SMALL_ROWS, peak, ROWS))
    assert peak < ABS_BOUND_KB, "inject peak RSS %d kB for %d rows (bound %d kB)" % (
        peak, ROWS, ABS_BOUND_KB)
