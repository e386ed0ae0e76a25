#!/usr/bin/env bash
# Halyard nexus benchmark (issue 6 §7): the cost of mirroring. In one run, three `halyard io-engine`
# processes on loopback serve a 3-replica volume (nexus on node 1: its local replica plus one
# replica on each of nodes 2 and 3 over NVMe/TCP) and a 1-replica volume (nexus on node 1 over its
# local replica only); `halyard nvme perf` measures both through the nexus's published subsystem:
# 4K random writes at QD1 (latency p50/p99) and QD32 (IOPS), 4K random reads at QD1, and the CPU
# time the io-engines spend per I/O (/proc/PID/stat of all three, before/after each run). Then a
# fresh io-engine trio with 10 published 3-replica volumes (all nexuses on node 1) is left idle:
# CPU % over 30 s and RSS.
#
#   Benchmarks/nexus.sh                          # release build in .build-bench, 10 s per run
#   options: --time SECONDS (10 per run), --idle SECONDS (30), --volume SIZE (256MiB),
#            --scratch DIR (release build, default .build-bench), --out DIR (results, default
#            <scratch>/bench-results/nexus), --skip-build, --store etcd|embedded (default etcd when
#            installed; embedded gives each io-engine its own store), --bin PATH (no build),
#            --placement same|split (default same: all io-engines on core 0; split: the nexus
#            node on core 0, the two replica-only nodes on core 1 with the initiator),
#            --media-latency DURATION (e.g. 200us: the measured io-engines add it to every replica
#            read and write, `halyard io-engine --emulated-media-latency`, modelling media and a
#            network slower than this VM's page cache; default none), --idle 0 skips the idle trio
#
# Goals (issue 6): QD1 4K write latency 3-replica / 1-replica <= 1.3x; idle io-engine with 10
# published volumes ~0 % CPU and RSS < 128 MiB.
#
# All io-engines run on core 0 (`taskset -c 0`; their threads inherit it), the initiator, the CLI
# and etcd on core 1, as in Benchmarks/run.sh and io-engine.sh (--placement same). On one core the
# replica nodes' work for a mirrored write is serialized with the nexus's, which real nodes would
# do in parallel; --placement split moves nodes 2 and 3 to core 1 (sharing it with the initiator).
# A third target in every case is a plain replica on node 1 with no nexus (the io-engine's replica
# path, as Benchmarks/io-engine.sh measures it): 1-replica nexus / replica is the nexus layer's
# cost. All three are filled first (V bytes of 0x5a, through the nexus for the volumes, timed: on
# the replicas that is also the first-write allocation of every extent) so writes overwrite
# allocated extents and reads return data. The cases alternate replica / 1-replica / 3-replica so
# drift on a noisy VM hits all alike. Prints markdown tables; the figures that matter are the
# ratios of the same run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TIME=10 IDLE=30 SKIP_BUILD=0 STORE="" BIN="" VOLUME=256MiB PLACEMENT=same MEDIA_LATENCY=""
SCRATCH="$ROOT/.build-bench" OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --time) TIME=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --volume) VOLUME=$2; shift 2 ;;
        --placement) PLACEMENT=$2; shift 2 ;;
        --media-latency) MEDIA_LATENCY=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --store) STORE=$2; shift 2 ;;
        --bin) BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); SKIP_BUILD=1; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "nexus.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$PLACEMENT" in same|split) ;; *) echo "nexus.sh: --placement same|split" >&2; exit 2 ;; esac
case "$STORE" in
    "") if command -v etcd > /dev/null && command -v etcdctl > /dev/null; then STORE=etcd; else STORE=embedded; fi ;;
    etcd|embedded) ;;
    *) echo "nexus.sh: --store etcd|embedded" >&2; exit 2 ;;
