#!/usr/bin/env bash
# Halyard interop, the nexus (issue 6 §7): a real etcd, three `halyard io-engine` processes on this
# machine's 127.0.0.1 (each with a pool on a sparse file, `--store etcd://...`, `--state-dir`), one
# replica per node, and a 3-replica nexus published to the Linux host in QEMU (guest/nexus.sh,
# nvme-cli + fio with crc32c verify). While the guest writes, this script does the faults: kill -9
# of a replica's io-engine (child faulted, nexus degraded, health record in etcd), its restart and
# a partial rebuild, a fourth replica and a full rebuild, a second nexus on another node that
# preempts the first (fenced, the host's path moves), the same with the old nexus partitioned from
# the host, and etcd stopped under I/O. Replicas are compared byte for byte over NVMe/TCP.
#
# usage: Tests/Interop/nexus.sh [HALYARD_BINARY]
#   HALYARD_BINARY   default $HALYARD_BIN, else .build/debug/halyard (relative to the current dir)
# env:
#   HALYARD_INTEROP_CACHE   guest image (shared with run.sh; default ${TMPDIR:-/tmp}/halyard-interop)
#   NEXUS_LOGS              where the logs of this run go (default $HALYARD_INTEROP_CACHE/last-nexus;
#                           run.sh passes its own last-run/nexus)
#   NEXUS_VOLUME_MIB        volume (and replica) size in MiB (default 64)
#   NEXUS_WRITE_IOPS        the guest's rate of 4K writes during each fault (default 100)
#   INTEROP_VERBOSE=1       print the guest console as well
#
# Output: "PASS name" / "FAIL name (reason)" per check, "  | " notes and excerpts, then one line
# "nexus: N passed, N failed"; exit status 0 only when nothing failed. run.sh runs this script and
# folds its checks into its own "interop: ..." line. One guest boot (two NICs).
#
# Layout of the volume (V = NEXUS_VOLUME_MIB; each region is written by one deterministic fio job
# that `--verify_only` replays later, so "read back = acknowledged" is checked after every move):
#   [0, 4M)   K: 4K random writes while node 3 is killed        [4M, 8M)   P: during the preempt
#   [8M, 12M) X: during the partitioned preempt                 [12M, 16M) E: while etcd is down
#   [16M, V)  FILL: 1 MiB sequential writes first ("most of the volume")
#
# Nexuses (all of volume VOL, NQN nqn.2026-11.io.halyard:<VOL>, published to the guest's host NQN):
#   A on node 1, cntlid 1-1000      children R1 (local), R2, R3 (nvmf://127.0.0.1:PORT/...:replica:U)
#   B on node 2, cntlid 1001-2000   the same replicas (R2 local): preempts A
#   C on node 1, cntlid 2001-3000   the same replicas (after A is destroyed): preempts B, which is
#                                   partitioned from the guest (the guest sets its NIC 1 down)
# Replicas: 1 per node, thin, V bytes, shared to the three nexus host NQNs
# (nqn.2026-11.io.halyard:nexus:<uuid>) only; R4 (node 2's pool) for the full rebuild.
# Replicas are compared (sha256 of every block) with `halyard nvme read` from this machine as the
# host identity of the nexus holding their reservation (Exclusive Access: nobody else may read).
#
# Host checks (the guest's are described in guest/nexus.sh):
#   nexus-etcd-start                 scripts/etcd.sh on two free ports
#   nexus-start-node1..3             "ready", NVMe/TCP + gRPC + metrics ports accept
#   nexus-pools                      node 1 --create-pool p1, nodes 2-3 `pool create` (2 GiB sparse)
#   nexus-replicas                   `replica create --size V --share --allow-host <A,B,C nexus NQNs>`
#   nexus-create                     `nexus create A --volume VOL --size V --child URI x3
#                                    --min-cntlid 1 --max-cntlid 1000 --publish --allow-host <guest>
#                                    --json`: Online, 3 children Online, R1 local, nqn ...:<VOL>
#   nexus-create-health-record       etcd /halyard/v1/volumes/VOL/nexus/A/health: 3 children healthy
#   nexus-kill-child-faulted         after kill -9 of node 3 under writes: `nexus get A --json`
#                                    child R3 Faulted, nexus Degraded (within 20 s)
#   nexus-kill-health-record         etcd: R3 "healthy":false, R1 and R2 true
#   nexus-restart-node3              node 3 ready again on its state dir; R3 back, shared
#   nexus-child-online               `nexus child online A URI3` exits 0; R3 Online within 120 s
#   nexus-partial-rebuild            `nexus rebuild history A --json`: R3's rebuild partial,
#                                    Completed, bytes copied > 0 and <= 8 MiB (the K region is
#                                    4 MiB = 4 segments) and far below V
#   nexus-partial-health-record      etcd: all three healthy again; nexus Online
#   nexus-identical-after-partial    R1, R2, R3: same sha256 over the whole V
#   nexus-full-rebuild               `nexus child add A URI4` (R4, node 2): rebuild not partial,
#                                    Completed, bytes copied >= the written part; R4 Online
#   nexus-identical-after-full       R1..R4 identical
#   nexus-child-remove               `nexus child remove A URI4`: back to 3 children
#   nexus-preempt-create             `nexus create B` on node 2 (guest writing through A): Online
#   nexus-preempt-old-fenced         A: Shutdown, shutdownReason mentions fenced (within 20 s), B
#                                    reports when it sent its first Preempt and Abort; note
#                                    "fencing: ..." (B's preemptedAtUnixNanos -> A's fencedAtUnixNanos,
#                                    shutdownCompletedAtUnixNanos; no timed assertion)
#   nexus-preempt-io-on-new          after the guest's writer: B answered writes (io.writeOps > 0)
#   nexus-partition-create           A destroyed; `nexus create C` on node 1 while the guest has
#                                    no path to B: Online (B preempted)
#   nexus-partition-io-on-new        C answered writes; B's state noted (it got no write)
#   nexus-etcd-down-no-health-change etcd stopped under writes: C answered writes meanwhile (io.writeOps
#                                    grew) and is still Online with 3 Online children
#   nexus-etcd-restart               etcd again (same data): health record of C, 3 healthy
#   nexus-identical-final            after the guest disconnected: R1, R2, R3 identical
#   nexus-sigterm                    all three io-engines exit 0 within 20 s of SIGTERM
#
# The list run.sh expects (keep in sync with the checks here and in guest/nexus.sh):
# CHECKS: nexus-etcd-start nexus-start-node1 nexus-start-node2 nexus-start-node3 nexus-pools nexus-replicas nexus-create nexus-create-health-record nexus-connect nexus-ns-size nexus-fill-verify nexus-kill-writes-ok nexus-kill-child-faulted nexus-kill-health-record nexus-restart-node3 nexus-child-online nexus-partial-rebuild nexus-partial-health-record nexus-identical-after-partial nexus-full-rebuild nexus-identical-after-full nexus-child-remove nexus-preempt-create nexus-preempt-old-fenced nexus-preempt-connect-new-path nexus-preempt-writes-ok nexus-preempt-old-path-inaccessible nexus-preempt-verify-before nexus-preempt-io-on-new nexus-partition-create nexus-partition-connect-new-path nexus-partition-writes-ok nexus-partition-verify-before nexus-partition-io-on-new nexus-etcd-down-writes-ok nexus-etcd-down-no-health-change nexus-etcd-restart nexus-final-verify nexus-disconnect nexus-identical-final nexus-sigterm
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
IMAGE=$CACHE/image
BIN_ARG=${1:-${HALYARD_BIN:-.build/debug/halyard}}
LOGDIR=${NEXUS_LOGS:-$CACHE/last-nexus}
VERBOSE=${INTEROP_VERBOSE:-0}
VMIB=${NEXUS_VOLUME_MIB:-64}
WRITE_IOPS=${NEXUS_WRITE_IOPS:-100}
GUEST_TIMEOUT=900
POOL_SIZE=2GiB
MiB=1048576
VBYTES=$((VMIB * MiB))
BLOCK=4096
RPFX=nqn.2026-11.io.halyard:replica:
NXPFX=nqn.2026-11.io.halyard:nexus:
VPFX=nqn.2026-11.io.halyard:

