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
                         [--procs 4] [--conns 1] [--per-conn 100] [--size 1024] [--rcpts 1]
                         [--addrs 127.0.1.1-4] [--port 2525] [--batch 20]
"""
import argparse
import json
import multiprocessing
import os
import selectors
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


def worker_raw(args, wid, count, q):
    """Event-driven: --conns connections at once, each taking --per-conn messages."""
    body = body_of(args.size)
    rcpts = b"".join(b"RCPT TO:<r%d@bench.test>\r\n" % i for i in range(args.rcpts))
    env = b"MAIL FROM:<s@bench.test>\r\n" + rcpts
    nr = args.rcpts

    def steps(n):  # (bytes to write, final replies to wait for)
        yield b"", 1
        yield b"EHLO bench.test\r\n", 1
        if args.mode == "pipelined":
            for _ in range(n):
                yield env + b"DATA\r\n", 2 + nr
                yield body + b".\r\n", 1
        elif args.mode == "chunking":
            for _ in range(n):
                yield env + b"BDAT %d LAST\r\n" % len(body) + body, 2 + nr
        else:  # blast
            one = env + b"DATA\r\n" + body + b".\r\n"
            i = 0
            while i < n:
                b = min(args.batch, n - i)
                yield one * b, b * (3 + nr)
                i += b
        yield b"QUIT\r\n", 1

    sel = selectors.DefaultSelector()
    st = {"remaining": count, "done": 0, "errors": 0, "opened": 0}

    def advance(s, c):
        data, want = next(c["steps"])
        if data:
            s.sendall(data)
        c["want"] = want

    def open_conn():
        n = min(args.per_conn, st["remaining"])
        st["remaining"] -= n
        addr = args.addr_list[(wid + st["opened"]) % len(args.addr_list)]
        st["opened"] += 1
        s = socket.create_connection((addr, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = {"steps": steps(n), "want": 0, "partial": b"", "n": n}
        advance(s, c)
        sel.register(s, selectors.EVENT_READ, c)

    while st["remaining"] > 0 and len(sel.get_map()) < args.conns:
        open_conn()
    while sel.get_map():
        for key, _ in sel.select():
            s, c = key.fileobj, key.data
            d = s.recv(262144)
            if not d:
                raise EOFError("sink closed the connection")
            lines = (c["partial"] + d).split(b"\r\n")
            c["partial"] = lines.pop()
            for line in lines:
                if len(line) >= 4 and line[3:4] == b" ":
                    c["want"] -= 1
                    if line[:1] in (b"4", b"5"):
                        st["errors"] += 1
            if c["want"] > 0:
                continue
            try:
                advance(s, c)
            except StopIteration:
                sel.unregister(s)
                s.close()
                st["done"] += c["n"]
                if st["remaining"] > 0:
                    open_conn()
    q.put((st["done"], st["errors"], time.process_time()))


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
    ap.add_argument("--conns", type=int, default=1, help="connections at once per process")
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
    print("mode=%s messages=%d size=%d rcpts=%d procs=%d conns=%d per_conn=%d errors=%d"
          % (args.mode, done, args.size, args.rcpts, args.procs, args.procs * args.conns,
             args.per_conn, errors))
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
