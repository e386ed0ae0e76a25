#!/usr/bin/env bash
# Halyard interop, ANA under load: the Linux host's native multipath (kernel 6.1 in QEMU,
# iopolicy round-robin, fio with verify) against `halyard nvmf-target` with two listeners and a
# control interface, while this script changes the ANA state of one listener through
# `halyard nvmf-target ana --control unix:...` and watches the target's per-listener counters
# through `halyard nvmf-target stats --json`.
#
# usage: Tests/Interop/ana.sh [HALYARD_BINARY]
#   HALYARD_BINARY   default $HALYARD_BIN, else .build/debug/halyard (relative to the current dir)
# env:
#   HALYARD_INTEROP_CACHE   guest image (shared with run.sh; default ${TMPDIR:-/tmp}/halyard-interop)
#   ANA_LOGS                where the logs of this run go (default $HALYARD_INTEROP_CACHE/last-ana;
#                           run.sh passes its own last-run/ana)
#   INTEROP_VERBOSE=1       print the guest console as well
#
# Output: "PASS name" / "FAIL name (reason)" per check, "  | " excerpts after a failure, then one
# line "ana: N passed, N failed"; exit status 0 only when nothing failed. run.sh runs this script
# and folds its checks into its own "interop: ..." line. ≈1 minute under TCG (one guest boot).
#
# The guest (guest/ana.sh, two NICs) connects both paths, sets iopolicy round-robin, starts fio
# and asks this script (files in the 9p share) for each host step; its own checks arrive on the
# results channel. Host checks:
#   ana-target-start       the target listens on both ports and its control socket answers
#   ana-counter-moving     listener 2's read+write count grows while fio runs (both paths used)
#   ana-set-inaccessible   `nvmf-target ana --state inaccessible` for listener 2 exits 0
#   ana-counter-stopped    after the guest saw ana_state=inaccessible, listener 2's count stays
#                          still for 3 s while listener 1's grows
#   ana-set-optimized      `nvmf-target ana --state optimized` for listener 2 exits 0
#   ana-counter-resumed    listener 2's count grows again
#   ana-target-sigterm     the target exits 0 on SIGTERM
# Guest checks: ana-connect ana-iopolicy-round-robin ana-state-inaccessible ana-state-optimized
# ana-fio-verify ana-disconnect (see guest/ana.sh).
#
# The list run.sh expects (keep in sync with the checks above):
# CHECKS: ana-target-start ana-connect ana-iopolicy-round-robin ana-counter-moving ana-set-inaccessible ana-state-inaccessible ana-counter-stopped ana-set-optimized ana-state-optimized ana-counter-resumed ana-fio-verify ana-disconnect ana-target-sigterm
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
IMAGE=$CACHE/image
BIN_ARG=${1:-${HALYARD_BIN:-.build/debug/halyard}}
LOGDIR=${ANA_LOGS:-$CACHE/last-ana}
VERBOSE=${INTEROP_VERBOSE:-0}
NQN=nqn.2026-11.io.halyard:interop-ana
GUEST_TIMEOUT=300

SUITE=ana
# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"   # pass, fail, note, excerpt, NPASS/NFAIL/REPORTED/CHECKS

