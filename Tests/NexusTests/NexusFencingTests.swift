import Foundation
import NIOCore
import NVMe
import Nexus
import Testing

/// Fencing with reservations (DESIGN.md §4.3): a second nexus on the same replicas preempts the
/// first, which shuts itself down on its next I/O (or on the preempted notice) without retiring
/// any replica; everything read afterwards is what was acknowledged.
@Suite("Nexus fencing", .serialized)
struct NexusFencingTests {
    let mirror = NexusMirrorTests()

    @Test(arguments: [false, true])
    func secondNexusPreemptsAndTheFirstShutsDown(firstHasLocalChild: Bool) async throws {
        let nodes = try await ReplicaNodes.start(count: 3)
        defer { Task { await nodes.shutdown() } }
        let volume = UUID()
        let recorderA = MemoryHealthRecorder()
        let a = try await mirror.makeNexus(nodes, recorder: recorderA, local: firstHasLocalChild ? [0] : [], volume: volume)
        let frontendA = RecordingFrontend()
        await a.attach(frontend: frontendA)
        for i in 0..<16 {
            try await a.write(lba: UInt64(i) * 64, data: pattern(lba: UInt64(i) * 64, blocks: 64, seed: 10), fua: false)
        }
        // Nexus B: another identity (its own host NQN/ID and key) on the same replicas.
        let bCalled = Date()
        let b = try await mirror.makeNexus(nodes, volume: volume)
        #expect(b.state == .online)
        // B says when it sent its first Preempt and Abort: during its create.
        let preemptedAt = try #require(b.snapshot.preemptedAt, "B preempted A's reservation")
        #expect(preemptedAt >= bCalled && preemptedAt <= Date())
        #expect(a.snapshot.preemptedAt == nil, "A took free reservations")
        #expect(b.identity.reservationKey != a.identity.reservationKey)
        // A's next write is refused by the replicas: A fences itself and holds the host.
        await #expect(throws: NexusIOError.held) {
            try await a.write(lba: 0, data: pattern(lba: 0, blocks: 64, seed: 99), fua: false)
        }
        #expect(await eventually { a.state == .shutdown })
        let snapshot = a.snapshot
        guard case .fenced = snapshot.shutdownReason else {
            Issue.record("shutdown reason \(String(describing: snapshot.shutdownReason))")
            return
        }
        let done = try #require(snapshot.shutdownCompletedAt)
        let fenced = try #require(snapshot.fencedAt)
        // Causality, not timing: A cannot learn of a preempt before the first one was sent
        // (5 ms of slack for the wall clock).
        #expect(fenced.timeIntervalSince(preemptedAt) > -0.005 && done >= fenced)
        print("fencing: A fenced \(String(format: "%.1f", fenced.timeIntervalSince(preemptedAt) * 1000)) ms and shut down "
              + "\(String(format: "%.1f", done.timeIntervalSince(preemptedAt) * 1000)) ms after B's first Preempt and Abort was sent (local child: \(firstHasLocalChild))")
        #expect(frontendA.calls.first == true)
        // No replica was retired by A.
        #expect(recorderA.record?.children.allSatisfy(\.healthy) == true)
        // B reads exactly what A acknowledged; A's refused write is nowhere.
        for i in 0..<16 {
            var data = try await b.read(lba: UInt64(i) * 64, blocks: 64)
            var expected = pattern(lba: UInt64(i) * 64, blocks: 64, seed: 10)
            #expect(data.readBytes(length: data.readableBytes) == expected.readBytes(length: expected.readableBytes))
        }
        for i in 0..<3 { #expect(try await nodes.contents(i) == nodes.contents(0)) }
        await b.shutdown()
    }

    @Test func preemptedNoticeShutsAnIdleNexusDown() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let volume = UUID()
        let a = try await mirror.makeNexus(nodes, volume: volume)
        let b = try await mirror.makeNexus(nodes, volume: volume)
        // A does no I/O: the replicas' reservation notices (AEN + log page 80h) reach it.
        #expect(await eventually { a.state == .shutdown })
        #expect(b.state == .online)
        await b.shutdown()
    }

    @Test func argKeyPolicyRefusesAnUnexpectedHolder() async throws {
        let nodes = try await ReplicaNodes.start(count: 2)
        defer { Task { await nodes.shutdown() } }
        let volume = UUID()
        let a = try await mirror.makeNexus(nodes, volume: volume)
        await #expect(throws: NexusError.self) {
            _ = try await mirror.makeNexus(nodes, volume: volume, policy: .argKey(0xDEAD))
        }
        #expect(a.state == .online)
        // With the right key it preempts.
        let b = try await mirror.makeNexus(nodes, volume: volume, policy: .argKey(a.identity.reservationKey))
        #expect(b.state == .online)
        await b.shutdown()
        await a.shutdown()
    }
}