SUITE=nexus
# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"   # pass, fail, note, excerpt, NPASS/NFAIL/REPORTED/CHECKS

# ---- cleanup: the guest, the io-engines, etcd, temp files ---------------------------------------
WORK= GPID= SUMMARY_DONE=0 NOTRUN="not run" ETCD_STATE=
declare -A NPID=()
cleanup() {
    local n p
    [ -n "$GPID" ] && kill "$GPID" 2>/dev/null && wait "$GPID" 2>/dev/null   # run-guest kills its qemu
    for n in "${!NPID[@]}"; do
        p=${NPID[$n]}
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$ETCD_STATE" ] && [ -d "$ETCD_STATE" ]; then
        [ -f "$ETCD_STATE/etcd.log" ] && [ -d "$LOGDIR" ] && cp "$ETCD_STATE/etcd.log" "$LOGDIR/etcd.log" 2>/dev/null
        STATE="$ETCD_STATE" bash "$ROOT/scripts/etcd.sh" stop > /dev/null 2>&1
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$SUMMARY_DONE" = 0 ]; then echo "nexus: $NPASS passed, $((NFAIL + 1)) failed (interrupted)"; fi
}
trap cleanup EXIT
trap 'NOTRUN="interrupted"; exit 130' INT TERM

fail_all() { NOTRUN="not run: $1"; finish; }

# ---- prerequisites, logs, the binary under test ------------------------------------------------
for c in qemu-system-x86_64 python3 timeout curl etcd etcdctl sha256sum; do
    command -v "$c" >/dev/null || fail_all "missing $c (see Tests/Interop/README.md; etcd: apt-get install etcd-server etcd-client)"
