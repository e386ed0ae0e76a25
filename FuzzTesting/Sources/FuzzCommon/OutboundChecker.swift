import NIOCore
import NVMe

/// Checks everything a target sends on one connection, as the host would read it: the bytes must
/// form a well-formed sequence of controller-to-host PDUs.
///
/// - every PDU decodes (a decode error is a target bug) and is in canonical form (re-encodes to
///   the same bytes), and the stream ends on a PDU boundary;
/// - only C2H PDU types (ICResp, C2HTermReq, CapsuleResp, C2HData, R2T);
/// - the first PDU is ICResp or C2HTermReq; nothing follows a C2HTermReq; at most one ICResp;
/// - after ICResp, header/data digests are exactly the negotiated ones, and data digests verify;
/// - the C2HData PDUs of one command are contiguous (offset 0, then each continuing the last,
///   the last one flagged LAST_PDU) and not interleaved with other PDUs; SUCCESS only with LAST_PDU.
public struct OutboundChecker {
    public private(set) var pending = ByteBuffer()
    public private(set) var pduCount = 0
    var negotiated: (header: Bool, data: Bool)?
    var terminated = false
    /// The C2HData transfer in progress: command ID and next expected offset.
    var transfer: (commandID: UInt16, next: UInt32)?
    let maximumLength: Int
    /// Context for violation messages (e.g. the connection index).
    let label: String

    /// Print every PDU the target sends (HALYARD_FUZZ_TRACE=1; for looking at one input).
    let trace: Bool

    public init(label: String, maximumLength: Int = 1 << 21, trace: Bool = false) {
        self.label = label
        self.maximumLength = maximumLength
        self.trace = trace
    }

    /// Appends bytes the target wrote and checks every complete PDU among them.
    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        pending.writeBuffer(&bytes)
        while pending.readableBytes > 0 {
            let decoded: DecodedPDU?
            do {
                decoded = try PDUChecks.decode(&pending, maximumLength: maximumLength, canonical: true)
            } catch {
                fuzzViolation("\(label): target sent bytes that do not decode as a PDU: \(error)\n bytes \(hex(pending))")
            }
            guard let decoded else { break }
            pending.discardReadBytes()
            check(decoded)
        }
    }

    /// Called when the connection is gone: nothing may be left half-sent.
    public func finish() {
        fuzzCheck(pending.readableBytes == 0, "\(label): target output ends inside a PDU: \(hex(pending))")
        fuzzCheck(transfer == nil, "\(label): C2HData transfer for CID \(transfer!.commandID) ended without LAST_PDU")
    }

    mutating func check(_ decoded: DecodedPDU) {
        pduCount += 1
        let pdu = decoded.pdu
        if trace { traceLine("\(label) <- \(describe(decoded))") }
        fuzzCheck(!terminated, "\(label): target sent \(pdu.type) after a C2HTermReq")
        fuzzCheck(decoded.dataDigestValid, "\(label): target sent a bad data digest on \(pdu.type)")
        switch pdu {
        case .icResp, .c2hTermReq, .capsuleResponse, .c2hData, .r2t: break
        default: fuzzViolation("\(label): target sent host-to-controller PDU \(pdu.type)")
        }
        if pduCount == 1 {
            switch pdu {
            case .icResp, .c2hTermReq: break
            default: fuzzViolation("\(label): first PDU from the target is \(pdu.type), not ICResp or C2HTermReq")
            }
        }
        if let transfer {
            guard case .c2hData(let d) = pdu, d.commandID == transfer.commandID else {
                fuzzViolation("\(label): \(pdu.type) interleaved in the C2HData transfer of CID \(transfer.commandID)")
            }
            _ = d
        }
        switch pdu {
        case .icResp(let r):
            fuzzCheck(negotiated == nil, "\(label): second ICResp")
            negotiated = (r.headerDigest, r.dataDigest)
            fuzzCheck(!decoded.headerDigest && !decoded.dataDigest, "\(label): ICResp with digests")
        case .c2hTermReq:
            terminated = true
        case .capsuleResponse, .r2t, .c2hData:
            guard let negotiated else {
                fuzzViolation("\(label): \(pdu.type) before ICResp")
            }
            fuzzCheck(decoded.headerDigest == negotiated.header,
                      "\(label): \(pdu.type) header digest \(decoded.headerDigest), negotiated \(negotiated.header)")
            let hasData = (pdu.data?.readableBytes ?? 0) > 0
            fuzzCheck(decoded.dataDigest == (negotiated.data && hasData),
                      "\(label): \(pdu.type) data digest \(decoded.dataDigest), negotiated \(negotiated.data)")
        default:
            break
        }
        if case .c2hData(let d) = pdu {
            let expected = transfer?.next ?? 0
            fuzzCheck(d.dataOffset == expected, "\(label): C2HData for CID \(d.commandID) at offset \(d.dataOffset), expected \(expected)")
            // SUCCESS (no CapsuleResp follows) is what the target sends when the host disabled SQ
            // flow control at Connect (NVMe/TCP 1.0 §3.6.2.11): only on the command's last C2HData.
            fuzzCheck(!d.success || d.last, "\(label): C2HData with SUCCESS but without LAST_PDU")
            if d.last {
                transfer = nil
            } else {
                transfer = (d.commandID, d.dataOffset + UInt32(d.data.readableBytes))
            }
        }
    }
}

/// One line for a PDU, for traces.
public func describe(_ decoded: DecodedPDU) -> String {
    let digests = (decoded.headerDigest ? " HDGST" : "") + (decoded.dataDigest ? " DDGST" : "")
    switch decoded.pdu {
    case .capsuleResponse(let r):
        let c = r.completion
        return "CapsuleResp cid \(c.commandID) status \(c.status) dw0 0x\(String(c.dw0, radix: 16)) sqhd \(c.submissionQueueHead)\(digests)"
    case .c2hData(let d), .h2cData(let d):
        return "\(decoded.pdu.type) cid \(d.commandID) ttag \(d.transferTag) offset \(d.dataOffset) \(d.data.readableBytes) bytes\(d.last ? " LAST" : "")\(digests)"
    case .r2t(let r):
        return "R2T cid \(r.commandID) ttag \(r.transferTag) offset \(r.offset) length \(r.length)\(digests)"
    case .c2hTermReq(let t), .h2cTermReq(let t):
        return "\(decoded.pdu.type) FES \(t.status) FEI \(t.information)"
    case .capsuleCommand(let c):
        let q = c.command
        let dwords = [q.cdw10, q.cdw11, q.cdw12, q.cdw13, q.cdw14, q.cdw15].map { "0x" + String($0, radix: 16) }.joined(separator: " ")
        return "CapsuleCmd opc 0x\(String(q.opcode, radix: 16)) cid \(q.commandID) nsid 0x\(String(q.namespaceID, radix: 16)) "
            + "SGL \(q.dataPointer.identifier == 0x01 ? "in-capsule" : "0x" + String(q.dataPointer.identifier, radix: 16)) len \(q.dataPointer.length) "
            + "cdw10-15 \(dwords), \(c.data.readableBytes) data bytes\(digests)"
    default:
        return "\(decoded.pdu)\(digests)"
    }
}
