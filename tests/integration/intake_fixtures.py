"""Fixtures for the `salvo run` / `salvo inject` integration tests (the Redis intake): a real
redis-server per test (own port, own temp dir, AOF on request, kill/restart helpers), the
engine as a long-running process (stderr captured to a file, kill -9 / SIGTERM helpers,
/proc memory readings), readers for the events and dead-letter streams, and a census of the
durable places (DESIGN.md section 2) every accepted message must be in.

Import the fixtures you use into the test module (pytest finds fixtures by name there):

    from intake_fixtures import redis_factory, engines, ...   # noqa: F401

Nothing here decides a verdict by time: every wait is a hang guard that only stops a broken
run from hanging, and every wait also fails fast when an engine process dies unexpectedly.
"""

import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import redis as redis_py
from aiosmtpd.controller import Controller

import salvo_cli
from netutil import START_GUARD_S, free_port

REDIS_SERVER = "/usr/bin/redis-server"
SENDER = "sender@origin.test"
PREFIX = "salvo"

# Event types after which a recipient needs nothing more.
FINAL_TYPES = ("delivered", "bounced", "expired", "rejected", "suppressed")


# ----------------------------------------------------------------------------------------
# keys


class Keys:
    """Key names of the documented Redis layout (partition {p0})."""

    def __init__(self, prefix=PREFIX):
        base = "%s:{p0}:" % prefix
        self.tx = base + "in:tx"
        self.bulk = base + "in:bulk"
        self.delay = base + "delay"
        self.delay_data = base + "delay:data"
        self.events = base + "events"
        self.dead = base + "dead"
        self.stats = base + "stats"
        self.base = base

    def stream(self, lane):
        return self.bulk if lane == "bulk" else self.tx

    def campaign(self, cid):
        return self.base + "campaign:" + cid

    def campaign_stats(self, cid):
        return self.stats + ":campaign:" + cid

    def hb(self, instance):
        return self.base + "hb:" + instance

    def idem(self, key):
        return self.base + "idem:" + key


KEYS = Keys()


# ----------------------------------------------------------------------------------------
# redis-server


class RedisServer:
    """redis-server on 127.0.0.1:<port> with its own directory. aof=True: --appendonly yes
    --appendfsync always (every acknowledged write is on disk), so a kill -9 of Redis loses
    nothing it acknowledged; otherwise nothing is persisted (--save '' --appendonly no)."""

    def __init__(self, workdir, aof=False, port=None):
        self.port = port or free_port("127.0.0.1")
        self.aof = aof
        self.dir = os.path.join(workdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.starts = 0
        self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "redis already running"
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
               "--save", "", "--daemonize", "no", "--logfile", self.log_path,
               "--protected-mode", "no", "--maxclients", "10000"]
        if self.aof:
            cmd += ["--appendonly", "yes", "--appendfsync", "always",
                    "--appendfilename", "appendonly.aof"]
        else:
            cmd += ["--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + START_GUARD_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited (%s): %s" % (self.proc.returncode,
                                                                    self.log_tail()))
            try:
                c = self.client()
                # loading an AOF answers LOADING until done
                if c.ping():
                    c.close()
                    return
            except (redis_py.exceptions.ConnectionError, redis_py.exceptions.BusyLoadingError,
                    redis_py.exceptions.ResponseError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("hang guard: redis-server on %d did not start" % self.port)
            time.sleep(0.05)

    def client(self, **kw):
        return redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=30,
                              decode_responses=False, **kw)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: Redis gets no chance to write anything more."""
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self, hard=True, down_s=1.0):
        """Kills (hard: SIGKILL, else SIGTERM) and starts again on the same port and dir,
        after staying down for down_s (so clients see refused connections)."""
        self.kill() if hard else self.stop()
        time.sleep(down_s)
        self.start()

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory(aof=False) -> a started RedisServer; all are stopped at teardown."""
    started = []

    def make(aof=False):
        r = RedisServer(str(tmp_path), aof=aof)
        started.append(r)
        return r

    try:
        yield make
    finally:
        for r in started:
            r.stop()


@pytest.fixture
def redis_server(redis_factory):
    """One plain (non-persistent) redis-server."""
    return redis_factory()


# ----------------------------------------------------------------------------------------
# the engine (`salvo run`)


