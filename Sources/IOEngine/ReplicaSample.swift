#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One replica as `/metrics` renders it: identity, size, allocation, whether it is shared and
/// its I/O counters (which live as long as the process, across unshare and re-share).
public struct ReplicaSample: Sendable {
    public var poolName: String
    public var uuid: UUID
    public var name: String
    public var sizeBytes: UInt64
    public var allocatedBytes: UInt64
    public var shared: Bool
    public var stats: ReplicaIOStats

    public init(poolName: String, uuid: UUID, name: String, sizeBytes: UInt64, allocatedBytes: UInt64, shared: Bool,
                stats: ReplicaIOStats)
    {
        self.poolName = poolName
        self.uuid = uuid
        self.name = name
        self.sizeBytes = sizeBytes
        self.allocatedBytes = allocatedBytes
        self.shared = shared
        self.stats = stats
    }
}
