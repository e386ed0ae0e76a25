/// One key's value at a revision, with etcd's version bookkeeping (mvccpb.KeyValue).
public struct KeyValue: Sendable, Hashable {
    /// The key (UTF-8).
    public var key: String
    /// The value bytes.
    public var value: [UInt8]
    /// The revision that created the key (after its last deletion).
    public var createRevision: Int64
    /// The revision of the key's last modification.
    public var modRevision: Int64
    /// The number of modifications since creation (1 after the first put; reset by delete).
    public var version: Int64
    /// The lease the key is attached to, 0 for none.
    public var lease: LeaseID

    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: LeaseID) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value decoded as UTF-8.
    public var string: String { String(decoding: value, as: UTF8.self) }
}

/// The answer to a range read: the keys (sorted), whether more matched than `limit` allowed,
/// how many matched in all, and the store revision the read saw.
public struct RangeResult: Sendable, Hashable {
    public var kvs: [KeyValue]
    public var more: Bool
    public var count: Int64
    /// The store's current revision when the read ran (etcd's response header revision).
    public var revision: Int64

    public init(kvs: [KeyValue], more: Bool, count: Int64, revision: Int64) {
        self.kvs = kvs
        self.more = more
        self.count = count
        self.revision = revision
    }
}
