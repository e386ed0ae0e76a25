#!/bin/sh
# Interop boot 3 ("resv"): NVMe reservations with the Linux host, two host identities.
# Booted with nvme_core.multipath=N, so each controller has its own block device (/dev/nvmeXn1)
# and each host identity can be driven separately. Host A (the guest's own /etc/nvme/hostnqn)
# connects to listener RP1, host B (a second host NQN/ID) to RP2 of the same file-backed
# subsystem. Then, with nvme-cli: register both (CPTPL=11b: persist through power loss), A
# acquires Exclusive Access, report --eds, B's write is refused with Reservation Conflict while
# A's succeeds, B preempts-and-aborts A (A's writes start failing), the target is restarted
# (run.sh SIGTERMs it and starts it again on the same file) and the reservation is still there,
# B releases. Needs the results channel and the share (run-guest.sh -r FILE -s DIR).
#
# Environment (from run.sh): RNQN, RP1, RP2 (reservation target: subsystem, two listener ports)
#
# Check names (run.sh reads this line to know what to expect; keep it in sync):
# CHECKS: resv-connect-two-hosts resv-register resv-acquire resv-report-eds resv-nonholder-write-conflict resv-holder-write-ok resv-preempt-abort resv-old-holder-fenced resv-ptpl-restart resv-release
. /scenario/lib.sh
A0=$HOST_IP
B_ID=00000000-0000-4000-8000-00000000b0b0
B_NQN=nqn.2014-08.org.nvmexpress:uuid:$B_ID
KEY_A=0xa1a1a1a1 KEY_B=0xb2b2b2b2
CONNECT_TAIL="--ctrl-loss-tmo=60 --reconnect-delay=1"

# ctrl_of PORT: the controller of $RNQN on listener PORT
ctrl_of() { ctrls "$RNQN" "$1" | head -n 1; }
# report DEV: nvme resv-report --eds, output in /tmp/report.out; rc of nvme-cli
report() { timeout 60 nvme resv-report "$1" --namespace-id=1 --numd=255 --eds > /tmp/report.out 2>&1; }
show() { sed 's/^/    | /' "$1"; }
# write_ok DEV: one 4 KiB direct write at 1 MiB succeeds
write_ok() { timeout 60 dd if=/tmp/blk of="$1" bs=4k seek=256 count=1 oflag=direct 2>/tmp/dd.err; }

step "R1. connect host A to $A0:$RP1 and host B ($B_NQN) to $A0:$RP2"
nvme_connect resv-a 90 -t tcp -a "$A0" -s "$RP1" -n "$RNQN" $CONNECT_TAIL
RC_A=$CONNECT_RC
nvme_connect resv-b 90 -t tcp -a "$A0" -s "$RP2" -n "$RNQN" --hostnqn "$B_NQN" --hostid "$B_ID" $CONNECT_TAIL
CA=$(ctrl_of "$RP1") CB=$(ctrl_of "$RP2")
if [ "$RC_A" = 0 ] && [ "$CONNECT_RC" = 0 ] && [ -n "$CA" ] && [ -n "$CB" ] &&
   wait_for 15 test -b "/dev/${CA}n1" && wait_for 15 test -b "/dev/${CB}n1"; then
    DA=/dev/${CA}n1 DB=/dev/${CB}n1
    info "host A: $CA ($(cat /sys/class/nvme/$CA/hostnqn)) $DA; host B: $CB ($(cat /sys/class/nvme/$CB/hostnqn)) $DB"
    pass resv-connect-two-hosts
else
    fail resv-connect-two-hosts "rc A=$RC_A B=$CONNECT_RC ctrls A=${CA:-none} B=${CB:-none}: $(dmesg_tail 3)"
    for n in resv-register resv-acquire resv-report-eds resv-nonholder-write-conflict resv-holder-write-ok resv-preempt-abort resv-old-holder-fenced resv-ptpl-restart resv-release; do
        fail $n "not connected"
    done
    exit 0
fi
dd if=/dev/urandom of=/tmp/blk bs=4k count=1 2>/dev/null

step "R2. nvme resv-register: A with $KEY_A, B with $KEY_B, both with CPTPL=11b (persist)"
timeout 60 nvme resv-register "$DA" --namespace-id=1 --nrkey=$KEY_A --rrega=0 --cptpl=3 > /tmp/reg.out 2>&1; ra=$?
show /tmp/reg.out
timeout 60 nvme resv-register "$DB" --namespace-id=1 --nrkey=$KEY_B --rrega=0 --cptpl=3 > /tmp/reg.out 2>&1; rb=$?
show /tmp/reg.out
if [ $ra = 0 ] && [ $rb = 0 ]; then pass resv-register; else fail resv-register "rc A=$ra B=$rb: $(tail -n1 /tmp/reg.out)"; fi

