#!/usr/bin/env bash
# Halyard NVMe/TCP benchmark: `halyard nvme perf` against a Halyard target, next to two
# baselines measured in the same run on the same cores: iperf3 bandwidth over loopback and a
# minimal TCP request/response ping-pong of the same message sizes (Benchmarks/pingpong.swift,
# no NVMe logic) as the ceiling of the kernel TCP stack.
#
#   Benchmarks/run.sh                                # local target: halyard nvmf-target --memory 1GiB
#   Benchmarks/run.sh --target HOST:PORT --nqn NQN   # an existing target (its namespace 1 is WRITTEN)
#   options: --time SECONDS (10 per run), --scratch DIR (release build, default .build-bench),
#            --out DIR (JSON results, default <scratch>/bench-results), --skip-build
#
# The target runs on core 0 (`taskset -c 0`), the initiator on core 1 (`taskset -c 1`, one I/O
# queue, one event loop thread); the baselines use the same split. Prints a markdown table.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET="" NQN="" TIME=10 SKIP_BUILD=0
SCRATCH="$ROOT/.build-bench" OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) TARGET=$2; shift 2 ;;
        --nqn) NQN=$2; shift 2 ;;
        --time) TIME=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$TARGET" ] && [ -z "$NQN" ]; then echo "run.sh: --target needs --nqn" >&2; exit 2; fi
OUT=${OUT:-$SCRATCH/bench-results}
mkdir -p "$OUT"
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift > /dev/null && export PATH="/opt/swift/usr/bin:$PATH"
say() { printf '%s\n' "$*" >&2; }

# ---- tools -------------------------------------------------------------------------------------
if ! command -v iperf3 > /dev/null; then
    say "== installing iperf3"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 > "$OUT/apt.log" 2>&1 \
        || { $SUDO apt-get update -qq > /dev/null 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 > "$OUT/apt.log" 2>&1; } \
        || { say "cannot install iperf3 (see $OUT/apt.log)"; exit 1; }
fi
if [ "$SKIP_BUILD" = 0 ]; then
    say "== swift build -c release (scratch $SCRATCH)"
    (cd "$ROOT" && swift build -c release --product halyard --scratch-path "$SCRATCH") > "$OUT/build.log" 2>&1 \
        || { tail -n 30 "$OUT/build.log" >&2; exit 1; }
    mkdir -p "$SCRATCH/bench-tools"
    swiftc -O "$ROOT/Benchmarks/pingpong.swift" -o "$SCRATCH/bench-tools/pingpong" > "$OUT/pingpong-build.log" 2>&1 \
        || { cat "$OUT/pingpong-build.log" >&2; exit 1; }
fi
BIN="$(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/halyard"
PINGPONG="$SCRATCH/bench-tools/pingpong"
[ -x "$BIN" ] && [ -x "$PINGPONG" ] || { say "missing $BIN or $PINGPONG (run without --skip-build)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {   # wait_port PORT: until something listens on 127.0.0.1:PORT
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
        sleep 0.1
    done
    say "nothing listens on 127.0.0.1:$1"; return 1
}
# CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }
TICK=$(getconf CLK_TCK)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT

# ---- target ------------------------------------------------------------------------------------
export HALYARD_STATE_DIR="$SCRATCH/bench-state"   # one stable host identity for every run
if [ -z "$TARGET" ]; then
    NQN="nqn.2026-11.io.halyard:bench"
    PORT=$(free_port)
    say "== target: taskset -c 0 halyard nvmf-target --memory 1GiB on 127.0.0.1:$PORT"
    taskset -c 0 "$BIN" nvmf-target --listen "127.0.0.1:$PORT" --nqn "$NQN" --memory 1GiB --log-level warning \
        > "$OUT/target.log" 2>&1 &
    TPID=$!
    PIDS+=("$TPID")
    wait_port "$PORT"
    HOST=127.0.0.1
    # Fill the namespace so reads return written data (a fresh RAM namespace is sparse).
    say "== prefill 1 GiB"
    taskset -c 1 "$BIN" nvme write -a "$HOST" -s "$PORT" -n "$NQN" --lba 0 --blocks $((1 << 21)) --pattern 0x5a > /dev/null
