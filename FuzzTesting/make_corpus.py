#!/usr/bin/env python3
"""Writes the seed corpora of the Halyard fuzzers to FuzzTesting/Corpus/<Fuzzer>/.

The PDUs are built here from the specs (NVMe/TCP transport spec 1.0 §3.6, NVMe over Fabrics 1.1,
NVMe base spec 2.0), independently of the Swift encoders, so a seed also cross-checks them. The
Linux-captured vectors in Tests/NVMeTests/Vectors/*.bin are copied in when they exist.

Usage: FuzzTesting/make_corpus.py            (rewrites Corpus/; the output is deterministic)

FuzzTargetConnection input format (see Sources/FuzzTargetConnection/main.swift):
  byte 0  options: b1:0 limits profile (0 default, 1 small, 2 no I/O in-capsule data),
          b2 host allow-list, b3 close connections in reverse, b4 fault injection on namespace 2
  byte 1  chunking seed
  rest    host->target streams, one per connection, separated by MARKER
"""

import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "Corpus")
VECTORS = os.path.join(HERE, "..", "Tests", "NVMeTests", "Vectors")

MARKER = b"\xffNEXTQ\xff\xff"
SUBNQN = "nqn.2026-11.io.halyard:fuzz"
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd"
HOSTID = bytes.fromhex("1b4e28ba2fa111d2883f0016d3ccabcd")

# PDU types
ICREQ, ICRESP, H2C_TERM, C2H_TERM, CAPSULE_CMD, CAPSULE_RESP, H2C_DATA, C2H_DATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
HLEN = {ICREQ: 128, ICRESP: 128, CAPSULE_CMD: 72}


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def pdu(ptype, body, data=b"", hd=False, dd=False, extra_flags=0):
    """One PDU: common header, the type-specific header `body`, digests and data."""
    allows = ptype not in (ICREQ, ICRESP, H2C_TERM, C2H_TERM)
    hd = hd and allows
    dd = dd and allows and len(data) > 0
    hlen = HLEN.get(ptype, 24)
    assert len(body) == hlen - 8, (ptype, len(body))
    data_start = hlen + (4 if hd else 0)
    pdo = data_start if data and ptype not in (H2C_TERM, C2H_TERM) else 0
    plen = data_start + len(data) + (4 if dd else 0)
    flags = (1 if hd else 0) | (2 if dd else 0) | extra_flags
    header = struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen) + body
    out = header
    if hd:
        out += struct.pack("<I", crc32c(header))
    out += data
    if dd:
        out += struct.pack("<I", crc32c(data))
    return out


def icreq(hd=False, dd=False, pfv=0, hpda=0, maxr2t=0):
    return pdu(ICREQ, struct.pack("<HBBI", pfv, hpda, (1 if hd else 0) | (2 if dd else 0), maxr2t) + bytes(112))


def icresp(hd=False, dd=False, maxh2c=131072):
    return pdu(ICRESP, struct.pack("<HBBI", 0, 0, (1 if hd else 0) | (2 if dd else 0), maxh2c) + bytes(112))


def sgl(length=0, in_capsule=False, address=0):
    return struct.pack("<QI3xB", address, length, 0x01 if in_capsule else 0x5A)


def sqe(opcode, cid, nsid=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, sgl_bytes=None, flags=0x40):
    sgl_bytes = sgl_bytes if sgl_bytes is not None else sgl()
    return (struct.pack("<BBHIIIQ", opcode, flags, cid, nsid, 0, 0, 0) + sgl_bytes
            + struct.pack("<6I", cdw10, cdw11, cdw12, cdw13, cdw14, cdw15))


def capsule(command, data=b"", hd=False, dd=False):
    return pdu(CAPSULE_CMD, command, data, hd, dd)


def capsule_resp(cid, status=0, dw0=0, hd=False):
    return pdu(CAPSULE_RESP, struct.pack("<IIHHHH", dw0, 0, 0, 0, cid, status), hd=hd)


def data_pdu(ptype, cid, ttag, offset, data, last=True, success=False, hd=False, dd=False):
    flags = (4 if last else 0) | (8 if success else 0)
    return pdu(ptype, struct.pack("<HHII4x", cid, ttag, offset, len(data)), data, hd, dd, flags)


def r2t(cid, ttag, offset, length, hd=False):
    return pdu(R2T, struct.pack("<HHII4x", cid, ttag, offset, length), hd=hd)


def term_req(ptype, status, info, offending):
    return pdu(ptype, struct.pack("<HI", status, info) + bytes(10), offending)


