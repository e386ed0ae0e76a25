import Foundation
import NIOCore
import NVMe
@testable import Nexus
import Synchronization
import Testing

@Suite("RebuildJob")
struct RebuildJobTests {
    /// 64 KiB segments of 128 blocks; 677 blocks = 5 full segments and a short one of 37 blocks.
    static let blockCount: UInt64 = 128 * 5 + 37
    static let segment = 64 << 10

    static func geometry(blockCount: UInt64 = blockCount) -> SegmentGeometry {
        SegmentGeometry(segmentBytes: segment, blockSize: 512, blockCount: blockCount)
    }

    static func job(_ kind: RebuildKind, _ source: MemoryChild, _ destination: MemoryChild,
                    concurrency: Int = 4, rate: UInt64? = nil) throws -> RebuildJob {
        try RebuildJob(kind: kind, source: source, destination: destination,
                       limits: RebuildLimits(segmentBytes: segment, concurrency: concurrency, bytesPerSecond: rate),
                       locks: SegmentLocks(geometry: geometry(blockCount: source.blockCount)))
    }

    @Test("full rebuild without an allocation map copies every segment, the short last one too")
    func fullCopiesEverything() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        try await source.fill(0..<Self.blockCount, seed: 1)
        let job = try Self.job(.full, source, destination)
        #expect(job.progress.state == .pending)

        #expect(await job.run() == .completed)

