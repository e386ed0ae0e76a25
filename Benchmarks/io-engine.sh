#!/usr/bin/env bash
# Halyard io-engine benchmark (issue 5 §7): replica I/O through `halyard io-engine` (pool layer:
# extent map, thin replica device, per-replica metering) against the bare `halyard nvmf-target
# --file` on a file namespace of the same size and block size, in the same run, same cores, same
# initiator (`halyard nvme perf`); then the io-engine's idle CPU and its RSS with 10 shared replicas.
#
#   Benchmarks/io-engine.sh                      # release build in .build-bench, 10 s per run
#   options: --time SECONDS (10 per run), --idle SECONDS (30), --scratch DIR (release build,
#            default .build-bench), --out DIR (JSON results, default <scratch>/bench-results/io-engine),
#            --skip-build, --store etcd|embedded (default etcd when `etcd` is installed),
#            --bin PATH (measure this halyard binary; no build)
#
# Both targets run on core 0 (`taskset -c 0`; every thread they start inherits it), the initiator
# on core 1 (one I/O queue, one event-loop thread), as in Benchmarks/run.sh. Both namespaces are
# 1 GiB with 4096-byte blocks, on sparse files in the same directory, and are filled (1 GiB of
# 0x5a, timed: on the replica that is also the first-write allocation of every extent) before the
# runs, so reads return written data and writes overwrite allocated extents. The cases alternate
# bare / io-engine so drift on this noisy VM hits both alike. Prints markdown tables; the figures
# that matter are the ratios io-engine / bare of the same run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TIME=10 IDLE=30 SKIP_BUILD=0 STORE="" BIN=""
SCRATCH="$ROOT/.build-bench" OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --time) TIME=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --store) STORE=$2; shift 2 ;;
        --bin) BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); SKIP_BUILD=1; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "io-engine.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$STORE" in
    "") if command -v etcd > /dev/null && command -v etcdctl > /dev/null; then STORE=etcd; else STORE=embedded; fi ;;
    etcd|embedded) ;;
    *) echo "io-engine.sh: --store etcd|embedded" >&2; exit 2 ;;
esac
OUT=${OUT:-$SCRATCH/bench-results/io-engine}
mkdir -p "$OUT"
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift > /dev/null && export PATH="/opt/swift/usr/bin:$PATH"
say() { printf '%s\n' "$*" >&2; }

if [ "$SKIP_BUILD" = 0 ]; then
    say "== swift build -c release --product halyard (scratch $SCRATCH)"
    (cd "$ROOT" && swift build -c release --product halyard --scratch-path "$SCRATCH") > "$OUT/build.log" 2>&1 \
        || { tail -n 30 "$OUT/build.log" >&2; exit 1; }
fi
[ -n "$BIN" ] || BIN="$(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/halyard"
[ -x "$BIN" ] || { say "missing $BIN (run without --skip-build)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {   # wait_port PORT: until something listens on 127.0.0.1:PORT
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
        sleep 0.1
    done
    say "nothing listens on 127.0.0.1:$1"; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }   # user + system, clock ticks
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2> /dev/null || echo 0; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2> /dev/null || echo 0; }
TICK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-bench-ioe.XXXXXX")
PIDS=() ETCD_STATE=
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
    wait 2> /dev/null || true
    [ -n "$ETCD_STATE" ] && STATE="$ETCD_STATE" bash "$ROOT/scripts/etcd.sh" stop > /dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export HALYARD_STATE_DIR="$SCRATCH/bench-state"   # one stable host identity for every run (as run.sh)

# ---- store ---------------------------------------------------------------------------------------
STORE_ARG=(--store embedded)
if [ "$STORE" = etcd ]; then
    EC=$(free_port) EP=$(free_port)
    ETCD_STATE=$WORK/etcd
    say "== etcd on 127.0.0.1:$EC (core 1)"
    STATE="$ETCD_STATE" ETCD_CLIENT_PORT=$EC ETCD_PEER_PORT=$EP ETCD_NAME=halyard-bench \
        taskset -c 1 bash "$ROOT/scripts/etcd.sh" start > "$OUT/etcd-start.log" 2>&1 \
        || { cat "$OUT/etcd-start.log" >&2; exit 1; }
    STORE_ARG=(--store "etcd://127.0.0.1:$EC")
fi

