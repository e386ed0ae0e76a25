#!/usr/bin/env bash
# Build the interop guest image: a tiny initramfs that boots the host's Debian kernel under QEMU
# and gives a scenario script the real Linux NVMe/TCP initiator (nvme-core with native
# multipath, nvme-fabrics, nvme-tcp), nvme-cli and fio.
#
# usage: build-initramfs.sh [OUTDIR]
#   OUTDIR defaults to $HALYARD_INTEROP_CACHE/image (HALYARD_INTEROP_CACHE defaults to
#   ${TMPDIR:-/tmp}/halyard-interop).
#   env: KVER=<kernel release>   (default: newest /lib/modules/*-amd64)
#        HOSTID=<uuid>           the guest's fixed NVMe host identity (default below)
#
# Produces in OUTDIR:
#   initramfs.cpio   busybox, kmod, nvme-cli, fio (+ their shared libraries), the modules, /init
#   vmlinux          uncompressed ELF kernel (PVH direct boot: ~4 s faster under TCG), if extractable
#   vmlinuz          the kernel as installed (fallback)
#   hostnqn, hostid  the guest's NVMe host identity (run.sh passes hostnqn to --allow-host)
#   versions.txt     kernel / nvme-cli / fio / qemu versions it was built from
#   stamp            inputs fingerprint; run-guest.sh rebuilds when it no longer matches
#
# Scenarios are NOT baked in: run-guest.sh appends a second small cpio holding /scenario/ at
# every boot (the kernel unpacks concatenated cpio archives in order).
#
# Needs (Debian 12): qemu-system-x86 linux-image-amd64 nvme-cli busybox-static cpio kmod fio python3
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
OUT=${1:-$CACHE/image}

if [ -z "${KVER:-}" ]; then
    KVER=$(ls -1 /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -n1 || true)
fi
[ -n "$KVER" ] && [ -d "/lib/modules/$KVER" ] || { echo "build-initramfs: no kernel modules in /lib/modules (apt-get install linux-image-amd64)" >&2; exit 1; }
[ -f "/boot/vmlinuz-$KVER" ] || { echo "build-initramfs: /boot/vmlinuz-$KVER missing" >&2; exit 1; }
for b in /bin/busybox /usr/sbin/nvme /usr/bin/kmod /usr/sbin/depmod /usr/bin/fio cpio python3; do
    command -v "$b" >/dev/null || { echo "build-initramfs: missing $b (apt-get install busybox-static nvme-cli kmod fio cpio)" >&2; exit 1; }
done
case "$(ldd /bin/busybox 2>&1 || true)" in *"not a dynamic"*) ;; *)  echo "build-initramfs: /bin/busybox is not static (apt-get install busybox-static)" >&2; exit 1 ;; esac

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
R="$OUT/root"
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/nvme,proc,sys,dev,tmp,run,mnt,host,scenario,lib/modules/"$KVER"}
ln -s lib "$R/lib64"

