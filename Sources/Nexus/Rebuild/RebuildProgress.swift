#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A snapshot of one rebuild job (``RebuildJob/progress``), as `nexus rebuild list|history` shows it.
public struct RebuildProgress: Hashable, Sendable {
    /// Where a job is.
    public enum State: Hashable, Sendable, CustomStringConvertible {
        /// Created, ``RebuildJob/run()`` not called yet.
        case pending
        case running
        case completed
        case failed(RebuildFailure)
        case cancelled

        public var isFinished: Bool {
            switch self {
            case .pending, .running: false
            case .completed, .failed, .cancelled: true
            }
        }

        public var description: String {
            switch self {
            case .pending: "pending"
            case .running: "running"
            case .completed: "completed"
            case .failed(let failure): "failed: \(failure)"
            case .cancelled: "cancelled"
            }
        }
    }

    public var id: UUID
    /// The source child's URI (as the nexus names it).
    public var source: String
    /// The destination child's URI.
    public var destination: String
    public var kind: RebuildKind
    public var state: State
    /// Bytes per segment.
    public var segmentBytes: Int
    /// Segments the job covers: all of the device for a full rebuild, the dirty ones for a partial one.
    public var totalSegments: UInt64
    public var segmentsCopied: UInt64 = 0
    /// Segments of a full rebuild not copied because the source has nothing allocated there.
    public var segmentsSkipped: UInt64 = 0
    public var bytesCopied: UInt64 = 0
    public var startedAt: Date?
    public var finishedAt: Date?

    /// Segments done (copied or skipped) out of ``totalSegments``, 0…1 (1 for an empty job).
    public var fractionDone: Double {
        totalSegments == 0 ? 1 : Double(segmentsCopied + segmentsSkipped) / Double(totalSegments)
    }
}
