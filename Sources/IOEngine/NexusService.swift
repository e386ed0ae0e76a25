import GRPCCore
import IOEngineAPI

/// `halyard.ioengine.v1.NexusService`: nexuses over replicas, their children, rebuilds, limits
/// and health records (errors as nexus.proto's header says).
struct NexusService: Halyard_Ioengine_V1_NexusService.SimpleServiceProtocol {
    let core: EngineCore

    func createNexus(request: Halyard_Ioengine_V1_CreateNexusRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc {
            if case .UNRECOGNIZED(let value) = request.preemptPolicy {
                throw IOEngineError.invalidArgument("nexus \(request.uuid): preempt policy \(value) is not HOLDER or ARGKEY")
            }
            let validated = try NexusCreateRequest(
                uuid: request.uuid, volumeUUID: request.volumeUuid, sizeBytes: request.sizeBytes, children: request.children,
                minControllerID: request.minCntlid, maxControllerID: request.maxCntlid, reservationKey: request.resvKey,
                preemptArgKey: request.preemptPolicy == .argkey, preemptKey: request.preemptKey, publish: request.publish,
                allowedHosts: request.allowedHosts)
            return Halyard_Ioengine_V1_Nexus(try await core.createNexus(validated))
        }
    }

    func destroyNexus(request: Halyard_Ioengine_V1_DestroyNexusRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_DestroyNexusResponse
    {
        try await rpc {
            try await core.destroyNexus(uuid: request.uuid)
            return Halyard_Ioengine_V1_DestroyNexusResponse()
        }
    }

    func shutdownNexus(request: Halyard_Ioengine_V1_ShutdownNexusRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc { Halyard_Ioengine_V1_Nexus(try await core.shutdownNexus(uuid: request.uuid)) }
    }

    func publishNexus(request: Halyard_Ioengine_V1_PublishNexusRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc { Halyard_Ioengine_V1_Nexus(try await core.publishNexus(uuid: request.uuid, allowedHosts: request.allowedHosts)) }
    }

    func unpublishNexus(request: Halyard_Ioengine_V1_UnpublishNexusRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc { Halyard_Ioengine_V1_Nexus(try await core.unpublishNexus(uuid: request.uuid)) }
    }

    func listNexuses(request: Halyard_Ioengine_V1_ListNexusesRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_ListNexusesResponse
    {
        var response = Halyard_Ioengine_V1_ListNexusesResponse()
        response.nexuses = core.nexusViews().map(Halyard_Ioengine_V1_Nexus.init)
        return response
    }

    func getNexus(request: Halyard_Ioengine_V1_GetNexusRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc { Halyard_Ioengine_V1_Nexus(try core.nexusView(uuid: request.uuid)) }
    }

    func addChild(request: Halyard_Ioengine_V1_ChildRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await child(.add, request)
    }

    func removeChild(request: Halyard_Ioengine_V1_ChildRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await child(.remove, request)
    }

    func offlineChild(request: Halyard_Ioengine_V1_ChildRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await child(.offline, request)
    }

    func onlineChild(request: Halyard_Ioengine_V1_ChildRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await child(.online, request)
    }

    func faultChild(request: Halyard_Ioengine_V1_ChildRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Nexus {
        try await child(.fault, request)
    }

    private func child(_ operation: NexusChildOperation, _ request: Halyard_Ioengine_V1_ChildRequest) async throws -> Halyard_Ioengine_V1_Nexus {
        try await rpc { Halyard_Ioengine_V1_Nexus(try await core.changeChild(operation, nexus: request.uuid, uri: request.uri)) }
    }

    func listRebuilds(request: Halyard_Ioengine_V1_ListRebuildsRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_ListRebuildsResponse
    {
        try await rpc {
            let uuid = try NexusValidation.uuid(request.uuid)
            var response = Halyard_Ioengine_V1_ListRebuildsResponse()
            response.rebuilds = try core.rebuilds(nexus: request.uuid).map { .init($0, nexus: uuid) }
            return response
        }
    }

    func getRebuildHistory(request: Halyard_Ioengine_V1_GetRebuildHistoryRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_ListRebuildsResponse
    {
        try await rpc {
            let uuid = try NexusValidation.uuid(request.uuid)
            var response = Halyard_Ioengine_V1_ListRebuildsResponse()
            response.rebuilds = try core.rebuildHistory(nexus: request.uuid).map { .init($0, nexus: uuid) }
            return response
        }
    }

    func setRebuildLimits(request: Halyard_Ioengine_V1_SetRebuildLimitsRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_RebuildLimits
    {
        try await rpc {
            let rate: UInt64?? = request.hasBytesPerSecond ? .some(request.bytesPerSecond == 0 ? nil : request.bytesPerSecond) : .none
            let segment: Int?
            if request.hasSegmentBytes {
                guard request.segmentBytes <= UInt64(Int32.max) else {
                    throw IOEngineError.invalidArgument("rebuild segment size \(request.segmentBytes) B: at most 64 MiB")
                }
                segment = Int(request.segmentBytes)
            } else {
                segment = nil
            }
            return Halyard_Ioengine_V1_RebuildLimits(try core.setRebuildLimits(
                nexus: request.uuid, concurrency: request.hasConcurrency ? Int(request.concurrency) : nil,
                bytesPerSecond: rate, segmentBytes: segment))
        }
    }

    func getRebuildLimits(request: Halyard_Ioengine_V1_GetRebuildLimitsRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_RebuildLimits
    {
        try await rpc { Halyard_Ioengine_V1_RebuildLimits(try core.rebuildLimits(nexus: request.uuid)) }
    }

    func getHealthRecord(request: Halyard_Ioengine_V1_GetHealthRecordRequest, context: ServerContext) async throws
        -> Halyard_Ioengine_V1_HealthRecord
    {
        try await rpc { Halyard_Ioengine_V1_HealthRecord(try await core.healthRecord(nexus: request.uuid, volume: request.volumeUuid)) }
    }
}
