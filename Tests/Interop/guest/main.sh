#!/bin/sh
# Interop boot 1 ("main"): the Linux NVMe/TCP host against `halyard nvmf-target` on the host's
# 127.0.0.1 (reached as 10.0.2.2 through NIC 0 and 10.0.3.2 through NIC 1). Needs 2 NICs, the
# results channel and the 9p share (run-guest.sh -n 2 -r FILE -s DIR).
#
# Environment (from run.sh):
#   NQN, P1, P2, DISC, SIZE   main target: subsystem, listener ports, discovery port, bytes
#   ADVERTISE                 address the discovery log must advertise (10.0.2.2)
#   ACL_NQN, ACL_PORT         second target started with --allow-host <this guest's host NQN>
#                             and --block-size 4096
#
# Check names (run.sh reads this line to know what to expect; keep it in sync):
# CHECKS: discover connect-unknown-nqn-refused connect-host-not-allowed-refused connect-allowed-host block-size-4096 connect multipath-two-paths multipath-ana-optimized id-ctrl-subnqn id-ctrl-cntlid id-ctrl-mdts id-ctrl-cmic id-ns-nmic nguid-same-on-both-paths ns-size dd-readback fio-randwrite-4k-verify fio-seqwrite-128k-verify read-past-end-dd read-past-end-nvme-read disconnect connect-digests io-digests disconnect-digests sqflow-disabled-io
. /scenario/lib.sh
A0=$HOST_IP A1=${HOST_IP1:-10.0.3.2}
FOREIGN_ID=00000000-0000-4000-8000-0000000beef0
FOREIGN_NQN=nqn.2014-08.org.nvmexpress:uuid:$FOREIGN_ID
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
info "hostnqn $(cat /etc/nvme/hostnqn), kernel $(uname -r), $(nvme version | head -n1)"

# ---- 1. discovery ----------------------------------------------------------------------------
step "1. nvme discover -t tcp -a $A0 -s $DISC"
timeout 60 nvme discover -t tcp -a "$A0" -s "$DISC" > /tmp/disc.out 2>&1; rc=$?
sed 's/^/    | /' /tmp/disc.out
# one "subnqn traddr trsvcid" line per log entry
awk '/^=====Discovery Log Entry/ { if (n) print s, a, p; n = 1; s = a = p = "-" }
     /^subnqn:/ { s = $2 } /^traddr:/ { a = $2 } /^trsvcid:/ { p = $2 }
     END { if (n) print s, a, p }' /tmp/disc.out > /tmp/disc.entries
missing=
for p in "$P1" "$P2"; do grep -qx "$NQN $ADVERTISE $p" /tmp/disc.entries || missing="$missing $ADVERTISE:$p"; done
if [ $rc != 0 ]; then fail discover "nvme discover rc=$rc: $(tail -n1 /tmp/disc.out) $(dmesg_tail 2)"
elif [ -n "$missing" ]; then fail discover "no entry for $NQN at$missing; entries: $(tr '\n' ';' < /tmp/disc.entries)"
else pass discover; fi

# ---- 10. refusals (before anything is connected: nvme-cli 2.3 refuses a second connect to the
# same address/port/NQN before it reaches the target) ------------------------------------------
step "10a. unknown subsystem NQN is refused fast"
BAD=nqn.2026-11.io.halyard:no-such-subsystem
nvme_connect unknown 90 -t tcp -a "$A0" -s "$P1" -n "$BAD"
if [ "$CONNECT_RC" = 0 ]; then fail connect-unknown-nqn-refused "connect to $BAD succeeded"; nvme disconnect -n "$BAD" >/dev/null 2>&1
elif [ "$CONNECT_RC" = 124 ]; then fail connect-unknown-nqn-refused "nvme connect still blocked after 90 s"
elif ! lt "$CONNECT_SECS" 10; then fail connect-unknown-nqn-refused "refused only after ${CONNECT_SECS}s (Connect not answered?): $(dmesg_tail 2)"
else pass connect-unknown-nqn-refused; info "refused in ${CONNECT_SECS}s: $(dmesg_tail 2)"; fi

