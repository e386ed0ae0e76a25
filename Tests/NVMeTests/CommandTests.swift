import NIOCore
import NVMe
import Testing

@Suite struct CommandTests {
    static func encoded(_ sqe: SubmissionQueueEntry) -> [UInt8] {
        var buffer = ByteBuffer()
        sqe.encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    static func decodeSQE(_ bytes: [UInt8]) throws -> SubmissionQueueEntry {
        var buffer = ByteBuffer(bytes: bytes)
        let sqe = try SubmissionQueueEntry(decoding: &buffer)
        #expect(buffer.readableBytes == 0)
        return sqe
    }

    // MARK: SQE

    /// Every field distinct so any misplaced offset shows.
    static let fullSQE = SubmissionQueueEntry(
        opcode: 0x02, flags: 0x40, commandID: 0xBEEF, namespaceID: 0x0102_0304, cdw2: 0x1112_1314, cdw3: 0x2122_2324,
        metadataPointer: 0x3132_3334_3536_3738,
        dataPointer: SGLDescriptor(address: 0x4142_4344_4546_4748, length: 0x5152_5354, reserved: 0x61_6263, identifier: 0x5A),
        cdw10: 0xA0A1_A2A3, cdw11: 0xB0B1_B2B3, cdw12: 0xC0C1_C2C3, cdw13: 0xD0D1_D2D3, cdw14: 0xE0E1_E2E3, cdw15: 0xF0F1_F2F3)
    static let fullSQEBytes: [UInt8] = [
        0x02, 0x40, 0xEF, 0xBE,                             // 0 OPC, 1 FLAGS, 2..3 CID
        0x04, 0x03, 0x02, 0x01,                             // 4 NSID
        0x14, 0x13, 0x12, 0x11,                             // 8 CDW2
        0x24, 0x23, 0x22, 0x21,                             // 12 CDW3
        0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31,     // 16 MPTR
        0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41,     // 24 SGL address
        0x54, 0x53, 0x52, 0x51,                             // 32 SGL length
        0x63, 0x62, 0x61,                                   // 36..38 SGL reserved
        0x5A,                                               // 39 SGL identifier
        0xA3, 0xA2, 0xA1, 0xA0,                             // 40 CDW10
        0xB3, 0xB2, 0xB1, 0xB0,                             // 44 CDW11
        0xC3, 0xC2, 0xC1, 0xC0,                             // 48 CDW12
        0xD3, 0xD2, 0xD1, 0xD0,                             // 52 CDW13
        0xE3, 0xE2, 0xE1, 0xE0,                             // 56 CDW14
        0xF3, 0xF2, 0xF1, 0xF0,                             // 60 CDW15
    ]

    @Test func sqeEncodesByteExact() {
        let bytes = Self.encoded(Self.fullSQE)
        #expect(bytes.count == 64)
        #expect(bytes == Self.fullSQEBytes)
        #expect(bytes[0] == 0x02)
        #expect(bytes[1] == 0x40)
        #expect(bytes[39] == 0x5A)
    }

    @Test func sqeDecodesByteExact() throws {
        let sqe = try Self.decodeSQE(Self.fullSQEBytes)
        #expect(sqe == Self.fullSQE)
        #expect(sqe.opcode == 0x02)
        #expect(sqe.commandID == 0xBEEF)
        #expect(sqe.namespaceID == 0x0102_0304)
        #expect(sqe.cdw2 == 0x1112_1314 && sqe.cdw3 == 0x2122_2324)
        #expect(sqe.metadataPointer == 0x3132_3334_3536_3738)
        #expect(sqe.dataPointer.address == 0x4142_4344_4546_4748)
        #expect(sqe.dataPointer.length == 0x5152_5354)
        #expect(sqe.dataPointer.reserved == 0x61_6263)
        #expect(sqe.dataPointer.identifier == 0x5A)
        #expect([sqe.cdw10, sqe.cdw11, sqe.cdw12, sqe.cdw13, sqe.cdw14, sqe.cdw15]
                == [0xA0A1_A2A3, 0xB0B1_B2B3, 0xC0C1_C2C3, 0xD0D1_D2D3, 0xE0E1_E2E3, 0xF0F1_F2F3])
    }

