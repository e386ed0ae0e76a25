import NIOCore
import NVMe
import Testing

/// Byte helpers for hand-written wire vectors (shared by the PDU test files).
enum Wire {
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func zeros(_ n: Int) -> [UInt8] { [UInt8](repeating: 0, count: n) }
    static func pattern(_ n: Int, seed: UInt8 = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) } }

    /// `header ‖ HDGST? ‖ data ‖ DDGST?`, the digests computed here with `CRC32C.checksum` over the
    /// given (hand-written) bytes, so they do not depend on the encoder.
    static func pdu(header: [UInt8], headerDigest: Bool = false, data: [UInt8] = [], dataDigest: Bool = false) -> [UInt8] {
        var bytes = header
        if headerDigest { bytes += le32(CRC32C.checksum(header)) }
        bytes += data
        if dataDigest { bytes += le32(CRC32C.checksum(data)) }
        return bytes
    }

    static func encode(_ pdu: NVMeTCPPDU, headerDigest: Bool = false, dataDigest: Bool = false) -> [UInt8] {
        var buffer = ByteBuffer()
        pdu.encode(into: &buffer, headerDigest: headerDigest, dataDigest: dataDigest)
        return Array(buffer.readableBytesView)
    }

    /// Decodes exactly one PDU that must fill `bytes` completely.
    static func decodeWhole(_ bytes: [UInt8], maximumLength: Int = 1 << 20,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> DecodedPDU {
        var buffer = ByteBuffer(bytes: bytes)
        let decoded = try #require(try NVMeTCPPDU.decode(from: &buffer, maximumLength: maximumLength),
                                   sourceLocation: sourceLocation)
        #expect(buffer.readableBytes == 0, "decoder left \(buffer.readableBytes) bytes", sourceLocation: sourceLocation)
        return decoded
    }
}

