import GRPCCore
import IOEngineAPI

/// `halyard.ioengine.v1.NodeService`: the io-engine's identity, endpoints and counts.
struct NodeService: Halyard_Ioengine_V1_NodeService.SimpleServiceProtocol {
    let core: EngineCore

    func getNode(request: Halyard_Ioengine_V1_GetNodeRequest, context: ServerContext) async throws -> Halyard_Ioengine_V1_Node {
        let configuration = core.configuration
        var node = Halyard_Ioengine_V1_Node()
        node.name = configuration.nodeName
        node.version = configuration.version
        let host = configuration.uriHost
        node.nvmfEndpoint = "\(host.contains(":") ? "[\(host)]" : host):\(core.boundPort.load(ordering: .relaxed))"
        node.grpcEndpoint = configuration.grpcEndpoint
        node.metricsEndpoint = configuration.metricsEndpoint ?? ""
        node.store = configuration.storeDescription
        let slots = core.slots
        node.poolCount = UInt32(slots.count)
        node.replicaCount = UInt32(slots.reduce(0) { $0 + ($1.slot.pool?.replicas().count ?? 0) })
        return node
    }
}
