import Foundation
import NIOCore
import NIOPosix
import NVMe
@testable import Nexus
import Storage
import Synchronization
import Testing

/// A test-only ``ChildDevice`` over a ``MemoryBlockDevice``: counts what it is asked to do
/// (including the most commands in flight at once), can fail reads or writes on demand, and
/// runs optional async hooks around each read and write — a hook that waits on a ``RebuildGate``
/// pauses the command there (for example a rebuild copy between its source read and its
/// destination write). Reservations are not supported.
final class MemoryChild: ChildDevice {
    typealias Hook = @Sendable (_ blocks: Range<UInt64>) async -> Void
    typealias Fault = @Sendable (_ blocks: Range<UInt64>) -> ChildIOError?

    struct Hooks {
        /// Before the read touches the device.
        var beforeRead: Hook?
        /// After the device returned the data, before the read returns.
        var afterRead: Hook?
        /// Before the write touches the device.
        var beforeWrite: Hook?
        /// After the device took the data, before the write returns.
        var afterWrite: Hook?
    }

    struct Stats {
        var reads: [Range<UInt64>] = []
        var writes: [Range<UInt64>] = []
        var bytesWritten = 0
        var flushes = 0
        var inFlight = 0
        var maxInFlight = 0
    }

    let uri: String
    let device: MemoryBlockDevice
    var blockSize: Int { device.blockSize }
    var blockCount: UInt64 { device.blockCount }

    let hooks = Mutex(Hooks())
    let stats = Mutex(Stats())
    let readFault = Mutex<Fault?>(nil)
    let writeFault = Mutex<Fault?>(nil)
    /// What ``allocatedRanges()`` reports (nil: cannot tell).
    let allocated = Mutex<[Range<UInt64>]?>(nil)
    /// Delay of every read and write, to let commands overlap.
    let latency: Duration?

    private let eventLoop = MultiThreadedEventLoopGroup.singleton.next()

    init(uri: String = "nvmf://127.0.0.1:4420/nqn.test:\(UUID().uuidString.prefix(8))",
         blockSize: Int = 512, blockCount: UInt64, latency: Duration? = nil) {
        self.uri = uri
        self.device = MemoryBlockDevice(blockSize: blockSize, blockCount: blockCount)
        self.latency = latency
    }

    private func enter() {
        stats.withLock { stats in
            stats.inFlight += 1
            stats.maxInFlight = max(stats.maxInFlight, stats.inFlight)
        }
    }

    private func leave() {
        stats.withLock { $0.inFlight -= 1 }
    }

