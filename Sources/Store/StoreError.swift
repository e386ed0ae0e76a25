/// Why a ``Store`` call failed. The cases match etcd's gRPC errors
/// (`etcdserver/api/v3rpc/rpctypes/error.go`) so both backends fail the same way.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The revision asked for has been compacted; the payload is the compaction revision.
    case compacted(Int64)
    /// The revision asked for is newer than the store's current revision.
    case futureRevision(Int64)
    /// The lease does not exist (expired, revoked or never granted).
    case leaseNotFound(LeaseID)
    /// A malformed request: duplicate key in a transaction, too many operations, too large.
    case invalidArgument(String)
    /// The backend could not be reached or did not answer in time; the call may or may not
    /// have taken effect.
    case unavailable(String)
    /// The store was closed.
    case closed
    /// The embedded store's files are damaged beyond a torn tail.
    case corrupt(String)

    public var description: String {
        switch self {
        case .compacted(let revision): "required revision has been compacted (compaction revision \(revision))"
        case .futureRevision(let revision): "required revision \(revision) is a future revision"
        case .leaseNotFound(let id): "requested lease \(id) not found"
        case .invalidArgument(let message): "invalid argument: \(message)"
        case .unavailable(let message): "store unavailable: \(message)"
        case .closed: "store closed"
        case .corrupt(let message): "store data corrupt: \(message)"
        }
    }
}
