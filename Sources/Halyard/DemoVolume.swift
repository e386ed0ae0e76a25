import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import IOEngineAPI
import Logging

/// `halyard io-engine --demo-volume SIZE`: once the gRPC server listens, sets up a volume a Linux
/// host can connect to at once, over the io-engine's own API (so it is made like any other):
///
/// 1. the pool: `demo` if it exists, else the first `--create-pool`/`--pool` pool, else a new pool
///    `demo` on the sparse file `<state-dir>/demo-pool.img` (SIZE + 128 MiB);
/// 2. the replica named `demo-volume` in that pool (created thin when missing), shared to the
///    demo nexus's host NQN only (the nexus opens it directly; no other host may write around it);
/// 3. a one-child nexus over it, published to any host. Its UUID and the volume UUID are derived
///    from the replica UUID, so the subsystem NQN is the same after a restart (the nexus itself is
///    created again at each start: nexuses are not persisted).
///
/// Prints `demo volume: nqn=… uri=…` and the `nvme connect` line on stdout.
enum DemoVolume {
    static let poolName = "demo"
    static let replicaName = "demo-volume"

    struct Published {
        var nqn, uri, host: String
        var port: Int
    }

    static func setUp(client: GRPCClient<HTTP2ClientTransport.Posix>, size: UInt64, stateDirectory: String, givenPools: [String],
                      logger: Logger) async throws -> Published {
        let pools = Halyard_Ioengine_V1_PoolService.Client(wrapping: client)
        let replicas = Halyard_Ioengine_V1_ReplicaService.Client(wrapping: client)
        let nexuses = Halyard_Ioengine_V1_NexusService.Client(wrapping: client)

        // 1. The pool.
        let online = try await pools.listPools(.init()).pools.filter { $0.state == .online }
        let pool: String
        if online.contains(where: { $0.name == poolName }) {
            pool = poolName
        } else if let given = givenPools.first(where: { name in online.contains { $0.name == name } }) ?? online.first?.name {
            pool = given
        } else {
            var request = Halyard_Ioengine_V1_CreatePoolRequest()
            request.name = poolName
            request.disk = stateDirectory + "/demo-pool.img"
            request.sizeBytes = (size + (128 << 20) + 4095) / 4096 * 4096
            pool = try await pools.createPool(request).name
            logger.info("demo pool created", metadata: ["pool": "\(pool)", "disk": "\(request.disk)"])
        }

        // 2. The replica.
        var listRequest = Halyard_Ioengine_V1_ListReplicasRequest()
        listRequest.pool = pool
        var replica: Halyard_Ioengine_V1_Replica
        if let existing = try await replicas.listReplicas(listRequest).replicas.first(where: { $0.name == replicaName }) {
            guard existing.sizeBytes == size else {
                throw ValidationError("--demo-volume \(size): replica '\(replicaName)' in pool '\(pool)' holds \(existing.sizeBytes) bytes "
                    + "(destroy it with `halyard replica destroy \(existing.uuid)` or ask for that size)")
            }
            replica = existing
        } else {
            var request = Halyard_Ioengine_V1_CreateReplicaRequest()
            request.uuid = UUID().uuidString.lowercased()
            request.pool = pool
            request.name = replicaName
            request.sizeBytes = size
            request.thin = true
            replica = try await replicas.createReplica(request)
        }
        let nexusUUID = derived(replica.uuid, tag: 0x6E)     // 'n'
        let volumeUUID = derived(replica.uuid, tag: 0x76)    // 'v'
        let nexusHost = "nqn.2026-11.io.halyard:nexus:\(nexusUUID)"
        if !replica.shared || replica.allowedHosts != [nexusHost] {
            var request = Halyard_Ioengine_V1_ShareReplicaRequest()
            request.uuid = replica.uuid
            request.allowedHosts = [nexusHost]
            replica = try await replicas.shareReplica(request)
        }

        // 3. The nexus, published to any host.
        var request = Halyard_Ioengine_V1_CreateNexusRequest()
        request.uuid = nexusUUID
        request.volumeUuid = volumeUUID
        request.sizeBytes = size
        request.children = [replica.uri]
        request.publish = true
        let nexus = try await nexuses.createNexus(request)
        guard let parsed = URL(string: nexus.uri), let host = parsed.host, let port = parsed.port else {
            throw ValidationError("demo volume: the nexus's URI '\(nexus.uri)' is not nvmf://HOST:PORT/NQN")
        }
        logger.info("demo volume published", metadata: ["nexus": "\(nexus.uuid)", "replica": "\(replica.uuid)", "pool": "\(pool)",
                                                        "uri": "\(nexus.uri)"])
        return Published(nqn: nexus.nqn, uri: nexus.uri, host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
    }

    /// A UUID derived from `uuid` and `tag` (stable: the same replica gives the same volume):
    /// two FNV-1a hashes of the tag and the UUID's bytes, shaped as a version-8 UUID.
    static func derived(_ uuid: String, tag: UInt8) -> String {
        guard let parsed = UUID(uuidString: uuid) else { return UUID().uuidString.lowercased() }
        let input = [tag] + withUnsafeBytes(of: parsed.uuid) { Array($0) }
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash = seed
            for byte in input { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
        let a = fnv(0xcbf2_9ce4_8422_2325), c = fnv(0x8422_2325_cbf2_9ce4)
        var b = (0..<8).map { UInt8(truncatingIfNeeded: a >> (8 * UInt64($0))) } + (0..<8).map { UInt8(truncatingIfNeeded: c >> (8 * UInt64($0))) }
        b[6] = (b[6] & 0x0F) | 0x80   // version 8
        b[8] = (b[8] & 0x3F) | 0x80   // RFC 9562 variant
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
            .uuidString.lowercased()
    }
}
