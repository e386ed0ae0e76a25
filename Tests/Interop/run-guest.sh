#!/usr/bin/env bash
# Boot the host's Debian kernel under QEMU with the interop image and run SCRIPT as the guest's
# scenario; stream the serial console to stdout; exit when the guest powers off (or on timeout).
#
# usage: run-guest.sh [options] SCRIPT [ARGS...]   run SCRIPT (sh) in the guest with ARGS
#        run-guest.sh [options] --none             boot, print info, power off (timing check)
#        run-guest.sh [options] --shell            interactive guest shell (Ctrl-A x quits)
#        run-guest.sh [-d DIR] --build-only        only make sure the image in DIR is built
#        run-guest.sh --print-stamp                print the image inputs fingerprint
# options:
#   -t, --timeout SEC    host wall-clock limit (default 300); exit 124 when hit
#   -d, --dir DIR        image folder (default $HALYARD_INTEROP_CACHE/image, HALYARD_INTEROP_CACHE
#                        defaulting to ${TMPDIR:-/tmp}/halyard-interop); built when missing or stale
#   -m, --mem MB         guest memory (default 1024)
#   -c, --smp N          guest vCPUs (default 2)
#   -n, --nics N         virtio NICs (default 1). NIC i: guest 10.0.(2+i).15/24, host 10.0.(2+i).2
#                        (= 127.0.0.1 on the host): N distinct paths for multipath tests
#   -f, --file PATH      copy PATH (file or dir) into the guest's /scenario/ (repeatable)
#   -e, --env K=V        export K=V in the guest before the scenario (repeatable)
#   -s, --share DIR      mount host DIR read-write at /host in the guest (virtio-9p)
#   -r, --results FILE   the guest's /dev/ttyS1 ($RESULTS in the scenario) is written raw to FILE
#   -l, --log FILE       console log (default: DIR/last-console.log)
#   -k, --append ARGS    extra kernel command line (e.g. "nvme_core.io_timeout=20")
#       --quiet          after boot, console loglevel 4 (hide kernel info lines)
# exit status: the scenario's rc; 124 timeout; 125 harness failure (guest never reported an rc).
#
# Networking is QEMU user-mode (slirp) only: guest connections to 10.0.N.2:P become host
# sockets to 127.0.0.1:P. Nothing else is reachable; nothing listens on the host's network.
# Under TCG (no usable KVM) a boot to "ready" takes ~5 s and the guest does ~2,000 4K IOPS.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
TIMEOUT=300 DIR=$CACHE/image MEM=1024 SMP=2 NICS=1 SHARE= RESULTS= LOG= APPEND= LOGLEVEL=7
MODE=script SCRIPT=
FILES=() ENVS=()
die() { echo "run-guest: $*" >&2; exit 125; }

# Fingerprint of everything the image is built from: rebuild when any of it changes.
stamp() {
    local kver
    kver=${KVER:-$(ls -1 /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -n1)}
    {
        cat "$HERE/build-initramfs.sh" "$HERE/init"
        echo "kver=$kver hostid=${HOSTID:-default}"
        dpkg-query -W -f='${Package}=${Version}\n' nvme-cli libnvme1 fio busybox-static kmod "linux-image-$kver" 2>/dev/null
    } | sha256sum | cut -d' ' -f1
}

while [ $# -gt 0 ]; do
    case "$1" in
        -t|--timeout) TIMEOUT=$2; shift 2 ;;
        -d|--dir)     DIR=$2; shift 2 ;;
        -m|--mem)     MEM=$2; shift 2 ;;
        -c|--smp)     SMP=$2; shift 2 ;;
        -n|--nics)    NICS=$2; shift 2 ;;
        -f|--file)    FILES+=("$2"); shift 2 ;;
        -e|--env)     ENVS+=("$2"); shift 2 ;;
        -s|--share)   SHARE=$2; shift 2 ;;
        -r|--results) RESULTS=$2; shift 2 ;;
        -l|--log)     LOG=$2; shift 2 ;;
        -k|--append)  APPEND=$2; shift 2 ;;
        --quiet)      LOGLEVEL=4; shift ;;
        --none)       MODE=none; shift ;;
        --shell)      MODE=shell; shift ;;
        --build-only) MODE=build; shift ;;
        --print-stamp) stamp; exit 0 ;;
        -h|--help)    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --)           shift; break ;;
        -*)           die "unknown option $1" ;;
        *)            break ;;
    esac
