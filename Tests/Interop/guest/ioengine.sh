#!/bin/sh
# Interop boot "ioengine" (run by ../ioengine.sh, one NIC): the Linux host against replicas served
# by three `halyard io-engine` processes on the host's 127.0.0.1 (10.0.2.2 here). Each replica is
# its own subsystem nqn.2026-11.io.halyard:replica:<uuid>, namespace 1, 1 GiB thin, with this
# guest's host NQN as its only allowed host. Host actions (thin allocation check, node 1 restart,
# metrics, allowed-hosts change) are requested over the 9p share (sync_host).
#
# Environment (from ioengine.sh): R1 R2 R3 (replica uuids on nodes 1..3), N1 N2 N3 (their NVMe/TCP
# ports), OTHER_ID (the uuid of a second host identity, not allowed at first)
#
# Guest checks (ioengine.sh lists them on its CHECKS line with the host's):
#   ioengine-host-not-allowed-refused  connect to R1 as another host NQN fails in < 10 s
#   ioengine-connect, ioengine-ns-size connect to R1 (node 1); the namespace is 1 GiB
#   ioengine-fio-randwrite-4k-verify   fio io_uring QD16, 4K random writes over [0, 4 MiB), crc32c verify
#   ioengine-fio-seqwrite-128k-verify  128K sequential writes over [512, 516 MiB), crc32c verify
#                                      (together exactly 8 MiB written, at known offsets)
#   ioengine-resv-register             register a key with CPTPL=11b (persist through power loss),
#                                      acquire Write Exclusive; resv-report --eds shows key, rtype 1, ptpls 1
#   ioengine-disconnect                nvme disconnect; the controller leaves in < 10 s
#   (host: ioengine-thin-allocated, ioengine-thin-ranges, node 1 SIGTERM + restart checks)
#   ioengine-reconnect                 connect to R1 again after node 1's restart
#   ioengine-resv-after-restart        resv-report: the key, Write Exclusive held by this host, ptpls 1
#   ioengine-verify-only-after-restart both fio jobs again with --verify_only: the 8 MiB read back intact
#   ioengine-cross-node-1..3           connected to one replica on each node at once: 1 MiB of 4K
#                                      random writes at 256 MiB with crc32c verify on each
#   (host: ioengine-metrics-replica-io; ioengine-hosts-set: R1's allowed hosts := [the other host])
#   ioengine-hosts-set-disconnects     this host's controller of R1 stops being live in < 15 s
#   ioengine-other-host-allowed        the other host identity now connects to R1 and reads
#   ioengine-resv-fences-other-host    its write is refused: this host's reservation survived the
#                                      restart and is enforced
. /scenario/lib.sh
A=$HOST_IP
PFX=nqn.2026-11.io.halyard:replica:
Q1=$PFX$R1 Q2=$PFX$R2 Q3=$PFX$R3
OTHER_NQN=nqn.2014-08.org.nvmexpress:uuid:$OTHER_ID
KEY=0x5eed1e0e
TAIL="--ctrl-loss-tmo=10 --reconnect-delay=1"
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
skip() { _why=$1; shift; for _n in "$@"; do fail "$_n" "not run: $_why"; done; }
info "hostnqn $(cat /etc/nvme/hostnqn), kernel $(uname -r), $(nvme version | head -n1), $(fio --version)"