    func read(lba: UInt64, blocks: UInt32) async throws(ChildIOError) -> ByteBuffer {
        let range = lba..<(lba + UInt64(blocks))
        enter()
        defer { leave() }
        if let hook = hooks.withLock({ $0.beforeRead }) { await hook(range) }
        if let latency { try? await Task.sleep(for: latency) }
        if let error = readFault.withLock({ $0 })?(range) { throw error }
        stats.withLock { $0.reads.append(range) }
        let data: ByteBuffer
        do {
            data = try await device.read(lba: lba, blocks: blocks, on: eventLoop).get()
        } catch {
            throw .status(NVMeStatus(codeType: 2, code: 0x81))
        }
        if let hook = hooks.withLock({ $0.afterRead }) { await hook(range) }
        return data
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(ChildIOError) {
        let range = lba..<(lba + UInt64(data.readableBytes / blockSize))
        enter()
        defer { leave() }
        if let hook = hooks.withLock({ $0.beforeWrite }) { await hook(range) }
        if let latency { try? await Task.sleep(for: latency) }
        if let error = writeFault.withLock({ $0 })?(range) { throw error }
        do {
            try await device.write(lba: lba, data: data, fua: fua, on: eventLoop).get()
        } catch {
            throw .status(NVMeStatus(codeType: 2, code: 0x81))
        }
        stats.withLock { stats in
            stats.writes.append(range)
            stats.bytesWritten += data.readableBytes
        }
        if let hook = hooks.withLock({ $0.afterWrite }) { await hook(range) }
    }

    func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(ChildIOError) {
        do {
            try await device.writeZeroes(lba: lba, blocks: UInt64(blocks), deallocate: deallocate, fua: false, on: eventLoop).get()
        } catch {
            throw .status(NVMeStatus(codeType: 2, code: 0x81))
        }
    }

    func deallocate(lba: UInt64, blocks: UInt32) async throws(ChildIOError) {
        try await writeZeroes(lba: lba, blocks: blocks, deallocate: true)
    }

    func flush() async throws(ChildIOError) {
        stats.withLock { $0.flushes += 1 }
    }

    func register(key: UInt64) async throws(ChildIOError) { throw .invalidRequest("not supported") }
    func acquire(key: UInt64, type: ReservationType, preempting: UInt64?) async throws(ChildIOError) {
        throw .invalidRequest("not supported")
    }
    func release(key: UInt64, type: ReservationType) async throws(ChildIOError) { throw .invalidRequest("not supported") }
    func reservationReport() async throws(ChildIOError) -> ReservationStatus { throw .invalidRequest("not supported") }

    func allocatedRanges() async throws(ChildIOError) -> [Range<UInt64>]? {
        allocated.withLock { $0 }
    }

    var notices: AsyncStream<ChildNotice> { AsyncStream { $0.finish() } }

    func close() async {
        try? device.close()
    }

    // MARK: Test conveniences (no hooks, no counting)

    /// The device's bytes in `blocks`.
    func contents(_ blocks: Range<UInt64>) async throws -> [UInt8] {
        var data = try await device.read(lba: blocks.lowerBound, blocks: UInt32(blocks.count), on: eventLoop).get()
        return data.readBytes(length: data.readableBytes)!
    }

    /// The whole device.
    func contents() async throws -> [UInt8] {
        try await contents(0..<blockCount)
    }

    /// Writes straight to the device (setup: not counted, no hooks).
    func fill(_ blocks: Range<UInt64>, seed: UInt64) async throws {
        try await device.write(lba: blocks.lowerBound, data: rebuildPattern(blocks: blocks, blockSize: blockSize, seed: seed),
                               fua: false, on: eventLoop).get()
    }
}

/// Blocks of recognizable data: every 8 bytes hold `seed`, the block's LBA and the offset.
func rebuildPattern(blocks: Range<UInt64>, blockSize: Int, seed: UInt64) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: blocks.count * blockSize)
    for lba in blocks {
        for offset in stride(from: 0, to: blockSize, by: 8) {
            buffer.writeInteger(seed &* 0x9E37_79B9_7F4A_7C15 ^ lba << 16 ^ UInt64(offset), endianness: .little)
        }
    }
    return buffer
}

/// Bytes of ``rebuildPattern(blocks:blockSize:seed:)``.
func rebuildPatternBytes(blocks: Range<UInt64>, blockSize: Int, seed: UInt64) -> [UInt8] {
    var buffer = rebuildPattern(blocks: blocks, blockSize: blockSize, seed: seed)
    return buffer.readBytes(length: buffer.readableBytes)!
}

/// A one-shot gate: ``wait()`` suspends until ``open()`` (at once after it). Counts its waiters.
final class RebuildGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], arrived: Int)>((false, [], 0))

    /// Tasks that reached ``wait()`` so far.
    var arrived: Int { state.withLock { $0.arrived } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                state.arrived += 1
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

struct RebuildTestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` every millisecond until it holds; throws after `timeout` (a test failure,
/// never a hang).
func rebuildWaitUntil(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw RebuildTestTimeout(what: what) }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// A host write as the nexus issues it while a child rebuilds: holds the write's segments in
/// `locks` for the whole fan-out and writes to every child at once. With `bypassLocks` the
/// write takes no hold — the broken nexus the race tests compare against.
func rebuildHostWrite(lba: UInt64, data: ByteBuffer, children: [MemoryChild], locks: SegmentLocks,
                      bypassLocks: Bool = false) async throws {
    let blocks = UInt64(data.readableBytes / locks.geometry.blockSize)
    let hold = bypassLocks ? nil : await locks.holdForWrite(lba: lba, blocks: blocks)
    defer { hold.map(locks.release) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for child in children {
            group.addTask { try await child.write(lba: lba, data: data, fua: false) }
        }
        try await group.waitForAll()
    }
}

/// A fresh directory under the system temporary directory; removed by ``rebuildRemoveTree(_:)``.
func rebuildTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("halyard-rebuild-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func rebuildRemoveTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// A value behind a mutex that escaping closures can share (a local `Mutex` cannot be captured).
final class RebuildLocked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T {
        mutex.withLock { body(&$0) }
    }

    var value: Value { mutex.withLock { $0 } }
}
