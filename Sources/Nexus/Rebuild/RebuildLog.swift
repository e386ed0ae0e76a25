#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOPosix
import Synchronization

/// The durable dirty-segment log of one child of one volume that misses writes while it is out
/// of the nexus (faulted or offline): the source of truth for its partial rebuild. A file
/// `<directory>/<volume-uuid>/<child-uuid>.seglog` (layout: ``RebuildLogFormat``) that survives
/// an io-engine crash: its creation is fsynced into the directory, and every record is fdatasynced
/// before the write that dirtied its segment may be acknowledged.
///
/// Group commit: ``markDirty(segments:)`` calls that arrive while a batch is being written are
/// queued and go out together in the next single write + fdatasync; each call returns once its own
/// segments are durable. A segment already durable costs a lock and a set lookup, no I/O.
/// File I/O runs on a `NIOThreadPool` (one batch at a time per log), never on an event loop.
///
/// One open instance per file (an advisory `flock` makes a second open fail with
/// ``RebuildLogError/inUse(path:)``). Any error from ``open(directory:volume:child:segmentBytes:blockCount:blockSize:threadPool:)``
/// or ``markDirty(segments:)`` means the log no longer covers every missed write: the child
/// needs a full rebuild. A failed batch makes the log fail every later call.
public final class RebuildLog: Sendable {
    /// The volume whose nexus keeps the log.
    public let volume: UUID
    /// The child that misses writes.
    public let child: UUID
    /// The log file.
    public let path: String
    /// The segment layout the indexes are in (the child's block count and size, the segment size).
    public let geometry: SegmentGeometry
    /// When the log was first created (the child's first missed write, give or take).
    public let createdAt: Date
    /// Bytes of a torn tail (records of an unacknowledged batch) cut from the file when it was opened.
    public let truncatedBytes: Int

    private let volumeDirectory: String
    private let threadPool: NIOThreadPool
    private let state: Mutex<State>
    /// Test hook: awaited before each batch's I/O (lets a test hold a batch in flight).
    let beforeBatch = Mutex<(@Sendable () async -> Void)?>(nil)

    private init(volume: UUID, child: UUID, path: String, volumeDirectory: String, geometry: SegmentGeometry,
                 header: RebuildLogFormat.Header, loaded: Opened, threadPool: NIOThreadPool) {
        self.volume = volume
        self.child = child
        self.path = path
        self.volumeDirectory = volumeDirectory
        self.geometry = geometry
        self.createdAt = Date(timeIntervalSince1970: Double(header.createdNanoseconds) / 1e9)
        self.truncatedBytes = loaded.truncatedBytes
        self.threadPool = threadPool
        self.state = Mutex(State(fd: loaded.fd, durable: Set(loaded.segments), fileLength: UInt64(loaded.length)))
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { RebuildLogFile.close(fd) }
    }

    // MARK: Paths

    /// `<directory>/<volume-uuid>/<child-uuid>.seglog` (UUIDs in lower case).
    public static func path(directory: String, volume: UUID, child: UUID) -> String {
        volumeDirectory(directory, volume) + "/" + child.uuidString.lowercased() + ".seglog"
    }

    /// Whether a log file exists for the child (a `stat`; call it from a task, not an event loop).
    public static func exists(directory: String, volume: UUID, child: UUID) -> Bool {
        RebuildLogFile.exists(path(directory: directory, volume: volume, child: child))
    }

    private static func volumeDirectory(_ directory: String, _ volume: UUID) -> String {
        directory + "/" + volume.uuidString.lowercased()
    }

    // MARK: Opening