def fixed(text, width, pad=b"\0"):
    raw = text.encode()[:width]
    return raw + pad * (width - len(raw))


def connect_data(subnqn=SUBNQN, hostnqn=HOSTNQN, cntlid=0xFFFF):
    out = HOSTID + struct.pack("<H", cntlid) + bytes(238) + fixed(subnqn, 256) + fixed(hostnqn, 256) + bytes(256)
    assert len(out) == 1024
    return out


def connect(cid, qid, sqsize=31, kato=5000, subnqn=SUBNQN, cntlid=0xFFFF, hd=False, dd=False, cattr=0):
    command = sqe(0x7F, cid, nsid=0x01, cdw10=qid << 16, cdw11=sqsize | cattr << 16, cdw12=kato,
                  sgl_bytes=sgl(1024, in_capsule=True))
    return capsule(command, connect_data(subnqn, cntlid=cntlid), hd, dd)


def prop_get(cid, offset, eight=False, **kw):
    return capsule(sqe(0x7F, cid, nsid=0x04, cdw10=1 if eight else 0, cdw11=offset), **kw)


def prop_set(cid, offset, value, **kw):
    return capsule(sqe(0x7F, cid, nsid=0x00, cdw10=0, cdw11=offset, cdw12=value & 0xFFFFFFFF, cdw13=value >> 32), **kw)


CC_ENABLE = 0x00460001  # EN, IOSQES 6, IOCQES 4
CC_SHUTDOWN = 0x00464001  # + SHN normal


def admin(opcode, cid, nsid=0, length=0, **fields):
    return capsule(sqe(opcode, cid, nsid=nsid, sgl_bytes=sgl(length), **{k: v for k, v in fields.items() if k.startswith("cdw")}),
                   hd=fields.get("hd", False), dd=fields.get("dd", False))


def identify(cid, cns, nsid=0, **kw):
    return admin(0x06, cid, nsid=nsid, length=4096, cdw10=cns, **kw)


def get_log(cid, lid, length, offset=0, lsp=0, **kw):
    numd = length // 4 - 1
    return admin(0x02, cid, length=length, cdw10=lid | lsp << 8 | (numd & 0xFFFF) << 16, cdw11=numd >> 16,
                 cdw12=offset & 0xFFFFFFFF, cdw13=offset >> 32, **kw)


def set_feature(cid, fid, value, **kw):
    return admin(0x09, cid, cdw10=fid, cdw11=value, **kw)


def get_feature(cid, fid, cdw11=0, length=0, **kw):
    return admin(0x0A, cid, cdw10=fid, cdw11=cdw11, length=length, **kw)


def disconnect(cid, **kw):
    return capsule(sqe(0x7F, cid, nsid=0x08), **kw)


def admin_bringup(hd=False, dd=False, kato=5000, sqsize=31):
    d = dict(hd=hd, dd=dd)
    return b"".join([
        icreq(hd, dd),
        connect(1, 0, sqsize=sqsize, kato=kato, hd=hd, dd=dd),
        prop_get(2, 0x00, eight=True, **d),
        prop_get(3, 0x08, **d),
        prop_set(4, 0x14, CC_ENABLE, **d),
        prop_get(5, 0x1C, **d),
        identify(6, 0x01, **d),
        identify(7, 0x02, **d),
        identify(8, 0x00, nsid=1, **d),
        identify(9, 0x03, nsid=2, **d),
        set_feature(10, 0x07, 0x00010001, **d),
        set_feature(11, 0x0B, 0x00000900, **d),
        get_feature(12, 0x0F, **d),
        get_feature(13, 0x81, cdw11=1, length=16, **d),
        get_log(14, 0x0C, 4096, **d),
        get_log(15, 0x02, 512, **d),
        get_log(16, 0x04, 4096, **d),
        get_log(17, 0x01, 64, **d),
        admin(0x0C, 18, **d),  # AER, parked
        admin(0x18, 19, **d),  # keep alive
        admin(0x08, 20, cdw10=18, **d),  # abort
        get_feature(21, 0x06, **d),
    ])


