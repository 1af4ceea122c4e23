#!/usr/bin/python3
"""Live progress of a demo campaign from Salvo's counters in Redis, then a summary.
Usage: progress.py REDIS_PORT CAMPAIGN TOTAL TIMEOUT_S"""
import json
import sys
import time

import redis

FINAL = ("delivered", "bounced", "expired", "rejected")


def main():
    port, campaign, total, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    key = "salvo:{p0}:stats:campaign:" + campaign
    start = time.time()
    tty = sys.stdout.isatty()
    last_line = ""
    while True:
        s = {k: int(v) for k, v in r.hgetall(key).items()}
        final = sum(s.get(k, 0) for k in FINAL)
        el = time.time() - start
        frac = min(final / total, 1.0) if total else 1.0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        line = (f"[{bar}] {final}/{total} final  delivered {s.get('delivered', 0)}  "
                f"deferred {s.get('deferred', 0)}  bounced {s.get('bounced', 0)}  "
                f"rejected {s.get('rejected', 0)}  {el:5.1f}s")
        if tty:
            print("\r" + line, end="", flush=True)
        elif line != last_line and int(el) % 2 == 0:
            print(line, flush=True)
        last_line = line
        if final >= total:
            break
        if el > timeout:
            print(f"\ntimed out after {timeout:.0f}s", flush=True)
            break
        time.sleep(0.5)
    print()
    s = {k: int(v) for k, v in r.hgetall(key).items()}
    print("\nOutcome summary (campaign %s, %d recipients, %.1f s):" % (campaign, total, time.time() - start))
    for k in ("delivered", "bounced", "expired", "rejected", "deferred"):
        note = " (temporary failures along the way, retried)" if k == "deferred" else ""
        print(f"  {k:10s} {s.get(k, 0):6d}{note}")
    # per-domain view and examples from the events stream
    per = {}
    examples = {}
    for _, fields in r.xrange("salvo:{p0}:events", count=200000):
        e = json.loads(fields["e"])
        if e.get("campaign_id") != campaign:
            continue
        d = per.setdefault(e.get("domain") or "-", {})
        d[e["type"]] = d.get(e["type"], 0) + 1
        examples.setdefault(e["type"], e)
    print("\nBy domain:")
    for dom in sorted(per):
        print("  %-22s %s" % (dom, "  ".join(f"{k} {v}" for k, v in sorted(per[dom].items()))))
    print("\nOne event of each kind:")
    for t, e in sorted(examples.items()):
        print(f"  {t}: {e['recipient']} -> {e.get('smtp_code')} {e.get('enhanced_code') or ''} "
              f"{(e.get('reply') or '')[:60]} (attempt {e['attempt']}, via {e.get('mx_host')})")
    dead = r.xlen("salvo:{p0}:dead")
    print(f"\nDead-letter stream: {dead} malformed job(s) (salvo:{{p0}}:dead)")
    sys.exit(0 if sum(s.get(k, 0) for k in FINAL) >= total else 1)


if __name__ == "__main__":
    main()