step "10b. a host NQN not in --allow-host is refused fast"
nvme_connect foreign 90 -t tcp -a "$A0" -s "$ACL_PORT" -n "$ACL_NQN" --hostnqn "$FOREIGN_NQN" --hostid "$FOREIGN_ID"
if [ "$CONNECT_RC" = 0 ]; then fail connect-host-not-allowed-refused "host $FOREIGN_NQN was let in"; nvme disconnect -n "$ACL_NQN" >/dev/null 2>&1
elif [ "$CONNECT_RC" = 124 ]; then fail connect-host-not-allowed-refused "nvme connect still blocked after 90 s"
elif ! lt "$CONNECT_SECS" 10; then fail connect-host-not-allowed-refused "refused only after ${CONNECT_SECS}s: $(dmesg_tail 2)"
else pass connect-host-not-allowed-refused; info "refused in ${CONNECT_SECS}s: $(dmesg_tail 2)"; fi

step "10c. the allowed host gets in (ACL target, --block-size 4096)"
nvme_connect acl 90 -t tcp -a "$A0" -s "$ACL_PORT" -n "$ACL_NQN"
if [ "$CONNECT_RC" = 0 ] && wait_for 15 head_dev "$ACL_NQN"; then
    pass connect-allowed-host
    D=$(head_dev "$ACL_NQN"); b=${D#/dev/}
    lbs=$(cat /sys/block/$b/queue/logical_block_size)
    dd if=/dev/urandom of=/tmp/acl.pat bs=4k count=64 2>/dev/null
    dd if=/tmp/acl.pat of="$D" bs=4k count=64 oflag=direct 2>/dev/null
    dd if="$D" of=/tmp/acl.back bs=4k count=64 iflag=direct 2>/dev/null
    if [ "$lbs" != 4096 ]; then fail block-size-4096 "logical_block_size=$lbs"
    elif ! cmp -s /tmp/acl.pat /tmp/acl.back; then fail block-size-4096 "256 KiB written with 4K blocks did not read back identical"
    else pass block-size-4096; fi
else
    fail connect-allowed-host "rc=$CONNECT_RC: $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 2)"
    fail block-size-4096 "not connected"
fi
timeout 30 nvme disconnect -n "$ACL_NQN" > /dev/null 2>&1
wait_for 10 no_ctrls "$ACL_NQN" || info "ACL controllers still present: $(ctrls "$ACL_NQN")"

# ---- 2/6. connect both paths -------------------------------------------------------------------
step "2. connect path 1 ($A0:$P1, no digests)"
nvme_connect p1 90 -t tcp -a "$A0" -s "$P1" -n "$NQN"
C1=$(ctrls "$NQN" "$P1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C1" ] && wait_for 15 ctrl_live "$C1" && wait_for 15 head_dev "$NQN"; then
    pass connect
else
    fail connect "rc=$CONNECT_RC ctrl=${C1:-none} state=$(ctrl_state "$C1"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
fi
step "6. connect path 2 ($A1:$P2 through NIC 1)"
nvme_connect p2 90 -t tcp -a "$A1" -s "$P2" -n "$NQN"
C2=$(ctrls "$NQN" "$P2")
wait_for 15 ctrl_live "$C2"
wait_for 15 sh -c "[ \$(ls -d /sys/block/nvme*c*n1 2>/dev/null | wc -l) -ge 2 ]"
nvme list-subsys 2>&1 | sed 's/^/    | /'
for p in /sys/block/nvme*c*n1; do [ -e "$p" ] && info "path ${p##*/}: ana_state=$(cat "$p/ana_state" 2>/dev/null) ctrl=$(cat "$p/device/cntlid" 2>/dev/null)"; done
nsubsys=0
for s in /sys/class/nvme-subsystem/nvme-subsys*; do [ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$NQN" ] && nsubsys=$((nsubsys + 1)); done
npaths=$(path_count "$NQN")
if [ "$CONNECT_RC" = 0 ] && [ "$npaths" = 2 ] && [ "$nsubsys" = 1 ]; then pass multipath-two-paths
else fail multipath-two-paths "connect rc=$CONNECT_RC, $npaths path device(s), $nsubsys nvme-subsys for $NQN: $(dmesg_tail 3)"; fi
states= nopt=0 nall=0
for p in /sys/block/nvme*c*n1; do
    [ "$(cat "$p/device/subsysnqn" 2>/dev/null)" = "$NQN" ] || continue
    a=$(cat "$p/ana_state" 2>/dev/null)
    states="$states ${p##*/}=${a:-?}"; nall=$((nall + 1))
    [ "$a" = optimized ] && nopt=$((nopt + 1))
done
if [ "$nall" -ge 2 ] && [ "$nopt" = "$nall" ]; then pass multipath-ana-optimized
else fail multipath-ana-optimized "ana_state:${states:- no paths}"; fi

# ---- 3. identify -------------------------------------------------------------------------------
step "3. nvme id-ctrl / id-ns / ns-descs on every path"
CS=$(ctrls "$NQN")
bad_subnqn= bad_cntlid= bad_mdts= bad_cmic= bad_nmic= nguids= ids=
for c in $CS; do
    nvme id-ctrl "/dev/$c" > /tmp/idc.$c 2>&1
    nvme id-ns "/dev/$c" -n 1 > /tmp/idns.$c 2>&1
    nvme ns-descs "/dev/$c" -n 1 > /tmp/descs.$c 2>&1
    grep -E '^(vid|sn|mn|fr|cntlid|mdts|cmic|oaes|ver|subnqn|ioccsz|iorcsz|sgls|kas|anacap|nn|mnan) ' /tmp/idc.$c | sed "s/^/    | $c /"
    grep -E '^(nsze|ncap|nmic|flbas|anagrpid|nguid|eui64|lbaf  0) ' /tmp/idns.$c | sed "s/^/    | $c /"
    sed "s/^/    | $c /" /tmp/descs.$c
    s=$(field subnqn < /tmp/idc.$c); [ "$s" = "$NQN" ] || bad_subnqn="$bad_subnqn $c:'$s'"
    i=$(num "$(field cntlid < /tmp/idc.$c)"); k=$(cat /sys/class/nvme/$c/cntlid)
    [ "$i" = "$k" ] || bad_cntlid="$bad_cntlid $c:id-ctrl=$i,sysfs=$k"
    ids="$ids $k"
    m=$(num "$(field mdts < /tmp/idc.$c)"); [ "$m" -gt 0 ] || bad_mdts="$bad_mdts $c:$m"
    x=$(num "$(field cmic < /tmp/idc.$c)"); [ $((x & 10)) = 10 ] || bad_cmic="$bad_cmic $c:$x"
    n=$(num "$(field nmic < /tmp/idns.$c)"); [ $((n & 1)) = 1 ] || bad_nmic="$bad_nmic $c:$n"
    g=$(field nguid < /tmp/idns.$c)
    d=$(awk '/nguid/ { print $NF; exit }' /tmp/descs.$c)
    nguids="$nguids $c:id-ns=${g:-?},ns-descs=${d:-?}"
done
[ -n "$CS" ] || { bad_subnqn=" no controllers"; bad_cntlid=$bad_subnqn; bad_mdts=$bad_subnqn; bad_cmic=$bad_subnqn; bad_nmic=$bad_subnqn; }
[ -z "$bad_subnqn" ] && pass id-ctrl-subnqn || fail id-ctrl-subnqn "subnqn:$bad_subnqn (want $NQN)"
dup=$(echo $ids | tr ' ' '\n' | sort | uniq -d)
if [ -n "$bad_cntlid" ]; then fail id-ctrl-cntlid "$bad_cntlid"
elif [ -n "$dup" ]; then fail id-ctrl-cntlid "duplicate cntlid $dup across paths"
else pass id-ctrl-cntlid; info "cntlids:$ids"; fi
[ -z "$bad_mdts" ] && pass id-ctrl-mdts || fail id-ctrl-mdts "mdts:$bad_mdts"
[ -z "$bad_cmic" ] && pass id-ctrl-cmic || fail id-ctrl-cmic "cmic (want bits 1 and 3):$bad_cmic"
[ -z "$bad_nmic" ] && pass id-ns-nmic || fail id-ns-nmic "nmic:$bad_nmic"
# the same non-zero NGUID on both paths (from id-ns, or from ns-descs when id-ns shows zeros)
set -- $CS
g1=$(field nguid < /tmp/idns.${1:-x} 2>/dev/null); g2=$(field nguid < /tmp/idns.${2:-x} 2>/dev/null)
d1=$(awk '/nguid/ { print $NF; exit }' /tmp/descs.${1:-x} 2>/dev/null); d2=$(awk '/nguid/ { print $NF; exit }' /tmp/descs.${2:-x} 2>/dev/null)
zero=00000000000000000000000000000000
if [ $# -lt 2 ]; then fail nguid-same-on-both-paths "only $# controller(s)"
elif [ -n "$g1" ] && [ "$g1" != "$zero" ] && [ "$g1" = "$g2" ]; then pass nguid-same-on-both-paths
elif [ -n "$d1" ] && [ "$d1" = "$d2" ] && [ "$d1" != "$zero" ]; then pass nguid-same-on-both-paths
else fail nguid-same-on-both-paths "$nguids"; fi

# ---- sizes -------------------------------------------------------------------------------------
DEV=$(head_dev "$NQN")
B=${DEV#/dev/}
lbs=$(cat /sys/block/$B/queue/logical_block_size 2>/dev/null || echo 0)
nsze=$(num "$(field nsze < /tmp/idns.${C1:-x} 2>/dev/null)")
blk=$(cat /sys/block/$B/size 2>/dev/null || echo 0)
info "head $DEV: lbs=$lbs nsze=$nsze sectors=$blk want $SIZE bytes"
if [ -b "$DEV" ] && [ $((nsze * lbs)) = "$SIZE" ] && [ $((blk * 512)) = "$SIZE" ]; then pass ns-size
else fail ns-size "dev=${DEV:-none} nsze=$nsze lbs=$lbs -> $((nsze * lbs)) bytes, block dev $((blk * 512)) bytes, want $SIZE"; fi

# ---- 4. dd write / read-back ---------------------------------------------------------------------
step "4. dd random 4 MiB at 64 MiB, read back, compare ($DEV)"
dd if=/dev/urandom of=/tmp/pat bs=64k count=64 2>/dev/null
if [ ! -b "$DEV" ]; then fail dd-readback "no namespace block device"
elif ! timeout 120 dd if=/tmp/pat of="$DEV" bs=64k seek=1024 count=64 oflag=direct 2>/tmp/dd.err; then fail dd-readback "write failed: $(tail -n1 /tmp/dd.err) $(dmesg_tail 2)"
elif ! timeout 120 dd if="$DEV" of=/tmp/back bs=64k skip=1024 count=64 iflag=direct 2>/tmp/dd.err; then fail dd-readback "read failed: $(tail -n1 /tmp/dd.err) $(dmesg_tail 2)"
elif ! cmp /tmp/pat /tmp/back > /tmp/cmp.out 2>&1; then fail dd-readback "data differs: $(head -n1 /tmp/cmp.out)"
else pass dd-readback; fi

# ---- 5. fio verify -------------------------------------------------------------------------------
run_fio() {   # run_fio NAME FIO-ARGS...: crc32c verify, fatal on the first mismatch
    n=$1; shift
    step "5. fio $n: $*"
    timeout 300 fio --name="$n" --filename="$DEV" --ioengine=io_uring --direct=1 --iodepth=16 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never "$@" > /tmp/fio.$n.out 2>&1
    rc=$?
    grep -E 'err=|IOPS|verify|error' /tmp/fio.$n.out | head -n 8 | sed 's/^/    | /'
    if [ $rc = 0 ] && grep -q 'err= 0' /tmp/fio.$n.out; then pass "$n"
    else fail "$n" "fio rc=$rc: $(grep -E 'err=|error|verify' /tmp/fio.$n.out | head -n2 | tr '\n' ' ') $(dmesg_tail 2)"; fi
}
if [ -b "$DEV" ]; then
    run_fio fio-randwrite-4k-verify --rw=randwrite --bs=4k --offset=0 --size=16M
    run_fio fio-seqwrite-128k-verify --rw=write --bs=128k --offset=16M --size=32M
else
    fail fio-randwrite-4k-verify "no namespace block device"; fail fio-seqwrite-128k-verify "no namespace block device"
fi

# ---- 7. reads past the end -----------------------------------------------------------------------
step "7. reads past the end of the namespace"
last4k=$((SIZE / 4096 - 1))
timeout 60 dd if="$DEV" of=/tmp/last bs=4096 skip=$last4k count=1 iflag=direct 2>/tmp/dd1.err; r1=$?
timeout 60 dd if="$DEV" of=/tmp/past bs=4096 skip=$((last4k + 1)) count=1 iflag=direct 2>/tmp/dd2.err; r2=$?
s1=$(stat -c %s /tmp/last 2>/dev/null || echo -1); s2=$(stat -c %s /tmp/past 2>/dev/null || echo -1)
info "last 4K block: rc=$r1 $s1 bytes; one past: rc=$r2 $s2 bytes ($(tail -n1 /tmp/dd2.err))"
if [ "$r1" = 0 ] && [ "$s1" = 4096 ] && [ "$s2" = 0 ]; then pass read-past-end-dd
else fail read-past-end-dd "last block rc=$r1 ${s1}B, past end rc=$r2 ${s2}B"; fi
timeout 60 nvme read "$DEV" -s $((nsze - 1)) -c 0 -z "$lbs" -d /tmp/nr.last > /tmp/nr1.out 2>&1; n1=$?
timeout 60 nvme read "$DEV" -s "$nsze" -c 0 -z "$lbs" -d /tmp/nr.past > /tmp/nr2.out 2>&1; n2=$?
info "nvme read slba=$((nsze - 1)): rc=$n1 $(tr '\n' ' ' < /tmp/nr1.out | cut -c1-200)"
info "nvme read slba=$nsze: rc=$n2 $(tr '\n' ' ' < /tmp/nr2.out | cut -c1-200)"
if [ "$n1" != 0 ]; then fail read-past-end-nvme-read "read of the last LBA failed too: rc=$n1 $(tr '\n' ' ' < /tmp/nr1.out)"
elif [ "$n2" = 0 ] || [ "$n2" = 124 ]; then fail read-past-end-nvme-read "read at slba=nsze: rc=$n2 $(tr '\n' ' ' < /tmp/nr2.out)"
elif grep -qiE 'LBA Out of Range|\(0x(40)?80\)' /tmp/nr2.out; then pass read-past-end-nvme-read
else fail read-past-end-nvme-read "not LBA Out of Range: $(tr '\n' ' ' < /tmp/nr2.out)"; fi

# ---- 8. disconnect -------------------------------------------------------------------------------
step "8. nvme disconnect -n $NQN"
sync_host mark-disconnect-begin 30 > /dev/null
t0=$(now)
timeout 60 nvme disconnect -n "$NQN" > /tmp/disc.out 2>&1; rc=$?
wait_for 10 no_ctrls "$NQN"
secs=$(elapsed "$t0")
sed 's/^/    | /' /tmp/disc.out
info "disconnect rc=$rc, controllers gone after ${secs}s: $(dmesg_tail 3)"
sleep 1
sync_host mark-disconnect-end 30 > /dev/null
if [ "$rc" != 0 ]; then fail disconnect "rc=$rc $(tr '\n' ' ' < /tmp/disc.out)"
elif ! no_ctrls "$NQN"; then fail disconnect "controllers still present after ${secs}s: $(ctrls "$NQN")"
elif dmesg | grep -qiE 'shutdown timeout|shutdown incomplete'; then fail disconnect "kernel: $(dmesg | grep -iE 'shutdown timeout|shutdown incomplete' | tail -n1)"
elif ! lt "$secs" 5; then fail disconnect "took ${secs}s"
else pass disconnect; fi

# ---- 2b. digests ---------------------------------------------------------------------------------
step "2b. reconnect with --hdr-digest --data-digest"
nvme_connect dig 90 -t tcp -a "$A0" -s "$P1" -n "$NQN" --hdr-digest --data-digest
C=$(ctrls "$NQN" "$P1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C" ] && wait_for 15 ctrl_live "$C" && wait_for 15 head_dev "$NQN"; then
    pass connect-digests
    DEV=$(head_dev "$NQN")
    dd if=/dev/urandom of=/tmp/dpat bs=64k count=80 2>/dev/null   # 5 MiB
    # 1 MiB in 4K writes (in-capsule data), then 4 MiB in 128K writes (R2T + H2CData)
    if timeout 120 dd if=/tmp/dpat of="$DEV" bs=4k count=256 oflag=direct 2>/tmp/dd.err &&
       timeout 120 dd if=/tmp/dpat of="$DEV" bs=128k skip=8 seek=8 count=32 oflag=direct 2>/tmp/dd.err &&
       timeout 120 dd if="$DEV" of=/tmp/dback bs=128k count=40 iflag=direct 2>/tmp/dd.err; then
        if cmp /tmp/dpat /tmp/dback > /tmp/cmp.out 2>&1 && ctrl_live "$C"; then pass io-digests
        else fail io-digests "data differs or controller not live ($(ctrl_state "$C")): $(head -n1 /tmp/cmp.out) $(dmesg_tail 2)"; fi
    else
        fail io-digests "dd failed: $(tail -n1 /tmp/dd.err) $(dmesg_tail 3)"
    fi
else
    fail connect-digests "rc=$CONNECT_RC ctrl=${C:-none} state=$(ctrl_state "$C"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    fail io-digests "not connected"
fi
t0=$(now)
timeout 60 nvme disconnect -n "$NQN" > /tmp/disc.out 2>&1; rc=$?
wait_for 10 no_ctrls "$NQN"
secs=$(elapsed "$t0")
if [ "$rc" = 0 ] && no_ctrls "$NQN" && lt "$secs" 5; then pass disconnect-digests
else fail disconnect-digests "rc=$rc after ${secs}s, left: $(ctrls "$NQN") $(tr '\n' ' ' < /tmp/disc.out)"; fi

# ---- 2c. SQ flow control disabled: reads complete with the C2HData SUCCESS flag ------------------
step "2c. reconnect with --disable-sqflow (reads completed by C2HData SUCCESS, no CapsuleResp)"
L0=$(dmesg | wc -l)
nvme_connect sqflow 90 -t tcp -a "$A0" -s "$P1" -n "$NQN" --disable-sqflow
C=$(ctrls "$NQN" "$P1")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C" ] && wait_for 15 ctrl_live "$C" && wait_for 15 head_dev "$NQN"; then
    DEV=$(head_dev "$NQN")
    # The 5 MiB written in 2b, read in 4K and 128K requests, then one more write + read back.
    if timeout 120 dd if="$DEV" of=/tmp/sback bs=4k count=256 iflag=direct 2>/tmp/dd.err &&
       timeout 120 dd if="$DEV" of=/tmp/sback bs=128k skip=8 seek=8 count=32 iflag=direct conv=notrunc 2>/tmp/dd.err &&
       cmp /tmp/dpat /tmp/sback > /tmp/cmp.out 2>&1 &&
       timeout 120 dd if=/tmp/dpat of="$DEV" bs=64k seek=100 count=16 oflag=direct 2>/tmp/dd.err &&
       timeout 120 dd if="$DEV" of=/tmp/sback2 bs=64k skip=100 count=16 iflag=direct 2>/tmp/dd.err &&
       cmp -n 1048576 /tmp/dpat /tmp/sback2 > /tmp/cmp.out 2>&1 && ctrl_live "$C" && ! dmesg | tail -n "+$((L0 + 1))" | grep -qiE 'error|reset|recover'; then
        pass sqflow-disabled-io
    else
        fail sqflow-disabled-io "dd/cmp failed or controller not live ($(ctrl_state "$C")): $(tail -n1 /tmp/dd.err) $(head -n1 /tmp/cmp.out) $(dmesg_tail 3)"
    fi
else
    fail sqflow-disabled-io "connect rc=$CONNECT_RC ctrl=${C:-none} state=$(ctrl_state "$C"): $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
fi
timeout 60 nvme disconnect -n "$NQN" > /dev/null 2>&1
wait_for 10 no_ctrls "$NQN"

step "kernel log (nvme)"
dmesg | grep -i nvme | tail -n 40
exit 0
