#!/usr/bin/env python3
"""Capture raw NVMe/TCP PDUs from the Linux kernel initiator (test vectors).

Listens on 127.0.0.1:PORT (PORT 0 = pick a free one; the chosen port is printed
as "PORT n" and written to --port-file), accepts ONE connection, and:
  1. reads the 128-byte ICReq and saves it verbatim to OUTDIR/<prefix>icreq<suffix>.bin;
  2. answers a valid ICResp (PFV 0, CPDA 0, DGST = what the host asked for,
     MAXH2CDATA 131072);
  3. reads the next PDU (the Fabrics Connect CapsuleCmd, PLEN bytes in total,
     header digest / data digest included when negotiated) and saves it verbatim
     to OUTDIR/<prefix>connect-admin<suffix>.bin;
  4. answers a CapsuleResp with status SCT 1 / SC 0x82 (Connect Invalid
     Parameters) + DNR, echoing the CID, so the initiator fails at once instead
     of waiting admin_timeout (60 s).
It prints the decoded fields of both PDUs.

usage: capture-vectors.py --outdir DIR --prefix linux-6.1- [--suffix=-digests] [--port 0] [--port-file F] [--timeout 120]
"""
import argparse
import os
import socket
import struct
import sys
import time

# ---- CRC32C (Castagnoli, reflected 0x82F63B78), as used by NVMe/TCP digests ----
_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"peer closed after {len(buf)}/{n} bytes")
        buf += chunk
    return buf


def log(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--suffix", default="", help='e.g. "-digests" -> <prefix>icreq-digests.bin')
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))  # loopback only
    srv.listen(4)
    port = srv.getsockname()[1]
    log(f"PORT {port}")
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(a.port_file + ".tmp", a.port_file)
    srv.settimeout(a.timeout)
    conn, peer = srv.accept()
    conn.settimeout(30)
    log(f"connection from {peer[0]}:{peer[1]}")

    # ---- ICReq ----
    icreq = recv_exact(conn, 8)
    ptype, flags, hlen, pdo, plen = struct.unpack("<BBBBI", icreq)
    if ptype != 0x00 or plen != 128:
        log(f"not an ICReq: type={ptype} plen={plen}")
        return 1
    icreq += recv_exact(conn, plen - 8)
    pfv, hpda, dgst, maxr2t = struct.unpack("<HBBI", icreq[8:16])
    log(f"ICReq: type={ptype} flags={flags} hlen={hlen} pdo={pdo} plen={plen} pfv={pfv} hpda={hpda} "
        f"dgst={dgst} (hdgst={dgst & 1} ddgst={(dgst >> 1) & 1}) maxr2t={maxr2t} "
        f"rest-zero={icreq[16:] == bytes(112)}")
    with open(os.path.join(a.outdir, a.prefix + "icreq" + a.suffix + ".bin"), "wb") as f:
        f.write(icreq)
    hdgst, ddgst = bool(dgst & 1), bool(dgst & 2)

    # ---- ICResp: PFV 0, CPDA 0, DGST echoed, MAXH2CDATA 128 KiB ----
    conn.sendall(struct.pack("<BBBBIHBBI", 0x01, 0, 128, 0, 128, 0, 0, dgst, 131072) + bytes(112))

    # ---- Connect CapsuleCmd ----
    ch = recv_exact(conn, 8)
    ptype, flags, hlen, pdo, plen = struct.unpack("<BBBBI", ch)
    pdu = ch + recv_exact(conn, plen - 8)
    with open(os.path.join(a.outdir, a.prefix + "connect-admin" + a.suffix + ".bin"), "wb") as f:
        f.write(pdu)
    log(f"CapsuleCmd: type={ptype} flags=0x{flags:02x} hlen={hlen} pdo={pdo} plen={plen}")
    if ptype != 0x04:
        return 1
    sqe = pdu[8:72]
    opcode, sflags, cid, fctype = sqe[0], sqe[1], struct.unpack("<H", sqe[2:4])[0], sqe[4]
    sgl_addr, sgl_len = struct.unpack("<QI", sqe[24:36])
    sgl_type = sqe[39]
    recfmt, qid, sqsize, cattr = struct.unpack("<HHHB", sqe[40:47])
    kato = struct.unpack("<I", sqe[48:52])[0]
    log(f"  SQE: opcode=0x{opcode:02x} flags=0x{sflags:02x} cid={cid} fctype=0x{fctype:02x} "
        f"sgl(addr={sgl_addr} len={sgl_len} type=0x{sgl_type:02x}) recfmt={recfmt} qid={qid} "
        f"sqsize={sqsize} cattr=0x{cattr:02x} kato={kato}")
    if hdgst:
        want = crc32c(pdu[:hlen])
        got = struct.unpack("<I", pdu[hlen:hlen + 4])[0]
        log(f"  HDGST 0x{got:08x} (computed 0x{want:08x}, {'ok' if got == want else 'MISMATCH'})")
    data = pdu[pdo:plen - (4 if ddgst else 0)]
    if ddgst:
        want = crc32c(data)
        got = struct.unpack("<I", pdu[plen - 4:plen])[0]
        log(f"  DDGST 0x{got:08x} (computed 0x{want:08x}, {'ok' if got == want else 'MISMATCH'})")
    hostid = data[0:16].hex()
    cntlid = struct.unpack("<H", data[16:18])[0]
    subnqn = data[256:512].split(b"\0", 1)[0].decode(errors="replace")
    hostnqn = data[512:768].split(b"\0", 1)[0].decode(errors="replace")
    log(f"  data: {len(data)} bytes hostid={hostid} cntlid=0x{cntlid:04x}")
    log(f"  subnqn={subnqn}")
    log(f"  hostnqn={hostnqn}")

    # ---- CapsuleResp: SCT 1 SC 0x82 + DNR (wire status 0x8304), CID echoed ----
    status = 0x8000 | (1 << 9) | (0x82 << 1)
    cqe = struct.pack("<IIHHHH", 0, 0, 0, qid, cid, status)
    resp = struct.pack("<BBBBI", 0x05, 0x01 if hdgst else 0, 24, 0, 24 + (4 if hdgst else 0)) + cqe
    if hdgst:
        resp += struct.pack("<I", crc32c(resp))
    conn.sendall(resp)
    log(f"sent CapsuleResp status=0x{status:04x}")
    time.sleep(0.5)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
