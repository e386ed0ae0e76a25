# Helpers for the interop guest scenarios (busybox ash). Sourced by guest/*.sh; run.sh copies it
# into the guest's /scenario/.
#
# Results: every check ends in exactly one `pass NAME` or `fail NAME REASON...`, which prints
# "PASS NAME" / "FAIL NAME (REASON)" on the console AND on the clean results channel $RESULTS
# (/dev/ttyS1 -> a host file), which run.sh counts. Check names are stable identifiers.

pass() {
    echo "PASS $1"
    [ -n "${RESULTS:-}" ] && echo "PASS $1" > "$RESULTS"
    return 0
}
fail() {   # the reason is cut to 400 characters, on one line
    n=$1; shift
    _r=$(echo "$*" | tr '\n' ' ' | cut -c1-400)
    echo "FAIL $n ($_r)"
    [ -n "${RESULTS:-}" ] && echo "FAIL $n ($_r)" > "$RESULTS"
    return 0
}
step() { echo "=== $*"; }
info() { echo "INFO $*"; }

# now: guest uptime in centiseconds; elapsed T0: seconds since T0 (one decimal)
now() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 100 }'; }

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds (rc 0) or SECONDS pass (rc 1)
wait_for() {
    _end=$(( $(now) + $1 * 100 )); shift
    while :; do
        "$@" && return 0
        [ "$(now)" -ge "$_end" ] && return 1
        sleep 0.2
    done
}

# sync_host NAME [SECONDS]: ask run.sh to perform action NAME (via the 9p share at /host) and
# wait for its answer; prints the host's answer ("ok" or "fail: reason"); rc 0 only for "ok".
sync_host() {
    _n=$1 _t=${2:-60}
    [ -d /host ] || { echo "fail: no /host share"; return 1; }
    echo "$_n" > "/host/req.$_n.tmp" && mv "/host/req.$_n.tmp" "/host/req.$_n"
    if ! wait_for "$_t" test -e "/host/ack.$_n"; then echo "fail: host did not answer $_n in ${_t}s"; return 1; fi
    _a=$(cat "/host/ack.$_n")
    echo "$_a"
    [ "$_a" = ok ]
}

# field KEY: value of "KEY : value" from nvme-cli's plain output on stdin (first match)
field() {
    awk -v k="$1" '{ key = $0; sub(/[ \t]*:.*/, "", key); if (key == k) { sub(/^[^:]*:[ \t]*/, ""); print; exit } }'
}
# num VALUE: decimal of a decimal or 0x-hex number; 0 for anything else (never aborts the shell)
num() {
    case "$1" in
        0[xX]*) _h=${1#0[xX]}
                case "$_h" in ''|*[!0-9a-fA-F]*) echo 0 ;; *) echo $((0x$_h)) ;; esac ;;
        ''|*[!0-9]*) echo 0 ;;
        *) _d=$(echo "$1" | sed 's/^0*//'); echo "${_d:-0}" ;;
    esac
}
# ctrls NQN [PORT]: names (nvme0 ...) of controllers of subsystem NQN, optionally only the one(s)
# whose address has trsvcid=PORT
ctrls() {
    for _c in /sys/class/nvme/nvme*; do
        [ -e "$_c/subsysnqn" ] || continue
        [ "$(cat "$_c/subsysnqn" 2>/dev/null)" = "$1" ] || continue
        if [ -n "${2:-}" ]; then
            tr ',' '\n' < "$_c/address" 2>/dev/null | grep -qx "trsvcid=$2" || continue
        fi
        echo "${_c##*/}"
    done
}
# ctrl_state CTRL: live / connecting / resetting / ... (empty when gone)
ctrl_state() { cat "/sys/class/nvme/$1/state" 2>/dev/null; }
ctrl_live() { [ "$(ctrl_state "$1")" = live ]; }
no_ctrls() { [ -z "$(ctrls "$1")" ]; }
# head_dev NQN: the multipath head block device (/dev/nvmeXn1) of subsystem NQN's namespace 1
head_dev() {
    for _b in /sys/block/nvme*n1; do
        _d=${_b##*/}
        case "$_d" in *c*) continue ;; esac
        [ "$(cat "$_b/device/subsysnqn" 2>/dev/null)" = "$1" ] || continue
        echo "/dev/$_d"; return 0
    done
    return 1
}
# path_count NQN: number of hidden per-path devices (nvmeXcYn1) of NQN's namespace 1
path_count() {
    _k=0
    for _b in /sys/block/nvme*c*n1; do
        [ -e "$_b" ] || continue
        [ "$(cat "$_b/device/subsysnqn" 2>/dev/null)" = "$1" ] && _k=$((_k + 1))
    done
    echo $_k
}

# nvme_connect NAME TIMEOUT ARGS...: run `nvme connect ARGS` (bounded by TIMEOUT seconds), show
# its output; sets CONNECT_RC, CONNECT_SECS and CONNECT_OUT (a file with its output)
nvme_connect() {
    _name=$1 _to=$2; shift 2
    CONNECT_OUT=/tmp/connect.$_name.out
    _t0=$(now)
    timeout "$_to" nvme connect "$@" > "$CONNECT_OUT" 2>&1
    CONNECT_RC=$?
    CONNECT_SECS=$(elapsed "$_t0")
    sed 's/^/    | /' "$CONNECT_OUT"
    info "nvme connect $* -> rc=$CONNECT_RC in ${CONNECT_SECS}s"
}

# dmesg_tail N: last N nvme lines of the kernel log, on one line (for failure reasons)
dmesg_tail() { dmesg | grep -i nvme | grep -v 'ommand line' | tail -n "${1:-3}" | sed 's/^\[[ 0-9.]*\] //' | tr '\n' ';' | cut -c1-300; }