    /// Opens the child's log, creating it (and the directories) when missing, else loading its
    /// segments; a torn tail is cut. Throws ``RebuildLogError/headerMismatch(path:field:expected:found:)``
    /// when the file was written for another volume, child, segment size, block count or block
    /// size, and ``RebuildLogError/corrupt(path:reason:)`` for a damaged file: the caller then
    /// discards the file and does a full rebuild.
    /// - Precondition: `segmentBytes` is a positive multiple of `blockSize`.
    public static func open(
        directory: String, volume: UUID, child: UUID, segmentBytes: Int, blockCount: UInt64, blockSize: Int,
        threadPool: NIOThreadPool = .singleton
    ) async throws(RebuildLogError) -> RebuildLog {
        let geometry = SegmentGeometry(segmentBytes: segmentBytes, blockSize: blockSize, blockCount: blockCount)
        let volumeDirectory = volumeDirectory(directory, volume)
        let path = path(directory: directory, volume: volume, child: child)
        let nowNanoseconds = Int64(Date().timeIntervalSince1970 * 1e9)
        let expected = RebuildLogFormat.Header(volume: volume, child: child, segmentBytes: UInt64(segmentBytes),
                                               blockCount: blockCount, blockSize: UInt32(blockSize),
                                               createdNanoseconds: nowNanoseconds)
        let result: Result<(RebuildLogFormat.Header, Opened), RebuildLogError>
        do {
            result = try await threadPool.runIfActive {
                Result { () throws(RebuildLogError) in
                    try openFile(path: path, volumeDirectory: volumeDirectory, expected: expected,
                                 segmentCount: geometry.segmentCount)
                }
            }
        } catch {
            throw .io("cannot open \(path): \(error)")
        }
        let (header, opened) = try result.get()
        return RebuildLog(volume: volume, child: child, path: path, volumeDirectory: volumeDirectory,
                          geometry: geometry, header: header, loaded: opened, threadPool: threadPool)
    }

    /// What opening found: the open, locked descriptor, the durable segments and the valid length.
    private struct Opened: Sendable {
        var fd: Int32
        var segments: [UInt64]
        var length: Int
        var truncatedBytes: Int
    }

    /// Blocking: creates or loads the file.
    private static func openFile(path: String, volumeDirectory: String, expected: RebuildLogFormat.Header,
                                 segmentCount: UInt64) throws(RebuildLogError) -> (RebuildLogFormat.Header, Opened) {
        try RebuildLogFile.makeDirectories(volumeDirectory)
        guard let fd = try RebuildLogFile.openExisting(path) else {
            let bytes = RebuildLogFormat.encode(expected)
            let fd = try RebuildLogFile.create(path, bytes: bytes, directory: volumeDirectory)
            do throws(RebuildLogError) {
                try RebuildLogFile.lock(fd, path: path)
            } catch {
                RebuildLogFile.close(fd)
                throw error
            }
            return (expected, Opened(fd: fd, segments: [], length: bytes.count, truncatedBytes: 0))
        }
        do throws(RebuildLogError) {
            try RebuildLogFile.lock(fd, path: path)
            let bytes = try RebuildLogFile.readAll(fd, path: path)
            let header = try RebuildLogFormat.decodeHeader(bytes, path: path)
            try check(header, against: expected, path: path)
            let (segments, validLength) = RebuildLogFormat.decodeRecords(bytes)
            if let bad = segments.first(where: { $0 >= segmentCount }) {
                throw RebuildLogError.corrupt(path: path, reason: "record for segment \(bad) of \(segmentCount)")
            }
            if validLength < bytes.count {
                try RebuildLogFile.truncate(fd, to: validLength, path: path)
            }
            return (header, Opened(fd: fd, segments: segments, length: validLength,
                                   truncatedBytes: bytes.count - validLength))
        } catch {
            RebuildLogFile.close(fd)
            throw error
        }
    }

    private static func check(_ found: RebuildLogFormat.Header, against expected: RebuildLogFormat.Header,
                              path: String) throws(RebuildLogError) {
        func mismatch<T: Equatable & CustomStringConvertible>(_ field: String, _ expected: T, _ found: T) -> RebuildLogError? {
            expected == found ? nil : .headerMismatch(path: path, field: field, expected: "\(expected)", found: "\(found)")
        }
        if let error = mismatch("volume", expected.volume.uuidString, found.volume.uuidString)
            ?? mismatch("child", expected.child.uuidString, found.child.uuidString)
            ?? mismatch("segment size", expected.segmentBytes, found.segmentBytes)
            ?? mismatch("block count", expected.blockCount, found.blockCount)
            ?? mismatch("block size", expected.blockSize, found.blockSize) {
            throw error
        }
    }

