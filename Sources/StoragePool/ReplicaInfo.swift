#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A replica (a thin or thick volume in a pool) as the API reports it.
public struct ReplicaInfo: Equatable, Hashable, Sendable {
    public var uuid: UUID
    public var name: String
    public var sizeBytes: UInt64
    /// Thin: extents allocated on first write. Thick: all allocated at create.
    public var thin: Bool
    /// Bytes in the replica's allocated extents.
    public var allocatedBytes: UInt64
    /// Whether the replica should be shared over NVMe/TCP (the daemon acts on it).
    public var shared: Bool
    /// Host NQNs allowed to connect to the share.
    public var allowedHosts: [String]

    public init(uuid: UUID, name: String, sizeBytes: UInt64, thin: Bool, allocatedBytes: UInt64, shared: Bool, allowedHosts: [String]) {
        self.uuid = uuid
        self.name = name
        self.sizeBytes = sizeBytes
        self.thin = thin
        self.allocatedBytes = allocatedBytes
        self.shared = shared
        self.allowedHosts = allowedHosts
    }
}

/// A byte range of a replica: `offset..<offset + length`.
public struct ByteRange: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var offset: UInt64
    public var length: UInt64

    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }

    /// The first byte past the range.
    public var end: UInt64 { offset + length }

    public var description: String { "[\(offset), \(end))" }
}
