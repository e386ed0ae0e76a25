import GRPCCore
import IOEngineAPI

/// `halyard.ioengine.v1.PoolService`: create, import, export, destroy, get and list pools
/// (errors as pool.proto's header says).
struct PoolService: Halyard_Ioengine_V1_PoolService.SimpleServiceProtocol {
    let core: EngineCore

    func createPool(request: Halyard_Ioengine_V1_CreatePoolRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Pool {
        try await rpc {
            let validated = try PoolCreateRequest(name: request.name, disk: request.disk, uuid: request.uuid, sizeBytes: request.sizeBytes,
                                                  blockSize: request.blockSize, extentSize: request.extentSize)
            return Halyard_Ioengine_V1_Pool(try await core.createPool(validated))
        }
    }

    func importPool(request: Halyard_Ioengine_V1_ImportPoolRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Pool {
        try await rpc { Halyard_Ioengine_V1_Pool(try await core.importPool(disk: request.disk)) }
    }

    func exportPool(request: Halyard_Ioengine_V1_ExportPoolRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Pool {
        try await rpc { Halyard_Ioengine_V1_Pool(try await core.exportPool(name: request.name)) }
    }

    func destroyPool(request: Halyard_Ioengine_V1_DestroyPoolRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_DestroyPoolResponse
    {
        try await rpc {
            try await core.destroyPool(name: request.name, force: request.force)
            return Halyard_Ioengine_V1_DestroyPoolResponse()
        }
    }

    func getPool(request: Halyard_Ioengine_V1_GetPoolRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Pool {
        try await rpc {
            guard !request.name.isEmpty else { throw IOEngineError.invalidArgument("pool name is empty") }
            return Halyard_Ioengine_V1_Pool(try core.slot(named: request.name).info)
        }
    }

    func listPools(request: Halyard_Ioengine_V1_ListPoolsRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_ListPoolsResponse {
        var response = Halyard_Ioengine_V1_ListPoolsResponse()
        response.pools = core.slots.map { Halyard_Ioengine_V1_Pool($0.slot.info) }
        return response
    }
}