    @Test func sqeDecodeLeavesFollowingBytes() throws {
        var buffer = ByteBuffer(bytes: Self.fullSQEBytes + [0x99])
        _ = try SubmissionQueueEntry(decoding: &buffer)
        #expect(buffer.readableBytes == 1)
    }

    @Test func sqeDefaultsArePSDTSGLAndNullTransportSGL() {
        let bytes = Self.encoded(SubmissionQueueEntry(opcode: 0x18, commandID: 7))   // Keep Alive
        #expect(bytes == [0x18, 0x40, 0x07, 0x00] + Wire.zeros(35) + [0x5A] + Wire.zeros(24))
    }

    @Test func sqeAccessors() {
        #expect(SubmissionQueueEntry(opcode: 0, flags: 0x41).fuse == 1)
        #expect(SubmissionQueueEntry(opcode: 0, flags: 0x43).fuse == 3)
        #expect(SubmissionQueueEntry(opcode: 0, flags: 0x41).psdt == 0x40)
        #expect(SubmissionQueueEntry(opcode: 0, flags: 0x80).psdt == 0x80)
        #expect(SubmissionQueueEntry(opcode: 0, flags: 0x3C).psdt == 0)
        #expect(SubmissionQueueEntry(opcode: 0x7F, namespaceID: 0xAABB_CC04).fabricsCommandType == 0x04)
        #expect(SubmissionQueueEntry(opcode: 0x7F, namespaceID: 1).fabricsCommandType == FabricsCommandType.connect.rawValue)
        #expect(SubmissionQueueEntry(opcode: 0x00).dataDirection == .none)             // Flush
        #expect(SubmissionQueueEntry(opcode: 0x01).dataDirection == .hostToController) // Write
        #expect(SubmissionQueueEntry(opcode: 0x02).dataDirection == .controllerToHost) // Read
        #expect(SubmissionQueueEntry(opcode: 0x06).dataDirection == .controllerToHost) // Identify
        #expect(SubmissionQueueEntry(opcode: 0x09).dataDirection == .hostToController) // DSM / Set Features
        #expect(SubmissionQueueEntry(opcode: 0x0C).dataDirection == .none)             // AER
        #expect(SubmissionQueueEntry(opcode: 0x7F).dataDirection == .bidirectional)    // Fabrics
    }

    @Test func truncatedStructuresThrowTruncated() {
        var sqe = ByteBuffer(bytes: Array(Self.fullSQEBytes[0..<63]))
        do { _ = try SubmissionQueueEntry(decoding: &sqe); Issue.record("63-byte SQE decoded") } catch { #expect(error.kind == .truncated) }
        #expect(sqe.readableBytes == 63)
        var cqe = ByteBuffer(bytes: Wire.zeros(15))
        do { _ = try CompletionQueueEntry(decoding: &cqe); Issue.record("15-byte CQE decoded") } catch { #expect(error.kind == .truncated) }
        var sgl = ByteBuffer(bytes: Wire.zeros(15))
        do { _ = try SGLDescriptor(decoding: &sgl); Issue.record("15-byte SGL decoded") } catch { #expect(error.kind == .truncated) }
        var data = ByteBuffer(bytes: Wire.zeros(1023))
        do { _ = try ConnectData(decoding: &data); Issue.record("1023-byte Connect data decoded") } catch { #expect(error.kind == .truncated) }
    }

    // MARK: SGL

    @Test func sglDescriptors() throws {
        var buffer = ByteBuffer()
        SGLDescriptor.inCapsule(length: 1024).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == Wire.zeros(8) + [0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])
        buffer.clear()
        SGLDescriptor.transport(length: 0x0002_0000).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == Wire.zeros(8) + [0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x5A])
        let transport = try SGLDescriptor(decoding: &buffer)
        #expect(transport.isTransport && !transport.isInCapsule)
        #expect(transport.descriptorType == 0x5 && transport.subtype == 0xA)
        #expect(transport.length == 0x0002_0000 && transport.address == 0)
        let inCapsule = SGLDescriptor.inCapsule(length: 16)
        #expect(inCapsule.isInCapsule && !inCapsule.isTransport)
        #expect(inCapsule.descriptorType == 0 && inCapsule.subtype == 1)
        // Reserved is three bytes.
        let r = SGLDescriptor(reserved: 0xFFFF_FFFF, identifier: 0x00)
        #expect(r.reserved == 0xFF_FFFF)
        buffer.clear()
        r.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == Wire.zeros(12) + [0xFF, 0xFF, 0xFF, 0x00])
    }

    // MARK: CQE

    static let cqeBytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x04, 0x80]
    static let cqe = CompletionQueueEntry(dw0: 0x0403_0201, dw1: 0x0807_0605, submissionQueueHead: 0x0A09,
                                          submissionQueueID: 0x0C0B, commandID: 0x0E0D, status: .invalidField)

