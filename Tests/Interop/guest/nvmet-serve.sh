#!/bin/sh
# Interop guest scenario for nvmet.sh: serve the Linux kernel's own NVMe/TCP target (nvmet,
# nvmet-tcp) so that Halyard's userspace initiator on the host can be tested against an
# independent target. The host reaches it through a QEMU hostfwd 127.0.0.1:HOSTPORT -> guest :4420.
#
#   subsystem  $NQN (default nqn.2026-11.io.halyard:nvmet-interop), any host allowed
#   namespace  1: a 64 MiB file on the guest's tmpfs (/tmp), buffered I/O (tmpfs in 6.1 has no
#              O_DIRECT), so reads return what was written for the life of the guest
#   port       1: tcp ipv4 0.0.0.0:4420. nvmet serves the discovery subsystem
#              (nqn.2014-08.org.nvmexpress.discovery) on every port, so discovery uses 4420 too.
#
# Handshake with nvmet.sh: when the target is configured the guest writes "READY" on the
# results channel ($RESULTS, run-guest.sh -r); on a setup failure it writes "NOTREADY reason"
# and exits 1. Then it serves until the host creates /host/done on the 9p share (run-guest.sh -s),
# or SERVE_SECS pass, prints nvmet's kernel messages, and exits 0.
#
# Modules: `modprobe nvmet-tcp` when the image has it; otherwise nvmet.sh ships the missing .ko
# files in /scenario/nvmet-mods/ (the order to insmod them in: /scenario/nvmet-mods/order, and
# the ones already in the image to modprobe first: /scenario/nvmet-mods/modprobe).
#
# Environment (from nvmet.sh): NQN, SERVE_SECS (default 180), NS_SIZE_MB (default 64)
#
# No checks are reported by the guest (nvmet.sh does them on the host):
# CHECKS:
NQN=${NQN:-nqn.2026-11.io.halyard:nvmet-interop}
SERVE_SECS=${SERVE_SECS:-180}
NS_SIZE_MB=${NS_SIZE_MB:-64}
C=/sys/kernel/config/nvmet
MODS=/scenario/nvmet-mods

say() {   # a line on the console and on the results channel
    echo "$*"
    [ -n "${RESULTS:-}" ] && echo "$*" > "$RESULTS"
    return 0
}
notready() { say "NOTREADY $*"; dmesg | grep -iE 'nvmet|configfs' | tail -n 10; exit 1; }
up() { cut -d' ' -f1 /proc/uptime; }

echo "=== nvmet-serve: loading nvmet + nvmet-tcp"
if ! modprobe -a nvmet nvmet-tcp 2>/dev/null; then
    [ -f "$MODS/order" ] || notready "nvmet-tcp is not in the image and no modules were shipped"
    [ -s "$MODS/modprobe" ] && modprobe -a $(cat "$MODS/modprobe")
    for m in $(cat "$MODS/order"); do
        n=$(basename "$m" .ko | tr - _)
        [ -d "/sys/module/$n" ] && continue
        insmod "$MODS/$m" || echo "insmod $m failed"
    done
fi
[ -d /sys/module/nvmet_tcp ] || notready "nvmet_tcp module not loaded: $(dmesg | tail -n 2 | tr '\n' ' ')"
grep -q configfs /proc/mounts || mount -t configfs configfs /sys/kernel/config
[ -d "$C" ] || notready "$C missing (configfs not mounted?)"

echo "=== nvmet-serve: subsystem $NQN, ${NS_SIZE_MB} MiB file namespace, port 0.0.0.0:4420"
truncate -s "${NS_SIZE_MB}M" /tmp/nvmet-ns1.img || notready "cannot create /tmp/nvmet-ns1.img"
S=$C/subsystems/$NQN
mkdir "$S" || notready "mkdir $S failed"
echo 1 > "$S/attr_allow_any_host" || notready "attr_allow_any_host"
mkdir "$S/namespaces/1" || notready "mkdir namespace 1"
echo /tmp/nvmet-ns1.img > "$S/namespaces/1/device_path" || notready "device_path"
echo 1 > "$S/namespaces/1/buffered_io" || notready "buffered_io"
echo 1 > "$S/namespaces/1/enable" || notready "namespace enable failed: $(dmesg | tail -n 2 | tr '\n' ' ')"
P=$C/ports/1
mkdir "$P" || notready "mkdir $P"
echo tcp > "$P/addr_trtype"
echo ipv4 > "$P/addr_adrfam"
echo 0.0.0.0 > "$P/addr_traddr"
echo 4420 > "$P/addr_trsvcid"
ln -s "$S" "$P/subsystems/$NQN" || notready "enabling port 4420 failed: $(dmesg | tail -n 2 | tr '\n' ' ')"
grep -q ':1144 00000000:0000 0A' /proc/net/tcp || notready "nothing listens on :4420: $(dmesg | grep nvmet | tail -n 2 | tr '\n' ' ')"
echo "INFO nvmet: cntlid_min=$(cat "$S/attr_cntlid_min" 2>/dev/null) version=$(cat "$S/attr_version" 2>/dev/null) model=$(cat "$S/attr_model" 2>/dev/null)"
say READY
t0=$(up)
while [ ! -e /host/done ]; do
    if [ "$(awk -v a="$t0" -v b="$(up)" 'BEGIN { print (b - a >= '"$SERVE_SECS"') }')" = 1 ]; then
        echo "INFO nvmet-serve: no /host/done after ${SERVE_SECS}s, stopping"
        break
    fi
    sleep 0.5
done
echo "=== nvmet-serve: done; nvmet kernel messages:"
dmesg | grep -E 'nvmet' | tail -n 60
# also on the share, so the host keeps them next to the results
dmesg > /host/guest-dmesg.txt 2>/dev/null
exit 0
