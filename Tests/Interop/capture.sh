#!/usr/bin/env bash
# Re-capture the Linux initiator byte vectors of Tests/NVMeTests/Vectors/ (see its README.md):
# the ICReq and the admin Connect CapsuleCmd, without and with header+data digests, exactly as
# the guest kernel sends them to capture-vectors.py on a free port of 127.0.0.1.
#
# usage: Tests/Interop/capture.sh OUTDIR        (≈30 s; compare with: sha256sum OUTDIR/*.bin)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: capture.sh OUTDIR}
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/halyard-capture.XXXXXX")
LPID=
cleanup() { [ -n "$LPID" ] && kill "$LPID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

capture() {   # capture SUFFIX [nvme connect options]
    local suffix=$1; shift
    rm -f "$TMP/port"
    python3 "$HERE/capture-vectors.py" --outdir "$OUT" --prefix linux-6.1- --suffix="$suffix" \
        --port-file "$TMP/port" --timeout 120 > "$TMP/listener$suffix.log" 2>&1 &
    LPID=$!
    for _ in $(seq 1 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
    [ -s "$TMP/port" ] || { cat "$TMP/listener$suffix.log"; echo "capture-vectors.py did not start" >&2; exit 1; }
    "$HERE/run-guest.sh" -t 120 -l "$TMP/guest$suffix.log" "$HERE/guest/capture.sh" "$(cat "$TMP/port")" "$@" > /dev/null 2>&1 || true
    wait "$LPID" || { cat "$TMP/listener$suffix.log"; echo "capture$suffix failed" >&2; exit 1; }
    LPID=
    cat "$TMP/listener$suffix.log"
    grep -E '^CAPTURE' "$TMP/guest$suffix.log"
}
capture ""
capture "-digests" --hdr-digest --data-digest
ls -l "$OUT"/linux-6.1-*.bin
