#!/usr/bin/env bash
# Halyard interop suite: the real Linux NVMe/TCP initiator (kernel 6.1 in QEMU, nvme-cli, fio)
# against `halyard nvmf-target` processes on this machine's 127.0.0.1.
#
# usage: Tests/Interop/run.sh [HALYARD_BINARY]
#   HALYARD_BINARY   default $HALYARD_BIN, else .build/debug/halyard (relative to the current dir)
# env:
#   HALYARD_INTEROP_CACHE   guest image + logs of the last run (default ${TMPDIR:-/tmp}/halyard-interop)
#   INTEROP_VERBOSE=1       print the guest consoles as well
#
# Output: one line per check, "PASS name" or "FAIL name (reason)", excerpts of the guest console
# and target logs (indented with "  | ") after a boot with failures, then exactly one summary
# line "interop: N passed, N failed". Exit status 0 only when nothing failed.
# Logs of the last run are kept in $HALYARD_INTEROP_CACHE/last-run/ (guest consoles, target logs).
#
# Installs nothing: prerequisites (Debian 12) are
#   apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils linux-image-amd64 \
#       nvme-cli busybox-static cpio kmod fio        (and python3)
#
# How it runs (≈3 minutes under TCG):
#   - three targets as separate processes, each on free ports of 127.0.0.1:
#       main  two listeners + discovery, --advertise 10.0.2.2, 128 MiB in memory
#       acl   one listener, --allow-host <the guest's host NQN>, --block-size 4096, 16 MiB
#       file  one listener, --file <temp file> --size 64MiB
#   - boot 1 (guest/main.sh, two NICs): discovery, refusals, two-path multipath, identify fields,
#     dd and fio verify, reads past the end, disconnect, digests
#   - boot 2 (guest/restart.sh): write, SIGTERM + restart the file target on request of the
#     guest, reconnect, read back
#   - host-side checks: targets listen, the target logs the disconnect, SIGTERM shutdown.
#   - sub-suites with their own processes and boot (run_suite): ana.sh, nvmet.sh, ioengine.sh,
#     nexus.sh
#     (each also runs alone: Tests/Interop/ioengine.sh .build/debug/halyard)
#   Guest checks arrive on the guest's results channel (a serial port written to a file); the
#   guest asks the host for actions (markers, target restart) through files in a 9p share.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
IMAGE=$CACHE/image
BIN_ARG=${1:-${HALYARD_BIN:-.build/debug/halyard}}
VERBOSE=${INTEROP_VERBOSE:-0}
# Guest kernel: fail admin commands (Connect included) after 20 s instead of 60 s, so a target
# that never answers costs less time; I/O timeout stays at the default 30 s.
KARGS="nvme_core.admin_timeout=20"

NPASS=0 NFAIL=0 SUMMARY_DONE=0
declare -A REPORTED=() TPID=() MARK=()
pass() { echo "PASS $1"; NPASS=$((NPASS + 1)); REPORTED[$1]=1; }
fail() { echo "FAIL $1 (${2:-})"; NFAIL=$((NFAIL + 1)); REPORTED[$1]=1; }
note() { echo "  | $*"; }
excerpt() {   # excerpt FILE N: last N lines of FILE, indented
    [ -s "$1" ] || return 0
    note "--- ${1##*/} (last $2 lines)"
    tail -n "$2" "$1" | tr -d '\r' | sed 's/^/  | /'
}

# ---- cleanup: every process and temp file this run started ----------------------------------
WORK=
GPID=
cleanup() {
    local rc=$? p n
    [ -n "$GPID" ] && kill "$GPID" 2>/dev/null && wait "$GPID" 2>/dev/null   # run-guest kills its qemu
    for n in "${!TPID[@]}"; do
        p=${TPID[$n]}
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ -d "$WORK/logs" ]; then
            rm -rf "$CACHE/last-run.old"; [ -d "$CACHE/last-run" ] && mv "$CACHE/last-run" "$CACHE/last-run.old"
            mv "$WORK/logs" "$CACHE/last-run" 2>/dev/null && rm -rf "$CACHE/last-run.old"
        fi
        rm -rf "$WORK"
    fi
    if [ "$SUMMARY_DONE" = 0 ]; then
        [ "$rc" = 0 ] || [ "$NFAIL" -gt 0 ] || fail interop-run "aborted (rc=$rc)"
        echo "interop: $NPASS passed, $NFAIL failed"
    fi
}
trap cleanup EXIT
trap 'fail interop-run "interrupted"; exit 130' INT TERM

