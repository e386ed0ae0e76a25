import NIOCore

/// The vendor-specific log page C0h "Halyard allocated ranges" of a replica's namespace (NVMe base
/// spec 2.0 §5.16.1: LIDs C0h–FFh are vendor specific; layout in docs/notes/nexus-plan.md):
/// an 8-byte little-endian count N, then N entries of {starting LBA u64, block count u64}, all
/// little-endian, ascending and disjoint. Blocks outside the ranges read as zeroes, so a rebuild
/// may skip them. Read with Get Log Page (NSID = the namespace), paged with LPOL/LPOU and NUMD like
/// any log page; a namespace that cannot tell answers Invalid Log Page (SCT 1h, SC 09h).
public struct AllocatedRangesLogPage: Hashable, Sendable {
    /// Block ranges, ascending and disjoint, none empty.
    public var ranges: [Range<UInt64>]

    /// The count field.
    public static let headerSize = 8
    /// One {start, count} entry.
    public static let entrySize = 16

    public init(ranges: [Range<UInt64>]) {
        self.ranges = ranges
    }

    /// Bytes the whole page takes: 8 + 16·N.
    public var encodedSize: Int { Self.encodedSize(rangeCount: ranges.count) }

    public static func encodedSize(rangeCount: Int) -> Int { headerSize + entrySize * rangeCount }

    /// Writes the whole page (no padding).
    public func encode(into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: encodedSize)
        buffer.writeInteger(UInt64(ranges.count), endianness: .little)
        for range in ranges {
            Self.encodeEntry(range, into: &buffer)
        }
    }

    private static func encodeEntry(_ range: Range<UInt64>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(range.lowerBound, endianness: .little)
        buffer.writeInteger(range.upperBound - range.lowerBound, endianness: .little)
    }

    /// What a Get Log Page with this LPO and length returns: exactly `length` bytes of the page from
    /// byte `offset`, zero-padded past its end. Encodes only the entries the window touches, so
    /// paging through a large map costs O(page), not O(map), per command.
    public func encodeRange(offset: UInt64, length: Int) -> ByteBuffer {
        precondition(length >= 0, "negative length")
        var out = ByteBufferAllocator().buffer(capacity: length)
        let total = UInt64(encodedSize)
        if offset < total, length > 0 {
            let (wanted, overflow) = offset.addingReportingOverflow(UInt64(length))
            let end = overflow ? total : min(total, wanted)
            // Encode from the start of the entry (or header) holding `offset` up to `end`.
            var chunk = ByteBufferAllocator().buffer(capacity: Int(end - offset) + 2 * Self.entrySize)
            let chunkStart: UInt64
            var index: Int
            if offset < UInt64(Self.headerSize) {
                chunkStart = 0
                index = 0
                chunk.writeInteger(UInt64(ranges.count), endianness: .little)
            } else {
                index = Int((offset - UInt64(Self.headerSize)) / UInt64(Self.entrySize))
                chunkStart = UInt64(Self.headerSize) + UInt64(index) * UInt64(Self.entrySize)
            }
            while chunkStart + UInt64(chunk.readableBytes) < end, index < ranges.count {
                Self.encodeEntry(ranges[index], into: &chunk)
                index += 1
            }
            let skip = Int(offset - chunkStart)
            out.writeImmutableBuffer(chunk.getSlice(at: chunk.readerIndex + skip, length: Int(end - offset))!)
        }
        out.writeZeros(length - out.readableBytes)
        return out
    }

    /// The count field of a page (or of its first bytes); throws `.truncated` under 8 bytes.
    public static func decodeCount(_ buffer: ByteBuffer) throws(NVMeWireError) -> UInt64 {
        guard let count = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt64.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "allocated ranges log page needs 8 bytes, have \(buffer.readableBytes)")
        }
        return count
    }

    /// Reads the count and N entries (bytes after them, such as zero padding, are left unread).
    /// Throws `.truncated` when fewer bytes than the count says are readable, and `.invalidField`
    /// for an empty entry, one that wraps past 2^64, or entries out of order or overlapping; on
    /// error nothing is consumed.
    public init(decoding input: inout ByteBuffer) throws(NVMeWireError) {
        var buffer = input
        let count = try Self.decodeCount(buffer)
        buffer.moveReaderIndex(forwardBy: Self.headerSize)
        guard count <= UInt64(buffer.readableBytes / Self.entrySize) else {
            throw NVMeWireError(.truncated, offset: Self.headerSize + buffer.readableBytes,
                                "allocated ranges log page says \(count) entries, has bytes for \(buffer.readableBytes / Self.entrySize)")
        }
        var ranges: [Range<UInt64>] = []
        ranges.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let at = Self.headerSize + index * Self.entrySize
            let start = buffer.readInteger(endianness: .little, as: UInt64.self)!
            let blocks = buffer.readInteger(endianness: .little, as: UInt64.self)!
            let (end, overflow) = start.addingReportingOverflow(blocks)
            guard blocks > 0, !overflow else {
                throw NVMeWireError(.invalidField, offset: at, "allocated range \(index): \(blocks) blocks at \(start)")
            }
            if let last = ranges.last, start < last.upperBound {
                throw NVMeWireError(.invalidField, offset: at, "allocated range \(index) at \(start) is not after the previous one, which ends at \(last.upperBound)")
            }
            ranges.append(start..<end)
        }
        self.ranges = ranges
        input = buffer
    }
}
