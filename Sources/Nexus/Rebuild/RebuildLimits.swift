/// How hard a rebuild may push: the copy unit, how many units are copied at once and an optional
/// byte rate. A value type; every instance is valid (the initializer checks the ranges).
public struct RebuildLimits: Hashable, Sendable, CustomStringConvertible {
    /// The smallest segment: 64 KiB (Mayastor's copy unit).
    public static let minimumSegmentBytes = 64 << 10
    /// The largest segment: 64 MiB (a segment is read into memory whole, `concurrency` at a time).
    public static let maximumSegmentBytes = 64 << 20
    /// The accepted values of ``concurrency``.
    public static let concurrencyRange = 1...64

    /// 1 MiB segments, 4 at once, no rate limit.
    public static let `default` = RebuildLimits(uncheckedSegmentBytes: 1 << 20, concurrency: 4, bytesPerSecond: nil)

    /// Bytes per segment: the unit of copying, of the dirty-segment log and of ``SegmentLocks``.
    /// A power of two in ``minimumSegmentBytes``...``maximumSegmentBytes``.
    public let segmentBytes: Int
    /// Segments copied at once by one job (1...64).
    public let concurrency: Int
    /// The most bytes a job copies per second, or nil for no limit. Never 0.
    public let bytesPerSecond: UInt64?

    /// - Throws: ``RebuildLimitsError`` naming the first value out of range.
    public init(segmentBytes: Int = 1 << 20, concurrency: Int = 4, bytesPerSecond: UInt64? = nil) throws(RebuildLimitsError) {
        guard segmentBytes >= Self.minimumSegmentBytes, segmentBytes <= Self.maximumSegmentBytes,
              segmentBytes & (segmentBytes - 1) == 0 else {
            throw .invalidSegmentBytes(segmentBytes)
        }
        guard Self.concurrencyRange.contains(concurrency) else { throw .invalidConcurrency(concurrency) }
        if let bytesPerSecond, bytesPerSecond == 0 { throw .invalidRate(bytesPerSecond) }
        self.init(uncheckedSegmentBytes: segmentBytes, concurrency: concurrency, bytesPerSecond: bytesPerSecond)
    }

    private init(uncheckedSegmentBytes: Int, concurrency: Int, bytesPerSecond: UInt64?) {
        self.segmentBytes = uncheckedSegmentBytes
        self.concurrency = concurrency
        self.bytesPerSecond = bytesPerSecond
    }

    public var description: String {
        let rate = bytesPerSecond.map { "\($0) B/s" } ?? "unlimited"
        return "segment \(segmentBytes) B, concurrency \(concurrency), rate \(rate)"
    }
}

/// A ``RebuildLimits`` value out of range.
public enum RebuildLimitsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The segment size is not a power of two between 64 KiB and 64 MiB.
    case invalidSegmentBytes(Int)
    /// The concurrency is not in 1...64.
    case invalidConcurrency(Int)
    /// The byte rate is 0 (use nil for unlimited).
    case invalidRate(UInt64)

    public var description: String {
        switch self {
        case .invalidSegmentBytes(let bytes):
            "rebuild segment size \(bytes) B: must be a power of two from \(RebuildLimits.minimumSegmentBytes) B "
                + "to \(RebuildLimits.maximumSegmentBytes) B"
        case .invalidConcurrency(let count):
            "rebuild concurrency \(count): must be \(RebuildLimits.concurrencyRange.lowerBound)..."
                + "\(RebuildLimits.concurrencyRange.upperBound)"
        case .invalidRate(let rate):
            "rebuild rate \(rate) B/s: must be positive (omit it for unlimited)"
        }
    }
}
