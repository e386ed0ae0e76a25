import GRPCCore
import Nexus
import StoragePool

/// The gRPC status of every io-engine failure (pool.proto's header): thrown by the services so
/// clients get a precise code and the message naming object and value.
extension RPCError {
    /// The status of `error`.
    init(_ error: IOEngineError) {
        let code: RPCError.Code
        switch error.kind {
        case .notFound: code = .notFound
        case .alreadyExists: code = .alreadyExists
        case .resourceExhausted: code = .resourceExhausted
        case .invalidArgument: code = .invalidArgument
        case .failedPrecondition: code = .failedPrecondition
        case .unavailable: code = .unavailable
        case .internal: code = .internalError
        }
        self.init(code: code, message: error.message)
    }
}

/// Runs a service method body, turning engine, pool and nexus errors into their `RPCError`.
func rpc<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as IOEngineError {
        throw RPCError(error)
    } catch let error as PoolError {
        throw RPCError(IOEngineError(error))
    } catch let error as NexusError {
        throw RPCError(IOEngineError(error))
    } catch let error as RPCError {
        throw error
    } catch {
        throw RPCError(code: .internalError, message: "\(error)")
    }
}
