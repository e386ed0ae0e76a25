#!/bin/sh
# Guest scenario for capture-vectors.py: one `nvme connect` with a FIXED host
# identity (so the captured Connect is reproducible), then print versions.
# usage (host): run-guest.sh guest/capture.sh PORT [extra nvme connect args, e.g. --hdr-digest --data-digest]
PORT=$1; shift
echo "CAPTURE uname -r: $(uname -r)"
echo "CAPTURE nvme version: $(nvme version 2>&1 | tr '\n' ' ')"
set -x
nvme connect -t tcp -a "$HOST_IP" -s "$PORT" -n nqn.2026-11.io.halyard:capture \
    --hostnqn nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd \
    --hostid 1b4e28ba-2fa1-11d2-883f-0016d3ccabcd "$@"
echo "CAPTURE nvme connect rc=$? (failure expected)"
set +x
dmesg | grep -i nvme | tail -n 5
exit 0