@Suite struct PDUEncodingTests {
    /// One hand-written wire vector: the PDU, the digests asked of the encoder, and the exact bytes.
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var pdu: NVMeTCPPDU
        var askHeaderDigest = false
        var askDataDigest = false
        var bytes: [UInt8]
        /// What DecodedPDU must report (digests only where the type and the data allow them).
        var expectHeaderDigest = false
        var expectDataDigest = false
        var testDescription: String { name }
    }

    // MARK: ICReq / ICResp (128-byte headers, never digests)

    static let icReqLinux = ICReq(pduFormatVersion: 0, hostPDUDataAlignment: 0, headerDigest: true, dataDigest: true, maxR2T: 0)
    static let icReqLinuxBytes: [UInt8] =
        [0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00,   // type 0, flags 0, HLEN 128, PDO 0, PLEN 128
         0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00]   // PFV 0, HPDA 0, DGST hdr|data, MAXR2T 0
        + Wire.zeros(112)
    /// Every field non-zero so a misplaced field shows.
    static let icReqOdd = ICReq(pduFormatVersion: 0x0102, hostPDUDataAlignment: 3, headerDigest: true, dataDigest: false,
                                maxR2T: 0x0A0B_0C0D)
    static let icReqOddBytes: [UInt8] =
        [0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00,
         0x02, 0x01, 0x03, 0x01, 0x0D, 0x0C, 0x0B, 0x0A] + Wire.zeros(112)
    static let icResp = ICResp(pduFormatVersion: 0, controllerPDUDataAlignment: 0, headerDigest: false, dataDigest: true,
                               maxH2CData: 131_072)
    static let icRespBytes: [UInt8] =
        [0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00,
         0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x02, 0x00]   // PFV 0, CPDA 0, DGST data, MAXH2CDATA 0x00020000
        + Wire.zeros(112)
    static let icRespOdd = ICResp(pduFormatVersion: 0x0304, controllerPDUDataAlignment: 0x1F, headerDigest: true,
                                  dataDigest: true, maxH2CData: 0x0040_1000)
    static let icRespOddBytes: [UInt8] =
        [0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00,
         0x04, 0x03, 0x1F, 0x03, 0x00, 0x10, 0x40, 0x00] + Wire.zeros(112)

    // MARK: CapsuleCmd

    /// Identify Controller (CNS 1), no in-capsule data: SGL transport data block 0x5A, 4096 bytes.
    static let identify = SubmissionQueueEntry(opcode: 0x06, commandID: 0x1234, dataPointer: .transport(length: 4096), cdw10: 1)
    static let identifySQE: [UInt8] =
        [0x06, 0x40, 0x34, 0x12,  0x00, 0x00, 0x00, 0x00]    // OPC, PSDT=01b, CID, NSID 0
        + Wire.zeros(8)                                      // CDW2, CDW3
        + Wire.zeros(8)                                      // MPTR
        + Wire.zeros(8)                                      // SGL ADDR
        + [0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5A]  // SGL LEN 4096, rsvd, identifier 0x5A at SQE byte 39
        + [0x01, 0x00, 0x00, 0x00]                           // CDW10: CNS 1
        + Wire.zeros(20)                                     // CDW11..15
    /// Write of 16 bytes in-capsule: SGL data block, offset subtype 0x01.
    static let write = SubmissionQueueEntry(opcode: 0x01, commandID: 0x0042, namespaceID: 1,
                                            dataPointer: .inCapsule(length: 16), cdw10: 0x0800)
    static let writeSQE: [UInt8] =
        [0x01, 0x40, 0x42, 0x00,  0x01, 0x00, 0x00, 0x00]
        + Wire.zeros(24)
        + [0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]
        + [0x00, 0x08, 0x00, 0x00]
        + Wire.zeros(20)
    static let writeData: [UInt8] = (0xA0...0xAF).map { UInt8($0) }

    // MARK: CapsuleResp

    static let cqe = CompletionQueueEntry(dw0: 0x4433_2211, dw1: 0x8877_6655, submissionQueueHead: 9,
                                          submissionQueueID: 2, commandID: 0x1234, status: .invalidField)
    static let cqeBytes: [UInt8] =
        [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x09, 0x00, 0x02, 0x00, 0x34, 0x12, 0x04, 0x80]

    // MARK: Data PDUs

    static let h2c = DataTransfer(commandID: 0x0102, transferTag: 0x0304, dataOffset: 0x1000, last: true,
                                  data: ByteBuffer(bytes: Wire.pattern(12, seed: 1)))
    static func h2cHeader(flags: UInt8, pdo: UInt8, plen: UInt8) -> [UInt8] {
        [0x06, flags, 0x18, pdo, plen, 0x00, 0x00, 0x00,
         0x02, 0x01, 0x04, 0x03,            // CCCID 0x0102, TTAG 0x0304
         0x00, 0x10, 0x00, 0x00,            // DATAO 0x1000
         0x0C, 0x00, 0x00, 0x00,            // DATAL 12
         0x00, 0x00, 0x00, 0x00]
    }
    static let h2cMiddle = DataTransfer(commandID: 0x0102, transferTag: 0x0304, dataOffset: 0x1000, last: false,
                                        data: ByteBuffer(bytes: Wire.pattern(12, seed: 1)))

    static let c2h = DataTransfer(commandID: 0xA00F, dataOffset: 0x0001_0000, last: true,
                                  data: ByteBuffer(bytes: Wire.pattern(8, seed: 0x40)))
    static func c2hHeader(flags: UInt8, pdo: UInt8, plen: UInt8) -> [UInt8] {
        [0x07, flags, 0x18, pdo, plen, 0x00, 0x00, 0x00,
         0x0F, 0xA0, 0x00, 0x00,            // CCCID 0xA00F, TTAG 0
         0x00, 0x00, 0x01, 0x00,            // DATAO 0x10000
         0x08, 0x00, 0x00, 0x00,            // DATAL 8
         0x00, 0x00, 0x00, 0x00]
    }
    static let c2hSuccess = DataTransfer(commandID: 0xA00F, dataOffset: 0x0001_0000, last: true, success: true,
                                         data: ByteBuffer(bytes: Wire.pattern(8, seed: 0x40)))

    static let r2t = ReadyToTransfer(commandID: 0x0102, transferTag: 0x0005, offset: 0x2000, length: 0x0001_0000)
    static func r2tHeader(flags: UInt8, plen: UInt8) -> [UInt8] {
        [0x09, flags, 0x18, 0x00, plen, 0x00, 0x00, 0x00,
         0x02, 0x01, 0x05, 0x00,            // CCCID, TTAG
         0x00, 0x20, 0x00, 0x00,            // R2TO 0x2000
         0x00, 0x00, 0x01, 0x00,            // R2TL 0x10000
         0x00, 0x00, 0x00, 0x00]
    }

    // MARK: Termination requests

    /// A bad H2CData header (HLEN 0x20) being reported.
    static let offendingHeader: [UInt8] = [0x06, 0x00, 0x20, 0x18, 0x24, 0x00, 0x00, 0x00] + Wire.pattern(16, seed: 9)
    static let c2hTerm = TerminationRequest(status: .invalidHeaderField, information: 2,
                                            offendingHeader: ByteBuffer(bytes: offendingHeader))
    static let c2hTermBytes: [UInt8] =
        [0x03, 0x00, 0x18, 0x00, 0x30, 0x00, 0x00, 0x00,   // PDO 0, PLEN 24 + 24
         0x01, 0x00, 0x02, 0x00, 0x00, 0x00]               // FES 1, FEI 2
        + Wire.zeros(10) + offendingHeader
    static let h2cTerm = TerminationRequest(status: .headerDigestError, information: 0x0102_0304)
    static let h2cTermBytes: [UInt8] =
        [0x02, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00,
         0x03, 0x00, 0x04, 0x03, 0x02, 0x01] + Wire.zeros(10)

    static let vectors: [Vector] = [
        // ICReq/ICResp: asking for digests changes nothing (DGST is a body field, not FLAGS).
        Vector(name: "ICReq Linux-like", pdu: .icReq(icReqLinux), bytes: icReqLinuxBytes),
        Vector(name: "ICReq digests asked", pdu: .icReq(icReqLinux), askHeaderDigest: true, askDataDigest: true,
               bytes: icReqLinuxBytes),
        Vector(name: "ICReq odd fields", pdu: .icReq(icReqOdd), bytes: icReqOddBytes),
        Vector(name: "ICResp maxH2CData 131072", pdu: .icResp(icResp), bytes: icRespBytes),
        Vector(name: "ICResp digests asked", pdu: .icResp(icResp), askHeaderDigest: true, askDataDigest: true,
               bytes: icRespBytes),
        Vector(name: "ICResp odd fields", pdu: .icResp(icRespOdd), bytes: icRespOddBytes),

        // CapsuleCmd without data: PDO 0, DDGSTF never set.
        Vector(name: "CapsuleCmd no data", pdu: .capsuleCommand(CapsuleCommand(command: identify)),
               bytes: [0x04, 0x00, 0x48, 0x00, 0x48, 0x00, 0x00, 0x00] + identifySQE),
        Vector(name: "CapsuleCmd no data, HD", pdu: .capsuleCommand(CapsuleCommand(command: identify)),
               askHeaderDigest: true,
               bytes: Wire.pdu(header: [0x04, 0x01, 0x48, 0x00, 0x4C, 0x00, 0x00, 0x00] + identifySQE, headerDigest: true),
               expectHeaderDigest: true),
        Vector(name: "CapsuleCmd no data, HD+DD asked", pdu: .capsuleCommand(CapsuleCommand(command: identify)),
               askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: [0x04, 0x01, 0x48, 0x00, 0x4C, 0x00, 0x00, 0x00] + identifySQE, headerDigest: true),
               expectHeaderDigest: true),
        Vector(name: "CapsuleCmd no data, DD asked", pdu: .capsuleCommand(CapsuleCommand(command: identify)),
               askDataDigest: true,
               bytes: [0x04, 0x00, 0x48, 0x00, 0x48, 0x00, 0x00, 0x00] + identifySQE),

        // CapsuleCmd with 16 bytes in-capsule: PDO = 72 (+4 with HDGST), PLEN = 88 + digests.
        Vector(name: "CapsuleCmd in-capsule", pdu: .capsuleCommand(CapsuleCommand(command: write, data: ByteBuffer(bytes: writeData))),
               bytes: [0x04, 0x00, 0x48, 0x48, 0x58, 0x00, 0x00, 0x00] + writeSQE + writeData),
        Vector(name: "CapsuleCmd in-capsule, HD", pdu: .capsuleCommand(CapsuleCommand(command: write, data: ByteBuffer(bytes: writeData))),
               askHeaderDigest: true,
               bytes: Wire.pdu(header: [0x04, 0x01, 0x48, 0x4C, 0x5C, 0x00, 0x00, 0x00] + writeSQE, headerDigest: true,
                               data: writeData),
               expectHeaderDigest: true),
        Vector(name: "CapsuleCmd in-capsule, DD", pdu: .capsuleCommand(CapsuleCommand(command: write, data: ByteBuffer(bytes: writeData))),
               askDataDigest: true,
               bytes: Wire.pdu(header: [0x04, 0x02, 0x48, 0x48, 0x5C, 0x00, 0x00, 0x00] + writeSQE, data: writeData,
                               dataDigest: true),
               expectDataDigest: true),
        Vector(name: "CapsuleCmd in-capsule, HD+DD", pdu: .capsuleCommand(CapsuleCommand(command: write, data: ByteBuffer(bytes: writeData))),
               askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: [0x04, 0x03, 0x48, 0x4C, 0x60, 0x00, 0x00, 0x00] + writeSQE, headerDigest: true,
                               data: writeData, dataDigest: true),
               expectHeaderDigest: true, expectDataDigest: true),

        // CapsuleResp.
        Vector(name: "CapsuleResp", pdu: .capsuleResponse(CapsuleResponse(completion: cqe)),
               bytes: [0x05, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00] + cqeBytes),
        Vector(name: "CapsuleResp, HD+DD asked", pdu: .capsuleResponse(CapsuleResponse(completion: cqe)),
               askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: [0x05, 0x01, 0x18, 0x00, 0x1C, 0x00, 0x00, 0x00] + cqeBytes, headerDigest: true),
               expectHeaderDigest: true),

        // H2CData.
        Vector(name: "H2CData LAST", pdu: .h2cData(h2c),
               bytes: h2cHeader(flags: 0x04, pdo: 0x18, plen: 0x24) + Wire.pattern(12, seed: 1)),
        Vector(name: "H2CData not LAST", pdu: .h2cData(h2cMiddle),
               bytes: h2cHeader(flags: 0x00, pdo: 0x18, plen: 0x24) + Wire.pattern(12, seed: 1)),
        Vector(name: "H2CData LAST, HD+DD", pdu: .h2cData(h2c), askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: h2cHeader(flags: 0x07, pdo: 0x1C, plen: 0x2C), headerDigest: true,
                               data: Wire.pattern(12, seed: 1), dataDigest: true),
               expectHeaderDigest: true, expectDataDigest: true),

        // C2HData.
        Vector(name: "C2HData LAST", pdu: .c2hData(c2h),
               bytes: c2hHeader(flags: 0x04, pdo: 0x18, plen: 0x20) + Wire.pattern(8, seed: 0x40)),
        Vector(name: "C2HData LAST, DD", pdu: .c2hData(c2h), askDataDigest: true,
               bytes: Wire.pdu(header: c2hHeader(flags: 0x06, pdo: 0x18, plen: 0x24), data: Wire.pattern(8, seed: 0x40),
                               dataDigest: true),
               expectDataDigest: true),
        Vector(name: "C2HData LAST, HD", pdu: .c2hData(c2h), askHeaderDigest: true,
               bytes: Wire.pdu(header: c2hHeader(flags: 0x05, pdo: 0x1C, plen: 0x24), headerDigest: true,
                               data: Wire.pattern(8, seed: 0x40)),
               expectHeaderDigest: true),
        Vector(name: "C2HData LAST+SUCCESS, HD+DD", pdu: .c2hData(c2hSuccess), askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: c2hHeader(flags: 0x0F, pdo: 0x1C, plen: 0x28), headerDigest: true,
                               data: Wire.pattern(8, seed: 0x40), dataDigest: true),
               expectHeaderDigest: true, expectDataDigest: true),

        // R2T: never data, so never DDGSTF.
        Vector(name: "R2T", pdu: .r2t(r2t), bytes: r2tHeader(flags: 0x00, plen: 0x18)),
        Vector(name: "R2T, HD+DD asked", pdu: .r2t(r2t), askHeaderDigest: true, askDataDigest: true,
               bytes: Wire.pdu(header: r2tHeader(flags: 0x01, plen: 0x1C), headerDigest: true),
               expectHeaderDigest: true),

        // Termination requests: header copy right after the 24-byte header, PDO 0, never digests.
        Vector(name: "C2HTermReq with header copy", pdu: .c2hTermReq(c2hTerm), bytes: c2hTermBytes),
        Vector(name: "C2HTermReq digests asked", pdu: .c2hTermReq(c2hTerm), askHeaderDigest: true, askDataDigest: true,
               bytes: c2hTermBytes),
        Vector(name: "H2CTermReq no copy", pdu: .h2cTermReq(h2cTerm), askHeaderDigest: true, bytes: h2cTermBytes),
    ]

    @Test(arguments: vectors)
    func encodesByteExact(_ v: Vector) {
        let bytes = Wire.encode(v.pdu, headerDigest: v.askHeaderDigest, dataDigest: v.askDataDigest)
        #expect(bytes == v.bytes)
        // The common header as the vector states it (so a wrong vector and a wrong encoder can't agree by accident
        // on a PLEN that is not the actual length).
        #expect(Int(v.bytes[4]) | Int(v.bytes[5]) << 8 | Int(v.bytes[6]) << 16 | Int(v.bytes[7]) << 24 == v.bytes.count)
        #expect((v.bytes[1] & 0x01 != 0) == v.expectHeaderDigest)
        #expect((v.bytes[1] & 0x02 != 0) == v.expectDataDigest)
    }

    @Test(arguments: vectors)
    func decodesVector(_ v: Vector) throws {
        let decoded = try Wire.decodeWhole(v.bytes)
        #expect(decoded == DecodedPDU(pdu: v.pdu, headerDigest: v.expectHeaderDigest, dataDigest: v.expectDataDigest,
                                      dataDigestValid: true))
        #expect(decoded.pdu.type.rawValue == v.bytes[0])
        // Writing the decoded PDU back (same digests) reproduces the vector.
        var out = ByteBuffer()
        decoded.encode(into: &out)
        #expect(Array(out.readableBytesView) == v.bytes)
    }

    /// Every header digest in the vectors covers exactly the HLEN bytes, and sits at HLEN.
    @Test func headerDigestCoversExactlyTheHeader() {
        for v in Self.vectors where v.expectHeaderDigest {
            let hlen = Int(v.bytes[2])
            let digest = UInt32(v.bytes[hlen]) | UInt32(v.bytes[hlen + 1]) << 8 | UInt32(v.bytes[hlen + 2]) << 16
                | UInt32(v.bytes[hlen + 3]) << 24
            #expect(digest == referenceCRC32C(Array(v.bytes[0..<hlen])), "\(v.name)")
            #expect(Int(v.bytes[3]) == (v.pdu.data.map { $0.readableBytes > 0 } == true ? hlen + 4 : 0), "\(v.name) PDO")
        }
    }

    // MARK: Field-level decoding checks

    @Test func decodesICReqAndICRespFields() throws {
        guard case .icReq(let r) = try Wire.decodeWhole(Self.icReqOddBytes).pdu else { Issue.record("not ICReq"); return }
        #expect(r.pduFormatVersion == 0x0102)
        #expect(r.hostPDUDataAlignment == 3)
        #expect(r.headerDigest && !r.dataDigest)
        #expect(r.maxR2T == 0x0A0B_0C0D)
        guard case .icResp(let s) = try Wire.decodeWhole(Self.icRespBytes).pdu else { Issue.record("not ICResp"); return }
        #expect(s.pduFormatVersion == 0)
        #expect(s.controllerPDUDataAlignment == 0)
        #expect(!s.headerDigest && s.dataDigest)
        #expect(s.maxH2CData == 131_072)
    }

    @Test func decodesCapsuleCommandFields() throws {
        let bytes = Wire.pdu(header: [0x04, 0x03, 0x48, 0x4C, 0x60, 0x00, 0x00, 0x00] + Self.writeSQE, headerDigest: true,
                             data: Self.writeData, dataDigest: true)
        let decoded = try Wire.decodeWhole(bytes)
        #expect(decoded.headerDigest && decoded.dataDigest && decoded.dataDigestValid)
        guard case .capsuleCommand(let c) = decoded.pdu else { Issue.record("not a capsule"); return }
        #expect(c.command.opcode == 0x01)
        #expect(c.command.flags == 0x40)
        #expect(c.command.commandID == 0x0042)
        #expect(c.command.namespaceID == 1)
        #expect(c.command.dataPointer.identifier == 0x01)
        #expect(c.command.dataPointer.length == 16)
        #expect(c.command.cdw10 == 0x0800)
        #expect(Array(c.data.readableBytesView) == Self.writeData)
    }

    struct StatusCase: Sendable, CustomTestStringConvertible {
        var name: String
        var status: NVMeStatus
        var byte22: UInt8
        var byte23: UInt8
        var testDescription: String { name }
    }

    /// STATUS is CQE bytes 14..15 = PDU bytes 22..23, little-endian, P=0 | SC<<1 | SCT<<9 | DNR<<15.
    @Test(arguments: [
        StatusCase(name: "Invalid Field + DNR → 0x8004", status: .invalidField, byte22: 0x04, byte23: 0x80),
        StatusCase(name: "LBA Out of Range + DNR → 0x8100", status: .lbaOutOfRange, byte22: 0x00, byte23: 0x81),
        StatusCase(name: "ANA Inaccessible → 0x0604", status: .anaInaccessible, byte22: 0x04, byte23: 0x06),
        StatusCase(name: "Connect Invalid Host + DNR → 0x8308", status: .connectInvalidHost, byte22: 0x08, byte23: 0x83),
        StatusCase(name: "Connect Invalid Parameters + DNR → 0x8304", status: .connectInvalidParameters, byte22: 0x04, byte23: 0x83),
        StatusCase(name: "Reservation Conflict + DNR → 0x8106", status: .reservationConflict, byte22: 0x06, byte23: 0x81),
        StatusCase(name: "Transient Transport Error → 0x0044", status: .transientTransportError, byte22: 0x44, byte23: 0x00),
        StatusCase(name: "Success → 0x0000", status: .success, byte22: 0x00, byte23: 0x00),
    ])
    func capsuleResponseStatusWire(_ c: StatusCase) throws {
        let pdu = NVMeTCPPDU.capsuleResponse(CapsuleResponse(completion: CompletionQueueEntry(commandID: 0xABCD, status: c.status)))
        let expected: [UInt8] = [0x05, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00]
            + Wire.zeros(8) + [0x00, 0x00, 0x00, 0x00, 0xCD, 0xAB, c.byte22, c.byte23]
        let bytes = Wire.encode(pdu)
        #expect(bytes == expected)
        #expect(bytes[22] == c.byte22 && bytes[23] == c.byte23)
        guard case .capsuleResponse(let r) = try Wire.decodeWhole(expected).pdu else { Issue.record("not a response"); return }
        #expect(r.completion.status == c.status)
        #expect(r.completion.commandID == 0xABCD)
        #expect(r.completion.status.wire == UInt16(c.byte22) | UInt16(c.byte23) << 8)
    }

    @Test func decodesDataAndR2TFields() throws {
        let bytes = Wire.pdu(header: Self.h2cHeader(flags: 0x07, pdo: 0x1C, plen: 0x2C), headerDigest: true,
                             data: Wire.pattern(12, seed: 1), dataDigest: true)
        guard case .h2cData(let d) = try Wire.decodeWhole(bytes).pdu else { Issue.record("not H2CData"); return }
        #expect(d.commandID == 0x0102)
        #expect(d.transferTag == 0x0304)
        #expect(d.dataOffset == 0x1000)
        #expect(d.last && !d.success)
        #expect(Array(d.data.readableBytesView) == Wire.pattern(12, seed: 1))

        let c2hBytes = Wire.pdu(header: Self.c2hHeader(flags: 0x0C, pdo: 0x18, plen: 0x20), data: Wire.pattern(8, seed: 0x40))
        guard case .c2hData(let e) = try Wire.decodeWhole(c2hBytes).pdu else { Issue.record("not C2HData"); return }
        #expect(e.commandID == 0xA00F && e.transferTag == 0 && e.dataOffset == 0x10000)
        #expect(e.last && e.success)

        guard case .r2t(let r) = try Wire.decodeWhole(Self.r2tHeader(flags: 0, plen: 0x18)).pdu else { Issue.record("not R2T"); return }
        #expect(r.commandID == 0x0102 && r.transferTag == 5 && r.offset == 0x2000 && r.length == 0x10000)
    }

    @Test func decodesTerminationRequestFields() throws {
        guard case .c2hTermReq(let t) = try Wire.decodeWhole(Self.c2hTermBytes).pdu else { Issue.record("not C2HTermReq"); return }
        #expect(t.status == 1)
        #expect(t.fatalErrorStatus == .invalidHeaderField)
        #expect(t.information == 2)
        #expect(Array(t.offendingHeader.readableBytesView) == Self.offendingHeader)
        guard case .h2cTermReq(let u) = try Wire.decodeWhole(Self.h2cTermBytes).pdu else { Issue.record("not H2CTermReq"); return }
        #expect(u.fatalErrorStatus == .headerDigestError)
        #expect(u.information == 0x0102_0304)
        #expect(u.offendingHeader.readableBytes == 0)
    }

    /// A header copy longer than 128 bytes is cut to 128: PLEN 152.
    @Test func terminationRequestHeaderCopyIsCappedAt128() throws {
        let long = Wire.pattern(200, seed: 3)
        let pdu = NVMeTCPPDU.c2hTermReq(TerminationRequest(status: .pduSequenceError, offendingHeader: ByteBuffer(bytes: long)))
        let expected: [UInt8] = [0x03, 0x00, 0x18, 0x00, 0x98, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]
            + Wire.zeros(10) + Array(long[0..<128])
        #expect(Wire.encode(pdu) == expected)
        #expect(try Wire.decodeWhole(expected).pdu == pdu)
    }

    /// `encodeHeader` + the caller writing data and digest gives the same bytes as `encode`.
    @Test func encodeHeaderThenDataMatchesEncode() {
        for (hd, dd) in [(false, false), (true, false), (false, true), (true, true)] {
            let pdu = NVMeTCPPDU.c2hData(Self.c2h)
            var buffer = ByteBuffer()
            pdu.encodeHeader(into: &buffer, headerDigest: hd, dataDigest: dd, dataLength: Self.c2h.data.readableBytes)
            #expect(buffer.readableBytes == 24 + (hd ? 4 : 0))
            buffer.writeImmutableBuffer(Self.c2h.data)
            if dd { buffer.writeInteger(CRC32C.checksum(Self.c2h.data), endianness: .little) }
            #expect(Array(buffer.readableBytesView) == Wire.encode(pdu, headerDigest: hd, dataDigest: dd), "hd \(hd) dd \(dd)")
        }
    }

    /// Encoding appends: a PDU written after existing bytes gets its header digest over its own header only.
    @Test func encodeAppendsAfterExistingBytes() throws {
        var buffer = ByteBuffer(bytes: [0xEE, 0xEE, 0xEE])
        buffer.moveReaderIndex(forwardBy: 1)
        NVMeTCPPDU.r2t(Self.r2t).encode(into: &buffer, headerDigest: true)
        #expect(Array(buffer.readableBytesView) == [0xEE, 0xEE] + Wire.pdu(header: Self.r2tHeader(flags: 0x01, plen: 0x1C), headerDigest: true))
    }

    // MARK: Round trips

    struct Sample: Sendable, CustomTestStringConvertible {
        var name: String
        var pdu: NVMeTCPPDU
        var testDescription: String { name }
    }

    enum Digests: Sendable, CaseIterable, CustomTestStringConvertible {
        case plain, header, data, both
        var header: Bool { self == .header || self == .both }
        var data: Bool { self == .data || self == .both }
        var testDescription: String { "\(self)" }
    }

    static let samples: [Sample] = {
        var s: [Sample] = []
        for (i, r) in [ICReq(), ICReq(headerDigest: true), ICReq(dataDigest: true), ICReq(headerDigest: true, dataDigest: true, maxR2T: 7),
                       ICReq(pduFormatVersion: 0xFFFF, hostPDUDataAlignment: 0xFF, maxR2T: .max)].enumerated() {
            s.append(Sample(name: "ICReq \(i)", pdu: .icReq(r)))
        }
        for (i, r) in [ICResp(maxH2CData: 4096), ICResp(headerDigest: true, dataDigest: true, maxH2CData: 131_072),
                       ICResp(pduFormatVersion: 1, controllerPDUDataAlignment: 31, dataDigest: true, maxH2CData: .max)].enumerated() {
            s.append(Sample(name: "ICResp \(i)", pdu: .icResp(r)))
        }
        for len in [0, 1, 24, 72, 128, 129, 300] {
            let t = TerminationRequest(status: .invalidHeaderField, information: UInt32(len), offendingHeader: ByteBuffer(bytes: Wire.pattern(len)))
            s.append(Sample(name: "H2CTermReq copy \(len)", pdu: .h2cTermReq(t)))
            s.append(Sample(name: "C2HTermReq copy \(len)", pdu: .c2hTermReq(t)))
        }
        s.append(Sample(name: "TermReq unknown FES", pdu: .c2hTermReq(TerminationRequest(rawStatus: 0xBEEF, information: .max, offendingHeader: ByteBuffer()))))
        let sqes: [SubmissionQueueEntry] = [
            identify, write,
            SubmissionQueueEntry(opcode: 0x02, flags: 0x40, commandID: 0xF00F, namespaceID: .max, cdw2: 1, cdw3: 2,
                                 metadataPointer: .max, dataPointer: SGLDescriptor(address: 0x1122_3344_5566_7788, length: .max,
                                                                                   reserved: 0xABCDEF, identifier: 0x5A),
                                 cdw10: 10, cdw11: 11, cdw12: 12, cdw13: 13, cdw14: 14, cdw15: .max),
            ConnectCommand(queueID: 3, submissionQueueSize: 127).submissionQueueEntry(commandID: 9),
        ]
        for (i, sqe) in sqes.enumerated() {
            for len in [0, 1, 16, 1024, 8192] {
                s.append(Sample(name: "CapsuleCmd \(i) data \(len)",
                                pdu: .capsuleCommand(CapsuleCommand(command: sqe, data: ByteBuffer(bytes: Wire.pattern(len, seed: UInt8(i)))))))
            }
        }
        let statuses: [NVMeStatus] = [.success, .invalidField, .anaTransition, .connectInvalidHost,
                                      NVMeStatus(codeType: 7, code: 0xFF, doNotRetry: true, more: true, retryDelay: 3)]
        for (i, st) in statuses.enumerated() {
            s.append(Sample(name: "CapsuleResp \(i)", pdu: .capsuleResponse(CapsuleResponse(completion: CompletionQueueEntry(
                dw0: UInt32(i) &* 0x0101_0101, dw1: .max, submissionQueueHead: UInt16(i), submissionQueueID: 0xFFFF,
                commandID: UInt16(0x1000 + i), status: st)))))
        }
        for len in [1, 4, 511, 4096, 131_072] {
            for last in [false, true] {
                s.append(Sample(name: "H2CData \(len) last \(last)", pdu: .h2cData(DataTransfer(
                    commandID: 0x3001, transferTag: 0xFFFF, dataOffset: 0xFFFF_0000, last: last, data: ByteBuffer(bytes: Wire.pattern(len))))))
                s.append(Sample(name: "C2HData \(len) last \(last)", pdu: .c2hData(DataTransfer(
                    commandID: 0x3002, dataOffset: UInt32(len), last: last, data: ByteBuffer(bytes: Wire.pattern(len, seed: 5))))))
            }
            s.append(Sample(name: "C2HData \(len) success", pdu: .c2hData(DataTransfer(
                commandID: 0x3003, dataOffset: 0, last: true, success: true, data: ByteBuffer(bytes: Wire.pattern(len, seed: 6))))))
        }
        for (i, r) in [ReadyToTransfer(commandID: 0, transferTag: 0, offset: 0, length: 1),
                       ReadyToTransfer(commandID: .max, transferTag: .max, offset: .max, length: .max),
                       r2t].enumerated() {
            s.append(Sample(name: "R2T \(i)", pdu: .r2t(r)))
        }
        return s
    }()

    @Test(arguments: samples, Digests.allCases)
    func roundTrips(_ sample: Sample, _ digests: Digests) throws {
        var buffer = ByteBuffer()
        sample.pdu.encode(into: &buffer, headerDigest: digests.header, dataDigest: digests.data)
        let encodedLength = buffer.readableBytes
        let type = sample.pdu.type
        let dataLength = sample.pdu.data?.readableBytes ?? 0
        let hd = digests.header && type.allowsDigests
        let dd = digests.data && type.allowsDigests && dataLength > 0
        #expect(encodedLength == type.headerLength + (hd ? 4 : 0) + dataLength + (dd ? 4 : 0))
        #expect(buffer.getInteger(at: 4, endianness: .little, as: UInt32.self) == UInt32(encodedLength))
        #expect(buffer.getInteger(at: 2, as: UInt8.self) == UInt8(type.headerLength))

        let decoded = try #require(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 1 << 20))
        #expect(buffer.readableBytes == 0)
        #expect(decoded == DecodedPDU(pdu: sample.pdu, headerDigest: hd, dataDigest: dd, dataDigestValid: true))
    }
}