def io_queue(hd=False, dd=False, cntlid=1, qid=1, small_h2c=None, sqsize=15):
    d = dict(hd=hd, dd=dd)
    payload = bytes(range(256)) * 2  # one 512-byte block
    big = bytes((i * 7) & 0xFF for i in range(4096))
    out = [
        icreq(hd, dd),
        connect(1, qid, sqsize=sqsize, kato=0, cntlid=cntlid, hd=hd, dd=dd),
        # Write, in-capsule: namespace 1, LBA 0, 1 block.
        capsule(sqe(0x01, 2, nsid=1, cdw10=0, cdw12=0, sgl_bytes=sgl(512, in_capsule=True)), payload, hd, dd),
        # Read it back.
        capsule(sqe(0x02, 3, nsid=1, cdw10=0, cdw12=0, sgl_bytes=sgl(512)), hd=hd, dd=dd),
        # Write through R2T: namespace 1, LBA 8, 8 blocks; H2CData for TTAG 0.
        capsule(sqe(0x01, 4, nsid=1, cdw10=8, cdw12=7, sgl_bytes=sgl(4096)), hd=hd, dd=dd),
    ]
    chunk = small_h2c or 4096
    for offset in range(0, 4096, chunk):
        out.append(data_pdu(H2C_DATA, 4, 0, offset, big[offset:offset + chunk], last=offset + chunk >= 4096, hd=hd, dd=dd))
    out += [
        capsule(sqe(0x02, 5, nsid=1, cdw10=8, cdw12=7, sgl_bytes=sgl(4096)), hd=hd, dd=dd),
        # Namespace 2 (4 KiB blocks, fault injection when enabled): write and read one block.
        capsule(sqe(0x01, 6, nsid=2, cdw10=1, cdw12=0, sgl_bytes=sgl(4096)), hd=hd, dd=dd),
    ]
    for offset in range(0, 4096, chunk):
        out.append(data_pdu(H2C_DATA, 6, 1, offset, big[offset:offset + chunk], last=offset + chunk >= 4096, hd=hd, dd=dd))
    out += [
        capsule(sqe(0x02, 7, nsid=2, cdw10=1, cdw12=0, sgl_bytes=sgl(4096)), hd=hd, dd=dd),
        capsule(sqe(0x00, 8, nsid=1), hd=hd, dd=dd),  # flush
        capsule(sqe(0x00, 9, nsid=0xFFFFFFFF), hd=hd, dd=dd),  # broadcast flush
        capsule(sqe(0x08, 10, nsid=1, cdw10=16, cdw12=3 | 1 << 25), hd=hd, dd=dd),  # write zeroes, deallocate
        # Dataset Management, deallocate one range, in-capsule.
        capsule(sqe(0x09, 11, nsid=1, cdw10=0, cdw11=0x4, sgl_bytes=sgl(16, in_capsule=True)),
                struct.pack("<IIQ", 0, 8, 0), hd, dd),
        capsule(sqe(0x02, 12, nsid=3, cdw12=0, sgl_bytes=sgl(512)), hd=hd, dd=dd),  # invalid namespace
        capsule(sqe(0x02, 13, nsid=1, cdw10=0xFFFFFFFF, cdw12=0, sgl_bytes=sgl(512)), hd=hd, dd=dd),  # out of range
        disconnect(14, **d),
    ]
    return b"".join(out)


def target_input(options, seed, *streams):
    return bytes([options, seed]) + MARKER.join(streams)


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def vectors():
    found = {}
    if os.path.isdir(VECTORS):
        for name in sorted(os.listdir(VECTORS)):
            if name.endswith(".bin"):
                with open(os.path.join(VECTORS, name), "rb") as f:
                    found[name] = f.read()
    return found


