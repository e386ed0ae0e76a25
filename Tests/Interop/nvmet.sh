#!/usr/bin/env bash
# Halyard interop, the other direction: Halyard's userspace initiator (`halyard nvme ...`,
# library NVMeHost) against an INDEPENDENT target, the Linux kernel's own nvmet/nvmet-tcp,
# running in the QEMU guest (guest/nvmet-serve.sh) and reached from this machine through a QEMU
# hostfwd 127.0.0.1:HOSTPORT -> guest :4420. Nothing listens beyond the host's loopback.
#
# usage: Tests/Interop/nvmet.sh [HALYARD_BINARY]
#   HALYARD_BINARY   default $HALYARD_BIN, else .build/debug/halyard (relative to the current dir)
# env:
#   HALYARD_INTEROP_CACHE   guest image (shared with run.sh; default ${TMPDIR:-/tmp}/halyard-interop)
#   NVMET_LOGS              where the logs of this run go (default $HALYARD_INTEROP_CACHE/last-nvmet;
#                           run.sh passes its own last-run/nvmet)
#   INTEROP_VERBOSE=1       print the guest console as well
#
# Output: "PASS name" / "FAIL name (reason)" per check, "  | " excerpts (halyard's stderr, the
# guest's nvmet/nvme kernel messages) after a failure, then one line "nvmet: N passed, N failed".
# Exit status 0 only when nothing failed. run.sh runs this script and folds the checks into its
# own "interop: ..." line. Takes ≈1–1.5 minutes under TCG (one guest boot + the checks).
#
# Checks, all on the host against 127.0.0.1:HOSTPORT (nvmet serves discovery on every port):
#   nvmet-discover        `discover --json` lists the subsystem NQN
#   nvmet-identify        `identify --json`: controller subnqn = NQN, cntlid != 0
#   nvmet-connect         `connect --json`: namespace 1 of 64 MiB
#   nvmet-write-read      `write --pattern 0xa5` LBA 100..107, read back; random data from a file
#                         at LBA 100..107, `read` LBA 99..108: neighbours still zero, data identical
#   nvmet-perf-randwrite, nvmet-perf-randread
#                         `perf -q 16 -o 4096 -t 3 --json`: iops > 0, errors = 0
#   nvmet-digests         `identify --hdr-digest --data-digest` (subnqn = NQN), plus an 8-block
#                         write + read back with both digests, through a PDU-parsing relay that
#                         checks the negotiation (ICReq/ICResp digest=3) and HDGSTF/DDGSTF flags
#   nvmet-verify          `verify --size 8MiB --duration 5` exits 0
#
# The list run.sh expects (keep in sync with the checks above):
# CHECKS: nvmet-discover nvmet-identify nvmet-connect nvmet-write-read nvmet-perf-randwrite nvmet-perf-randread nvmet-digests nvmet-verify
#
# Two things this script supplies when the checkout's run-guest.sh / image lack them:
#   - a hostfwd: run-guest.sh `-p HP:GP` when it has that option; else a `qemu-system-x86_64`
#     wrapper first in PATH (for the one run-guest.sh it starts) that appends
#     ",hostfwd=tcp:127.0.0.1:HP-:4420" to NIC 0's `-netdev user,...` and execs the real qemu;
#   - the nvmet modules: when the image has no nvmet-tcp.ko, the missing modules of
#     `modprobe --show-depends nvmet-tcp` are copied from this machine's /lib/modules/<the image's
#     kernel> into the guest's /scenario/nvmet-mods/ (run-guest.sh -f) and insmod-ed there.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HALYARD_INTEROP_CACHE:-${TMPDIR:-/tmp}/halyard-interop}
IMAGE=$CACHE/image
BIN_ARG=${1:-${HALYARD_BIN:-.build/debug/halyard}}
LOGDIR=${NVMET_LOGS:-$CACHE/last-nvmet}
VERBOSE=${INTEROP_VERBOSE:-0}
NQN=nqn.2026-11.io.halyard:nvmet-interop
NS_MB=64
NS_SIZE=$((NS_MB << 20))
GUEST_TIMEOUT=240      # run-guest.sh wall clock limit
SERVE_SECS=200         # the guest serves at most this long (the host normally says done earlier)
READY_TIMEOUT=120      # boot + module load + configfs

