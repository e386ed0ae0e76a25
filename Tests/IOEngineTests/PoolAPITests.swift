import Foundation
import GRPCCore
import IOEngine
import IOEngineAPI
import Testing

/// Pools over the gRPC API (in-process transport): creation on a sparse file and its space
/// accounting, idempotent repeats, export/import, destroy, and what GetNode reports.
@Suite("io-engine pools")
struct PoolAPITests {
    @Test("CreatePool on a sparse file: capacity < file size, used 0, file still sparse; identical repeat returns it; GetNode counts it")
    func createOnSparseFile() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                let pool = try await h.createPool("pool-a", in: dir, size: 256 << 20)
                #expect(pool.name == "pool-a" && pool.state == .online && pool.fault.isEmpty)
                #expect(UUID(uuidString: pool.uuid) != nil)
                #expect(pool.blockSize == 4096 && pool.extentSize == 1 << 20)
                // Metadata (superblocks, journal ≥ 4 MiB, two checkpoints) comes off the top.
                #expect(pool.capacityBytes > 200 << 20 && pool.capacityBytes < 256 << 20, "capacity \(pool.capacityBytes)")
                #expect(pool.capacityBytes % (1 << 20) == 0)
                #expect(pool.usedBytes == 0 && pool.committedBytes == 0 && pool.replicaCount == 0)
                let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/pool-a.img")
                #expect((attributes[.size] as? NSNumber)?.uint64Value == 256 << 20)
                var st = stat()
                #expect(stat("\(dir)/pool-a.img", &st) == 0)
                #expect(st.st_blocks * 512 < 32 << 20, "the pool file stays sparse: \(st.st_blocks * 512) bytes allocated")

                let again = try await h.createPool("pool-a", in: dir, size: 256 << 20)
                #expect(again.uuid == pool.uuid, "an identical CreatePool returns the existing pool")
                #expect(try await h.getPool("pool-a") == pool)
                #expect(try await h.listPools().map(\.name) == ["pool-a"])
                #expect(h.engine.poolInfos().map(\.name) == ["pool-a"])

                let node = try await h.node.getNode(Halyard_Ioengine_V1_GetNodeRequest())
                #expect(node.name == "test-node" && node.version == "test" && node.store == "embedded")
                #expect(node.nvmfEndpoint == "127.0.0.1:\(h.engine.nvmfPort)" && h.engine.nvmfPort > 0)
                #expect(node.poolCount == 1 && node.replicaCount == 0)
            }
        }
    }

    @Test("ExportPool closes it (replicas unshared, data kept), ImportPool brings it back; DestroyPool force removes it and its file")
    func exportImportDestroy() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                let pool = try await h.createPool("pool-b", in: dir, size: 128 << 20)
                let uuid = UUID().uuidString.lowercased()
                let replica = try await h.createReplica(uuid, pool: "pool-b", size: 16 << 20, thin: false, share: true)
                #expect(replica.shared && !replica.thin && replica.allocatedBytes == 16 << 20)
                var export = Halyard_Ioengine_V1_ExportPoolRequest()
                export.name = "pool-b"
                let exported = try await h.pools.exportPool(export)
                #expect(exported.uuid == pool.uuid && exported.replicaCount == 1)
                #expect(try await h.listPools().isEmpty)
                #expect(await EngineFixture.rpcError { _ = try await h.getReplica(uuid) }?.code == .notFound)

                var importRequest = Halyard_Ioengine_V1_ImportPoolRequest()
                importRequest.disk = "\(dir)/pool-b.img"
                let imported = try await h.pools.importPool(importRequest)
                #expect(imported.uuid == pool.uuid && imported.name == "pool-b" && imported.replicaCount == 1)
                #expect(imported.usedBytes == 16 << 20)
                #expect(try await h.pools.importPool(importRequest).uuid == pool.uuid, "importing an imported disk returns the pool")
                let back = try await h.getReplica(uuid)
                #expect(back.shared && back.uri.hasSuffix("/" + EngineFixture.nqn(uuid)), "the share is served again after import")

                var destroy = Halyard_Ioengine_V1_DestroyPoolRequest()
                destroy.name = "pool-b"
                let refused = await EngineFixture.rpcError { _ = try await h.pools.destroyPool(destroy) }
                #expect(refused?.code == .failedPrecondition && refused?.message.contains("pool-b") == true)
                #expect(try await h.getReplica(uuid).shared, "a refused destroy leaves the share alone")
                destroy.force = true
                _ = try await h.pools.destroyPool(destroy)
                #expect(try await h.listPools().isEmpty)
                #expect(!FileManager.default.fileExists(atPath: "\(dir)/pool-b.img"), "the pool created the file, so destroy removes it")
                let registry = try String(contentsOfFile: "\(dir)/pools.json", encoding: .utf8)
                #expect(!registry.contains("pool-b"))
            }
        }
    }
}
