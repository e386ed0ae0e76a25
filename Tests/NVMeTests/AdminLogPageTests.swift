import NIOCore
import NVMe
import Testing

@Suite struct ErrorLogEntryTests {
    static let entry = ErrorLogEntry(
        errorCount: 0x0102_0304_0506_0708, submissionQueueID: 0x1112, commandID: 0x1314, statusField: 0x1516,
        parameterErrorLocation: 0x1718, lba: 0x2122_2324_2526_2728, namespaceID: 0x3132_3334,
        vendorSpecificInformationAvailable: 0x41, transportType: 3, commandSetIndicator: 0x42, opcode: 0x43,
        commandSpecificInformation: 0x5152_5354_5556_5758, transportTypeSpecificInformation: 0x6162,
        logPageVersion: 1)

    @Test func encodesAtSpecOffsets() {
        var buffer = ByteBuffer()
        Self.entry.encode(into: &buffer)
        #expect(buffer.readableBytes == 64)
        var expected = [UInt8](repeating: 0, count: 64)
        expected.replaceSubrange(0..<8, with: [8, 7, 6, 5, 4, 3, 2, 1])
        expected.replaceSubrange(8..<16, with: [0x12, 0x11, 0x14, 0x13, 0x16, 0x15, 0x18, 0x17])
        expected.replaceSubrange(16..<24, with: [0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21])
        expected.replaceSubrange(24..<32, with: [0x34, 0x33, 0x32, 0x31, 0x41, 3, 0x42, 0x43])
        expected.replaceSubrange(32..<42, with: [0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52, 0x51, 0x62, 0x61])
        expected[63] = 1
        #expect(buffer.getBytes(at: 0, length: 64) == expected)
    }

    @Test func roundTripsAndRejectsShortInput() throws {
        var buffer = ByteBuffer()
        Self.entry.encode(into: &buffer)
        ErrorLogEntry().encode(into: &buffer)
        #expect(try ErrorLogEntry(decoding: &buffer) == Self.entry)
        #expect(try ErrorLogEntry(decoding: &buffer) == ErrorLogEntry())
        #expect(buffer.readableBytes == 0)
        var short = ByteBuffer(bytes: [UInt8](repeating: 0, count: 63))
        #expect(throws: NVMeWireError.self) { try ErrorLogEntry(decoding: &short) }
    }
}

@Suite struct SMARTLogTests {
    static let log = SMARTLog(
        criticalWarning: 0x01, compositeTemperature: 0x0136, availableSpare: 100, availableSpareThreshold: 10,
        percentageUsed: 3, enduranceGroupCriticalWarningSummary: 0x04,
        dataUnitsRead: 0x0A01, dataUnitsWritten: 0x0A02, hostReadCommands: 0x0A03, hostWriteCommands: 0x0A04,
        controllerBusyTime: 0x0A05, powerCycles: 0x0A06, powerOnHours: 0x0A07, unsafeShutdowns: 0x0A08,
        mediaErrors: 0x0A09, numberOfErrorLogEntries: 0x0A0A,
        warningCompositeTemperatureTime: 0x1234_5678, criticalCompositeTemperatureTime: 0x9ABC_DEF0)

    @Test func encodesAtSpecOffsets() {
        var buffer = ByteBuffer()
        Self.log.encode(into: &buffer)
        #expect(buffer.readableBytes == 512)
        var expected = [UInt8](repeating: 0, count: 512)
        expected.replaceSubrange(0..<7, with: [0x01, 0x36, 0x01, 100, 10, 3, 0x04])
        for (i, offset) in stride(from: 32, through: 176, by: 16).enumerated() {
            expected[offset] = UInt8(i + 1)
            expected[offset + 1] = 0x0A
        }
        expected.replaceSubrange(192..<200, with: [0x78, 0x56, 0x34, 0x12, 0xF0, 0xDE, 0xBC, 0x9A])
        #expect(buffer.getBytes(at: 0, length: 512) == expected)
    }

    @Test func roundTripsSaturatesAndRejectsShortInput() throws {
        var buffer = ByteBuffer()
        Self.log.encode(into: &buffer)
        #expect(try SMARTLog(decoding: &buffer) == Self.log)
        #expect(buffer.readableBytes == 0)

        var big = ByteBuffer()
        SMARTLog(powerOnHours: 7).encode(into: &big)
        big.setInteger(UInt8(1), at: 128 + 8)  // high half of Power On Hours
        #expect(try SMARTLog(decoding: &big).powerOnHours == .max)

        var short = ByteBuffer(bytes: [UInt8](repeating: 0, count: 511))
        #expect(throws: NVMeWireError.self) { try SMARTLog(decoding: &short) }
    }
}