done
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR" || fail_all "cannot create $LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-nexus.XXXXXX")
SHARE=$WORK/share; mkdir -p "$SHARE"
[ -x "$BIN_ARG" ] || fail_all "halyard binary $BIN_ARG does not exist or is not executable"
if [ "$(head -c 4 "$BIN_ARG" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    BIN=$WORK/halyard; cp "$BIN_ARG" "$BIN"          # a rebuild cannot swap it mid-run
else
    BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")
fi
for sub in "io-engine" "nexus create" "nexus get" "nexus child" "nexus rebuild" "nvme read"; do
    # shellcheck disable=SC2086
    timeout 30 "$BIN" $sub --help > "$LOGDIR/help-${sub// /-}.txt" 2>&1 \
        || fail_all "'halyard $sub --help' failed (the nexus CLI is missing from this build?): $(tail -n 2 "$LOGDIR/help-${sub// /-}.txt" | tr '\n' ' ')"
done
[ "$VMIB" -ge 32 ] 2>/dev/null || fail_all "NEXUS_VOLUME_MIB must be at least 32 (got $VMIB)"
"$HERE/run-guest.sh" -d "$IMAGE" --build-only > "$LOGDIR/build-image.log" 2>&1 \
    || fail_all "building the guest image failed: $(tail -n 3 "$LOGDIR/build-image.log" | tr '\n' ' ')"
GUEST_HOSTNQN=$(cat "$IMAGE/hostnqn")

# ---- free ports on 127.0.0.1 (picked now, never 4420/2379 assumed) -----------------------------
read -r EC EP NV1 NV2 NV3 G1 G2 G3 M1 M2 M3 <<< "$(python3 -c '
import socket
ss = [socket.socket() for _ in range(11)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
declare -A NVMF=([1]=$NV1 [2]=$NV2 [3]=$NV3) GRPC=([1]=$G1 [2]=$G2 [3]=$G3) METRICS=([1]=$M1 [2]=$M2 [3]=$M3)
note "etcd 127.0.0.1:$EC; nvmf $NV1 $NV2 $NV3; grpc $G1 $G2 $G3; metrics $M1 $M2 $M3"

# ---- etcd ------------------------------------------------------------------------------------------
ETCD_STATE=$WORK/etcd
ETCDCTL=(env ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$EC" --dial-timeout=3s --command-timeout=10s)
etcd_start() {   # etcd_start [KEEP_DATA]: rc 0 when healthy
    STATE="$ETCD_STATE" ETCD_CLIENT_PORT=$EC ETCD_PEER_PORT=$EP ETCD_NAME=halyard-nexus KEEP_DATA=${1:-0} \
        bash "$ROOT/scripts/etcd.sh" start >> "$LOGDIR/etcd-start.log" 2>&1
}
etcd_stop() { STATE="$ETCD_STATE" bash "$ROOT/scripts/etcd.sh" stop >> "$LOGDIR/etcd-start.log" 2>&1; }
if etcd_start 0; then
    pass nexus-etcd-start "etcd $(etcd --version 2>/dev/null | head -n 1 | awk '{print $NF}') at 127.0.0.1:$EC (pid $(tail -n 1 "$LOGDIR/etcd-start.log"))"
else
    fail nexus-etcd-start "$(tail -n 3 "$LOGDIR/etcd-start.log" | tr '\n' ' ')"
    fail_all "etcd did not start"
fi

# ---- JSON ---------------------------------------------------------------------------------------------
# pyj EXPR [ARGS...] < JSON: print the Python expression EXPR over the parsed JSON `j` (ARGS in `a`);
# helpers: objs(x) every dict inside x; by(x, uuid) the first dict with that uuid; num(v) int of a
# proto JSON number (uint64/int64 come as strings; missing -> 0); b(v) "true"/"false".
# Lists print one item per line, None prints nothing; rc 1 on an exception (e.g. no such object),
# rc 2 when stdin is not JSON.
pyj() {
    python3 -c '
import json, sys
expr, a = sys.argv[1], sys.argv[2:]
try:
    j = json.load(sys.stdin)
except ValueError:
    sys.exit(2)
def objs(x):
    if isinstance(x, dict):
        yield x
        for v in x.values(): yield from objs(v)
    elif isinstance(x, list):
        for v in x: yield from objs(v)
def by(x, u):
    return next(o for o in objs(x) if o.get("uuid") == u)
def num(v): return int(v) if v not in (None, "") else 0
def b(v): return "true" if v else "false"
try:
    r = eval(expr)
except Exception as e:
    print(f"({type(e).__name__}: {e})", file=sys.stderr); sys.exit(1)
if r is None: pass
elif isinstance(r, bool): print(b(r))
elif isinstance(r, (list, tuple)):
    for x in r: print(x)
else: print(r)' "$@"
}

# ---- the CLI -----------------------------------------------------------------------------------------
CLILOG=$LOGDIR/cli.log
OUT= ERR= CLI_RC=0
cli() {   # cli NODE ARGS...: `halyard ARGS --io-engine 127.0.0.1:<grpc of NODE>`; stdout in OUT,
          # stderr in ERR, rc returned (and in CLI_RC); everything logged
    local node=$1; shift
    echo "### $(date +%T.%N | cut -c1-12) halyard $* --io-engine 127.0.0.1:${GRPC[$node]}" >> "$CLILOG"
    OUT=$(timeout 60 "$BIN" "$@" --io-engine "127.0.0.1:${GRPC[$node]}" 2> "$WORK/cli.err" < /dev/null)
    CLI_RC=$?
    ERR=$(cat "$WORK/cli.err")
    { [ -n "$OUT" ] && printf '%s\n' "$OUT"; [ -n "$ERR" ] && printf 'stderr: %s\n' "$ERR"; echo "rc=$CLI_RC"; } >> "$CLILOG"
    return "$CLI_RC"
}
cli_why() { echo "rc=$CLI_RC: $(printf '%s' "${ERR:-$OUT}" | tail -n 2 | tr '\n' ' ' | cut -c1-300)"; }
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }   # ms A B: (B - A) ns in ms

# ---- the io-engines ------------------------------------------------------------------------------------
mkdir -p "$WORK/n1/state" "$WORK/n2/state" "$WORK/n3/state"
POOL_FILE_1=$WORK/n1/pool1.img POOL_FILE_2=$WORK/n2/pool2.img POOL_FILE_3=$WORK/n3/pool3.img
node_args() {   # node_args N: the io-engine command line of node N (no --create-pool)
    local n=$1
    NARGS=(--node "node$n" --nvmf "127.0.0.1:${NVMF[$n]}" --advertise 127.0.0.1 --grpc "127.0.0.1:${GRPC[$n]}"
           --metrics "127.0.0.1:${METRICS[$n]}" --state-dir "$WORK/n$n/state" --store "etcd://127.0.0.1:$EC")
    return 0
}
declare -A READY_FROM=()
start_node() {   # start_node N [EXTRA ARGS...]: stdout -> node-N.out, stderr -> node-N.log (appended)
    local n=$1; shift
    node_args "$n"
    echo "### $(date +%T.%N | cut -c1-12) start: halyard io-engine ${NARGS[*]} $*" | tee -a "$LOGDIR/node-$n.out" >> "$LOGDIR/node-$n.log"
    "$BIN" io-engine "${NARGS[@]}" "$@" < /dev/null >> "$LOGDIR/node-$n.out" 2>> "$LOGDIR/node-$n.log" &
    NPID[$n]=$!
    READY_FROM[$n]=$(wc -l < "$LOGDIR/node-$n.out")
}
WHY=
wait_ready() {   # wait_ready N SECONDS: a "ready" line on stdout (since the start) and all three ports accept
    local n=$1 secs=$2 i
    for ((i = 0; i < secs * 5; i++)); do
        if ! kill -0 "${NPID[$n]}" 2>/dev/null; then
            wait "${NPID[$n]}" 2>/dev/null
            WHY="process exited (status $?) before ready"; return 1
        fi
        tail -n +"$((READY_FROM[$n] + 1))" "$LOGDIR/node-$n.out" | grep -q '^ready' && break
        sleep 0.2
    done
    if ! tail -n +"$((READY_FROM[$n] + 1))" "$LOGDIR/node-$n.out" | grep -q '^ready'; then
        WHY="no 'ready' line on stdout in ${secs}s"; return 1
    fi
    WHY=$(python3 - "${NVMF[$n]}" "${GRPC[$n]}" "${METRICS[$n]}" <<'PY'
import socket, sys, time
ports, end = [int(p) for p in sys.argv[1:]], time.time() + 10
while ports and time.time() < end:
    for p in list(ports):
        try:
            socket.create_connection(("127.0.0.1", p), 0.5).close(); ports.remove(p)
        except OSError:
            pass
    if ports: time.sleep(0.2)
print("ready, but not accepting on " + " ".join(map(str, ports)) if ports else "")
PY
)
    [ -z "$WHY" ]
}
STOPPED=
stop_node() {   # stop_node N SECONDS: SIGTERM and wait; STOPPED says how it ended; rc 0 only for exit 0 in time
    local p=${NPID[$1]} i st
    if ! kill -0 "$p" 2>/dev/null; then
        wait "$p" 2>/dev/null; st=$?
        STOPPED="had already exited (status $st)"; unset "NPID[$1]"; return 1
    fi
    kill -TERM "$p"
    for ((i = 0; i < $2 * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
        kill -KILL "$p"; wait "$p" 2>/dev/null; unset "NPID[$1]"
        STOPPED="still running ${2}s after SIGTERM (killed)"; return 1
    fi
    wait "$p"; st=$?
    unset "NPID[$1]"
    STOPPED="exited with status $st $(awk -v i="$i" 'BEGIN { printf "%.1f", i / 10 }')s after SIGTERM"
    [ "$st" = 0 ]
}

start_node 1 --create-pool "p1:$POOL_FILE_1:$POOL_SIZE"
start_node 2
start_node 3
declare -A UP=()
for n in 1 2 3; do
    if wait_ready "$n" 60; then
        pass "nexus-start-node$n" "$(tail -n +"$((READY_FROM[$n] + 1))" "$LOGDIR/node-$n.out" | grep -m1 '^ready' | cut -c1-200)"
        UP[$n]=1
    else
        fail "nexus-start-node$n" "$WHY"; excerpt "$LOGDIR/node-$n.log" 12
    fi
done
[ -n "${UP[1]:-}" ] && [ -n "${UP[2]:-}" ] && [ -n "${UP[3]:-}" ] || fail_all "not all three io-engines started"

# ---- pools, replicas ----------------------------------------------------------------------------------------
bad=
cli 1 pool get p1 --json || bad="$bad p1: $(cli_why);"
for n in 2 3; do
    f=POOL_FILE_$n
    cli "$n" pool create "p$n" "${!f}" --size "$POOL_SIZE" --json || bad="$bad p$n: $(cli_why);"
done
if [ -z "$bad" ]; then pass nexus-pools; else fail nexus-pools "${bad%;}"; fail_all "no pools"; fi

newuuid() { cat /proc/sys/kernel/random/uuid; }
VOL=$(newuuid) NA=$(newuuid) NB=$(newuuid) NC=$(newuuid)
VNQN=$VPFX$VOL
declare -A RUUID=() RNODE=([1]=1 [2]=2 [3]=3 [4]=2) RPOOL=([1]=p1 [2]=p2 [3]=p3 [4]=p2)
for r in 1 2 3 4; do RUUID[$r]=$(newuuid); done
uri() { echo "nvmf://127.0.0.1:${NVMF[${RNODE[$1]}]}/$RPFX${RUUID[$1]}"; }   # uri R: child URI of replica R
NEXUS_HOSTS=(--allow-host "$NXPFX$NA" --allow-host "$NXPFX$NB" --allow-host "$NXPFX$NC")
note "volume $VOL ($VMIB MiB, $VNQN); nexus A $NA (node 1), B $NB (node 2), C $NC (node 1)"
note "replicas: R1 ${RUUID[1]} (node 1), R2 ${RUUID[2]} (node 2), R3 ${RUUID[3]} (node 3), R4 ${RUUID[4]} (node 2, the full rebuild)"
replica_create() {   # replica_create R
    cli "${RNODE[$1]}" replica create --pool "${RPOOL[$1]}" --size "$VBYTES" --uuid "${RUUID[$1]}" --share "${NEXUS_HOSTS[@]}" --json
}
bad=
for r in 1 2 3; do replica_create "$r" || bad="$bad R$r: $(cli_why);"; done
if [ -z "$bad" ]; then pass nexus-replicas "3 thin replicas of $VMIB MiB, shared to the nexus host NQNs of A, B, C"
else fail nexus-replicas "${bad%;}"; fi

# ---- replica comparison over NVMe/TCP ----------------------------------------------------------------------
HOLDER=$NA   # the nexus whose host identity reads the replicas (it holds their reservation)
IDENT_WHY=
identical() {   # identical R...: sha256 of every block of each replica (read at once, in parallel) as
                # HOLDER; rc 0 when all are equal
    local r s first= t0 desc= pids=()
    IDENT_WHY=
    t0=$(now_ns)
    for r in "$@"; do
        local port=${NVMF[${RNODE[$r]}]}
        echo "### $(date +%T.%N | cut -c1-12) halyard nvme read R$r (127.0.0.1:$port) as $NXPFX$HOLDER" >> "$CLILOG"
        ( set -o pipefail
          s=$(timeout 300 "$BIN" nvme read -a 127.0.0.1 -s "$port" -n "$RPFX${RUUID[$r]}" \
                --hostnqn "$NXPFX$HOLDER" --hostid "$HOLDER" --lba 0 --blocks $((VBYTES / BLOCK)) --output - \
                2> "$WORK/read-R$r.err" | sha256sum | cut -c1-16) || s="read-failed"
          [ "$s" = e3b0c44298fc1c14 ] && s="read-nothing"   # sha256 of no bytes
          echo "$s" > "$WORK/sha-R$r" ) &
        pids+=($!)
    done
    wait "${pids[@]}"
    for r in "$@"; do
        s=$(cat "$WORK/sha-R$r" 2>/dev/null || echo "read-failed")
        echo "R$r $s" >> "$CLILOG"
        desc="$desc R$r=$s"
        case "$s" in read-*) desc="$desc ($(tail -n 1 "$WORK/read-R$r.err" | cut -c1-200))" ;; esac
        cat "$WORK/read-R$r.err" >> "$LOGDIR/nvme-read.err" 2>/dev/null
    done
    IDENT_WHY="${desc# } (read $((VMIB * $#)) MiB in $(ms "$t0" "$(now_ns)") ms)"
    [[ "$desc" != *read-* ]] && [ "$(for r in "$@"; do cat "$WORK/sha-R$r"; done | sort -u | wc -l)" = 1 ]
}

# ---- nexus helpers -------------------------------------------------------------------------------------------
# nexus_get NODE UUID: OUT = the nexus as JSON; rc of the CLI
nexus_get() { cli "$1" nexus get "$2" --json; }
# child_field FIELD R (nexus JSON in OUT): the field of replica R's child
child_field() { pyj "by(j, a[0]).get(a[1], \"\")" "${RUUID[$2]}" "$1" <<< "$OUT" 2>/dev/null; }
nexus_field() { pyj "j.get(a[0], \"\")" "$1" <<< "$OUT" 2>/dev/null; }
# nexus_desc (JSON in OUT): "state=...; R1=Online R2=Faulted(reason)[unhealthy] ..." for notes and reasons
nexus_desc() {
    local code='
import json, sys
names = {u: f"R{i}" for i, u in enumerate(sys.argv[1:], 1)}
j = json.load(sys.stdin)
cs = " ".join("%s=%s%s%s" % (names.get(c.get("uuid"), c.get("uuid", "?")[:8]), c.get("state", "?"),
              ("(" + c["reason"] + ")") if c.get("reason") else "", "" if c.get("healthy") else "[unhealthy]")
              for c in j.get("children", []))
print("state=%s%s; %s" % (j.get("state", "?"), (" (" + j["shutdownReason"] + ")") if j.get("shutdownReason") else "", cs))'
    python3 -c "$code" "${RUUID[1]}" "${RUUID[2]}" "${RUUID[3]}" "${RUUID[4]}" <<< "$OUT" 2>/dev/null || echo "(not nexus JSON: $(head -c 120 <<< "$OUT"))"
}
# wait_nexus NODE UUID SECONDS PYEXPR: poll `nexus get` until PYEXPR (over j; a = [R1..R4 uuids]) is
# true; OUT holds the last answer; rc 1 on timeout
wait_nexus() {
    local node=$1 u=$2 secs=$3 expr=$4 i
    for ((i = 0; i < secs * 4; i++)); do
        if nexus_get "$node" "$u" && [ "$(pyj "bool($expr)" "${RUUID[1]}" "${RUUID[2]}" "${RUUID[3]}" "${RUUID[4]}" <<< "$OUT" 2>/dev/null)" = true ]; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}
# health_record NEXUS: the value of its health key in etcd (JSON) on stdout
health_record() { "${ETCDCTL[@]}" get --print-value-only "/halyard/v1/volumes/$VOL/nexus/$1/health" 2>> "$LOGDIR/etcdctl.err"; }
# health_is NEXUS "R1=true R2=true R3=false": rc 0 when the record says exactly that; HEALTH_DESC
HEALTH_DESC=
health_is() {
    local rec want=$2
    rec=$(health_record "$1")
    echo "### $(date +%T) health record of $1: $rec" >> "$CLILOG"
    HEALTH_DESC=$(python3 -c '
import json, sys
rec, want = sys.argv[1], sys.argv[2].split()
names = {u: f"R{i}" for i, u in enumerate(sys.argv[3:], 1)}
try:
    j = json.loads(rec)
except ValueError:
    print(f"not JSON: {rec[:150]!r}"); sys.exit(1)
got = {names.get(c.get("uuid"), c.get("uuid")): c.get("healthy") for c in j.get("children", [])}
clean = str(j.get("clean_shutdown")).lower()
desc = " ".join(f"{k}={str(v).lower()}" for k, v in got.items()) + " clean_shutdown=" + clean
exp = {w.split("=")[0]: w.split("=")[1] == "true" for w in want}
print(desc)
sys.exit(0 if got == exp else 1)' "$rec" "$want" "${RUUID[1]}" "${RUUID[2]}" "${RUUID[3]}" "${RUUID[4]}")
}
wait_health() {   # wait_health NEXUS WANT SECONDS
    local i
    for ((i = 0; i < $3 * 4; i++)); do health_is "$1" "$2" && return 0; sleep 0.25; done
    return 1
}
# rebuild_of NEXUS NODE R: the last finished rebuild of replica R in `rebuild history --json` as
# "kind state bytesCopied segmentsCopied segmentsTotal segmentsSkipped segmentBytes 'error'"
rebuild_of() {
    cli "$2" nexus rebuild history "$1" --json || return 1
    pyj '(lambda rs: " ".join(str(x) for x in (rs[-1].get("kind", "?"), rs[-1].get("state", "?"), num(rs[-1].get("bytesCopied")), num(rs[-1].get("segmentsCopied")), num(rs[-1].get("segmentsTotal")), num(rs[-1].get("segmentsSkipped")), num(rs[-1].get("segmentBytes")), repr(rs[-1].get("error") or ""))))([r for r in (j if isinstance(j, list) else j.get("rebuilds", [])) if r.get("childUuid") == a[0]])' "${RUUID[$3]}" <<< "$OUT"
}
ONLINE3='j.get("state") == "Online" and all(c.get("state") == "Online" for c in j.get("children", []))'

# ---- nexus A on node 1 ----------------------------------------------------------------------------------------
A_OK=
if cli 1 nexus create "$NA" --volume "$VOL" --size "$VBYTES" --child "$(uri 1)" --child "$(uri 2)" --child "$(uri 3)" \
        --min-cntlid 1 --max-cntlid 1000 --publish --allow-host "$GUEST_HOSTNQN" --json; then
    why=
    wait_nexus 1 "$NA" 15 "$ONLINE3" || why="$why not Online with 3 Online children in 15 s: $(nexus_desc);"
    [ "$(pyj 'len(j.get("children", []))' <<< "$OUT")" = 3 ] || why="$why $(pyj 'len(j.get("children", []))' <<< "$OUT") children;"
    [ "$(child_field local 1)" = true ] || why="$why R1 not local ($(child_field local 1));"
    [ "$(child_field local 2)" != true ] || why="$why R2 local;"
    [ "$(nexus_field nqn)" = "$VNQN" ] || why="$why nqn $(nexus_field nqn);"
    [ "$(nexus_field published)" = true ] || why="$why not published;"
    if [ -z "$why" ]; then pass nexus-create "$(nexus_desc); uri $(nexus_field uri)"; A_OK=1
    else fail nexus-create "${why%;}"; excerpt "$LOGDIR/node-1.log" 10; fi
else
    fail nexus-create "$(cli_why)"; excerpt "$LOGDIR/node-1.log" 12
fi
if [ -z "$A_OK" ]; then fail nexus-create-health-record "no nexus"
elif wait_health "$NA" "R1=true R2=true R3=true" 10; then pass nexus-create-health-record "$HEALTH_DESC"
else fail nexus-create-health-record "/halyard/v1/volumes/$VOL/nexus/$NA/health: $HEALTH_DESC"; fi

# ---- host steps, on the guest's request ----------------------------------------------------------------------
ANSWER=
T_PREEMPT= ETCD_W0=
do_request() {   # do_request NAME: act, set ANSWER ("ok" or "fail: ...")
    local why d t0 t1 fa sc w rb kind st bc sgc sgt sgs sgb err
    case "$1" in
        kill-node3)
            kill -KILL "${NPID[3]}"; wait "${NPID[3]}" 2>/dev/null; unset "NPID[3]"
            echo "### $(date +%T.%N | cut -c1-12) kill -9 node 3" >> "$LOGDIR/node-3.log"
            t0=$(now_ns)
            if wait_nexus 1 "$NA" 20 'by(j, a[2]).get("state") == "Faulted" and j.get("state") == "Degraded"'; then
                pass nexus-kill-child-faulted "$(ms "$t0" "$(now_ns)") ms after kill -9: $(nexus_desc)"
            else
                fail nexus-kill-child-faulted "20 s after kill -9 of node 3: $(nexus_desc)"; excerpt "$LOGDIR/node-1.log" 10
            fi
            if wait_health "$NA" "R1=true R2=true R3=false" 10; then pass nexus-kill-health-record "$HEALTH_DESC"
            else fail nexus-kill-health-record "want R3 false, R1 R2 true: $HEALTH_DESC"; fi
            ANSWER=ok ;;
        rebuild-partial)
            start_node 3
            if ! wait_ready 3 60; then
                fail nexus-restart-node3 "$WHY"; excerpt "$LOGDIR/node-3.log" 12; ANSWER="fail: node 3 did not come back"; return
            fi
            if cli 3 replica get "${RUUID[3]}" --json && [ "$(pyj 'b(by(j, a[0]).get("shared"))' "${RUUID[3]}" <<< "$OUT")" = true ]; then
                pass nexus-restart-node3 "ready on its state dir; R3 shared, allocatedBytes $(pyj 'num(by(j, a[0]).get("allocatedBytes"))' "${RUUID[3]}" <<< "$OUT")"
            else
                fail nexus-restart-node3 "R3 after the restart: $(cli_why) $(head -c 200 <<< "$OUT")"
            fi
            t0=$(now_ns)
            if cli 1 nexus child online "$NA" "$(uri 3)" --json; then
                if wait_nexus 1 "$NA" 120 'by(j, a[2]).get("state") == "Online"'; then
                    pass nexus-child-online "R3 Online $(ms "$t0" "$(now_ns)") ms after child online: $(nexus_desc)"
                else
                    fail nexus-child-online "R3 not Online 120 s after child online: $(nexus_desc)"; excerpt "$LOGDIR/node-1.log" 10
                fi
            else
                fail nexus-child-online "$(cli_why)"; excerpt "$LOGDIR/node-1.log" 10
            fi
            if rb=$(rebuild_of "$NA" 1 3) && [ -n "$rb" ]; then
                read -r kind st bc sgc sgt sgs sgb err <<< "$rb"
                w="kind=$kind state=$st bytesCopied=$bc ($((bc / MiB)) MiB) segments copied $sgc of $sgt (skipped $sgs) of $sgb bytes; volume $VMIB MiB"
                note "partial rebuild: $w"
                if [ "$kind" = partial ] && [ "$st" = Completed ] && [ "$bc" -gt 0 ] && [ "$bc" -le $((8 * MiB)) ] && [ "$bc" -le $((VBYTES / 8)) ]; then
                    pass nexus-partial-rebuild "$w"
                else
                    fail nexus-partial-rebuild "want partial, Completed, 0 < bytesCopied <= 8 MiB (4 MiB written while R3 was down): $w $err"
                fi
            else
                fail nexus-partial-rebuild "no rebuild of R3 in the history: $(cli_why) $(head -c 200 <<< "$OUT")"
            fi
            if wait_health "$NA" "R1=true R2=true R3=true" 10 && wait_nexus 1 "$NA" 5 "$ONLINE3"; then
                pass nexus-partial-health-record "$HEALTH_DESC; $(nexus_desc)"
            else
                fail nexus-partial-health-record "record: $HEALTH_DESC; nexus: $(nexus_desc)"
            fi
            if identical 1 2 3; then pass nexus-identical-after-partial "$IDENT_WHY"
            else fail nexus-identical-after-partial "$IDENT_WHY"; fi
            ANSWER=ok ;;
        rebuild-full)
            if ! replica_create 4; then
                fail nexus-full-rebuild "replica create R4 on node 2: $(cli_why)"
                fail nexus-identical-after-full "no R4"; fail nexus-child-remove "no R4"; ANSWER=ok; return
            fi
            t0=$(now_ns)
            if cli 1 nexus child add "$NA" "$(uri 4)" --json && wait_nexus 1 "$NA" 180 'by(j, a[3]).get("state") == "Online"'; then
                t1=$(now_ns)
                if rb=$(rebuild_of "$NA" 1 4) && [ -n "$rb" ]; then
                    read -r kind st bc sgc sgt sgs sgb err <<< "$rb"
                    w="kind=$kind state=$st bytesCopied=$bc ($((bc / MiB)) MiB) segments copied $sgc of $sgt (skipped $sgs, unallocated); R4 Online after $(ms "$t0" "$t1") ms"
                    note "full rebuild: $w"
                    # at least what the guest wrote: FILL [16M, V) and K [0, 4M)
                    if [ "$kind" = full ] && [ "$st" = Completed ] && [ "$bc" -ge $((VBYTES - 12 * MiB)) ]; then pass nexus-full-rebuild "$w"
                    else fail nexus-full-rebuild "want not partial, Completed, bytesCopied >= $(((VBYTES - 12 * MiB) / MiB)) MiB: $w $err"; fi
                else
                    fail nexus-full-rebuild "no rebuild of R4 in the history: $(cli_why) $(head -c 200 <<< "$OUT")"
                fi
                if identical 1 2 3 4; then pass nexus-identical-after-full "$IDENT_WHY"
                else fail nexus-identical-after-full "$IDENT_WHY"; fi
            else
                fail nexus-full-rebuild "child add R4: $(cli_why); $(nexus_desc)"; excerpt "$LOGDIR/node-1.log" 10
                fail nexus-identical-after-full "R4 not rebuilt"
            fi
            if cli 1 nexus child remove "$NA" "$(uri 4)" --json && wait_nexus 1 "$NA" 15 "$ONLINE3 and len(j.get(\"children\", [])) == 3"; then
                pass nexus-child-remove "$(nexus_desc)"
            else
                fail nexus-child-remove "$(cli_why); $(nexus_desc)"
            fi
            ANSWER=ok ;;
        preempt)   # B on node 2 while the guest writes through A
            t0=$(now_ns)
            if cli 2 nexus create "$NB" --volume "$VOL" --size "$VBYTES" --child "$(uri 1)" --child "$(uri 2)" --child "$(uri 3)" \
                    --min-cntlid 1001 --max-cntlid 2000 --publish --allow-host "$GUEST_HOSTNQN" --json; then
                t1=$(now_ns); T_PREEMPT=$t1
                PA=0
                if wait_nexus 2 "$NB" 15 "$ONLINE3"; then
                    PA=$(pyj 'num(j.get("preemptedAtUnixNanos"))' <<< "$OUT")
                    pass nexus-preempt-create "create took $(ms "$t0" "$t1") ms; $(nexus_desc)"
                else fail nexus-preempt-create "created, but: $(nexus_desc)"; fi
                HOLDER=$NB
                ANSWER=ok
            else
                fail nexus-preempt-create "$(cli_why)"; excerpt "$LOGDIR/node-2.log" 10
                ANSWER="fail: nexus create B on node 2: $(cli_why)"; return
            fi
            if wait_nexus 1 "$NA" 20 'j.get("state") == "Shutdown"'; then
                fa=$(pyj 'num(j.get("fencedAtUnixNanos"))' <<< "$OUT") sc=$(pyj 'num(j.get("shutdownCompletedAtUnixNanos"))' <<< "$OUT")
                d=$(nexus_desc)
                note "fencing: B's first Preempt and Abort sent $(ms "$t0" "$PA") ms into its create ($(ms "$t0" "$t1") ms in all); A fenced $(ms "$PA" "$fa") ms and shut down $(ms "$PA" "$sc") ms after that preempt (Mayastor asserts < 250 ms), $(ms "$fa" "$sc") ms from fenced to shut down"
                if [[ "$(nexus_field shutdownReason)" == *fenc* ]] && [ "$fa" -gt 0 ] && [ "$PA" -gt 0 ]; then pass nexus-preempt-old-fenced "$d"
                else fail nexus-preempt-old-fenced "Shutdown, but reason '$(nexus_field shutdownReason)', fencedAt $fa, B's preemptedAt $PA: $d"; fi
            else
                fail nexus-preempt-old-fenced "A not Shutdown 20 s after B's create: $(nexus_desc)"; excerpt "$LOGDIR/node-1.log" 10
            fi ;;
        preempt-after)
            if nexus_get 2 "$NB" && w=$(pyj 'num(j.get("io", {}).get("writeOps"))' <<< "$OUT") && [ "${w:-0}" -gt 0 ]; then
                pass nexus-preempt-io-on-new "B: $w writes, $(pyj 'num(j.get("io", {}).get("writeErrors"))' <<< "$OUT") write errors; $(nexus_desc)"
            else
                fail nexus-preempt-io-on-new "B io: $(pyj 'j.get("io")' <<< "$OUT" 2>&1 | head -c 200) $(cli_why)"
            fi
            nexus_get 1 "$NA"; note "A now: $(nexus_desc); io $(pyj 'j.get("io")' <<< "$OUT" 2>/dev/null)"
            ANSWER=ok ;;
        partition-preempt)   # the guest has no path to B any more; C on node 1 preempts B
            cli 1 nexus destroy "$NA" || note "destroy A: $(cli_why)"
            t0=$(now_ns)
            if cli 1 nexus create "$NC" --volume "$VOL" --size "$VBYTES" --child "$(uri 1)" --child "$(uri 2)" --child "$(uri 3)" \
                    --min-cntlid 2001 --max-cntlid 3000 --publish --allow-host "$GUEST_HOSTNQN" --json; then
                t1=$(now_ns)
                if wait_nexus 1 "$NC" 15 "$ONLINE3"; then pass nexus-partition-create "A destroyed, C created in $(ms "$t0" "$t1") ms: $(nexus_desc)"
                else fail nexus-partition-create "created, but: $(nexus_desc)"; fi
                HOLDER=$NC
                ANSWER=ok
            else
                fail nexus-partition-create "$(cli_why)"; excerpt "$LOGDIR/node-1.log" 10
                ANSWER="fail: nexus create C on node 1: $(cli_why)"
            fi
            nexus_get 2 "$NB"; note "B right after C's create (partitioned from the guest): $(nexus_desc)" ;;
        partition-after)
            if nexus_get 1 "$NC" && w=$(pyj 'num(j.get("io", {}).get("writeOps"))' <<< "$OUT") && [ "${w:-0}" -gt 0 ]; then
                pass nexus-partition-io-on-new "C: $w writes; $(nexus_desc)"
            else
                fail nexus-partition-io-on-new "C io: $(pyj 'j.get("io")' <<< "$OUT" 2>&1 | head -c 200) $(cli_why)"
            fi
            nexus_get 2 "$NB"; note "B after the guest moved to C: $(nexus_desc); io $(pyj 'j.get("io")' <<< "$OUT" 2>/dev/null)"
            ANSWER=ok ;;
        etcd-stop)
            nexus_get 1 "$NC"; ETCD_W0=$(pyj 'num(j.get("io", {}).get("writeOps"))' <<< "$OUT" 2>/dev/null)
            if etcd_stop; then ANSWER=ok; note "etcd stopped ($(tail -n 1 "$LOGDIR/etcd-start.log")); C had answered ${ETCD_W0:-?} writes"
            else ANSWER="fail: etcd stop: $(tail -n 1 "$LOGDIR/etcd-start.log")"; fi ;;
        etcd-start)   # after several seconds of writes with etcd down
            if nexus_get 1 "$NC" && [ "$(pyj "bool($ONLINE3)" <<< "$OUT")" = true ] &&
               w=$(pyj 'num(j.get("io", {}).get("writeOps"))' <<< "$OUT") && [ "${w:-0}" -gt "${ETCD_W0:-0}" ]; then
                pass nexus-etcd-down-no-health-change "C answered $((w - ETCD_W0)) writes while etcd was down: $(nexus_desc)"
            else
                fail nexus-etcd-down-no-health-change "with etcd down (writes ${ETCD_W0:-?} -> ${w:-?}): $(nexus_desc) $(cli_why)"; excerpt "$LOGDIR/node-1.log" 8
            fi
            if etcd_start 1 && wait_health "$NC" "R1=true R2=true R3=true" 15; then
                pass nexus-etcd-restart "etcd back on the same data; C's record: $HEALTH_DESC"; ANSWER=ok
            else
                fail nexus-etcd-restart "$(tail -n 2 "$LOGDIR/etcd-start.log" | tr '\n' ' '); C's record: $HEALTH_DESC"; ANSWER="fail: etcd did not come back"
            fi ;;
        *)
            ANSWER="fail: unknown request $1" ;;
    esac
}
handle_requests() {
    local f n
    for f in "$SHARE"/req.*; do
        [ -e "$f" ] || continue
        n=${f##*/req.}
        case "$n" in *.tmp) continue ;; esac
        [ -e "$SHARE/ack.$n" ] && continue
        echo "### $(date +%T.%N | cut -c1-12) guest request: $n" >> "$CLILOG"
        do_request "$n"
        echo "### $(date +%T.%N | cut -c1-12) answer to $n: $ANSWER" >> "$CLILOG"
        printf '%s\n' "$ANSWER" > "$SHARE/ack.$n.tmp" && mv "$SHARE/ack.$n.tmp" "$SHARE/ack.$n"
    done
}
SEEN=0
collect_results() {   # the guest's new complete PASS/FAIL lines
    local i=0 line n r
    [ -f "$RES" ] || return 0
    while IFS= read -r line; do
        i=$((i + 1))
        [ "$i" -le "$SEEN" ] && continue
        line=${line%$'\r'}
        case "$line" in
            "PASS "*) line=${line#PASS }; pass "${line%% *}" ;;
            "FAIL "*) line=${line#FAIL }; n=${line%% *} r=${line#* }
                      [ "$r" = "$line" ] && r=; r=${r#(}; fail "$n" "${r%)}" ;;
        esac
    done < "$RES"
    SEEN=$i
}

# ---- the guest ------------------------------------------------------------------------------------------------
RES=$LOGDIR/results.txt CONSOLE=$LOGDIR/guest-console.log
: > "$RES"
before=$NFAIL
if [ -n "$A_OK" ]; then
    T_GUEST=$SECONDS
    "$HERE/run-guest.sh" -d "$IMAGE" -t "$GUEST_TIMEOUT" -n 2 -s "$SHARE" -r "$RES" -l "$CONSOLE" \
        -k "nvme_core.admin_timeout=20" -f "$HERE/guest/lib.sh" \
        -e NQN="$VNQN" -e N1="${NVMF[1]}" -e N2="${NVMF[2]}" -e VBYTES="$VBYTES" -e WRITE_IOPS="$WRITE_IOPS" \
        "$HERE/guest/nexus.sh" > "$LOGDIR/guest.out" 2>&1 &
    GPID=$!
    while kill -0 "$GPID" 2>/dev/null; do
        collect_results
        handle_requests
        sleep 0.2
    done
    wait "$GPID"; grc=$?; GPID=
    collect_results
    handle_requests
    why=$(tail -n 1 "$LOGDIR/guest.out" | sed 's/ log=.*//')
    NOTRUN="not reported; guest: ${why#run-guest: } (rc=$grc)"
    note "guest: ${why#run-guest: } (rc=$grc), $((SECONDS - T_GUEST)) s"
    [ "$VERBOSE" = 1 ] && sed 's/^/  | /' "$CONSOLE"
    if [ "$NFAIL" -gt "$before" ] && [ "$VERBOSE" != 1 ]; then
        note "--- guest console: FAIL/INFO lines and the last kernel messages (full log: $CONSOLE)"
        grep -E '^(FAIL|INFO) ' "$CONSOLE" | tail -n 25 | cut -c1-300 | sed 's/^/  | /'
        grep -E '^\[ *[0-9.]+\] nvme' "$CONSOLE" | tail -n 12 | sed 's/^/  | /'
        for n in 1 2 3; do excerpt "$LOGDIR/node-$n.log" 8; done
    fi
else
    NOTRUN="not run: nexus A was not created"
fi

# ---- the replicas once the guest is gone ---------------------------------------------------------------------------
if [ -z "$A_OK" ]; then :
elif identical 1 2 3; then pass nexus-identical-final "$IDENT_WHY (read as nexus ${HOLDER:0:8})"
else fail nexus-identical-final "$IDENT_WHY (read as nexus ${HOLDER:0:8})"; fi
for n in 1 2; do cli "$n" nexus list --json > /dev/null && note "node $n nexuses at the end: $(tr -d '\n' <<< "$OUT" | cut -c1-300)"; done

# ---- SIGTERM: every io-engine exits 0 ---------------------------------------------------------------------------
bad=
for n in 1 2 3; do
    [ -n "${NPID[$n]:-}" ] || { bad="$bad node $n: not running;"; continue; }
    stop_node "$n" 20 || bad="$bad node $n: $STOPPED;"
    note "node $n: $STOPPED"
done
if [ -z "$bad" ]; then pass nexus-sigterm; else fail nexus-sigterm "${bad%;}"; for n in 1 2 3; do excerpt "$LOGDIR/node-$n.log" 5; done; fi
finish
