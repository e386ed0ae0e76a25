import NIOCore
import NVMe
import Testing

/// Reservation wire formats against hand-written bytes (NVMe base spec 2.0 §7.4–§7.6, Figures
/// 572–585, §5.16.1.21; research/nvme-tcp.md §7.1).
@Suite struct ReservationWireTests {
    static func bytes(_ encode: (inout ByteBuffer) -> Void) -> [UInt8] {
        var b = ByteBuffer()
        encode(&b)
        return Array(b.readableBytesView)
    }

    @Test func hostIdentifierKeepsWireOrder() throws {
        let raw: [UInt8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]
        let id = HostIdentifier(bytes: raw)
        #expect(id.bytes == raw)
        #expect(id.description == "00112233445566778899aabbccddeeff")
        #expect(HostIdentifier(hex: "00112233445566778899AABBCCDDEEFF") == id)
        #expect(HostIdentifier(hex: "0011") == nil)
        #expect(HostIdentifier(hex: "zz112233445566778899aabbccddeeff") == nil)
        #expect(Self.bytes { id.encode(into: &$0) } == raw)
        var b = ByteBuffer(bytes: raw)
        #expect(try HostIdentifier(decoding: &b) == id)
        #expect(HostIdentifier(bytes: [0x01]).bytes == [0x01] + [UInt8](repeating: 0, count: 15))
    }

    @Test func registerCommandFields() {
        // RREGA 010b (replace), IEKEY b3, CPTPL 11b in b31:30.
        let replace = ReservationRegisterCommand(cdw10: 0xC000_000A)
        #expect(replace.action == .replace)
        #expect(replace.ignoreExistingKey)
        #expect(replace.persistenceChange == .set)
        #expect(ReservationRegisterCommand(action: .replace, ignoreExistingKey: true, persistenceChange: .set).cdw10 == 0xC000_000A)
        #expect(ReservationRegisterCommand(action: .unregister, persistenceChange: .clear).cdw10 == 0x8000_0001)
        let reserved = ReservationRegisterCommand(cdw10: 0x4000_0007)
        #expect(reserved.action == nil)
        #expect(reserved.rawAction == 7)
        #expect(reserved.persistenceChange == nil)  // 01b is reserved
        let sqe = ReservationRegisterCommand(action: .register).submissionQueueEntry(namespaceID: 1, commandID: 9)
        #expect(sqe.opcode == 0x0D)
        #expect(sqe.dataPointer.length == 16)
    }

    @Test func registerData() throws {
        let data = ReservationRegisterData(currentKey: 0x0102_0304_0506_0708, newKey: 0x1112_1314_1516_1718)
        let wire: [UInt8] = [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,   // 0 CRKEY
                             0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]   // 8 NRKEY
        #expect(Self.bytes { data.encode(into: &$0) } == wire)
        var b = ByteBuffer(bytes: wire)
        #expect(try ReservationRegisterData(decoding: &b) == data)
        var short = ByteBuffer(bytes: Array(wire.prefix(15)))
        #expect(throws: NVMeWireError.self) { try ReservationRegisterData(decoding: &short) }
    }

    @Test func acquireCommandAndData() throws {
        // RACQA 010b (preempt and abort), RTYPE 2 in b15:8.
        let c = ReservationAcquireCommand(cdw10: 0x0000_0202)
        #expect(c.action == .preemptAndAbort)
        #expect(c.type == .exclusiveAccess)
        #expect(!c.ignoreExistingKey)
        #expect(ReservationAcquireCommand(action: .acquire, type: .exclusiveAccessAllRegistrants).cdw10 == 0x0000_0600)
        #expect(ReservationAcquireCommand(cdw10: 0x0000_0708).type == nil)  // RTYPE 7
        #expect(ReservationAcquireCommand(cdw10: 0x0000_0708).ignoreExistingKey)
        #expect(ReservationAcquireCommand(cdw10: 0x0000_0103).action == nil)
        #expect(ReservationAcquireCommand(action: .preempt, type: .writeExclusive).submissionQueueEntry(namespaceID: 1).opcode == 0x11)
        let data = ReservationAcquireData(currentKey: 0xA1, preemptKey: 0xB2)
        let wire: [UInt8] = [0xA1, 0, 0, 0, 0, 0, 0, 0, 0xB2, 0, 0, 0, 0, 0, 0, 0]
        #expect(Self.bytes { data.encode(into: &$0) } == wire)
        var b = ByteBuffer(bytes: wire)
        #expect(try ReservationAcquireData(decoding: &b) == data)
    }