SUITE=nvmet
# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"   # pass, fail, note, excerpt, NPASS/NFAIL/REPORTED/CHECKS

# ---- cleanup: the guest (run-guest.sh kills the qemu it started) and temp files ---------------
WORK= GPID= HYPID= RLPID= SHARE= SUMMARY_DONE=0 NOTRUN="not run" INTERRUPTED=0
cleanup() {
    local rc=$? c i
    [ -n "$HYPID" ] && kill "$HYPID" 2>/dev/null   # a running `timeout halyard ...`
    [ -n "$RLPID" ] && kill "$RLPID" 2>/dev/null   # pdu-relay.py
    if [ -n "$GPID" ]; then
        [ -n "$SHARE" ] && [ -d "$SHARE" ] && : > "$SHARE/done"
        # let the guest print nvmet's messages and power off, unless interrupted
        for ((i = 0; i < 150 && INTERRUPTED == 0; i++)); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.2; done
        kill "$GPID" 2>/dev/null
        wait "$GPID" 2>/dev/null
        GPID=
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$SUMMARY_DONE" = 0 ]; then
        for c in $CHECKS; do [ -n "${REPORTED[$c]:-}" ] || fail "$c" "$NOTRUN (rc=$rc)"; done
        echo "nvmet: $NPASS passed, $NFAIL failed"
    fi
}
trap cleanup EXIT
trap 'NOTRUN="interrupted" INTERRUPTED=1; exit 130' INT TERM

fail_all() {   # fail_all REASON: every check not yet reported fails with REASON, then finish
    NOTRUN="not run: $1"
    finish
}

# ---- prerequisites, logs, the binary under test ------------------------------------------------
for c in qemu-system-x86_64 python3 timeout cmp cpio; do
    command -v "$c" >/dev/null || fail_all "missing $c (see Tests/Interop/README.md)"
done
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR" || fail_all "cannot create $LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halyard-nvmet.XXXXXX")
SHARE=$WORK/share; mkdir -p "$SHARE"

