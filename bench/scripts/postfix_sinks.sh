#!/bin/sh
# bench/scripts/postfix_sinks.sh — start/stop N Postfix smtp-sink processes on loopback
# (127.0.1.1 .. 127.0.1.N, one port) as a reference destination for comparison runs against
# bench_sink. Loopback only.
#
#   postfix_sinks.sh start N PORT [extra smtp-sink options...]
#   postfix_sinks.sh stop
#   postfix_sinks.sh status
#
# Environment:
#   PIDFILE    where the pids go (default /tmp/salvo-postfix-sinks.pids)
#   LOGDIR     per-sink stdout/stderr (default /tmp/salvo-postfix-sinks)
#   SINK_USER  user smtp-sink switches to after binding; required when run as root (nobody)
#   MAX_CONC   smtp-sink -m: simultaneous connections per sink (default 1000)
#   BACKLOG    listen backlog (default 1000)
#   COUNTERS=1 add -c (running counters on stdout -> LOGDIR/sink-K.log; costs a write per
#              session end, so leave it off when measuring CPU)
#   SMTP_SINK  binary (default /usr/sbin/smtp-sink)
set -eu

PIDFILE=${PIDFILE:-/tmp/salvo-postfix-sinks.pids}
LOGDIR=${LOGDIR:-/tmp/salvo-postfix-sinks}
SINK_USER=${SINK_USER:-nobody}
MAX_CONC=${MAX_CONC:-1000}
BACKLOG=${BACKLOG:-1000}
COUNTERS=${COUNTERS:-0}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

is_smtp_sink() { # pid -> true when it is still one of ours
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "smtp-sink" ]
}

start() {
    [ $# -ge 2 ] || usage
    n=$1 port=$2
    shift 2
    case $n in ''|*[!0-9]*) echo "N must be a number" >&2; exit 2;; esac
    case $port in ''|*[!0-9]*) echo "PORT must be a number" >&2; exit 2;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 254 ] || { echo "N must be 1..254" >&2; exit 2; }
    [ -x "$SMTP_SINK" ] || { echo "$SMTP_SINK not found (apt-get install postfix)" >&2; exit 1; }
    if [ -s "$PIDFILE" ]; then
        echo "$PIDFILE exists: run '$0 stop' first" >&2
        exit 1
    fi
    mkdir -p "$LOGDIR"
    set -- -4 -m "$MAX_CONC" "$@"
    [ "$COUNTERS" = 1 ] && set -- -c "$@"
    [ "$(id -u)" = 0 ] && set -- -u "$SINK_USER" "$@"
    : > "$PIDFILE"
    k=1
    while [ "$k" -le "$n" ]; do
        "$SMTP_SINK" "$@" "127.0.1.$k:$port" "$BACKLOG" > "$LOGDIR/sink-$k.log" 2>&1 &
        echo $! >> "$PIDFILE"
        k=$((k + 1))
    done
    sleep 0.3
    bad=0
    for pid in $(cat "$PIDFILE"); do
        is_smtp_sink "$pid" || bad=$((bad + 1))
    done
    if [ "$bad" -gt 0 ]; then
        echo "$bad smtp-sink process(es) exited at once; see $LOGDIR/" >&2
        stop
        exit 1
    fi
    echo "started $n smtp-sink on 127.0.1.1-$n:$port; pids in $PIDFILE"
}

stop() {
    [ -s "$PIDFILE" ] || { echo "no $PIDFILE: nothing to stop"; return 0; }
    for pid in $(cat "$PIDFILE"); do
        is_smtp_sink "$pid" && kill -TERM "$pid" 2>/dev/null || true
    done
    i=0
    while [ "$i" -lt 20 ]; do
        alive=0
        for pid in $(cat "$PIDFILE"); do
            is_smtp_sink "$pid" && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
        i=$((i + 1))
    done
    for pid in $(cat "$PIDFILE"); do
        is_smtp_sink "$pid" && kill -KILL "$pid" 2>/dev/null || true
    done
    echo "stopped $(wc -l < "$PIDFILE") smtp-sink process(es)"
    rm -f "$PIDFILE"
}

status() {
    [ -s "$PIDFILE" ] || { echo "not running (no $PIDFILE)"; return 1; }
    for pid in $(cat "$PIDFILE"); do
        if is_smtp_sink "$pid"; then
            echo "$pid running: $(tr '\0' ' ' < "/proc/$pid/cmdline")"
        else
            echo "$pid gone"
        fi
    done
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
    start) start "$@" ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