    @Test func releaseCommandAndDataAcceptEightOrMoreBytes() throws {
        let clear = ReservationReleaseCommand(cdw10: 0x0000_0001)
        #expect(clear.action == .clear)
        #expect(clear.type == nil)
        let release = ReservationReleaseCommand(cdw10: 0x0000_0300)
        #expect(release.action == .release)
        #expect(release.type == .writeExclusiveRegistrantsOnly)
        #expect(ReservationReleaseCommand(action: .release, type: .exclusiveAccess, ignoreExistingKey: true).cdw10 == 0x0000_0208)
        #expect(ReservationReleaseCommand(action: .release, type: .writeExclusive).submissionQueueEntry(namespaceID: 1).opcode == 0x15)
        let eight: [UInt8] = [0xEF, 0xBE, 0xAD, 0xDE, 0, 0, 0, 0]
        var b8 = ByteBuffer(bytes: eight)
        #expect(try ReservationReleaseData(decoding: &b8).currentKey == 0xDEAD_BEEF)
        var b16 = ByteBuffer(bytes: eight + [UInt8](repeating: 0x55, count: 8))  // older Linux hosts: 16 bytes
        #expect(try ReservationReleaseData(decoding: &b16).currentKey == 0xDEAD_BEEF)
        #expect(b16.readableBytes == 0)
        #expect(Self.bytes { ReservationReleaseData(currentKey: 0xDEAD_BEEF).encode(into: &$0) } == eight)
        var b7 = ByteBuffer(bytes: Array(eight.prefix(7)))
        #expect(throws: NVMeWireError.self) { try ReservationReleaseData(decoding: &b7) }
    }

    @Test func reportCommandFields() {
        let r = ReservationReportCommand(cdw10: 0x3FF, cdw11: 1)
        #expect(r.lengthInBytes == 4096)
        #expect(r.extendedDataStructure)
        #expect(!ReservationReportCommand(cdw10: 0x3FF, cdw11: 0).extendedDataStructure)
        let sqe = ReservationReportCommand(lengthInBytes: 192).submissionQueueEntry(namespaceID: 1)
        #expect(sqe.opcode == 0x0E)
        #expect(sqe.cdw10 == 47)
        #expect(sqe.cdw11 == 1)
        #expect(sqe.dataPointer.length == 192)
    }

    static let hostA = HostIdentifier(bytes: Array(0xA0...0xAF))
    static let hostB = HostIdentifier(bytes: Array(0xB0...0xBF))
    static let status = ReservationStatus(
        generation: 0x1122_3344, type: .exclusiveAccess, persistThroughPowerLoss: true,
        registrants: [
            .init(controllerID: 0xFFFF, holdsReservation: true, key: 0x0102_0304_0506_0708, hostID: hostA),
            .init(controllerID: 0x0010, holdsReservation: false, key: 0xB2, hostID: hostB),
        ])

    /// The extended structure written out by hand: a 64-byte header, then 64 bytes per registrant.
    static let extendedBytes: [UInt8] = {
        var header = [UInt8](repeating: 0, count: 64)
        header[0] = 0x44; header[1] = 0x33; header[2] = 0x22; header[3] = 0x11  // GEN
        header[4] = 0x02                                                       // RTYPE
        header[5] = 0x02; header[6] = 0x00                                     // REGCTL
        header[9] = 0x01                                                       // PTPLS
        var a = [UInt8](repeating: 0, count: 64)
        a[0] = 0xFF; a[1] = 0xFF                                               // CNTLID
        a[2] = 0x01                                                            // RCSTS: holder
        a.replaceSubrange(8..<16, with: [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])  // RKEY
        a.replaceSubrange(16..<32, with: Array(0xA0...0xAF))                   // HOSTID
        var b = [UInt8](repeating: 0, count: 64)
        b[0] = 0x10; b[1] = 0x00
        b[2] = 0x00
        b[8] = 0xB2
        b.replaceSubrange(16..<32, with: Array(0xB0...0xBF))
        return header + a + b
    }()

    @Test func extendedStatusEncodesByteForByte() {
        #expect(Self.status.extendedSize == 192)
        #expect(Self.bytes { Self.status.encodeExtended(into: &$0, length: 4096) } == Self.extendedBytes)
        // Truncated to NUMD: exactly that many bytes, REGCTL still 2.
        #expect(Self.bytes { Self.status.encodeExtended(into: &$0, length: 100) } == Array(Self.extendedBytes.prefix(100)))
        #expect(Self.bytes { Self.status.encodeExtended(into: &$0, length: 64) } == Array(Self.extendedBytes.prefix(64)))
    }