    @Test func cqeEncodesAndDecodesByteExact() throws {
        var buffer = ByteBuffer()
        Self.cqe.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == Self.cqeBytes)
        var input = ByteBuffer(bytes: Self.cqeBytes)
        let decoded = try CompletionQueueEntry(decoding: &input)
        #expect(decoded == Self.cqe)
        #expect(decoded.dw0 == 0x0403_0201 && decoded.dw1 == 0x0807_0605)
        #expect(decoded.submissionQueueHead == 0x0A09 && decoded.submissionQueueID == 0x0C0B)
        #expect(decoded.commandID == 0x0E0D)
        #expect(decoded.status == .invalidField && decoded.status.doNotRetry)
        #expect(input.readableBytes == 0)
    }

    @Test func cqePhaseBitIsIgnoredOnDecodeAndZeroOnEncode() throws {
        var input = ByteBuffer(bytes: Array(Self.cqeBytes[0..<14]) + [0x05, 0x80])
        let decoded = try CompletionQueueEntry(decoding: &input)
        #expect(decoded.status == .invalidField)
        var out = ByteBuffer()
        decoded.encode(into: &out)
        #expect(out.getInteger(at: 14, endianness: .little, as: UInt16.self) == 0x8004)
    }

    // MARK: NVMeStatus

    struct StatusRow: Sendable, CustomTestStringConvertible {
        var name: String
        var status: NVMeStatus
        var sct: UInt8
        var sc: UInt8
        var dnr: Bool
        var wire: UInt16
        var value: UInt16
        var testDescription: String { name }
        init(_ name: String, _ status: NVMeStatus, _ sct: UInt8, _ sc: UInt8, dnr: Bool, _ wire: UInt16, _ value: UInt16) {
            (self.name, self.status, self.sct, self.sc, self.dnr, self.wire, self.value) = (name, status, sct, sc, dnr, wire, value)
        }
    }

    /// Every static constant, with its wire form (P=0 | SC<<1 | SCT<<9 | DNR<<15) worked out by hand.
    static let statusTable: [StatusRow] = [
        StatusRow("success", .success, 0, 0x00, dnr: false, 0x0000, 0x000),
        StatusRow("invalidOpcode", .invalidOpcode, 0, 0x01, dnr: true, 0x8002, 0x001),
        StatusRow("invalidField", .invalidField, 0, 0x02, dnr: true, 0x8004, 0x002),
        StatusRow("dataTransferError", .dataTransferError, 0, 0x04, dnr: false, 0x0008, 0x004),
        StatusRow("internalError", .internalError, 0, 0x06, dnr: false, 0x000C, 0x006),
        StatusRow("abortedByRequest", .abortedByRequest, 0, 0x07, dnr: false, 0x000E, 0x007),
        StatusRow("abortedSQDeletion", .abortedSQDeletion, 0, 0x08, dnr: false, 0x0010, 0x008),
        StatusRow("invalidNamespace", .invalidNamespace, 0, 0x0B, dnr: true, 0x8016, 0x00B),
        StatusRow("commandSequenceError", .commandSequenceError, 0, 0x0C, dnr: true, 0x8018, 0x00C),
        StatusRow("dataSGLLengthInvalid", .dataSGLLengthInvalid, 0, 0x0F, dnr: true, 0x801E, 0x00F),
        StatusRow("sglDescriptorTypeInvalid", .sglDescriptorTypeInvalid, 0, 0x11, dnr: true, 0x8022, 0x011),
        StatusRow("hostIdentifierInconsistentFormat", .hostIdentifierInconsistentFormat, 0, 0x18, dnr: true, 0x8030, 0x018),
        StatusRow("keepAliveTimerExpired", .keepAliveTimerExpired, 0, 0x19, dnr: false, 0x0032, 0x019),
        StatusRow("keepAliveTimeoutInvalid", .keepAliveTimeoutInvalid, 0, 0x1A, dnr: true, 0x8034, 0x01A),
        StatusRow("abortedPreempt", .abortedPreempt, 0, 0x1B, dnr: false, 0x0036, 0x01B),
        StatusRow("transientTransportError", .transientTransportError, 0, 0x22, dnr: false, 0x0044, 0x022),
        StatusRow("lbaOutOfRange", .lbaOutOfRange, 0, 0x80, dnr: true, 0x8100, 0x080),
        StatusRow("capacityExceeded", .capacityExceeded, 0, 0x81, dnr: true, 0x8102, 0x081),
        StatusRow("namespaceNotReady", .namespaceNotReady, 0, 0x82, dnr: false, 0x0104, 0x082),
        StatusRow("reservationConflict", .reservationConflict, 0, 0x83, dnr: true, 0x8106, 0x083),
        StatusRow("invalidQueueSize", .invalidQueueSize, 1, 0x02, dnr: true, 0x8204, 0x102),
        StatusRow("asyncEventRequestLimitExceeded", .asyncEventRequestLimitExceeded, 1, 0x05, dnr: true, 0x820A, 0x105),
        StatusRow("invalidLogPage", .invalidLogPage, 1, 0x09, dnr: true, 0x8212, 0x109),
        StatusRow("featureNotSaveable", .featureNotSaveable, 1, 0x0D, dnr: true, 0x821A, 0x10D),
        StatusRow("featureNotChangeable", .featureNotChangeable, 1, 0x0E, dnr: true, 0x821C, 0x10E),
        StatusRow("connectIncompatibleFormat", .connectIncompatibleFormat, 1, 0x80, dnr: true, 0x8300, 0x180),
        StatusRow("connectControllerBusy", .connectControllerBusy, 1, 0x81, dnr: true, 0x8302, 0x181),
        StatusRow("connectInvalidParameters", .connectInvalidParameters, 1, 0x82, dnr: true, 0x8304, 0x182),
        StatusRow("connectRestartDiscovery", .connectRestartDiscovery, 1, 0x83, dnr: true, 0x8306, 0x183),
        StatusRow("connectInvalidHost", .connectInvalidHost, 1, 0x84, dnr: true, 0x8308, 0x184),
        StatusRow("writeFault", .writeFault, 2, 0x80, dnr: false, 0x0500, 0x280),
        StatusRow("unrecoveredReadError", .unrecoveredReadError, 2, 0x81, dnr: false, 0x0502, 0x281),
        StatusRow("internalPathError", .internalPathError, 3, 0x00, dnr: false, 0x0600, 0x300),
        StatusRow("anaPersistentLoss", .anaPersistentLoss, 3, 0x01, dnr: false, 0x0602, 0x301),
        StatusRow("anaInaccessible", .anaInaccessible, 3, 0x02, dnr: false, 0x0604, 0x302),
        StatusRow("anaTransition", .anaTransition, 3, 0x03, dnr: false, 0x0606, 0x303),
        StatusRow("hostPathError", .hostPathError, 3, 0x70, dnr: false, 0x06E0, 0x370),
        StatusRow("hostAbortedCommand", .hostAbortedCommand, 3, 0x71, dnr: false, 0x06E2, 0x371),
    ]

    @Test(arguments: statusTable)
    func statusConstant(_ row: StatusRow) {
        #expect(row.status.codeType == row.sct)
        #expect(row.status.code == row.sc)
        #expect(row.status.doNotRetry == row.dnr)
        #expect(!row.status.more && row.status.retryDelay == 0)
        #expect(row.status.wire == row.wire)
        #expect(row.status.value == row.value)
        #expect(NVMeStatus(wire: row.wire) == row.status)
        #expect(NVMeStatus(wire: row.wire | 1) == row.status)   // phase bit ignored
        #expect(row.status.isSuccess == (row.name == "success"))
        #expect(row.status.isPathError == (row.sct == 3))
        #expect(row.status.dnr.wire == row.wire | 0x8000)
        #expect(row.status.dnr.value == row.value)
    }

    @Test func statusTableIsDistinct() {
        #expect(Set(Self.statusTable.map(\.status)).count == Self.statusTable.count)
    }

    @Test func statusWireRoundTripsForEveryValue() {
        var mismatches = 0
        for wire in stride(from: 0, through: 0xFFFE, by: 2).map({ UInt16($0) }) {
            let status = NVMeStatus(wire: wire)
            if status.wire != wire || NVMeStatus(wire: wire | 1) != status { mismatches += 1 }
            if status.value != (wire >> 1) & 0x7FF { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func statusMoreRetryDelayAndMasking() {
        let s = NVMeStatus(codeType: 1, code: 0x82, doNotRetry: true, more: true, retryDelay: 2)
        #expect(s.wire == 0xE304)   // DNR 0x8000 | M 0x4000 | CRD 2<<12 | SCT 1<<9 | SC 0x82<<1
        #expect(s.value == 0x182)
        #expect(NVMeStatus(wire: 0xE304) == s)
        let decoded = NVMeStatus(wire: 0x7E00)
        #expect(decoded.codeType == 7 && decoded.code == 0 && decoded.retryDelay == 3 && decoded.more && !decoded.doNotRetry)
        let masked = NVMeStatus(codeType: 0x0F, code: 0xFF, retryDelay: 0x07)
        #expect(masked.codeType == 7 && masked.retryDelay == 3)
        #expect(masked.wire == 0x3FFE)
    }

    // MARK: Connect

    /// Connect on I/O queue 0x0304, every field distinct: RECFMT 0x0102 at 40, QID 42, SQSIZE 44, CATTR 46, KATO 48.
    static let connectSQEBytes: [UInt8] =
        [0x7F, 0x40, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]    // OPC 0x7F, PSDT SGL, CID 3, FCTYPE 1
        + Wire.zeros(16)                                     // CDW2, CDW3, MPTR
        + Wire.zeros(8) + [0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]   // SGL: in-capsule, 1024 bytes
        + [0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x04, 0x00, 0x0D, 0x0C, 0x0B, 0x0A]
        + Wire.zeros(12)
    static let connect = ConnectCommand(recordFormat: 0x0102, queueID: 0x0304, submissionQueueSize: 0x0506,
                                        attributes: 0x04, keepAliveTimeoutMilliseconds: 0x0A0B_0C0D)

    @Test func connectCommandEncodes() {
        let bytes = Self.encoded(Self.connect.submissionQueueEntry(commandID: 3))
        #expect(bytes == Self.connectSQEBytes)
    }

    @Test func connectCommandFieldExtraction() throws {
        let sqe = try Self.decodeSQE(Self.connectSQEBytes)
        #expect(sqe.opcode == AdminOpcode.fabrics.rawValue)
        #expect(sqe.fabricsCommandType == FabricsCommandType.connect.rawValue)
        #expect(sqe.dataPointer == .inCapsule(length: 1024))
        let c = ConnectCommand(sqe)
        #expect(c == Self.connect)
        #expect(c.recordFormat == 0x0102)
        #expect(c.queueID == 0x0304)
        #expect(c.submissionQueueSize == 0x0506)
        #expect(c.attributes == 0x04)
        #expect(c.sqFlowControlDisabled)
        #expect(c.keepAliveTimeoutMilliseconds == 0x0A0B_0C0D)
        // Byte 47 (reserved) does not leak into CATTR; bytes 40..41 do not leak into QID.
        var odd = Self.connectSQEBytes
        odd[47] = 0xFF
        odd[46] = 0x03
        let c2 = ConnectCommand(try Self.decodeSQE(odd))
        #expect(c2.attributes == 0x03 && !c2.sqFlowControlDisabled)
        #expect(c2.queueID == 0x0304 && c2.recordFormat == 0x0102)
    }

    @Test func linuxAdminConnect() {
        // What the Linux host sends on the admin queue: qid 0, sqsize 31, KATO 5000 ms, 1024 bytes in-capsule.
        let bytes = Self.encoded(ConnectCommand(queueID: 0, submissionQueueSize: 31, keepAliveTimeoutMilliseconds: 5000)
            .submissionQueueEntry(commandID: 0))
        #expect(bytes == [0x7F, 0x40, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00] + Wire.zeros(16)
                + Wire.zeros(8) + [0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]
                + [0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x88, 0x13, 0x00, 0x00] + Wire.zeros(12))
    }

    static let hostID: [UInt8] = [0x1B, 0x4E, 0x28, 0xBA, 0x2F, 0xA1, 0x11, 0xD2, 0x88, 0x3F, 0x00, 0x16, 0xD3, 0xCC, 0xAB, 0xCD]
    static let subNQN = "nqn.2026-11.io.halyard:test"
    static let hostNQN = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd"

    static func connectDataBytes(controllerID: UInt16, subsystem: String = subNQN, host: String = hostNQN) -> [UInt8] {
        var b = hostID + Wire.le16(controllerID) + Wire.zeros(238)
        b += Array(subsystem.utf8) + Wire.zeros(256 - subsystem.utf8.count)
        b += Array(host.utf8) + Wire.zeros(256 - host.utf8.count)
        b += Wire.zeros(256)
        return b
    }

    @Test func connectDataEncodes() {
        let data = ConnectData(hostID: Self.hostID, controllerID: 0x1234, subsystemNQN: Self.subNQN, hostNQN: Self.hostNQN)
        var buffer = ByteBuffer()
        data.encode(into: &buffer)
        let bytes = Array(buffer.readableBytesView)
        #expect(bytes.count == 1024)
        #expect(bytes == Self.connectDataBytes(controllerID: 0x1234))
        #expect(Array(bytes[0..<16]) == Self.hostID)
        #expect(bytes[16] == 0x34 && bytes[17] == 0x12)
        #expect(Array(bytes[256..<(256 + Self.subNQN.utf8.count)]) == Array(Self.subNQN.utf8))
        #expect(Array(bytes[512..<(512 + Self.hostNQN.utf8.count)]) == Array(Self.hostNQN.utf8))
    }

    @Test func connectDataDecodes() throws {
        var raw = Self.connectDataBytes(controllerID: ConnectData.dynamicControllerID)
        // Reserved areas are ignored.
        raw[100] = 0xAA
        raw[1000] = 0xBB
        var buffer = ByteBuffer(bytes: raw)
        let data = try ConnectData(decoding: &buffer)
        #expect(buffer.readableBytes == 0)
        #expect(data.hostID == Self.hostID)
        #expect(data.controllerID == 0xFFFF)
        #expect(data.subsystemNQN == Self.subNQN)
        #expect(data.hostNQN == Self.hostNQN)
    }

    @Test func connectDataLongestNQNs() throws {
        // 223 characters (the NQN maximum) and a full 256 bytes with no NUL.
        let long = "nqn.2014-08.org.example:" + String(repeating: "x", count: 223 - 24)
        let full = String(repeating: "n", count: 256)
        var buffer = ByteBuffer(bytes: Self.connectDataBytes(controllerID: 1, subsystem: long, host: full))
        let data = try ConnectData(decoding: &buffer)
        #expect(data.subsystemNQN == long)
        #expect(data.hostNQN == full)
        var out = ByteBuffer()
        data.encode(into: &out)
        #expect(Array(out.readableBytesView) == Self.connectDataBytes(controllerID: 1, subsystem: long, host: full))
    }

    // MARK: Property Get / Set

    @Test func propertyGetCAPEncodes() {
        let bytes = Self.encoded(PropertyCommand(isEightBytes: true, offset: ControllerProperty.capabilities)
            .submissionQueueEntry(set: false, commandID: 5))
        // FCTYPE 0x04 at 4; ATTRIB 1 (8 bytes) at 40; OFST 0 at 44; no data (SGL 0x5A, length 0).
        #expect(bytes == [0x7F, 0x40, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00] + Wire.zeros(31) + [0x5A]
                + [0x01, 0x00, 0x00, 0x00] + Wire.zeros(20))
    }

    @Test func propertySetEncodes() {
        let cc = Self.encoded(PropertyCommand(isEightBytes: false, offset: ControllerProperty.configuration, value: 0x0046_0001)
            .submissionQueueEntry(set: true, commandID: 6))
        #expect(cc == [0x7F, 0x40, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00] + Wire.zeros(31) + [0x5A]
                + [0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x46, 0x00] + Wire.zeros(12))
        let wide = Self.encoded(PropertyCommand(isEightBytes: true, offset: 0x0102_0304, value: 0x1122_3344_5566_7788)
            .submissionQueueEntry(set: true, commandID: 7))
        #expect(Array(wide[40..<56]) == [0x01, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        // A Get never carries a value.
        let get = Self.encoded(PropertyCommand(isEightBytes: false, offset: 0x1C, value: 0xFFFF)
            .submissionQueueEntry(set: false, commandID: 8))
        #expect(Array(get[48..<56]) == Wire.zeros(8))
    }

    @Test func propertyCommandFieldExtraction() throws {
        var bytes = [0x7F, 0x40, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00] + Wire.zeros(31) + [0x5A]
            + [0x01, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11] + Wire.zeros(8)
        var p = PropertyCommand(try Self.decodeSQE(bytes))
        #expect(p.isEightBytes)
        #expect(p.offset == 0x1C)
        #expect(p.value == 0x1122_3344_5566_7788)
        bytes[40] = 0x00
        p = PropertyCommand(try Self.decodeSQE(bytes))
        #expect(!p.isEightBytes)
        bytes[40] = 0xF9    // ATTRIB b2:0 = 1, reserved bits set
        p = PropertyCommand(try Self.decodeSQE(bytes))
        #expect(p.isEightBytes)
        // Round trip through the builder.
        let set = PropertyCommand(isEightBytes: true, offset: 0x14, value: 0xDEAD_BEEF_0000_0001)
        #expect(PropertyCommand(set.submissionQueueEntry(set: true, commandID: 1)) == set)
        #expect(set.submissionQueueEntry(set: true, commandID: 1).fabricsCommandType == FabricsCommandType.propertySet.rawValue)
    }

    // MARK: Controller registers

    @Test func propertyOffsets() {
        #expect(ControllerProperty.capabilities == 0x00)
        #expect(ControllerProperty.version == 0x08)
        #expect(ControllerProperty.configuration == 0x14)
        #expect(ControllerProperty.status == 0x1C)
        #expect(ControllerProperty.subsystemReset == 0x20)
        #expect(ControllerProperty.readyTimeouts == 0x68)
    }

    @Test func controllerCapabilities() {
        let cap = ControllerCapabilities(maxQueueEntries: 1024, timeout500ms: 15)
        #expect(cap.rawValue == 0x0000_0020_0F01_03FF)
        #expect(cap.rawValue & 0xFFFF == 0x3FF)              // MQES, 0's based
        #expect(cap.rawValue >> 16 & 1 == 1)                 // CQR
        #expect(cap.rawValue >> 24 & 0xFF == 15)             // TO
        #expect(cap.rawValue >> 37 & 1 == 1)                 // CSS: NVM
        #expect(cap.rawValue >> 43 & 1 == 0)                 // CSS: no I/O command set (see research §3.2)
        #expect(cap.rawValue >> 48 & 0xF == 0)               // MPSMIN 4 KiB
        #expect(cap.rawValue >> 59 & 0x3 == 0)               // CRMS
        #expect(cap.maxQueueEntries == 1024)
        #expect(cap.timeout500ms == 15)

        #expect(ControllerCapabilities(maxQueueEntries: 65_536, timeout500ms: 0xFF).rawValue & 0xFFFF_FFFF == 0xFF01_FFFF)
        #expect(ControllerCapabilities(maxQueueEntries: 65_536, timeout500ms: 0).maxQueueEntries == 65_536)
        #expect(ControllerCapabilities(maxQueueEntries: 2, timeout500ms: 1).rawValue == 0x0000_0020_0101_0001)
        // Linux nvmet's CAP.
        let nvmet = ControllerCapabilities(rawValue: 0x0000_0820_0F00_03FF)
        #expect(nvmet.maxQueueEntries == 1024 && nvmet.timeout500ms == 15)
    }

    @Test func controllerConfigurationLinuxDefault() {
        let off = ControllerConfiguration.linuxDefault(enable: false)
        #expect(off.rawValue == 0x0046_0000)
        #expect(!off.enable)
        #expect(off.ioSubmissionQueueEntrySize == 6)
        #expect(off.ioCompletionQueueEntrySize == 4)
        #expect(off.commandSetSelected == 0)
        #expect(off.memoryPageSize == 0)
        #expect(off.arbitrationMechanism == 0)
        #expect(off.shutdownNotification == 0)
        let on = ControllerConfiguration.linuxDefault(enable: true)
        #expect(on.rawValue == 0x0046_0001)
        #expect(on.enable)
        #expect(on.ioSubmissionQueueEntrySize == 6 && on.ioCompletionQueueEntrySize == 4)
    }

    @Test func controllerConfigurationFields() {
        let shutdown = ControllerConfiguration(rawValue: 0x0046_4001)
        #expect(shutdown.shutdownNotification == 1 && shutdown.enable)
        #expect(ControllerConfiguration(rawValue: 0x0000_8000).shutdownNotification == 2)
        #expect(ControllerConfiguration(rawValue: 0x0046_0061).commandSetSelected == 6)
        let c = ControllerConfiguration(rawValue: 0x0000_2980)   // MPS 3 (b10:7), AMS 5 (b13:11)
        #expect(c.memoryPageSize == 3)
        #expect(c.arbitrationMechanism == 5)
        #expect(c.commandSetSelected == 0 && c.shutdownNotification == 0 && !c.enable)
        let sizes = ControllerConfiguration(rawValue: 0x00A5_0000)
        #expect(sizes.ioSubmissionQueueEntrySize == 5 && sizes.ioCompletionQueueEntrySize == 0xA)
    }

    @Test func controllerStatusBits() {
        var s = ControllerStatus(rawValue: 0)
        #expect(!s.ready && !s.fatal && s.shutdownStatus == 0)
        s.ready = true
        #expect(s.rawValue == 0x1)
        s.fatal = true
        #expect(s.rawValue == 0x3)
        s.shutdownStatus = 2
        #expect(s.rawValue == 0xB)
        s.ready = false
        #expect(s.rawValue == 0xA)
        s.fatal = false
        #expect(s.rawValue == 0x8)
        s.shutdownStatus = 7    // masked to 2 bits
        #expect(s.rawValue == 0xC)
        s.shutdownStatus = 0
        #expect(s.rawValue == 0)
        let read = ControllerStatus(rawValue: 0x9)
        #expect(read.ready && !read.fatal && read.shutdownStatus == 2)
        // Other bits survive the setters.
        var other = ControllerStatus(rawValue: 0xF0)
        other.ready = true
        other.shutdownStatus = 1
        #expect(other.rawValue == 0xF5)
    }
}