# ---- cleanup: the guest (run-guest.sh kills its qemu), the target, temp files ------------------
WORK= GPID= TPID= SUMMARY_DONE=0 NOTRUN="not run"
cleanup() {
    [ -n "$GPID" ] && kill "$GPID" 2>/dev/null && wait "$GPID" 2>/dev/null
    [ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$SUMMARY_DONE" = 0 ]; then echo "ana: $NPASS passed, $((NFAIL + 1)) failed (interrupted)"; fi
}
trap cleanup EXIT
trap 'NOTRUN="interrupted"; exit 130' INT TERM

fail_all() { NOTRUN="not run: $1"; finish; }

# ---- prerequisites, logs, the binary under test ------------------------------------------------
for c in qemu-system-x86_64 python3 timeout; do
    command -v "$c" >/dev/null || fail_all "missing $c (see Tests/Interop/README.md)"
done
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR" || fail_all "cannot create $LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-ana.XXXXXX")
SHARE=$WORK/share; mkdir -p "$SHARE"
CTL=$WORK/ctl.sock
[ -x "$BIN_ARG" ] || fail_all "halyard binary $BIN_ARG does not exist or is not executable"
if [ "$(head -c 4 "$BIN_ARG" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    BIN=$WORK/halyard; cp "$BIN_ARG" "$BIN"          # a rebuild cannot swap it mid-run
else
    BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")
fi
"$HERE/run-guest.sh" -d "$IMAGE" --build-only > "$LOGDIR/build-image.log" 2>&1 \
    || fail_all "building the guest image failed: $(tail -n 3 "$LOGDIR/build-image.log" | tr '\n' ' ')"

# ---- the target: two listeners, a control socket --------------------------------------------------
read -r AP1 AP2 <<< "$(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
TLOG=$LOGDIR/target.log
"$BIN" nvmf-target --listen "127.0.0.1:$AP1" --listen "127.0.0.1:$AP2" --nqn "$NQN" --memory 64MiB \
    --control "unix:$CTL" < /dev/null > "$TLOG" 2>&1 &
TPID=$!
CTLLOG=$LOGDIR/control.log
control() {   # control ARGS...: `halyard nvmf-target ARGS --control unix:CTL`, logged; stdout kept
    echo "### $(date +%T.%N | cut -c1-12) nvmf-target $*" >> "$CTLLOG"
    timeout 30 "$BIN" nvmf-target "$@" --control "unix:$CTL" 2>> "$CTLLOG" | tee -a "$CTLLOG"
    return "${PIPESTATUS[0]}"
}
up=
for ((i = 0; i < 150; i++)); do
    kill -0 "$TPID" 2>/dev/null || break
    if [ -S "$CTL" ] && control stats > /dev/null; then up=1; break; fi
    sleep 0.2
done
if [ -z "$up" ]; then
    fail ana-target-start "target or control socket not up in 30 s"
    excerpt "$TLOG" 10
    fail_all "the target did not start"
fi
pass ana-target-start "listeners 127.0.0.1:$AP1 127.0.0.1:$AP2, control unix:$CTL"

# io INDEX: read + write commands the target counted on listener INDEX (0 or 1)
io() {
    control stats --json | python3 -c '
import json, sys
io = json.load(sys.stdin)["listeners"][int(sys.argv[1])]["io"]
print(io["readCommands"] + io["writeCommands"])' "$1"
}
# grows INDEX SECONDS: rc 0 once listener INDEX's count grew within SECONDS; GROWTH "a -> b"
grows() {
    local a b i
    a=$(io "$1") || return 1
    for ((i = 0; i < $2 * 5; i++)); do
        sleep 0.2
        b=$(io "$1") || return 1
        if [ "$b" -gt "$a" ]; then GROWTH="$a -> $b"; return 0; fi
    done
    GROWTH="$a -> $b"
    return 1
}

# ---- host steps, on the guest's request ------------------------------------------------------------
ANSWER=
do_request() {   # do_request NAME: act, set ANSWER ("ok" or "fail: ...")
    local out a0 a1 b0 b1
    case "$1" in
        check-moving)
            if grows 1 10; then pass ana-counter-moving "listener 2: $GROWTH"; ANSWER=ok
            else fail ana-counter-moving "listener 2 did not move in 10 s: $GROWTH"; ANSWER="fail: listener 2 idle"; fi ;;
        set-inaccessible|set-optimized)
            local state=${1#set-}
            if out=$(control ana --nqn "$NQN" --listener "127.0.0.1:$AP2" --state "$state"); then
                pass "ana-set-$state" "$out"; ANSWER=ok
            else
                fail "ana-set-$state" "exit $?: $(tail -n 1 "$CTLLOG")"; ANSWER="fail: ana --state $state failed"
            fi ;;
        check-stopped)
            a1=$(io 1); a0=$(io 0); sleep 3; b1=$(io 1); b0=$(io 0)
            if [ "$a1" = "$b1" ] && [ "$b0" -gt "$a0" ]; then
                pass ana-counter-stopped "listener 2 stayed at $b1 for 3 s; listener 1 $a0 -> $b0"; ANSWER=ok
            else
                fail ana-counter-stopped "listener 2: $a1 -> $b1, listener 1: $a0 -> $b0"; ANSWER="fail: counters"
            fi ;;
        check-resumed)
            if grows 1 15; then pass ana-counter-resumed "listener 2: $GROWTH"; ANSWER=ok
            else fail ana-counter-resumed "listener 2 did not move in 15 s: $GROWTH"; ANSWER="fail: listener 2 idle"; fi ;;
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

# ---- the guest ------------------------------------------------------------------------------------
RES=$LOGDIR/results.txt CONSOLE=$LOGDIR/guest-console.log
: > "$RES"
before=$NFAIL
"$HERE/run-guest.sh" -d "$IMAGE" -t "$GUEST_TIMEOUT" -n 2 -s "$SHARE" -r "$RES" -l "$CONSOLE" \
    -k "nvme_core.admin_timeout=20" -f "$HERE/guest/lib.sh" \
    -e NQN="$NQN" -e AP1="$AP1" -e AP2="$AP2" "$HERE/guest/ana.sh" > "$LOGDIR/guest.out" 2>&1 &
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
[ "$VERBOSE" = 1 ] && sed 's/^/  | /' "$CONSOLE"
if [ "$NFAIL" -gt "$before" ] && [ "$VERBOSE" != 1 ]; then
    note "--- guest console: FAIL/INFO lines and the last kernel messages (full log: $CONSOLE)"
    grep -E '^(FAIL|INFO) ' "$CONSOLE" | tail -n 25 | sed 's/^/  | /'
    grep -E '^\[ *[0-9.]+\] nvme' "$CONSOLE" | tail -n 12 | sed 's/^/  | /'
    excerpt "$TLOG" 15
fi

# ---- SIGTERM -----------------------------------------------------------------------------------------
kill -TERM "$TPID"
for ((i = 0; i < 100; i++)); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$TPID" 2>/dev/null; then
    fail ana-target-sigterm "still running 10 s after SIGTERM"
else
    wait "$TPID"; st=$?; TPID=
    if [ "$st" = 0 ]; then pass ana-target-sigterm; else fail ana-target-sigterm "exit status $st"; fi
    [ -e "$CTL" ] && fail ana-target-sigterm "control socket $CTL left behind"
fi
finish
