#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Whether a pool serves writes.
public enum PoolState: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Imported and consistent: reads and writes.
    case online
    /// Read-only: its metadata failed the import check, or a metadata write failed.
    case faulted(reason: String)

    public var description: String {
        switch self {
        case .online: return "online"
        case .faulted(let reason): return "faulted (\(reason))"
        }
    }
}

/// A snapshot of a pool's identity, state and space accounting.
public struct PoolInfo: Equatable, Hashable, Sendable {
    public var name: String
    public var uuid: UUID
    /// The backing file or block device.
    public var path: String
    public var state: PoolState
    /// Bytes in the data area: extents × extent size.
    public var capacityBytes: UInt64
    /// Bytes in allocated extents (allocated extents × extent size).
    public var usedBytes: UInt64
    /// Bytes in free extents, counted from the free set itself: `freeBytes + usedBytes ==
    /// capacityBytes` unless an extent leaked (or is being handed out right now).
    public var freeBytes: UInt64
    /// The sum of the replicas' sizes (thin replicas may make it exceed the capacity).
    public var committedBytes: UInt64
    public var blockSize: Int
    public var extentSize: UInt64
    public var replicaCount: Int
    /// Journal batches and checkpoints written (each ends with one fdatasync) since import.
    public var journalCommits: UInt64

    public init(name: String, uuid: UUID, path: String, state: PoolState, capacityBytes: UInt64, usedBytes: UInt64, freeBytes: UInt64,
                committedBytes: UInt64, blockSize: Int, extentSize: UInt64, replicaCount: Int, journalCommits: UInt64)
    {
        self.name = name
        self.uuid = uuid
        self.path = path
        self.state = state
        self.capacityBytes = capacityBytes
        self.usedBytes = usedBytes
        self.freeBytes = freeBytes
        self.committedBytes = committedBytes
        self.blockSize = blockSize
        self.extentSize = extentSize
        self.replicaCount = replicaCount
        self.journalCommits = journalCommits
    }
}
