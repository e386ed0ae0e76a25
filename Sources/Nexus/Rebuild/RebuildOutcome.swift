/// How a rebuild job ended.
public enum RebuildOutcome: Hashable, Sendable, CustomStringConvertible {
    /// Every planned segment was copied and the destination flushed.
    case completed
    /// A child command failed; the nexus decides which child to fault.
    case failed(RebuildFailure)
    /// ``RebuildJob/cancel()`` (or cancellation of the task running it) stopped the job.
    case cancelled

    public var description: String {
        switch self {
        case .completed: "completed"
        case .failed(let failure): "failed: \(failure)"
        case .cancelled: "cancelled"
        }
    }
}

/// The child command that ended a rebuild: which side failed and how.
public struct RebuildFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which child of the copy failed.
    public enum Side: Hashable, Sendable {
        /// A read of the source, or its allocation map.
        case source
        /// A write or the final flush of the destination.
        case destination
    }

    public var side: Side
    public var error: ChildIOError
    /// The segment being copied, nil for the allocation map or the final flush.
    public var segment: UInt64?

    public init(side: Side, error: ChildIOError, segment: UInt64? = nil) {
        self.side = side
        self.error = error
        self.segment = segment
    }

    public var description: String {
        let at = segment.map { " at segment \($0)" } ?? ""
        return "\(side == .source ? "source" : "destination") \(error)\(at)"
    }
}