def main():
    pdu_dir = os.path.join(CORPUS, "FuzzPDUDecoder")
    conn_dir = os.path.join(CORPUS, "FuzzTargetConnection")
    for d in (pdu_dir, conn_dir):
        shutil.rmtree(d, ignore_errors=True)

    # FuzzPDUDecoder: single PDUs of every type, with and without digests, and payloads the
    # structure decoders read (Connect data, Identify/log pages in C2HData).
    big = bytes((i * 13) & 0xFF for i in range(4096))
    identify_ctrl = bytearray(4096)
    identify_ctrl[4:24] = fixed("HALYARD0000000000001", 20, b" ")
    identify_ctrl[24:64] = fixed("Halyard NVMe/TCP", 40, b" ")
    identify_ctrl[64:72] = fixed("0.1.0", 8, b" ")
    identify_ctrl[512] = 0x66
    identify_ctrl[513] = 0x44
    identify_ctrl[768:1024] = fixed(SUBNQN, 256)
    ana = struct.pack("<QH6x", 1, 2) + struct.pack("<IIQB15x", 1, 2, 1, 1) + struct.pack("<II", 1, 2) \
        + struct.pack("<IIQB15x", 2, 1, 1, 0xF) + struct.pack("<I", 3)
    entry = (struct.pack("<BBBBHHHH", 3, 1, 2, 2, 1, 0xFFFF, 32, 0) + bytes(20) + fixed("4420", 32) + bytes(192)
             + fixed(SUBNQN, 256) + fixed("127.0.0.1", 256) + bytes(256))
    discovery = struct.pack("<QQH", 1, 1, 0) + bytes(1024 - 18) + entry
    nidl = (struct.pack("<BBH", 2, 16, 0) + bytes(range(16)) + struct.pack("<BBH", 3, 16, 0) + bytes(range(16, 32))
            + struct.pack("<BBH", 4, 1, 0) + b"\0")
    nidl += bytes(4096 - len(nidl))
    # Vendor log page C0h (allocated ranges): count, then {start LBA, block count} u64 LE pairs,
    # ascending and disjoint (adjacent allowed), the last one ending at 2^64 - 1; zero-padded to
    # 512 bytes as a Get Log Page returns it.
    alloc_ranges = [(0, 8), (8, 1), (0x100, 0x80), (0x1_0000_0000, 1), (2**64 - 2, 1)]
    allocated = struct.pack("<Q", len(alloc_ranges)) + b"".join(struct.pack("<QQ", s, n) for s, n in alloc_ranges)
    allocated += bytes(512 - len(allocated))
    seeds = {
        "icreq.bin": icreq(),
        "icreq-digests.bin": icreq(True, True),
        "icresp.bin": icresp(True, False),
        "connect-admin.bin": connect(0, 0),
        "connect-admin-digests.bin": connect(0, 0, hd=True, dd=True),
        "connect-io.bin": connect(1, 1, sqsize=127, kato=0, cntlid=1),
        "capsule-resp.bin": capsule_resp(0, 0x8304, 0x00010100),
        "capsule-resp-hdgst.bin": capsule_resp(7, hd=True),
        "h2cdata.bin": data_pdu(H2C_DATA, 4, 0, 0, big[:512], last=True),
        "h2cdata-digests.bin": data_pdu(H2C_DATA, 4, 3, 4096, big[:1024], last=False, hd=True, dd=True),
        "c2hdata-success.bin": data_pdu(C2H_DATA, 9, 0, 0, big[:256], last=True, success=True),
        "r2t.bin": r2t(4, 0, 0, 4096),
        "r2t-hdgst.bin": r2t(4, 1, 8192, 65536, hd=True),
        "h2ctermreq.bin": term_req(H2C_TERM, 1, 2, bytes(range(24))),
        "c2htermreq.bin": term_req(C2H_TERM, 2, 0, icreq()[:128]),
        "stream-admin.bin": admin_bringup()[:4000],
        "c2hdata-identify-controller.bin": data_pdu(C2H_DATA, 6, 0, 0, bytes(identify_ctrl)),
        "c2hdata-ana-log.bin": data_pdu(C2H_DATA, 14, 0, 0, ana),
        "c2hdata-discovery-log.bin": data_pdu(C2H_DATA, 3, 0, 0, discovery, dd=True),
        "c2hdata-nid-list.bin": data_pdu(C2H_DATA, 9, 0, 0, nidl),
        "raw-identify-controller.bin": bytes(identify_ctrl),
        "raw-ana-log.bin": ana,
        "raw-discovery-log.bin": discovery,
        "c2hdata-allocated-ranges.bin": data_pdu(C2H_DATA, 21, 0, 0, allocated),
        "raw-allocated-ranges.bin": allocated,
    }
    for name, data in vectors().items():
        seeds["linux-" + name if not name.startswith("linux") else name] = data
    for name, data in seeds.items():
        write(pdu_dir, name, data)

    # FuzzTargetConnection: whole sessions.
    caps = vectors()
    linux_plain = caps.get("linux-6.1-icreq.bin", b"") + caps.get("linux-6.1-connect-admin.bin", b"")
    linux_digests = caps.get("linux-6.1-icreq-digests.bin", b"") + caps.get("linux-6.1-connect-admin-digests.bin", b"")
    sessions = {
        "admin-bringup.bin": target_input(0x00, 0x00, admin_bringup()),
        "admin-bringup-digests.bin": target_input(0x00, 0x2A, admin_bringup(True, True)),
        "admin-io.bin": target_input(0x00, 0x01, admin_bringup(), io_queue()),
        "admin-io-digests-faults.bin": target_input(0x10, 0x07, admin_bringup(True, True), io_queue(True, True)),
        "admin-io-small-limits.bin": target_input(0x01, 0x03, admin_bringup(sqsize=7), io_queue(small_h2c=1024, sqsize=7)),
        "admin-io-no-incapsule.bin": target_input(0x02 | 0x08, 0x05, admin_bringup(), io_queue(small_h2c=512)),
        "admin-io-allowlist.bin": target_input(0x04, 0x09, admin_bringup(), io_queue(), io_queue(qid=2)),
        "admin-shutdown.bin": target_input(0x00, 0x11, admin_bringup() + prop_set(30, 0x14, CC_SHUTDOWN) + prop_get(31, 0x1C)),
        "admin-disconnect.bin": target_input(0x00, 0x12, admin_bringup()[:128 + 1096] + prop_set(2, 0x14, CC_ENABLE) + disconnect(3)),
        "discovery.bin": target_input(0x00, 0x13, icreq() + connect(1, 0, kato=0, subnqn=DISCOVERY_NQN) + prop_set(2, 0x14, 0x1)
                                      + identify(3, 0x01) + get_log(4, 0x70, 1024) + get_log(5, 0x70, 4096, offset=1024)
                                      + get_log(6, 0x70, 1024) + admin(0x18, 7) + disconnect(8)),
        "protocol-errors.bin": target_input(0x00, 0x14, icreq() + icreq(), icreq() + data_pdu(H2C_DATA, 1, 77, 0, b"x" * 16),
                                            capsule_resp(1), icreq(pfv=1)),
        "io-before-admin.bin": target_input(0x00, 0x15, io_queue()),
        "connect-busy.bin": target_input(0x00, 0x16, icreq() + connect(1, 0), icreq() + connect(1, 0), icreq() + connect(1, 0)),
    }
    if linux_plain:
        sessions["linux-6.1-connect.bin"] = target_input(0x00, 0x00, linux_plain)
    if linux_digests:
        sessions["linux-6.1-connect-digests.bin"] = target_input(0x00, 0x00, linux_digests)
    for name, data in sessions.items():
        write(conn_dir, name, data)

    # Reproducers of issues found in the sources (see README.md, "Issues found in the sources").
    # Both are fixed; their inputs stay in FailCases/ as regressions that run.sh --ci replays.
    known = os.path.join(HERE, "FailCases", "FuzzPDUDecoder")
    fail_cases = os.path.join(HERE, "FailCases", "FuzzTargetConnection")
    # K1: a Connect data SUBNQN "ab  " NUL "x": decodes to "ab  ", which re-encodes as "ab".
    k1 = bytearray(1024)
    k1[256:262] = b"ab  \0x"
    write(known, "K1-connectdata-trailing-space.bin", bytes(k1))
    # B1: Get Log Page with NUMD = 0xFFFFFFFF (16 GiB): the target traps in ByteBuffer.reserveCapacity.
    bringup = icreq() + connect(1, 0) + prop_set(2, 0x14, CC_ENABLE)
    b1 = bringup + admin(0x02, 3, length=4096, cdw10=0x02 | 0xFFFF << 16, cdw11=0xFFFF)
    write(fail_cases, "B1-get-log-page-numd-16GiB.bin", target_input(0x00, 0x00, b1))
    # B1 (variant): NUMD = 0x0FFFFFFF (1 GiB): no trap, but 1 GiB allocated and zeroed for a 4 KiB read.
    b1b = bringup + admin(0x02, 3, length=4096, cdw10=0x02 | 0xFFFF << 16, cdw11=0x0FFF)
    write(fail_cases, "B1-get-log-page-numd-1GiB.bin", target_input(0x00, 0x00, b1b))
    # B1 on the discovery controller (no subsystem access needed): discovery log, NUMD 0xFFFFFFFF.
    b1c = (icreq() + connect(1, 0, kato=0, subnqn=DISCOVERY_NQN) + prop_set(2, 0x14, 0x1)
           + admin(0x02, 3, length=4096, cdw10=0x70 | 0xFFFF << 16, cdw11=0xFFFF))
    write(fail_cases, "B1-get-log-page-discovery-16GiB.bin", target_input(0x00, 0x00, b1c))

    total = sum(len(os.listdir(d)) for d in (pdu_dir, conn_dir))
    print(f"wrote {total} seeds to {os.path.relpath(CORPUS)}", file=sys.stderr)


if __name__ == "__main__":
    main()