    // MARK: Recording

    /// The durable dirty segments, ascending.
    public var dirtySegments: [UInt64] {
        state.withLock { $0.durable.sorted() }
    }

    /// Records `segments` as missed by the child; returns once every one of them is durable in
    /// the file (at once when all already are). Throws ``RebuildLogError/invalidSegment(_:segmentCount:)``
    /// for an index beyond the geometry, ``RebuildLogError/closed`` after ``close()`` or
    /// ``discard()``, and the batch's ``RebuildLogError/io(_:)`` when writing failed.
    public func markDirty(segments: some Collection<UInt64>) async throws(RebuildLogError) {
        let count = geometry.segmentCount
        if let bad = segments.first(where: { $0 >= count }) { throw .invalidSegment(bad, segmentCount: count) }
        let known = state.withLock { state -> Result<Void, RebuildLogError>? in
            if let failure = state.failure { return .failure(failure) }
            if state.closed { return .failure(.closed) }
            return segments.allSatisfy { state.durable.contains($0) } ? .success(()) : nil
        }
        if let known { return try known.get() }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, RebuildLogError>, Never>) in
            let (immediate, startBatch) = state.withLock { state in
                state.register(segments, continuation)
            }
            if let immediate { continuation.resume(returning: immediate) }
            if startBatch { Task { await self.writeBatches() } }
        }
        try result.get()
    }

    /// ``markDirty(segments:)`` for the segments that the blocks `lba ..< lba + blocks` touch.
    public func markDirty(lba: UInt64, blocks: UInt64) async throws(RebuildLogError) {
        guard let segments = geometry.segments(lba: lba, blocks: blocks) else { return }
        try await markDirty(segments: segments)
    }

    /// Writes queued batches one after the other until none is left (one runs per log at a time).
    private func writeBatches() async {
        while true {
            let batch: Batch
            switch state.withLock({ $0.takeBatch() }) {
            case .write(let next):
                batch = next
            case .idle(let closers):
                for closer in closers { closer.resume() }
                return
            }
            if let hook = beforeBatch.withLock({ $0 }) { await hook() }
            let bytes = RebuildLogFormat.encodeRecords(batch.segments)
            let path = self.path
            let result: Result<Void, RebuildLogError>
            do {
                result = try await threadPool.runIfActive {
                    Result { () throws(RebuildLogError) in
                        try RebuildLogFile.write(batch.fd, bytes, at: batch.offset, path: path)
                        try RebuildLogFile.syncData(batch.fd, path: path)
                    }
                }
            } catch {
                result = .failure(.io("cannot write \(path): \(error)"))
            }
            let waiters = state.withLock { state in state.finishBatch(result, bytes: bytes.count) }
            for waiter in waiters { waiter.resume(returning: result) }
        }
    }

    // MARK: Closing

    /// Waits for the batch being written, then closes the file; later ``markDirty(segments:)``
    /// calls fail with ``RebuildLogError/closed``. The file stays (the child still needs its
    /// partial rebuild). Idempotent.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                state.closed = true
                if state.writing {
                    state.idleWaiters.append(continuation)
                    return false
                }
                return true
            }
            if idle { continuation.resume() }
        }
        let fd = state.withLock { state -> Int32 in
            defer { state.fd = -1 }
            return state.fd
        }
        if fd >= 0 { RebuildLogFile.close(fd) }
    }

    /// Closes the log and deletes its file durably (after a successful partial rebuild, or to
    /// start over); ``dirtySegments`` is empty afterwards. The volume's directory stays.
    public func discard() async throws(RebuildLogError) {
        await close()
        state.withLock { $0.durable.removeAll() }
        let path = self.path
        let directory = volumeDirectory
        let result: Result<Void, RebuildLogError>
        do {
            result = try await threadPool.runIfActive {
                Result { () throws(RebuildLogError) in try RebuildLogFile.remove(path, directory: directory) }
            }
        } catch {
            result = .failure(.io("cannot remove \(path): \(error)"))
        }
        try result.get()
    }

    /// Batches written with fdatasync so far (tests check group commit with it).
    var syncCount: Int { state.withLock { $0.syncCount } }
    /// Segments queued behind the batch in flight (tests).
    var queuedCount: Int { state.withLock { $0.queued.count } }
}