finish() {   # stop everything, keep the logs, print the one summary line, exit
    SUMMARY_DONE=1
    trap - EXIT
    cleanup
    [ -n "$WORK" ] && echo "logs: $CACHE/last-run/"
    echo "interop: $NPASS passed, $NFAIL failed"
    [ "$NFAIL" = 0 ] && exit 0
    exit 1
}

# ---- prerequisites ----------------------------------------------------------------------------
missing=()
for c in qemu-system-x86_64 python3 cpio timeout flock sha256sum; do command -v "$c" >/dev/null || missing+=("$c"); done
for f in /bin/busybox /usr/sbin/nvme /usr/bin/fio /usr/bin/kmod /usr/sbin/depmod; do [ -x "$f" ] || missing+=("$f"); done
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || missing+=("/boot/vmlinuz-*-amd64")
ls -d /lib/modules/*-amd64 >/dev/null 2>&1 || missing+=("/lib/modules/*-amd64")
if [ ${#missing[@]} -gt 0 ]; then
    echo "interop: missing prerequisites: ${missing[*]}" >&2
    echo "interop: install with: apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils linux-image-amd64 nvme-cli busybox-static cpio kmod fio python3" >&2
    fail prerequisites "missing ${missing[*]}"
    finish
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-interop-run.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS" "$CACHE"

# ---- the binary under test (copied, so a rebuild cannot swap it mid-run) -----------------------
if [ ! -x "$BIN_ARG" ]; then
    fail halyard-binary "$BIN_ARG does not exist or is not executable (build it: swift build)"
    finish
fi
if [ "$(head -c 4 "$BIN_ARG" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    BIN=$WORK/halyard; cp "$BIN_ARG" "$BIN"
else
    BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")   # e.g. a wrapper script
fi
if ! timeout 30 "$BIN" nvmf-target --help > "$LOGS/help.txt" 2>&1; then
    fail halyard-binary "'$BIN_ARG nvmf-target --help' failed: $(tail -n 2 "$LOGS/help.txt" | tr '\n' ' ')"
    finish
fi

# ---- guest image (built once, cached) ---------------------------------------------------------
if ! "$HERE/run-guest.sh" -d "$IMAGE" --build-only > "$LOGS/build-image.log" 2>&1; then
    fail guest-image "building the guest image failed: $(tail -n 3 "$LOGS/build-image.log" | tr '\n' ' ')"
    finish
fi
GUEST_HOSTNQN=$(cat "$IMAGE/hostnqn")

# ---- free ports on 127.0.0.1 ------------------------------------------------------------------
free_ports() {   # free_ports N: N distinct currently-free TCP ports of 127.0.0.1
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r P1 P2 DISC ACLP FP RP1 RP2 <<< "$(free_ports 7)"

# ---- targets ------------------------------------------------------------------------------------
NQN=nqn.2026-11.io.halyard:interop-main
ACL_NQN=nqn.2026-11.io.halyard:interop-acl
FNQN=nqn.2026-11.io.halyard:interop-file
RNQN=nqn.2026-11.io.halyard:interop-resv
SIZE=$((128 << 20)) FSIZE=$((64 << 20))
TARGET_ARGS_main=(--listen "127.0.0.1:$P1" --listen "127.0.0.1:$P2" --discovery "127.0.0.1:$DISC"
                  --advertise 10.0.2.2 --nqn "$NQN" --memory 128MiB)
TARGET_ARGS_acl=(--listen "127.0.0.1:$ACLP" --nqn "$ACL_NQN" --memory 16MiB --block-size 4096
                 --allow-host "$GUEST_HOSTNQN")
TARGET_ARGS_file=(--listen "127.0.0.1:$FP" --nqn "$FNQN" --file "$WORK/file-target.img" --size 64MiB)
TARGET_ARGS_resv=(--listen "127.0.0.1:$RP1" --listen "127.0.0.1:$RP2" --nqn "$RNQN" --file "$WORK/resv-target.img" --size 16MiB)
declare -A TPORTS=([main]="$P1 $P2 $DISC" [acl]="$ACLP" [file]="$FP" [resv]="$RP1 $RP2")

start_target() {   # start_target NAME: start it with TARGET_ARGS_NAME, log to target-NAME.log
    local -n args="TARGET_ARGS_$1"
    echo "### $(date +%T) start: halyard nvmf-target ${args[*]}" >> "$LOGS/target-$1.log"
    "$BIN" nvmf-target "${args[@]}" < /dev/null >> "$LOGS/target-$1.log" 2>&1 &
    TPID[$1]=$!
}
wait_listening() {   # wait_listening NAME SECONDS: until all of NAME's ports accept (rc 0)
    python3 - "${TPID[$1]}" "$2" ${TPORTS[$1]} <<'PY'
import socket, sys, time
pid, end, ports = int(sys.argv[1]), time.time() + float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
def alive():
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
while ports and time.time() < end and alive():
    for p in list(ports):
        try:
            socket.create_connection(("127.0.0.1", p), 0.5).close()
            ports.remove(p)
        except OSError:
            pass
    if ports:
        time.sleep(0.2)
if ports:
    print(("process exited; " if not alive() else "") + "not accepting on " + " ".join(map(str, ports)))
sys.exit(1 if ports else 0)
PY
}
STOPPED=
stop_target() {   # stop_target NAME SECONDS: SIGTERM and wait; sets STOPPED (how it ended);
                  # rc 0 only if it exited with status 0 in time. Runs in this shell (needs `wait`).
    local p=${TPID[$1]} i st
    if ! kill -0 "$p" 2>/dev/null; then
        wait "$p" 2>/dev/null; st=$?
        STOPPED="had already exited (status $st)"; return 1
    fi
    kill -TERM "$p"
    for ((i = 0; i < $2 * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
        kill -KILL "$p"; wait "$p" 2>/dev/null
        STOPPED="still running ${2}s after SIGTERM (killed)"; return 1
    fi
    wait "$p"; st=$?
    STOPPED="exited with status $st $(awk -v i="$i" 'BEGIN { printf "%.1f", i / 10 }')s after SIGTERM"
    [ "$st" = 0 ]
}

declare -A UP=()
for t in main acl file resv; do
    start_target "$t"
done
for t in main acl file resv; do
    if why=$(wait_listening "$t" 30); then pass "target-start-$t"; UP[$t]=1
    else fail "target-start-$t" "$why"; excerpt "$LOGS/target-$t.log" 10; fi
done

# ---- host side of the guest's requests (files in the 9p share) --------------------------------
ANSWER=
do_request() {   # do_request NAME: act, set ANSWER ("ok" or "fail: ...")
    local why
    case "$1" in
        mark-*)
            MARK[${1#mark-}]=$(stat -c %s "$LOGS/target-main.log"); ANSWER=ok ;;
        restart-file-target)
            if stop_target file 15; then pass target-file-sigterm
            else fail target-file-sigterm "$STOPPED"; fi
            note "file target: $STOPPED"
            start_target file
            if why=$(wait_listening file 30); then pass target-file-restart; ANSWER=ok
            else fail target-file-restart "$why"; ANSWER="fail: target did not come back: $why"; fi ;;
        restart-resv-target)
            stop_target resv 15 || note "resv target: $STOPPED"
            start_target resv
            if why=$(wait_listening resv 30); then ANSWER=ok
            else ANSWER="fail: target did not come back: $why"; fi ;;
        *)
            ANSWER="fail: unknown request $1" ;;
    esac
}
handle_requests() {   # handle_requests SHAREDIR
    local f n
    for f in "$1"/req.*; do
        [ -e "$f" ] || continue
        n=${f##*/req.}
        case "$n" in *.tmp) continue ;; esac
        [ -e "$1/ack.$n" ] && continue
        do_request "$n"
        printf '%s\n' "$ANSWER" > "$1/ack.$n.tmp" && mv "$1/ack.$n.tmp" "$1/ack.$n"
    done
}

