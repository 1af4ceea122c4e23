#!/usr/bin/python3
"""Rough CPU cost per message of an SMTP sink (bench_sink, or any sink given by --pid, such
as Postfix smtp-sink started by postfix_sinks.sh).

A few Python processes deliver messages over loopback; the sink's on-CPU time is read from
/proc/<pid>/schedstat (nanoseconds) before and after. The Python driver is the bottleneck,
so messages/s here says nothing about the sink's ceiling -- only the sink's CPU per message
is meaningful. On a 2-core machine the driver and the sink share the CPUs.

Modes (how the client talks):
  pipelined  per message: MAIL+RCPT+DATA in one write, then the body+dot in a second write,
             as a PIPELINING client such as Salvo does (2 client writes, 2 sink sends)
  smtplib    Python's smtplib.sendmail: one command per round trip (4-5 round trips)
  chunking   per message: MAIL+RCPT+BDAT n LAST+body in one write (RFC 3030; one round
             trip, one sink send); the sink is started with --chunking
  blast      --batch whole transactions per write without waiting for 354 (a sink does
             not care); shows the sink's parsing cost with maximal batching

usage: sink_selfbench.py [--sink PATH | --pid PID] [--mode pipelined] [--messages 20000]
                         [--procs 4] [--per-conn 100] [--size 1024] [--rcpts 1]
                         [--addrs 127.0.1.1-4] [--port 2525] [--batch 20]
"""
import argparse
import json
import multiprocessing
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def body_of(size):
    head = b"From: a@bench.test\r\nTo: b@bench.test\r\nSubject: sink bench\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    n = max(0, (size - len(head)) // len(line))
    return head + line * n


def read_replies(s, n, buf):
    """Reads until n final reply lines arrived; returns (replies_text, leftover)."""
    while True:
        # final lines: "ddd " at line start; count CRLFs of lines without '-' at [3]
        lines = buf.split(b"\r\n")
        finals = sum(1 for l in lines[:-1] if len(l) >= 4 and l[3:4] == b" ")
        if finals >= n:
            return buf, b""
        d = s.recv(65536)
        if not d:
            raise EOFError("sink closed the connection")
        buf += d