esac
VBYTES=$(python3 - "$VOLUME" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+)\s*(|B|KiB|K|MiB|M|GiB|G)", sys.argv[1])
if not m: sys.exit("bad --volume " + sys.argv[1])
print(int(m[1]) * {"": 1, "B": 1, "KiB": 1024, "K": 1024, "MiB": 1 << 20, "M": 1 << 20, "GiB": 1 << 30, "G": 1 << 30}[m[2]])
PY
)
OUT=${OUT:-$SCRATCH/bench-results/nexus}
mkdir -p "$OUT"
rm -f "$OUT"/perf-*.json "$OUT"/perf-*.ticks "$OUT"/idle.json "$OUT"/fill.txt
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift > /dev/null && export PATH="/opt/swift/usr/bin:$PATH"
say() { printf '%s\n' "$*" >&2; }

if [ "$SKIP_BUILD" = 0 ]; then
    say "== swift build -c release --product halyard (scratch $SCRATCH)"
    (cd "$ROOT" && swift build -c release --product halyard --scratch-path "$SCRATCH") > "$OUT/build.log" 2>&1 \
        || { tail -n 30 "$OUT/build.log" >&2; exit 1; }
fi
[ -n "$BIN" ] || BIN="$(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/halyard"
[ -x "$BIN" ] || { say "missing $BIN (run without --skip-build)"; exit 1; }
"$BIN" nexus create --help > /dev/null 2>&1 || { say "$BIN has no 'nexus create' command"; exit 1; }

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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-bench-nexus.XXXXXX")
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

