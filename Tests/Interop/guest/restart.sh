#!/bin/sh
# Interop boot 2 ("restart"): data on a file-backed namespace survives a target restart.
# The guest writes a pattern, asks run.sh (over the 9p share) to SIGTERM the target and start it
# again on the same file, waits for the kernel to reconnect (ctrl-loss-tmo 30 s, reconnect every
# 1 s), then reads the pattern back. If the reconnect fails, it still checks the data through a
# fresh connect so persistence and reconnect are judged separately.
# Needs the results channel and the share (run-guest.sh -r FILE -s DIR).
#
# Environment (from run.sh): FNQN, FPORT, FSIZE (file target: subsystem, port, bytes)
#
# Check names (run.sh reads this line to know what to expect; keep it in sync):
# CHECKS: file-connect file-write restart-reconnect restart-data-persisted file-disconnect
. /scenario/lib.sh
A0=$HOST_IP
CONNECT_ARGS="-t tcp -a $A0 -s $FPORT -n $FNQN --ctrl-loss-tmo=30 --reconnect-delay=1"

step "9. connect the file-backed target ($A0:$FPORT)"
nvme_connect file 90 $CONNECT_ARGS
C=$(ctrls "$FNQN" "$FPORT")
if [ "$CONNECT_RC" = 0 ] && [ -n "$C" ] && wait_for 15 ctrl_live "$C" && wait_for 15 head_dev "$FNQN"; then
    pass file-connect
else
    fail file-connect "rc=$CONNECT_RC ctrl=${C:-none}: $(tail -n1 "$CONNECT_OUT") $(dmesg_tail 3)"
    for n in file-write restart-reconnect restart-data-persisted file-disconnect; do fail $n "not connected"; done
    exit 0
fi
DEV=$(head_dev "$FNQN")
info "controller $C (cntlid $(cat /sys/class/nvme/$C/cntlid)), namespace $DEV, $(($(cat /sys/block/${DEV#/dev/}/size) * 512)) bytes"

step "write 4 MiB of random data at 8 MiB and the last 64 KiB, read back"
dd if=/dev/urandom of=/tmp/pat bs=64k count=64 2>/dev/null
dd if=/dev/urandom of=/tmp/tail bs=64k count=1 2>/dev/null
tailblk=$((FSIZE / 65536 - 1))
if timeout 120 dd if=/tmp/pat of="$DEV" bs=64k seek=128 count=64 oflag=direct 2>/tmp/dd.err &&
   timeout 60 dd if=/tmp/tail of="$DEV" bs=64k seek=$tailblk count=1 oflag=direct 2>/tmp/dd.err &&
   timeout 120 dd if="$DEV" of=/tmp/back bs=64k skip=128 count=64 iflag=direct 2>/tmp/dd.err &&
   cmp -s /tmp/pat /tmp/back; then
    pass file-write
else
    fail file-write "$(tail -n1 /tmp/dd.err) $(dmesg_tail 2)"
fi

step "ask the host to restart the target (SIGTERM, start again on the same file)"
cntlid_before=$(cat /sys/class/nvme/$C/cntlid)
t0=$(now)
answer=$(sync_host restart-file-target 90)
info "host: $answer (after $(elapsed "$t0")s); controller $C state now $(ctrl_state "$C")"

# The kernel sees the TCP connection close, enters resetting/connecting and retries every 1 s.
t1=$(now)
wait_for 40 ctrl_live "$C"
info "controller $C state $(ctrl_state "$C") after $(elapsed "$t1")s, cntlid $cntlid_before -> $(cat /sys/class/nvme/$C/cntlid 2>/dev/null)"
dmesg | grep -iE 'reconnect|reset|error|identifiers' | tail -n 6 | sed 's/^/    | /'
if [ "$answer" != ok ]; then
    fail restart-reconnect "host could not restart the target: $answer"
elif ctrl_live "$C" && dmesg | grep -q 'Successfully reconnected' && head_dev "$FNQN" > /dev/null; then
    pass restart-reconnect
else
    fail restart-reconnect "controller $C state '$(ctrl_state "$C")', namespace $(head_dev "$FNQN" || echo gone): $(dmesg_tail 3)"
fi

step "read the data back"
how="through the reconnected controller"
if ! ctrl_live "$C" || ! head_dev "$FNQN" > /dev/null; then
    # judge persistence on its own: drop the broken controller and connect afresh
    how="through a fresh connect"
    timeout 60 nvme disconnect -n "$FNQN" > /dev/null 2>&1
    wait_for 10 no_ctrls "$FNQN"
    nvme_connect file2 90 $CONNECT_ARGS
    wait_for 15 head_dev "$FNQN"
fi
DEV=$(head_dev "$FNQN")
if [ -z "$DEV" ]; then
    fail restart-data-persisted "no namespace after restart: $(dmesg_tail 3)"
elif ! timeout 120 dd if="$DEV" of=/tmp/back2 bs=64k skip=128 count=64 iflag=direct 2>/tmp/dd.err ||
     ! timeout 60 dd if="$DEV" of=/tmp/tail2 bs=64k skip=$tailblk count=1 iflag=direct 2>/tmp/dd.err; then
    fail restart-data-persisted "read $how failed: $(tail -n1 /tmp/dd.err) $(dmesg_tail 2)"
elif ! cmp -s /tmp/pat /tmp/back2 || ! cmp -s /tmp/tail /tmp/tail2; then
    fail restart-data-persisted "data read $how differs: $(cmp /tmp/pat /tmp/back2 2>&1 | head -n1) $(cmp /tmp/tail /tmp/tail2 2>&1 | head -n1)"
else
    pass restart-data-persisted; info "data identical $how"
fi

step "disconnect"
t0=$(now)
timeout 60 nvme disconnect -n "$FNQN" > /tmp/disc.out 2>&1; rc=$?
wait_for 10 no_ctrls "$FNQN"
secs=$(elapsed "$t0")
if [ "$rc" = 0 ] && no_ctrls "$FNQN"; then pass file-disconnect; info "in ${secs}s"
else fail file-disconnect "rc=$rc after ${secs}s, left: $(ctrls "$FNQN") $(tr '\n' ' ' < /tmp/disc.out)"; fi

step "kernel log (nvme)"
dmesg | grep -i nvme | tail -n 30
exit 0