def _proc_status(pid):
    """VmRSS / VmHWM / VmSize / Threads of a live process, in kB (Threads: a count)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "VmSize", "Threads"):
                out[k] = int(v.split()[0])
    return out


class EngineDied(AssertionError):
    pass


class Engine:
    """`salvo run` as a child process (its own session). stdout and stderr go to files in
    the test's tmp dir; every failure message carries the stderr tail."""

    _seq = 0

    def __init__(self, binary, redis_url, instance, workdir, args=(), env=None):
        Engine._seq += 1
        self.instance = instance
        self.args = [binary, "run", "--redis", redis_url, "--instance", instance,
                     "--log-level", "info"] + [str(a) for a in args]
        self.err_path = os.path.join(workdir, "engine-%s-%d.stderr" % (instance, Engine._seq))
        self.out_path = os.path.join(workdir, "engine-%s-%d.stdout" % (instance, Engine._seq))
        e = dict(os.environ)
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            e.update(env)
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=e, start_new_session=True)
        self.pid = self.proc.pid
        self.expected_exit = False
        self.rc = None
        self.sanitizers_checked = False

    # --- state
    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        """Raises (with the stderr tail) when the engine exited without being told to."""
        if not self.expected_exit and self.proc.poll() is not None:
            raise EngineDied("salvo run (%s) exited unexpectedly with %s%s" % (
                self.instance, self.proc.returncode, self.describe()))

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def describe(self, n=6000):
        s = self.stderr()
        if len(s) > n:
            s = "...[%d bytes cut]...\n%s" % (len(s) - n, s[-n:])
        return "\n--- %s\n--- exit status: %s\n--- stderr:\n%s" % (
            " ".join(self.args), self.proc.returncode, s)

    def mem(self):
        """{'VmRSS': kB, 'VmHWM': kB, ...} from /proc/<pid>/status."""
        self.check_alive()
        return _proc_status(self.pid)

    # --- ending
    def kill9(self):
        """kill -9: no cleanup at all (heartbeat stays until its TTL, entries stay pending)."""
        self.expected_exit = True
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.rc = self.proc.wait(30)
        self._close()
        return self.rc

    def term(self, guard_s=120.0, expect_rc=0):
        """SIGTERM, wait (hang guard), check the exit status and sanitizer output."""
        self.expected_exit = True
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.rc = self.proc.wait(guard_s)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(30)
            self._close()
            raise AssertionError("hang guard: salvo run did not exit within %.0fs of SIGTERM%s"
                                 % (guard_s, self.describe()))
        self._close()
        self.check_sanitizers()
        if expect_rc is not None:
            assert self.rc == expect_rc, "salvo run exited with %s, expected %s%s" % (
                self.rc, expect_rc, self.describe())
        return self.rc

    def check_sanitizers(self):
        self.sanitizers_checked = True
        err = self.stderr()
        for marker in salvo_cli.SANITIZER_MARKERS:
            if marker in err:
                at = err.find("==ERROR")
                at = err.find(marker) if at < 0 else at
                raise AssertionError("sanitizer report (%s) in salvo run stderr:\n%s%s" % (
                    marker, err[max(0, at - 200):at + 6000], self.describe(2000)))

    def _close(self):
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass

    def cleanup(self):
        if self.alive():
            self.expected_exit = True
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(30)
        self._close()


@pytest.fixture
def engines(salvo_bin, tmp_path):
    """engines.start(redis_url, instance, *args) -> Engine. Any engine still running at
    teardown is killed (by its pid). engines.all lists every engine started."""

    class Engines:
        def __init__(self):
            self.all = []

        def start(self, redis_url, instance, *args, env=None):
            e = Engine(salvo_bin, redis_url, instance, str(tmp_path), args, env=env)
            self.all.append(e)
            return e

        def check_alive(self):
            for e in self.all:
                e.check_alive()

    es = Engines()
    try:
        yield es
    finally:
        for e in es.all:
            e.cleanup()
        # Sanitizer reports from engines that were not checked at a clean exit (killed
        # ones have none; any other report is a real finding).
        for e in es.all:
            if e.rc not in (None, -signal.SIGKILL) and not e.sanitizers_checked:
                e.check_sanitizers()


