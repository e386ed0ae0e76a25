import Foundation
import NIOCore
import NVMe
import Nexus
import Synchronization
import Testing

/// Mirroring, reads, child faults and the hold, over real NVMe/TCP replicas on loopback.
@Suite("Nexus mirroring", .serialized)
struct NexusMirrorTests {
    func makeNexus(_ nodes: ReplicaNodes, children: [Int]? = nil, recorder: MemoryHealthRecorder = MemoryHealthRecorder(),
                   local: Set<Int> = [], logDirectory: String? = nil, uuid: UUID = UUID(), volume: UUID = UUID(),
                   policy: PreemptPolicy = .holder) async throws -> Nexus {
        var configuration = NexusConfiguration(uuid: uuid, volumeUUID: volume,
                                               sizeBytes: nodes.blockCount * UInt64(ReplicaNodes.blockSize),
                                               children: (children ?? Array(0..<nodes.count)).map(nodes.uri))
        configuration.rebuildLogDirectory = logDirectory
        configuration.preemptPolicy = policy
        configuration.rebuildLimits = try RebuildLimits(segmentBytes: 64 << 10)
        return try await Nexus.create(configuration, connector: TestConnector(nodes: nodes, local: local), health: recorder)
    }

    @Test(arguments: IOPath.allCases) func writesReachEveryChildAndReadsRoundRobin(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 3)
        defer { Task { await nodes.shutdown() } }
        let recorder = MemoryHealthRecorder()
        let nexus = try await makeNexus(nodes, recorder: recorder, local: [0])
        #expect(nexus.state == .online)
        #expect(recorder.record == NexusHealthRecord(cleanShutdown: false, children: (0..<3).map {
            .init(uuid: nodes.replica($0).uuidString.lowercased(), healthy: true)
        }))
        for i in 0..<32 {
            try await nexus.write(lba: UInt64(i * 64), data: pattern(lba: UInt64(i * 64), blocks: 64, seed: 1), fua: false, via: path)
        }
        try await nexus.flush()
        let first = try await nodes.contents(0)
        for i in 1..<3 { #expect(try await nodes.contents(i) == first, "replica \(i) differs from replica 0") }
        for i in 0..<6 {
            var data = try await nexus.read(lba: UInt64(i * 64), blocks: 64, via: path)
            var expected = pattern(lba: UInt64(i * 64), blocks: 64, seed: 1)
            #expect(data.readBytes(length: data.readableBytes) == expected.readBytes(length: expected.readableBytes))
        }
        await nexus.shutdown()
        #expect(nexus.state == .shutdown)
        #expect(recorder.record?.cleanShutdown == true)
    }

    @Test(arguments: IOPath.allCases) func badRequestsGetPreciseErrors(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 1)
        defer { Task { await nodes.shutdown() } }
        let nexus = try await makeNexus(nodes)
        await #expect(throws: NexusIOError.outOfRange) { try await nexus.read(lba: nodes.blockCount, blocks: 1, via: path) }
        await #expect(throws: NexusIOError.outOfRange) {
            try await nexus.write(lba: UInt64.max - 1, data: pattern(lba: 0, blocks: 4, seed: 0), fua: false, via: path)
        }
        var odd = ByteBufferAllocator().buffer(capacity: 100)
        odd.writeRepeatingByte(1, count: 100)
        await #expect(throws: NexusIOError.misaligned) { try await nexus.write(lba: 0, data: odd, fua: false, via: path) }
        #expect(NexusIOError.held.nvmeStatus == .anaInaccessible)
        // The nexus still serves after the refusals.
        try await nexus.write(lba: 0, data: pattern(lba: 0, blocks: 8, seed: 2), fua: true, via: path)
        await nexus.shutdown()
    }

    @Test func createRefusesBadArguments() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let connector = TestConnector(nodes: nodes)
        var tooBig = NexusConfiguration(uuid: UUID(), volumeUUID: UUID(), sizeBytes: nodes.blockCount * 512 + 512,
                                        children: nodes.uris)
        await #expect(throws: NexusError.self) { try await Nexus.create(tooBig, connector: connector, health: MemoryHealthRecorder()) }
        tooBig.sizeBytes = 1000
        await #expect(throws: NexusError.self) { try await Nexus.create(tooBig, connector: connector, health: MemoryHealthRecorder()) }
        let duplicate = NexusConfiguration(uuid: UUID(), volumeUUID: UUID(), sizeBytes: 1 << 20, children: [nodes.uri(0), nodes.uri(0)])
        await #expect(throws: NexusError.self) { try await Nexus.create(duplicate, connector: connector, health: MemoryHealthRecorder()) }
        let unreachable = NexusConfiguration(uuid: UUID(), volumeUUID: UUID(), sizeBytes: 1 << 20,
                                             children: ["nvmf://127.0.0.1:1/nqn.2026-11.io.halyard:replica:\(UUID())"])
        await #expect(throws: NexusError.self) { try await Nexus.create(unreachable, connector: connector, health: MemoryHealthRecorder()) }
    }

    @Test(arguments: IOPath.allCases) func deadChildIsFaultedAndRecordedWhileWritesGoOn(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 3)
        defer { Task { await nodes.shutdown() } }
        let recorder = MemoryHealthRecorder()
        let nexus = try await makeNexus(nodes, recorder: recorder)
        let writer = Task {
            for i in 0..<200 {
                let lba = UInt64(i % 128) * 64
                try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 64, seed: UInt64(i)), fua: false, via: path)
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        await nodes.stop(2)
        try await writer.value  // no write failed
        #expect(await eventually { nexus.state == .degraded })
        let snapshot = nexus.snapshot
        guard case .faulted = snapshot.children[2].state else {
            Issue.record("child 2 is \(snapshot.children[2].state), not faulted")
            return
        }
        #expect(recorder.healthy(nodes.replica(2)) == false)
        #expect(recorder.healthy(nodes.replica(0)) == true)
        #expect(recorder.healthy(nodes.replica(1)) == true)
        #expect(try await nodes.contents(0) == nodes.contents(1))
        await nexus.shutdown()
    }

    @Test(arguments: IOPath.allCases) func readsOfADeadChildAreRetriedOnAnother(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 3)
        defer { Task { await nodes.shutdown() } }
        let recorder = MemoryHealthRecorder()
        let nexus = try await makeNexus(nodes, recorder: recorder, local: [0])
        try await nexus.write(lba: 0, data: pattern(lba: 0, blocks: 16, seed: 9), fua: false, via: path)
        await nodes.stop(2)
        // Round robin: at least one of these goes to the dead child first.
        for _ in 0..<6 {
            var data = try await nexus.read(lba: 0, blocks: 16, via: path)
            var expected = pattern(lba: 0, blocks: 16, seed: 9)
            #expect(data.readBytes(length: data.readableBytes) == expected.readBytes(length: expected.readableBytes))
        }
        #expect(await eventually { nexus.state == .degraded })
        #expect(recorder.healthy(nodes.replica(2)) == false)
        await nexus.shutdown()
    }

    @Test(arguments: IOPath.allCases) func lastHealthyChildIsNeverRecordedUnhealthyAndIOIsHeld(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 1)
        defer { Task { await nodes.shutdown() } }
        let recorder = MemoryHealthRecorder()
        let nexus = try await makeNexus(nodes, recorder: recorder)
        try await nexus.write(lba: 0, data: pattern(lba: 0, blocks: 8, seed: 3), fua: false, via: path)
        await nodes.stop(0)
        await #expect(throws: NexusIOError.held) {
            try await nexus.write(lba: 0, data: pattern(lba: 0, blocks: 8, seed: 4), fua: false, via: path)
        }
        #expect(nexus.state == .faulted)
        #expect(recorder.healthy(nodes.replica(0)) == true)
        await #expect(throws: NexusIOError.held) { try await nexus.read(lba: 0, blocks: 8, via: path) }
        // It comes back: onlined directly (every acknowledged write is on it), I/O flows again.
        try await nodes.restart(0)
        try await nexus.onlineChild(uri: nodes.uri(0))
        #expect(nexus.state == .online)
        var data = try await nexus.read(lba: 0, blocks: 8, via: path)
        var expected = pattern(lba: 0, blocks: 8, seed: 3)
        #expect(data.readBytes(length: data.readableBytes) == expected.readBytes(length: expected.readableBytes))
        await nexus.shutdown()
    }

    @Test(arguments: IOPath.allCases) func storeOutageDoesNotStopWritesThatNeedNoHealthChange(path: IOPath) async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let recorder = MemoryHealthRecorder()
        let nexus = try await makeNexus(nodes, recorder: recorder)
        recorder.setFailing(true)
        for i in 0..<50 {
            try await nexus.write(lba: UInt64(i) * 8, data: pattern(lba: UInt64(i) * 8, blocks: 8, seed: 5), fua: false, via: path)
        }
        _ = try await nexus.read(lba: 0, blocks: 8, via: path)
        // A child dies while the store is down. Once the nexus has retired it, a write skips it
        // and so may not be acknowledged before the record says so: it waits for the store.
        await nodes.stop(1)
        let first = Task { try await nexus.write(lba: 0, data: pattern(lba: 0, blocks: 8, seed: 6), fua: false, via: path) }
        #expect(await eventually { nexus.state == .degraded })
        let done = Atomic<Bool>(false)
        let blocked = Task {
            try await nexus.write(lba: 8, data: pattern(lba: 8, blocks: 8, seed: 7), fua: false, via: path)
            done.store(true, ordering: .sequentiallyConsistent)
        }
        try await Task.sleep(for: .milliseconds(700))
        let acknowledgedEarly = done.load(ordering: .sequentiallyConsistent)
        #expect(!acknowledgedEarly, "a write skipping a child recorded healthy was acknowledged")
        #expect(recorder.healthy(nodes.replica(1)) == true, "the store is down: nothing can be recorded yet")
        recorder.setFailing(false)
        try await blocked.value
        try await first.value
        #expect(recorder.healthy(nodes.replica(1)) == false)
        #expect(nexus.state == .degraded)
        // Reads and writes go on with the remaining child.
        try await nexus.write(lba: 16, data: pattern(lba: 16, blocks: 8, seed: 8), fua: false, via: path)
        _ = try await nexus.read(lba: 16, blocks: 8, via: path)
        await nexus.shutdown()
    }

    @Test func shutdownIsIdempotentAndHoldsIO() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let nexus = try await makeNexus(nodes)
        let frontend = RecordingFrontend()
        await nexus.attach(frontend: frontend)
        async let a: Void = nexus.shutdown()
        async let b: Void = nexus.shutdown()
        _ = await (a, b)
        await nexus.shutdown()
        #expect(nexus.state == .shutdown)
        #expect(frontend.calls == [true])
        await #expect(throws: NexusIOError.held) { try await nexus.read(lba: 0, blocks: 1) }
        await #expect(throws: NexusError.self) { try await nexus.addChild(uri: nodes.uri(0)) }
    }
}

/// Records what the nexus asked of its published subsystem.
final class RecordingFrontend: NexusFrontend {
    private let recorded = Mutex<[Bool]>([])
    var calls: [Bool] { recorded.withLock { $0 } }
    func setHeld(_ held: Bool) async { recorded.withLock { $0.append(held) } }
}
