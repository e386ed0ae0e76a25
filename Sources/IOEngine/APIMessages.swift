#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import IOEngineAPI
import StoragePool

/// Engine values as the API's protobuf messages.
extension Halyard_Ioengine_V1_Pool {
    init(_ info: PoolInfo) {
        self.init()
        name = info.name
        uuid = info.uuid == UUID.nilUUID ? "" : info.uuid.lowercased
        disk = info.path
        switch info.state {
        case .online:
            state = .online
        case .faulted(let reason):
            state = .faulted
            fault = reason
        }
        capacityBytes = info.capacityBytes
        usedBytes = info.usedBytes
        committedBytes = info.committedBytes
        blockSize = UInt32(info.blockSize)
        extentSize = UInt32(clamping: info.extentSize)
        replicaCount = UInt32(clamping: info.replicaCount)
    }
}

extension Halyard_Ioengine_V1_Replica {
    init(_ view: ReplicaView) {
        self.init()
        uuid = view.info.uuid.lowercased
        name = view.info.name
        poolName = view.poolName
        poolUuid = view.poolUUID.lowercased
        sizeBytes = view.info.sizeBytes
        thin = view.info.thin
        allocatedBytes = view.info.allocatedBytes
        shared = view.info.shared
        nqn = view.nqn
        uri = view.uri
        allowedHosts = view.info.allowedHosts
    }
}
