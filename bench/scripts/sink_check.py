#!/usr/bin/python3
"""Protocol self-check for bench_sink: starts it on spare loopback addresses, drives it with
raw sockets (pipelining, lines and CRLF.CRLF split across writes, BDAT, errors, long lines,
a few thousand concurrent connections, --max-messages) and compares the JSON counts.

usage: sink_check.py [path/to/bench_sink]    (default: build-rel/bench_sink)
Exit status 0 when every check passed.
"""
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build-rel", "bench_sink")
PORT = 2599
ADDRS = ["127.0.3.1", "127.0.3.2"]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


class Client:
    def __init__(self, addr, src=None):
        self.s = socket.create_connection((addr, PORT), timeout=5,
                                          source_address=(src, 0) if src else None)
        self.buf = b""

    def send(self, data, pieces=1, pause=0.0):
        """Writes data in `pieces` separate writes (TCP_NODELAY so they are separate reads)."""
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            self.s.sendall(data[i:i + step])
            if pause:
                time.sleep(pause)

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("connection closed; have %r" % self.buf)
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def codes(self, n):
        return [self.reply()[0] for _ in range(n)]

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = tempfile.mktemp(prefix="sink-check-", suffix=".json")
    args = [SINK, "--listen-range", "127.0.3.1-2:%d" % PORT, "--chunking",
            "--reject-rcpt-pattern", "reject", "--stats-file", stats]
    errlog = tempfile.TemporaryFile()
    p = subprocess.Popen(args, stderr=errlog)
    time.sleep(0.3)
    expect_msgs = 0
    expect_rcpts = 0
    try:
        # 1. fully pipelined transaction, including the body and the next commands
        c = Client(ADDRS[0], "127.0.0.21")
        check(c.reply()[0] == 220, "greeting 220")
        c.send(b"EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<reject@y>\r\n"
               b"RCPT TO:<c@y>\r\nDATA\r\n")
        code, lines = c.reply()
        lines = [l[4:] for l in lines]
        check(code == 250 and "PIPELINING" in lines and "CHUNKING" in lines
              and "8BITMIME" in lines and "ENHANCEDSTATUSCODES" in lines
              and "SMTPUTF8" in lines[-1] and any(l.startswith("SIZE ") for l in lines),
              "EHLO advertises PIPELINING 8BITMIME SIZE ENHANCEDSTATUSCODES CHUNKING SMTPUTF8")
        check(c.codes(5) == [250, 250, 550, 250, 354], "pipelined MAIL/RCPT/RCPT(rejected)/RCPT/DATA")
        c.send(b"Subject: x\r\n\r\n..stuffed\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n")
        r = c.reply()
        check(r[0] == 250 and "queued as" in r[1][0], "end of data -> 250 queued as")
        check(c.codes(3) == [250, 250, 354], "commands pipelined after the dot")
        expect_msgs += 1
        expect_rcpts += 2
        # 2. end-of-data split at every awkward place, one byte per write
        c.send(b"line1\r\n.\r\n", pieces=10, pause=0.002)
        check(c.reply()[0] == 250, "CRLF.CRLF split byte by byte across reads")
        expect_msgs += 1
        expect_rcpts += 1
        # 3. command line split across reads
        c.send(b"MA", 1)
        time.sleep(0.02)
        c.send(b"IL FROM:<a@x>\r", 1)
        time.sleep(0.02)
        c.send(b"\nRCPT TO:<e@y>\r\nRCPT TO:<f@y>\r\nDATA\r\nhi\r\n.\r\n")
        check(c.codes(5)[:4] == [250, 250, 250, 354], "command line split across reads")
        expect_msgs += 1
        expect_rcpts += 2
        # 4. not-quite end markers inside the body
        c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<g@y>\r\nDATA\r\n")
        c.codes(3)
        c.send(b"a\r\n.x\r\n\r.\r\n\n.\n\r\n.\r\r\n.\r\n")
        check(c.reply()[0] == 250, "near-miss end markers do not end the message")
        c.send(b"NOOP\r\n")
        check(c.reply()[0] == 250, "...and the real one does (next command is a command)")
        expect_msgs += 1
        expect_rcpts += 1
        # 5. BDAT
        c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<h@y>\r\nBDAT 10\r\n0123456789BDAT 5 LAST\r\nab", 3, 0.01)
        c.send(b"cde")
        got = [c.reply() for _ in range(4)]
        check([g[0] for g in got] == [250, 250, 250, 250] and "10 octets" in got[2][1][0]
              and "queued as" in got[3][1][0], "BDAT 10 + BDAT 5 LAST")
        c.send(b"BDAT 4 LAST\r\nwxyz")
        check(c.reply()[0] == 503, "BDAT without MAIL consumes the chunk, then 503")
        c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<i@y>\r\nBDAT 0 LAST\r\n")
        check(c.codes(3) == [250, 250, 250], "BDAT 0 LAST")
        expect_msgs += 2
        expect_rcpts += 2
        # 6. sequence errors
        c.send(b"RCPT TO:<x@y>\r\nDATA\r\nMAIL FROM:<a@x>\r\nDATA\r\nRSET\r\nFOO\r\nVRFY x\r\n"
               b"MAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nRSET\r\n")
        check(c.codes(10) == [503, 503, 250, 554, 250, 500, 252, 250, 503, 250],
              "RCPT/DATA without MAIL, DATA without RCPT, unknown command, nested MAIL")
        c.send(b"QUIT\r\n")
        check(c.reply()[0] == 221 and c.closed(), "QUIT -> 221 and close")

        # 7. MAIL before EHLO, HELO works
        c = Client(ADDRS[1], "127.0.0.22")
        c.reply()
        c.send(b"MAIL FROM:<a@x>\r\nHELO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<reject-1@y>\r\n"
               b"DATA\r\nQUIT\r\n")
        check(c.codes(6) == [503, 250, 250, 550, 554, 221], "MAIL before HELO; all RCPTs rejected -> DATA 554")
        # 8. over-long line
        c = Client(ADDRS[1], "127.0.0.22")
        c.reply()
        c.send(b"NOOP " + b"x" * 5000 + b"\r\n", pieces=4, pause=0.01)
        r = c.reply()
        check(r[0] == 500 and c.closed(), "line over 4 KB -> 500 5.5.0 and close")

        # 9. a few thousand concurrent connections, each one pipelined transaction
        n = 3000
        sel = selectors.DefaultSelector()
        socks = []
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.bind(("127.0.0.%d" % (30 + i % 4), 0))
            s.connect_ex((ADDRS[i % 2], PORT))
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, [i, b""])
        script = (b"EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                  b"Subject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        sent = set()
        done = good = 0
        deadline = time.time() + 30
        while done < n and time.time() < deadline:
            for key, _ in sel.select(1):
                s, st = key.fileobj, key.data
                try:
                    d = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                st[1] += d
                if st[0] not in sent and b"220 " in st[1]:
                    s.sendall(script)  # tiny: fits the socket buffer
                    sent.add(st[0])
                if not d:
                    sel.unregister(s)
                    s.close()
                    done += 1
                    if b"221 " in st[1] and b"queued as" in st[1]:
                        good += 1
        check(done == n and good == n, "%d concurrent connections each delivered one message and got 221" % n)
        expect_msgs += n
        expect_rcpts += n

        time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(5)
        errlog.seek(0)
        err = errlog.read().decode(errors="replace")
        check(p.returncode == 0, "sink exited cleanly on SIGTERM (status %s)" % p.returncode)
        if p.returncode != 0 or "ERROR" in err or "runtime error" in err:
            print(err)
    js = json.load(open(stats))
    os.unlink(stats)
    check(js["messages"] == expect_msgs, "JSON messages %d == %d" % (js["messages"], expect_msgs))
    check(js["recipients"] == expect_rcpts, "JSON recipients %d == %d" % (js["recipients"], expect_rcpts))
    check(js["rcpt_rejected"] == 2, "JSON rcpt_rejected == 2")
    check(js["connections_open"] == 0, "all connections closed")
    srcs = {s["ip"]: s for s in js["sources"]}
    check(srcs.get("127.0.0.21", {}).get("messages") == 6, "per-source count for 127.0.0.21")
    check(all(srcs.get("127.0.0.%d" % k, {}).get("messages") == n // 4 for k in range(30, 34)),
          "per-source counts for the 4 bulk source IPs")
    pairs = {(p["listen"], p["source"]): p["messages"] for p in js["pairs"]}
    check(pairs.get(("127.0.3.2:%d" % PORT, "127.0.0.31")) == n // 4,
          "per (listen, source) pair count")
    lst = {l["addr"]: l["messages"] for l in js["listen"]}
    check(lst.get("127.0.3.1:%d" % PORT) == 6 + n // 2, "per-listen count")

    # 10. --max-messages: exits by itself after N, the Nth client still gets its 250
    p = subprocess.Popen([SINK, "--listen", "127.0.3.1:%d" % PORT, "--max-messages", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    c = Client(ADDRS[0])
    c.reply()
    c.send(b"EHLO me\r\n" + b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n" * 3)
    codes = c.codes(10)
    out, _ = p.communicate(timeout=5)
    check(codes[-1] == 250 and json.loads(out)["messages"] == 3 and p.returncode == 0,
          "--max-messages 3 exits with the JSON summary on stdout")

    print("\n%d check(s) failed" % len(failures) if failures else "\nall checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
