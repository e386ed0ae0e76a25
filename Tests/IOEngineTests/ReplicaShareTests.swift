import Foundation
import GRPCCore
import IOEngine
import IOEngineAPI
import NIOCore
import NVMe
import NVMeHost
import Testing

/// Replicas shared over NVMe/TCP, driven through the gRPC API and checked from a real host
/// (NVMeHost over loopback): thin allocation, allowed hosts, unshare/destroy disconnects, resize.
@Suite("io-engine replica shares")
struct ReplicaShareTests {
    static let mib = 1 << 20

    @Test("thin 1 GiB replica shared: 8 MiB written over NVMe/TCP reads back; allocated and pool used are 8 MiB; ranges and stats follow")
    func thinAllocation() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                try await h.createPool("pool", in: dir, size: 2 << 30)
                let uuid = UUID().uuidString.lowercased()
                let replica = try await h.createReplica(uuid, pool: "pool", size: 1 << 30, thin: true, share: true)
                let nqn = EngineFixture.nqn(uuid)
                #expect(replica.uuid == uuid && replica.name == uuid && replica.poolName == "pool")
                #expect(replica.shared && replica.nqn == nqn && replica.uri == "nvmf://127.0.0.1:\(h.engine.nvmfPort)/\(nqn)")
                #expect(replica.allocatedBytes == 0 && replica.sizeBytes == 1 << 30 && replica.thin)
                #expect(try await h.getPool("pool").committedBytes == 1 << 30)
                #expect(try await h.createReplica(uuid, pool: "pool", size: 1 << 30, thin: true, share: true) == replica,
                        "an identical CreateReplica returns the existing replica")

                let c = try await h.connect(nqn, as: EngineFixture.hostA)
                let ns = try await c.identifyNamespace(1)
                #expect(ns.nsze == (1 << 30) / 4096, "the namespace is the replica: 1 GiB of 4 KiB blocks")
                for i in 0..<8 {
                    let data = EngineFixture.pattern(Self.mib, seed: UInt8(i))
                    let w = try await c.submitIO(.write(nsid: 1, lba: UInt64(i * 256), blocks: 256), data: data).get()
                    #expect(w.entry.status.isSuccess)
                }
                for i in 0..<8 {
                    let r = try await c.submitIO(.read(nsid: 1, lba: UInt64(i * 256), blocks: 256, blockSize: 4096), readLength: Self.mib).get()
                    #expect(r.entry.status.isSuccess && r.data == EngineFixture.pattern(Self.mib, seed: UInt8(i)), "MiB \(i) reads back")
                }
                // Never written: zeroes, nothing allocated.
                let hole = try await c.submitIO(.read(nsid: 1, lba: 100_000, blocks: 16, blockSize: 4096), readLength: 65536).get()
                #expect(hole.entry.status.isSuccess && hole.data.readableBytesView.allSatisfy { $0 == 0 })

                let written = try await h.getReplica(uuid)
                #expect(written.allocatedBytes == 8 << 20, "8 MiB written into a thin 1 GiB replica allocates 8 MiB")
                let pool = try await h.getPool("pool")
                #expect(pool.usedBytes == written.allocatedBytes, "pool used \(pool.usedBytes) = the replica's allocation")

                // One block far away allocates one more extent; ranges show both pieces.
                let far = try await c.submitIO(.write(nsid: 1, lba: (512 << 20) / 4096, blocks: 1), data: EngineFixture.pattern(4096, seed: 99)).get()
                #expect(far.entry.status.isSuccess)
                var rangesRequest = Halyard_Ioengine_V1_GetAllocatedRangesRequest()
                rangesRequest.uuid = uuid
                let ranges = try await h.replicas.getAllocatedRanges(rangesRequest)
                #expect(ranges.sizeBytes == 1 << 30)
                #expect(ranges.ranges.map { [$0.offset, $0.length] } == [[0, 8 << 20], [512 << 20, 1 << 20]])
                #expect(try await h.getPool("pool").usedBytes == 9 << 20)

                let sample = try #require(h.engine.replicaSamples().first { $0.uuid.uuidString.lowercased() == uuid })
                #expect(sample.poolName == "pool" && sample.shared && sample.allocatedBytes == 9 << 20)
                let writes = sample.stats.writes.snapshot
                #expect(writes.operations == 9 && writes.bytes == UInt64(8 << 20) + 4096 && writes.errors == 0)
                #expect(sample.stats.reads.snapshot.operations == 9)
                await c.shutdown()
            }
        }
    }

    @Test("allowed hosts: a host not allowed is refused; SetReplicaAllowedHosts disconnects a host that lost access; Unshare disconnects")
    func allowedHosts() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                try await h.createPool("pool", in: dir, size: 128 << 20)
                let uuid = UUID().uuidString.lowercased()
                let nqn = EngineFixture.nqn(uuid)
                let a = EngineFixture.hostA, b = EngineFixture.hostB
                let replica = try await h.createReplica(uuid, pool: "pool", size: 16 << 20, share: true, allowedHosts: [a.hostNQN])
                #expect(replica.allowedHosts == [a.hostNQN])
                do {
                    let refused = try await h.connect(nqn, as: b)
                    Issue.record("host B connected although only host A is allowed")
                    await refused.shutdown()
                } catch NVMeHostError.connectFailed(let why) {
                    #expect(why.contains("refused"), "\(why)")
                }
                let ca = try await h.connect(nqn, as: a)
                #expect(try await ca.submitIO(.write(nsid: 1, lba: 0, blocks: 1), data: EngineFixture.pattern(4096, seed: 1)).get().entry.status.isSuccess)

                // Hand the replica to host B: A is disconnected before the answer.
                let moved = try await h.setAllowedHosts(uuid, [b.hostNQN])
                #expect(moved.allowedHosts == [b.hostNQN] && moved.shared)
                #expect(await EngineFixture.isDisconnected(ca), "host A lost access and was disconnected")
                let cb = try await h.connect(nqn, as: b)
                let r = try await cb.submitIO(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 4096), readLength: 4096).get()
                #expect(r.entry.status.isSuccess && r.data == EngineFixture.pattern(4096, seed: 1))
                await ca.shutdown()

                // Unshare: B disconnected, no NQN or URI, hosts kept in the record.
                var unshare = Halyard_Ioengine_V1_UnshareReplicaRequest()
                unshare.uuid = uuid
                let unshared = try await h.replicas.unshareReplica(unshare)
                #expect(!unshared.shared && unshared.nqn.isEmpty && unshared.uri.isEmpty && unshared.allowedHosts == [b.hostNQN])
                #expect(await EngineFixture.isDisconnected(cb))
                await cb.shutdown()
                await #expect(throws: NVMeHostError.self) { _ = try await h.connect(nqn, as: b) }

                // Share to any host.
                var share = Halyard_Ioengine_V1_ShareReplicaRequest()
                share.uuid = uuid
                let open = try await h.replicas.shareReplica(share)
                #expect(open.shared && open.allowedHosts.isEmpty)
                let ca2 = try await h.connect(nqn, as: a)
                let cb2 = try await h.connect(nqn, as: b)
                await ca2.shutdown()
                await cb2.shutdown()
            }
        }
    }

    @Test("DestroyReplica disconnects its host and returns its extents; resize: refused while connected, then grows the namespace")
    func destroyAndResize() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                try await h.createPool("pool", in: dir, size: 128 << 20)
                let doomed = UUID().uuidString.lowercased()
                try await h.createReplica(doomed, pool: "pool", size: 32 << 20, share: true)
                let c = try await h.connect(EngineFixture.nqn(doomed), as: EngineFixture.hostA)
                for i in 0..<2 {
                    let w = try await c.submitIO(.write(nsid: 1, lba: UInt64(i * 256), blocks: 256), data: EngineFixture.pattern(1 << 20, seed: 3)).get()
                    #expect(w.entry.status.isSuccess)
                }
                #expect(try await h.getPool("pool").usedBytes == 2 << 20)
                var destroy = Halyard_Ioengine_V1_DestroyReplicaRequest()
                destroy.uuid = doomed
                _ = try await h.replicas.destroyReplica(destroy)
                #expect(await EngineFixture.isDisconnected(c), "destroying a shared replica disconnects its host")
                await c.shutdown()
                let pool = try await h.getPool("pool")
                #expect(pool.usedBytes == 0 && pool.replicaCount == 0 && pool.committedBytes == 0)
                #expect(await EngineFixture.rpcError { _ = try await h.getReplica(doomed) }?.code == .notFound)

                let uuid = UUID().uuidString.lowercased()
                try await h.createReplica(uuid, pool: "pool", size: 8 << 20, share: true)
                let host = try await h.connect(EngineFixture.nqn(uuid), as: EngineFixture.hostA)
                #expect(try await host.submitIO(.write(nsid: 1, lba: 0, blocks: 1), data: EngineFixture.pattern(4096, seed: 4)).get().entry.status.isSuccess)
                var resize = Halyard_Ioengine_V1_ResizeReplicaRequest()
                resize.uuid = uuid
                resize.sizeBytes = 16 << 20
                let busy = await EngineFixture.rpcError { _ = try await h.replicas.resizeReplica(resize) }
                #expect(busy?.code == .failedPrecondition && busy?.message.contains(uuid) == true, "\(String(describing: busy))")
                #expect(try await h.getReplica(uuid).sizeBytes == 8 << 20, "a refused resize changes nothing")
                await host.shutdown()
                // The target forgets the controller once its connections have closed.
                var resized: Halyard_Ioengine_V1_Replica?
                let deadline = ContinuousClock.now + .seconds(3)
                while resized == nil {
                    do {
                        resized = try await h.replicas.resizeReplica(resize)
                    } catch let error as RPCError where error.code == .failedPrecondition && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                let grown = try #require(resized)
                #expect(grown.sizeBytes == 16 << 20 && grown.shared)
                let again = try await h.connect(EngineFixture.nqn(uuid), as: EngineFixture.hostA)
                #expect(try await again.identifyNamespace(1).nsze == (16 << 20) / 4096, "the re-made namespace reports the new size")
                let r = try await again.submitIO(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 4096), readLength: 4096).get()
                #expect(r.data == EngineFixture.pattern(4096, seed: 4), "data survives the resize")
                await again.shutdown()
            }
        }
    }

    @Test("concurrent identical CreateReplica calls (control-plane retries) make one replica; concurrent distinct ones all land")
    func concurrentCreates() async throws {
        try await EngineFixture.withTemporaryDirectory { dir in
            try await EngineFixture.withEngine(stateDirectory: dir) { h in
                try await h.createPool("pool", in: dir, size: 128 << 20)
                let uuid = UUID().uuidString.lowercased()
                let results = try await withThrowingTaskGroup(of: Halyard_Ioengine_V1_Replica.self) { group in
                    for _ in 0..<8 {
                        group.addTask { try await h.createReplica(uuid, pool: "pool", size: 16 << 20, thin: false, share: true) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.count == 8 && Set(results.map(\.uuid)) == [uuid] && results.allSatisfy(\.shared))
                var pool = try await h.getPool("pool")
                #expect(pool.replicaCount == 1 && pool.usedBytes == 16 << 20 && pool.committedBytes == 16 << 20,
                        "one thick replica's extents, not eight")

                let others = (0..<6).map { _ in UUID().uuidString.lowercased() }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for other in others {
                        group.addTask { _ = try await h.createReplica(other, pool: "pool", size: 4 << 20, share: true) }
                    }
                    try await group.waitForAll()
                }
                var list = Halyard_Ioengine_V1_ListReplicasRequest()
                list.pool = "pool"
                let listed = try await h.replicas.listReplicas(list).replicas
                #expect(Set(listed.map(\.uuid)) == Set(others + [uuid]))
                #expect(listed.allSatisfy { $0.shared && $0.nqn == EngineFixture.nqn($0.uuid) })
                pool = try await h.getPool("pool")
                #expect(pool.replicaCount == 7 && pool.committedBytes == (16 + 6 * 4) << 20)
                let node = try await h.node.getNode(Halyard_Ioengine_V1_GetNodeRequest())
                #expect(node.replicaCount == 7)
            }
        }
    }
}
