#!/bin/sh
# Interop boot "ana" (run by ../ana.sh, two NICs): the Linux host's native multipath under an
# ANA change. Two paths to NQN (NIC 0 -> AP1, NIC 1 -> AP2), iopolicy round-robin, fio writing
# with crc32c verify; the host sets path 2 inaccessible and back to optimized through the
# target's control interface (requests over the 9p share) and checks the target's counters;
# this side checks the path device's ana_state and that fio ends without an error.
#
# Environment (from ana.sh): NQN, AP1, AP2
#
# Guest checks (ana.sh lists them on its CHECKS line with the host's):
#   ana-connect ana-iopolicy-round-robin ana-state-inaccessible ana-state-optimized ana-fio-verify ana-disconnect
. /scenario/lib.sh
A0=$HOST_IP A1=${HOST_IP1:-10.0.3.2}
FIO_SECS=45

skip_rest() { for n in "$@"; do fail "$n" "not run: $SKIP_WHY"; done; }

step "connect path 1 ($A0:$AP1) and path 2 ($A1:$AP2)"
nvme_connect ana1 60 -t tcp -a "$A0" -s "$AP1" -n "$NQN"
rc1=$CONNECT_RC
nvme_connect ana2 60 -t tcp -a "$A1" -s "$AP2" -n "$NQN"
rc2=$CONNECT_RC
C1=$(ctrls "$NQN" "$AP1") C2=$(ctrls "$NQN" "$AP2")
if [ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ -n "$C1" ] && [ -n "$C2" ] && wait_for 15 ctrl_live "$C1" && wait_for 15 ctrl_live "$C2" &&
   wait_for 15 head_dev "$NQN" && [ "$(path_count "$NQN")" = 2 ]; then
    pass ana-connect
else
    fail ana-connect "rc=$rc1/$rc2 ctrls=${C1:-none}/${C2:-none} paths=$(path_count "$NQN"): $(dmesg_tail 3)"
    SKIP_WHY="not connected"
    skip_rest ana-iopolicy-round-robin ana-state-inaccessible ana-state-optimized ana-fio-verify ana-disconnect
    exit 0
fi
DEV=$(head_dev "$NQN")
# path 2's device: nvme<subsys>c<instance of C2>n1
P2=
for b in /sys/block/nvme*c${C2#nvme}n1; do [ -e "$b" ] && P2=${b##*/}; done
ana_state() { cat "/sys/block/$P2/ana_state" 2>/dev/null; }
is_state() { [ "$(ana_state)" = "$1" ]; }
info "namespace $DEV, path 1 $C1, path 2 $C2 ($P2, ana_state $(ana_state))"

step "iopolicy round-robin"
SUB=
for s in /sys/class/nvme-subsystem/nvme-subsys*; do
    [ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$NQN" ] && SUB=$s
done
echo round-robin > "$SUB/iopolicy" 2>/dev/null
if [ "$(cat "$SUB/iopolicy" 2>/dev/null)" = round-robin ]; then pass ana-iopolicy-round-robin
else fail ana-iopolicy-round-robin "iopolicy is '$(cat "$SUB/iopolicy" 2>/dev/null)' (subsystem ${SUB:-not found})"; fi

step "fio with verify for ${FIO_SECS}s in the background"
fio --name=ana --filename="$DEV" --ioengine=io_uring --direct=1 --iodepth=8 --rw=randwrite --bs=4k --size=32M \
    --verify=crc32c --verify_backlog=64 --verify_fatal=1 --time_based --runtime="$FIO_SECS" > /tmp/fio.ana.out 2>&1 &
FIO=$!
sleep 3

step "host: path 2 takes I/O, then set it inaccessible"
info "host: $(sync_host check-moving 30)"
t0=$(now)
answer=$(sync_host set-inaccessible 30)
info "host: $answer"
if [ "$answer" != ok ]; then
    fail ana-state-inaccessible "the host could not set the state: $answer"
elif wait_for 15 is_state inaccessible; then
    pass ana-state-inaccessible
    info "$P2 ana_state inaccessible after $(elapsed "$t0")s"
else
    fail ana-state-inaccessible "$P2 ana_state is '$(ana_state)' 15 s after the change: $(dmesg_tail 3)"
fi
info "host: $(sync_host check-stopped 30)"

step "host: path 2 optimized again"
t0=$(now)
answer=$(sync_host set-optimized 30)
info "host: $answer"
if [ "$answer" != ok ]; then
    fail ana-state-optimized "the host could not set the state: $answer"
elif wait_for 15 is_state optimized; then
    pass ana-state-optimized
    info "$P2 ana_state optimized after $(elapsed "$t0")s"
else
    fail ana-state-optimized "$P2 ana_state is '$(ana_state)' 15 s after the change: $(dmesg_tail 3)"
fi
info "host: $(sync_host check-resumed 40)"

step "fio ends without an error"
wait "$FIO"; rc=$?
sed 's/^/    | /' /tmp/fio.ana.out | grep -E 'err=|WRITE:|verify|error' | head -n 6
if [ "$rc" = 0 ] && grep -q 'err= 0' /tmp/fio.ana.out; then pass ana-fio-verify
else fail ana-fio-verify "fio rc=$rc: $(grep -E 'err=|error|verify' /tmp/fio.ana.out | head -n2 | tr '\n' ' ') $(dmesg_tail 2)"; fi
dmesg | grep -iE 'ana|failover|requeue' | tail -n 6 | sed 's/^/    | /'

step "disconnect"
if timeout 30 nvme disconnect -n "$NQN" > /tmp/disc.out 2>&1 && wait_for 10 no_ctrls "$NQN"; then pass ana-disconnect
else fail ana-disconnect "$(tail -n1 /tmp/disc.out) controllers left: $(ctrls "$NQN")"; fi
