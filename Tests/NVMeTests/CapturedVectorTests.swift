import Foundation
import NIOCore
import NIOTestUtils
import NVMe
import Testing

/// PDUs captured from the Linux 6.1 kernel NVMe/TCP host (nvme-cli 2.3), see `Vectors/README.md`.
@Suite struct CapturedVectorTests {
    static let icReqFile = "linux-6.1-icreq.bin"
    static let icReqDigestsFile = "linux-6.1-icreq-digests.bin"
    static let connectFile = "linux-6.1-connect-admin.bin"
    static let connectDigestsFile = "linux-6.1-connect-admin-digests.bin"

    static let hostID: [UInt8] = [0x1B, 0x4E, 0x28, 0xBA, 0x2F, 0xA1, 0x11, 0xD2, 0x88, 0x3F, 0x00, 0x16, 0xD3, 0xCC, 0xAB, 0xCD]
    static let subsystemNQN = "nqn.2026-11.io.halyard:capture"
    static let hostNQN = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd"

    static func load(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let directory = try #require(Bundle.module.url(forResource: "Vectors", withExtension: nil),
                                     "Vectors resource folder missing", sourceLocation: sourceLocation)
        return Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    static func le32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    // MARK: ICReq

    @Test func icReq() throws {
        let bytes = try Self.load(Self.icReqFile)
        #expect(bytes.count == 128)
        // Raw common header, read without the decoder.
        #expect(Array(bytes[0..<8]) == [0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00])
        let decoded = try Wire.decodeWhole(bytes)
        #expect(!decoded.headerDigest && !decoded.dataDigest)
        guard case .icReq(let r) = decoded.pdu else { Issue.record("not an ICReq: \(decoded.pdu.type)"); return }
        #expect(r.pduFormatVersion == 0)
        #expect(r.hostPDUDataAlignment == 0)
        #expect(!r.headerDigest && !r.dataDigest)
        #expect(r.maxR2T == 0)   // 0's based: one outstanding R2T per command
        #expect(r == ICReq())
    }

    @Test func icReqWithDigests() throws {
        let bytes = try Self.load(Self.icReqDigestsFile)
        #expect(bytes.count == 128)
        #expect(bytes[1] == 0x00)   // digests are asked for in DGST (byte 11), never used on the ICReq itself
        #expect(bytes[11] == 0x03)
        let decoded = try Wire.decodeWhole(bytes)
        #expect(!decoded.headerDigest && !decoded.dataDigest)
        guard case .icReq(let r) = decoded.pdu else { Issue.record("not an ICReq: \(decoded.pdu.type)"); return }
        #expect(r.pduFormatVersion == 0 && r.hostPDUDataAlignment == 0 && r.maxR2T == 0)
        #expect(r.headerDigest && r.dataDigest)
    }

    // MARK: Connect

    /// Checks the Connect capsule the Linux host sends on the admin queue.
    static func checkConnect(_ pdu: NVMeTCPPDU, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard case .capsuleCommand(let capsule) = pdu else {
            Issue.record("not a CapsuleCmd: \(pdu.type)", sourceLocation: sourceLocation)
            return
        }
        let sqe = capsule.command
        #expect(sqe.opcode == 0x7F, sourceLocation: sourceLocation)
        #expect(sqe.flags == 0x40, sourceLocation: sourceLocation)              // PSDT 01b, FUSE 0
        #expect(sqe.commandID == 0, sourceLocation: sourceLocation)
        #expect(sqe.fabricsCommandType == 0x01, sourceLocation: sourceLocation) // FCTYPE Connect
        #expect(sqe.namespaceID == 0x01, sourceLocation: sourceLocation)        // bytes 5..7 reserved, zero
        #expect(sqe.cdw2 == 0 && sqe.cdw3 == 0 && sqe.metadataPointer == 0, sourceLocation: sourceLocation)
        #expect(sqe.dataPointer.identifier == 0x01, sourceLocation: sourceLocation)
        #expect(sqe.dataPointer.address == 0, sourceLocation: sourceLocation)
        #expect(sqe.dataPointer.length == 1024, sourceLocation: sourceLocation)
        #expect(sqe.dataPointer.reserved == 0, sourceLocation: sourceLocation)
        #expect(sqe.dataPointer == .inCapsule(length: 1024), sourceLocation: sourceLocation)
        #expect(sqe.cdw13 == 0 && sqe.cdw14 == 0 && sqe.cdw15 == 0, sourceLocation: sourceLocation)

        let connect = ConnectCommand(sqe)
        #expect(connect.recordFormat == 0, sourceLocation: sourceLocation)
        #expect(connect.queueID == 0, sourceLocation: sourceLocation)
        #expect(connect.submissionQueueSize == 31, sourceLocation: sourceLocation)
        #expect(connect.attributes == 0, sourceLocation: sourceLocation)
        #expect(!connect.sqFlowControlDisabled, sourceLocation: sourceLocation)
        #expect(connect.keepAliveTimeoutMilliseconds == 5000, sourceLocation: sourceLocation)   // as captured (kato 5 s)

        #expect(capsule.data.readableBytes == 1024, sourceLocation: sourceLocation)
        var data = capsule.data
        let connectData = try ConnectData(decoding: &data)
        #expect(connectData.hostID == hostID, sourceLocation: sourceLocation)
        #expect(connectData.controllerID == 0xFFFF, sourceLocation: sourceLocation)
        #expect(connectData.subsystemNQN == subsystemNQN, sourceLocation: sourceLocation)
        #expect(connectData.hostNQN == hostNQN, sourceLocation: sourceLocation)
        // Everything outside the four fields is zero.
        var raw = Array(capsule.data.readableBytesView)
        raw.replaceSubrange(0..<18, with: Wire.zeros(18))
        raw.replaceSubrange(256..<(256 + subsystemNQN.utf8.count), with: Wire.zeros(subsystemNQN.utf8.count))
        raw.replaceSubrange(512..<(512 + hostNQN.utf8.count), with: Wire.zeros(hostNQN.utf8.count))
        #expect(raw == Wire.zeros(1024), sourceLocation: sourceLocation)
    }

