/// A lease identifier (etcd's int64 lease ID); 0 means "no lease".
public typealias LeaseID = Int64

/// A granted lease: keys put with it are deleted when it expires or is revoked.
public struct Lease: Sendable, Hashable {
    public var id: LeaseID
    /// The granted time to live in seconds (at least what was asked for).
    public var ttlSeconds: Int64

    public init(id: LeaseID, ttlSeconds: Int64) {
        self.id = id
        self.ttlSeconds = ttlSeconds
    }
}
