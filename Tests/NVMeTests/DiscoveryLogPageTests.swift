import NIOCore
import NVMe
import Testing

@Suite struct DiscoveryLogPageTests {
    static let page = DiscoveryLogPage(generationCounter: 0x0102_0304_0506_0708, entries: [
        DiscoveryLogEntry(
            subsystemType: .currentDiscoverySubsystem, transportRequirements: 0x02, portID: 1,
            transportServiceID: "8009", subsystemNQN: "nqn.2014-08.org.nvmexpress.discovery",
            transportAddress: "127.0.0.1"),
        DiscoveryLogEntry(
            addressFamily: .ipv6, subsystemType: .nvmSubsystem, transportRequirements: 0x06, portID: 0x0203,
            transportServiceID: "4420", subsystemNQN: "nqn.2026-01.io.halyard:sub1", transportAddress: "::1"),
    ])

    @Test func headerLayout() {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        #expect(buffer.readableBytes == 3 * 1024)
        #expect(Self.page.encodedSize == 3 * 1024)
        #expect(buffer.getBytes(at: 0, length: 18) == [8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(buffer.getBytes(at: 18, length: 1024 - 18)!.allSatisfy { $0 == 0 })
    }

    @Test func entryLayout() {
        var buffer = ByteBuffer()
        Self.page.entries[1].encode(into: &buffer)
        #expect(buffer.readableBytes == 1024)
        let bytes = buffer.getBytes(at: 0, length: 1024)!
        // TRTYPE 3, ADRFAM 2, SUBTYPE 2, TREQ 6, PORTID 0x0203, CNTLID FFFF, ASQSZ 32, EFLAGS 0.
        #expect(Array(bytes[0..<12]) == [3, 2, 2, 6, 0x03, 0x02, 0xFF, 0xFF, 32, 0, 0, 0])
        #expect(bytes[12..<32].allSatisfy { $0 == 0 })
        #expect(Array(bytes[32..<64]) == Array("4420".utf8) + [UInt8](repeating: 0, count: 28))
        #expect(bytes[64..<256].allSatisfy { $0 == 0 })
        let nqn = Array("nqn.2026-01.io.halyard:sub1".utf8)
        #expect(Array(bytes[256..<256 + nqn.count]) == nqn)
        #expect(bytes[(256 + nqn.count)..<512].allSatisfy { $0 == 0 })
        #expect(Array(bytes[512..<516]) == Array("::1".utf8) + [0])
        #expect(bytes[768..<1024].allSatisfy { $0 == 0 })  // TSAS: SECTYPE 0
    }

    @Test func tsasSecurityType() throws {
        var entry = Self.page.entries[0]
        entry.tcpSecurityType = 1
        var buffer = ByteBuffer()
        entry.encode(into: &buffer)
        #expect(buffer.getInteger(at: 768, as: UInt8.self) == 1)
        #expect(try DiscoveryLogEntry(decoding: &buffer) == entry)
        entry.tcpSecurityType = 0
        #expect(entry.transportSpecificAddressSubtype.isEmpty)
    }

    @Test func roundTrips() throws {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        buffer.writeBytes([0xAA])
        let decoded = try DiscoveryLogPage(decoding: &buffer)
        #expect(decoded == Self.page)
        #expect(decoded.numberOfRecords == 2)
        #expect(buffer.readableBytes == 1)
        #expect(decoded.entries[0].controllerID == 0xFFFF)
        #expect(decoded.entries[0].adminMaxSubmissionQueueSize == 32)
    }

    @Test func encodeRangeServesLibnvmeReads() throws {
        var whole = ByteBuffer()
        Self.page.encode(into: &whole)
        let wholeBytes = whole.getBytes(at: 0, length: whole.readableBytes)!

        // 1. the 20-byte header read at LPO 0.
        let header = Self.page.encodeRange(offset: 0, length: 20)
        #expect(header.readableBytes == 20)
        #expect(Array(header.readableBytesView) == Array(wholeBytes[0..<20]))
        let fields = try DiscoveryLogPage.decodeHeader(header)
        #expect(fields.generationCounter == 0x0102_0304_0506_0708)
        #expect(fields.numberOfRecords == 2)
        #expect(fields.recordFormat == 0)

        // 2. a read starting mid-header at LPO 20.
        let mid = Self.page.encodeRange(offset: 20, length: 1028)
        #expect(mid.readableBytes == 1028)
        #expect(Array(mid.readableBytesView) == Array(wholeBytes[20..<1048]))

        // 3. the entries at LPO 1024.
        let entries = Self.page.encodeRange(offset: 1024, length: 2048)
        #expect(Array(entries.readableBytesView) == Array(wholeBytes[1024..<3072]))
        #expect(entries.getInteger(at: 0, as: UInt8.self) == 3)  // TRTYPE of entry 0
        #expect(entries.getInteger(at: 2, as: UInt8.self) == 3)  // SUBTYPE current discovery

        // 4. a 4 KiB read at LPO 1024 runs past the end: zero-padded to exactly 4096.
        let padded = Self.page.encodeRange(offset: 1024, length: 4096)
        #expect(padded.readableBytes == 4096)
        #expect(Array(padded.readableBytesView.prefix(2048)) == Array(wholeBytes[1024..<3072]))
        #expect(padded.readableBytesView.dropFirst(2048).allSatisfy { $0 == 0 })

        // 5. wholly past the end: all zeros.
        let beyond = Self.page.encodeRange(offset: 8192, length: 64)
        #expect(beyond.readableBytes == 64)
        #expect(beyond.readableBytesView.allSatisfy { $0 == 0 })
    }

    @Test func truncatedThrows() {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        var short = buffer.getSlice(at: 0, length: 3 * 1024 - 1)!
        do {
            _ = try DiscoveryLogPage(decoding: &short)
            Issue.record("expected truncated")
        } catch {
            #expect(error.kind == .truncated)
        }
        #expect(short.readableBytes == 3 * 1024 - 1)
        var tiny = ByteBuffer(bytes: [1, 2, 3])
        #expect(throws: NVMeWireError.self) { try DiscoveryLogPage.decodeHeader(tiny) }
        #expect(throws: NVMeWireError.self) { try DiscoveryLogPage(decoding: &tiny) }
        var entryShort = ByteBuffer(bytes: [UInt8](repeating: 0, count: 1023))
        #expect(throws: NVMeWireError.self) { try DiscoveryLogEntry(decoding: &entryShort) }
    }
}