else
    TPID=""
    HOST=${TARGET%:*} PORT=${TARGET##*:}
    HOST=${HOST#[}; HOST=${HOST%]}
fi

# ---- runs --------------------------------------------------------------------------------------
# name | perf arguments | ping-pong request bytes | response bytes | depth
# Ping-pong sizes mirror the PDUs: a 72-byte command capsule (8 header + 64 SQE), C2HData with a
# 24-byte header before the data, a 24-byte response capsule; a 4K write goes in-capsule.
CASES=(
    "4K randread QD1|-w randread -o 4096 -q 1|72|4120|1"
    "4K randread QD32|-w randread -o 4096 -q 32|72|4120|32"
    "4K randwrite QD32|-w randwrite -o 4096 -q 32|4168|24|32"
    "128K seqread QD8|-w read -o 131072 -q 8|72|131096|8"
)
i=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name args req resp qd <<< "$c"
    i=$((i + 1))
    say "== [$i] $name: halyard nvme perf $args -t $TIME"
    before=$([ -n "$TPID" ] && cpu_ticks "$TPID" || echo 0)
    # shellcheck disable=SC2086
    taskset -c 1 "$BIN" nvme perf -a "$HOST" -s "$PORT" -n "$NQN" $args -t "$TIME" --warmup 1 \
        --nr-io-queues 1 --threads 1 --json > "$OUT/perf-$i.json" || say "   (perf exited $?)"
    after=$([ -n "$TPID" ] && cpu_ticks "$TPID" || echo 0)
    echo "$((after - before))" > "$OUT/perf-$i.target-ticks"
done

say "== baseline: iperf3 loopback ($TIME s, server core 0, client core 1)"
IPORT=$(free_port)
# Not `-s -1`: the one-off server would take wait_port's probe for its one client.
taskset -c 0 iperf3 -s -p "$IPORT" > "$OUT/iperf3-server.log" 2>&1 &
PIDS+=($!)
wait_port "$IPORT" || true
sleep 0.5
taskset -c 1 iperf3 -c 127.0.0.1 -p "$IPORT" -t "$TIME" -J > "$OUT/iperf3.json" || say "   (iperf3 exited $?)"

say "== baseline: TCP ping-pong (server core 0, client core 1)"
PPORT=$(free_port)
taskset -c 0 "$PINGPONG" server --port "$PPORT" &
SPID=$!
PIDS+=("$SPID")
wait_port "$PPORT"
i=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name args req resp qd <<< "$c"
    i=$((i + 1))
    say "   [$i] $name: request $req B, response $resp B, depth $qd"
    before=$(cpu_ticks "$SPID")
    taskset -c 1 "$PINGPONG" client --port "$PPORT" --req "$req" --resp "$resp" --qd "$qd" --time "$TIME" --warmup 1 \
        > "$OUT/pingpong-$i.json"
    after=$(cpu_ticks "$SPID")
    echo "$((after - before))" > "$OUT/pingpong-$i.target-ticks"
done

# ---- table -------------------------------------------------------------------------------------
NAMES=$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f1)
python3 - "$OUT" "$TIME" "$TICK" <<EOF
import json, sys, os
out, t, tick = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
names = """$NAMES""".strip().split("\n")
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
def ticks(p):
    try:
        with open(p) as f: return int(f.read().strip())
    except Exception: return 0
print("| workload | stack | IOPS | MiB/s | mean µs | p50 µs | p99 µs | p99.9 µs | max µs | client CPU µs/IO | server CPU µs/IO | errors |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
def row(name, stack, r, errors, server_ticks):
    if r is None:
        print(f"| {name} | {stack} | failed | | | | | | | | | |"); return
    # The server's CPU covers warmup (1 s) + measured time: scale the measured I/Os to match.
    total_ios = r["ios"] * (t + 1) / t
    server = f"{server_ticks / tick * 1e6 / total_ios:.1f}" if server_ticks and total_ios else "-"
    print(f"| {name} | {stack} | {r['iops']:,.0f} | {r['mib_per_s']:,.1f} | {r['lat_mean_us']:.1f} | {r['lat_p50_us']:.1f} | "
          f"{r['lat_p99_us']:.1f} | {r['lat_p99_9_us']:.1f} | {r['lat_max_us']:.1f} | {r.get('cpu_us_per_io', 0):.1f} | {server} | {errors} |")
for i, name in enumerate(names, 1):
    perf = load(os.path.join(out, f"perf-{i}.json"))
    pp = load(os.path.join(out, f"pingpong-{i}.json"))
    row(name, "halyard nvme perf", perf, perf["errors"] if perf else "", ticks(os.path.join(out, f"perf-{i}.target-ticks")))
    row(name, "TCP ping-pong", pp, "", ticks(os.path.join(out, f"pingpong-{i}.target-ticks")))
ip = load(os.path.join(out, "iperf3.json"))
if ip and "end" in ip:
    bps = ip["end"]["sum_received"]["bits_per_second"]
    print()
    print(f"iperf3 loopback, 1 stream, {t:g} s: {bps / 1e9:.2f} Gbit/s = {bps / 8 / 1048576:,.0f} MiB/s")
else:
    print(); print("iperf3: failed")
EOF
