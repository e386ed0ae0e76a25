#!/bin/sh
# Interop boot "nexus" (run by ../nexus.sh, two NICs): the Linux host using a volume served by a
# Halyard nexus (subsystem nqn.2026-11.io.halyard:<volume-uuid>, namespace 1, the same NQN on
# whichever node serves it). fio writes with crc32c verify while the host does the faults, which
# this side asks for over the 9p share (sync_host) so that every fault lands on writes in flight.
#
# Environment (from nexus.sh): NQN (the volume's NQN), N1 N2 (NVMe/TCP ports of nodes 1 and 2),
# VBYTES (volume size), WRITE_IOPS (rate of the 4K writers during faults)
#
# Paths: nexus A (node 1) through NIC 0 = 10.0.2.2:N1; nexus B (node 2) through NIC 1 =
# 10.0.3.2:N2; nexus C (node 1 again) through NIC 0. Native multipath keeps one /dev/nvmeXn1
# head for all of them (same NQN, same namespace identifiers; distinct controller ID ranges).
#
# Every write is made by a deterministic fio job (fixed region, size and seed) so that
# `--verify_only` replays it later: after each move to a new nexus, everything written before is
# read back through the new one and must be exactly what was acknowledged.
#   FILL [16M, V) 1 MiB sequential; K [0, 4M), P [4M, 8M), X [8M, 12M), E [12M, 16M): 4K random
#   writes at WRITE_IOPS (so that each lasts ~10 s and spans its fault), iodepth 16, verify_backlog.
#
# Guest checks (nexus.sh lists them on its CHECKS line with the host's):
#   nexus-connect, nexus-ns-size          connect to A (10.0.2.2:N1): live controller, head device, V bytes
#   nexus-fill-verify                     fio FILL, crc32c verify: most of the volume written
#   nexus-kill-writes-ok                  fio K while the host kill -9s node 3: exit 0, err= 0
#   (host: child faulted, health record, restart, partial rebuild, full rebuild, identical replicas)
#   nexus-preempt-connect-new-path        while fio P runs the host creates B on node 2 (A is fenced
#                                         on its next write); connect 10.0.3.2:N2: live, 2 paths, 1 head
#   nexus-preempt-writes-ok               fio P exits 0, err= 0 (no I/O error across the move)
#   nexus-preempt-old-path-inaccessible   A's path: ana_state inaccessible (or its controller no
#                                         longer live) within 15 s; then it is disconnected
#   nexus-preempt-verify-before           --verify_only of FILL and K through B
#   nexus-partition-connect-new-path      fio X runs, NIC 1 set down (no path to B, B keeps its
#                                         replicas), the host creates C on node 1; connect 10.0.2.2:N1
#   nexus-partition-writes-ok             fio X exits 0, err= 0
#   nexus-partition-verify-before         B's path removed, NIC 1 up; --verify_only of FILL, K, P through C
#   nexus-etcd-down-writes-ok             fio E while the host stops etcd (~5 s) and starts it again
#   nexus-final-verify                    --verify_only of FILL, K, P, X, E
#   nexus-disconnect                      nvme disconnect; no controller left in < 10 s
. /scenario/lib.sh
A0=$HOST_IP A1=${HOST_IP1:-10.0.3.2}
CONN="--ctrl-loss-tmo=30 --reconnect-delay=1 --keep-alive-tmo=5"
VMIB=$((VBYTES / 1048576))
JOB_FILL="--rw=write --bs=1M --iodepth=4 --offset=16M --size=$((VMIB - 16))M"
RW="--rw=randwrite --bs=4k --iodepth=16 --randrepeat=1 --size=4M"
JOB_K="$RW --offset=0"
JOB_P="$RW --offset=4M"
JOB_X="$RW --offset=8M"
JOB_E="$RW --offset=12M"
RATE="--rate_iops=${WRITE_IOPS:-100} --verify_backlog=64"
skip() { _why=$1; shift; for _n in "$@"; do fail "$_n" "not run: $_why"; done; }
info "hostnqn $(cat /etc/nvme/hostnqn), kernel $(uname -r), $(nvme version | head -n1), $(fio --version), volume $VMIB MiB"