def worker_raw(args, wid, count, q):
    body = body_of(args.size)
    rcpts = b"".join(b"RCPT TO:<r%d@bench.test>\r\n" % i for i in range(args.rcpts))
    env = b"MAIL FROM:<s@bench.test>\r\n" + rcpts + b"DATA\r\n"
    msg = body + b".\r\n"
    addrs = args.addr_list
    done = 0
    errors = 0
    c = 0
    while done < count:
        addr = addrs[(wid + c) % len(addrs)]
        c += 1
        s = socket.create_connection((addr, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_replies(s, 1, b"")
        s.sendall(b"EHLO bench.test\r\n")
        read_replies(s, 1, b"")
        n = min(args.per_conn, count - done)
        if args.mode == "pipelined":
            for _ in range(n):
                s.sendall(env)
                r, _ = read_replies(s, 2 + args.rcpts, b"")
                if b"354 " not in r:
                    errors += 1
                s.sendall(msg)
                r, _ = read_replies(s, 1, b"")
                if not r.startswith(b"250 "):
                    errors += 1
        elif args.mode == "chunking":
            bdat = b"BDAT %d LAST\r\n" % len(body)
            for _ in range(n):
                s.sendall(env[:-len(b"DATA\r\n")] + bdat + body)
                r, _ = read_replies(s, 2 + args.rcpts, b"")
                errors += 1 - r.count(b"queued as")
        else:  # blast
            i = 0
            while i < n:
                b = min(args.batch, n - i)
                s.sendall((env + msg) * b)
                r, _ = read_replies(s, b * (3 + args.rcpts), b"")
                errors += b - r.count(b"queued as")
                i += b
        done += n
        s.sendall(b"QUIT\r\n")
        read_replies(s, 1, b"")
        s.close()
    q.put((done, errors, time.process_time()))


def worker_smtplib(args, wid, count, q):
    body = body_of(args.size)
    rcpts = ["r%d@bench.test" % i for i in range(args.rcpts)]
    done = errors = c = 0
    while done < count:
        addr = args.addr_list[(wid + c) % len(args.addr_list)]
        c += 1
        s = smtplib.SMTP(addr, args.port)
        s.ehlo("bench.test")
        n = min(args.per_conn, count - done)
        for _ in range(n):
            if s.sendmail("s@bench.test", rcpts, body):
                errors += 1
        done += n
        s.quit()
    q.put((done, errors, time.process_time()))


def schedstat_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def parse_addrs(spec):
    base, _, rng = spec.rpartition(".")
    if "-" in rng:
        a, b = rng.split("-")
        return ["%s.%d" % (base, x) for x in range(int(a), int(b) + 1)]
    return [spec]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sink", default=os.path.join(HERE, "..", "..", "build-rel", "bench_sink"))
    ap.add_argument("--pid", type=int, help="measure an already running sink instead")
    ap.add_argument("--mode", choices=["pipelined", "chunking", "smtplib", "blast"], default="pipelined")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--per-conn", type=int, default=100, help="messages per connection")
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes")
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20, help="blast mode: transactions per write")
    ap.add_argument("--addrs", default="127.0.1.1-4")
    ap.add_argument("--port", type=int, default=2525)
    args = ap.parse_args()
    args.addr_list = parse_addrs(args.addrs)

    proc = None
    pid = args.pid
    stats = None
    if not pid:
        stats = tempfile.mktemp(prefix="sink-bench-", suffix=".json")
        first, last = args.addr_list[0], args.addr_list[-1].rpartition(".")[2]
        proc = subprocess.Popen([args.sink, "--listen-range", "%s-%s:%d" % (first, last, args.port),
                                 "--stats-file", stats, "--chunking"], stderr=subprocess.DEVNULL)
        pid = proc.pid
        time.sleep(0.3)

    q = multiprocessing.Queue()
    per = [args.messages // args.procs + (1 if i < args.messages % args.procs else 0)
           for i in range(args.procs)]
    fn = worker_smtplib if args.mode == "smtplib" else worker_raw
    ps = [multiprocessing.Process(target=fn, args=(args, i, per[i], q)) for i in range(args.procs)]
    cpu0 = schedstat_ns(pid)
    t0 = time.monotonic()
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.monotonic() - t0
    cpu1 = schedstat_ns(pid)
    done = sum(r[0] for r in res)
    errors = sum(r[1] for r in res)
    driver_cpu = sum(r[2] for r in res)

    sink_json = None
    if proc:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        with open(stats) as f:
            sink_json = json.load(f)
        os.unlink(stats)

    sink_cpu = (cpu1 - cpu0) / 1e9
    print("mode=%s messages=%d size=%d rcpts=%d procs=%d per_conn=%d errors=%d"
          % (args.mode, done, args.size, args.rcpts, args.procs, args.per_conn, errors))
    print("wall=%.2fs  rate=%.0f msg/s (driver-bound)  driver_cpu=%.2fs (%.1f us/msg)"
          % (wall, done / wall, driver_cpu, driver_cpu * 1e6 / done))
    print("sink_cpu=%.3fs  sink_us_per_msg=%.2f  sink_cpu_share=%.0f%% of one core"
          % (sink_cpu, sink_cpu * 1e6 / done, 100 * sink_cpu / wall))
    if sink_json is not None:
        print("sink JSON: messages=%d recipients=%d cpu_user=%.3fs cpu_sys=%.3fs"
              % (sink_json["messages"], sink_json["recipients"], sink_json["cpu_user_s"],
                 sink_json["cpu_sys_s"]))
        if sink_json["messages"] != done:
            print("MISMATCH: sink counted %d messages" % sink_json["messages"])
            return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