# ---- io-engines ------------------------------------------------------------------------------------
declare -A EPID=() NVMF=() GRPCP=() METP=()
start_engine() {   # start_engine NAME POOLSIZE [CORE [ARGS...]]: io-engine NAME on CORE (0) with pool NAME
    local name=$1 size=$2 core=${3:-0} ip gp mp pid
    shift 2; [ $# -gt 0 ] && shift
    ip=$(free_port) gp=$(free_port) mp=$(free_port)
    mkdir -p "$WORK/$name"
    say "== io-engine $name: taskset -c $core halyard io-engine ${STORE_ARG[*]} --create-pool $name:…:$size (nvmf $ip, grpc $gp, metrics $mp)"
    taskset -c "$core" "$BIN" io-engine --node "$name" --nvmf "127.0.0.1:$ip" --grpc "127.0.0.1:$gp" --metrics "127.0.0.1:$mp" \
        --state-dir "$WORK/$name/state" "${STORE_ARG[@]}" --create-pool "$name:$WORK/$name/pool.img:$size" \
        --log-level warning "$@" < /dev/null > "$OUT/$name.out" 2> "$OUT/$name.log" &
    pid=$!; PIDS+=("$pid")
    EPID[$name]=$pid NVMF[$name]=$ip GRPCP[$name]=$gp METP[$name]=$mp
    for _ in $(seq 600); do
        grep -q '^ready' "$OUT/$name.out" 2> /dev/null && break
        kill -0 "$pid" 2> /dev/null || { say "io-engine $name exited:"; tail -n 20 "$OUT/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^ready' "$OUT/$name.out" || { say "io-engine $name: no ready line in 60 s"; tail -n 20 "$OUT/$name.log" >&2; exit 1; }
    wait_port "$ip"; wait_port "$gp"
}
ctl() {   # ctl NAME ARGS...: the CLI against io-engine NAME, on the initiator's core
    local name=$1; shift
    taskset -c 1 "$BIN" "$@" --io-engine "127.0.0.1:${GRPCP[$name]}"
}
metric() {   # metric NAME METRIC: first sample value from io-engine NAME's /metrics
    curl -sf --max-time 10 "http://127.0.0.1:${METP[$1]}/metrics" | awk -v n="$2" '
        $1 !~ /^#/ { name = $1; sub(/\{.*/, "", name); if (name == n) { print $NF; exit } }'
}
newuuid() { cat /proc/sys/kernel/random/uuid; }
# volume NEXUSNODE NODES...: one replica of VBYTES on each of NODES (shared to any host), a nexus
# over them on NEXUSNODE, published; prints the volume uuid
volume() {
    local nx=$1 n r vol nexus children=(); shift
    vol=$(newuuid) nexus=$(newuuid)
    for n in "$@"; do
        r=$(newuuid)
        ctl "$n" replica create --pool "$n" --size "$VBYTES" --uuid "$r" --share --json > /dev/null
        children+=(--child "nvmf://127.0.0.1:${NVMF[$n]}/nqn.2026-11.io.halyard:replica:$r")
    done
    ctl "$nx" nexus create "$nexus" --volume "$vol" --size "$VBYTES" "${children[@]}" --publish --json > "$OUT/nexus-$vol.json"
    echo "$vol"
}

RCORE=0; [ "$PLACEMENT" = split ] && RCORE=1
MEDIA_ARG=()
[ -n "$MEDIA_LATENCY" ] && MEDIA_ARG=(--emulated-media-latency "$MEDIA_LATENCY")
start_engine n1 4GiB 0 "${MEDIA_ARG[@]}"
start_engine n2 4GiB "$RCORE" "${MEDIA_ARG[@]}"
start_engine n3 4GiB "$RCORE" "${MEDIA_ARG[@]}"
say "== volumes: 1 replica (n1) and 3 replicas (n1 local, n2, n3), nexus on n1, $VOLUME each"
V1=$(volume n1 n1)
V3=$(volume n1 n1 n2 n3)
NQN1=nqn.2026-11.io.halyard:$V1 NQN3=nqn.2026-11.io.halyard:$V3
R0=$(newuuid)
ctl n1 replica create --pool n1 --size "$VBYTES" --uuid "$R0" --share --json > /dev/null
NQN0=nqn.2026-11.io.halyard:replica:$R0
P1=${NVMF[n1]}

fill() {   # fill NQN: VBYTES of 0x5a from LBA 0 through the nexus; prints seconds
    local t0 t1
    t0=$(date +%s.%N)
    taskset -c 1 "$BIN" nvme write -a 127.0.0.1 -s "$P1" -n "$1" --lba 0 --blocks $((VBYTES / 4096)) --pattern 0x5a > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
say "== fill $VOLUME: plain replica (no nexus)"
FILL0=$(fill "$NQN0")
say "== fill $VOLUME: 1 replica"
FILL1=$(fill "$NQN1")
say "== fill $VOLUME: 3 replicas"
FILL3=$(fill "$NQN3")
echo "$FILL0 $FILL1 $FILL3 $VBYTES" > "$OUT/fill.txt"

# ---- the runs: 1 replica and 3 replicas alternating -------------------------------------------------------
CASES=(
    "4K randwrite QD1|-w randwrite -o 4096 -q 1"
    "4K randwrite QD32|-w randwrite -o 4096 -q 32"
    "4K randread QD1|-w randread -o 4096 -q 1"
)
all_ticks() { echo $(($(cpu_ticks "${EPID[n1]}") + $(cpu_ticks "${EPID[n2]}") + $(cpu_ticks "${EPID[n3]}"))); }
perf() {   # perf TAG NQN ARGS: one run, JSON to perf-TAG.json, io-engine ticks (all, nexus node) to perf-TAG.ticks
    local tag=$1 nqn=$2 before b1 after a1; shift 2
    before=$(all_ticks) b1=$(cpu_ticks "${EPID[n1]}")
    # shellcheck disable=SC2068
    taskset -c 1 "$BIN" nvme perf -a 127.0.0.1 -s "$P1" -n "$nqn" $@ -t "$TIME" --warmup 1 \
        --nr-io-queues 1 --threads 1 --json > "$OUT/perf-$tag.json" || say "   (perf exited $?)"
    after=$(all_ticks) a1=$(cpu_ticks "${EPID[n1]}")
    echo "$((after - before)) $((a1 - b1))" > "$OUT/perf-$tag.ticks"
}
i=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name args <<< "$c"
    i=$((i + 1))
    say "== [$i] $name: plain replica, 1-replica nexus, 3-replica nexus (halyard nvme perf $args -t $TIME)"
    perf "$i-r0" "$NQN0" $args
    perf "$i-r1" "$NQN1" $args
    perf "$i-r3" "$NQN3" $args
done
ctl n1 nexus list --json > "$OUT/nexus-list-after.json" 2> /dev/null || true
RSS_AFTER=$(rss_kib "${EPID[n1]}")
say "== SIGTERM the three measured io-engines"
EXITS=
for n in n1 n2 n3; do
    kill -TERM "${EPID[$n]}"; set +e; wait "${EPID[$n]}"; EXITS="$EXITS $?"; set -e
done

# ---- a fresh trio: 10 published 3-replica volumes, idle ------------------------------------------------
if [ "$IDLE" != 0 ]; then
start_engine i1 16GiB
start_engine i2 16GiB
start_engine i3 16GiB
sleep 2
RSS0=$(rss_kib "${EPID[i1]}")
say "== 10 volumes of 1 GiB, 3 thin replicas each (i1 local, i2, i3), 10 nexuses on i1, published"
VSAVE=$VBYTES; VBYTES=$((1 << 30))
for _ in $(seq 10); do volume i1 i1 i2 i3 > /dev/null; done
VBYTES=$VSAVE
NNEX=$(ctl i1 nexus list --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(len(j) if isinstance(j, list) else len(j.get("nexuses", [])))')
sleep 5
RSS10=$(rss_kib "${EPID[i1]}") RSS10_METRIC=$(metric i1 halyard_process_resident_memory_bytes) THREADS=$(threads "${EPID[i1]}")
say "== idle ${IDLE}s ($NNEX published nexuses on i1, untouched)"
t0=$(cpu_ticks "${EPID[i1]}") o0=$(($(cpu_ticks "${EPID[i2]}") + $(cpu_ticks "${EPID[i3]}"))) s0=$(date +%s.%N)
sleep "$IDLE"
t1=$(cpu_ticks "${EPID[i1]}") o1=$(($(cpu_ticks "${EPID[i2]}") + $(cpu_ticks "${EPID[i3]}"))) s1=$(date +%s.%N)
IEXITS=
for n in i1 i2 i3; do
    kill -TERM "${EPID[$n]}"; set +e; wait "${EPID[$n]}"; IEXITS="$IEXITS $?"; set -e
done
cat > "$OUT/idle.json" <<EOF
{"store": "$STORE", "nexuses": $NNEX, "idle_s": $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }'),
 "nexus_node_ticks": $((t1 - t0)), "replica_nodes_ticks": $((o1 - o0)),
 "rss_kib_0": $RSS0, "rss_kib_10": $RSS10, "rss_metric_bytes_10": "${RSS10_METRIC:-}", "threads": $THREADS,
 "rss_kib_after_runs": $RSS_AFTER, "exits_bench": "${EXITS# }", "exits_idle": "${IEXITS# }"}
EOF
fi

# ---- tables ----------------------------------------------------------------------------------------------
NAMES=$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f1)
python3 - "$OUT" "$TIME" "$TICK" "$NAMES" "$BIN" "$PLACEMENT" "${MEDIA_LATENCY:-none}" <<'PY'
import json, os, sys
out, t, tick, names, binpath, placement, media = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].strip().split("\n"), sys.argv[5], sys.argv[6], sys.argv[7]
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
def ticks(p):
    try:
        with open(p) as f: a, b = f.read().split(); return int(a), int(b)
    except Exception: return 0, 0
print(f"binary: {binpath}; placement: {placement} (io-engines n1{', n2, n3' if placement == 'same' else ''} on core 0{'; n2, n3 on core 1 with the initiator' if placement == 'split' else ''}); emulated media latency: {media}")
print()
print("| workload | volume | IOPS | mean µs | p50 µs | p99 µs | p99.9 µs | client CPU µs/IO | io-engines CPU µs/IO (all 3) | nexus node CPU µs/IO | errors |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
ratios, layer = [], []
for i, name in enumerate(names, 1):
    rows = {}
    for tag, label in (("r0", "plain replica, no nexus"), ("r1", "nexus, 1 replica"), ("r3", "nexus, 3 replicas")):
        r = load(os.path.join(out, f"perf-{i}-{tag}.json"))
        if r is None:
            print(f"| {name} | {label} | failed | | | | | | | | |"); continue
        total = r["ios"] * (t + 1) / t          # io-engine CPU covers warmup + measured time
        ka, kn = ticks(os.path.join(out, f"perf-{i}-{tag}.ticks"))
        cpu_all = ka / tick * 1e6 / total if total else 0
        cpu_nx = kn / tick * 1e6 / total if total else 0
        rows[tag] = dict(r, cpu_all=cpu_all, cpu_nx=cpu_nx)
        print(f"| {name} | {label} | {r['iops']:,.0f} | {r['lat_mean_us']:.1f} | {r['lat_p50_us']:.1f} | {r['lat_p99_us']:.1f} | "
              f"{r['lat_p99_9_us']:.1f} | {r.get('cpu_us_per_io', 0):.1f} | {cpu_all:.1f} | {cpu_nx:.1f} | {r['errors']} |")
    z, a, b = rows.get("r0"), rows.get("r1"), rows.get("r3")
    f = lambda x, y: f"{x / y:.2f}" if y else "-"
    if a and b and a["iops"]:
        ratios.append(f"| {name} | {f(b['lat_p50_us'], a['lat_p50_us'])} | {b['lat_p50_us'] - a['lat_p50_us']:.0f} | {f(b['lat_p99_us'], a['lat_p99_us'])} | "
                      f"{f(b['lat_mean_us'], a['lat_mean_us'])} | {f(b['iops'], a['iops'])} | {f(b['cpu_all'], a['cpu_all'])} | {f(b['cpu_nx'], a['cpu_nx'])} |")
    if z and a and z["iops"]:
        layer.append(f"| {name} | {f(a['lat_p50_us'], z['lat_p50_us'])} | {f(a['lat_p99_us'], z['lat_p99_us'])} | "
                     f"{f(a['iops'], z['iops'])} | {f(a['cpu_nx'], z['cpu_nx'])} |")
print()
print("| workload | p50 3r / 1r | p50 3r − 1r µs | p99 3r / 1r | mean 3r / 1r | IOPS 3r / 1r | CPU/IO all io-engines 3r / 1r | CPU/IO nexus node 3r / 1r |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
print("\n".join(ratios))
print()
print("| workload | p50 nexus 1r / replica | p99 nexus 1r / replica | IOPS nexus 1r / replica | CPU/IO node 1 nexus 1r / replica |")
print("|---|--:|--:|--:|--:|")
print("\n".join(layer))
f0, f1, f3, vb = open(os.path.join(out, "fill.txt")).read().split()
mib = int(vb) / 1048576
print()
print(f"Fill {mib:.0f} MiB (`halyard nvme write`, 4 KiB blocks, first write of every extent): plain replica {f0} s "
      f"({mib / float(f0):,.0f} MiB/s), nexus 1 replica {f1} s ({mib / float(f1):,.0f} MiB/s), nexus 3 replicas {f3} s ({mib / float(f3):,.0f} MiB/s).")
d = load(os.path.join(out, "idle.json"))
if d:
    nx = d["nexus_node_ticks"] / tick / d["idle_s"] * 100
    other = d["replica_nodes_ticks"] / tick / d["idle_s"] * 100
    rssm = f"{int(float(d['rss_metric_bytes_10'])) / 1048576:.1f} MiB" if d["rss_metric_bytes_10"] else "n/a"
    print()
    print("| idle and memory | value |")
    print("|---|--:|")
    print(f"| nexus io-engine CPU idle over {d['idle_s']:.0f} s, {d['nexuses']} published 3-replica volumes, store {d['store']} | {nx:.3f} % of a core ({d['nexus_node_ticks']} ticks) |")
    print(f"| the two replica io-engines together, same window | {other:.3f} % ({d['replica_nodes_ticks']} ticks) |")
    print(f"| nexus io-engine RSS, fresh, no volume | {d['rss_kib_0'] / 1024:.1f} MiB |")
    print(f"| nexus io-engine RSS with {d['nexuses']} published volumes (VmRSS / halyard_process_resident_memory_bytes) | {d['rss_kib_10'] / 1024:.1f} MiB / {rssm} |")
    print(f"| nexus io-engine threads | {d['threads']} |")
    print(f"| RSS of the measured nexus io-engine after the runs | {d['rss_kib_after_runs'] / 1024:.1f} MiB |")
    print(f"| exit status on SIGTERM (measured trio; idle trio) | {d['exits_bench']}; {d['exits_idle']} |")
PY
