#!/usr/bin/python3
"""Comparison benchmark: the e2e.py workload delivered through a Postfix relay.

A private Postfix instance (its own config, queue and data directories in a temp dir,
listening on 127.0.0.1 only) relays N 1 KB messages for 20 domains d1..d20.test to sinks on
127.0.1.1..20 (bench_sink, or Postfix smtp-sink with --postfix-sink), through a transport
map. Nothing else is touched: no system Postfix, no syslog, loopback only.

Default (staged) mode, the analogue of e2e.py (jobs first, then `salvo run`):
  1. Postfix runs without its queue manager; a pipelining asyncio client injects N
     messages over SMTP (several connections) into smtpd -> cleanup -> incoming queue.
     Injection time and Postfix CPU for it are measured here.
  2. qmgr is added to master.cf and master gets SIGHUP; timing starts there and ends when
     the maillog shows N queue files removed and the queue directories are empty.
     Relay messages/s and Postfix CPU per message (all processes of this instance, from
     /proc: master + live children + reaped children) are measured for this phase.
  Then the sink is stopped and its own count must be N.
--concurrent: qmgr runs from the start and injection overlaps delivery (a live relay);
the time is from the first injected message until the last one has left the queue.

Prints one JSON line. Usage:
  bench/scripts/postfix_relay.py [--messages 10000] [--concurrent] [--inject-conns 8]
      [--process-limit 200] [--dest-concurrency 20] [--postfix-sink] [--base-dir DIR]
      [--set main.cf-param=value ...] [--keep]
Must run as root (Postfix drops to the postfix user itself)."""
import argparse
import asyncio
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTFIX = "/usr/sbin/postfix"
DAEMON_DIR = "/usr/lib/postfix/sbin"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def instance_cpu(master):
    """CPU seconds of this Postfix instance: master (own + reaped children) plus every
    live child of master (own + reaped). A child that exits between two samples moves
    from the second term to master's cutime, so deltas stay exact."""
    total = 0
    f = stat_fields(master)
    total += sum(int(x) for x in f[11:15])
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = stat_fields(int(d))
        except (OSError, IndexError):
            continue
        if int(f[1]) == master:
            total += sum(int(x) for x in f[11:15])
    return total / TCK


def children_cpu(master):
    """{pid: (name, own CPU seconds)} of master's live children."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw.rsplit(")", 1)[1].split()
        if int(f[1]) == master:
            out[int(d)] = (name, (int(f[11]) + int(f[12])) / TCK)
    return out


class ChildSampler(threading.Thread):
    """Samples master's children every 0.25 s so that CPU of processes that exit during a
    phase (daemons leave after max_use = 100 requests: cleanup, smtp) can be attributed
    to their name. The last sample of an exited process is a slight underestimate; the
    rest of the exact total (processes that lived < 0.25 s) is 'exited-unsampled'."""

    def __init__(self, master):
        super().__init__(daemon=True)
        self.master, self.seen, self.stop_ev = master, {}, threading.Event()
        self.lock = threading.Lock()
        self.peak = 0

    def sample(self):
        snap = children_cpu(self.master)
        with self.lock:
            self.seen.update(snap)
            self.peak = max(self.peak, len(snap) + 1)
        return snap

    def run(self):
        while not self.stop_ev.wait(0.25):
            self.sample()

    def master_own(self):
        f = stat_fields(self.master)
        return (int(f[11]) + int(f[12])) / TCK

    def phase_start(self):
        snap = self.sample()
        with self.lock:
            self.seen = dict(snap)
        self.master0 = self.master_own()
        return snap

    def breakdown(self, before, total):
        self.sample()
        with self.lock:
            seen = dict(self.seen)
        by = {}
        for pid, (name, cpu) in seen.items():
            d = cpu - before.get(pid, (name, 0.0))[1]
            by[name] = by.get(name, 0.0) + d
        by["master"] = self.master_own() - self.master0
        by["exited-unsampled"] = total - sum(by.values())
        return {k: round(v, 2) for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.005}


def machine_busy():
    """Busy CPU seconds of the whole machine (all CPUs) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TCK


def queue_files(qdir):
    n = 0
    for q in QUEUES:
        for _, _, files in os.walk(os.path.join(qdir, q)):
            n += len(files)
    return n