step "R3. nvme resv-acquire: A acquires Exclusive Access (rtype 2)"
timeout 60 nvme resv-acquire "$DA" --namespace-id=1 --crkey=$KEY_A --rtype=2 --racqa=0 > /tmp/acq.out 2>&1; rc=$?
show /tmp/acq.out
if [ $rc = 0 ]; then pass resv-acquire; else fail resv-acquire "rc=$rc: $(tail -n1 /tmp/acq.out)"; fi

step "R4. nvme resv-report --eds (from B's controller)"
report "$DB"; rc=$?
show /tmp/report.out
rtype=$(field rtype < /tmp/report.out) regctl=$(field regctl < /tmp/report.out) ptpls=$(field ptpls < /tmp/report.out)
keys=$(grep -i 'rkey' /tmp/report.out | tr -d ' ' | tr '\n' ' ')
if [ $rc = 0 ] && [ "$(num "$rtype")" = 2 ] && [ "$(num "$regctl")" = 2 ] && [ "$(num "$ptpls")" = 1 ] &&
   echo "$keys" | grep -qi a1a1a1a1 && echo "$keys" | grep -qi b2b2b2b2; then
    pass resv-report-eds
else
    fail resv-report-eds "rc=$rc rtype=$rtype regctl=$regctl ptpls=$ptpls keys=$keys"
fi

step "R5. B (registrant, not holder) writes: Reservation Conflict; A (holder) writes: OK"
L0=$(dmesg | wc -l)
if write_ok "$DB"; then
    fail resv-nonholder-write-conflict "B's write succeeded under A's Exclusive Access reservation"
else
    pass resv-nonholder-write-conflict
    info "B's write failed: $(tail -n1 /tmp/dd.err); kernel: $(dmesg | tail -n "+$((L0 + 1))" | grep -i nvme | tail -n 2 | tr '\n' ';')"
fi
if write_ok "$DA"; then pass resv-holder-write-ok; else fail resv-holder-write-ok "$(tail -n1 /tmp/dd.err) $(dmesg_tail 2)"; fi

step "R6. B preempts-and-aborts A (racqa 2, prkey $KEY_A): B holds the reservation, A is unregistered"
timeout 60 nvme resv-acquire "$DB" --namespace-id=1 --crkey=$KEY_B --prkey=$KEY_A --rtype=2 --racqa=2 > /tmp/acq.out 2>&1; rc=$?
show /tmp/acq.out
report "$DB"; rrc=$?
show /tmp/report.out
regctl=$(field regctl < /tmp/report.out)
keys=$(grep -i 'rkey' /tmp/report.out | tr -d ' ' | tr '\n' ' ')
if [ $rc = 0 ] && [ $rrc = 0 ] && [ "$(num "$regctl")" = 1 ] && echo "$keys" | grep -qi b2b2b2b2 && ! echo "$keys" | grep -qi a1a1a1a1; then
    pass resv-preempt-abort
else
    fail resv-preempt-abort "acquire rc=$rc report rc=$rrc regctl=$regctl keys=$keys"
fi
if write_ok "$DA"; then fail resv-old-holder-fenced "A's write still succeeds after the preempt"
elif ! write_ok "$DB"; then fail resv-old-holder-fenced "A is refused but so is B, the new holder: $(tail -n1 /tmp/dd.err)"
else pass resv-old-holder-fenced; fi

step "R7. restart the target (SIGTERM, start again on the same file): the reservation persists"
answer=$(sync_host restart-resv-target 90)
info "host: $answer"
wait_for 60 ctrl_live "$CB"
report "$DB"; rc=$?
show /tmp/report.out
rtype=$(field rtype < /tmp/report.out) regctl=$(field regctl < /tmp/report.out)
keys=$(grep -i 'rkey' /tmp/report.out | tr -d ' ' | tr '\n' ' ')
if [ "$answer" != ok ]; then fail resv-ptpl-restart "host could not restart the target: $answer"
elif [ $rc = 0 ] && [ "$(num "$rtype")" = 2 ] && [ "$(num "$regctl")" = 1 ] && echo "$keys" | grep -qi b2b2b2b2 &&
     ! write_ok "$DA" && write_ok "$DB"; then
    pass resv-ptpl-restart
else
    fail resv-ptpl-restart "after restart: ctrl B $(ctrl_state "$CB"), report rc=$rc rtype=$rtype regctl=$regctl keys=$keys; $(dmesg_tail 2)"
fi

step "R8. B releases: no reservation left, A (unregistered) may write again"
timeout 60 nvme resv-release "$DB" --namespace-id=1 --crkey=$KEY_B --rtype=2 --rrela=0 > /tmp/rel.out 2>&1; rc=$?
show /tmp/rel.out
report "$DB"; rrc=$?
rtype=$(field rtype < /tmp/report.out)
if [ $rc = 0 ] && [ $rrc = 0 ] && [ "$(num "$rtype")" = 0 ] && write_ok "$DA"; then pass resv-release
else fail resv-release "release rc=$rc report rc=$rrc rtype=$rtype; A write: $(tail -n1 /tmp/dd.err)"; fi

timeout 60 nvme disconnect -n "$RNQN" > /dev/null 2>&1
