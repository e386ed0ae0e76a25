/// A compare-and-swap transaction (etcd TxnRequest): when every compare holds, `success` runs,
/// else `failure`; all of it at one revision.
public struct Transaction: Sendable, Hashable {
    public var compares: [Compare]
    public var success: [TransactionOperation]
    public var failure: [TransactionOperation]

    public init(compares: [Compare] = [], success: [TransactionOperation] = [], failure: [TransactionOperation] = []) {
        self.compares = compares
        self.success = success
        self.failure = failure
    }
}

/// One comparison of a transaction guard (etcd Compare). An absent key has version,
/// createRevision, modRevision and lease 0, and its value compares as absent (a value compare
/// on an absent key is false).
public struct Compare: Sendable, Hashable {
    /// What is compared.
    public enum Target: Sendable, Hashable {
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case value([UInt8])
        case lease(LeaseID)
    }

    /// How the key's field relates to the target.
    public enum Relation: Sendable, Hashable {
        case equal, notEqual, greater, less
    }

    public var key: String
    public var relation: Relation
    public var target: Target

    public init(key: String, _ relation: Relation, _ target: Target) {
        self.key = key
        self.relation = relation
        self.target = target
    }

    /// "`key` does not exist" (its version is 0).
    public static func absent(_ key: String) -> Compare { Compare(key: key, .equal, .version(0)) }
    /// "`key` was last modified at `revision`" (0: does not exist): the CAS guard.
    public static func modRevision(_ key: String, is revision: Int64) -> Compare {
        Compare(key: key, .equal, .modRevision(revision))
    }
}

/// One operation of a transaction branch (etcd RequestOp).
public enum TransactionOperation: Sendable, Hashable {
    /// Sets `key` to `value`, attached to `lease` (0: none). The response carries the previous value.
    case put(key: String, value: [UInt8], lease: LeaseID)
    /// Deletes every key in the range. The response carries the deleted keys.
    case delete(KeyRange)
    /// Reads the range at the transaction's revision, at most `limit` keys (0: all).
    case range(KeyRange, limit: Int)

    /// `put` without a lease.
    public static func put(_ key: String, _ value: [UInt8]) -> TransactionOperation {
        .put(key: key, value: value, lease: 0)
    }
}

/// The outcome of a ``Transaction``.
public struct TransactionResult: Sendable, Hashable {
    /// True when every compare held and the `success` branch ran.
    public var succeeded: Bool
    /// The store revision after the transaction (unchanged when it wrote nothing).
    public var revision: Int64
    /// One response per operation of the branch that ran, in order.
    public var responses: [TransactionResponse]

    public init(succeeded: Bool, revision: Int64, responses: [TransactionResponse]) {
        self.succeeded = succeeded
        self.revision = revision
        self.responses = responses
    }
}

/// The response to one ``TransactionOperation``.
public enum TransactionResponse: Sendable, Hashable {
    /// The key's value before the put, nil when it did not exist.
    case put(previous: KeyValue?)
    /// The keys the delete removed (their last values).
    case delete(deleted: [KeyValue])
    case range(RangeResult)
}
