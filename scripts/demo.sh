#!/usr/bin/env bash
# Salvo end to end on one machine: a private redis-server, local destination servers (DNS
# by dnsmasq; accepting sinks, a greylisting server, a server that rejects unknown users),
# a campaign of a few thousand recipients across many local domains, delivered by `salvo run`
# with live progress and a summary of outcomes. Everything listens on 127.0.0.0/8 only and
# is stopped at the end. Usage: scripts/demo.sh [RECIPIENTS]   (default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-3000}

bash scripts/deps.sh
echo "== building salvo (Release)"
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$(nproc)" --target salvo >/dev/null
SALVO=$ROOT/build-rel/salvo

WORK=$(mktemp -d /tmp/salvo-demo.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "(demo files kept in $WORK)"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); DNS_PORT=$(free_port); MX_PORT=$(free_port)

echo "== private redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no \
    --logfile "$WORK/redis.log" &
PIDS+=($!)

# Destinations: 12 "shop" domains on 4 accepting sinks, 3 greylisting, 3 strict, 1 null MX.
DNS_ARGS=(--no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces --no-resolv
          --no-hosts --conf-file=/dev/null --pid-file= --user=root --local=/test/)
for i in 1 2 3 4; do DNS_ARGS+=(--host-record="mx$i.accept.test,127.0.2.$i"); done
DNS_ARGS+=(--host-record=mx.grey.test,127.0.2.10 --host-record=mx.strict.test,127.0.2.11)
DOMAINS=()
for i in $(seq 1 12); do
    DNS_ARGS+=(--mx-host="shop$i.test,mx$(( (i - 1) % 4 + 1 )).accept.test,10"); DOMAINS+=("shop$i.test")
done
for i in 1 2 3; do
    DNS_ARGS+=(--mx-host="grey$i.test,mx.grey.test,10" --mx-host="corp$i.test,mx.strict.test,10")
    DOMAINS+=("grey$i.test" "corp$i.test")
done
DNS_ARGS+=(--dns-rr=nomail.test,15,000000)
echo "== dnsmasq on 127.0.0.1:$DNS_PORT serving MX records for ${#DOMAINS[@]} domains (+ a null MX)"
dnsmasq "${DNS_ARGS[@]}" >"$WORK/dnsmasq.log" 2>&1 &
PIDS+=($!)

echo "== destination servers on 127.0.2.x:$MX_PORT (4 smtp-sink, greylisting, strict)"
for i in 1 2 3 4; do
    smtp-sink -u nobody "127.0.2.$i:$MX_PORT" 256 >/dev/null 2>&1 &
    PIDS+=($!)
done
/usr/bin/python3 scripts/demo/servers.py "$MX_PORT" 127.0.2.10 127.0.2.11 >"$WORK/servers.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && grep -q ready "$WORK/servers.log" && break
    sleep 0.2
done

echo "== campaign: $N recipients (some unknown users, some on a null-MX domain, 3 malformed rows)"
/usr/bin/python3 - "$N" "$WORK/recipients.csv" "${DOMAINS[@]}" <<'PY'
import csv, sys
n, path, domains = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["email", "first_name", "plan"])
    for i in range(n - 3):
        d = domains[i % len(domains)]
        local = ("unknown%d" % i) if d.startswith("corp") and (i // len(domains)) % 4 == 0 else "user%d" % i
        if i % 500 == 499:
            d = "nomail.test"
        w.writerow(["%s@%s" % (local, d), "Reader %d" % i, ["free", "pro", "team"][i % 3]])
    for bad in ("not-an-address", "two@@at.test", "spaces in@shop1.test"):
        w.writerow([bad, "Broken", "free"])
PY
cat >"$WORK/body.txt" <<'TXT'
Hello {{first_name}},

Thanks for using the {{plan}} plan. This message was delivered by Salvo.
TXT
"$SALVO" inject --redis "redis://127.0.0.1:$REDIS_PORT" --quiet --campaign demo \
    --from news@sender.test --from-header 'Salvo Demo <news@sender.test>' \
    --subject 'Your {{plan}} plan, {{first_name}}' --text "$WORK/body.txt" \
    --list-unsubscribe '<https://sender.test/unsub?u={{email}}>' \
    --recipients "$WORK/recipients.csv" >"$WORK/enqueued.txt"
echo "   enqueued $(cat "$WORK/enqueued.txt") jobs"

echo "== salvo run (log: $WORK/salvo.log)"
"$SALVO" run --redis "redis://127.0.0.1:$REDIS_PORT" --instance demo-1 \
    --resolver "127.0.0.1:$DNS_PORT" --mx-port "$MX_PORT" --events-file "$WORK/events.jsonl" \
    --set retry.schedule_s=2 --set retry.jitter=0 --set delivery.tls=disabled \
    --set progress_interval_s=5 >"$WORK/salvo.log" 2>&1 &
SALVO_PID=$!
PIDS+=($SALVO_PID)

/usr/bin/python3 scripts/demo/progress.py "$REDIS_PORT" demo "$N" 120
status=$?
kill -TERM "$SALVO_PID" 2>/dev/null || true
wait "$SALVO_PID" 2>/dev/null || true
echo "Events: $(wc -l <"$WORK/events.jsonl") lines in $WORK/events.jsonl and in stream salvo:{p0}:events"
exit $status
