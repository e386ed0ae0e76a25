import StoragePool

/// Why an io-engine operation failed: a kind the API maps to one gRPC status code, and a
/// message naming the object and the value at fault (returned to the client as is).
public struct IOEngineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The failure classes of the API (pool.proto): each is one gRPC status code.
    public enum Kind: Hashable, Sendable {
        /// Unknown pool or replica (NOT_FOUND).
        case notFound
        /// A pool or replica of that name / uuid / disk exists with other parameters (ALREADY_EXISTS).
        case alreadyExists
        /// No space for it (RESOURCE_EXHAUSTED).
        case resourceExhausted
        /// Malformed input (INVALID_ARGUMENT).
        case invalidArgument
        /// Not allowed in the current state (FAILED_PRECONDITION).
        case failedPrecondition
        /// The pool is faulted or could not be imported (UNAVAILABLE).
        case unavailable
        /// Journal or device I/O failed, or an unexpected error (INTERNAL).
        case `internal`
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind): \(message)" }

    static func notFound(_ m: String) -> Self { .init(.notFound, m) }
    static func alreadyExists(_ m: String) -> Self { .init(.alreadyExists, m) }
    static func invalidArgument(_ m: String) -> Self { .init(.invalidArgument, m) }
    static func failedPrecondition(_ m: String) -> Self { .init(.failedPrecondition, m) }
    static func unavailable(_ m: String) -> Self { .init(.unavailable, m) }
    static func `internal`(_ m: String) -> Self { .init(.internal, m) }

    /// The API class of a pool library error (its message kept).
    public init(_ error: PoolError) {
        switch error {
        case .notFound(let m): self.init(.notFound, m)
        case .alreadyExists(let m): self.init(.alreadyExists, m)
        case .outOfSpace(let m): self.init(.resourceExhausted, m)
        case .invalidArgument(let m): self.init(.invalidArgument, m)
        case .failedPrecondition(let m): self.init(.failedPrecondition, m)
        case .faulted(let m): self.init(.unavailable, m)
        case .io(let m): self.init(.internal, m)
        }
    }
}