# ---- busybox (static): the shell and all the small tools ----------------------------------
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do
    case "$a" in busybox|modprobe|insmod|rmmod|lsmod|modinfo|depmod) continue ;; esac
    [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done

# ---- dynamic binaries plus the shared libraries ldd reports -------------------------------
copy_with_libs() {   # $1 = source binary, $2 = destination path inside $R
    install -D -m 0755 "$1" "$R$2"
    ldd "$1" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
        [ -n "$lib" ] && [ -e "$lib" ] || continue
        install -D -m 0755 "$(readlink -f "$lib")" "$R/lib/x86_64-linux-gnu/$(basename "$lib")"
    done
}
copy_with_libs /usr/sbin/nvme /usr/sbin/nvme
copy_with_libs /usr/bin/kmod  /usr/bin/kmod
copy_with_libs /usr/bin/fio   /usr/bin/fio     # ~80 MB of libraries, still boots in ~5 s
# the dynamic loader must be at its absolute path
install -D -m 0755 "$(readlink -f /lib64/ld-linux-x86-64.so.2)" "$R/lib/ld-linux-x86-64.so.2"
for a in modprobe insmod rmmod lsmod modinfo depmod; do ln -sf ../usr/bin/kmod "$R/sbin/$a"; done
ln -sf ../sbin/modprobe "$R/bin/modprobe"

# ---- kernel modules -------------------------------------------------------------------------
# nvme-tcp and its dependencies, crc32c for digests (requested by name at connect time),
# virtio-net for the NICs, 9p for the host share used to coordinate with run.sh.
MODS="nvme-tcp nvme-fabrics nvme-core crc32c_generic crc32c-intel libcrc32c
      virtio_pci virtio_net virtio_rng 9p 9pnet_virtio configfs"
for m in $MODS; do
    /usr/sbin/modprobe -S "$KVER" --show-depends "$m" | awk '$1=="insmod" {print $2}'
done | sort -u | while read -r f; do
    install -D -m 0644 "$f" "$R/lib/modules/$KVER/${f#/lib/modules/$KVER/}"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "/lib/modules/$KVER/$f" ] && cp "/lib/modules/$KVER/$f" "$R/lib/modules/$KVER/"
done
/usr/sbin/depmod -b "$R" "$KVER"

# ---- fixed NVMe host identity (every path and every run uses the same host NQN/ID) ----------
HOSTID=${HOSTID:-8f2c7a64-3b1e-4d5a-9c6f-0e1d2c3b4a59}
echo "$HOSTID" > "$R/etc/nvme/hostid"
echo "nqn.2014-08.org.nvmexpress:uuid:$HOSTID" > "$R/etc/nvme/hostnqn"
cp "$R/etc/nvme/hostid" "$OUT/hostid"
cp "$R/etc/nvme/hostnqn" "$OUT/hostnqn"

echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"
echo "127.0.0.1 localhost" > "$R/etc/hosts"
: > "$R/etc/resolv.conf"
install -m 0755 "$HERE/init" "$R/init"

# ---- pack (uncompressed: under TCG, decompressing in the guest costs more than copying) -----
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) > "$OUT/initramfs.cpio.tmp"
mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# Uncompressed ELF vmlinux for PVH direct boot (QEMU -kernel ELF with CONFIG_PVH=y): skips the
# BIOS boot path and the in-guest XZ decompressor.
rm -f "$OUT/vmlinux"
python3 - "/boot/vmlinuz-$KVER" "$OUT/vmlinux.tmp" <<'PY' && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux" || { rm -f "$OUT/vmlinux.tmp"; echo "build-initramfs: note: no vmlinux extracted, booting the bzImage (slower)" >&2; }
import sys, lzma, zlib
src, dst = sys.argv[1], sys.argv[2]
d = open(src, 'rb').read()
def xz(off): return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[off:])
def gz(off): return zlib.decompressobj(31).decompress(d[off:])
for magic, fn in ((b'\xfd7zXZ\x00', xz), (b'\x1f\x8b\x08', gz)):
    off = d.find(magic)
    while off >= 0:
        try:
            out = fn(off)
            if out[:4] == b'\x7fELF':
                open(dst, 'wb').write(out); sys.exit(0)
        except Exception:
            pass
        off = d.find(magic, off + 1)
sys.exit(1)
PY

ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
{
    echo "kernel=$KVER ($(ver "linux-image-$KVER"))"
    echo "nvme-cli=$(ver nvme-cli) libnvme1=$(ver libnvme1)"
    echo "fio=$(ver fio) busybox-static=$(ver busybox-static) kmod=$(ver kmod)"
    echo "qemu-system-x86=$(ver qemu-system-x86)"
    echo "hostnqn=$(cat "$OUT/hostnqn")"
} > "$OUT/versions.txt"
"$HERE/run-guest.sh" --print-stamp > "$OUT/stamp"
echo "built $OUT/initramfs.cpio ($(du -h "$OUT/initramfs.cpio" | cut -f1)), kernel $KVER$([ -f "$OUT/vmlinux" ] && echo " (PVH vmlinux)")"
