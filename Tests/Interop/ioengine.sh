#!/usr/bin/env bash
# Halyard interop, the io-engine (issue 5 §6): a real etcd and three `halyard io-engine` processes
# on this machine's 127.0.0.1 (distinct free ports, each with a pool on a sparse file and
# `--store etcd://...`), pools and replicas created over the gRPC API with the `halyard pool|replica`
# CLI, and the Linux host in QEMU (guest/ioengine.sh) connecting to the replicas with nvme-cli and
# running fio with verify, across a SIGTERM + restart of node 1 on its state directory.
#
# usage: Tests/Interop/ioengine.sh [HALYARD_BINARY]
#   HALYARD_BINARY   default $HALYARD_BIN, else .build/debug/halyard (relative to the current dir)
# env:
#   HALYARD_INTEROP_CACHE   guest image (shared with run.sh; default ${TMPDIR:-/tmp}/halyard-interop)
#   IOENGINE_LOGS           where the logs of this run go (default $HALYARD_INTEROP_CACHE/last-ioengine;
#                           run.sh passes its own last-run/ioengine)
#   INTEROP_VERBOSE=1       print the guest console as well
#
# Output: "PASS name" / "FAIL name (reason)" per check, "  | " notes and excerpts, then one line
# "ioengine: N passed, N failed"; exit status 0 only when nothing failed. run.sh runs this script
# and folds its checks into its own "interop: ..." line. ≈3–4 minutes under TCG (one guest boot).
#
# Host checks (the guest's are described in guest/ioengine.sh):
#   ioengine-etcd-start              scripts/etcd.sh starts etcd on two free ports, its own STATE dir
#   ioengine-start-node1..3          each io-engine prints "ready" on stdout and accepts on its
#                                    NVMe/TCP, gRPC and metrics ports within 60 s
#   ioengine-pool-create-flag        node 1's pool from `--create-pool p1:FILE:2GiB` is online
#   ioengine-pool-create-cli         `pool create p2|p3 FILE --size 2GiB --json` on nodes 2 and 3
#   ioengine-replica-create          one replica per node: `replica create --pool P --size 1GiB
#                                    --uuid U --share --allow-host <guest> --json` (thin)
#   ioengine-replica-list            `replica list --json` on each node: exactly its replica, thin,
#                                    1 GiB, shared, nqn ...:replica:<uuid>, uri with the port,
#                                    allowedHosts = [the guest's host NQN]
#   ioengine-api-unknown-pool-notfound        replica create --pool nosuch → notFound
#   ioengine-api-unknown-replica-notfound     replica get <random uuid> → notFound
#   ioengine-api-size-zero-invalid            replica create --size 0 → invalidArgument
#   ioengine-api-size-unaligned-invalid       --size 1000 (not a multiple of the 4096-byte block) → invalidArgument
#   ioengine-api-duplicate-uuid-exists        same uuid, other size → alreadyExists
#   ioengine-api-thick-too-large-exhausted    --thick --size 4GiB in a 2 GiB pool → resourceExhausted
#   ioengine-api-destroy-busy-pool-precondition  pool destroy p1 (has a replica) → failedPrecondition
#                                    (each: exit status 1, stderr "error: <code>: ...")
#   ioengine-api-refusals-leave-nothing  afterwards node 1 has still pool p1 and exactly one replica
#   ioengine-etcd-node-records       etcdctl get --prefix /halyard/v1/nodes/ lists node1..node3
#   ioengine-metrics                 GET /metrics on each node: halyard_pool_used_bytes{pool="pN"},
#                                    halyard_process_resident_memory_bytes, halyard_process_cpu_seconds_total
#   ioengine-log-json                node 3 (`--log-format json`) writes JSON objects on stderr
#   ioengine-thin-allocated          after the guest wrote exactly 8 MiB: `replica get --json`
#                                    allocatedBytes in [8 MiB, 8 MiB + 2 extents]
#   ioengine-thin-ranges             `replica ranges --json` covers [0, 4 MiB) and [512, 516 MiB) only
#   ioengine-restart-sigterm         node 1 exits 0 within 15 s of SIGTERM
#   ioengine-restart-ready           node 1 ready again with the same state dir, no --create-pool
#   ioengine-restart-state           pool p1 (same uuid) online; replica: same uuid, size, thin,
#                                    allocatedBytes, shared, nqn, allowed hosts
#   ioengine-restart-etcd-record     node1's record is in etcd again
#   ioengine-metrics-replica-io      after the cross-node writes: halyard_replica_write_ops_total
#                                    > 0 for the replica of node 2 and of node 3
#   ioengine-hosts-set               `replica hosts U --set <other host NQN> --json` exits 0 and
#                                    allowedHosts reads back as [other]
#   ioengine-sigterm                 all three io-engines exit 0 within 15 s of SIGTERM
#
# The list run.sh expects (keep in sync with the checks here and in guest/ioengine.sh):
# CHECKS: ioengine-etcd-start ioengine-start-node1 ioengine-start-node2 ioengine-start-node3 ioengine-pool-create-flag ioengine-pool-create-cli ioengine-replica-create ioengine-replica-list ioengine-api-unknown-pool-notfound ioengine-api-unknown-replica-notfound ioengine-api-size-zero-invalid ioengine-api-size-unaligned-invalid ioengine-api-duplicate-uuid-exists ioengine-api-thick-too-large-exhausted ioengine-api-destroy-busy-pool-precondition ioengine-api-refusals-leave-nothing ioengine-etcd-node-records ioengine-metrics ioengine-log-json ioengine-host-not-allowed-refused ioengine-connect ioengine-ns-size ioengine-fio-randwrite-4k-verify ioengine-fio-seqwrite-128k-verify ioengine-resv-register ioengine-disconnect ioengine-thin-allocated ioengine-thin-ranges ioengine-restart-sigterm ioengine-restart-ready ioengine-restart-state ioengine-restart-etcd-record ioengine-reconnect ioengine-resv-after-restart ioengine-verify-only-after-restart ioengine-cross-node-1 ioengine-cross-node-2 ioengine-cross-node-3 ioengine-metrics-replica-io ioengine-hosts-set ioengine-hosts-set-disconnects ioengine-other-host-allowed ioengine-resv-fences-other-host ioengine-sigterm
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
IMAGE=$CACHE/image
BIN_ARG=${1:-${HALYARD_BIN:-.build/debug/halyard}}
LOGDIR=${IOENGINE_LOGS:-$CACHE/last-ioengine}
VERBOSE=${INTEROP_VERBOSE:-0}
GUEST_TIMEOUT=480
POOL_SIZE=2GiB
MiB=1048576
NQN_PREFIX=nqn.2026-11.io.halyard:replica:
OTHER_ID=00000000-0000-4000-8000-00000000e5e5
OTHER_NQN=nqn.2014-08.org.nvmexpress:uuid:$OTHER_ID