done
if [ "$MODE" = script ]; then
    [ $# -ge 1 ] || die "need SCRIPT (or --none / --shell); see --help"
    SCRIPT=$1; shift
    [ -f "$SCRIPT" ] || die "no such script: $SCRIPT"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"

# ---- (re)build the image when missing or built from other inputs -----------------------------
# flock: two runs sharing a cache never build the same folder at once.
mkdir -p "$DIR" || die "cannot create $DIR"
(
    flock 9
    if [ ! -f "$DIR/initramfs.cpio" ] || [ "$(cat "$DIR/stamp" 2>/dev/null)" != "$(stamp)" ]; then
        echo "run-guest: building the guest image in $DIR" >&2
        "$HERE/build-initramfs.sh" "$DIR" >&2 || exit 1
    fi
) 9>"$DIR/.lock" || die "build-initramfs.sh failed"
[ "$MODE" = build ] && exit 0
LOG=${LOG:-$DIR/last-console.log}

# ---- accelerator: KVM only with real hardware virtualisation, else TCG -----------------------
# (/dev/kvm from kvm_pvm cannot run a stock kernel: it hangs right after the decompressor.)
if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
    ACCEL=kvm; ACCEL_ARGS=(-accel kvm -cpu host)
else
    ACCEL=tcg; ACCEL_ARGS=(-accel tcg,thread=multi -cpu max)
fi

# ---- per-run scenario overlay: a second cpio appended to the image ---------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/halyard-guest.XXXXXX")
kill_qemu() {   # only the qemu this run started (pid from its -pidfile)
    local p
    p=$(cat "$TMP/qemu.pid" 2>/dev/null) || return 0
    [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = qemu-system-x86 ] && kill "$p" 2>/dev/null
    return 0
}
cleanup() { kill_qemu; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'kill_qemu; echo "run-guest: interrupted" >&2; exit 130' INT TERM

sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }   # single-quote for sh
mkdir -p "$TMP/ov/scenario"
if [ "$MODE" = script ]; then
    cp "$SCRIPT" "$TMP/ov/scenario/run.sh"
    { printf 'exec sh /scenario/run.sh'; for a in "$@"; do printf ' %s' "$(sq "$a")"; done; echo; } > "$TMP/ov/scenario/launch.sh"
fi
for f in "${FILES[@]+"${FILES[@]}"}"; do cp -a "$f" "$TMP/ov/scenario/" || die "cannot copy $f"; done
for kv in "${ENVS[@]+"${ENVS[@]}"}"; do
    case "$kv" in *=*) ;; *) die "--env wants K=V, got $kv" ;; esac
    printf 'export %s=%s\n' "${kv%%=*}" "$(sq "${kv#*=}")" >> "$TMP/ov/scenario/env.sh"
done
( cd "$TMP/ov" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) > "$TMP/overlay.cpio"
cp "$DIR/initramfs.cpio" "$TMP/initrd"
pad=$(( (4 - $(stat -c %s "$TMP/initrd") % 4) % 4 ))   # each cpio must start 4-byte aligned
head -c "$pad" /dev/zero >> "$TMP/initrd"
cat "$TMP/overlay.cpio" >> "$TMP/initrd"
KERNEL=$DIR/vmlinux; [ -f "$KERNEL" ] || KERNEL=$DIR/vmlinuz   # ELF -> PVH boot (fast)

# ---- qemu command line ----------------------------------------------------------------------
CMDLINE="console=ttyS0,115200 quiet panic=-1 oops=panic harness.nics=$NICS harness.loglevel=$LOGLEVEL"
NET_ARGS=()
for ((i = 0; i < NICS; i++)); do
    NET_ARGS+=(-netdev "user,id=n$i,net=10.0.$((2 + i)).0/24,host=10.0.$((2 + i)).2,ipv6=off"
               -device "virtio-net-pci,netdev=n$i,mac=52:54:00:12:34:$(printf '%02x' $((0x50 + i))),romfile=")
done
EXTRA=()
if [ -n "$SHARE" ]; then
    [ -d "$SHARE" ] || die "--share $SHARE is not a directory"
    EXTRA+=(-fsdev "local,id=fs0,path=$(cd "$SHARE" && pwd),security_model=none"
            -device "virtio-9p-pci,fsdev=fs0,mount_tag=host")
    CMDLINE+=" harness.share=1"
fi
if [ "$MODE" = shell ]; then
    CONSOLE=(-serial mon:stdio); CMDLINE+=" harness.shell=1"
else
    CONSOLE=(-chardev stdio,id=con,signal=off -serial chardev:con)
fi
if [ -n "$RESULTS" ]; then
    : > "$RESULTS" || die "cannot write $RESULTS"
    EXTRA+=(-chardev "file,id=res,path=$RESULTS" -serial chardev:res)
    CMDLINE+=" harness.results=1"
fi
[ -n "$APPEND" ] && CMDLINE+=" $APPEND"

QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
      -M q35 "${ACCEL_ARGS[@]}" -smp "$SMP" -m "$MEM"
      -kernel "$KERNEL" -initrd "$TMP/initrd" -append "$CMDLINE"
      "${CONSOLE[@]}" "${NET_ARGS[@]}" -device virtio-rng-pci "${EXTRA[@]+"${EXTRA[@]}"}"
      -pidfile "$TMP/qemu.pid")

T0=$EPOCHREALTIME
if [ "$MODE" = shell ]; then
    # --foreground: qemu must stay in the terminal's process group to read the tty
    timeout --foreground -k 5 "$TIMEOUT" "${QEMU[@]}"
    exit $?
fi

: > "$LOG"
(
    timeout -k 5 "$TIMEOUT" "${QEMU[@]}" < /dev/null 2>&1 | {
        while IFS= read -r line; do
            line=${line%$'\r'}
            printf '%s\n' "$line"
            printf '%s\n' "$line" >> "$LOG"
        done
        [ -n "$line" ] && { printf '%s\n' "$line"; printf '%s\n' "$line" >> "$LOG"; }
    }
    exit "${PIPESTATUS[0]}"
) &
wait $!; qrc=$?
T1=$EPOCHREALTIME

rc=$(sed -n 's/.*HARNESS\[[0-9.]*\]: scenario exit rc=\([0-9]*\).*/\1/p' "$LOG" | tail -n1)
ready=$(sed -n 's/.*HARNESS\[\([0-9.]*\)\]: ready.*/\1/p' "$LOG" | head -n1)
wall=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}')
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    final=124; why="TIMEOUT after ${TIMEOUT}s"
elif [ "$MODE" = none ] && grep -q 'HARNESS\[.*\]: poweroff' "$LOG"; then
    final=0; why="booted and powered off"
elif [ -n "$rc" ]; then
    final=$rc; why="scenario rc=$rc"
else
    final=125; why="guest ended without reporting a scenario rc (qemu rc=$qrc)"
fi
echo "run-guest: $why; accel=$ACCEL wall=${wall}s guest-uptime-at-ready=${ready:-?}s log=$LOG" >&2
exit "$final"