def engine_args(routes=(), sets=(), events_file=None, extra=()):
    """The usual `salvo run` arguments: routes as (domain, host, port), sets as "path=value"
    strings, TLS off (these tests are about the queue, not TLS)."""
    # one worker thread unless a test asks for more: consumer names stay the instance's
    args = ["--set", "delivery.tls=disabled", "--set", "workers=1"]
    for domain, host, port in routes:
        args += ["--route", "%s=%s:%d" % (domain, host, port)]
    for s in sets:
        args += ["--set", s]
    if events_file:
        args += ["--events-file", str(events_file)]
    return args + list(extra)


def wait_for(pred, guard_s, what, engines=(), step_s=0.1):
    """Polls pred() until true (returned). Fails fast if an engine died; the guard only
    stops a hang."""
    deadline = time.monotonic() + guard_s
    while True:
        for e in engines:
            e.check_alive()
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            details = "".join(e.describe(3000) for e in engines)
            raise TimeoutError("hang guard: %s did not happen within %.0fs%s" % (
                what, guard_s, details))
        time.sleep(step_s)


def redis_state(client):
    """A one-line picture of the queues, for failure messages."""
    try:
        out = {"stats": stats(client), "delay": client.zcard(KEYS.delay),
               "dead": client.xlen(KEYS.dead)}
        for lane in ("tx", "bulk"):
            key = KEYS.stream(lane)
            out[lane] = {"len": client.xlen(key)}
            if client.exists(key):
                try:
                    out[lane]["consumers"] = [
                        (x["name"].decode(), x["pending"], x["idle"])
                        for x in client.xinfo_consumers(key, "salvo")]
                except redis_py.exceptions.ResponseError:
                    pass
        return repr(out)
    except redis_py.exceptions.RedisError as e:
        return "redis state unavailable: %r" % e


def wait_final(client, n, engines, stall_s=60.0, guard_s=600.0, cid=None):
    """Until n recipients have a final outcome (stats counters). Fails when the engines die,
    or when nothing at all becomes final for stall_s (a stall: the guard against a hang,
    with the queue state in the message)."""
    deadline = time.monotonic() + guard_s
    last, last_change = -1, time.monotonic()
    while True:
        for e in engines:
            e.check_alive()
        done = final_count(client, cid)
        now = time.monotonic()
        if done >= n:
            return done
        if done != last:
            last, last_change = done, now
        if now - last_change > stall_s or now > deadline:
            details = "".join(e.describe(3000) for e in engines)
            raise TimeoutError(
                "hang guard: %d of %d final, no progress for %.0fs; queues: %s%s" % (
                    done, n, now - last_change, redis_state(client), details))
        time.sleep(0.1)


def wait_heartbeat(client, engine, guard_s=30.0):
    """Until the engine's heartbeat key exists (it is connected and has loaded its scripts)."""
    wait_for(lambda: client.exists(KEYS.hb(engine.instance)), guard_s,
             "heartbeat of %s" % engine.instance, engines=[engine])


# ----------------------------------------------------------------------------------------
# producing jobs


def xadd_job(client, job, lane="tx"):
    """XADD a job (a dict, or raw text/bytes as given) to the lane's stream; returns the
    entry id (str)."""
    if isinstance(job, dict):
        job = json.dumps(job)
    key = KEYS.bulk if lane == "bulk" else KEYS.tx
    return client.xadd(key, {"job": job}).decode()


def inject(salvo_bin, redis_url, *args, guard_s=300.0):
    """`salvo inject --redis URL --quiet args...`; returns (count printed, SendResult)."""
    res = salvo_cli.run(salvo_bin, ["inject", "--redis", redis_url, "--quiet"] +
                        [str(a) for a in args], guard_s=guard_s, json_out=False)
    assert res.rc == 0, "salvo inject failed%s" % res
    lines = res.stdout.strip().splitlines()
    assert lines and lines[-1].strip().isdigit(), "salvo inject printed no count%s" % res
    return int(lines[-1]), res


def write_campaign_files(dirpath, n, domain_of, name="rcpts.csv"):
    """A CSV of n recipients u<i>@<domain_of(i)> with merge field n=i, and a text template
    whose body ends in a per-recipient marker (so a sink can tell complete messages)."""
    csv_path = os.path.join(dirpath, name)
    with open(csv_path, "w") as f:
        f.write("email,n\n")
        for i in range(n):
            f.write("u%d@%s,%d\n" % (i, domain_of(i), i))
    text_path = os.path.join(dirpath, "text.txt")
    with open(text_path, "w") as f:
        f.write("Hello {{n}},\nthis is message number {{n}}.\nEND-OF-MESSAGE-{{n}}\n")
    return csv_path, text_path


