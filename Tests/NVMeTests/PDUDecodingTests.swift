import NIOCore
import NIOTestUtils
import NVMe
import Testing

@Suite struct PDUDecodingTests {
    typealias V = PDUEncodingTests

    /// Decoding `bytes` must throw `kind` at `offset` (nil offset: don't check it).
    static func expectFailure(_ bytes: [UInt8], maximumLength: Int = 1 << 20, _ kind: NVMeWireError.Kind, offset: Int?,
                              _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        var buffer = ByteBuffer(bytes: bytes)
        do {
            let result = try NVMeTCPPDU.decode(from: &buffer, maximumLength: maximumLength)
            Issue.record("expected \(kind) at \(offset.map(String.init) ?? "?"), got \(String(describing: result)) \(comment.map { "\($0)" } ?? "")",
                         sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error) \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
            if let offset {
                #expect(error.offset == offset, "\(error) \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
            }
        }
    }

    static func setPLEN(_ bytes: inout [UInt8], _ plen: UInt32) { bytes.replaceSubrange(4..<8, with: Wire.le32(plen)) }

    /// A valid digest-free PDU of each type, written by hand (see PDUEncodingTests).
    static func valid(_ type: PDUType) -> [UInt8] {
        switch type {
        case .icReq: V.icReqLinuxBytes
        case .icResp: V.icRespBytes
        case .h2cTermReq: V.h2cTermBytes
        case .c2hTermReq: V.c2hTermBytes
        case .capsuleCommand: [0x04, 0x00, 0x48, 0x48, 0x58, 0x00, 0x00, 0x00] + V.writeSQE + V.writeData
        case .capsuleResponse: [0x05, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00] + V.cqeBytes
        case .h2cData: V.h2cHeader(flags: 0x04, pdo: 0x18, plen: 0x24) + Wire.pattern(12, seed: 1)
        case .c2hData: V.c2hHeader(flags: 0x04, pdo: 0x18, plen: 0x20) + Wire.pattern(8, seed: 0x40)
        case .r2t: V.r2tHeader(flags: 0x00, plen: 0x18)
        }
    }

    @Test(arguments: PDUType.allCases)
    func validBaselineDecodes(_ type: PDUType) throws {
        // The baselines the malformed cases start from are themselves fine.
        #expect(try Wire.decodeWhole(Self.valid(type)).pdu.type == type)
    }

    // MARK: Framing with NIOTestUtils

    @Test func verifierAcceptsAllVectorsFedAnyWay() throws {
        var pairs: [(ByteBuffer, [DecodedPDU])] = V.vectors.map { v in
            (ByteBuffer(bytes: v.bytes),
             [DecodedPDU(pdu: v.pdu, headerDigest: v.expectHeaderDigest, dataDigest: v.expectDataDigest)])
        }
        // Two PDUs in one write.
        let c2h = V.c2hHeader(flags: 0x04, pdo: 0x18, plen: 0x20) + Wire.pattern(8, seed: 0x40)
        let r2t = V.r2tHeader(flags: 0, plen: 0x18)
        pairs.append((ByteBuffer(bytes: c2h + r2t), [DecodedPDU(pdu: .c2hData(V.c2h)), DecodedPDU(pdu: .r2t(V.r2t))]))
        // A bigger capsule, with digests.
        let big = NVMeTCPPDU.capsuleCommand(CapsuleCommand(command: V.write, data: ByteBuffer(bytes: Wire.pattern(4096, seed: 77))))
        var bigBuffer = ByteBuffer()
        big.encode(into: &bigBuffer, headerDigest: true, dataDigest: true)
        pairs.append((bigBuffer, [DecodedPDU(pdu: big, headerDigest: true, dataDigest: true)]))
        // A corrupted data digest is delivered, flagged.
        var bad = Wire.pdu(header: V.c2hHeader(flags: 0x06, pdo: 0x18, plen: 0x24), data: Wire.pattern(8, seed: 0x40), dataDigest: true)
        bad[bad.count - 1] ^= 0x80
        pairs.append((ByteBuffer(bytes: bad), [DecodedPDU(pdu: .c2hData(V.c2h), headerDigest: false, dataDigest: true, dataDigestValid: false)]))

        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { NVMeTCPPDUDecoder(maximumLength: 1 << 20) }
    }