[ -x "$BIN_ARG" ] || fail_all "halyard binary $BIN_ARG does not exist or is not executable"
if [ "$(head -c 4 "$BIN_ARG" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    BIN=$WORK/halyard; cp "$BIN_ARG" "$BIN"          # a rebuild cannot swap it mid-run
else
    BIN=$(cd "$(dirname "$BIN_ARG")" && pwd)/$(basename "$BIN_ARG")
fi
if ! timeout 30 "$BIN" nvme --help > "$LOGDIR/nvme-help.txt" 2>&1; then
    fail_all "'halyard nvme --help' failed: $(tail -n 2 "$LOGDIR/nvme-help.txt" | tr '\n' ' ')"
fi

# ---- guest image; nvmet modules if the image has none -------------------------------------------
"$HERE/run-guest.sh" -d "$IMAGE" --build-only > "$LOGDIR/build-image.log" 2>&1 \
    || fail_all "building the guest image failed: $(tail -n 3 "$LOGDIR/build-image.log" | tr '\n' ' ')"
KVER=$(sed -n 's/^kernel=\([^ ]*\).*/\1/p' "$IMAGE/versions.txt" 2>/dev/null)
[ -n "$KVER" ] || KVER=$(ls -1 /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -n1)
MOD_ARGS=()
cpio -it < "$IMAGE/initramfs.cpio" 2>/dev/null | grep -- '\.ko$' > "$WORK/image-modules.txt"
if ! grep -q '/nvmet-tcp\.ko$' "$WORK/image-modules.txt"; then
    MODDIR=$WORK/nvmet-mods; mkdir -p "$MODDIR"
    : > "$MODDIR/order"; : > "$MODDIR/modprobe"
    deps=$(/usr/sbin/modprobe -S "$KVER" --show-depends nvmet-tcp 2>"$LOGDIR/modprobe.err" | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++')
    [ -n "$deps" ] || fail_all "no nvmet-tcp module for kernel $KVER on this machine: $(tr '\n' ' ' < "$LOGDIR/modprobe.err")"
    for f in $deps; do
        b=${f##*/}
        if grep -q "/$b\$" "$WORK/image-modules.txt"; then
            echo "${b%.ko}" >> "$MODDIR/modprobe"            # in the image: modprobe it by name
        else
            cp "$f" "$MODDIR/$b" && echo "$b" >> "$MODDIR/order"
        fi
    done
    MOD_ARGS=(-f "$MODDIR")
    note "image has no nvmet: shipping $(tr '\n' ' ' < "$MODDIR/order")(kernel $KVER) to the guest"
fi

# ---- host port and hostfwd ------------------------------------------------------------------------
HP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FWD_ARGS=() GUEST_PATH=$PATH
if "$HERE/run-guest.sh" --help 2>/dev/null | grep -q -- '--hostfwd'; then
    FWD_ARGS=(-p "$HP:4420")
else
    REAL_QEMU=$(command -v qemu-system-x86_64)
    mkdir -p "$WORK/qemu-shim"
    cat > "$WORK/qemu-shim/qemu-system-x86_64" <<EOF
#!/usr/bin/env bash
# written by Tests/Interop/nvmet.sh: NIC 0 (user netdev id=n0) gets hostfwd 127.0.0.1:$HP -> guest :4420
a=()
for x in "\$@"; do
    case "\$x" in user,id=n0,*) x="\$x,hostfwd=tcp:127.0.0.1:$HP-:4420" ;; esac
    a+=("\$x")
done
exec "$REAL_QEMU" "\${a[@]}"
EOF
    chmod +x "$WORK/qemu-shim/qemu-system-x86_64"
    GUEST_PATH=$WORK/qemu-shim:$PATH
fi

# ---- boot the guest target --------------------------------------------------------------------------
RES=$LOGDIR/results.txt CONSOLE=$LOGDIR/guest-console.log
: > "$CONSOLE"
PATH=$GUEST_PATH "$HERE/run-guest.sh" -d "$IMAGE" -t "$GUEST_TIMEOUT" -s "$SHARE" -r "$RES" -l "$CONSOLE" \
    "${FWD_ARGS[@]+"${FWD_ARGS[@]}"}" "${MOD_ARGS[@]+"${MOD_ARGS[@]}"}" \
    -e NQN="$NQN" -e SERVE_SECS="$SERVE_SECS" -e NS_SIZE_MB="$NS_MB" \
    "$HERE/guest/nvmet-serve.sh" > "$LOGDIR/guest.out" 2>&1 &
GPID=$!
T0=$SECONDS
state=
while [ $((SECONDS - T0)) -lt "$READY_TIMEOUT" ]; do
    if grep -q '^READY' "$RES" 2>/dev/null; then state=ready; break; fi
    if grep -q '^NOTREADY' "$RES" 2>/dev/null; then state="guest: $(grep -m1 '^NOTREADY' "$RES" | tr -d '\r')"; break; fi
    kill -0 "$GPID" 2>/dev/null || { state="guest ended: $(tail -n 1 "$LOGDIR/guest.out" | sed 's/ log=.*//')"; break; }
    sleep 0.3
done
if [ "$state" != ready ]; then
    why=${state:-"no READY from the guest in ${READY_TIMEOUT}s"}
    excerpt "$CONSOLE" 20 "guest console"
    fail_all "nvmet target not ready: $why"
fi
note "nvmet ready in the guest after $((SECONDS - T0))s; host 127.0.0.1:$HP -> guest :4420, subsystem $NQN"

# ---- running halyard -------------------------------------------------------------------------------
HY_RC=0 HY_NAME= HY_CMD= MARK=0
A=(-a 127.0.0.1 -s "$HP")
hy() {   # hy NAME TIMEOUT ARGS...: `halyard nvme ARGS`, stdout -> NAME.out, stderr -> NAME.err; HY_RC
    local to=$2
    HY_NAME=$1 HY_CMD=$3; shift 2
    printf '### %s halyard nvme %s\n' "$(date +%T)" "$*" >> "$LOGDIR/commands.log"
    # in the background + wait, so that SIGINT/SIGTERM are handled at once (cleanup kills HYPID)
    timeout -k 5 "$to" "$BIN" nvme "$@" > "$LOGDIR/$HY_NAME.out" 2> "$LOGDIR/$HY_NAME.err" < /dev/null &
    HYPID=$!
    wait "$HYPID"; HY_RC=$?
    HYPID=
    printf '    rc=%s\n' "$HY_RC" >> "$LOGDIR/commands.log"
    return "$HY_RC"
}
hy_why() {   # why the last hy failed, on one line
    local last
    last=$(grep -v '^[[:space:]]*$' "$LOGDIR/$HY_NAME.err" 2>/dev/null | tail -n 1 | cut -c1-250)
    [ -n "$last" ] || last=$(tail -n 1 "$LOGDIR/$HY_NAME.out" 2>/dev/null | cut -c1-250)
    case "$HY_RC" in
        124|137) echo "'halyard nvme $HY_CMD' timed out${last:+: $last}" ;;
        *)       echo "'halyard nvme $HY_CMD' rc=$HY_RC${last:+: $last}" ;;
    esac
}
mark() { MARK=$(wc -l < "$CONSOLE"); }
evidence() {   # after a FAIL: halyard's stderr and the guest kernel's nvmet/nvme lines since mark
    local f
    for f in "$@"; do excerpt "$LOGDIR/$f.err" 8 "halyard nvme $f stderr"; done
    local k
    k=$(tail -n +"$((MARK + 1))" "$CONSOLE" | tr -d '\r' | grep -E '^\[ *[0-9.]+\] nvme' | tail -n 12)
    if [ -n "$k" ]; then note "--- guest kernel (nvmet) during the check"; sed 's/^/  | /' <<< "$k"
    else note "--- guest kernel: no nvmet/nvme messages during the check"; fi
}
jcheck() {   # jcheck MODE FILE [ARG]: judge halyard's JSON; prints "OK detail" or a reason (rc 1)
    python3 - "$@" <<'PY'
import json, sys
mode, path = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else None
text = open(path, errors="replace").read()
try:
    j = json.loads(text)
except ValueError:
    j = None
    for line in reversed(text.splitlines()):          # tolerate text before the JSON object
        if line.startswith("{"):
            try:
                j = json.loads(line); break
            except ValueError:
                pass
    if j is None:
        i = text.find("{")
        try:
            j = json.loads(text[i:]) if i >= 0 else None
        except ValueError:
            j = None
if not isinstance(j, dict):
    print("no JSON object on stdout: " + " ".join(text.split())[:200]); sys.exit(1)
def bad(msg): print(msg); sys.exit(1)
if mode == "discover":
    recs = j.get("records") or []
    hits = [r for r in recs if r.get("subnqn") == arg]
    if not hits:
        bad(f"{arg} not in the discovery log ({len(recs)} records: {[r.get('subnqn') for r in recs]})")
    r = hits[0]
    print(f"OK {len(recs)} record(s); {arg} at {r.get('trtype')} {r.get('traddr')}:{r.get('trsvcid')} portid {r.get('portid')}")
elif mode == "identify":
    c = j.get("controller") or j           # {"controller": {...}, "namespaces": [...]} or flat
    if c.get("subnqn") != arg: bad(f"subnqn {c.get('subnqn')!r} != {arg}")
    if not c.get("cntlid"): bad(f"cntlid {c.get('cntlid')!r} (want non-zero)")
    ns = j.get("namespaces") or c.get("namespaces") or []
    nsd = ""
    if ns:
        info = ns[0].get("info") or ns[0]
        nsd = f"; ns {info.get('nsid')}: {info.get('blocks')} x {info.get('block_size')} B"
    print(f"OK cntlid {c.get('cntlid')}, mn {c.get('mn')!r}, ver {c.get('ver')}, mdts {c.get('mdts')}, ioccsz {c.get('ioccsz')}{nsd}")
elif mode == "connect":
    want = int(arg)
    nss = j.get("namespaces") or []
    for n in nss:
        info = n.get("namespace") or n.get("info") or n
        if info.get("nsid") == 1:
            size = info.get("size_bytes")
            if size is None and info.get("blocks") and info.get("block_size"):
                size = info["blocks"] * info["block_size"]
            if size != want: bad(f"namespace 1 is {size} bytes, want {want}")
            ctrls = j.get("controllers") or []
            cd = ", ".join(f"cntlid {c.get('cntlid')} {c.get('ioQueues', c.get('io_queues'))} I/O queues" for c in ctrls)
            print(f"OK namespace 1: {size} bytes = {info.get('blocks')} x {info.get('block_size')} B; {cd}; BS={info.get('block_size')}")
            sys.exit(0)
    bad(f"no namespace 1 in {[(n.get('namespace') or n).get('nsid') for n in nss]}; errors: {[c.get('error') for c in j.get('controllers') or [] if c.get('error')]}")
elif mode == "perf":
    iops, errs = j.get("iops"), j.get("errors")
    if not isinstance(iops, (int, float)) or iops <= 0: bad(f"iops {iops!r} (want > 0); errors {errs}; first_error {j.get('first_error')}")
    if errs != 0: bad(f"errors {errs!r} (want 0); first_error {j.get('first_error')}; iops {iops:.0f}")
    print(f"OK {iops:.0f} IOPS, {j.get('mib_per_s', 0):.1f} MiB/s, {j.get('ios')} I/Os, lat mean {j.get('lat_mean_us', 0):.0f} us p99 {j.get('lat_p99_us', 0):.0f} us, queues {j.get('io_queues')}")
else:
    bad("unknown mode " + mode)
PY
}
check_json() {   # check_json CHECK MODE ARG: judge $HY_NAME.out; PASS with detail or FAIL with reason
    local r
    if r=$(jcheck "$2" "$LOGDIR/$HY_NAME.out" "$3"); then pass "$1" "${r#OK }"; return 0; fi
    fail "$1" "$r"; evidence "$HY_NAME"; return 1
}

