import Foundation
import GRPCCore
import IOEngine
import IOEngineAPI
import NIOCore
import NVMe
import NVMeHost
import StoragePool
import Testing

/// A new io-engine on the same state directory: pools (runtime-created ones through
/// `pools.json`, start-up disks), replicas, data, share state and PTPL reservations come back;
/// a pool whose disk vanished is listed FAULTED and the others are still served.
@Suite("io-engine restart")
struct RestartTests {
    @Test("restart keeps pools (pools.json and a start-up disk), replicas, data, shares with their hosts, and a PTPL registration")
    func restartKeepsEverything() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            // A pool made before the engine ran, handed to it as a start-up disk.
            let bootDisk = "\(dir)/boot.img"
            let boot = try await Pool.create(path: bootDisk, options: PoolCreateOptions(name: "boot", createFileSize: 64 << 20), ioThreads: 1)
            await boot.export()
            let shared = UUID().uuidString.lowercased()
            let plain = UUID().uuidString.lowercased()
            let key: UInt64 = 0xA1A1_0001
            let data = EngineFixture.pattern(1 << 20, seed: 42)
            let (firstPort, poolUUID) = try await EngineFixture.withEngine(stateDirectory: dir, importDisks: [bootDisk]) { h in
                let pool = try await h.createPool("runtime", in: dir, size: 256 << 20)
                try await h.createReplica(shared, pool: "runtime", size: 64 << 20, share: true, allowedHosts: [EngineFixture.hostA.hostNQN])
                try await h.createReplica(plain, pool: "boot", size: 8 << 20, thin: false)
                let c = try await h.connect(EngineFixture.nqn(shared), as: EngineFixture.hostA)
                #expect(try await c.submitIO(.write(nsid: 1, lba: 256, blocks: 256), data: data).get().entry.status.isSuccess)
                try await c.reservationRegister(namespaceID: 1, action: .register, newKey: key, persistence: .set)
                let report = try await c.reservationReport(namespaceID: 1)
                #expect(report.persistThroughPowerLoss && report.registrants.map(\.key) == [key])
                await c.shutdown()
                return (h.engine.nvmfPort, pool.uuid)
            }
            let registry = try String(contentsOfFile: "\(dir)/pools.json", encoding: .utf8)
            #expect(registry.contains("runtime") && registry.contains("boot"), "pools.json lists both pools: \(registry)")

            // No start-up disks this time: pools.json alone brings both back.
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                let pools = try await h.listPools()
                #expect(pools.map(\.name) == ["boot", "runtime"])
                #expect(pools.allSatisfy { $0.state == .online })
                #expect(pools.first { $0.name == "runtime" }?.uuid == poolUUID)
                let replica = try await h.getReplica(shared)
                #expect(replica.shared && replica.allowedHosts == [EngineFixture.hostA.hostNQN])
                #expect(replica.uri == "nvmf://127.0.0.1:\(h.engine.nvmfPort)/\(EngineFixture.nqn(shared))")
                #expect(replica.allocatedBytes == 1 << 20)
                let other = try await h.getReplica(plain)
                #expect(!other.shared && other.poolName == "boot" && other.allocatedBytes == 8 << 20 && !other.thin)
                _ = firstPort

                // The share is served again, to host A only, with the data and the registration.
                await #expect(throws: NVMeHostError.self) { _ = try await h.connect(EngineFixture.nqn(shared), as: EngineFixture.hostB) }
                let c = try await h.connect(EngineFixture.nqn(shared), as: EngineFixture.hostA)
                let r = try await c.submitIO(.read(nsid: 1, lba: 256, blocks: 256, blockSize: 4096), readLength: 1 << 20).get()
                #expect(r.entry.status.isSuccess && r.data == data, "data written before the restart reads back")
                let report = try await c.reservationReport(namespaceID: 1)
                #expect(report.persistThroughPowerLoss, "PTPL is still on")
                #expect(report.registrants.map(\.key) == [key], "the registration made with PTPL survived the restart")
                #expect(report.registrants.first?.hostID == HostIdentifier(bytes: EngineFixture.hostA.hostID))
                // Still in force: a write with the registered key's host works, unregister works.
                try await c.reservationRegister(namespaceID: 1, action: .unregister, currentKey: key)
                #expect(try await c.reservationReport(namespaceID: 1).registrants.isEmpty)
                await c.shutdown()
            }
        }
    }

    @Test("a pool whose disk vanished is FAULTED after restart (named, with the reason); the engine serves the others")
    func vanishedDisk() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            let keep = UUID().uuidString.lowercased()
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                try await h.createPool("keep", in: dir, size: 64 << 20)
                try await h.createPool("gone", in: dir, size: 64 << 20)
                try await h.createReplica(keep, pool: "keep", size: 4 << 20, share: true)
                try await h.createReplica(UUID().uuidString, pool: "gone", size: 4 << 20, share: true)
            }
            try FileManager.default.removeItem(atPath: "\(dir)/gone.img")
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                let pools = try await h.listPools()
                #expect(pools.map(\.name) == ["gone", "keep"])
                let gone = try #require(pools.first { $0.name == "gone" })
                #expect(gone.state == .faulted && gone.disk == "\(dir)/gone.img")
                #expect(gone.fault.contains("\(dir)/gone.img"), "the fault says why: \(gone.fault)")
                #expect(try await h.getPool("gone") == gone)
                #expect(h.engine.poolInfos().first { $0.name == "gone" }?.state != .online)
                let refused = await EngineFixture.rpcError {
                    _ = try await h.createReplica(UUID().uuidString, pool: "gone", size: 4096)
                }
                #expect(refused?.code == .unavailable && refused?.message.contains("gone") == true, "\(String(describing: refused))")
                var destroy = Halyard_Ioengine_V1_DestroyPoolRequest()
                destroy.name = "gone"
                #expect(await EngineFixture.rpcError { _ = try await h.pools.destroyPool(destroy) }?.code == .unavailable)

                // The other pool is served.
                #expect(pools.first { $0.name == "keep" }?.state == .online)
                let c = try await h.connect(EngineFixture.nqn(keep), as: EngineFixture.hostA)
                #expect(try await c.submitIO(.write(nsid: 1, lba: 0, blocks: 1), data: EngineFixture.pattern(4096, seed: 5)).get().entry.status.isSuccess)
                await c.shutdown()

                // Exporting the faulted pool forgets it (pools.json too).
                var export = Halyard_Ioengine_V1_ExportPoolRequest()
                export.name = "gone"
                #expect(try await h.pools.exportPool(export).state == .faulted)
                #expect(try await h.listPools().map(\.name) == ["keep"])
                #expect(!(try String(contentsOfFile: "\(dir)/pools.json", encoding: .utf8)).contains("gone"))
            }
        }
    }
}