# ---- the two targets ---------------------------------------------------------------------------------
BARE_NQN=nqn.2026-11.io.halyard:bench-bare
BP=$(free_port)
say "== bare: taskset -c 0 halyard nvmf-target --file (1 GiB, 4096-byte blocks) on 127.0.0.1:$BP"
taskset -c 0 "$BIN" nvmf-target --listen "127.0.0.1:$BP" --nqn "$BARE_NQN" --file "$WORK/bare.img" --size 1GiB \
    --block-size 4096 --log-level warning > "$OUT/bare.log" 2>&1 &
BPID=$!; PIDS+=("$BPID")
wait_port "$BP"

start_engine() {   # start_engine NAME POOLSIZE: io-engine on core 0 with one pool; sets EPID IP GP MP
    local name=$1 size=$2
    IP=$(free_port) GP=$(free_port) MP=$(free_port)
    mkdir -p "$WORK/$name"
    say "== io-engine $name: taskset -c 0 halyard io-engine ${STORE_ARG[*]} --create-pool $name:$WORK/$name/pool.img:$size (nvmf $IP, grpc $GP, metrics $MP)"
    taskset -c 0 "$BIN" io-engine --node "$name" --nvmf "127.0.0.1:$IP" --grpc "127.0.0.1:$GP" --metrics "127.0.0.1:$MP" \
        --state-dir "$WORK/$name/state" "${STORE_ARG[@]}" --create-pool "$name:$WORK/$name/pool.img:$size" \
        < /dev/null > "$OUT/$name.out" 2> "$OUT/$name.log" &
    EPID=$!; PIDS+=("$EPID")
    for _ in $(seq 600); do
        grep -q '^ready' "$OUT/$name.out" 2> /dev/null && break
        kill -0 "$EPID" 2> /dev/null || { say "io-engine $name exited:"; tail -n 20 "$OUT/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^ready' "$OUT/$name.out" || { say "io-engine $name: no ready line in 60 s"; tail -n 20 "$OUT/$name.log" >&2; exit 1; }
    wait_port "$IP"; wait_port "$GP"
}
ctl() { taskset -c 1 "$BIN" "$@" --io-engine "127.0.0.1:$GP"; }   # the CLI, on the initiator's core
metric() {   # metric NAME [LABELMATCH]: first sample value from the current io-engine's /metrics
    curl -sf --max-time 10 "http://127.0.0.1:$MP/metrics" | awk -v n="$1" -v l="${2:-}" '
        $1 !~ /^#/ { name = $1; sub(/\{.*/, "", name); if (name == n && index($1, l) > 0) { print $NF; exit } }'
}

start_engine bench 2GiB
RUUID=$(cat /proc/sys/kernel/random/uuid)
ctl replica create --pool bench --size 1GiB --uuid "$RUUID" --share --json > "$OUT/replica.json"
REPL_NQN=nqn.2026-11.io.halyard:replica:$RUUID

# ---- fill both (timed) -----------------------------------------------------------------------------------
fill() {   # fill PORT NQN: 1 GiB of 0x5a from LBA 0; prints seconds
    local t0 t1
    t0=$(date +%s.%N)
    taskset -c 1 "$BIN" nvme write -a 127.0.0.1 -s "$1" -n "$2" --lba 0 --blocks 262144 --pattern 0x5a > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
say "== fill 1 GiB: bare"
FILL_BARE=$(fill "$BP" "$BARE_NQN")
say "== fill 1 GiB: replica (allocates every extent)"
FILL_REPL=$(fill "$IP" "$REPL_NQN")
ALLOC=$(ctl replica get "$RUUID" --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("allocatedBytes", 0)))' 2> /dev/null || echo "?")
echo "$FILL_BARE $FILL_REPL $ALLOC" > "$OUT/fill.txt"

# ---- the runs: bare and io-engine alternating --------------------------------------------------------------
CASES=(
    "4K randread QD1|-w randread -o 4096 -q 1"
    "4K randread QD32|-w randread -o 4096 -q 32"
    "4K randwrite QD1|-w randwrite -o 4096 -q 1"
    "4K randwrite QD32|-w randwrite -o 4096 -q 32"
    "128K seqread QD8|-w read -o 131072 -q 8"
)
perf() {   # perf TAG PORT NQN PID ARGS: one run, JSON to perf-TAG.json, target ticks to perf-TAG.ticks
    local tag=$1 port=$2 nqn=$3 pid=$4 before after; shift 4
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2068
    taskset -c 1 "$BIN" nvme perf -a 127.0.0.1 -s "$port" -n "$nqn" $@ -t "$TIME" --warmup 1 \
        --nr-io-queues 1 --threads 1 --json > "$OUT/perf-$tag.json" || say "   (perf exited $?)"
    after=$(cpu_ticks "$pid")
    echo "$((after - before))" > "$OUT/perf-$tag.ticks"
}
i=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name args <<< "$c"
    i=$((i + 1))
    say "== [$i] $name: bare, then io-engine (halyard nvme perf $args -t $TIME)"
    perf "$i-bare" "$BP" "$BARE_NQN" "$BPID" $args
    perf "$i-ioe" "$IP" "$REPL_NQN" "$EPID" $args
done
RSS_BENCH=$(rss_kib "$EPID") RSS_BARE=$(rss_kib "$BPID")
echo "replica ops after the runs: reads $(metric halyard_replica_read_ops_total "replica=\"$RUUID\"") writes $(metric halyard_replica_write_ops_total "replica=\"$RUUID\"")" > "$OUT/replica-ops.txt"
say "   $(cat "$OUT/replica-ops.txt")"
say "== SIGTERM the measured io-engine"
kill -TERM "$EPID"; set +e; wait "$EPID"; BENCH_EXIT=$?; set -e