# fio_job NAME DEV EXTRA...: crc32c verify, fatal on the first mismatch; rc 0 only with err= 0
fio_job() {
    _n=$1 _d=$2; shift 2
    timeout 300 fio --name="$_n" --filename="$_d" --ioengine=io_uring --direct=1 --iodepth=16 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never "$@" > "/tmp/fio.$_n.out" 2>&1
    _rc=$?
    grep -E 'err=|IOPS|verify|error' "/tmp/fio.$_n.out" | head -n 6 | sed 's/^/    | /'
    [ $_rc = 0 ] && grep -q 'err= 0' "/tmp/fio.$_n.out"
}
fio_why() { echo "fio: $(grep -E 'err=|error|verify|bad' "/tmp/fio.$1.out" | head -n 3 | tr '\n' ' ') $(dmesg_tail 2)"; }
# The two jobs that write exactly 8 MiB; the same arguments replay them for --verify_only.
JOB_RAND="--rw=randwrite --bs=4k --offset=0 --size=4M --randrepeat=1"
JOB_SEQ="--rw=write --bs=128k --offset=512M --size=4M"
report() { timeout 60 nvme resv-report "$1" --namespace-id=1 --numd=255 --eds > /tmp/report.out 2>&1; }
# report_ok: the key registered, rtype 1 (Write Exclusive), ptpls 1, in /tmp/report.out; REPORT_DESC
report_ok() {
    _rt=$(field rtype < /tmp/report.out) _rc=$(field regctl < /tmp/report.out) _pt=$(field ptpls < /tmp/report.out)
    _keys=$(grep -i 'rkey' /tmp/report.out | tr -d ' ' | tr '\n' ' ')
    REPORT_DESC="rtype=$_rt regctl=$_rc ptpls=$_pt keys=$_keys"
    [ "$(num "$_rt")" = 1 ] && [ "$(num "$_rc")" = 1 ] && [ "$(num "$_pt")" = 1 ] && echo "$_keys" | grep -qi "${KEY#0x}"
}

# ---- 1. a host NQN not in the allowed list (before anything is connected: nvme-cli 2.3 refuses a
# second connect to the same address/port/NQN before it reaches the target) ---------------------
step "1. R1 on node 1 ($A:$N1) as $OTHER_NQN: refused"
nvme_connect foreign 90 -t tcp -a "$A" -s "$N1" -n "$Q1" --hostnqn "$OTHER_NQN" --hostid "$OTHER_ID"
if [ "$CONNECT_RC" = 0 ]; then fail ioengine-host-not-allowed-refused "host $OTHER_NQN was let in"; nvme disconnect -n "$Q1" > /dev/null 2>&1
elif [ "$CONNECT_RC" = 124 ]; then fail ioengine-host-not-allowed-refused "nvme connect still blocked after 90 s"
elif ! lt "$CONNECT_SECS" 10; then fail ioengine-host-not-allowed-refused "refused only after ${CONNECT_SECS}s: $(dmesg_tail 2)"
else pass ioengine-host-not-allowed-refused; info "refused in ${CONNECT_SECS}s: $(dmesg_tail 2)"; fi
wait_for 10 no_ctrls "$Q1"

# ---- 2. connect, write 8 MiB with verify, reservation, disconnect --------------------------------
step "2. connect R1 ($Q1)"
nvme_connect r1 90 -t tcp -a "$A" -s "$N1" -n "$Q1" $TAIL
C1=$(ctrls "$Q1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C1" ] && wait_for 15 ctrl_live "$C1" && wait_for 15 head_dev "$Q1"; then
    pass ioengine-connect
    DEV=$(head_dev "$Q1")
else
    fail ioengine-connect "rc=$CONNECT_RC ctrl=${C1:-none} state=$(ctrl_state "$C1"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    skip "not connected" ioengine-ns-size ioengine-fio-randwrite-4k-verify ioengine-fio-seqwrite-128k-verify ioengine-resv-register ioengine-disconnect
    timeout 30 nvme disconnect -n "$Q1" > /dev/null 2>&1
    DEV=
