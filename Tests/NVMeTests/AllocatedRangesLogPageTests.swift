import NIOCore
import NVMe
import Testing

@Suite struct AllocatedRangesLogPageTests {
    static let page = AllocatedRangesLogPage(ranges: [0..<8, 0x100..<0x180, 0x1_0000_0000..<0x1_0000_0001])

    @Test func encodesCountThenStartAndBlockCountLittleEndian() {
        var buffer = ByteBuffer()
        Self.page.encode(into: &buffer)
        #expect(buffer.readableBytes == 8 + 3 * 16)
        #expect(Self.page.encodedSize == buffer.readableBytes)
        var expected: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0]
        expected += [0, 0, 0, 0, 0, 0, 0, 0] + [8, 0, 0, 0, 0, 0, 0, 0]
        expected += [0, 1, 0, 0, 0, 0, 0, 0] + [0x80, 0, 0, 0, 0, 0, 0, 0]
        expected += [0, 0, 0, 0, 1, 0, 0, 0] + [1, 0, 0, 0, 0, 0, 0, 0]
        #expect(buffer.getBytes(at: 0, length: buffer.readableBytes) == expected)
        #expect(LogPageIdentifier.allocatedRanges.rawValue == 0xC0)
    }

    @Test func roundTripsLeavingPaddingUnread() throws {
        var buffer = Self.page.encodeRange(offset: 0, length: 4096)
        #expect(buffer.readableBytes == 4096)
        let decoded = try AllocatedRangesLogPage(decoding: &buffer)
        #expect(decoded == Self.page)
        #expect(buffer.readableBytes == 4096 - 56)
        var empty = AllocatedRangesLogPage(ranges: []).encodeRange(offset: 0, length: 8)
        #expect(try AllocatedRangesLogPage(decoding: &empty).ranges.isEmpty)
    }

    @Test func everyWindowMatchesTheWholePage() {
        let ranges = (UInt64(0)..<40).map { (i: UInt64) -> Range<UInt64> in i * 100..<i * 100 + i % 7 + 1 }
        let page = AllocatedRangesLogPage(ranges: ranges)
        var whole = ByteBuffer()
        page.encode(into: &whole)
        for offset in stride(from: UInt64(0), through: UInt64(whole.readableBytes + 8), by: 4) {
            for length in [4, 8, 12, 16, 20, 64, 100, 1024] {
                let window = page.encodeRange(offset: offset, length: length)
                #expect(window == GetLogPageCommandFields.window(of: whole, offset: offset, length: length),
                        "offset \(offset) length \(length)")
            }
        }
        #expect(page.encodeRange(offset: .max - 3, length: 8).readableBytesView.allSatisfy { $0 == 0 })
    }

    @Test func pagedReadsReassembleThePage() throws {
        let ranges = (UInt64(0)..<1000).map { (i: UInt64) -> Range<UInt64> in i * 10..<i * 10 + 3 }
        let page = AllocatedRangesLogPage(ranges: ranges)
        var assembled = ByteBuffer()
        var offset: UInt64 = 0
        let total = page.encodedSize
        while assembled.readableBytes < total {
            var part = page.encodeRange(offset: offset, length: min(4096, total - Int(offset)))
            offset += UInt64(part.readableBytes)
            assembled.writeBuffer(&part)
        }
        #expect(try AllocatedRangesLogPage.decodeCount(assembled) == 1000)
        #expect(try AllocatedRangesLogPage(decoding: &assembled).ranges == ranges)
    }

    @Test func rejectsTruncatedEmptyWrappingAndUnorderedEntries() {
        func bytes(_ count: UInt64, _ entries: [(UInt64, UInt64)]) -> ByteBuffer {
            var b = ByteBuffer()
            b.writeInteger(count, endianness: .little)
            for (start, blocks) in entries {
                b.writeInteger(start, endianness: .little)
                b.writeInteger(blocks, endianness: .little)
            }
            return b
        }
        var short = ByteBuffer(bytes: [1, 0, 0])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &short) }
        var truncated = bytes(2, [(0, 1)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &truncated) }
        #expect(truncated.readableBytes == 24, "nothing consumed on error")
        var huge = bytes(.max, [(0, 1)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &huge) }
        var empty = bytes(1, [(5, 0)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &empty) }
        var wrapping = bytes(1, [(.max, 2)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &wrapping) }
        var overlapping = bytes(2, [(0, 10), (9, 1)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &overlapping) }
        var descending = bytes(2, [(100, 1), (0, 1)])
        #expect(throws: NVMeWireError.self) { try AllocatedRangesLogPage(decoding: &descending) }
        var adjacent = bytes(2, [(0, 10), (10, 1)])
        #expect((try? AllocatedRangesLogPage(decoding: &adjacent))?.ranges == [0..<10, 10..<11])
    }
}
