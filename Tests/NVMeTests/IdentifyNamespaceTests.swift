import NIOCore
import NVMe
import Testing

@Suite struct IdentifyNamespaceTests {
    static let nguid = NGUID([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F])
    static let eui = EUI64([0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7])

    static let populated = IdentifyNamespace(
        nsze: 0x0102_0304_0506_0708, ncap: 0x1112_1314_1516_1718, nuse: 0x2122_2324_2526_2728,
        nsfeat: 0x04, flbas: 0x01, mc: 0x02, dpc: 0x03, dps: 0x05, nmic: 0x01, rescap: 0xFF, fpi: 0x80,
        dlfeat: 0x09, nawun: 0x3132, nawupf: 0x3334, nacwu: 0x3536, nabsn: 0x3738, nabo: 0x393A,
        nabspf: 0x3B3C, noiob: 0x3D3E, nvmcap: 0x4142_4344_4546_4748, anagrpid: 0x0000_0007, nsattr: 0x01,
        nvmsetid: 0x5152, endgid: 0x5354, nguid: nguid, eui64: eui,
        lbaFormats: [
            LBAFormat(metadataSize: 0, lbaDataSizeShift: 9, relativePerformance: 2),
            LBAFormat(metadataSize: 8, lbaDataSizeShift: 12, relativePerformance: 0),
        ])

    static let expectedFields: [(Int, [UInt8])] = [
        (0, [8, 7, 6, 5, 4, 3, 2, 1]), (8, [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]),
        (16, [0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21]),
        (24, [0x04]), (25, [0x01]), (26, [0x01]), (27, [0x02]), (28, [0x03]), (29, [0x05]), (30, [0x01]),
        (31, [0xFF]), (32, [0x80]), (33, [0x09]), (34, [0x32, 0x31]), (36, [0x34, 0x33]), (38, [0x36, 0x35]),
        (40, [0x38, 0x37]), (42, [0x3A, 0x39]), (44, [0x3C, 0x3B]), (46, [0x3E, 0x3D]),
        (48, [0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41]),
        (92, [7, 0, 0, 0]), (99, [1]), (100, [0x52, 0x51]), (102, [0x54, 0x53]),
        (104, nguid.bytes), (120, eui.bytes),
        (128, [0, 0, 9, 2]), (132, [8, 0, 12, 0]),
    ]

    @Test func encodesEveryFieldAtItsSpecOffsetAndZeroElsewhere() {
        var buffer = ByteBuffer()
        Self.populated.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        let bytes = buffer.getBytes(at: 0, length: 4096)!
        var covered = [Bool](repeating: false, count: 4096)
        for (offset, expected) in Self.expectedFields {
            #expect(Array(bytes[offset..<offset + expected.count]) == expected, "field at \(offset)")
            for i in offset..<offset + expected.count { covered[i] = true }
        }
        for i in 0..<4096 where !covered[i] {
            #expect(bytes[i] == 0, "byte \(i) should be zero")
        }
    }

    @Test func roundTripsAndDerivesFormat() throws {
        var buffer = ByteBuffer()
        Self.populated.encode(into: &buffer)
        let decoded = try IdentifyNamespace(decoding: &buffer)
        #expect(decoded == Self.populated)
        #expect(buffer.readableBytes == 0)
        #expect(decoded.nlbaf == 1)
        #expect(decoded.formattedLBAFormat?.dataSize == 4096)
        #expect(decoded.formattedLBAFormat?.metadataSize == 8)
    }

    @Test func allZeroPageDecodesAsInactiveNamespace() throws {
        var buffer = ByteBuffer()
        buffer.writeRepeatingByte(0, count: 4096)
        let decoded = try IdentifyNamespace(decoding: &buffer)
        #expect(decoded.ncap == 0)
        #expect(decoded.nguid.isZero && decoded.eui64.isZero)
        #expect(decoded.lbaFormats == [LBAFormat(lbaDataSizeShift: 0)])
    }

    @Test func nvmcapHighHalfSaturates() throws {
        var buffer = ByteBuffer()
        IdentifyNamespace(nvmcap: 5).encode(into: &buffer)
        #expect(buffer.getBytes(at: 56, length: 8) == [UInt8](repeating: 0, count: 8))
        buffer.setInteger(UInt8(1), at: 56)
        #expect(try IdentifyNamespace(decoding: &buffer).nvmcap == .max)
    }

    @Test func truncatedInputThrows() {
        var buffer = ByteBuffer()
        buffer.writeRepeatingByte(0, count: 4000)
        #expect(throws: NVMeWireError(.truncated, offset: 4000, "Identify Namespace data needs 4096 bytes, have 4000")) {
            try IdentifyNamespace(decoding: &buffer)
        }
    }
}