    @Test func extendedStatusDecodes() throws {
        var full = ByteBuffer(bytes: Self.extendedBytes)
        let decoded = try ReservationStatus(decodingExtended: &full)
        #expect(decoded == Self.status)
        #expect(decoded.type == .exclusiveAccess)
        // Truncated after one entry: one registrant decoded, REGCTL says 2.
        var truncated = ByteBuffer(bytes: Array(Self.extendedBytes.prefix(64 + 64 + 10)))
        let partial = try ReservationStatus(decodingExtended: &truncated)
        #expect(partial.registrantCount == 2)
        #expect(partial.registrants == [Self.status.registrants[0]])
        var headerOnly = ByteBuffer(bytes: Array(Self.extendedBytes.prefix(63)))
        #expect(throws: NVMeWireError.self) { try ReservationStatus(decodingExtended: &headerOnly) }
        // No reservation: RTYPE 0.
        let none = ReservationStatus(generation: 0, type: nil, persistThroughPowerLoss: false, registrants: [])
        #expect(Self.bytes { none.encodeExtended(into: &$0, length: 64) } == [UInt8](repeating: 0, count: 64))
    }

    @Test func standardStatusDecodes() throws {
        var header = [UInt8](repeating: 0, count: 24)
        header[0] = 0x05                   // GEN 5
        header[4] = 0x01                   // RTYPE 1
        header[5] = 0x01                   // REGCTL 1
        var entry = [UInt8](repeating: 0, count: 24)
        entry[0] = 0x34; entry[1] = 0x12   // CNTLID
        entry[2] = 0x01                    // RCSTS
        entry[8] = 0x77                    // HOSTID (64-bit)
        entry[16] = 0x99                   // RKEY
        var b = ByteBuffer(bytes: header + entry)
        let s = try ReservationStatus(decodingStandard: &b)
        #expect(s.generation == 5)
        #expect(s.type == .writeExclusive)
        #expect(s.registrants == [.init(controllerID: 0x1234, holdsReservation: true, key: 0x99, hostID: HostIdentifier(low: 0x77, high: 0))])
    }

    @Test func notificationLogPage() throws {
        let page = ReservationNotificationLogPage(count: 0x0102, type: .registrationPreempted, availableCount: 3, namespaceID: 7)
        var expected = [UInt8](repeating: 0, count: 64)
        expected[0] = 0x02; expected[1] = 0x01   // Log Page Count
        expected[8] = 0x01                       // type: Registration Preempted
        expected[9] = 0x03                       // available
        expected[12] = 0x07                      // NSID
        #expect(Self.bytes { page.encode(into: &$0) } == expected)
        var b = ByteBuffer(bytes: expected)
        #expect(try ReservationNotificationLogPage(decoding: &b) == page)
        #expect(ReservationNotificationLogPage.NoticeType.reservationReleased.rawValue == 2)
        #expect(ReservationNotificationLogPage.NoticeType.reservationPreempted.rawValue == 3)
    }

    @Test func capabilitiesTypesAndPersistenceFeature() {
        #expect(ReservationCapabilities.all.rawValue == 0xFF)
        #expect(ReservationCapabilities(type: .writeExclusive).rawValue == 0x02)
        #expect(ReservationCapabilities(type: .exclusiveAccessAllRegistrants).rawValue == 0x40)
        #expect(ReservationCapabilities.persistThroughPowerLoss.rawValue == 0x01)
        #expect(ReservationCapabilities.ignoreExistingKey13.rawValue == 0x80)
        #expect(ReservationType.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6])
        #expect(ReservationType(rawValue: 0) == nil)
        #expect(ReservationType(rawValue: 7) == nil)
        #expect(ReservationPersistenceFeature(dword: 0xFFFF_FFFE).persistThroughPowerLoss == false)
        #expect(ReservationPersistenceFeature(dword: 1).persistThroughPowerLoss)
        #expect(ReservationPersistenceFeature(persistThroughPowerLoss: true).dword == 1)
        #expect(FeatureIdentifier.reservationPersistence.rawValue == 0x83)
        #expect(NVMeStatus.reservationConflict.wire == 0x8106)
        #expect(NVMeStatus.hostIdentifierInconsistentFormat.wire == 0x8030)
        #expect(NVMeStatus.abortedPreempt.wire == 0x0036)
    }
}