# ---- a fresh io-engine: RSS with 10 shared replicas, idle CPU ----------------------------------------------
start_engine idle 16GiB
IDLE_PID=$EPID
sleep 2
RSS0=$(rss_kib "$IDLE_PID")
say "== 10 shared 1 GiB thin replicas"
for _ in $(seq 10); do ctl replica create --pool idle --size 1GiB --share --json > /dev/null; done
NREPL=$(ctl replica list --json | python3 -c '
import json, sys
def objs(x):
    if isinstance(x, dict):
        yield x
        for v in x.values(): yield from objs(v)
    elif isinstance(x, list):
        for v in x: yield from objs(v)
print(sum(1 for o in objs(json.load(sys.stdin)) if "poolName" in o))')
sleep 5
RSS10=$(rss_kib "$IDLE_PID") RSS10_METRIC=$(metric halyard_process_resident_memory_bytes) THREADS=$(threads "$IDLE_PID")
say "== idle ${IDLE}s (io-engine with $NREPL replicas and the bare target, both untouched)"
t0=$(cpu_ticks "$IDLE_PID") b0=$(cpu_ticks "$BPID") m0=$(metric halyard_process_cpu_seconds_total) s0=$(date +%s.%N)
sleep "$IDLE"
t1=$(cpu_ticks "$IDLE_PID") b1=$(cpu_ticks "$BPID") m1=$(metric halyard_process_cpu_seconds_total) s1=$(date +%s.%N)
kill -TERM "$IDLE_PID"; set +e; wait "$IDLE_PID"; IDLE_EXIT=$?; set -e
cat > "$OUT/idle.json" <<EOF
{"store": "$STORE", "replicas": $NREPL, "idle_s": $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }'),
 "ioe_ticks": $((t1 - t0)), "bare_ticks": $((b1 - b0)), "metric_cpu_s_before": "${m0:-}", "metric_cpu_s_after": "${m1:-}",
 "rss_kib_0_replicas": $RSS0, "rss_kib_10_replicas": $RSS10, "rss_metric_bytes_10_replicas": "${RSS10_METRIC:-}",
 "threads": $THREADS, "rss_kib_bench_after_runs": $RSS_BENCH, "rss_kib_bare_after_runs": $RSS_BARE,
 "exit_bench": $BENCH_EXIT, "exit_idle": $IDLE_EXIT}
EOF

# ---- tables ----------------------------------------------------------------------------------------------
NAMES=$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f1)
python3 - "$OUT" "$TIME" "$TICK" "$NAMES" <<'PY'
import json, os, sys
out, t, tick, names = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].strip().split("\n")
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
def ticks(p):
    try:
        with open(p) as f: return int(f.read().strip())
    except Exception: return 0