# ---- the checks ------------------------------------------------------------------------------------
mark
if hy discover 60 discover "${A[@]}" --json; then check_json nvmet-discover discover "$NQN"
else fail nvmet-discover "$(hy_why)"; evidence discover; fi

mark
if hy identify 60 identify "${A[@]}" -n "$NQN" --json; then check_json nvmet-identify identify "$NQN"
else fail nvmet-identify "$(hy_why)"; evidence identify; fi

BS=
mark
if hy connect 60 connect "${A[@]}" -n "$NQN" --json; then
    if r=$(jcheck connect "$LOGDIR/connect.out" "$NS_SIZE"); then
        BS=$(sed -n 's/.*; BS=\([0-9]*\)$/\1/p' <<< "$r")
        pass nvmet-connect "$(sed 's/; BS=[0-9]*$//' <<< "${r#OK }")"
    else
        fail nvmet-connect "$r"; evidence connect
    fi
else fail nvmet-connect "$(hy_why)"; evidence connect; fi
if [ -z "$BS" ]; then   # fall back on identify's namespace block size, else 4096
    BS=$(python3 -c 'import json,sys; n = json.load(open(sys.argv[1]))["namespaces"][0]; print((n.get("info") or n)["block_size"])' "$LOGDIR/identify.out" 2>/dev/null)
    BS=${BS:-4096}
fi

# nvmet-write-read: one-byte pattern at LBA 100..107, then random data; read 99..108 (neighbours 0)
mark
N8=$((8 * BS))
head -c "$N8" /dev/zero | tr '\0' '\245' > "$WORK/a5.bin"
head -c "$N8" /dev/urandom > "$WORK/rnd.bin"
{ head -c "$BS" /dev/zero; cat "$WORK/rnd.bin"; head -c "$BS" /dev/zero; } > "$WORK/rnd-window.bin"
why=
if ! hy write-pattern 60 write "${A[@]}" -n "$NQN" --lba 100 --blocks 8 --pattern 0xa5; then why="pattern write: $(hy_why)"
elif ! hy read-pattern 60 read "${A[@]}" -n "$NQN" --lba 100 --blocks 8 --output "$WORK/a5.back"; then why="pattern read: $(hy_why)"
elif ! cmp -s "$WORK/a5.bin" "$WORK/a5.back"; then
    why="pattern read back differs: $(cmp "$WORK/a5.bin" "$WORK/a5.back" 2>&1 | head -n 1) ($(stat -c %s "$WORK/a5.back" 2>/dev/null) bytes read, want $N8)"
elif ! hy write-random 60 write "${A[@]}" -n "$NQN" --lba 100 --blocks 8 --input "$WORK/rnd.bin"; then why="random write: $(hy_why)"
elif ! hy read-random 60 read "${A[@]}" -n "$NQN" --lba 99 --blocks 10 --output "$WORK/rnd.back"; then why="read 99..108: $(hy_why)"
elif ! cmp -s "$WORK/rnd-window.bin" "$WORK/rnd.back"; then
    why="LBA 99..108 read back differs from zero+random+zero: $(cmp "$WORK/rnd-window.bin" "$WORK/rnd.back" 2>&1 | head -n 1) ($(stat -c %s "$WORK/rnd.back" 2>/dev/null) bytes, want $((10 * BS)))"
    cp "$WORK/rnd-window.bin" "$LOGDIR/write-read.expected"; cp "$WORK/rnd.back" "$LOGDIR/write-read.got"
fi
if [ -z "$why" ]; then pass nvmet-write-read "0xa5 and $N8 random bytes at LBA 100..107 (block $BS) read back identical; LBA 99 and 108 still zero"
else fail nvmet-write-read "$why"; evidence write-pattern read-pattern write-random read-random; fi

for w in randwrite randread; do
    mark
    if hy "perf-$w" 60 perf "${A[@]}" -n "$NQN" -q 16 -o 4096 -w "$w" -t 3 --json; then check_json "nvmet-perf-$w" perf ""
    else fail "nvmet-perf-$w" "$(hy_why)"; evidence "perf-$w"; fi
done

# nvmet-digests: identify with both digests; then 8 random blocks written (R2T + H2CData) and
# read back (C2HData) with both digests at LBA 200. Neither nvmet nor halyard logs what was
# negotiated, so these go through pdu-relay.py (a relay on 127.0.0.1 that parses the NVMe/TCP
# PDU stream): ICReq and ICResp must both say digest=3 (HDGST|DDGST), every later PDU must carry
# HDGSTF, every PDU with data DDGSTF.
mark
D=(--hdr-digest --data-digest)
head -c "$N8" /dev/urandom > "$WORK/dig.bin"
why= detail= relay=
cat > "$WORK/pdu-relay.py" <<'PY'
import json, signal, socket, struct, sys, threading
up, portfile, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
st = {"connections": 0, "icreq_digest": [], "icresp_digest": [], "pdus": 0, "no_hdgst": [],
      "data_pdus": {}, "no_ddgst": [], "term": []}
lock = threading.Lock()
NAMES = {2: "H2CTermReq", 3: "C2HTermReq", 4: "CapsuleCmd", 5: "CapsuleResp", 6: "H2CData", 7: "C2HData", 9: "R2T"}
def dump():
    with lock:
        open(out + ".tmp", "w").write(json.dumps(st))
    import os; os.replace(out + ".tmp", out)
def record(t, flags, hlen, pdo, plen, pdu):
    with lock:
        if t in (0, 1):
            st["icreq_digest" if t == 0 else "icresp_digest"].append(pdu[11]); return
        st["pdus"] += 1
        name = NAMES.get(t, "type%d" % t)
        if t in (2, 3): st["term"].append(name)
        if not flags & 1: st["no_hdgst"].append(name)
        if pdo and plen > pdo:                      # the PDU carries data
            st["data_pdus"][name] = st["data_pdus"].get(name, 0) + 1
            if not flags & 2: st["no_ddgst"].append(name)
def pump(src, dst):
    buf = b""
    try:
        while True:
            d = src.recv(262144)
            if not d: break
            dst.sendall(d); buf += d
            while len(buf) >= 8:
                t, flags, hlen, pdo, plen = struct.unpack_from("<BBBBI", buf)
                if plen < 8 or len(buf) < plen: break
                record(t, flags, hlen, pdo, plen, buf[:plen]); buf = buf[plen:]
    except OSError:
        pass
    for s in (dst, src):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def serve(c):
    try: u = socket.create_connection(("127.0.0.1", up), 10)
    except OSError: c.close(); return
    with lock: st["connections"] += 1
    a = threading.Thread(target=pump, args=(c, u)); a.start()
    pump(u, c); a.join(); c.close(); u.close(); dump()
signal.signal(signal.SIGTERM, lambda *_: (dump(), sys.exit(0)))
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(16)
open(portfile, "w").write(str(ls.getsockname()[1]))
dump()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$WORK/pdu-relay.py" "$HP" "$WORK/relay.port" "$LOGDIR/digests-pdus.json" 2> "$LOGDIR/pdu-relay.err" &
RLPID=$!
for ((i = 0; i < 50; i++)); do [ -s "$WORK/relay.port" ] && break; sleep 0.1; done
RP=$(cat "$WORK/relay.port" 2>/dev/null)
AD=(-a 127.0.0.1 -s "$RP")
if [ -z "$RP" ]; then why="pdu-relay.py did not start: $(tail -n 1 "$LOGDIR/pdu-relay.err")"
elif ! hy identify-digests 60 identify "${AD[@]}" -n "$NQN" "${D[@]}" --json; then why="identify: $(hy_why)"
elif ! detail=$(jcheck identify "$LOGDIR/identify-digests.out" "$NQN"); then why="identify: $detail"
elif ! hy write-digests 60 write "${AD[@]}" -n "$NQN" "${D[@]}" --lba 200 --blocks 8 --input "$WORK/dig.bin"; then why="write: $(hy_why)"
elif ! hy read-digests 60 read "${AD[@]}" -n "$NQN" "${D[@]}" --lba 200 --blocks 8 --output "$WORK/dig.back"; then why="read: $(hy_why)"
elif ! cmp -s "$WORK/dig.bin" "$WORK/dig.back"; then why="read back differs: $(cmp "$WORK/dig.bin" "$WORK/dig.back" 2>&1 | head -n 1)"
fi
kill "$RLPID" 2>/dev/null; wait "$RLPID" 2>/dev/null; RLPID=
if [ -z "$why" ]; then
    relay=$(python3 - "$LOGDIR/digests-pdus.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = []
if not s["icreq_digest"] or any(d != 3 for d in s["icreq_digest"]): bad.append(f"ICReq digest bits {s['icreq_digest']} (want 3 = HDGST|DDGST on every connection)")
if not s["icresp_digest"] or any(d != 3 for d in s["icresp_digest"]): bad.append(f"ICResp digest bits {s['icresp_digest']} (want 3)")
if s["no_hdgst"]: bad.append(f"{len(s['no_hdgst'])} PDUs without HDGSTF: {sorted(set(s['no_hdgst']))}")
if s["no_ddgst"]: bad.append(f"{len(s['no_ddgst'])} data PDUs without DDGSTF: {sorted(set(s['no_ddgst']))}")
if not {"H2CData", "C2HData"} <= set(s["data_pdus"]): bad.append(f"expected H2CData and C2HData PDUs, saw {s['data_pdus']}")
if s["term"]: bad.append(f"termination PDUs: {s['term']}")
if bad: print("; ".join(bad)); sys.exit(1)
print(f"{s['connections']} connections negotiated digest=3; {s['pdus']} PDUs all with HDGSTF; data PDUs {s['data_pdus']} all with DDGSTF")
PY
) || why="seen on the wire: $relay"
fi
if [ -z "$why" ]; then pass nvmet-digests "identify subnqn/cntlid ok and 8 blocks written + read back identical; $relay"
else fail nvmet-digests "$why"; evidence identify-digests write-digests read-digests; fi

mark
# (`halyard nvme verify --help` exits 0 even without the subcommand: look at the list instead)
if ! grep -qE '^[[:space:]]+verify([[:space:]]|$)' "$LOGDIR/nvme-help.txt"; then
    fail nvmet-verify "halyard nvme verify not available"
elif hy verify 90 verify "${A[@]}" -n "$NQN" --size 8MiB --duration 5; then
    pass nvmet-verify "$(grep -v '^[[:space:]]*$' "$LOGDIR/verify.out" | tail -n 1 | cut -c1-200)"
else
    fail nvmet-verify "$(hy_why)"; evidence verify
    excerpt "$LOGDIR/verify.out" 8 "halyard nvme verify stdout"
fi

# ---- done: the guest prints nvmet's messages and powers off ---------------------------------------
: > "$SHARE/done"
for ((i = 0; i < 150; i++)); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.2; done
wait "$GPID" 2>/dev/null; grc=$?; GPID=
[ -f "$SHARE/guest-dmesg.txt" ] && cp "$SHARE/guest-dmesg.txt" "$LOGDIR/"
[ "$VERBOSE" = 1 ] && sed 's/^/  | /' "$CONSOLE"
note "guest: $(tail -n 1 "$LOGDIR/guest.out" | sed 's/ log=.*//; s/^run-guest: //') (rc=$grc)"
finish