@Suite struct ChangedNamespaceListTests {
    @Test func encodesListAndRoundTrips() throws {
        let list = ChangedNamespaceList(namespaceIDs: [2, 5])
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        #expect(buffer.getBytes(at: 0, length: 12) == [2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        #expect(try ChangedNamespaceList(decoding: &buffer) == list)
        #expect(!list.isOverflow)
    }

    @Test func exactly1024FitsAndMoreOverflows() throws {
        let full = ChangedNamespaceList(namespaceIDs: Array(1...1024))
        var buffer = ByteBuffer()
        full.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        #expect(try ChangedNamespaceList(decoding: &buffer) == full)

        let overflow = ChangedNamespaceList(namespaceIDs: Array(1...1025))
        #expect(overflow.isOverflow)
        var overflowed = ByteBuffer()
        overflow.encode(into: &overflowed)
        #expect(overflowed.readableBytes == 4096)
        #expect(overflowed.getBytes(at: 0, length: 8) == [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        #expect(overflowed.getBytes(at: 4, length: 4092)!.allSatisfy { $0 == 0 })
        let decoded = try ChangedNamespaceList(decoding: &overflowed)
        #expect(decoded.namespaceIDs == [ChangedNamespaceList.overflowMarker])
        #expect(decoded.isOverflow)
    }

    @Test func truncatedThrows() {
        var buffer = ByteBuffer(bytes: [1, 0, 0, 0])
        #expect(throws: NVMeWireError.self) { try ChangedNamespaceList(decoding: &buffer) }
    }
}

@Suite struct GetLogPageCommandFieldsTests {
    @Test func parsesDwords() {
        // LID 0Ch, LSP 1 (RGO), RAE, NUMDL 0x03FF; NUMDU 0x0001, LSI 0x00AB; LPO 0x1_0000_0400; CSI 2, UUID idx 5, OT.
        let cdw10: UInt32 = 0x03FF_0000 | 1 << 15 | 0x01 << 8 | 0x0C
        let fields = GetLogPageCommandFields(
            cdw10: cdw10, cdw11: 0x00AB_0001, cdw12: 0x0000_0400, cdw13: 0x0000_0001, cdw14: 0x0280_0005)
        #expect(fields.logPageIdentifier == 0x0C)
        #expect(fields.logPage == .ana)
        #expect(fields.logSpecificField == 1)
        #expect(fields.retainAsynchronousEvent)
        #expect(fields.numberOfDwords == 0x0001_03FF)
        #expect(fields.lengthInBytes == (0x0001_03FF + 1) * 4)
        #expect(fields.logSpecificIdentifier == 0x00AB)
        #expect(fields.offset == 0x1_0000_0400)
        #expect(fields.commandSetIdentifier == 2)
        #expect(fields.uuidIndex == 5)
        #expect(fields.offsetIsIndex)
        #expect(fields.cdw10 == cdw10)
        #expect(fields.cdw11 == 0x00AB_0001)
        #expect(fields.cdw12 == 0x0000_0400)
        #expect(fields.cdw13 == 1)
        #expect(fields.cdw14 == 0x0280_0005)
    }

    @Test func linuxStyleRequests() {
        // Linux reads 4096 bytes of the discovery log: NUMDL = 1023.
        let discovery = GetLogPageCommandFields(cdw10: 1023 << 16 | 0x70, cdw11: 0, cdw12: 0, cdw13: 0, cdw14: 0)
        #expect(discovery.logPage == .discovery)
        #expect(discovery.lengthInBytes == 4096)
        #expect(!discovery.retainAsynchronousEvent)
        // libnvme's 20-byte header read: NUMD 4.
        let header = GetLogPageCommandFields(logPage: .discovery, lengthInBytes: 20)
        #expect(header.cdw10 == 4 << 16 | 0x70)
        #expect(header.cdw11 == 0)
        #expect(GetLogPageCommandFields(logPageIdentifier: 0x42, lengthInBytes: 8).logPage == nil)
    }

    @Test func windowPadsAndSlices() {
        let page = ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(GetLogPageCommandFields.window(of: page, offset: 0, length: 4).readableBytesView.elementsEqual([1, 2, 3, 4]))
        #expect(GetLogPageCommandFields.window(of: page, offset: 4, length: 8).readableBytesView.elementsEqual([5, 6, 7, 8, 0, 0, 0, 0]))
        #expect(GetLogPageCommandFields.window(of: page, offset: 100, length: 4).readableBytesView.elementsEqual([0, 0, 0, 0]))
        let fields = GetLogPageCommandFields(logPage: .smart, lengthInBytes: 4, offset: 2)
        #expect(fields.window(of: page).readableBytesView.elementsEqual([3, 4, 5, 6]))
    }
}
