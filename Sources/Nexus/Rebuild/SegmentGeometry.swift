/// How a device of `blockCount` blocks of `blockSize` bytes divides into rebuild segments of
/// `segmentBytes`: segment `i` holds blocks `i*segmentBlocks ..< min((i+1)*segmentBlocks, blockCount)`,
/// so the last segment is short when the block count is not a multiple of the segment.
/// The one mapping from LBAs to segment indexes shared by host writes (``SegmentLocks``, the
/// dirty-segment log) and rebuild copies.
public struct SegmentGeometry: Hashable, Sendable, CustomStringConvertible {
    /// Bytes per segment (a multiple of `blockSize`).
    public let segmentBytes: Int
    /// Bytes per logical block.
    public let blockSize: Int
    /// Blocks of the device the segments cover.
    public let blockCount: UInt64

    /// - Precondition: `blockSize` and `segmentBytes` are positive and `segmentBytes` is a multiple
    ///   of `blockSize` (true for any ``RebuildLimits`` segment and a 512…65536-byte block).
    public init(segmentBytes: Int, blockSize: Int, blockCount: UInt64) {
        precondition(blockSize > 0 && segmentBytes >= blockSize && segmentBytes % blockSize == 0,
                     "segment of \(segmentBytes) B is not a multiple of the \(blockSize) B block")
        self.segmentBytes = segmentBytes
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    /// Blocks per (full) segment.
    public var segmentBlocks: UInt64 { UInt64(segmentBytes / blockSize) }

    /// Number of segments, the last possibly short; 0 for an empty device.
    public var segmentCount: UInt64 {
        blockCount / segmentBlocks + (blockCount % segmentBlocks == 0 ? 0 : 1)
    }

    /// The segments that the blocks `lba ..< lba + blocks` touch, or nil when `blocks` is 0.
    /// The range is not clamped to the device: callers validate LBAs first.
    public func segments(lba: UInt64, blocks: UInt64) -> ClosedRange<UInt64>? {
        guard blocks > 0 else { return nil }
        let (last, overflow) = lba.addingReportingOverflow(blocks - 1)
        precondition(!overflow, "block range \(lba)+\(blocks) overflows")
        return (lba / segmentBlocks)...(last / segmentBlocks)
    }

    /// The segments that the block range touches, or nil when it is empty.
    public func segments(blocks range: Range<UInt64>) -> ClosedRange<UInt64>? {
        segments(lba: range.lowerBound, blocks: UInt64(range.count))
    }

    /// The blocks of `segment` (short for the last segment).
    /// - Precondition: `segment < segmentCount`.
    public func blocks(of segment: UInt64) -> Range<UInt64> {
        precondition(segment < segmentCount, "segment \(segment) beyond \(segmentCount) segments")
        let start = segment * segmentBlocks
        return start..<min(start + segmentBlocks, blockCount)
    }

    public var description: String {
        "\(segmentCount) segments of \(segmentBytes) B over \(blockCount) blocks of \(blockSize) B"
    }
}