# ---- guest boots --------------------------------------------------------------------------------
declare -A SEEN=()
collect_results() {   # collect_results FILE: count and print the complete new PASS/FAIL lines
    local f=$1 i=0 line
    [ -f "$f" ] || return 0
    while IFS= read -r line; do
        i=$((i + 1))
        [ "$i" -le "${SEEN[$f]:-0}" ] && continue
        line=${line%$'\r'}
        case "$line" in
            "PASS "*) line=${line#PASS }; pass "${line%% *}" ;;
            "FAIL "*) line=${line#FAIL }; local n=${line%% *} r=${line#* }
                      [ "$r" = "$line" ] && r=; r=${r#(}; fail "$n" "${r%)}" ;;
        esac
    done < "$f"
    SEEN[$f]=$i
}
run_boot() {   # run_boot NAME NICS TIMEOUT SCRIPT [-e K=V ...]
    local name=$1 nics=$2 to=$3 script=$4; shift 4
    local share=$WORK/share-$name res=$LOGS/results-$name.txt before=$NFAIL grc c why
    mkdir -p "$share"
    echo "### $(date +%T) boot $name: $(basename "$script")" >> "$LOGS/target-main.log"
    "$HERE/run-guest.sh" -d "$IMAGE" -t "$to" -n "$nics" -s "$share" -r "$res" -k "$KARGS" \
        -l "$LOGS/guest-$name.log" -f "$HERE/guest/lib.sh" "$@" "$script" > "$LOGS/guest-$name.out" 2>&1 &
    GPID=$!
    while kill -0 "$GPID" 2>/dev/null; do
        collect_results "$res"
        handle_requests "$share"
        sleep 0.2
    done
    wait "$GPID"; grc=$?; GPID=
    collect_results "$res"
    handle_requests "$share"
    why=$(tail -n 1 "$LOGS/guest-$name.out" | sed 's/ log=.*//')
    for c in $(sed -n 's/^# CHECKS: //p' "$script"); do
        [ -n "${REPORTED[$c]:-}" ] || fail "$c" "not reported; guest: ${why#run-guest: }"
    done
    [ "$VERBOSE" = 1 ] && sed 's/^/  | /' "$LOGS/guest-$name.log"
    if [ "$NFAIL" -gt "$before" ] && [ "$VERBOSE" != 1 ]; then
        note "--- guest console, boot $name: FAIL/INFO lines and the last kernel messages (full log: $CACHE/last-run/guest-$name.log)"
        grep -E '^(FAIL|INFO) ' "$LOGS/guest-$name.log" | tail -n 25 | sed 's/^/  | /'
        grep -E '^\[ *[0-9.]+\] nvme' "$LOGS/guest-$name.log" | tail -n 12 | sed 's/^/  | /'
    fi
    note "boot $name: ${why#run-guest: } (rc=$grc)"
}
skip_boot() {   # skip_boot SCRIPT REASON: report every check of SCRIPT as failed
    local c
    for c in $(sed -n 's/^# CHECKS: //p' "$1"); do fail "$c" "not run: $2"; done
}

if [ -n "${UP[main]:-}" ]; then
    run_boot main 2 420 "$HERE/guest/main.sh" \
        -e NQN="$NQN" -e P1="$P1" -e P2="$P2" -e DISC="$DISC" -e SIZE="$SIZE" -e ADVERTISE=10.0.2.2 \
        -e ACL_NQN="$ACL_NQN" -e ACL_PORT="$ACLP"
    # The target must log the disconnect: look between the guest's two markers.
    if [ -n "${MARK[disconnect-begin]:-}" ] && [ -n "${MARK[disconnect-end]:-}" ]; then
        seg=$(tail -c +"$((MARK[disconnect-begin] + 1))" "$LOGS/target-main.log" | head -c "$((MARK[disconnect-end] - MARK[disconnect-begin]))")
        hit=$(grep -iE 'disconnect|shut ?down|shn|clos(e|ed|ing)|terminat' <<< "$seg" | head -n 1)
        if [ -n "$hit" ]; then pass disconnect-target-log; note "target log: ${hit:0:200}"
        else fail disconnect-target-log "no disconnect/shutdown/close line in the target log during nvme disconnect ($(wc -l <<< "$seg") lines logged)"
             tail -n 5 <<< "$seg" | sed 's/^/  | /'; fi
    else
        fail disconnect-target-log "guest never reached the disconnect step"
    fi
    [ "$NFAIL" -gt 0 ] && excerpt "$LOGS/target-main.log" 15
else
    skip_boot "$HERE/guest/main.sh" "main target did not start"
    fail disconnect-target-log "not run: main target did not start"
fi

if [ -n "${UP[file]:-}" ]; then
    before=$NFAIL
    run_boot restart 1 240 "$HERE/guest/restart.sh" -e FNQN="$FNQN" -e FPORT="$FP" -e FSIZE="$FSIZE"
    [ -n "${REPORTED[target-file-sigterm]:-}" ] || fail target-file-sigterm "guest never asked for the restart"
    [ -n "${REPORTED[target-file-restart]:-}" ] || fail target-file-restart "guest never asked for the restart"
    [ "$NFAIL" -gt "$before" ] && excerpt "$LOGS/target-file.log" 15
else
    skip_boot "$HERE/guest/restart.sh" "file target did not start"
fi

if [ -n "${UP[resv]:-}" ]; then
    before=$NFAIL
    # nvme_core.multipath=N: one block device per controller, so each host identity is its own device.
    KARGS="$KARGS nvme_core.multipath=N" run_boot resv 1 300 "$HERE/guest/resv.sh" -e RNQN="$RNQN" -e RP1="$RP1" -e RP2="$RP2"
    [ "$NFAIL" -gt "$before" ] && excerpt "$LOGS/target-resv.log" 15
else
    skip_boot "$HERE/guest/resv.sh" "reservation target did not start"
fi

# ---- every target must stop on SIGTERM ------------------------------------------------------------
bad=
for t in main acl file resv; do
    [ -n "${TPID[$t]:-}" ] || continue
    stop_target "$t" 10 || bad="$bad $t: $STOPPED;"
    note "$t target: $STOPPED"
done
if [ -z "$bad" ]; then pass target-shutdown-sigterm; else fail target-shutdown-sigterm "${bad% ;}"; fi

# ---- sub-suites with their own target and boot: counted here, their logs under last-run/ -------
# run_suite NAME SCRIPT LOGVAR: runs SCRIPT "$BIN" with LOGVAR=$LOGS/NAME; its PASS/FAIL lines are
# counted here, its own "NAME: N passed, N failed" line is shown as a note. Registered in TPID so
# that cleanup stops it (and so its guest) if this run is interrupted.
run_suite() {
    local name=$1 script=$2 logvar=$3 fd rc before=$NFAIL line n r c
    exec {fd}< <(env HALYARD_INTEROP_CACHE="$CACHE" "$logvar=$LOGS/$name" INTEROP_VERBOSE="$VERBOSE" "$script" "$BIN" 2>&1)
    TPID[$name-suite]=$!
    while IFS= read -r -u "$fd" line; do
        case "$line" in
            "PASS "*) line=${line#PASS }; pass "${line%% *}" ;;
            "FAIL "*) line=${line#FAIL }; n=${line%% *} r=${line#* }
                      [ "$r" = "$line" ] && r=; r=${r#(}; fail "$n" "${r%)}" ;;
            "  | "*)  echo "$line" ;;
            "logs: "*) note "logs: $CACHE/last-run/$name/" ;;   # where cleanup moves $LOGS
            *)        note "$line" ;;
        esac
    done
    exec {fd}<&-
    wait "${TPID[$name-suite]}"; rc=$?
    unset "TPID[$name-suite]"
    for c in $(sed -n 's/^# CHECKS: //p' "$script"); do
        [ -n "${REPORTED[$c]:-}" ] || fail "$c" "not reported by ${script##*/} (rc=$rc)"
    done
    [ "$rc" != 0 ] && [ "$NFAIL" = "$before" ] && fail "$name-run" "${script##*/} exited with status $rc but reported no failure"
    return 0
}
# ana.sh: ANA changes under fio through the Linux host's multipath.
run_suite ana "$HERE/ana.sh" ANA_LOGS
# nvmet.sh: Halyard's initiator (`halyard nvme ...`) against the guest kernel's nvmet.
run_suite nvmet "$HERE/nvmet.sh" NVMET_LOGS
# ioengine.sh: three `halyard io-engine` processes with a real etcd, replicas used by the Linux host.
run_suite ioengine "$HERE/ioengine.sh" IOENGINE_LOGS
# nexus.sh: a 3-replica nexus over three io-engines used by the Linux host under faults (kill -9,
# rebuilds, preemption by a second nexus, partition, etcd down).
run_suite nexus "$HERE/nexus.sh" NEXUS_LOGS
finish
