// FuzzPDUDecoder: libFuzzer target over the NVMe/TCP wire decoders of `Sources/NVMe`.
//
// The input is read as a stream of NVMe/TCP PDUs: `NVMeTCPPDU.decode(from:maximumLength:)` runs
// until it returns nil (incomplete) or throws, and every PDU it decodes must satisfy
// `PDUChecks` (streaming prefixes, decode/encode round trip, digest variants). The PDU payloads
// and the raw input are also fed to the NVMe structure decoders (SQE, CQE, Connect data,
// Identify, log pages) with their round-trip checks, and to CRC32C.
//
// Built with -parse-as-library: there is no top-level code; libFuzzer provides `main`.

import FuzzCommon
import NIOCore
import NVMe

/// The target's default PDU size limit (`TargetLimits().maximumPDULength` is 131104); a smaller
/// limit is also tried so the `.pduTooLarge` path is reached by small inputs.
let largeLimit = 128 * 1024 + 32

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPDUDecoder(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let input = ByteBuffer(fuzzBytes: bytes)

    checkCRC(bytes)

    // The PDU stream, with the target's limit and with a small one chosen by the input.
    let smallLimit = count > 0 ? 8 + Int(bytes[count - 1]) * 8 : 8
    for limit in [largeLimit, smallLimit] {
        var stream = input
        var decodedCount = 0
        while stream.readableBytes > 0 {
            let decoded: DecodedPDU?
            do {
                decoded = try PDUChecks.decode(&stream, maximumLength: limit)
            } catch {
                break
            }
            guard let decoded else { break }
            decodedCount += 1
            if limit == largeLimit, let payload = decoded.pdu.data, payload.readableBytes > 0 {
                checkPayload(payload, of: decoded.pdu)
            }
        }
        _ = decodedCount
    }

    checkStructures(input)
    return 0
}

/// A PDU's payload is what the structures travel in: Connect data in a capsule, Identify and log
/// pages in C2HData.
func checkPayload(_ payload: ByteBuffer, of pdu: NVMeTCPPDU) {
    switch pdu {
    case .capsuleCommand:
        checkStructure("ConnectData(capsule)", payload,
                       decode: { try ConnectData(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                       normalize: { d in
                           var d = d
                           d.subsystemNQN = expectedText(d.subsystemNQN, width: 256, pad: 0)
                           d.hostNQN = expectedText(d.hostNQN, width: 256, pad: 0)
                           return d
                       })
    case .c2hData, .h2cData:
        checkStructures(payload)
    default:
        break
    }
}