fi
if [ -n "$DEV" ]; then
    B=${DEV#/dev/}
    lbs=$(cat "/sys/block/$B/queue/logical_block_size") bytes=$(($(cat "/sys/block/$B/size") * 512))
    info "$DEV: controller $C1 (cntlid $(cat /sys/class/nvme/$C1/cntlid 2>/dev/null)), $bytes bytes, logical block $lbs, model $(cat /sys/class/nvme/$C1/model 2>/dev/null)"
    if [ "$bytes" = 1073741824 ]; then pass ioengine-ns-size; else fail ioengine-ns-size "$bytes bytes (want 1 GiB), lbs $lbs"; fi

    step "3. fio: 4 MiB of 4K random writes at 0 and 4 MiB of 128K sequential writes at 512 MiB, crc32c verify"
    if fio_job rand "$DEV" $JOB_RAND; then pass ioengine-fio-randwrite-4k-verify; else fail ioengine-fio-randwrite-4k-verify "$(fio_why rand)"; fi
    if fio_job seq "$DEV" $JOB_SEQ; then pass ioengine-fio-seqwrite-128k-verify; else fail ioengine-fio-seqwrite-128k-verify "$(fio_why seq)"; fi

    step "4. reservation: register $KEY with CPTPL=11b, acquire Write Exclusive, report"
    timeout 60 nvme resv-register "$DEV" --namespace-id=1 --nrkey=$KEY --rrega=0 --cptpl=3 > /tmp/reg.out 2>&1; rr=$?
    sed 's/^/    | /' /tmp/reg.out
    timeout 60 nvme resv-acquire "$DEV" --namespace-id=1 --crkey=$KEY --rtype=1 --racqa=0 > /tmp/acq.out 2>&1; ra=$?
    sed 's/^/    | /' /tmp/acq.out
    report "$DEV"; rp=$?
    sed 's/^/    | /' /tmp/report.out
    if [ $rr = 0 ] && [ $ra = 0 ] && [ $rp = 0 ] && report_ok; then pass ioengine-resv-register; info "$REPORT_DESC"
    else fail ioengine-resv-register "register rc=$rr acquire rc=$ra report rc=$rp: $REPORT_DESC $(tail -n1 /tmp/acq.out)"; fi

    step "5. disconnect"
    if timeout 30 nvme disconnect -n "$Q1" > /tmp/disc.out 2>&1 && wait_for 10 no_ctrls "$Q1"; then pass ioengine-disconnect
    else fail ioengine-disconnect "$(tail -n1 /tmp/disc.out) controllers left: $(ctrls "$Q1")"; fi
fi

# ---- 3. host: thin allocation, then node 1's restart ------------------------------------------
step "6. host: allocated bytes of R1"
info "host: $(sync_host check-allocated 60)"
step "7. host: SIGTERM node 1, start it again on its state dir"
answer=$(sync_host restart-node1 150)
info "host: $answer"

# ---- 4. after the restart: reconnect, reservation, verify-only ----------------------------------
step "8. connect R1 again"
nvme_connect r1b 90 -t tcp -a "$A" -s "$N1" -n "$Q1" $TAIL
C1=$(ctrls "$Q1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C1" ] && wait_for 15 ctrl_live "$C1" && wait_for 15 head_dev "$Q1"; then
    pass ioengine-reconnect
    DEV=$(head_dev "$Q1")
    report "$DEV"; rp=$?
    sed 's/^/    | /' /tmp/report.out
    if [ $rp = 0 ] && report_ok; then pass ioengine-resv-after-restart; info "$REPORT_DESC"
    else fail ioengine-resv-after-restart "report rc=$rp: $REPORT_DESC (host restart: $answer)"; fi
    step "9. fio --verify_only over the 8 MiB written before the restart"
    if fio_job vrand "$DEV" $JOB_RAND --verify_only && fio_job vseq "$DEV" $JOB_SEQ --verify_only; then
        pass ioengine-verify-only-after-restart
        grep -E 'READ:' /tmp/fio.vrand.out /tmp/fio.vseq.out | sed 's/^/    | /'
    else
        fail ioengine-verify-only-after-restart "$(fio_why vrand) / $(fio_why vseq)"
    fi
else
    fail ioengine-reconnect "rc=$CONNECT_RC ctrl=${C1:-none} state=$(ctrl_state "$C1"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3) (host restart: $answer)"
    skip "not reconnected" ioengine-resv-after-restart ioengine-verify-only-after-restart
    DEV=
fi

# ---- 5. one replica on each node at once ----------------------------------------------------------
step "10. cross-node: R2 on node 2 ($A:$N2), R3 on node 3 ($A:$N3), with R1 still connected"
nvme_connect r2 90 -t tcp -a "$A" -s "$N2" -n "$Q2" $TAIL
nvme_connect r3 90 -t tcp -a "$A" -s "$N3" -n "$Q3" $TAIL
wait_for 15 head_dev "$Q2"; wait_for 15 head_dev "$Q3"
i=0
for q in "$Q1" "$Q2" "$Q3"; do
    i=$((i + 1))
    d=$(head_dev "$q")
    if [ -z "$d" ]; then fail "ioengine-cross-node-$i" "no block device for $q: $(dmesg_tail 2)"; continue; fi
    if fio_job "x$i" "$d" --rw=randwrite --bs=4k --offset=256M --size=1M; then pass "ioengine-cross-node-$i"; info "node $i: $d"
    else fail "ioengine-cross-node-$i" "$d: $(fio_why "x$i")"; fi
done
info "host: $(sync_host check-replica-io 60)"
for q in "$Q2" "$Q3"; do timeout 30 nvme disconnect -n "$q" > /dev/null 2>&1; done

# ---- 6. allowed hosts changed at runtime -----------------------------------------------------------
step "11. host: R1's allowed hosts := [$OTHER_NQN]; this host's controller must go"
C1=$(ctrls "$Q1")
answer=$(sync_host set-hosts-other 60)
info "host: $answer"
not_live() { [ "$(ctrl_state "$C1")" != live ]; }
if [ -z "$C1" ]; then fail ioengine-hosts-set-disconnects "no controller of R1 was connected"
elif [ "$answer" != ok ]; then fail ioengine-hosts-set-disconnects "the host could not change the list: $answer"
elif wait_for 15 not_live; then
    pass ioengine-hosts-set-disconnects
    info "$C1 state '$(ctrl_state "$C1")': $(dmesg_tail 3)"
else
    fail ioengine-hosts-set-disconnects "$C1 still live 15 s after the change: $(dmesg_tail 2)"
fi
timeout 30 nvme disconnect -n "$Q1" > /dev/null 2>&1
wait_for 15 no_ctrls "$Q1" || info "R1 controllers still present: $(ctrls "$Q1")"

step "12. the other host identity connects now; its write meets this host's reservation"
nvme_connect other 90 -t tcp -a "$A" -s "$N1" -n "$Q1" --hostnqn "$OTHER_NQN" --hostid "$OTHER_ID"
if [ "$CONNECT_RC" = 0 ] && wait_for 15 head_dev "$Q1" && D=$(head_dev "$Q1") &&
   timeout 60 dd if="$D" of=/tmp/other.read bs=4k count=1 iflag=direct 2>/tmp/dd.err; then
    pass ioengine-other-host-allowed
    dd if=/dev/urandom of=/tmp/blk bs=4k count=1 2>/dev/null
    if timeout 60 dd if=/tmp/blk of="$D" bs=4k seek=2048 count=1 oflag=direct 2>/tmp/dd.err; then
        fail ioengine-resv-fences-other-host "the other host's write succeeded under this host's Write Exclusive reservation"
    else
        pass ioengine-resv-fences-other-host; info "its write failed: $(tail -n1 /tmp/dd.err)"
    fi
else
    fail ioengine-other-host-allowed "rc=$CONNECT_RC: $(tail -n1 "$CONNECT_OUT") $(tail -n1 /tmp/dd.err 2>/dev/null) $(dmesg_tail 2)"
    skip "the other host is not connected" ioengine-resv-fences-other-host
fi
timeout 30 nvme disconnect-all > /dev/null 2>&1
exit 0
