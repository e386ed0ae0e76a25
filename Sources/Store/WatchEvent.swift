/// One change seen by a watch (etcd mvccpb.Event): the key's new state (for a delete: the key
/// with the delete's modRevision, empty value, version 0) and its state before the change.
public struct WatchEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case put, delete }

    public var kind: Kind
    /// For a put, the new value; for a delete, the key with `modRevision` = the delete's revision.
    public var kv: KeyValue
    /// The key's value before this change, when the backend knows it (nil for a creation).
    public var previous: KeyValue?

    public init(kind: Kind, kv: KeyValue, previous: KeyValue?) {
        self.kind = kind
        self.kv = kv
        self.previous = previous
    }

    /// The revision of the change.
    public var revision: Int64 { kv.modRevision }
}