# ----------------------------------------------------------------------------------------
# reading what the engine wrote


class StreamReader:
    """Reads a Redis stream incrementally (XRANGE from the last id seen)."""

    def __init__(self, client, key):
        self.c = client
        self.key = key
        self.last = b"-"
        self.entries = []     # (entry id str, {field str: value bytes})

    def poll(self):
        new = []
        while True:
            start = self.last if self.last == b"-" else b"(" + self.last
            batch = self.c.xrange(self.key, start, "+", count=10000)
            if not batch:
                break
            for eid, fields in batch:
                new.append((eid.decode(), {k.decode(): v for k, v in fields.items()}))
            self.last = batch[-1][0]
            if len(batch) < 10000:
                break
        self.entries.extend(new)
        return new


class Events(StreamReader):
    """The events stream, parsed: self.events is every event (dict) in stream order."""

    def __init__(self, client, keys=KEYS):
        super().__init__(client, keys.events)
        self.events = []

    def poll(self):
        new = [json.loads(f["e"]) for _, f in super().poll()]
        self.events.extend(new)
        return new

    def of_type(self, *types):
        self.poll()
        return [e for e in self.events if e["type"] in types]

    def count(self, *types):
        return len(self.of_type(*types))

    def by_recipient(self):
        self.poll()
        out = {}
        for e in self.events:
            out.setdefault(e["recipient"], []).append(e)
        return out


def dead_letters(client, keys=KEYS):
    """The dead-letter stream: [(entry id, {'job': bytes, 'reason': str, 'detail': str})]."""
    out = []
    for eid, f in client.xrange(keys.dead, "-", "+"):
        d = {k.decode(): v for k, v in f.items()}
        out.append((eid.decode(), {"job": d.get("job"), "reason": d.get("reason", b"").decode(),
                                   "detail": d.get("detail", b"").decode()}))
    return out


def stats(client, cid=None, keys=KEYS):
    h = client.hgetall(keys.campaign_stats(cid) if cid else keys.stats)
    return {k.decode(): int(v) for k, v in h.items()}


def stat(client, field, cid=None):
    v = client.hget(KEYS.campaign_stats(cid) if cid else KEYS.stats, field)
    return int(v) if v else 0


def final_count(client, cid=None):
    s = stats(client, cid)
    return sum(s.get(t, 0) for t in ("delivered", "bounced", "expired", "rejected"))


def pending_of(client, instance, lanes=("tx", "bulk")):
    """Entry ids pending for one consumer (read but not settled), over both lanes."""
    ids = []
    for lane in lanes:
        key = KEYS.stream(lane)
        if not client.exists(key):
            continue
        try:
            rows = client.xpending_range(key, "salvo", "-", "+", 1000000, consumername=instance)
        except redis_py.exceptions.ResponseError:
            continue
        ids += [r["message_id"].decode() for r in rows]
    return ids


def _recipients(job_json):
    try:
        j = json.loads(job_json)
    except ValueError:
        return []
    to = j.get("to") if isinstance(j, dict) else None
    if isinstance(to, str):
        return [to]
    if isinstance(to, list):
        return [t for t in to if isinstance(t, str)]
    return []


def census(client, events, keys=KEYS):
    """Where every recipient is now (DESIGN.md section 2), as {recipient: [places]}: one
    "ready:<lane>:<id>" per stream entry holding it, "waiting:<member>" per retry-set entry,
    "done:<type>" per final event. Also checks the retry set and its payload hash agree.
    Call it only when no engine is running (nothing is in flight)."""
    places = {}
    for lane in ("tx", "bulk"):
        for eid, f in client.xrange(keys.stream(lane), "-", "+"):
            job = f.get(b"job", b"")
            for r in _recipients(job):
                places.setdefault(r, []).append("ready:%s:%s" % (lane, eid.decode()))
    members = {m for m in client.zrange(keys.delay, 0, -1)}
    data = client.hgetall(keys.delay_data)
    assert members == set(data), "retry set and its payloads disagree: %d members, %d payloads" \
        ", only in zset %r, only in hash %r" % (len(members), len(data),
                                                list(members - set(data))[:5],
                                                list(set(data) - members)[:5])
    for m, payload in data.items():
        for r in _recipients(payload):
            places.setdefault(r, []).append("waiting:%s" % m.decode())
    events.poll()
    for e in events.events:
        if e["type"] in FINAL_TYPES:
            places.setdefault(e["recipient"], []).append("done:%s" % e["type"])
    return places


