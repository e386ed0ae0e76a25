import GRPCCore
@testable import IOEngine
import StoragePool
import Testing

/// The status of every pool-library failure, including those an API test cannot provoke on a
/// healthy disk (a journal I/O error, a pool that went read-only after import).
@Suite("io-engine status mapping")
struct ErrorMappingTests {
    @Test("each PoolError maps to its gRPC code with the message unchanged", arguments: [
        (PoolError.notFound("replica X does not exist in pool 'p'"), RPCError.Code.notFound),
        (.alreadyExists("replica name 'r' is already used by replica Y"), .alreadyExists),
        (.outOfSpace("thick replica X needs 9 extents; pool 'p' has 3 free"), .resourceExhausted),
        (.invalidArgument("replica X size 7 bytes"), .invalidArgument),
        (.failedPrecondition("pool 'p' holds 2 replica(s)"), .failedPrecondition),
        (.faulted("pool 'p' metadata: extent 7 mapped twice"), .unavailable),
        (.io("journal write of pool 'p': EIO"), .internalError),
    ])
    func mapping(error: PoolError, code: RPCError.Code) async throws {
        let status = RPCError(IOEngineError(error))
        #expect(status.code == code)
        #expect(status.message == error.message)
        // And through the services' wrapper, thrown as is from a handler body.
        let thrown = await EngineFixture.rpcError { _ = try await rpc { () async throws -> Int in throw error } }
        #expect(thrown?.code == code && thrown?.message == error.message)
    }
}
