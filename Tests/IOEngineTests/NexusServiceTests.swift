import Foundation
import GRPCCore
import IOEngine
import IOEngineAPI
import NIOCore
import NVMe
import NVMeHost
import Testing

/// Nexuses driven through the gRPC API of in-process io-engines, with real loopback NVMe/TCP: a
/// nexus on engine A over a replica of A (a local child) and one of engine B (a remote child),
/// published on A and used by a host (NVMeHost); children faulted, offlined and brought back
/// through the API; every bad request answered with its precise status code.
@Suite("io-engine nexus service", .serialized)
struct NexusServiceTests {
    static let mib = 1 << 20
    static let size: UInt64 = 64 << 20

    typealias Nexus = Halyard_Ioengine_V1_Nexus

    /// Two engines, each with a pool `pool` and a shared 64 MiB thin replica.
    static func withTwoEngines(_ body: (EngineHarness, Halyard_Ioengine_V1_Replica, EngineHarness, Halyard_Ioengine_V1_Replica) async throws -> Void)
        async throws
    {
        try await EngineFixture.withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/a", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
            try await EngineFixture.withEngine(stateDirectory: dir + "/a") { a in
                try await EngineFixture.withEngine(stateDirectory: dir + "/b") { b in
                    try await a.createPool("pool", in: dir + "/a", size: 256 << 20)
                    try await b.createPool("pool", in: dir + "/b", size: 256 << 20)
                    let ra = try await a.createReplica(UUID().uuidString.lowercased(), pool: "pool", size: size, share: true)
                    let rb = try await b.createReplica(UUID().uuidString.lowercased(), pool: "pool", size: size, share: true)
                    try await body(a, ra, b, rb)
                }
            }
        }
    }

    static func createRequest(_ uuid: String, volume: String, children: [String], size: UInt64 = size, publish: Bool = false,
                              hosts: [String] = []) -> Halyard_Ioengine_V1_CreateNexusRequest {
        var request = Halyard_Ioengine_V1_CreateNexusRequest()
        request.uuid = uuid
        request.volumeUuid = volume
        request.sizeBytes = size
        request.children = children
        request.publish = publish
        request.allowedHosts = hosts
        return request
    }

    static func get(_ h: EngineHarness, _ uuid: String) async throws -> Nexus {
        var request = Halyard_Ioengine_V1_GetNexusRequest()
        request.uuid = uuid
        return try await h.nexuses.getNexus(request)
    }

    static func child(_ h: EngineHarness, _ op: String, _ uuid: String, _ uri: String) async throws -> Nexus {
        var request = Halyard_Ioengine_V1_ChildRequest()
        request.uuid = uuid
        request.uri = uri
        switch op {
        case "add": return try await h.nexuses.addChild(request)
        case "remove": return try await h.nexuses.removeChild(request)
        case "offline": return try await h.nexuses.offlineChild(request)
        case "online": return try await h.nexuses.onlineChild(request)
        default: return try await h.nexuses.faultChild(request)
        }
    }

    /// Polls GetNexus until `done` holds (or fails the test after `timeout`).
    @discardableResult
    static func waitFor(_ h: EngineHarness, _ uuid: String, timeout: Duration = .seconds(30), _ what: String,
                        _ done: (Nexus) -> Bool) async throws -> Nexus {
        let deadline = ContinuousClock.now + timeout
        var last = try await get(h, uuid)
        while !done(last) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            last = try await get(h, uuid)
        }
        #expect(done(last), "\(what) within \(timeout): \(last)")
        return last
    }

    /// Whether connecting `host` to `nqn` fails.
    static func connectFails(_ h: EngineHarness, _ nqn: String, as host: HostIdentity) async -> Bool {
        do {
            let c = try await h.connect(nqn, as: host)
            await c.shutdown()
            return false
        } catch {
            return true
        }
    }

    static func childState(_ n: Nexus, _ uri: String) -> String? { n.children.first { $0.uri == uri }?.state }

    static func write(_ c: NVMeController, mib index: Int, seed: UInt8) async throws {
        let w = try await c.submitIO(.write(nsid: 1, lba: UInt64(index * 256), blocks: 256), data: EngineFixture.pattern(mib, seed: seed)).get()
        #expect(w.entry.status.isSuccess, "write of MiB \(index): \(w.entry.status)")
    }

    static func expectRead(_ c: NVMeController, mib index: Int, seed: UInt8) async throws {
        let r = try await c.submitIO(.read(nsid: 1, lba: UInt64(index * 256), blocks: 256, blockSize: 4096), readLength: mib).get()
        #expect(r.entry.status.isSuccess && r.data == EngineFixture.pattern(mib, seed: seed), "MiB \(index) reads back (\(r.entry.status))")
    }

    @Test("a 2-replica nexus (local + remote child): published, I/O mirrored to both, fault/online and offline/online rebuild, shutdown holds I/O, destroy cleans up")
    func mirroredAcrossEngines() async throws {
        try await Self.withTwoEngines { a, ra, b, rb in
            let uuid = UUID().uuidString.lowercased(), volume = UUID().uuidString.lowercased()
            let created = try await a.nexuses.createNexus(Self.createRequest(uuid, volume: volume, children: [ra.uri, rb.uri]))
            #expect(created.state == "Online" && !created.published && created.uri.isEmpty, "\(created)")
            #expect(created.nqn == "nqn.2026-11.io.halyard:\(volume)")
            #expect(created.children.map(\.uri) == [ra.uri, rb.uri])
            #expect(created.children.map(\.local) == [true, false], "A's own replica is opened directly, B's over NVMe/TCP")
            #expect(created.children.map(\.uuid) == [ra.uuid, rb.uuid], "a child is known by its replica UUID")
            #expect(created.children.allSatisfy { $0.state == "Online" && $0.healthy })
            #expect(created.sizeBytes == Self.size && created.blockSize == 4096 && created.minCntlid == 1 && created.maxCntlid == 0xFFEF)
            #expect(created.reservationKey != 0 && created.preemptPolicy == .holder)

            var publish = Halyard_Ioengine_V1_PublishNexusRequest()
            publish.uuid = uuid
            let published = try await a.nexuses.publishNexus(publish)
            #expect(published.published && published.uri == "nvmf://127.0.0.1:\(a.engine.nvmfPort)/\(created.nqn)", "\(published)")
            #expect(published.allowedHosts.isEmpty)

            let c = try await a.connect(created.nqn, as: EngineFixture.hostA)
            #expect(try await c.anaLogPage().groups.map(\.state) == [.optimized])
            let ns = try await c.identifyNamespace(1)
            #expect(ns.nsze == Self.size / 4096, "namespace 1 is the volume")
            for i in 0..<4 { try await Self.write(c, mib: i, seed: UInt8(i)) }
            for i in 0..<4 { try await Self.expectRead(c, mib: i, seed: UInt8(i)) }
            #expect(try await a.getReplica(ra.uuid).allocatedBytes == 4 << 20, "every write reached the local replica")
            #expect(try await b.getReplica(rb.uuid).allocatedBytes == 4 << 20, "every write reached the remote replica")
            let counted = try await Self.get(a, uuid)
            #expect(counted.io.writeOps == 4 && counted.io.writtenBytes == 4 << 20 && counted.io.readOps == 4 && counted.io.readBytes == 4 << 20)

            // Fault the remote child: Degraded, I/O goes on; online rebuilds it.
            let faulted = try await Self.child(a, "fault", uuid, rb.uri)
            #expect(faulted.state == "Degraded", "\(faulted)")
            let fc = try #require(faulted.children.first { $0.uri == rb.uri })
            #expect(fc.state == "Faulted" && fc.reason == "by request" && !fc.healthy, "\(fc)")
            try await Self.write(c, mib: 4, seed: 44)
            try await Self.expectRead(c, mib: 4, seed: 44)
            var health = Halyard_Ioengine_V1_GetHealthRecordRequest()
            health.uuid = uuid
            let degradedRecord = try await a.nexuses.getHealthRecord(health)
            #expect(degradedRecord.key == "/halyard/v1/volumes/\(volume)/nexus/\(uuid)/health")
            #expect(degradedRecord.children.map(\.uuid) == [ra.uuid, rb.uuid] && degradedRecord.children.map(\.healthy) == [true, false],
                    "the faulted child is recorded unhealthy: \(degradedRecord)")
            _ = try await Self.child(a, "online", uuid, rb.uri)
            try await Self.waitFor(a, uuid, "the remote child rebuilt") { $0.state == "Online" && $0.children.allSatisfy { $0.state == "Online" && $0.healthy } }
            #expect(try await b.getReplica(rb.uuid).allocatedBytes == 5 << 20, "the write it missed was rebuilt onto it")

            // Offline the local child, write, online: rebuilt again.
            let offline = try await Self.child(a, "offline", uuid, ra.uri)
            #expect(offline.state == "Degraded" && Self.childState(offline, ra.uri) == "Offline", "\(offline)")
            try await Self.write(c, mib: 5, seed: 55)
            _ = try await Self.child(a, "online", uuid, ra.uri)
            try await Self.waitFor(a, uuid, "the local child rebuilt") { $0.state == "Online" && $0.children.allSatisfy { $0.state == "Online" } }
            #expect(try await a.getReplica(ra.uuid).allocatedBytes == 6 << 20)
            for i in 0..<4 { try await Self.expectRead(c, mib: i, seed: UInt8(i)) }
            try await Self.expectRead(c, mib: 4, seed: 44)
            try await Self.expectRead(c, mib: 5, seed: 55)

            var historyRequest = Halyard_Ioengine_V1_GetRebuildHistoryRequest()
            historyRequest.uuid = uuid
            let history = try await a.nexuses.getRebuildHistory(historyRequest).rebuilds
            #expect(history.count == 2 && history.allSatisfy { $0.state == "Completed" && $0.finishedAtUnixNanos > 0 }, "\(history)")
            #expect(history.map(\.childUri) == [rb.uri, ra.uri])
            var listRequest = Halyard_Ioengine_V1_ListRebuildsRequest()
            listRequest.uuid = uuid
            #expect(try await a.nexuses.listRebuilds(listRequest).rebuilds.isEmpty)
            let record = try await a.nexuses.getHealthRecord(health)
            #expect(record.children.allSatisfy(\.healthy) && !record.cleanShutdown, "\(record)")

            // Shutdown: I/O is held (ANA inaccessible), the subsystem stays; a clean shutdown is recorded.
            var shutdown = Halyard_Ioengine_V1_ShutdownNexusRequest()
            shutdown.uuid = uuid
            let down = try await a.nexuses.shutdownNexus(shutdown)
            #expect(down.state == "Shutdown" && down.shutdownReason == "requested" && down.shutdownCompletedAtUnixNanos > 0, "\(down)")
            #expect(down.published)
            let held = try await c.submitIO(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 4096), readLength: 4096).get()
            #expect(held.entry.status.codeType == 3 && held.entry.status.code == 2, "held I/O: Asymmetric Access Inaccessible, got \(held.entry.status)")
            #expect(try await c.anaLogPage().groups.map(\.state) == [.inaccessible], "the listener's ANA group went inaccessible")
            #expect(try await a.nexuses.getHealthRecord(health).cleanShutdown)
            #expect(await EngineFixture.rpcError { _ = try await a.nexuses.publishNexus(publish) } == nil,
                    "publishing again (hosts unchanged) while shut down is no change")

            // Destroy: the host is disconnected, the nexus is gone, the replicas stay.
            var destroy = Halyard_Ioengine_V1_DestroyNexusRequest()
            destroy.uuid = uuid
            _ = try await a.nexuses.destroyNexus(destroy)
            #expect(await EngineFixture.isDisconnected(c), "destroy unpublished the volume")
            #expect(await EngineFixture.rpcError { _ = try await Self.get(a, uuid) }?.code == .notFound)
            #expect(try await a.nexuses.listNexuses(.init()).nexuses.isEmpty)
            #expect(await Self.connectFails(a, created.nqn, as: EngineFixture.hostA), "the subsystem is gone")
            let stillA = try await a.getReplica(ra.uuid), stillB = try await b.getReplica(rb.uuid)
            #expect(stillA.shared && stillB.shared, "the replicas stay")
            #expect(try await a.nexuses.getHealthRecord(health).cleanShutdown, "the health record outlives the nexus")
            await c.shutdown()

            // A new nexus of the same volume takes the replicas over.
            let again = try await a.nexuses.createNexus(Self.createRequest(UUID().uuidString.lowercased(), volume: volume,
                                                                           children: [ra.uri, rb.uri], publish: true))
            #expect(again.state == "Online" && again.published, "\(again)")
            let c2 = try await a.connect(again.nqn, as: EngineFixture.hostB)
            try await Self.expectRead(c2, mib: 5, seed: 55)
            await c2.shutdown()
        }
    }

    @Test("bad requests get their precise codes; identical repeats are no-ops; limits; metrics")
    func errorsAndIdempotence() async throws {
        try await Self.withTwoEngines { a, ra, b, rb in
            let uuid = UUID().uuidString.lowercased(), volume = UUID().uuidString.lowercased()
            func code(_ body: () async throws -> Void) async -> RPCError.Code? { await EngineFixture.rpcError(body)?.code }
            func create(_ r: Halyard_Ioengine_V1_CreateNexusRequest) async -> RPCError.Code? {
                await code { _ = try await a.nexuses.createNexus(r) }
            }
            let good = Self.createRequest(uuid, volume: volume, children: [ra.uri, rb.uri], publish: true)

            // INVALID_ARGUMENT, before anything is touched.
            var r = good; r.uuid = "nope"
            #expect(await create(r) == .invalidArgument)
            r = good; r.uuid = ""
            #expect(await create(r) == .invalidArgument)
            r = good; r.volumeUuid = "x"
            #expect(await create(r) == .invalidArgument)
            r = good; r.sizeBytes = 0
            #expect(await create(r) == .invalidArgument)
            r = good; r.children = []
            #expect(await create(r) == .invalidArgument)
            r = good; r.children = ["nvmf://127.0.0.1/"]
            #expect(await create(r) == .invalidArgument)
            r = good; r.children = ["iscsi://x/y"]
            #expect(await create(r) == .invalidArgument)
            r = good; r.children = [ra.uri, ra.uri]
            #expect(await create(r) == .invalidArgument)
            r = good; r.minCntlid = 10; r.maxCntlid = 5
            #expect(await create(r) == .invalidArgument)
            r = good; r.minCntlid = 1; r.maxCntlid = 0xFFF0
            #expect(await create(r) == .invalidArgument)
            r = good; r.preemptPolicy = .argkey
            #expect(await create(r) == .invalidArgument, "argkey needs a key")
            r = good; r.preemptKey = 5
            #expect(await create(r) == .invalidArgument, "a preempt key needs argkey")
            r = good; r.allowedHosts = ["bad host"]
            #expect(await create(r) == .invalidArgument)
            r = good; r.sizeBytes = Self.size * 2
            #expect(await create(r) == .invalidArgument, "larger than the children")
            r = good; r.sizeBytes = Self.size - 512
            #expect(await create(r) == .invalidArgument, "not a multiple of the block size")
            // UNAVAILABLE: no child could be opened.
            r = good; r.children = ["nvmf://127.0.0.1:1/nqn.2026-11.io.halyard:replica:\(UUID().uuidString.lowercased())"]
            #expect(await create(r) == .unavailable)
            #expect(try await a.nexuses.listNexuses(.init()).nexuses.isEmpty, "failed creates leave nothing behind")

            // Created with custom controller IDs; an identical repeat returns it; other parameters are ALREADY_EXISTS.
            r = good; r.minCntlid = 100; r.maxCntlid = 199; r.resvKey = 0xABCD
            let created = try await a.nexuses.createNexus(r)
            #expect(created.minCntlid == 100 && created.maxCntlid == 199 && created.reservationKey == 0xABCD && created.published)
            let repeated = try await a.nexuses.createNexus(r)
            #expect(repeated.uuid == created.uuid && repeated.children == created.children)
            var other = r; other.sizeBytes = 32 << 20
            #expect(await create(other) == .alreadyExists)
            other = r; other.allowedHosts = [EngineFixture.hostA.hostNQN]
            #expect(await create(other) == .alreadyExists, "published to other hosts")
            other = r; other.uuid = UUID().uuidString.lowercased()
            #expect(await create(other) == .alreadyExists, "the volume already has a nexus here")
            let c = try await a.connect(created.nqn, as: EngineFixture.hostB)
            #expect(c.controllerID >= 100 && c.controllerID <= 199, "controller ID \(c.controllerID) from the nexus's range")

            // Publish replaces the allowed hosts: hostB loses access and is disconnected.
            var publish = Halyard_Ioengine_V1_PublishNexusRequest()
            publish.uuid = uuid
            publish.allowedHosts = [EngineFixture.hostA.hostNQN]
            #expect(try await a.nexuses.publishNexus(publish).allowedHosts == [EngineFixture.hostA.hostNQN])
            #expect(await EngineFixture.isDisconnected(c))
            #expect(await Self.connectFails(a, created.nqn, as: EngineFixture.hostB), "a host not allowed cannot connect")
            publish.allowedHosts = ["bad host"]
            #expect(await code { _ = try await a.nexuses.publishNexus(publish) } == .invalidArgument)

            // NOT_FOUND.
            var get = Halyard_Ioengine_V1_GetNexusRequest()
            get.uuid = UUID().uuidString
            #expect(await code { _ = try await a.nexuses.getNexus(get) } == .notFound)
            get.uuid = "nope"
            #expect(await code { _ = try await a.nexuses.getNexus(get) } == .invalidArgument)
            #expect(await code { _ = try await Self.child(a, "fault", UUID().uuidString, rb.uri) } == .notFound)
            let stranger = "nvmf://127.0.0.1:1/nqn.2026-11.io.halyard:replica:\(UUID().uuidString.lowercased())"
            #expect(await code { _ = try await Self.child(a, "fault", uuid, stranger) } == .notFound)
            #expect(await code { _ = try await Self.child(a, "offline", uuid, stranger) } == .notFound)
            #expect(await code { _ = try await Self.child(a, "fault", uuid, "not a uri") } == .invalidArgument)
            var destroy = Halyard_Ioengine_V1_DestroyNexusRequest()
            destroy.uuid = UUID().uuidString
            #expect(await code { _ = try await a.nexuses.destroyNexus(destroy) } == .notFound)
            var health = Halyard_Ioengine_V1_GetHealthRecordRequest()
            health.uuid = UUID().uuidString
            #expect(await code { _ = try await a.nexuses.getHealthRecord(health) } == .notFound)
            health.uuid = uuid
            #expect(try await a.nexuses.getHealthRecord(health).children.count == 2)
            #expect(await code { _ = try await b.nexuses.getHealthRecord(health) } == .notFound, "B's store holds no record of A's nexus")

            // FAILED_PRECONDITION: the last online child.
            _ = try await Self.child(a, "fault", uuid, rb.uri)
            #expect(await code { _ = try await Self.child(a, "fault", uuid, ra.uri) } == .failedPrecondition)
            #expect(await code { _ = try await Self.child(a, "offline", uuid, ra.uri) } == .failedPrecondition)
            #expect(await code { _ = try await Self.child(a, "remove", uuid, ra.uri) } == .failedPrecondition)
            let removed = try await Self.child(a, "remove", uuid, rb.uri)
            #expect(removed.children.map(\.uri) == [ra.uri] && removed.state == "Online", "\(removed)")
            let added = try await Self.child(a, "add", uuid, rb.uri)
            #expect(added.children.map(\.uri) == [ra.uri, rb.uri])
            #expect(try await Self.child(a, "add", uuid, rb.uri).children.count == 2, "adding a child again is no change")
            try await Self.waitFor(a, uuid, "the added child rebuilt") { $0.state == "Online" }

            // Rebuild limits.
            let defaults = try await a.nexuses.getRebuildLimits(.init())
            #expect(defaults.concurrency == 4 && defaults.bytesPerSecond == 0 && defaults.segmentBytes == 1 << 20)
            var limits = Halyard_Ioengine_V1_SetRebuildLimitsRequest()
            limits.concurrency = 8
            limits.bytesPerSecond = 100 << 20
            let set = try await a.nexuses.setRebuildLimits(limits)
            #expect(set.concurrency == 8 && set.bytesPerSecond == 100 << 20 && set.segmentBytes == 1 << 20)
            var one = Halyard_Ioengine_V1_GetRebuildLimitsRequest()
            one.uuid = uuid
            #expect(try await a.nexuses.getRebuildLimits(one).concurrency == 8, "engine-wide limits reach every nexus")
            limits = .init(); limits.concurrency = 0
            #expect(await code { _ = try await a.nexuses.setRebuildLimits(limits) } == .invalidArgument)
            limits = .init(); limits.segmentBytes = 3000
            #expect(await code { _ = try await a.nexuses.setRebuildLimits(limits) } == .invalidArgument)
            limits = .init(); limits.uuid = uuid; limits.segmentBytes = 2 << 20
            #expect(await code { _ = try await a.nexuses.setRebuildLimits(limits) } == .invalidArgument, "a nexus's segment size is fixed")
            limits = .init(); limits.uuid = uuid; limits.bytesPerSecond = 0
            #expect(try await a.nexuses.setRebuildLimits(limits).bytesPerSecond == 0, "0: unlimited")

            // Metrics.
            let text = IOEngineMetrics(nodeName: "n", version: "t").render(engine: a.engine)
            #expect(text.contains("halyard_nexus_state{nexus=\"\(uuid)\",volume=\"\(volume)\",state=\"Online\"} 1"), "\(text.suffix(3000))")
            #expect(text.contains("halyard_nexus_child_state{nexus=\"\(uuid)\",volume=\"\(volume)\",child=\"\(rb.uuid)\",state=\"Online\"} 1"))
            #expect(text.contains("halyard_nexus_rebuilds_finished_total{nexus=\"\(uuid)\",volume=\"\(volume)\",outcome=\"completed\"} 1"))
            #expect(text.contains("halyard_nexus_written_bytes_total{nexus=\"\(uuid)\",volume=\"\(volume)\"}"))

            // Unpublish; shut down; a shut-down nexus cannot be published or changed.
            var unpublish = Halyard_Ioengine_V1_UnpublishNexusRequest()
            unpublish.uuid = uuid
            let unpublished = try await a.nexuses.unpublishNexus(unpublish)
            #expect(!unpublished.published && unpublished.uri.isEmpty)
            var shutdown = Halyard_Ioengine_V1_ShutdownNexusRequest()
            shutdown.uuid = uuid
            #expect(try await a.nexuses.shutdownNexus(shutdown).state == "Shutdown")
            #expect(try await a.nexuses.shutdownNexus(shutdown).state == "Shutdown", "shutdown is idempotent")
            publish.allowedHosts = []
            #expect(await code { _ = try await a.nexuses.publishNexus(publish) } == .failedPrecondition)
            #expect(await code { _ = try await Self.child(a, "fault", uuid, rb.uri) } == .failedPrecondition)
            destroy.uuid = uuid
            _ = try await a.nexuses.destroyNexus(destroy)
            #expect(await code { _ = try await a.nexuses.destroyNexus(destroy) } == .notFound)
        }
    }
}