    @Test func backToBackPDUsDecodeInOrder() throws {
        let bytes = Self.valid(.capsuleResponse) + Self.valid(.r2t) + Self.valid(.h2cData)
        var buffer = ByteBuffer(bytes: bytes)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 4096)?.pdu.type == .capsuleResponse)
        #expect(buffer.readerIndex == 24)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 4096)?.pdu == .r2t(V.r2t))
        #expect(buffer.readerIndex == 48)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 4096)?.pdu == .h2cData(V.h2c))
        #expect(buffer.readableBytes == 0)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 4096) == nil)
    }

    // MARK: Partial input

    @Test(arguments: [PDUType.icReq, .capsuleCommand, .capsuleResponse, .h2cData, .c2hTermReq, .r2t])
    func partialPDUReturnsNilAndConsumesNothing(_ type: PDUType) throws {
        let full = Self.valid(type)
        for cut in 0..<full.count {
            // Also behind bytes already consumed (reader index > 0).
            var buffer = ByteBuffer(bytes: [0xEE, 0xEE, 0xEE] + full[0..<cut])
            buffer.moveReaderIndex(forwardBy: 3)
            let result = try NVMeTCPPDU.decode(from: &buffer, maximumLength: 1 << 20)
            #expect(result == nil, "cut at \(cut)")
            #expect(buffer.readerIndex == 3, "cut at \(cut)")
            #expect(buffer.readableBytes == cut, "cut at \(cut)")
        }
        var buffer = ByteBuffer(bytes: [0xEE] + full)
        buffer.moveReaderIndex(forwardBy: 1)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 1 << 20)?.pdu.type == type)
        #expect(buffer.readableBytes == 0)
    }

    @Test func partialWithDigestsReturnsNil() throws {
        let full = Wire.pdu(header: [0x04, 0x03, 0x48, 0x4C, 0x60, 0x00, 0x00, 0x00] + V.writeSQE, headerDigest: true,
                            data: V.writeData, dataDigest: true)
        for cut in [8, 71, 72, 75, 76, 91, 92, 95] {
            var buffer = ByteBuffer(bytes: Array(full[0..<cut]))
            #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: 4096) == nil, "cut at \(cut)")
            #expect(buffer.readableBytes == cut)
        }
    }

    // MARK: Malformed common header

    @Test(arguments: [UInt8(0x08), 0x0A, 0xFF])
    func unknownPDUTypeIsUnsupported(_ rawType: UInt8) {
        let pdu: [UInt8] = [rawType, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00] + Wire.zeros(16)
        Self.expectFailure(pdu, .unsupportedPDUType, offset: 0)
        // Known as soon as the common header is in.
        Self.expectFailure(Array(pdu[0..<8]), .unsupportedPDUType, offset: 0)
    }

    @Test(arguments: PDUType.allCases)
    func wrongHLENIsInvalidFieldAtOffset2(_ type: PDUType) {
        let hlen = type.headerLength
        for wrong in Set([0, 8, hlen - 1, hlen + 1, hlen == 24 ? 72 : 24, hlen == 128 ? 72 : 128, 255]) {
            var bytes = Self.valid(type)
            bytes[2] = UInt8(wrong)
            Self.expectFailure(bytes, .invalidField, offset: 2, "\(type) HLEN \(wrong)")
        }
    }

    @Test(arguments: PDUType.allCases)
    func plenShorterThanHeaderIsInvalidFieldAtOffset4(_ type: PDUType) {
        for plen in [0, 8, type.headerLength - 1] {
            var bytes = Self.valid(type)
            Self.setPLEN(&bytes, UInt32(plen))
            Self.expectFailure(bytes, .invalidField, offset: 4, "\(type) PLEN \(plen)")
        }
    }

    @Test func plenShorterThanHeaderPlusDigestIsInvalidFieldAtOffset4() {
        // HDGSTF set but PLEN 24 leaves no room for the header digest.
        let resp: [UInt8] = [0x05, 0x01, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00] + V.cqeBytes + [0, 0, 0, 0]
        Self.expectFailure(resp, .invalidField, offset: 4)
        let cmd: [UInt8] = [0x04, 0x01, 0x48, 0x00, 0x4B, 0x00, 0x00, 0x00] + V.identifySQE + [0, 0, 0, 0]
        Self.expectFailure(cmd, .invalidField, offset: 4)
    }

    @Test func plenAboveLimitIsTooLarge() throws {
        let limit = 65_536
        for plen in [UInt32(limit + 1), 0x0100_0000, .max] {
            var header = V.c2hHeader(flags: 0x04, pdo: 0x18, plen: 0)
            Self.setPLEN(&header, plen)
            // Rejected from the header alone, before waiting for PLEN bytes.
            Self.expectFailure(header, maximumLength: limit, .pduTooLarge, offset: 4, "PLEN \(plen)")
            Self.expectFailure(Array(header[0..<8]), maximumLength: limit, .pduTooLarge, offset: 4, "PLEN \(plen)")
        }
        // Exactly the limit is fine: the decoder waits for the data.
        var header = V.c2hHeader(flags: 0x04, pdo: 0x18, plen: 0)
        Self.setPLEN(&header, UInt32(limit))
        header.replaceSubrange(16..<20, with: Wire.le32(UInt32(limit - 24)))
        var buffer = ByteBuffer(bytes: header)
        #expect(try NVMeTCPPDU.decode(from: &buffer, maximumLength: limit) == nil)
        buffer.writeBytes(Wire.pattern(limit - 24))
        let decoded = try #require(try NVMeTCPPDU.decode(from: &buffer, maximumLength: limit))
        #expect(decoded.pdu.data?.readableBytes == limit - 24)
        // A limit below 128 refuses even an ICReq.
        Self.expectFailure(V.icReqLinuxBytes, maximumLength: 127, .pduTooLarge, offset: 4)
    }

    @Test(arguments: [PDUType.icReq, .icResp])
    func icPLENMustBe128(_ type: PDUType) {
        for plen in [UInt32(132), 129, 256] {
            var bytes = Self.valid(type) + Wire.zeros(Int(plen) - 128)
            Self.setPLEN(&bytes, plen)
            Self.expectFailure(bytes, .invalidField, offset: 4, "\(type) PLEN \(plen)")
        }
    }

    @Test(arguments: [PDUType.icReq, .icResp, .h2cTermReq, .c2hTermReq])
    func digestFlagsWhereNotAllowedAreInvalidFieldAtOffset1(_ type: PDUType) {
        for flags: UInt8 in [0x01, 0x02, 0x03] {
            var bytes = Self.valid(type)
            bytes[1] = flags
            Self.expectFailure(bytes, .invalidField, offset: 1, "\(type) FLAGS \(flags)")
        }
    }

    @Test func dataDigestFlagWithoutDataIsInvalidFieldAtOffset1() {
        var resp = Self.valid(.capsuleResponse)
        resp[1] = 0x02
        Self.expectFailure(resp, .invalidField, offset: 1)
        var r2t = Self.valid(.r2t)
        r2t[1] = 0x02
        Self.expectFailure(r2t, .invalidField, offset: 1)
        let cmd: [UInt8] = [0x04, 0x02, 0x48, 0x00, 0x48, 0x00, 0x00, 0x00] + V.identifySQE
        Self.expectFailure(cmd, .invalidField, offset: 1)
    }

    @Test func dataOnDatalessTypesIsInvalidFieldAtOffset4() {
        var resp = Self.valid(.capsuleResponse) + Wire.zeros(4)
        Self.setPLEN(&resp, 28)
        Self.expectFailure(resp, .invalidField, offset: 4)
        var r2t = Self.valid(.r2t) + Wire.zeros(8)
        Self.setPLEN(&r2t, 32)
        r2t[3] = 24
        Self.expectFailure(r2t, .invalidField, offset: 4)
        // A termination request's header copy is at most 128 bytes.
        var term = V.c2hTermBytes + Wire.zeros(128 - 24 + 1)
        Self.setPLEN(&term, UInt32(24 + 129))
        Self.expectFailure(term, .invalidField, offset: 4)
    }

    @Test func pdoOutsideTheDataIsInvalidFieldAtOffset3() {
        var cmd = Self.valid(.capsuleCommand)
        cmd[3] = 0x10    // inside the header
        Self.expectFailure(cmd, .invalidField, offset: 3)
        cmd[3] = 0xFF    // beyond PLEN (88)
        Self.expectFailure(cmd, .invalidField, offset: 3)
        var r2t = Self.valid(.r2t)
        r2t[3] = 0x18    // R2T has no data, PDO must be 0
        Self.expectFailure(r2t, .invalidField, offset: 3)
    }

    /// With a PDO past the header (HPDA/CPDA padding), data starts at PDO and the pad is skipped.
    @Test func dataStartsAtPDO() throws {
        var bytes = V.h2cHeader(flags: 0x04, pdo: 0x20, plen: 0x2C)   // PDO 32, PLEN 32 + 12
        bytes += [0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE] + Wire.pattern(12, seed: 1)
        let decoded = try Wire.decodeWhole(bytes)
        #expect(decoded.pdu == .h2cData(V.h2c))
    }

    // MARK: Digests

    @Test func corruptedHeaderDigestIsAMismatch() {
        let good = Wire.pdu(header: [0x04, 0x03, 0x48, 0x4C, 0x60, 0x00, 0x00, 0x00] + V.writeSQE, headerDigest: true,
                            data: V.writeData, dataDigest: true)
        // A flipped bit in the digest itself, or in any header byte the digest covers (but not in the fields
        // checked before it: type, flags, HLEN, PDO, PLEN).
        for index in [72, 73, 74, 75, 8, 10, 11, 40, 47, 71] {
            var bad = good
            bad[index] ^= 0x01
            Self.expectFailure(bad, .headerDigestMismatch, offset: nil, "byte \(index)")
        }
        for type in [PDUType.capsuleResponse, .r2t, .h2cData, .c2hData] {
            var bytes = Self.valid(type)
            bytes[1] |= 0x01
            if bytes[3] != 0 { bytes[3] += 4 }
            Self.setPLEN(&bytes, UInt32(bytes.count + 4))
            let header = Array(bytes[0..<24])
            var withDigest = Wire.pdu(header: header, headerDigest: true, data: Array(bytes[24...]))
            #expect((try? Wire.decodeWhole(withDigest).pdu.type) == type)
            withDigest[20] ^= 0xFF   // reserved bytes are covered too
            Self.expectFailure(withDigest, .headerDigestMismatch, offset: nil, "\(type)")
        }
    }

    @Test func corruptedDataDigestDecodesButIsFlagged() throws {
        let good = Wire.pdu(header: [0x04, 0x02, 0x48, 0x48, 0x5C, 0x00, 0x00, 0x00] + V.writeSQE, data: V.writeData, dataDigest: true)
        for index in [88, 91, 72, 87] {   // in the digest, or in the data
            var bad = good
            bad[index] ^= 0x10
            let decoded = try Wire.decodeWhole(bad)
            #expect(decoded.dataDigest)
            #expect(!decoded.dataDigestValid, "byte \(index)")
            #expect(decoded.pdu.type == .capsuleCommand)
            if case .capsuleCommand(let c) = decoded.pdu { #expect(c.command == V.write) }
        }
        #expect(try Wire.decodeWhole(good).dataDigestValid)

        var h2c = Wire.pdu(header: V.h2cHeader(flags: 0x06, pdo: 0x18, plen: 0x28), data: Wire.pattern(12, seed: 1), dataDigest: true)
        h2c[h2c.count - 4] ^= 0x01
        let decoded = try Wire.decodeWhole(h2c)
        #expect(decoded.pdu == .h2cData(V.h2c))
        #expect(decoded.dataDigest && !decoded.dataDigestValid)
    }

    // MARK: Type-specific fields

    @Test(arguments: [PDUType.h2cData, .c2hData])
    func dataLengthMustMatchDATAL(_ type: PDUType) {
        for datal: UInt32 in [0, 11, 13, 0xFFFF_FFFF] {
            var bytes = Self.valid(type)
            bytes.replaceSubrange(16..<20, with: Wire.le32(datal))
            Self.expectFailure(bytes, .invalidField, offset: 16, "\(type) DATAL \(datal)")
        }
        // With a data digest, DATAL excludes it.
        var withDigest = Wire.pdu(header: V.h2cHeader(flags: 0x06, pdo: 0x18, plen: 0x28), data: Wire.pattern(12, seed: 1), dataDigest: true)
        #expect((try? Wire.decodeWhole(withDigest))?.pdu == .h2cData(V.h2c))
        withDigest.replaceSubrange(16..<20, with: Wire.le32(16))
        Self.expectFailure(withDigest, .invalidField, offset: 16)
    }

    @Test func r2tLengthZeroIsInvalidFieldAtOffset16() {
        var bytes = Self.valid(.r2t)
        bytes.replaceSubrange(16..<20, with: Wire.le32(0))
        Self.expectFailure(bytes, .invalidField, offset: 16)
    }

    @Test func successFlagNeedsLastAndC2H() throws {
        var c2h = Self.valid(.c2hData)
        c2h[1] = 0x08    // SUCCESS without LAST
        Self.expectFailure(c2h, .invalidField, offset: 1)
        c2h[1] = 0x0C    // SUCCESS | LAST is fine
        let decoded = try Wire.decodeWhole(c2h)
        guard case .c2hData(let d) = decoded.pdu else { Issue.record("not C2HData"); return }
        #expect(d.success && d.last)
        var h2c = Self.valid(.h2cData)
        h2c[1] = 0x0C    // never on H2CData
        Self.expectFailure(h2c, .invalidField, offset: 1)
    }
}