print("| workload | target | IOPS | MiB/s | mean µs | p50 µs | p99 µs | p99.9 µs | client CPU µs/IO | target CPU µs/IO | errors |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
ratios = []
for i, name in enumerate(names, 1):
    rows = {}
    for tag, label in (("bare", "bare nvmf-target --file"), ("ioe", "io-engine replica")):
        r = load(os.path.join(out, f"perf-{i}-{tag}.json"))
        rows[tag] = r
        if r is None:
            print(f"| {name} | {label} | failed | | | | | | | | |"); continue
        total = r["ios"] * (t + 1) / t          # target CPU covers warmup + measured time
        k = ticks(os.path.join(out, f"perf-{i}-{tag}.ticks"))
        srv = f"{k / tick * 1e6 / total:.1f}" if k and total else "-"
        print(f"| {name} | {label} | {r['iops']:,.0f} | {r['mib_per_s']:,.1f} | {r['lat_mean_us']:.1f} | {r['lat_p50_us']:.1f} | "
              f"{r['lat_p99_us']:.1f} | {r['lat_p99_9_us']:.1f} | {r.get('cpu_us_per_io', 0):.1f} | {srv} | {r['errors']} |")
        rows[tag + "_srv"] = k / tick * 1e6 / total if k and total else None
    b, e = rows.get("bare"), rows.get("ioe")
    if b and e and b["iops"]:
        cpu = (f"{rows['ioe_srv'] / rows['bare_srv']:.2f}" if rows.get("ioe_srv") and rows.get("bare_srv") else "-")
        ratios.append(f"| {name} | {e['iops'] / b['iops']:.2f} | {e['lat_mean_us'] / b['lat_mean_us']:.2f} | "
                      f"{e['lat_p99_us'] / b['lat_p99_us']:.2f} | {cpu} |")
print()
print("| workload | IOPS io-engine / bare | mean latency io-engine / bare | p99 io-engine / bare | target CPU/IO io-engine / bare |")
print("|---|--:|--:|--:|--:|")
print("\n".join(ratios))
fb, fr, alloc = open(os.path.join(out, "fill.txt")).read().split()
print()
print(f"Fill 1 GiB with `halyard nvme write` (4 KiB blocks): bare {fb} s ({1024 / float(fb):,.0f} MiB/s), "
      f"replica {fr} s ({1024 / float(fr):,.0f} MiB/s, every extent allocated on first write; allocatedBytes after: {alloc}).")
d = load(os.path.join(out, "idle.json"))
if d:
    ioe = d["ioe_ticks"] / tick / d["idle_s"] * 100
    bare = d["bare_ticks"] / tick / d["idle_s"] * 100
    try:
        met = (float(d["metric_cpu_s_after"]) - float(d["metric_cpu_s_before"])) / d["idle_s"] * 100
        met = f"{met:.3f} %"
    except ValueError:
        met = "n/a"
    rssm = f"{int(float(d['rss_metric_bytes_10_replicas'])) / 1048576:.1f} MiB" if d["rss_metric_bytes_10_replicas"] else "n/a"
    print()
    print("| idle and memory | value |")
    print("|---|--:|")
    print(f"| io-engine CPU idle over {d['idle_s']:.0f} s, {d['replicas']} shared replicas, store {d['store']} (/proc/PID/stat utime+stime) | {ioe:.3f} % of a core ({d['ioe_ticks']} ticks) |")
    print(f"| same window via /metrics halyard_process_cpu_seconds_total | {met} |")
    print(f"| bare nvmf-target CPU in the same window | {bare:.3f} % ({d['bare_ticks']} ticks) |")
    print(f"| io-engine RSS, fresh, 0 replicas | {d['rss_kib_0_replicas'] / 1024:.1f} MiB |")
    print(f"| io-engine RSS with {d['replicas']} shared replicas (VmRSS / halyard_process_resident_memory_bytes) | {d['rss_kib_10_replicas'] / 1024:.1f} MiB / {rssm} |")
    print(f"| io-engine threads | {d['threads']} |")
    print(f"| RSS after the I/O runs: io-engine (1 replica) / bare target | {d['rss_kib_bench_after_runs'] / 1024:.1f} / {d['rss_kib_bare_after_runs'] / 1024:.1f} MiB |")
    print(f"| exit status on SIGTERM (measured io-engine, idle io-engine) | {d['exit_bench']}, {d['exit_idle']} |")
PY