class LogTail:
    """Incremental reader of the instance's maillog; counts delivery outcomes."""

    def __init__(self, path):
        self.path, self.pos, self.rest = path, 0, b""
        self.c = {"removed": 0, "sent": 0, "deferred": 0, "bounced": 0, "fatal": 0, "warning": 0}
        self.last_problem = ""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return self.c
        self.pos += len(data)
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        c = self.c
        for ln in lines:
            if ln.endswith(b": removed"):
                c["removed"] += 1
            elif b" status=sent " in ln:
                c["sent"] += 1
            elif b" status=deferred " in ln:
                c["deferred"] += 1
                self.last_problem = ln.decode(errors="replace")
            elif b" status=bounced " in ln:
                c["bounced"] += 1
                self.last_problem = ln.decode(errors="replace")
            elif b"fatal:" in ln or b"panic:" in ln:
                c["fatal"] += 1
                self.last_problem = ln.decode(errors="replace")
            elif b"warning:" in ln:
                c["warning"] += 1
                if not self.last_problem:
                    self.last_problem = ln.decode(errors="replace")
        return c


def write_config(conf, work, a, smtpd_port, sink_port, with_qmgr, write_main=True):
    qdir, ddir = os.path.join(work, "queue"), os.path.join(work, "data")
    main = {
        "compatibility_level": "3.6",
        "queue_directory": qdir,
        "data_directory": ddir,
        "meta_directory": "/etc/postfix",
        "daemon_directory": DAEMON_DIR,
        "command_directory": "/usr/sbin",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "relay.salvo.test",
        "mydomain": "salvo.test",
        "myorigin": "$myhostname",
        "mydestination": "",
        "relayhost": "",
        "relay_domains": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "smtpd_recipient_restrictions": "permit_mynetworks, reject",
        "smtpd_peername_lookup": "no",
        "smtpd_tls_security_level": "none",
        "smtp_tls_security_level": "none",
        "transport_maps": "texthash:" + os.path.join(conf, "transport"),
        # anything not in the transport map (there should be nothing) fails at once
        "default_transport": "error:no route in this benchmark",
        "relay_transport": "error:no route in this benchmark",
        # no local delivery agent
        "local_transport": "error:local delivery is disabled",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        "notify_classes": "",
        "maillog_file": os.path.join(work, "maillog"),
        "maillog_file_prefixes": work,
        "default_process_limit": str(a.process_limit),
        "default_destination_concurrency_limit": str(a.dest_concurrency),
        "smtpd_client_connection_count_limit": "0",
        "smtpd_client_message_rate_limit": "0",
        "shlib_directory": "/usr/lib/postfix",
    }
    if not a.concurrent:
        # without a queue manager there are no in-flow tokens; cleanup would pause 1 s
        # per message. Delivery (phase 2) has no inflow, so this changes nothing there.
        main["in_flow_delay"] = "0"
    for s in a.set:
        k, v = s.split("=", 1)
        main[k.strip()] = v.strip()
    if write_main:
        with open(os.path.join(conf, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(conf, "transport"), "w") as f:
            for k in range(1, a.hosts + 1):
                f.write("d%d.test smtp:[127.0.1.%d]:%d\n" % (k, k, sink_port))
            f.write("sender.test discard:\n")
    services = [
        ("127.0.0.1:%d" % smtpd_port, "inet", "n", "-", "n", "-", "-", "smtpd"),
        ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
        ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
        ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
        ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
        ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
        ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
        ("error", "unix", "-", "-", "n", "-", "-", "error"),
        ("retry", "unix", "-", "-", "n", "-", "-", "error"),
        ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
        ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
    ]
    if with_qmgr:
        services.insert(2, ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"))
    with open(os.path.join(conf, "master.cf"), "w") as f:
        for s in services:
            f.write("%-24s %-10s %-2s %-2s %-2s %-6s %-4s %s\n" % s)
    # Postfix waits (300 ms steps) until a config/table file is a second or more old
    # before it reads it; backdate them so start and reload are not delayed.
    old = time.time() - 60
    for name in ("main.cf", "master.cf", "transport"):
        os.utime(os.path.join(conf, name), (old, old))


def make_message(i, hosts):
    dom = i % hosts + 1
    rcpt = "user%d@d%d.test" % (i, dom)
    name = "Reader %d" % i
    hdr = ("From: bench@sender.test\r\nTo: %s\r\nSubject: Benchmark %s\r\n"
           "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <%d.bench@sender.test>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 7bit\r\n\r\n" % (rcpt, name, i))
    body = "Hello %s,\r\n" % name + "The quick brown fox jumps over the lazy dog. 0123456789\r\n" * 15
    return rcpt.encode(), (hdr + body + ".\r\n").encode()


async def read_reply(reader):
    lines = []
    while True:
        ln = await reader.readline()
        if not ln:
            raise ConnectionError("connection closed by server")
        lines.append(ln)
        if len(ln) < 4 or ln[3:4] != b"-":
            return int(ln[:3]), b"".join(lines)


async def inject_conn(port, next_index, n, hosts, out):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    code, txt = await read_reply(reader)
    if code != 220:
        raise RuntimeError("greeting: %r" % txt)
    writer.write(b"EHLO injector.salvo.test\r\n")
    code, txt = await read_reply(reader)
    if code != 250 or b"PIPELINING" not in txt:
        raise RuntimeError("EHLO: %r" % txt)
    while True:
        i = next_index[0]
        if i >= n:
            break
        next_index[0] = i + 1
        rcpt, data = make_message(i, hosts)
        # RFC 2920: MAIL, RCPT, DATA in one write, then the body with its dot
        writer.write(b"MAIL FROM:<bench@sender.test>\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
        for want in (250, 250, 354):
            code, txt = await read_reply(reader)
            if code != want:
                raise RuntimeError("message %d: got %r, wanted %d" % (i, txt, want))
        writer.write(data)
        code, txt = await read_reply(reader)
        if code != 250:
            raise RuntimeError("message %d end of data: %r" % (i, txt))
        out[0] += 1
    writer.write(b"QUIT\r\n")
    try:
        await read_reply(reader)
    except ConnectionError:
        pass
    writer.close()


async def inject(port, n, hosts, conns):
    next_index, out = [0], [0]
    await asyncio.gather(*(inject_conn(port, next_index, n, hosts, out) for _ in range(conns)))
    return out[0]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def read_master_pid(qdir):
    with open(os.path.join(qdir, "pid", "master.pid")) as f:
        return int(f.read().strip())


def postfix(conf, *args, check=True):
    r = subprocess.run([POSTFIX, "-c", conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        tail = ""
        try:
            with open(os.path.join(os.path.dirname(conf), "maillog")) as f:
                tail = "".join(f.readlines()[-5:])
        except OSError:
            pass
        raise RuntimeError("postfix %s failed: %s\n%s" % (" ".join(args), r.stdout.strip(), tail))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--inject-conns", type=int, default=8, help="parallel SMTP injection connections")
    ap.add_argument("--process-limit", type=int, default=200, help="main.cf default_process_limit")
    ap.add_argument("--dest-concurrency", type=int, default=20,
                    help="main.cf default_destination_concurrency_limit (Postfix default 20)")
    ap.add_argument("--concurrent", action="store_true", help="deliver while injecting (qmgr from the start)")
    ap.add_argument("--postfix-sink", action="store_true", help="Postfix smtp-sink instead of bench_sink")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--base-dir", default=None, help="parent of the temp dir (queue lives there; default $TMPDIR)")
    ap.add_argument("--set", action="append", default=[], help="extra main.cf param=value (repeatable)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (maillog, config) for inspection")
    a = ap.parse_args()
    # SIGTERM/SIGHUP -> SystemExit, so the finally block still stops Postfix and the sinks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    if os.geteuid() != 0:
        print("must run as root (a private Postfix instance needs it)", file=sys.stderr)
        return 2
    sink_bin = os.path.join(a.build, "bench_sink")
    use_bench_sink = not a.postfix_sink and os.access(sink_bin, os.X_OK)
    if not a.postfix_sink and not use_bench_sink:
        print("%s not found: using Postfix smtp-sink (build it: cmake --build %s --target bench_sink)"
              % (sink_bin, a.build), file=sys.stderr)

    work = tempfile.mkdtemp(prefix="salvo-pfrelay-", dir=a.base_dir)
    os.chmod(work, 0o755)  # postfix daemons must reach queue_directory
    conf = os.path.join(work, "conf")
    qdir = os.path.join(work, "queue")
    os.mkdir(conf, 0o755)
    os.mkdir(qdir, 0o755)
    os.mkdir(os.path.join(work, "data"), 0o700)
    pw = pwd.getpwnam("postfix")
    os.chown(os.path.join(work, "data"), pw.pw_uid, pw.pw_gid)
    sinks, started = [], False
    sink_stats = os.path.join(work, "sink.json")
    try:
        smtpd_port, sink_port = free_port(), free_port()
        if use_bench_sink:
            sinks.append(subprocess.Popen([sink_bin, "--chunking", "--listen-range",
                                           "127.0.1.1-%d:%d" % (a.hosts, sink_port),
                                           "--stats-file", sink_stats],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            for k in range(1, a.hosts + 1):
                sinks.append(subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-4", "-m", "1000",
                                               "127.0.1.%d:%d" % (k, sink_port), "1000"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        write_config(conf, work, a, smtpd_port, sink_port, with_qmgr=a.concurrent)
        postfix(conf, "check")
        started = True
        postfix(conf, "start")
        if not wait_port(smtpd_port):
            raise RuntimeError("Postfix smtpd did not come up on 127.0.0.1:%d" % smtpd_port)
        for k in range(1, a.hosts + 1):
            if not wait_port_addr("127.0.1.%d" % k, sink_port):
                raise RuntimeError("sink 127.0.1.%d:%d is not listening" % (k, sink_port))
        master = read_master_pid(qdir)
        log = LogTail(os.path.join(work, "maillog"))
        log.poll()

        load1 = os.getloadavg()[0]
        sampler = ChildSampler(master)
        kids_inj = sampler.phase_start()
        sampler.start()
        cpu0 = instance_cpu(master)
        busy_inj = machine_busy()
        self_inj = os.times()
        t_inj = time.time()
        injected = asyncio.run(inject(smtpd_port, a.messages, a.hosts, a.inject_conns))
        inject_s = time.time() - t_inj
        cpu_inj = instance_cpu(master) - cpu0
        inj_by = sampler.breakdown(kids_inj, cpu_inj)
        if injected != a.messages:
            raise RuntimeError("injected %d of %d" % (injected, a.messages))

        if a.concurrent:
            t0, cpu_start, busy0, kids0, self0 = t_inj, cpu0, busy_inj, kids_inj, self_inj
        else:
            queued = queue_files(qdir)
            if queued != a.messages:
                raise RuntimeError("%d queue files after injection, expected %d" % (queued, a.messages))
            write_config(conf, work, a, smtpd_port, sink_port, with_qmgr=True, write_main=False)
            time.sleep(0.5)  # let idle smtpd/cleanup settle so phase-2 CPU is delivery only
            log.poll()
            kids0 = sampler.phase_start()
            cpu_start = instance_cpu(master)
            busy0 = machine_busy()
            self0 = os.times()
            t0 = time.time()
            os.kill(master, signal.SIGHUP)  # = postfix reload: master starts qmgr
        removed_base = 0 if a.concurrent else log.c["removed"]
        sent_base = 0 if a.concurrent else log.c["sent"]
        t_first = None
        last_proc_check = 0
        while True:
            c = log.poll()
            now = time.time()
            if t_first is None and c["sent"] > sent_base and not a.concurrent:
                t_first = now
            if c["removed"] - removed_base >= a.messages and queue_files(qdir) == 0:
                break
            if now - last_proc_check > 0.5:
                last_proc_check = now
                # fallback in case log lines were lost: an empty queue ends it too
                # (0.5 s resolution; the sink count below still has to be N)
                if queue_files(qdir) == 0:
                    break
            if now - t0 > a.timeout:
                raise RuntimeError("timeout: %s queue=%d last: %s" % (c, queue_files(qdir), log.last_problem))
            if c["bounced"] or c["fatal"]:
                raise RuntimeError("delivery problem: %s last: %s" % (c, log.last_problem))
            time.sleep(0.02)
        t1 = time.time()
        cpu_relay = instance_cpu(master) - cpu_start
        relay_by = sampler.breakdown(kids0, cpu_relay)
        sampler.stop_ev.set()
        busy = machine_busy() - busy0
        self1 = os.times()
        harness = self1.user + self1.system - self0.user - self0.system
        secs = t1 - t0

        sink_msgs, sink_conns, sink_cpu = None, None, None
        if use_bench_sink:
            sinks[0].send_signal(signal.SIGINT)
            sinks[0].wait(timeout=10)
            with open(sink_stats) as f:
                sj = json.load(f)
            sink_msgs, sink_conns = sj.get("messages"), sj.get("connections") - a.hosts  # minus readiness probes
            sink_cpu = round(sj.get("cpu_user_s", 0) + sj.get("cpu_sys_s", 0), 3)
        c = log.poll()
        res = {"messages": a.messages, "mode": "concurrent" if a.concurrent else "staged",
               "sink": "bench_sink" if use_bench_sink else "postfix smtp-sink",
               "postfix": subprocess.run(["/usr/sbin/postconf", "-h", "-d", "mail_version"],
                                         stdout=subprocess.PIPE, text=True).stdout.strip(),
               "sent": c["sent"], "deferred": c["deferred"], "sink_messages": sink_msgs,
               "sink_connections": sink_conns,
               "seconds": round(secs, 3), "msgs_per_s": round(a.messages / secs),
               "first_sent_after_s": round(t_first - t0, 3) if t_first else None,
               "postfix_cpu_s": round(cpu_relay, 2),
               "postfix_cpu_us_per_msg": round(cpu_relay * 1e6 / a.messages, 1),
               "inject_s": round(inject_s, 2), "inject_msgs_per_s": round(a.messages / inject_s),
               "inject_postfix_cpu_us_per_msg": round(cpu_inj * 1e6 / a.messages, 1),
               "peak_postfix_procs": sampler.peak, "sink_cpu_s": sink_cpu,
               "inject_conns": a.inject_conns, "process_limit": a.process_limit,
               "dest_concurrency": a.dest_concurrency,
               # conditions: whole-machine busy CPU during the timed phase (of os.cpu_count()
               # CPUs x seconds) and the 1-minute load average before injection
               "machine_busy_cpu_s": round(busy, 2), "cpus": os.cpu_count(),
               "harness_cpu_s": round(harness, 2),  # this script (log tail, /proc sampler; +client if concurrent)
               "loadavg1_before": round(load1, 2),
               "postfix_cpu_s_by_process": relay_by}
        if not a.concurrent:
            res["inject_postfix_cpu_s_by_process"] = inj_by
        if a.concurrent:
            res["note"] = "seconds/msgs_per_s/postfix_cpu from first injected message to empty queue; include smtpd+cleanup"
        print(json.dumps(res))
        if sink_msgs is not None and sink_msgs != a.messages:
            print("sink counted %d messages, expected %d" % (sink_msgs, a.messages), file=sys.stderr)
            return 1
        return 0
    except Exception as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        if started:
            stop_postfix(conf, qdir)
        for p in sinks:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in sinks:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if a.keep:
            print("kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def wait_port_addr(addr, port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_postfix(conf, qdir):
    """postfix stop, wait for master and its children to go; abort / SIGKILL by pid if not."""
    try:
        master = read_master_pid(qdir)
    except (OSError, ValueError):
        master = None
    kids = []
    if master:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if int(stat_fields(int(d))[1]) == master:
                        kids.append(int(d))
                except (OSError, IndexError):
                    pass
    postfix(conf, "stop", check=False)
    pids = ([master] if master else []) + kids

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    end = time.time() + 10
    while time.time() < end and any(alive(p) for p in pids):
        time.sleep(0.1)
    end = time.time() + 2  # and until init has reaped them (no zombies left behind)
    while time.time() < end and any(os.path.exists("/proc/%d" % p) for p in pids):
        time.sleep(0.05)
    if any(alive(p) for p in pids):
        postfix(conf, "abort", check=False)
        time.sleep(0.5)
        for p in pids:
            if alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
