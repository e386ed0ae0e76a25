import Foundation
@testable import Nexus
import Synchronization
import Testing

@Suite("RebuildLog")
struct RebuildLogTests {
    let volume = UUID()
    let child = UUID()

    func open(_ directory: String, segmentBytes: Int = 1 << 20, blockCount: UInt64 = 1 << 21,
              blockSize: Int = 512, child: UUID? = nil) async throws(RebuildLogError) -> RebuildLog {
        try await RebuildLog.open(directory: directory, volume: volume, child: child ?? self.child,
                                  segmentBytes: segmentBytes, blockCount: blockCount, blockSize: blockSize)
    }

    func fileSize(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    @Test("marked segments are durable across close and reopen; marking a durable segment costs no I/O")
    func durability() async throws {
        let base = try rebuildTemporaryDirectory()
        defer { rebuildRemoveTree(base) }
        let directory = base + "/state/rebuild-logs"  // created, parents too
        #expect(!RebuildLog.exists(directory: directory, volume: volume, child: child))

        let log = try await open(directory)
        #expect(log.path == "\(directory)/\(volume.uuidString.lowercased())/\(child.uuidString.lowercased()).seglog")
        #expect(RebuildLog.exists(directory: directory, volume: volume, child: child))
        #expect(log.dirtySegments.isEmpty)
        try await log.markDirty(segments: [7, 3])
        try await log.markDirty(segments: 3...5)
        try await log.markDirty(lba: 2048 * 9 + 5, blocks: 1)  // segment 9 (2048 blocks per segment)
        #expect(log.syncCount == 3)
        try await log.markDirty(segments: [4, 5, 9])
        try await log.markDirty(lba: 0, blocks: 0)
        #expect(log.syncCount == 3)
        #expect(log.dirtySegments == [3, 4, 5, 7, 9])
        #expect(try fileSize(log.path) == RebuildLogFormat.headerBytes + 5 * RebuildLogFormat.recordBytes)
        let created = log.createdAt
        await log.close()
        await log.close()
        await #expect(throws: RebuildLogError.closed) { try await log.markDirty(segments: [1]) }

        let reopened = try await open(directory)
        #expect(reopened.dirtySegments == [3, 4, 5, 7, 9])
        #expect(reopened.truncatedBytes == 0)
        #expect(abs(reopened.createdAt.timeIntervalSince(created)) < 0.001)
        try await reopened.markDirty(segments: [1])
        await reopened.close()
        #expect(try await open(directory).dirtySegments == [1, 3, 4, 5, 7, 9])
    }

    @Test("a torn tail (a partial record, a record with a bad checksum) is cut on open; later records append after the cut")
    func tornTail() async throws {
        let directory = try rebuildTemporaryDirectory()
        defer { rebuildRemoveTree(directory) }
        let log = try await open(directory)
        try await log.markDirty(segments: [10, 11])
        await log.close()
        let path = log.path
        let valid = try fileSize(path)

        // A partial record.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([1, 2, 3, 4, 5, 6, 7]))
        try handle.close()
        let first = try await open(directory)
        #expect(first.truncatedBytes == 7)
        #expect(first.dirtySegments == [10, 11])
        #expect(try fileSize(path) == valid)
        await first.close()

        // A whole record with a bad checksum, and a valid one after it (from the same unacknowledged batch).
        var bytes = RebuildLogFormat.encodeRecords([12, 13])
        bytes[9] ^= 0xFF
        let handle2 = try #require(FileHandle(forWritingAtPath: path))
        try handle2.seekToEnd()
        try handle2.write(contentsOf: Data(bytes))
        try handle2.close()
        let second = try await open(directory)
        #expect(second.truncatedBytes == 24)
        #expect(second.dirtySegments == [10, 11])
        try await second.markDirty(segments: [14])
        await second.close()
        #expect(try await open(directory).dirtySegments == [10, 11, 14])
    }

    @Test("a log of another geometry or child is a header mismatch; a damaged header is corrupt")
    func headerMismatch() async throws {
        let directory = try rebuildTemporaryDirectory()
        defer { rebuildRemoveTree(directory) }
        let log = try await open(directory)
        try await log.markDirty(segments: [1])
        await log.close()
        let path = log.path

        await #expect(throws: RebuildLogError.headerMismatch(path: path, field: "segment size", expected: "\(2 << 20)", found: "\(1 << 20)")) {
            _ = try await open(directory, segmentBytes: 2 << 20)
        }
        await #expect(throws: RebuildLogError.headerMismatch(path: path, field: "block count", expected: "1000", found: "\(1 << 21)")) {
            _ = try await open(directory, blockCount: 1000)
        }
        await #expect(throws: RebuildLogError.headerMismatch(path: path, field: "block size", expected: "4096", found: "512")) {
            _ = try await open(directory, blockSize: 4096)
        }
        // The file of one child copied to another child's name.
        let other = UUID()
        let otherPath = RebuildLog.path(directory: directory, volume: volume, child: other)
        try FileManager.default.copyItem(atPath: path, toPath: otherPath)
        await #expect(throws: RebuildLogError.headerMismatch(path: otherPath, field: "child", expected: other.uuidString,
                                                             found: child.uuidString)) {
            _ = try await open(directory, child: other)
        }
        // The original is untouched by the failed opens.
        #expect(try await open(directory).dirtySegments == [1])

        var damaged = try Data(contentsOf: URL(fileURLWithPath: path))
        damaged[50] ^= 0x01
        try damaged.write(to: URL(fileURLWithPath: path))
        await #expect(throws: RebuildLogError.corrupt(path: path, reason: "header checksum mismatch")) {
            _ = try await open(directory)
        }
        try Data([0x48, 0x4C]).write(to: URL(fileURLWithPath: path))
        await #expect(throws: RebuildLogError.self) { _ = try await open(directory) }
    }

    @Test("concurrent markDirty calls coalesce into one write and fdatasync per batch")
    func groupCommit() async throws {
        let directory = try rebuildTemporaryDirectory()
        defer { rebuildRemoveTree(directory) }
        let log = try await open(directory)
        let gate = RebuildGate()
        log.beforeBatch.withLock { $0 = { await gate.wait() } }

        let first = Task { try await log.markDirty(segments: [0]) }
        try await rebuildWaitUntil("the first batch to be in flight") { gate.arrived == 1 }
        // A call for a segment in flight waits for that batch.
        let sameDone = RebuildLocked(false)
        let same = Task {
            try await log.markDirty(segments: [0])
            sameDone.withLock { $0 = true }
        }
        var calls: [Task<Void, any Error>] = []
        for n in 1...50 {
            calls.append(Task { try await log.markDirty(segments: [UInt64(n), UInt64(n % 7 + 1)]) })
        }
        try await rebuildWaitUntil("50 segments to queue") { log.queuedCount == 50 }
        try await Task.sleep(for: .milliseconds(20))
        #expect(log.syncCount == 0)
        #expect(!sameDone.value)

        gate.open()
        try await first.value
        try await same.value
        for call in calls { try await call.value }
        #expect(log.syncCount == 2)
        #expect(log.dirtySegments == Array(0...50))
        #expect(try fileSize(log.path) == RebuildLogFormat.headerBytes + 51 * RebuildLogFormat.recordBytes)
        await log.close()
        #expect(try await open(directory).dirtySegments == Array(0...50))
    }

    @Test("discard removes the file; a second open of an open log is refused; bad segments are rejected")
    func discardAndMisuse() async throws {
        let directory = try rebuildTemporaryDirectory()
        defer { rebuildRemoveTree(directory) }
        let log = try await open(directory)
        await #expect(throws: RebuildLogError.inUse(path: log.path)) { _ = try await open(directory) }
        // 1 GiB of 1 MiB segments.
        await #expect(throws: RebuildLogError.invalidSegment(1024, segmentCount: 1024)) {
            try await log.markDirty(segments: [1023, 1024])
        }
        #expect(log.dirtySegments.isEmpty)
        try await log.markDirty(segments: [1023])

        try await log.discard()
        #expect(!RebuildLog.exists(directory: directory, volume: volume, child: child))
        #expect(log.dirtySegments.isEmpty)
        await #expect(throws: RebuildLogError.closed) { try await log.markDirty(segments: [1]) }

        let fresh = try await open(directory)
        #expect(fresh.dirtySegments.isEmpty)
        try await fresh.discard()
    }

    @Test("record encoding round-trips and stops at the first bad record")
    func format() throws {
        let header = RebuildLogFormat.Header(volume: volume, child: child, segmentBytes: 1 << 20, blockCount: 12345,
                                             blockSize: 4096, createdNanoseconds: 1_700_000_000_123_456_789)
        let bytes = RebuildLogFormat.encode(header) + RebuildLogFormat.encodeRecords([5, 0, .max])
        #expect(try RebuildLogFormat.decodeHeader(bytes, path: "x") == header)
        #expect(RebuildLogFormat.decodeRecords(bytes) == ([5, 0, .max], bytes.count))
        var zeroed = bytes
        for i in (bytes.count - 12)..<bytes.count { zeroed[i] = 0 }
        #expect(RebuildLogFormat.decodeRecords(zeroed) == ([5, 0], bytes.count - 12))
    }
}
