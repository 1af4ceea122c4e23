#!/usr/bin/python3
"""End-to-end benchmark: Redis -> salvo run -> sinks -> events.
Starts a private redis-server and a sink on 20 loopback hosts (bench_sink, or Postfix's
smtp-sink with --postfix), stores a campaign, enqueues N jobs (1 KB messages, 20 domains),
then starts `salvo run` and measures until every message has its final event.
Reports messages/s, engine CPU per message, Redis commands per message, engine peak RSS.
Usage: bench/scripts/e2e.py [--messages 100000] [--postfix] [--build build-rel]"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tck


def proc_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--postfix", action="store_true", help="Postfix smtp-sink instead of bench_sink")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--set", action="append", default=[], help="extra salvo run --set")
    a = ap.parse_args()
    salvo = os.path.join(a.build, "salvo")
    work = tempfile.mkdtemp(prefix="salvo-e2e-")
    procs = []
    try:
        rport, sport = free_port(), free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", work],
                                      stdout=subprocess.DEVNULL))
        if a.postfix:
            for k in range(1, a.hosts + 1):
                procs.append(subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody",
                                               "127.0.1.%d:%d" % (k, sport), "1000"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            procs.append(subprocess.Popen([os.path.join(a.build, "bench_sink"), "--chunking",
                                           "--listen-range", "127.0.1.1-%d:%d" % (a.hosts, sport)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        r = redis.Redis(host="127.0.0.1", port=rport)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        csv = os.path.join(work, "r.csv")
        with open(csv, "w") as f:
            f.write("email,name\n")
            for i in range(a.messages):
                f.write("user%d@d%d.test,Reader %d\n" % (i, i % a.hosts + 1, i))
        body = os.path.join(work, "body.txt")
        with open(body, "w") as f:
            f.write("Hello {{name}},\n" + ("The quick brown fox jumps over the lazy dog. 0123456789\n" * 15))
        t = time.time()
        subprocess.run([salvo, "inject", "--redis", "redis://127.0.0.1:%d" % rport, "--quiet",
                        "--campaign", "bench", "--from", "bench@sender.test", "--subject",
                        "Benchmark {{name}}", "--text", body, "--recipients", csv],
                       check=True, stdout=subprocess.DEVNULL)
        inject_s = time.time() - t
        cmds0 = r.info("stats")["total_commands_processed"]
        ci = r.info("cpu")
        rcpu0 = ci["used_cpu_sys"] + ci["used_cpu_user"]
        args = [salvo, "run", "--redis", "redis://127.0.0.1:%d" % rport, "--instance", "bench",
                "--set", "delivery.tls=disabled", "--set", "progress_interval_s=0",
                "--set", "delivery.max_conns_per_dest=4", "--set", "delivery.max_msgs_per_conn=100000",
                "--set", "events.stream_max=200000", "--log-level", os.environ.get("E2E_LOG_LEVEL", "warn")]
        for k in range(1, a.hosts + 1):
            args += ["--route", "d%d.test=127.0.1.%d:%d" % (k, k, sport)]
        for s in a.set:
            args += ["--set", s]
        t0 = time.time()
        eng = subprocess.Popen(args, stderr=open(os.path.join(work, "salvo.log"), "w"))
        procs.append(eng)
        key = "salvo:{p0}:stats:campaign:bench"
        while True:
            st = {k.decode(): int(v) for k, v in r.hgetall(key).items()}
            done = st.get("delivered", 0) + st.get("bounced", 0) + st.get("expired", 0) + st.get("rejected", 0)
            if done >= a.messages:
                break
            if time.time() - t0 > 600 or eng.poll() is not None:
                print("incomplete: %s" % st, file=sys.stderr)
                return 1
            time.sleep(0.02)
        t1 = time.time()
        cpu = proc_cpu(eng.pid)
        hwm = proc_hwm_kb(eng.pid)
        cmds = r.info("stats")["total_commands_processed"] - cmds0
        ci = r.info("cpu")
        rcpu = ci["used_cpu_sys"] + ci["used_cpu_user"] - rcpu0
        calls = {k: v["calls"] for k, v in r.info("commandstats").items()}
        secs = t1 - t0
        res = {"messages": a.messages, "sink": "postfix smtp-sink" if a.postfix else "bench_sink",
               "delivered": st.get("delivered", 0), "seconds": round(secs, 3),
               "msgs_per_s": round(a.messages / secs), "engine_cpu_s": round(cpu, 3),
               "engine_cpu_us_per_msg": round(cpu * 1e6 / a.messages, 2),
               "redis_commands_per_msg": round(cmds / a.messages, 4),
               "engine_peak_rss_kb": hwm, "redis_cpu_s": round(rcpu, 2),
               "round_trips_per_msg": round((calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_xreadgroup", 0)) / a.messages, 4),
               "inject_s": round(inject_s, 2)}
        print(json.dumps(res))
        if os.environ.get("E2E_TIMELINE"):
            buckets = {}
            for _, f in r.xrange("salvo:{p0}:events", count=a.messages + 10):
                e = json.loads(f[b"e"])
                ts = e["timestamp"]
                b = ts[11:21] + " " + e.get("instance", "")
                buckets[b] = buckets.get(b, 0) + 1
            for b in sorted(buckets):
                print(b, buckets[b])
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("E2E_KEEP"):
            print("kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
