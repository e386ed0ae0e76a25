import GRPCCore
import IOEngineAPI

/// `halyard.ioengine.v1.ReplicaService`: thin or thick replicas in a pool, each shared as its
/// own NVMe/TCP subsystem with an allowed-hosts list (errors as replica.proto's header says).
struct ReplicaService: Halyard_Ioengine_V1_ReplicaService.SimpleServiceProtocol {
    let core: EngineCore

    func createReplica(request: Halyard_Ioengine_V1_CreateReplicaRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_Replica
    {
        try await rpc {
            Halyard_Ioengine_V1_Replica(try await core.createReplica(
                uuid: request.uuid, pool: request.pool, name: request.name, sizeBytes: request.sizeBytes, thin: request.thin,
                share: request.share, allowedHosts: request.allowedHosts))
        }
    }

    func destroyReplica(request: Halyard_Ioengine_V1_DestroyReplicaRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_DestroyReplicaResponse
    {
        try await rpc {
            try await core.destroyReplica(uuid: request.uuid)
            return Halyard_Ioengine_V1_DestroyReplicaResponse()
        }
    }

    func resizeReplica(request: Halyard_Ioengine_V1_ResizeReplicaRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_Replica
    {
        try await rpc { Halyard_Ioengine_V1_Replica(try await core.resizeReplica(uuid: request.uuid, sizeBytes: request.sizeBytes)) }
    }

    func getReplica(request: Halyard_Ioengine_V1_GetReplicaRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Replica {
        try await rpc { Halyard_Ioengine_V1_Replica(try core.replica(uuid: request.uuid)) }
    }

    func listReplicas(request: Halyard_Ioengine_V1_ListReplicasRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_ListReplicasResponse
    {
        try await rpc {
            var response = Halyard_Ioengine_V1_ListReplicasResponse()
            response.replicas = try core.replicas(pool: request.pool).map(Halyard_Ioengine_V1_Replica.init)
            return response
        }
    }

    func shareReplica(request: Halyard_Ioengine_V1_ShareReplicaRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Replica {
        try await rpc { Halyard_Ioengine_V1_Replica(try await core.shareReplica(uuid: request.uuid, allowedHosts: request.allowedHosts)) }
    }

    func unshareReplica(request: Halyard_Ioengine_V1_UnshareReplicaRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_Replica
    {
        try await rpc { Halyard_Ioengine_V1_Replica(try await core.unshareReplica(uuid: request.uuid)) }
    }

    func setReplicaAllowedHosts(request: Halyard_Ioengine_V1_SetReplicaAllowedHostsRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_Replica
    {
        try await rpc { Halyard_Ioengine_V1_Replica(try await core.setAllowedHosts(uuid: request.uuid, allowedHosts: request.allowedHosts)) }
    }

    func getAllocatedRanges(request: Halyard_Ioengine_V1_GetAllocatedRangesRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_AllocatedRanges
    {
        try await rpc {
            let (size, ranges) = try core.allocatedRanges(uuid: request.uuid)
            var response = Halyard_Ioengine_V1_AllocatedRanges()
            response.uuid = request.uuid.lowercased()
            response.sizeBytes = size
            response.ranges = ranges.map { range in
                var r = Halyard_Ioengine_V1_ByteRange()
                r.offset = range.offset
                r.length = range.length
                return r
            }
            return response
        }
    }
}
