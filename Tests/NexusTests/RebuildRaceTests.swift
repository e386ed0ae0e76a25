import NIOCore
@testable import Nexus
import Testing

/// The ordering a rebuild copy and a host write to the same segment must keep, forced
/// deterministically with hooks, once through ``SegmentLocks`` and once with the host write
/// bypassing them (holding a lock set the job does not use). The bypassed runs must lose the
/// host's write on the destination — that is what the locks are for:
///
/// - copy first: the copy has read the old source data; the host writes new data to both
///   children; the copy then writes its old data over the new on the destination.
/// - host first: the host's write reached the destination but not yet the source; the copy
///   reads the old source data and writes it over the new on the destination; the host's
///   source write lands last. Source new, destination old.
///
/// With the locks, the host write waits for the copy (first case) or the copy waits for the
/// host write (second case), and both children end identical, holding the host's data.
@Suite("Rebuild copy vs host write race")
struct RebuildRaceTests {
    static let geometry = SegmentGeometry(segmentBytes: 64 << 10, blockSize: 512, blockCount: 512)
    /// Blocks 300..<310, in segment 2 (blocks 256..<384).
    static let hostBlocks: Range<UInt64> = 300..<310

    struct Setup {
        let source = MemoryChild(blockCount: 512)
        let destination = MemoryChild(blockCount: 512)
        let locks = SegmentLocks(geometry: RebuildRaceTests.geometry)
        let job: RebuildJob
        let hostData = rebuildPattern(blocks: RebuildRaceTests.hostBlocks, blockSize: 512, seed: 9)

        init() async throws {
            try await source.fill(0..<512, seed: 1)
            // The destination missed only segment 2.
            try await destination.fill(0..<256, seed: 1)
            try await destination.fill(384..<512, seed: 1)
            job = try RebuildJob(kind: .partial(segments: [2]), source: source, destination: destination,
                                 limits: RebuildLimits(segmentBytes: 64 << 10), locks: locks)
        }

        /// The lock set the host write uses: the job's, or a private one (bypass).
        func hostLocks(bypass: Bool) -> SegmentLocks {
            bypass ? SegmentLocks(geometry: RebuildRaceTests.geometry) : locks
        }

        func check(bypass: Bool) async throws {
            let newData = rebuildPatternBytes(blocks: RebuildRaceTests.hostBlocks, blockSize: 512, seed: 9)
            let oldData = rebuildPatternBytes(blocks: RebuildRaceTests.hostBlocks, blockSize: 512, seed: 1)
            #expect(try await source.contents(RebuildRaceTests.hostBlocks) == newData)
            let segment = RebuildRaceTests.geometry.blocks(of: 2)
            if bypass {
                // Without the locks the destination keeps the copy's stale data: the host's write is lost.
                #expect(try await destination.contents(RebuildRaceTests.hostBlocks) == oldData)
                #expect(try await destination.contents(segment) != source.contents(segment))
            } else {
                #expect(try await destination.contents(RebuildRaceTests.hostBlocks) == newData)
                #expect(try await destination.contents() == source.contents())
            }
        }
    }

    @Test("copy read the source first: the host write waits until the copy has written the destination",
          arguments: [false, true])
    func copyFirst(bypassLocks: Bool) async throws {
        let setup = try await Setup()
        let paused = RebuildGate()
        setup.source.hooks.withLock { $0.afterRead = { _ in await paused.wait() } }
        let run = Task { await setup.job.run() }
        try await rebuildWaitUntil("the copy to read the source") { paused.arrived == 1 }

        let host = Task {
            try await rebuildHostWrite(lba: Self.hostBlocks.lowerBound, data: setup.hostData,
                                       children: [setup.source, setup.destination],
                                       locks: setup.hostLocks(bypass: bypassLocks))
        }
        if bypassLocks {
            try await host.value  // lands on both children while the copy holds its old data
        } else {
            try await rebuildWaitUntil("the host write to wait for the copy") { setup.locks.counts.waitingWrites == 1 }
            #expect(setup.destination.stats.withLock { $0.writes.isEmpty })
        }
        paused.open()
        #expect(await run.value == .completed)
        try await host.value
        try await setup.check(bypass: bypassLocks)
    }

    @Test("host write reached the destination but not the source: the copy waits until it has landed everywhere",
          arguments: [false, true])
    func hostFirst(bypassLocks: Bool) async throws {
        let setup = try await Setup()
        let paused = RebuildGate()
        // Only the host writes to the source: pause its source write, let its destination write through.
        setup.source.hooks.withLock { $0.beforeWrite = { _ in await paused.wait() } }
        let host = Task {
            try await rebuildHostWrite(lba: Self.hostBlocks.lowerBound, data: setup.hostData,
                                       children: [setup.source, setup.destination],
                                       locks: setup.hostLocks(bypass: bypassLocks))
        }
        try await rebuildWaitUntil("the host write to reach the destination only") {
            paused.arrived == 1 && setup.destination.stats.withLock { $0.writes.count } == 1
        }

        let run = Task { await setup.job.run() }
        if bypassLocks {
            #expect(await run.value == .completed)  // copies the old source data over the host's
        } else {
            try await rebuildWaitUntil("the copy to wait for the host write") { setup.locks.counts.waitingCopies == 1 }
            #expect(setup.source.stats.withLock { $0.reads.isEmpty })
        }
        paused.open()
        try await host.value
        #expect(await run.value == .completed)
        try await setup.check(bypass: bypassLocks)
    }
}