@Suite struct NamespaceIdentifierTests {
    @Test func uuidStringRoundTrips() throws {
        let text = "123e4567-e89b-12d3-a456-426614174000"
        let uuid = try #require(NamespaceUUID(string: text))
        #expect(uuid.bytes == [0x12, 0x3E, 0x45, 0x67, 0xE8, 0x9B, 0x12, 0xD3, 0xA4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00])
        #expect(uuid.description == text)
        #expect(NamespaceUUID(string: "123E4567-E89B-12D3-A456-426614174000") == uuid)
        #expect(NamespaceUUID(string: "123e4567e89b12d3a456426614174000") == nil)
        #expect(NamespaceUUID(string: "123e4567-e89b-12d3-a456-42661417400g") == nil)
    }

    @Test func hexDescriptions() {
        #expect(EUI64([0, 1, 2, 3, 0xAA, 0xBB, 0xCC, 0xFF]).description == "00010203aabbccff")
        #expect(NGUID(Array(0..<16)).description == "000102030405060708090a0b0c0d0e0f")
    }
}

@Suite struct NamespaceIdentificationDescriptorListTests {
    static let uuid = NamespaceUUID(string: "00112233-4455-6677-8899-aabbccddeeff")!

    @Test func encodesDescriptorsBackToBackThenZeros() {
        let list = NamespaceIdentificationDescriptorList(
            eui64: EUI64([1, 2, 3, 4, 5, 6, 7, 8]), nguid: NGUID(Array(0x20..<0x30)), uuid: Self.uuid,
            commandSetIdentifier: 0)
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        let bytes = buffer.getBytes(at: 0, length: 4096)!
        #expect(Array(bytes[0..<12]) == [1, 8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(bytes[12..<16]) == [2, 16, 0, 0])
        #expect(Array(bytes[16..<32]) == Array(0x20..<0x30))
        #expect(Array(bytes[32..<36]) == [3, 16, 0, 0])
        #expect(Array(bytes[36..<52]) == Self.uuid.bytes)
        #expect(Array(bytes[52..<57]) == [4, 1, 0, 0, 0])
        #expect(bytes[57...].allSatisfy { $0 == 0 })
    }

    @Test func zeroIdentifiersAreOmittedAndListRoundTrips() throws {
        let list = NamespaceIdentificationDescriptorList(nguid: NGUID(Array(1...16)), uuid: Self.uuid)
        #expect(list.descriptors.count == 3)  // no EUI64 (zero), NGUID, UUID, CSI
        #expect(list.eui64 == nil)
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        let decoded = try NamespaceIdentificationDescriptorList(decoding: &buffer)
        #expect(decoded == list)
        #expect(decoded.uuid == Self.uuid)
        #expect(decoded.commandSetIdentifier == 0)
        #expect(buffer.readableBytes == 0)
    }

    @Test func unknownTypesAreKept() throws {
        let list = NamespaceIdentificationDescriptorList(descriptors: [.other(type: 0x7E, identifier: [9, 9, 9]), .commandSetIdentifier(2)])
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        #expect(try NamespaceIdentificationDescriptorList(decoding: &buffer) == list)
    }

    @Test func wrongLengthAndTruncationThrow() {
        var bad = ByteBuffer()
        bad.writeBytes([2, 8, 0, 0])  // NGUID claiming 8 bytes
        bad.writeRepeatingByte(0xAB, count: 8)
        bad.writeRepeatingByte(0, count: 4096 - 12)
        #expect(throws: NVMeWireError.self) { try NamespaceIdentificationDescriptorList(decoding: &bad) }

        var short = ByteBuffer()
        short.writeRepeatingByte(0, count: 100)
        do {
            _ = try NamespaceIdentificationDescriptorList(decoding: &short)
            Issue.record("expected truncated")
        } catch {
            #expect(error.kind == .truncated)
        }
    }
}

@Suite struct ActiveNamespaceListTests {
    @Test func encodesAscendingZeroTerminated() throws {
        let list = ActiveNamespaceList(activeNamespaceIDs: [9, 3, 1, 3, 7, 0xFFFF_FFFF], startingAfter: 1)
        #expect(list.namespaceIDs == [3, 7, 9])
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        #expect(buffer.getBytes(at: 0, length: 16) == [3, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0])
        #expect(try ActiveNamespaceList(decoding: &buffer) == list)
    }

    @Test func capsAt1024() throws {
        let list = ActiveNamespaceList(activeNamespaceIDs: 1...2000, startingAfter: 0)
        #expect(list.namespaceIDs.count == 1024)
        #expect(list.namespaceIDs.last == 1024)
        var buffer = ByteBuffer()
        list.encode(into: &buffer)
        #expect(buffer.readableBytes == 4096)
        #expect(buffer.getInteger(at: 4092, endianness: .little, as: UInt32.self) == 1024)
        #expect(try ActiveNamespaceList(decoding: &buffer).namespaceIDs.count == 1024)
    }

    @Test func truncatedThrows() {
        var buffer = ByteBuffer()
        buffer.writeRepeatingByte(0, count: 4092)
        #expect(throws: NVMeWireError.self) { try ActiveNamespaceList(decoding: &buffer) }
    }
}