def assert_exactly_one_place(places, expected):
    """Every expected recipient is in exactly one durable place; nothing else is anywhere."""
    expected = set(expected)
    missing = sorted(r for r in expected if r not in places)
    multi = {r: p for r, p in places.items() if len(p) != 1}
    extra = sorted(r for r in places if r not in expected)
    assert not missing and not multi and not extra, (
        "durable-state invariant broken: %d missing (e.g. %s), %d in several places (e.g. %s), "
        "%d unexpected (e.g. %s)" % (len(missing), missing[:5], len(multi),
                                     list(multi.items())[:5], len(extra), extra[:5]))


def assert_event_sequences(events, recipients):
    """Per recipient, in stream order: zero or more `deferred`, then exactly one final event,
    then nothing. Returns {recipient: final event}."""
    by = events.by_recipient()
    bad = {}
    finals = {}
    for r in recipients:
        seq = by.get(r, [])
        types = [e["type"] for e in seq]
        if not types or types[-1] not in FINAL_TYPES or \
                any(t != "deferred" for t in types[:-1]):
            bad[r] = types
        else:
            finals[r] = seq[-1]
    assert not bad, "%d recipients without exactly one final event after their deferrals, " \
        "e.g. %s" % (len(bad), list(bad.items())[:8])
    return finals


def sink_received_until(sink, until, marker=b"END-OF-MESSAGE-"):
    """Like sink_received, but only the transactions whose dump file was written no later
    than `until` (a time.time() value). smtp-sink writes a dump before it answers the final
    dot with 250, so this is what the server had accepted by then."""
    import servers
    complete = []
    for fn in os.listdir(sink.dump_dir):
        path = os.path.join(sink.dump_dir, fn)
        try:
            if os.stat(path).st_mtime > until:
                continue
            with open(path, "rb") as f:
                m = servers._parse_sink_dump(f.read())
        except FileNotFoundError:
            continue
        if marker in m["content"]:
            complete.extend(m["rcpts"])
    return complete


def sink_received(sink, marker=b"END-OF-MESSAGE-"):
    """From a servers.SmtpSink: (complete, partial) lists of recipients over all its
    transactions, one entry per recipient per transaction. A transaction is complete when
    its content carries the end marker (written by write_campaign_files)."""
    complete, partial = [], []
    for m in sink.messages():
        (complete if marker in m["content"] else partial).extend(m["rcpts"])
    return complete, partial


# ----------------------------------------------------------------------------------------
# a slow SMTP server (aiosmtpd)


class _SlowHandler:
    def __init__(self, owner):
        self.o = owner

    async def handle_DATA(self, server, session, envelope):
        o = self.o
        with o.lock:
            o.started.append(list(envelope.rcpt_tos))
        if o.delay_s:
            await asyncio.sleep(o.delay_s)
        with o.lock:
            o.messages.append({"t": time.monotonic(), "rcpts": list(envelope.rcpt_tos),
                               "content": envelope.original_content})
        return "250 2.0.0 Ok: queued"


class SlowSmtpd:
    """aiosmtpd on addr:port that takes delay_s to answer each end of data (the connection
    count is up to the client; delay_s may be changed while it runs). Records `started`
    (the recipients of each message whose data has arrived, before the wait) and `messages`
    (answered 250: t (monotonic), rcpts, content)."""

    def __init__(self, addr, port, delay_s=1.0):
        self.addr, self.port, self.delay_s = addr, port, delay_s
        self.lock = threading.Lock()
        self.messages = []
        self.started = []
        self.controller = Controller(_SlowHandler(self), hostname=addr, port=port,
                                     ready_timeout=START_GUARD_S, decode_data=False,
                                     server_hostname="mx.slow.test")
        self.controller.start()
        self.running = True

    def received(self):
        with self.lock:
            return [r for m in self.messages for r in m["rcpts"]]

    def stop(self):
        if self.running:
            self.running = False
            self.controller.stop()