SUITE=ioengine
# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"   # pass, fail, note, excerpt, NPASS/NFAIL/REPORTED/CHECKS

# ---- cleanup: the guest, the three io-engines, etcd, temp files --------------------------------
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
    if [ "$SUMMARY_DONE" = 0 ]; then echo "ioengine: $NPASS passed, $((NFAIL + 1)) failed (interrupted)"; fi
}
trap cleanup EXIT
trap 'NOTRUN="interrupted"; exit 130' INT TERM

fail_all() { NOTRUN="not run: $1"; finish; }

# ---- prerequisites, logs, the binary under test ------------------------------------------------
for c in qemu-system-x86_64 python3 timeout curl etcd etcdctl; do
    command -v "$c" >/dev/null || fail_all "missing $c (see Tests/Interop/README.md; etcd: apt-get install etcd-server etcd-client)"
done
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR" || fail_all "cannot create $LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-ioengine.XXXXXX")
SHARE=$WORK/share; mkdir -p "$SHARE"
[ -x "$BIN_ARG" ] || fail_all "halyard binary $BIN_ARG does not exist or is not executable"
if [ "$(head -c 4 "$BIN_ARG" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    BIN=$WORK/halyard; cp "$BIN_ARG" "$BIN"          # a rebuild cannot swap it mid-run
else
    BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")
fi
for sub in "io-engine" "pool create" "replica create"; do
    # shellcheck disable=SC2086
    timeout 30 "$BIN" $sub --help > "$LOGDIR/help-${sub// /-}.txt" 2>&1 \
        || fail_all "'halyard $sub --help' failed: $(tail -n 2 "$LOGDIR/help-${sub// /-}.txt" | tr '\n' ' ')"
done
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
if STATE="$ETCD_STATE" ETCD_CLIENT_PORT=$EC ETCD_PEER_PORT=$EP ETCD_NAME=halyard-interop \
        bash "$ROOT/scripts/etcd.sh" start > "$LOGDIR/etcd-start.log" 2>&1; then
    pass ioengine-etcd-start "etcd $(etcd --version 2>/dev/null | head -n 1 | awk '{print $NF}') at 127.0.0.1:$EC (pid $(tail -n 1 "$LOGDIR/etcd-start.log"))"
else
    fail ioengine-etcd-start "$(tail -n 3 "$LOGDIR/etcd-start.log" | tr '\n' ' ')"
    fail_all "etcd did not start"
fi

# ---- JSON from the CLI ------------------------------------------------------------------------------
# jf KEY FIELD... < JSON: FIELD of the first object anywhere in the JSON whose uuid or name is KEY
# ("-": the first object); numbers given as strings (proto JSON's uint64) print as numbers, lists
# joined with ",", booleans true/false, a missing field prints "" (proto3 leaves defaults out).
# rc 1 when no such object.
# With several fields (jf KEY F1 F2 ...), one line per field.
jf() {
    python3 -c '
import json, sys
key, fields = sys.argv[1], sys.argv[2:]
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(2)
def objs(x):
    if isinstance(x, dict):
        yield x
        for v in x.values(): yield from objs(v)
    elif isinstance(x, list):
        for v in x: yield from objs(v)
for o in objs(data):
    if key == "-" or o.get("uuid") == key or o.get("name") == key:
        for field in fields:
            v = o.get(field, "")
            if isinstance(v, bool): v = "true" if v else "false"
            elif isinstance(v, list): v = ",".join(map(str, v))
            elif isinstance(v, (dict,)): v = json.dumps(v, sort_keys=True)
            print(str(v).replace("\n", " "))
        sys.exit(0)
sys.exit(1)' "$@"
}
# jcount FIELD < JSON: how many objects carry FIELD (e.g. poolName: replicas in a list)
jcount() {
    python3 -c '
import json, sys
def objs(x):
    if isinstance(x, dict):
        yield x
        for v in x.values(): yield from objs(v)
    elif isinstance(x, list):
        for v in x: yield from objs(v)
try:
    print(sum(1 for o in objs(json.load(sys.stdin)) if sys.argv[1] in o))
except ValueError:
    print(-1)' "$1"
}

# ---- the CLI -----------------------------------------------------------------------------------------
CLILOG=$LOGDIR/cli.log
OUT= ERR= CLI_RC=0
cli() {   # cli NODE WORD1 WORD2 ARGS...: `halyard WORD1 WORD2 --io-engine 127.0.0.1:<grpc of NODE> ARGS`;
          # stdout in OUT, stderr in ERR, rc returned (and in CLI_RC); everything logged
    local node=$1 w1=$2 w2=$3; shift 3
    echo "### $(date +%T.%N | cut -c1-12) halyard $w1 $w2 --io-engine 127.0.0.1:${GRPC[$node]} $*" >> "$CLILOG"
    OUT=$(timeout 60 "$BIN" "$w1" "$w2" --io-engine "127.0.0.1:${GRPC[$node]}" "$@" 2> "$WORK/cli.err" < /dev/null)
    CLI_RC=$?
    ERR=$(cat "$WORK/cli.err")
    { [ -n "$OUT" ] && printf '%s\n' "$OUT"; [ -n "$ERR" ] && printf 'stderr: %s\n' "$ERR"; echo "rc=$CLI_RC"; } >> "$CLILOG"
    return "$CLI_RC"
}
cli_why() { echo "rc=$CLI_RC: $(printf '%s' "${ERR:-$OUT}" | tail -n 2 | tr '\n' ' ' | cut -c1-300)"; }
# expect_error NAME CODE NODE WORD1 WORD2 ARGS...: the command fails with exit status 1 and
# "error: CODE: ..." on stderr
expect_error() {
    local name=$1 code=$2; shift 2
    cli "$@"
    local line
    line=$(grep -m1 '^error: ' <<< "$ERR")
    if [ "$CLI_RC" = 0 ]; then fail "$name" "succeeded (want $code): $(head -c 200 <<< "$OUT" | tr '\n' ' ')"
    elif [ "$CLI_RC" != 1 ]; then fail "$name" "exit status $CLI_RC (want 1); stderr: $(tr '\n' ' ' <<< "$ERR" | cut -c1-250)"
    elif [[ "$line" == "error: $code: "* ]]; then pass "$name" "$line"
    else fail "$name" "want 'error: $code: ...', got: $(tr '\n' ' ' <<< "$ERR" | cut -c1-250)"; fi
}

# ---- the io-engines ------------------------------------------------------------------------------------
mkdir -p "$WORK/n1/state" "$WORK/n2/state" "$WORK/n3/state"
POOL_FILE_1=$WORK/n1/pool1.img POOL_FILE_2=$WORK/n2/pool2.img POOL_FILE_3=$WORK/n3/pool3.img
node_args() {   # node_args N: the io-engine command line of node N (no --create-pool)
    local n=$1
    NARGS=(--node "node$n" --nvmf "127.0.0.1:${NVMF[$n]}" --advertise 10.0.2.2 --grpc "127.0.0.1:${GRPC[$n]}"
           --metrics "127.0.0.1:${METRICS[$n]}" --state-dir "$WORK/n$n/state" --store "etcd://127.0.0.1:$EC")
    [ "$n" = 3 ] && NARGS+=(--log-format json)
    return 0
}
start_node() {   # start_node N [EXTRA ARGS...]: stdout -> node-N.out, stderr -> node-N.log (appended)
    local n=$1; shift
    node_args "$n"
    echo "### $(date +%T) start: halyard io-engine ${NARGS[*]} $*" | tee -a "$LOGDIR/node-$n.out" >> "$LOGDIR/node-$n.log"
    "$BIN" io-engine "${NARGS[@]}" "$@" < /dev/null >> "$LOGDIR/node-$n.out" 2>> "$LOGDIR/node-$n.log" &
    NPID[$n]=$!
    READY_FROM[$n]=$(wc -l < "$LOGDIR/node-$n.out")
}
declare -A READY_FROM=()
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
        pass "ioengine-start-node$n" "$(tail -n +"$((READY_FROM[$n] + 1))" "$LOGDIR/node-$n.out" | grep -m1 '^ready' | cut -c1-200)"
        UP[$n]=1
    else
        fail "ioengine-start-node$n" "$WHY"; excerpt "$LOGDIR/node-$n.log" 12
    fi
done
[ -n "${UP[1]:-}" ] || fail_all "node 1 did not start"

# ---- pools ------------------------------------------------------------------------------------------------
pool_ok() {   # pool_ok NAME (JSON in OUT): online with a capacity; sets POOL_DESC
    local st cap uuid disk ext
    { read -r st; read -r cap; read -r uuid; read -r disk; read -r ext; } < <(jf "$1" state capacityBytes uuid disk extentSize <<< "$OUT")
    POOL_DESC="state=$st capacity=${cap:-?} uuid=$uuid disk=$disk extent=$ext"
    [[ "${st^^}" == *ONLINE* ]] && [ "${cap:-0}" -gt 0 ] 2>/dev/null
}
if cli 1 pool get p1 --json && pool_ok p1; then
    pass ioengine-pool-create-flag "node 1 --create-pool p1:...:$POOL_SIZE: $POOL_DESC"
    EXTENT=$(jf p1 extentSize <<< "$OUT")
else
    fail ioengine-pool-create-flag "pool get p1: $(cli_why) ${POOL_DESC:-}"
fi
EXTENT=${EXTENT:-$MiB}
[ "$EXTENT" -gt 0 ] 2>/dev/null || EXTENT=$MiB
bad=
for n in 2 3; do
    [ -n "${UP[$n]:-}" ] || { bad="$bad node $n not running;"; continue; }
    f=POOL_FILE_$n
    if cli "$n" pool create "p$n" "${!f}" --size "$POOL_SIZE" --json && pool_ok "p$n"; then
        note "node $n: pool create p$n: $POOL_DESC"
        [ -f "${!f}" ] || bad="$bad p$n: no file ${!f};"
    else
        bad="$bad p$n: $(cli_why) ${POOL_DESC:-};"
    fi
done
if [ -z "$bad" ]; then pass ioengine-pool-create-cli "$(du -h --apparent-size "$POOL_FILE_2" | cut -f1) sparse file, $(du -h "$POOL_FILE_2" | cut -f1) on disk"
else fail ioengine-pool-create-cli "${bad%;}"; fi

# ---- replicas ---------------------------------------------------------------------------------------------
newuuid() { cat /proc/sys/kernel/random/uuid; }
declare -A RUUID=()
for n in 1 2 3; do RUUID[$n]=$(newuuid); done
bad=
for n in 1 2 3; do
    [ -n "${UP[$n]:-}" ] || { bad="$bad node $n not running;"; continue; }
    if cli "$n" replica create --pool "p$n" --size 1GiB --uuid "${RUUID[$n]}" --share --allow-host "$GUEST_HOSTNQN" --json &&
       [ "$(jf "${RUUID[$n]}" uuid <<< "$OUT")" = "${RUUID[$n]}" ]; then
        note "node $n: replica ${RUUID[$n]} nqn $(jf "${RUUID[$n]}" nqn <<< "$OUT") uri $(jf "${RUUID[$n]}" uri <<< "$OUT")"
    else
        bad="$bad node $n: $(cli_why);"
    fi
done
if [ -z "$bad" ]; then pass ioengine-replica-create; else fail ioengine-replica-create "${bad%;}"; fi

bad=
for n in 1 2 3; do
    [ -n "${UP[$n]:-}" ] || { bad="$bad node $n not running;"; continue; }
    u=${RUUID[$n]}
    if ! cli "$n" replica list --json; then bad="$bad node $n: $(cli_why);"; continue; fi
    cnt=$(jcount poolName <<< "$OUT")
    if ! jf "$u" uuid <<< "$OUT" > /dev/null; then bad="$bad node $n: $u not listed ($(head -c 200 <<< "$OUT" | tr '\n' ' '));"; continue; fi
    { read -r size; read -r thin; read -r shared; read -r nqn; read -r uri; read -r hosts; read -r pool; } \
        < <(jf "$u" sizeBytes thin shared nqn uri allowedHosts poolName <<< "$OUT")
    why=
    [ "$cnt" = 1 ] || why="$why $cnt replicas listed (want 1);"
    [ "$size" = $((1024 * MiB)) ] || why="$why sizeBytes=$size;"
    [ "$thin" = true ] || why="$why thin=$thin;"
    [ "$shared" = true ] || why="$why shared=$shared;"
    [ "$pool" = "p$n" ] || why="$why poolName=$pool;"
    [ "$nqn" = "$NQN_PREFIX$u" ] || why="$why nqn=$nqn;"
    [[ "$uri" == *"10.0.2.2:${NVMF[$n]}"*"$NQN_PREFIX$u"* ]] || why="$why uri=$uri;"
    [ "$hosts" = "$GUEST_HOSTNQN" ] || why="$why allowedHosts=$hosts;"
    [ -z "$why" ] || bad="$bad node $n:$why"
done
if [ -z "$bad" ]; then pass ioengine-replica-list "each node lists its one replica: thin, 1 GiB, shared, nqn/uri/allowedHosts as created"
else fail ioengine-replica-list "${bad%;}"; fi

# ---- bad API input ---------------------------------------------------------------------------------------
expect_error ioengine-api-unknown-pool-notfound notFound 1 replica create --pool nosuch --size 1GiB --uuid "$(newuuid)"
expect_error ioengine-api-unknown-replica-notfound notFound 1 replica get "$(newuuid)"
expect_error ioengine-api-size-zero-invalid invalidArgument 1 replica create --pool p1 --size 0 --uuid "$(newuuid)"
expect_error ioengine-api-size-unaligned-invalid invalidArgument 1 replica create --pool p1 --size 1000 --uuid "$(newuuid)"
expect_error ioengine-api-duplicate-uuid-exists alreadyExists 1 replica create --pool p1 --size 512MiB --uuid "${RUUID[1]}"
expect_error ioengine-api-thick-too-large-exhausted resourceExhausted 1 replica create --pool p1 --size 4GiB --thick --uuid "$(newuuid)"
expect_error ioengine-api-destroy-busy-pool-precondition failedPrecondition 1 pool destroy p1
# none of the refused calls may have left anything behind
if ! cli 1 replica list --json; then fail ioengine-api-refusals-leave-nothing "replica list: $(cli_why)"
elif [ "$(jcount poolName <<< "$OUT")" != 1 ]; then
    fail ioengine-api-refusals-leave-nothing "after the refused calls node 1 lists $(jcount poolName <<< "$OUT") replicas (want 1)"
elif ! cli 1 pool get p1 --json || ! pool_ok p1; then
    fail ioengine-api-refusals-leave-nothing "pool p1 after the refused destroy: $(cli_why) ${POOL_DESC:-}"
else
    pass ioengine-api-refusals-leave-nothing "node 1 still has pool p1 (online) and exactly its one replica"
fi

# ---- etcd node records, metrics, JSON logs ---------------------------------------------------------------
etcd_keys() { "${ETCDCTL[@]}" get --prefix /halyard/v1/nodes/ --keys-only 2>> "$LOGDIR/etcdctl.err" | grep -v '^$'; }
keys= missing=
for ((i = 0; i < 50; i++)); do   # registration may trail "ready" a little
    keys=$(etcd_keys) missing=
    for n in 1 2 3; do grep -qx "/halyard/v1/nodes/node$n" <<< "$keys" || missing="$missing node$n"; done
    [ -z "$missing" ] && break
    sleep 0.2
done
"${ETCDCTL[@]}" get --prefix /halyard/v1/nodes/ > "$LOGDIR/etcd-nodes.txt" 2>&1
if [ -z "$missing" ]; then
    pass ioengine-etcd-node-records "$(tr '\n' ' ' <<< "$keys")"
    note "node1's record: $(sed -n '/^\/halyard\/v1\/nodes\/node1$/{n;p;}' "$LOGDIR/etcd-nodes.txt" | cut -c1-250)"
else
    fail ioengine-etcd-node-records "missing$missing under /halyard/v1/nodes/; keys: $(tr '\n' ' ' <<< "$keys") $(tail -n 1 "$LOGDIR/etcdctl.err" 2>/dev/null)"
fi

scrape() { curl -sf --max-time 10 "http://127.0.0.1:${METRICS[$1]}/metrics"; }
# metric NODE NAME [LABELMATCH]: the value of the first sample of NAME (whose labels contain LABELMATCH)
metric() {
    scrape "$1" | awk -v n="$2" -v l="${3:-}" '
        $1 !~ /^#/ { name = $1; sub(/\{.*/, "", name)
                     if (name == n && index($1, l) > 0) { print $NF; exit } }'
}
bad=
for n in 1 2 3; do
    [ -n "${UP[$n]:-}" ] || { bad="$bad node $n not running;"; continue; }
    if ! scrape "$n" > "$LOGDIR/metrics-node$n.txt"; then bad="$bad node $n: GET /metrics failed;"; continue; fi
    for m in "halyard_pool_used_bytes{pool=\"p$n\"" halyard_process_resident_memory_bytes halyard_process_cpu_seconds_total; do
        grep -q "^$m" "$LOGDIR/metrics-node$n.txt" || bad="$bad node $n: no $m;"
    done
done
if [ -z "$bad" ]; then
    pass ioengine-metrics "$(grep -c '^halyard_' "$LOGDIR/metrics-node1.txt") halyard_ samples on node 1; RSS $(awk '/^halyard_process_resident_memory_bytes/ { printf "%.0f MiB", $NF / 1048576 }' "$LOGDIR/metrics-node1.txt")"
else
    fail ioengine-metrics "${bad%;}"
fi

if [ -s "$LOGDIR/node-3.log" ] && why=$(python3 - "$LOGDIR/node-3.log" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1], errors="replace") if l.strip() and not l.startswith("### ")]
bad = []
for l in lines:
    try:
        o = json.loads(l)
        if not isinstance(o, dict): bad.append(l)
    except ValueError:
        bad.append(l)
