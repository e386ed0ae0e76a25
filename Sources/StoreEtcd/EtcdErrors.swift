import GRPCCore
import Store

/// Maps an error from an etcd gRPC call to ``StoreError``, following etcd 3.4's
/// `etcdserver/api/v3rpc/rpctypes/error.go`: OUT_OF_RANGE "required revision has been
/// compacted" / "required revision is a future revision", NOT_FOUND "requested lease not found",
/// INVALID_ARGUMENT for malformed requests; UNAVAILABLE and DEADLINE_EXCEEDED (and any transport
/// failure) mean etcd could not be reached in time.
enum EtcdErrors {
    static let prefix = "etcdserver: "

    static func map(_ error: any Error, revision: Int64? = nil, lease: LeaseID? = nil) -> StoreError {
        if let storeError = error as? StoreError { return storeError }
        if error is CancellationError { return .unavailable("cancelled") }
        guard let rpcError = error as? RPCError else {
            return .unavailable(String(describing: error))
        }
        let message = rpcError.message.hasPrefix(prefix)
            ? String(rpcError.message.dropFirst(prefix.count)) : rpcError.message
        switch rpcError.code {
        case .outOfRange where message.contains("compacted"):
            return .compacted(0)  // etcd's Range error does not say the compaction revision
        case .outOfRange where message.contains("future revision"):
            return .futureRevision(revision ?? 0)
        case .notFound where message.contains("lease not found"):
            return .leaseNotFound(lease ?? 0)
        case .invalidArgument, .failedPrecondition, .outOfRange:
            return .invalidArgument(message)
        case .unavailable, .deadlineExceeded, .cancelled, .aborted, .unknown, .internalError:
            return .unavailable("\(rpcError.code): \(message)")
        default:
            return .unavailable("\(rpcError.code): \(message)")
        }
    }
}