extension RebuildLog {
    private typealias Waiter = CheckedContinuation<Result<Void, RebuildLogError>, Never>

    /// One group-committed batch: its records go at `offset` of `fd`.
    private struct Batch: Sendable {
        var fd: Int32
        var offset: UInt64
        var segments: [UInt64]
    }

    private enum NextBatch {
        case write(Batch)
        /// Nothing left to write: the writer ends; resume these waiting closers.
        case idle([CheckedContinuation<Void, Never>])
    }

    /// Everything the log knows, under its mutex. A segment is in at most one of `durable`,
    /// `inFlight` and `queued`; `inFlight` is being written, `queued` goes in the next batch.
    private struct State {
        var fd: Int32
        var durable: Set<UInt64>
        var fileLength: UInt64
        var queued: [UInt64] = []
        var queuedSet: Set<UInt64> = []
        var queuedWaiters: [Waiter] = []
        var inFlight: Set<UInt64> = []
        var inFlightWaiters: [Waiter] = []
        /// A `writeBatches` loop runs.
        var writing = false
        var failure: RebuildLogError?
        var closed = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var syncCount = 0

        /// Queues what is not durable yet and parks `waiter` on the batch that makes all of
        /// `segments` durable. Returns the result when there is nothing to wait for, and whether
        /// the caller must start the batch writer.
        mutating func register(_ segments: some Collection<UInt64>, _ waiter: Waiter) -> (Result<Void, RebuildLogError>?, Bool) {
            if let failure { return (.failure(failure), false) }
            if closed { return (.failure(.closed), false) }
            var needsQueued = false
            var needsInFlight = false
            for segment in segments where !durable.contains(segment) {
                if inFlight.contains(segment) {
                    needsInFlight = true
                } else {
                    needsQueued = true
                    if queuedSet.insert(segment).inserted { queued.append(segment) }
                }
            }
            if needsQueued {
                // The queued batch is written after the one in flight, so it covers both.
                queuedWaiters.append(waiter)
                if writing { return (nil, false) }
                writing = true
                return (nil, true)
            }
            if needsInFlight {
                inFlightWaiters.append(waiter)
                return (nil, false)
            }
            return (.success(()), false)
        }

        /// Moves the queue into flight, or ends the writer when it is empty (returning the
        /// ``RebuildLog/close()`` calls waiting for that).
        mutating func takeBatch() -> NextBatch {
            assert(writing && inFlight.isEmpty && inFlightWaiters.isEmpty)
            guard !queued.isEmpty, failure == nil, fd >= 0 else {
                assert(queuedWaiters.isEmpty, "queued waiters without a batch")
                writing = false
                defer { idleWaiters = [] }
                return .idle(idleWaiters)
            }
            let batch = Batch(fd: fd, offset: fileLength, segments: queued)
            inFlight = queuedSet
            inFlightWaiters = queuedWaiters
            queued = []
            queuedSet = []
            queuedWaiters = []
            return .write(batch)
        }

        /// Applies a batch's outcome; returns the waiters to resume with it. A failure is sticky
        /// and fails the queue too.
        mutating func finishBatch(_ result: Result<Void, RebuildLogError>, bytes: Int) -> [Waiter] {
            var waiters = inFlightWaiters
            inFlightWaiters = []
            switch result {
            case .success:
                durable.formUnion(inFlight)
                fileLength += UInt64(bytes)
                syncCount += 1
            case .failure(let error):
                failure = error
                waiters += queuedWaiters
                queued = []
                queuedSet = []
                queuedWaiters = []
            }
            inFlight = []
            return waiters
        }
    }
}