if not lines or bad:
    print(f"{len(bad)} of {len(lines)} stderr lines are not JSON objects; first: {(bad or ['(no lines)'])[0].strip()[:200]}")
    sys.exit(1)
print(f"{len(lines)} lines, keys of the first: {sorted(json.loads(lines[0]).keys())}")
PY
); then pass ioengine-log-json "$why"
else fail ioengine-log-json "node 3 (--log-format json): ${why:-no stderr}"; fi
[ -s "$LOGDIR/node-3.log" ] && note "node 3 log line: $(grep -v '^###' "$LOGDIR/node-3.log" | head -n 1 | cut -c1-250)"

# ---- host steps, on the guest's request ----------------------------------------------------------------------
R1=${RUUID[1]}
BEFORE_RESTART=
ANSWER=
do_request() {   # do_request NAME: act, set ANSWER ("ok" or "fail: ...")
    local lo hi alloc used why v n
    case "$1" in
        check-allocated)
            lo=$((8 * MiB)) hi=$((8 * MiB + 2 * EXTENT))
            if cli 1 replica get "$R1" --json; then
                alloc=$(jf "$R1" allocatedBytes <<< "$OUT"); alloc=${alloc:-0}
                BEFORE_RESTART=$OUT
                if [ "$alloc" -ge "$lo" ] && [ "$alloc" -le "$hi" ] 2>/dev/null; then
                    cli 1 pool get p1 --json; used=$(jf p1 usedBytes <<< "$OUT")
                    pass ioengine-thin-allocated "allocatedBytes=$alloc ($(awk -v a="$alloc" 'BEGIN { printf "%.2f", a / 1048576 }') MiB) of a 1 GiB replica after 8 MiB written; pool usedBytes=${used:-?}"
                else
                    fail ioengine-thin-allocated "allocatedBytes=$alloc, want $lo..$hi (8 MiB .. 8 MiB + 2 extents of $EXTENT)"
                fi
            else
                fail ioengine-thin-allocated "replica get: $(cli_why)"
            fi
            if cli 1 replica ranges "$R1" --json && printf '%s' "$OUT" > "$WORK/ranges.json" &&
               why=$(python3 - "$EXTENT" "$WORK/ranges.json" <<'PY'
import json, sys
ext = int(sys.argv[1]); M = 1 << 20
j = json.load(open(sys.argv[2]))
rs = j.get("ranges", []) if isinstance(j, dict) else j
rs = [(int(r.get("offset", 0)), int(r.get("length", 0))) for r in rs]
def covered(a, b): return all(any(o <= x < o + l for o, l in rs) for x in range(a, b, 4096))
total = sum(l for _, l in rs)
outside = [(o, l) for o, l in rs if not (o < 4 * M + ext and o + l > -ext) and not (o < 516 * M + ext and o + l > 512 * M - ext)]
desc = ", ".join(f"[{o // M}, {(o + l) // M}) MiB" if o % M == 0 and l % M == 0 else f"[{o}, +{l})" for o, l in rs)
if not covered(0, 4 * M) or not covered(512 * M, 516 * M) or outside or total > 8 * M + 2 * ext:
    print(f"ranges {desc} (total {total}); want [0, 4) and [512, 516) MiB only"); sys.exit(1)
print(f"{desc}, total {total // 1024} KiB")
PY
); then pass ioengine-thin-ranges "$why"
            else fail ioengine-thin-ranges "${why:-$(cli_why)}"; fi
            ANSWER=ok ;;
        restart-node1)
            cli 1 replica get "$R1" --json && BEFORE_RESTART=$OUT
            cli 1 pool get p1 --json; local pool_before=$OUT
            if stop_node 1 15; then pass ioengine-restart-sigterm "node 1 $STOPPED"
            else fail ioengine-restart-sigterm "node 1 $STOPPED"; excerpt "$LOGDIR/node-1.log" 10; fi
            start_node 1          # the same state dir, no --create-pool
            if ! wait_ready 1 60; then
                fail ioengine-restart-ready "$WHY"; excerpt "$LOGDIR/node-1.log" 12
                fail ioengine-restart-state "node 1 did not come back"
                fail ioengine-restart-etcd-record "node 1 did not come back"
                ANSWER="fail: node 1 did not come back: $WHY"; return
            fi
            pass ioengine-restart-ready "$(tail -n +"$((READY_FROM[1] + 1))" "$LOGDIR/node-1.out" | grep -m1 '^ready' | cut -c1-200)"
            why=
            if cli 1 pool get p1 --json; then
                pool_ok p1 || why="$why pool p1: $POOL_DESC;"
                [ "$(jf p1 uuid <<< "$OUT")" = "$(jf p1 uuid <<< "$pool_before")" ] || why="$why pool uuid $(jf p1 uuid <<< "$pool_before") -> $(jf p1 uuid <<< "$OUT");"
            else why="$why pool get p1: $(cli_why);"; fi
            if cli 1 replica get "$R1" --json; then
                local fields=(uuid poolName sizeBytes thin allocatedBytes shared nqn allowedHosts) a b k
                mapfile -t a < <(jf "$R1" "${fields[@]}" <<< "$BEFORE_RESTART")
                mapfile -t b < <(jf "$R1" "${fields[@]}" <<< "$OUT")
                for k in "${!fields[@]}"; do
                    [ "${a[$k]:-}" = "${b[$k]:-}" ] || why="$why ${fields[$k]}: '${a[$k]:-}' -> '${b[$k]:-}';"
                done
                [ "${b[5]:-}" = true ] || why="$why not shared;"
            else why="$why replica get: $(cli_why);"; fi
            if [ -z "$why" ]; then pass ioengine-restart-state "pool p1 online, replica $R1 back: allocatedBytes $(jf "$R1" allocatedBytes <<< "$OUT"), shared, allowedHosts $(jf "$R1" allowedHosts <<< "$OUT")"
            else fail ioengine-restart-state "${why%;}"; fi
            for ((n = 0; n < 50; n++)); do etcd_keys | grep -qx /halyard/v1/nodes/node1 && break; sleep 0.2; done
            if etcd_keys | grep -qx /halyard/v1/nodes/node1; then pass ioengine-restart-etcd-record
            else fail ioengine-restart-etcd-record "no /halyard/v1/nodes/node1 10 s after the restart; keys: $(etcd_keys | tr '\n' ' ')"; fi
            ANSWER=ok ;;
        check-replica-io)
            why=
            for n in 2 3; do
                v=$(metric "$n" halyard_replica_write_ops_total "replica=\"${RUUID[$n]}\"")
                scrape "$n" > "$LOGDIR/metrics-node$n-after-io.txt"
                awk -v v="${v:-0}" 'BEGIN { exit !(v > 0) }' || why="$why node $n: halyard_replica_write_ops_total{replica=\"${RUUID[$n]}\"} = '${v:-missing}';"
                note "node $n after 1 MiB: write ops ${v:-?}, written bytes $(metric "$n" halyard_replica_written_bytes_total "replica=\"${RUUID[$n]}\"" || true), pool used $(metric "$n" halyard_pool_used_bytes "pool=\"p$n\"")"
            done
            if [ -z "$why" ]; then pass ioengine-metrics-replica-io; else fail ioengine-metrics-replica-io "${why%;}"; fi
            ANSWER=ok ;;
        set-hosts-other)
            if cli 1 replica hosts "$R1" --set "$OTHER_NQN" --json; then
                v=$(jf "$R1" allowedHosts <<< "$OUT")
                if [ "$v" = "$OTHER_NQN" ]; then pass ioengine-hosts-set "allowedHosts = [$v]"; ANSWER=ok
                else fail ioengine-hosts-set "allowedHosts reads '$v' (want $OTHER_NQN)"; ANSWER="fail: allowedHosts $v"; fi
            else
                fail ioengine-hosts-set "$(cli_why)"; ANSWER="fail: replica hosts --set failed"
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
        echo "### $(date +%T) guest request: $n" >> "$CLILOG"
        do_request "$n"
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
if [ -n "${UP[2]:-}" ] && [ -n "${UP[3]:-}" ]; then
    "$HERE/run-guest.sh" -d "$IMAGE" -t "$GUEST_TIMEOUT" -s "$SHARE" -r "$RES" -l "$CONSOLE" \
        -k "nvme_core.admin_timeout=20" -f "$HERE/guest/lib.sh" \
        -e R1="${RUUID[1]}" -e R2="${RUUID[2]}" -e R3="${RUUID[3]}" \
        -e N1="${NVMF[1]}" -e N2="${NVMF[2]}" -e N3="${NVMF[3]}" -e OTHER_ID="$OTHER_ID" \
        "$HERE/guest/ioengine.sh" > "$LOGDIR/guest.out" 2>&1 &
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
    note "guest: ${why#run-guest: } (rc=$grc)"
    [ "$VERBOSE" = 1 ] && sed 's/^/  | /' "$CONSOLE"
    if [ "$NFAIL" -gt "$before" ] && [ "$VERBOSE" != 1 ]; then
        note "--- guest console: FAIL/INFO lines and the last kernel messages (full log: $CONSOLE)"
        grep -E '^(FAIL|INFO) ' "$CONSOLE" | tail -n 25 | cut -c1-300 | sed 's/^/  | /'
        grep -E '^\[ *[0-9.]+\] nvme' "$CONSOLE" | tail -n 12 | sed 's/^/  | /'
        for n in 1 2 3; do excerpt "$LOGDIR/node-$n.log" 8; done
    fi
else
    NOTRUN="not run: nodes 2 and 3 must both be up for the guest boot"
fi

# ---- SIGTERM: every io-engine exits 0 ---------------------------------------------------------------------------
bad=
for n in 1 2 3; do
    [ -n "${NPID[$n]:-}" ] || { bad="$bad node $n: not running;"; continue; }
    stop_node "$n" 15 || bad="$bad node $n: $STOPPED;"
    note "node $n: $STOPPED"
done
if [ -z "$bad" ]; then pass ioengine-sigterm; else fail ioengine-sigterm "${bad%;}"; fi
note "etcd keys left under /halyard/v1/nodes/ after the shutdown: $(etcd_keys | tr '\n' ' ')"
finish
