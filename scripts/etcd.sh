#!/bin/bash
# (Adapted from the project harness recipe.) Used by scripts/test to give the unit tests a real etcd
# (HALYARD_TEST_ETCD) and by developers: `scripts/etcd.sh start|stop|status`.
# Start a single-node etcd on loopback only, in the background; wait until it
# is healthy; print its PID on stdout (last line).
#
# usage: scripts/etcd.sh [start]     start (default)
#        scripts/etcd.sh stop        stop the one started with the same STATE dir (by its PID)
#        scripts/etcd.sh status
# env:   ETCD_CLIENT_PORT (2379)  ETCD_PEER_PORT (2380)  ETCD_NAME (harness)
#        STATE=/tmp/etcd-harness  (pid file, log; data dir STATE/data unless ETCD_DATA)
#        ETCD_DATA=...            data dir (default STATE/data, wiped on start unless KEEP_DATA=1)
#        WAIT_S=30                health wait
# needs: apt-get install etcd-server etcd-client   (Debian 12: etcd 3.4.23)
set -euo pipefail

CPORT=${ETCD_CLIENT_PORT:-2379}
PPORT=${ETCD_PEER_PORT:-2380}
NAME=${ETCD_NAME:-harness}
STATE=${STATE:-/tmp/etcd-harness}
DATA=${ETCD_DATA:-$STATE/data}
WAIT_S=${WAIT_S:-30}
PIDF=$STATE/etcd.pid
LOGF=$STATE/etcd.log
EP=http://127.0.0.1:$CPORT

running_pid() {
    local p
    p=$(cat "$PIDF" 2>/dev/null) || return 1
    [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = etcd ] && echo "$p"
}

case "${1:-start}" in
stop)
    if p=$(running_pid); then
        kill "$p"
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -9 "$p"
        echo "stopped etcd pid $p"
    else
        echo "no etcd running from $PIDF"
    fi
    rm -f "$PIDF"
    exit 0 ;;
status)
    if p=$(running_pid); then
        echo "etcd pid $p"; ETCDCTL_API=3 etcdctl --endpoints="$EP" endpoint health
    else
        echo "not running"; exit 1
    fi
    exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

command -v etcd >/dev/null || { echo "etcd missing: apt-get install etcd-server etcd-client" >&2; exit 1; }
if p=$(running_pid); then echo "already running (pid $p)" >&2; echo "$p"; exit 0; fi
if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "^127\.0\.0\.1:($CPORT|$PPORT)$"; then
    echo "port $CPORT or $PPORT on 127.0.0.1 already in use" >&2; exit 1
fi

mkdir -p "$STATE"
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$DATA"
mkdir -p "$DATA"; chmod 700 "$DATA"

# env -u: Debian's /etc/default/etcd style ETCD_* variables would override flags
# (etcd reads ETCD_<FLAG> from the environment); start from a clean slate.
for v in $(env | sed -n 's/^\(ETCD_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
CMD=(etcd --name "$NAME" --data-dir "$DATA"
     --listen-client-urls "http://127.0.0.1:$CPORT" --advertise-client-urls "http://127.0.0.1:$CPORT"
     --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT"
     --initial-cluster "$NAME=http://127.0.0.1:$PPORT" --initial-cluster-state new
     --initial-cluster-token "$NAME-token" --logger zap --log-outputs stderr)
echo "${CMD[*]}" > "$STATE/etcd.cmd"
setsid "${CMD[@]}" < /dev/null > "$LOGF" 2>&1 &
PID=$!
echo "$PID" > "$PIDF"

t0=$SECONDS
until ETCDCTL_API=3 etcdctl --endpoints="$EP" --dial-timeout=1s endpoint health >/dev/null 2>&1; do
    if ! kill -0 "$PID" 2>/dev/null; then echo "etcd exited; log $LOGF:" >&2; tail -n 20 "$LOGF" >&2; rm -f "$PIDF"; exit 1; fi
    if [ $((SECONDS - t0)) -ge "$WAIT_S" ]; then echo "etcd not healthy after ${WAIT_S}s; killing $PID" >&2; kill "$PID"; rm -f "$PIDF"; exit 1; fi
    sleep 0.2
done
echo "etcd healthy at $EP (peer 127.0.0.1:$PPORT) data=$DATA log=$LOGF after $((SECONDS - t0))s" >&2
echo "$PID"
