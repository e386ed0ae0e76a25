#!/usr/bin/env bash
# The cluster store's clients, measured in one run against one real etcd on loopback:
# etcd through its gRPC API (StoreEtcd.EtcdStore, what Halyard uses), etcd through its HTTP/JSON
# gateway (the alternative the io-engine issue asked to measure), and the embedded store.
#
#   Benchmarks/store.sh [--operations N] [--scratch DIR] [--skip-build]
#
# etcd runs on core 0 (`taskset -c 0`), `halyard store bench` on core 1; free loopback ports; etcd's
# data directory is a temporary directory (fsync per write, as in production). Prints a table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPS=2000 SCRATCH="$ROOT/.build-bench" SKIP_BUILD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --operations) OPS=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "store.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v etcd > /dev/null || { echo "store.sh: etcd missing (apt-get install etcd-server etcd-client)" >&2; exit 1; }
if [ "$SKIP_BUILD" = 0 ]; then
    swift build -c release --scratch-path "$SCRATCH" --product halyard >&2
fi
BIN="$SCRATCH/release/halyard"
STATE=$(mktemp -d /tmp/halyard-store-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CPORT=$(free_port) PPORT=$(free_port)
cleanup() { STATE="$STATE" bash "$ROOT/scripts/etcd.sh" stop > /dev/null 2>&1 || true; rm -rf "$STATE"; }
trap cleanup EXIT
STATE="$STATE" ETCD_CLIENT_PORT=$CPORT ETCD_PEER_PORT=$PPORT bash "$ROOT/scripts/etcd.sh" start > /dev/null
taskset -pc 0 "$(cat "$STATE/etcd.pid")" > /dev/null
echo "etcd $(etcd --version | head -n 1 | awk '{print $3}') on 127.0.0.1:$CPORT (core 0); client on core 1; $OPS operations per row" >&2
taskset -c 1 "$BIN" store bench --etcd "127.0.0.1:$CPORT" --operations "$OPS" --directory "$STATE/embedded"
