@testable import Nexus
import Synchronization
import Testing

@Suite("SegmentLocks")
struct RebuildSegmentLocksTests {
    let locks = SegmentLocks(geometry: SegmentGeometry(segmentBytes: 64 << 10, blockSize: 512, blockCount: 1 << 30))

    @Test("writes share segments and never wait for each other; an empty range holds nothing")
    func writesShare() async {
        let a = await locks.holdForWrite(segments: 0...3)
        let b = await locks.holdForWrite(segments: 2...2)
        let c = await locks.holdForWrite(lba: 0, blocks: 0)
        #expect(c.segments == nil)
        #expect(locks.counts == .init(activeWrites: 2))
        locks.release(a)
        locks.release(c)
        locks.release(b)
        #expect(locks.counts == .init())
    }

    @Test("a copy waits for the writes holding its segment; writes arriving meanwhile wait behind it")
    func copyWaitsForWrites() async throws {
        let write = await locks.holdForWrite(lba: 130, blocks: 10)  // segment 1
        #expect(write.segments == 1...1)
        let copied = RebuildLocked(false)
        let copy = Task {
            let hold = await locks.holdForCopy(segment: 1)
            copied.withLock { $0 = true }
            return hold
        }
        try await rebuildWaitUntil("the copy to wait") { locks.counts.waitingCopies == 1 }
        // A new write to segment 1 waits behind the waiting copy; one to segment 2 does not.
        let laterWrite = Task { await locks.holdForWrite(segments: 0...1) }
        try await rebuildWaitUntil("the write to wait") { locks.counts.waitingWrites == 1 }
        let other = await locks.holdForWrite(segments: 2...9)
        locks.release(other)
        let copiedYet = copied.value
        #expect(!copiedYet)

        locks.release(write)
        let copyHold = await copy.value
        #expect(copyHold.segment == 1)
        #expect(locks.counts == .init(waitingWrites: 1, heldCopies: 1))

        locks.release(copyHold)
        let later = await laterWrite.value
        #expect(locks.counts == .init(activeWrites: 1))
        locks.release(later)
        #expect(locks.counts == .init())
    }

    @Test("a write waits for a copy holding one of its segments, however long the write")
    func writeWaitsForCopy() async throws {
        let copy = await locks.holdForCopy(segment: 5000)
        let wrote = RebuildLocked(false)
        let write = Task {
            let hold = await locks.holdForWrite(segments: 0...1_000_000)
            wrote.withLock { $0 = true }
            return hold
        }
        try await rebuildWaitUntil("the write to wait") { locks.counts.waitingWrites == 1 }
        let wroteYet = wrote.value
        #expect(!wroteYet)
        // Copies of segments no write holds go on.
        let other = await locks.holdForCopy(segment: 3)
        locks.release(other)
        locks.release(copy)
        locks.release(await write.value)
        #expect(locks.counts == .init())
    }

    @Test("copies of the same segment take turns in arrival order")
    func copiesQueue() async throws {
        let first = await locks.holdForCopy(segment: 7)
        let order = RebuildLocked<[Int]>([])
        var tasks: [Task<Void, Never>] = []
        for n in 1...3 {
            tasks.append(Task { [locks] in
                let hold = await locks.holdForCopy(segment: 7)
                order.withLock { $0.append(n) }
                locks.release(hold)
            })
            try await rebuildWaitUntil("copy \(n) to queue") { locks.counts.waitingCopies == n }
        }
        locks.release(first)
        for task in tasks { await task.value }
        #expect(order.value == [1, 2, 3])
        #expect(locks.counts == .init())
    }

    @Test("withWriteHold and withCopyHold release on return and on throw")
    func scoped() async throws {
        struct Boom: Error {}
        let value = await locks.withWriteHold(lba: 0, blocks: 256) {
            #expect(locks.counts.activeWrites == 1)
            return 7
        }
        #expect(value == 7)
        await #expect(throws: Boom.self) {
            try await locks.withCopyHold(segment: 0) { () async throws(Boom) in
                #expect(locks.counts.heldCopies == 1)
                throw Boom()
            }
        }
        #expect(locks.counts == .init())
    }

    struct Occupancy: Sendable {
        var writes = 0
        var copying = false
    }

    @Test("many writes and copies interleaved: a copy never overlaps a write of its segment")
    func stress() async {
        let occupancy = RebuildLocked<[UInt64: Occupancy]>([:])
        let violations = RebuildLocked(0)
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<200 {
                group.addTask { [locks] in
                    if n % 4 == 0 {
                        let segment = UInt64(n % 7)
                        let hold = await locks.holdForCopy(segment: segment)
                        occupancy.withLock { table in
                            if table[segment, default: Occupancy()].writes > 0 || table[segment, default: Occupancy()].copying {
                                violations.withLock { $0 += 1 }
                            }
                            table[segment, default: Occupancy()].copying = true
                        }
                        await Task.yield()
                        occupancy.withLock { $0[segment, default: Occupancy()].copying = false }
                        locks.release(hold)
                    } else {
                        let first = UInt64(n % 5)
                        let segments = first...(first + UInt64(n % 3))
                        let hold = await locks.holdForWrite(segments: segments)
                        occupancy.withLock { table in
                            for segment in segments {
                                if table[segment, default: Occupancy()].copying { violations.withLock { $0 += 1 } }
                                table[segment, default: Occupancy()].writes += 1
                            }
                        }
                        await Task.yield()
                        occupancy.withLock { table in
                            for segment in segments { table[segment, default: Occupancy()].writes -= 1 }
                        }
                        locks.release(hold)
                    }
                }
            }
        }
        #expect(violations.value == 0)
        #expect(locks.counts == .init())
    }
}