# libaio, not io_uring: on this 6.1 kernel io_uring submits block I/O with REQ_NOWAIT, and a bio
# that native multipath requeues while no path is usable and resubmits while the head's queue is
# frozen (a new path's namespace being set up) completes with EAGAIN, which io_uring hands to fio
# as an error (seen: "io_u error ... Resource temporarily unavailable" right after connecting the
# new nexus's path). libaio submits without NOWAIT: the bio waits for the queue instead.
FIO="--ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never"
fio_show() { grep -E 'err=|IOPS|verify|error|bad' "/tmp/fio.$1.out" | head -n 6 | sed 's/^/    | /'; }
fio_ok() { grep -q 'err= 0' "/tmp/fio.$1.out"; }
fio_why() { echo "fio: $(grep -E 'err=|error|verify|bad|fio:' "/tmp/fio.$1.out" | head -n 3 | tr '\n' ' ') $(dmesg_tail 3)"; }
# fio_job NAME DEV ARGS...: in the foreground; rc 0 only with exit 0 and err= 0
fio_job() {
    _n=$1 _d=$2; shift 2
    _t0=$(now)
    timeout 400 fio --name="$_n" --filename="$_d" $FIO "$@" > "/tmp/fio.$_n.out" 2>&1
    _rc=$?
    fio_show "$_n"; info "fio $_n: rc=$_rc in $(elapsed "$_t0")s"
    [ $_rc = 0 ] && fio_ok "$_n"
}
# fio_bg NAME DEV ARGS...: in the background (FIO_PID); fio_wait NAME SECONDS: its end, rc 0 only
# with exit 0 and err= 0 (killed after SECONDS)
fio_bg() {
    _n=$1 _d=$2; shift 2
    FIO_T0=$(now)
    fio --name="$_n" --filename="$_d" $FIO "$@" > "/tmp/fio.$_n.out" 2>&1 &
    FIO_PID=$!
}
fio_running() { kill -0 "$FIO_PID" 2>/dev/null; }
fio_done() { ! fio_running; }
fio_wait() {
    if ! wait_for "$2" fio_done; then
        info "fio $1 still running after $2 s: killing it"; kill -9 "$FIO_PID" 2>/dev/null
        wait "$FIO_PID"; fio_show "$1"; echo "killed after $2 s" >> "/tmp/fio.$1.out"; return 1
    fi
    wait "$FIO_PID"; _rc=$?
    fio_show "$1"; info "fio $1: rc=$_rc in $(elapsed "$FIO_T0")s"
    [ $_rc = 0 ] && fio_ok "$1"
}
# path_dev CTRL: the hidden per-path block device of controller CTRL (nvmeXcYn1)
path_dev() { for _b in /sys/block/nvme*c${1#nvme}n1; do [ -e "$_b" ] && echo "${_b##*/}"; done; }
ana_of() { cat "/sys/block/$(path_dev "$1")/ana_state" 2>/dev/null; }
verify_only() {   # verify_only TAG DEV REGION...: replay each region's job with --verify_only
    _tag=$1 _d=$2; shift 2
    _bad=
    for _r in "$@"; do
        eval "_args=\$JOB_$_r"
        fio_job "v$_tag$_r" "$_d" $_args --verify_only || _bad="$_bad $_r: $(fio_why "v$_tag$_r");"
    done
    VERIFY_WHY=$_bad
    [ -z "$_bad" ]
}
head_same() { [ "$(head_dev "$NQN")" = "$DEV" ]; }
# WRITTEN: the regions whose writer ended without an error (only those can be replayed)
WRITTEN=
written() { WRITTEN="$WRITTEN $1"; }
# regions REGION...: those of REGION... that were written completely (for verify_only); notes the others
regions() {
    _out=
    for _r in "$@"; do
        case " $WRITTEN " in *" $_r "*) _out="$_out $_r" ;; *) info "region $_r not verified: its writer failed" >&2 ;; esac
    done
    echo "$_out"
}

# ---- 1. connect to nexus A (node 1) ---------------------------------------------------------------
step "1. connect to nexus A: $A0:$N1 $NQN"
nvme_connect a 90 -t tcp -a "$A0" -s "$N1" -n "$NQN" $CONN
CA=$(ctrls "$NQN" "$N1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$CA" ] && wait_for 15 ctrl_live "$CA" && wait_for 15 head_dev "$NQN"; then
    pass nexus-connect
    DEV=$(head_dev "$NQN")
else
    fail nexus-connect "rc=$CONNECT_RC ctrl=${CA:-none} state=$(ctrl_state "$CA"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    skip "not connected" nexus-ns-size nexus-fill-verify nexus-kill-writes-ok nexus-preempt-connect-new-path nexus-preempt-writes-ok \
        nexus-preempt-old-path-inaccessible nexus-preempt-verify-before nexus-partition-connect-new-path nexus-partition-writes-ok \
        nexus-partition-verify-before nexus-etcd-down-writes-ok nexus-final-verify nexus-disconnect
    exit 0
