import Foundation
import NIOCore
import NVMe
import Nexus
import Testing

/// Rebuilds driven by the nexus over real NVMe/TCP replicas: a returning child gets a partial
/// rebuild from its durable missed-segment log, a new child a full one, while writes continue.
@Suite("Nexus rebuild", .serialized)
struct NexusRebuildTests {
    let mirror = NexusMirrorTests()

    @Test func onlineAfterRestartIsAPartialRebuildOfTheMissedSegments() async throws {
        let nodes = try await ReplicaNodes.start(count: 3)
        defer { Task { await nodes.shutdown() } }
        let logs = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let recorder = MemoryHealthRecorder()
        let nexus = try await mirror.makeNexus(nodes, recorder: recorder, logDirectory: logs)
        // Write across most of the volume first.
        for lba in stride(from: UInt64(0), to: nodes.blockCount - 256, by: 256) {
            try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 256, seed: 1), fua: false)
        }
        await nodes.stop(2)
        // Writes while node 2 is down: 5 segments of 64 KiB (128 blocks each), some twice.
        let missed: [UInt64] = [0, 3, 7, 40, 100]
        var expectedSegments = Set<UInt64>()
        for (round, segment) in (missed + missed.prefix(2)).enumerated() {
            let lba = segment * 128 + 5
            try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 16, seed: 2 + UInt64(round)), fua: false)
            expectedSegments.insert(segment)
        }
        #expect(await eventually { recorder.healthy(nodes.replica(2)) == false })
        try await nodes.restart(2)
        try await nexus.onlineChild(uri: nodes.uri(2))
        #expect(await eventually(30) { nexus.state == .online })
        let done = try #require(nexus.rebuildHistory.last)
        guard case .partial(let segments) = done.kind else {
            Issue.record("rebuild kind \(done.kind), not partial")
            return
        }
        #expect(Set(segments) == expectedSegments)
        #expect(done.bytesCopied == UInt64(expectedSegments.count) * 64 * 1024)
        // The record follows the state change (persisted in the background; false until then is safe).
        #expect(await eventually { recorder.healthy(nodes.replica(2)) == true })
        #expect(try await nodes.contents(2) == nodes.contents(0))
        #expect(try await nodes.contents(1) == nodes.contents(0))
        #expect(nexus.snapshot.children[2].hasRebuildLog == false)
        await nexus.shutdown()
    }

    @Test func addedChildGetsAFullRebuildWhileWritesContinue() async throws {
        let nodes = try await ReplicaNodes.start(count: 2, blockCount: 8192)
        defer { Task { await nodes.shutdown() } }
        let nexus = try await mirror.makeNexus(nodes)
        for lba in stride(from: UInt64(0), to: 8192, by: 256) {
            try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 256, seed: 7), fua: false)
        }
        let added = try await nodes.add()
        let writer = Task {
            for i in 0..<300 {
                let lba = UInt64((i * 37) % 8000)
                try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 16, seed: 100 + UInt64(i)), fua: false)
            }
        }
        try await nexus.addChild(uri: nodes.uri(added))
        try await writer.value
        #expect(await eventually(30) { nexus.state == .online })
        let done = try #require(nexus.rebuildHistory.last)
        #expect(done.kind == .full)
        #expect(done.state == .completed)
        #expect(try await nodes.contents(added) == nodes.contents(0))
        #expect(try await nodes.contents(1) == nodes.contents(0))
        await nexus.shutdown()
    }

    @Test func logSurvivesANexusRestartAndDrivesThePartialRebuild() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let logs = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let volume = UUID()
        let first = try await mirror.makeNexus(nodes, logDirectory: logs, volume: volume)
        try await first.offlineChild(uri: nodes.uri(1))
        try await first.write(lba: 128 * 9, data: pattern(lba: 128 * 9, blocks: 8, seed: 3), fua: false)
        // The io-engine "restarts": the nexus is gone, the log file stays.
        await first.shutdown()
        // A new nexus of the same volume on this node finds the log: child 1 is rebuilt, partially.
        let second = try await mirror.makeNexus(nodes, logDirectory: logs, volume: volume)
        #expect(await eventually(30) { second.state == .online })
        let done = try #require(second.rebuildHistory.last)
        #expect(done.kind == .partial(segments: [9]))
        #expect(try await nodes.contents(1) == nodes.contents(0))
        await second.shutdown()
    }

    @Test func writesDuringOfflineOnlineAndPartialRebuildAllLand() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let logs = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let nexus = try await mirror.makeNexus(nodes, logDirectory: logs)
        let writer = Task {
            for i in 0..<600 {
                let lba = UInt64((i * 97) % 16_000)
                try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 8, seed: UInt64(i)), fua: false)
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        try await nexus.offlineChild(uri: nodes.uri(1))
        try await Task.sleep(for: .milliseconds(200))
        try await nexus.onlineChild(uri: nodes.uri(1))
        try await writer.value
        #expect(await eventually(30) { nexus.state == .online })
        let done = try #require(nexus.rebuildHistory.last)
        guard case .partial = done.kind else {
            Issue.record("rebuild kind \(done.kind), not partial")
            return
        }
        #expect(try await nodes.contents(1) == nodes.contents(0))
        await nexus.shutdown()
    }

    @Test func aChildThatFailsItsFullRebuildNeedsAFullOneAgain() async throws {
        let nodes = try await ReplicaNodes.start(count: 1)
        defer { Task { await nodes.shutdown() } }
        let logs = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let nexus = try await mirror.makeNexus(nodes, logDirectory: logs)
        for lba in stride(from: UInt64(0), to: nodes.blockCount, by: 512) {
            try await nexus.write(lba: lba, data: pattern(lba: lba, blocks: 512, seed: 9), fua: false)
        }
        let added = try await nodes.add()
        try nexus.setRebuildLimits(RebuildLimits(segmentBytes: 64 << 10, concurrency: 1, bytesPerSecond: 1 << 20))
        try await nexus.addChild(uri: nodes.uri(added))
        try await Task.sleep(for: .milliseconds(300))
        await nodes.stop(added)  // its rebuild fails part-way
        #expect(await eventually(10) {
            if case .faulted = nexus.snapshot.children[1].state { return true }
            return false
        })
        #expect(nexus.snapshot.children[1].hasRebuildLog == false)
        try await nexus.write(lba: 3, data: pattern(lba: 3, blocks: 1, seed: 10), fua: false)
        try await nodes.restart(added)
        try nexus.setRebuildLimits(RebuildLimits(segmentBytes: 64 << 10))
        try await nexus.onlineChild(uri: nodes.uri(added))
        #expect(await eventually(30) { nexus.state == .online })
        #expect(nexus.rebuildHistory.last?.kind == .full)
        #expect(try await nodes.contents(added) == nodes.contents(0))
        await nexus.shutdown()
    }

    @Test func childManagementRefusals() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let nexus = try await mirror.makeNexus(nodes)
        await #expect(throws: NexusError.self) { try await nexus.offlineChild(uri: "nvmf://127.0.0.1:1/nqn.x") }
        try await nexus.offlineChild(uri: nodes.uri(1))
        #expect(nexus.state == .degraded)
        // The only online child can be neither offlined nor removed.
        await #expect(throws: NexusError.self) { try await nexus.offlineChild(uri: nodes.uri(0)) }
        await #expect(throws: NexusError.self) { try await nexus.removeChild(uri: nodes.uri(0)) }
        try await nexus.removeChild(uri: nodes.uri(1))
        #expect(nexus.snapshot.children.count == 1)
        #expect(nexus.state == .online)
        await nexus.shutdown()
    }
}