    @Test func connect() throws {
        let bytes = try Self.load(Self.connectFile)
        #expect(bytes.count == 1096)
        // Raw: CapsuleCmd, no flags, HLEN 72, PDO 72, PLEN 1096; SGL identifier at PDU byte 8+39.
        #expect(Array(bytes[0..<8]) == [0x04, 0x00, 0x48, 0x48, 0x48, 0x04, 0x00, 0x00])
        #expect(bytes[8] == 0x7F && bytes[12] == 0x01 && bytes[47] == 0x01)
        let decoded = try Wire.decodeWhole(bytes)
        #expect(!decoded.headerDigest && !decoded.dataDigest && decoded.dataDigestValid)
        try Self.checkConnect(decoded.pdu)
    }

    @Test func connectWithDigests() throws {
        let bytes = try Self.load(Self.connectDigestsFile)
        #expect(bytes.count == 1104)
        // Raw: FLAGS HDGSTF|DDGSTF, HLEN 72, PDO 76, PLEN 1104 = 72 + 4 + 1024 + 4.
        #expect(Array(bytes[0..<8]) == [0x04, 0x03, 0x48, 0x4C, 0x50, 0x04, 0x00, 0x00])
        // The digests, computed here (twice, independently) and as the README records them.
        let hdgst = Self.le32(bytes, at: 72)
        let ddgst = Self.le32(bytes, at: 1100)
        #expect(hdgst == CRC32C.checksum(Array(bytes[0..<72])))
        #expect(hdgst == referenceCRC32C(Array(bytes[0..<72])))
        #expect(hdgst == 0xFF0E_9150)
        #expect(ddgst == CRC32C.checksum(Array(bytes[76..<1100])))
        #expect(ddgst == referenceCRC32C(Array(bytes[76..<1100])))
        #expect(ddgst == 0x82B8_12A5)

        let decoded = try Wire.decodeWhole(bytes)
        #expect(decoded.headerDigest)        // verified, or decode would have thrown
        #expect(decoded.dataDigest)
        #expect(decoded.dataDigestValid)
        try Self.checkConnect(decoded.pdu)
        // Same SQE and data as the digest-free capture.
        #expect(decoded.pdu == (try Wire.decodeWhole(try Self.load(Self.connectFile))).pdu)
    }

    // MARK: Re-encoding

    @Test(arguments: [icReqFile, icReqDigestsFile, connectFile, connectDigestsFile])
    func reEncodingGivesBackTheCapturedBytes(_ file: String) throws {
        let bytes = try Self.load(file)
        let decoded = try Wire.decodeWhole(bytes)
        var out = ByteBuffer()
        decoded.encode(into: &out)
        let reencoded = Array(out.readableBytesView)
        #expect(reencoded.count == bytes.count)
        if let first = zip(reencoded, bytes).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
            Issue.record("first difference at byte \(first.offset): ours 0x\(String(first.element.0, radix: 16)), Linux 0x\(String(first.element.1, radix: 16))")
        }
        #expect(reencoded == bytes)
    }

    /// Building the same PDUs from typed values (as Halyard's initiator would) gives Linux's bytes exactly.
    @Test func typedBuildersReproduceLinux() throws {
        var buffer = ByteBuffer()
        NVMeTCPPDU.icReq(ICReq()).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == (try Self.load(Self.icReqFile)))
        buffer.clear()
        NVMeTCPPDU.icReq(ICReq(headerDigest: true, dataDigest: true)).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == (try Self.load(Self.icReqDigestsFile)))

        var data = ByteBuffer()
        ConnectData(hostID: Self.hostID, controllerID: ConnectData.dynamicControllerID, subsystemNQN: Self.subsystemNQN,
                    hostNQN: Self.hostNQN).encode(into: &data)
        let sqe = ConnectCommand(queueID: 0, submissionQueueSize: 31, keepAliveTimeoutMilliseconds: 5000).submissionQueueEntry(commandID: 0)
        let pdu = NVMeTCPPDU.capsuleCommand(CapsuleCommand(command: sqe, data: data))
        buffer.clear()
        pdu.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == (try Self.load(Self.connectFile)))
        buffer.clear()
        pdu.encode(into: &buffer, headerDigest: true, dataDigest: true)
        #expect(Array(buffer.readableBytesView) == (try Self.load(Self.connectDigestsFile)))
    }

    /// The captured bytes also frame correctly however the stream splits them.
    @Test func capturedStreamThroughTheFramer() throws {
        let icReq = try Self.load(Self.icReqFile), connect = try Self.load(Self.connectFile)
        let icReqD = try Self.load(Self.icReqDigestsFile), connectD = try Self.load(Self.connectDigestsFile)
        let pairs: [(ByteBuffer, [DecodedPDU])] = try [
            (ByteBuffer(bytes: icReq + connect), [Wire.decodeWhole(icReq), Wire.decodeWhole(connect)]),
            (ByteBuffer(bytes: icReqD + connectD), [Wire.decodeWhole(icReqD), Wire.decodeWhole(connectD)]),
        ]
        // A target accepting 8 KiB of in-capsule data plus headers and digests.
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { NVMeTCPPDUDecoder(maximumLength: 8192 + 72 + 8) }
    }
}