fi
B=${DEV#/dev/}
bytes=$(($(cat "/sys/block/$B/size") * 512))
info "$DEV: controller $CA (cntlid $(cat /sys/class/nvme/$CA/cntlid 2>/dev/null), model $(cat /sys/class/nvme/$CA/model 2>/dev/null)), $bytes bytes, logical block $(cat "/sys/block/$B/queue/logical_block_size"), ana_state $(ana_of "$CA")"
if [ "$bytes" = "$VBYTES" ]; then pass nexus-ns-size; else fail nexus-ns-size "$bytes bytes (want $VBYTES)"; fi

# ---- 2. most of the volume -------------------------------------------------------------------------
step "2. fio FILL: $JOB_FILL"
if fio_job fill "$DEV" $JOB_FILL; then pass nexus-fill-verify; written FILL; else fail nexus-fill-verify "$(fio_why fill)"; fi

# ---- 3. kill -9 of node 3 under writes -----------------------------------------------------------
step "3. fio K in the background; the host kills node 3 (kill -9)"
fio_bg k "$DEV" $JOB_K $RATE
sleep 3
answer=$(sync_host kill-node3 90)
info "host: $answer; fio K still running: $(fio_running && echo yes || echo no)"
if fio_wait k 300; then pass nexus-kill-writes-ok; written K; else fail nexus-kill-writes-ok "$(fio_why k)"; fi

# ---- 4. host: restart node 3, partial rebuild; a fourth replica, full rebuild ---------------------------
step "4. host: node 3 back, child online (partial rebuild), replicas compared"
info "host: $(sync_host rebuild-partial 500)"
step "5. host: fourth replica, full rebuild, replicas compared, fourth replica removed"
info "host: $(sync_host rebuild-full 600)"

# ---- 5. a second nexus on node 2 preempts A ---------------------------------------------------------
step "6. fio P in the background; the host creates nexus B on node 2 (preempts A)"
fio_bg p "$DEV" $JOB_P $RATE
sleep 3
t0=$(now)
answer=$(sync_host preempt 90)
info "host: $answer ($(elapsed "$t0")s)"
MOVED=
if [ "$answer" = ok ]; then
    nvme_connect b 90 -t tcp -a "$A1" -s "$N2" -n "$NQN" $CONN
    CB=$(ctrls "$NQN" "$N2")
    if [ "$CONNECT_RC" = 0 ] && [ -n "$CB" ] && wait_for 15 ctrl_live "$CB" && [ "$(path_count "$NQN")" = 2 ] && head_same; then
        pass nexus-preempt-connect-new-path
        info "B's path: $CB (cntlid $(cat /sys/class/nvme/$CB/cntlid 2>/dev/null)) $(path_dev "$CB") ana_state $(ana_of "$CB"); A's path $CA state $(ctrl_state "$CA") ana_state $(ana_of "$CA"); $(elapsed "$t0")s after the request"
        MOVED=1
    else
        fail nexus-preempt-connect-new-path "rc=$CONNECT_RC ctrl=${CB:-none} state=$(ctrl_state "$CB") paths=$(path_count "$NQN") head=$(head_dev "$NQN") (was $DEV): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    fi
else
    fail nexus-preempt-connect-new-path "the host could not create nexus B: $answer"
fi
if fio_wait p 300; then pass nexus-preempt-writes-ok; written P; else fail nexus-preempt-writes-ok "$(fio_why p)"; fi
dmesg | grep -iE 'ana|failover|requeue|I/O error|reset' | tail -n 8 | sed 's/^/    | /'
if [ -z "$MOVED" ]; then
    skip "the path did not move to nexus B" nexus-preempt-old-path-inaccessible nexus-preempt-verify-before \
        nexus-partition-connect-new-path nexus-partition-writes-ok nexus-partition-verify-before nexus-etcd-down-writes-ok nexus-final-verify
    timeout 60 nvme disconnect -n "$NQN" > /dev/null 2>&1
    if wait_for 10 no_ctrls "$NQN"; then pass nexus-disconnect; else fail nexus-disconnect "controllers left: $(ctrls "$NQN")"; fi
    exit 0
fi
old_path_unusable() { [ "$(ana_of "$CA")" = inaccessible ] || ! ctrl_live "$CA"; }
if wait_for 15 old_path_unusable; then
    pass nexus-preempt-old-path-inaccessible
    info "A's path $CA: state $(ctrl_state "$CA"), ana_state $(ana_of "$CA")"
else
    fail nexus-preempt-old-path-inaccessible "A's path $CA: state $(ctrl_state "$CA"), ana_state $(ana_of "$CA") 15 s after the writes: $(dmesg_tail 2)"
fi
timeout 60 nvme disconnect -d "$CA" > /tmp/disc.a.out 2>&1 || info "disconnect $CA: $(cat /tmp/disc.a.out)"
no_ctrls_n1() { [ -z "$(ctrls "$NQN" "$N1")" ]; }
wait_for 15 no_ctrls_n1 || info "A's controller still there: $(ctrls "$NQN" "$N1")"
step "7. verify through B what was written through A"
if head_same && verify_only p "$DEV" $(regions FILL K); then pass nexus-preempt-verify-before
else fail nexus-preempt-verify-before "head $(head_dev "$NQN") (was $DEV):$VERIFY_WHY"; fi
info "host: $(sync_host preempt-after 60)"

# ---- 6. the same with B partitioned from this host (not from its replicas) ----------------------------
IF1=$(ip -o -4 addr show | awk '/10\.0\.3\.15\// { print $2; exit }')
step "8. fio X in the background; NIC 1 ($IF1) down: no path to B; the host creates nexus C on node 1"
fio_bg x "$DEV" $JOB_X $RATE
sleep 3
ip link set "$IF1" down; info "$IF1 down: $(ip -o link show "$IF1" | cut -c1-100)"
t0=$(now)
answer=$(sync_host partition-preempt 90)
info "host: $answer ($(elapsed "$t0")s)"
MOVED=
if [ "$answer" = ok ]; then
    nvme_connect c 90 -t tcp -a "$A0" -s "$N1" -n "$NQN" $CONN
    CC=$(ctrls "$NQN" "$N1")
    if [ "$CONNECT_RC" = 0 ] && [ -n "$CC" ] && wait_for 15 ctrl_live "$CC" && head_same; then
        pass nexus-partition-connect-new-path
        info "C's path: $CC (cntlid $(cat /sys/class/nvme/$CC/cntlid 2>/dev/null)) ana_state $(ana_of "$CC"); B's path $CB state $(ctrl_state "$CB"); $(elapsed "$t0")s after NIC 1 went down"
        MOVED=1
    else
        fail nexus-partition-connect-new-path "rc=$CONNECT_RC ctrl=${CC:-none} state=$(ctrl_state "$CC") head=$(head_dev "$NQN") (was $DEV): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    fi
else
    fail nexus-partition-connect-new-path "the host could not create nexus C: $answer"
fi
if fio_wait x 300; then pass nexus-partition-writes-ok; written X; else fail nexus-partition-writes-ok "$(fio_why x)"; fi
dmesg | grep -iE 'ana|failover|requeue|I/O error|reset|keep-alive|reconnect' | tail -n 8 | sed 's/^/    | /'
timeout 60 nvme disconnect -d "$CB" > /tmp/disc.b.out 2>&1 || info "disconnect $CB: $(cat /tmp/disc.b.out)"
no_ctrls_n2() { [ -z "$(ctrls "$NQN" "$N2")" ]; }
wait_for 15 no_ctrls_n2 || info "B's controller still there: $(ctrls "$NQN" "$N2") state $(ctrl_state "$CB")"
ip link set "$IF1" up
if [ -z "$MOVED" ]; then
    skip "the path did not move to nexus C" nexus-partition-verify-before nexus-etcd-down-writes-ok nexus-final-verify
    timeout 60 nvme disconnect -n "$NQN" > /dev/null 2>&1
    if wait_for 10 no_ctrls "$NQN"; then pass nexus-disconnect; else fail nexus-disconnect "controllers left: $(ctrls "$NQN")"; fi
    exit 0
fi
step "9. verify through C what was written through A and B"
if head_same && verify_only x "$DEV" $(regions FILL K P); then pass nexus-partition-verify-before
else fail nexus-partition-verify-before "head $(head_dev "$NQN") (was $DEV):$VERIFY_WHY"; fi
info "host: $(sync_host partition-after 60)"

# ---- 7. etcd down under writes ----------------------------------------------------------------------------
step "10. fio E in the background; the host stops etcd for ~5 s, then starts it again"
fio_bg e "$DEV" $JOB_E $RATE
sleep 2
info "host: $(sync_host etcd-stop 60)"
sleep 5
info "host: $(sync_host etcd-start 90); fio E still running: $(fio_running && echo yes || echo no)"
if fio_wait e 300; then pass nexus-etcd-down-writes-ok; written E; else fail nexus-etcd-down-writes-ok "$(fio_why e)"; fi

# ---- 8. everything, once more, then disconnect --------------------------------------------------------------
step "11. verify every region through C"
if head_same && verify_only f "$DEV" $(regions FILL K P X E); then pass nexus-final-verify
else fail nexus-final-verify "head $(head_dev "$NQN") (was $DEV):$VERIFY_WHY"; fi
dmesg | grep -iE 'I/O error|blk_update_request|critical' | tail -n 5 | sed 's/^/    | /'

step "12. disconnect"
if timeout 60 nvme disconnect -n "$NQN" > /tmp/disc.out 2>&1 && wait_for 10 no_ctrls "$NQN"; then pass nexus-disconnect
else fail nexus-disconnect "$(tail -n1 /tmp/disc.out) controllers left: $(ctrls "$NQN")"; fi
exit 0
