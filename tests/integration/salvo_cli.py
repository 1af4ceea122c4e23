"""Runs the real salvo binary and reads what it printed: the --json records, the -v trace,
the exit status. Every run is checked for sanitizer reports and death by signal, and is
bounded by a hang guard (the guard only stops a hung run; it decides no verdict)."""

import json
import os
import re
import signal
import subprocess

HANG_GUARD_S = 60.0

EXIT_OK, EXIT_BOUNCED, EXIT_USAGE, EXIT_DEFERRED = 0, 1, 64, 75

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "runtime error:")

JSON_FIELDS = ("recipient", "status", "code", "enhanced", "reply", "command", "mx_host",
               "mx_addr", "mx_port", "source_addr", "tls_version", "tls_cipher",
               "tls_verified", "scope", "class")
COMMANDS = ("dns", "connect", "greeting", "ehlo", "helo", "starttls", "tls-handshake", "auth",
            "mail", "rcpt", "data", "end-of-data", "bdat", "rset", "quit", "local")
STATUSES = ("delivered", "deferred", "bounced")
SCOPES = ("recipient", "message", "connection", "host", "domain", "source")
CLASSES = ("temporary", "permanent")

# "[c1] > EHLO x" / "[c1] < 250-..."; whatever precedes the id (a time stamp, a level) is
# not part of the contract and is skipped.
TRACE_RE = re.compile(r"(?:^|\s)\[(c\d+)\] ([<>]) (.*)$")


class SalvoHung(AssertionError):
    pass


class SendResult:
    def __init__(self, args, rc, stdout, stderr):
        self.args, self.rc, self.stdout, self.stderr = args, rc, stdout, stderr
        self.records = []
        self.trace = []     # (connection id, ">" sent | "<" received, line text)
        for line in stderr.splitlines():
            m = TRACE_RE.search(line)
            if m:
                self.trace.append((m.group(1), m.group(2), m.group(3)))

    def __str__(self):
        def tail(s, n=6000):
            return s if len(s) <= n else "...[%d bytes cut]...\n%s" % (len(s) - n, s[-n:])
        return ("\n--- salvo %s\n--- exit status: %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(self.args), self.rc, tail(self.stdout), tail(self.stderr)))

    __repr__ = __str__

    def parse_json(self):
        recs = []
        for n, line in enumerate(self.stdout.splitlines(), 1):
            if not line.strip():
                continue
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                raise AssertionError("stdout line %d is not JSON (%s): %r%s" % (n, e, line, self))
        for r in recs:
            missing = [f for f in JSON_FIELDS if f not in r]
            assert not missing, "record lacks %s: %r%s" % (missing, r, self)
            assert r["status"] in STATUSES, "bad status in %r%s" % (r, self)
            assert r["command"] in COMMANDS, "bad command in %r%s" % (r, self)
            # scope and class describe a failure; a delivered recipient may have null.
            ok_null = (None,) if r["status"] == "delivered" else ()
            assert r["scope"] in SCOPES + ok_null, "bad scope in %r%s" % (r, self)
            assert r["class"] in CLASSES + ok_null, "bad class in %r%s" % (r, self)
            assert r["code"] is None or isinstance(r["code"], int), "bad code %r%s" % (r, self)
            assert isinstance(r["tls_verified"], bool), "bad tls_verified %r%s" % (r, self)
            assert isinstance(r["enhanced"], str) and isinstance(r["reply"], str), \
                "bad enhanced/reply %r%s" % (r, self)
        self.records = recs
        return recs

    def rec(self, rcpt):
        """The one record for this recipient."""
        found = [r for r in self.records if r["recipient"] == rcpt]
        assert len(found) == 1, "expected exactly one record for %s, got %d%s" % (
            rcpt, len(found), self)
        return found[0]

    def sent(self, cid=None):
        return [t for c, d, t in self.trace if d == ">" and (cid is None or c == cid)]

    def connection_ids(self):
        seen = []
        for c, _, _ in self.trace:
            if c not in seen:
                seen.append(c)
        return seen


def run(binary, args, stdin=None, guard_s=HANG_GUARD_S, json_out=None):
    """Runs `binary args...`. stdin: bytes fed on standard input (None: /dev/null).
    json_out: parse stdout as --json records (default: when "--json" is in args)."""
    argv = [binary] + list(args)
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")   # say where, if it ever fires
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else
                            subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=guard_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        res = SendResult([str(a) for a in args], "killed by the hang guard",
                         out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        raise SalvoHung("salvo did not finish within the %.0fs hang guard%s" % (guard_s, res))
    res = SendResult([str(a) for a in args], proc.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"))
    for marker in SANITIZER_MARKERS:
        if marker in res.stderr:
            # Show the report itself first: the full output may be long.
            at = res.stderr.find("==ERROR")
            at = res.stderr.find(marker) if at < 0 else at
            raise AssertionError("sanitizer report (%s) on stderr:\n%s\n%s" % (
                marker, res.stderr[max(0, at - 200):at + 4000], res))
    assert res.rc >= 0, "salvo was killed by signal %d%s" % (-res.rc, res)
    if json_out is None:
        json_out = "--json" in args
    if json_out:
        res.parse_json()
    return res
