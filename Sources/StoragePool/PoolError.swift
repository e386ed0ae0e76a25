/// Why a pool or replica operation failed. Every message names the object and the value at
/// fault, so it can be returned to an API client as is (the gRPC layer maps each case to a
/// status code: NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED, INVALID_ARGUMENT,
/// FAILED_PRECONDITION, UNAVAILABLE/INTERNAL).
public enum PoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A replica (by UUID) or pool path that does not exist.
    case notFound(String)
    /// A replica with this UUID (and other parameters) or name already exists.
    case alreadyExists(String)
    /// Not enough free extents, or the replica is larger than the pool (RESOURCE_EXHAUSTED).
    case outOfSpace(String)
    /// A malformed argument: size, name, block size, extent size, host list…
    case invalidArgument(String)
    /// The operation is not allowed in the current state: destroying a pool that holds
    /// replicas, importing a disk with no pool label, creating over an existing pool…
    case failedPrecondition(String)
    /// The pool is faulted (metadata failed its consistency check, or a metadata write
    /// failed): it is read-only; the message gives the reason.
    case faulted(String)
    /// A journal, checkpoint or superblock read or write failed.
    case io(String)

    /// The message, without the kind.
    public var message: String {
        switch self {
        case .notFound(let m), .alreadyExists(let m), .outOfSpace(let m), .invalidArgument(let m),
             .failedPrecondition(let m), .faulted(let m), .io(let m):
            return m
        }
    }

    public var description: String {
        switch self {
        case .notFound(let m): return "not found: \(m)"
        case .alreadyExists(let m): return "already exists: \(m)"
        case .outOfSpace(let m): return "out of space: \(m)"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .failedPrecondition(let m): return "failed precondition: \(m)"
        case .faulted(let m): return "pool faulted: \(m)"
        case .io(let m): return "I/O error: \(m)"
        }
    }
}