        #expect(try await destination.contents() == source.contents())
        let stats = destination.stats.withLock { $0 }
        #expect(Set(stats.writes) == Set((0..<6).map { Self.geometry().blocks(of: $0) }))
        #expect(stats.writes.count == 6)
        #expect(stats.bytesWritten == Int(Self.blockCount) * 512)
        #expect(stats.flushes == 1)
        let progress = job.progress
        #expect(progress.state == .completed)
        #expect(progress.totalSegments == 6 && progress.segmentsCopied == 6 && progress.segmentsSkipped == 0)
        #expect(progress.bytesCopied == Self.blockCount * 512)
        #expect(progress.fractionDone == 1)
        #expect(progress.source == source.uri && progress.destination == destination.uri)
        let started = try #require(progress.startedAt)
        let finished = try #require(progress.finishedAt)
        #expect(started <= finished)
    }

    @Test("full rebuild skips segments outside the source's allocated ranges: they are not written")
    func fullSkipsUnallocated() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        // Segment 0 (10..<20), segments 2-3 (300..<400), the short last segment (676).
        let allocated: [Range<UInt64>] = [10..<20, 300..<400, 676..<677]
        for range in allocated { try await source.fill(range, seed: 3) }
        source.allocated.withLock { $0 = allocated }

        let job = try Self.job(.full, source, destination, concurrency: 2)
        #expect(await job.run() == .completed)

        #expect(try await destination.contents() == source.contents())
        let written = destination.stats.withLock { $0.writes }
        #expect(Set(written) == Set([0, 2, 3, 5].map { Self.geometry().blocks(of: $0) }))
        #expect(written.count == 4)
        let progress = job.progress
        #expect(progress.totalSegments == 6 && progress.segmentsCopied == 4 && progress.segmentsSkipped == 2)
        #expect(progress.bytesCopied == UInt64(3 * Self.segment + 37 * 512))
    }

    @Test("full rebuild of a source with nothing allocated writes nothing and still completes")
    func fullEmptyAllocation() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        source.allocated.withLock { $0 = [] }
        let job = try Self.job(.full, source, destination)
        #expect(await job.run() == .completed)
        #expect(destination.stats.withLock { $0.writes.isEmpty })
        #expect(job.progress.segmentsSkipped == 6)
    }

    @Test("partial rebuild copies exactly the dirty segments")
    func partialCopiesDirty() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        try await source.fill(0..<Self.blockCount, seed: 1)
        try await destination.fill(0..<Self.blockCount, seed: 1)
        // Writes the destination missed, in segments 1, 4 and 5.
        for range: Range<UInt64> in [130..<131, 200..<256, 600..<677] { try await source.fill(range, seed: 2) }
        #expect(try await destination.contents() != source.contents())

        let job = try Self.job(.partial(segments: [5, 1, 4, 1]), source, destination)
        #expect(job.kind == .partial(segments: [1, 4, 5]))
        #expect(await job.run() == .completed)

        #expect(try await destination.contents() == source.contents())
        let stats = destination.stats.withLock { $0 }
        let dirty = [1, 4, 5].map { Self.geometry().blocks(of: $0) }
        #expect(Set(stats.writes) == Set(dirty))
        #expect(stats.writes.count == 3)
        #expect(stats.bytesWritten == dirty.reduce(0) { $0 + $1.count * 512 })
        #expect(job.progress.totalSegments == 3 && job.progress.segmentsCopied == 3)
    }

    @Test("setup errors: segment size, block size, a child too small, a segment beyond the device")
    func setupErrors() throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        let locks = SegmentLocks(geometry: Self.geometry())
        #expect(throws: RebuildJobError.segmentSizeMismatch(limits: 1 << 20, locks: Self.segment)) {
            try RebuildJob(kind: .full, source: source, destination: destination, limits: .default, locks: locks)
        }
        let limits = try RebuildLimits(segmentBytes: Self.segment)
        let small = MemoryChild(blockCount: Self.blockCount - 1)
        #expect(throws: RebuildJobError.tooSmall(uri: small.uri, blockCount: Self.blockCount - 1, needed: Self.blockCount)) {
            try RebuildJob(kind: .full, source: source, destination: small, limits: limits, locks: locks)
        }
        let large = MemoryChild(blockSize: 4096, blockCount: Self.blockCount)
        #expect(throws: RebuildJobError.blockSizeMismatch(uri: large.uri, blockSize: 4096, expected: 512)) {
            try RebuildJob(kind: .full, source: large, destination: destination, limits: limits, locks: locks)
        }
        #expect(throws: RebuildJobError.segmentOutOfRange(6, segmentCount: 6)) {
            try RebuildJob(kind: .partial(segments: [0, 6]), source: source, destination: destination, limits: limits, locks: locks)
        }
    }

    @Test("a failed source read ends the job as failed on the source, naming the segment")
    func sourceFailure() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        let error = ChildIOError.status(NVMeStatus(codeType: 2, code: 0x81))
        source.readFault.withLock { $0 = { $0.contains(3 * 128) ? error : nil } }
        let job = try Self.job(.full, source, destination, concurrency: 1)
        let expected = RebuildFailure(side: .source, error: error, segment: 3)
        #expect(await job.run() == .failed(expected))
        #expect(job.progress.state == .failed(expected))
        #expect(job.progress.segmentsCopied == 3)
        #expect(job.progress.finishedAt != nil)
        #expect(destination.stats.withLock { $0.flushes } == 0)
    }

    @Test("a failed destination write ends the job as failed on the destination; allocation map errors fail the source")
    func destinationFailure() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        destination.writeFault.withLock { $0 = { _ in .unreachable("connection reset") } }
        let job = try Self.job(.partial(segments: [2]), source, destination)
        #expect(await job.run() == .failed(RebuildFailure(side: .destination, error: .unreachable("connection reset"), segment: 2)))

        final class NoMap: ChildDevice, @unchecked Sendable {
            let inner: MemoryChild
            init(_ inner: MemoryChild) { self.inner = inner }
            var uri: String { inner.uri }
            var blockSize: Int { inner.blockSize }
            var blockCount: UInt64 { inner.blockCount }
            func read(lba: UInt64, blocks: UInt32) async throws(ChildIOError) -> ByteBuffer { try await inner.read(lba: lba, blocks: blocks) }
            func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(ChildIOError) { try await inner.write(lba: lba, data: data, fua: fua) }
            func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(ChildIOError) {}
            func deallocate(lba: UInt64, blocks: UInt32) async throws(ChildIOError) {}
            func flush() async throws(ChildIOError) {}
            func register(key: UInt64) async throws(ChildIOError) {}
            func acquire(key: UInt64, type: ReservationType, preempting: UInt64?) async throws(ChildIOError) {}
            func release(key: UInt64, type: ReservationType) async throws(ChildIOError) {}
            func reservationReport() async throws(ChildIOError) -> ReservationStatus { throw .closed }
            func allocatedRanges() async throws(ChildIOError) -> [Range<UInt64>]? { throw .reservationConflict }
            var notices: AsyncStream<ChildNotice> { AsyncStream { $0.finish() } }
            func close() async {}
        }
        let mapless = try RebuildJob(kind: .full, source: NoMap(source), destination: MemoryChild(blockCount: Self.blockCount),
                                     limits: RebuildLimits(segmentBytes: Self.segment),
                                     locks: SegmentLocks(geometry: Self.geometry()))
        #expect(await mapless.run() == .failed(RebuildFailure(side: .source, error: .reservationConflict)))
    }

    @Test("cancel: segments in flight finish, no new one starts; a job cancelled before run never runs")
    func cancel() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        let gate = RebuildGate()
        source.hooks.withLock { $0.beforeRead = { _ in await gate.wait() } }
        let job = try Self.job(.full, source, destination, concurrency: 2)
        let run = Task { await job.run() }
        try await rebuildWaitUntil("two reads to start") { gate.arrived == 2 }
        #expect(job.progress.state == .running)
        job.cancel()
        gate.open()
        #expect(await run.value == .cancelled)
        #expect(job.progress.state == .cancelled)
        #expect(job.progress.segmentsCopied <= 2)
        #expect(destination.stats.withLock { $0.writes.count } <= 2)
        #expect(await job.run() == .cancelled)  // a second call returns the same outcome

        let never = try Self.job(.full, source, destination)
        never.cancel()
        #expect(await never.run() == .cancelled)
        #expect(never.progress.state == .cancelled && never.progress.startedAt == nil)
    }

    @Test("cancelling the task that runs the job cancels the job")
    func taskCancellation() async throws {
        let source = MemoryChild(blockCount: Self.blockCount)
        let destination = MemoryChild(blockCount: Self.blockCount)
        let gate = RebuildGate()
        source.hooks.withLock { $0.beforeRead = { _ in await gate.wait() } }
        let job = try Self.job(.full, source, destination, concurrency: 1)
        let run = Task { await job.run() }
        try await rebuildWaitUntil("the first read") { gate.arrived == 1 }
        run.cancel()
        gate.open()
        #expect(await run.value == .cancelled)
    }

    @Test("never more than `concurrency` segments in flight, and that many are reached", arguments: [1, 3])
    func concurrencyLimit(limit: Int) async throws {
        let blocks: UInt64 = 128 * 20
        let source = MemoryChild(blockCount: blocks)
        let destination = MemoryChild(blockCount: blocks)
        // A copy is in flight from its source read to the end of its destination write.
        let inFlight = RebuildLocked((now: 0, max: 0))
        let firstWave = RebuildGate()
        source.hooks.withLock {
            $0.beforeRead = { _ in
                inFlight.withLock { $0.now += 1; $0.max = max($0.max, $0.now) }
                await firstWave.wait()
            }
        }
        destination.hooks.withLock { $0.afterWrite = { _ in inFlight.withLock { $0.now -= 1 } } }
        let job = try Self.job(.full, source, destination, concurrency: limit)
        let run = Task { await job.run() }
        try await rebuildWaitUntil("\(limit) copies to start") { firstWave.arrived == limit }
        try await Task.sleep(for: .milliseconds(20))  // room for a copy beyond the limit to show up
        #expect(firstWave.arrived == limit)
        firstWave.open()
        #expect(await run.value == .completed)
        #expect(inFlight.value.max == limit)
        #expect(source.stats.withLock { $0.maxInFlight } <= limit)
        #expect(try await destination.contents() == source.contents())
    }

    @Test("a rate limit slows the job to at least total/rate (minus one segment of burst)")
    func rateLimit() async throws {
        let blocks: UInt64 = 128 * 16  // 1 MiB
        let source = MemoryChild(blockCount: blocks)
        let destination = MemoryChild(blockCount: blocks)
        let rate: UInt64 = 4 << 20
        let job = try Self.job(.full, source, destination, concurrency: 4, rate: rate)
        let start = ContinuousClock.now
        #expect(await job.run() == .completed)
        let elapsed = ContinuousClock.now - start
        // (1 MiB - 64 KiB burst) at 4 MiB/s = 234 ms; sleeps never end early, so this cannot flake.
        #expect(elapsed >= .milliseconds(234))
    }

    @Test("history keeps the last finished jobs, oldest first")
    func history() async throws {
        let history = RebuildHistory(capacity: 3)
        var ids: [UUID] = []
        for _ in 0..<5 {
            let job = try Self.job(.partial(segments: []), MemoryChild(blockCount: 128), MemoryChild(blockCount: 128))
            #expect(await job.run() == .completed)
            history.record(job.progress)
            ids.append(job.id)
        }
        #expect(history.entries.map(\.id) == Array(ids.suffix(3)))
        #expect(RebuildHistory().capacity == 32)
    }
}
