import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
@testable import Nexus
import Storage
import Synchronization
import Testing

/// A real ``NVMeTCPTarget`` on 127.0.0.1, port 0, serving one replica subsystem
/// `nqn.2026-11.io.halyard:replica:<uuid>` whose namespace 1 is `device`.
final class ChildTestTarget: Sendable {
    let group: MultiThreadedEventLoopGroup
    let target: NVMeTCPTarget
    let nqn: String
    let port: Int

    private init(group: MultiThreadedEventLoopGroup, target: NVMeTCPTarget, nqn: String, port: Int) {
        self.group = group
        self.target = target
        self.nqn = nqn
        self.port = port
    }

    static func start(device: any BlockDevice = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 14),
                      limits: TargetLimits = TargetLimits()) async throws -> ChildTestTarget {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let nqn = "nqn.2026-11.io.halyard:replica:\(UUID().uuidString.lowercased())"
        let config = TargetConfiguration(
            listeners: [ListenerConfiguration(host: "127.0.0.1", port: 0)],
            subsystems: [SubsystemConfiguration(nqn: nqn, namespaces: [NamespaceConfiguration(namespaceID: 1, device: device)])],
            limits: limits)
        let target = NVMeTCPTarget(configuration: config, group: group, logger: childTestLogger)
        do {
            let bound = try await target.start()
            return ChildTestTarget(group: group, target: target, nqn: nqn, port: bound[0].port!)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    var uri: String { "nvmf://127.0.0.1:\(port)/\(nqn)" }

    /// Namespace 1, as a local child reaches it.
    var namespace: Namespace { target.subsystems[nqn]!.namespace(1)! }

    var options: ChildOpenOptions {
        var o = ChildOpenOptions()
        o.eventLoopGroup = group
        o.logger = childTestLogger
        return o
    }

    func remote(_ identity: NexusIdentity) async throws -> RemoteChild {
        try await RemoteChild.open(uri: uri, identity: identity, options: options)
    }

    func local(_ identity: NexusIdentity) throws -> LocalChild {
        try LocalChild.open(namespace: namespace, uri: uri, hostID: identity.hostIdentifier, eventLoop: group.next())
    }

    /// Kills the target: listeners closed, every controller torn down (its connections close).
    func stop() async {
        await target.stop()
    }

    func shutdown() async {
        await target.stop()
        try? await group.shutdownGracefully()
    }
}

let childTestLogger: Logger = {
    var logger = Logger(label: "child-tests")
    logger.logLevel = .critical
    return logger
}()

func childTestIdentity() -> NexusIdentity {
    NexusIdentity(nexusUUID: UUID(), volumeUUID: UUID())
}

/// Runs `body`, then `cleanup` whether or not it threw.
func withChildCleanup(_ cleanup: () async -> Void, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
}

/// Deterministic bytes for `blocks` blocks.
func childTestPattern(blocks: Int, blockSize: Int = 512, seed: UInt64) -> ByteBuffer {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var buffer = ByteBufferAllocator().buffer(capacity: blocks * blockSize)
    for _ in 0..<(blocks * blockSize / 8) {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        buffer.writeInteger(state)
    }
    return buffer
}

/// The error a child call threw (nil when it succeeded).
func childError(_ body: () async throws -> Void) async -> ChildIOError? {
    do {
        try await body()
        return nil
    } catch let error as ChildIOError {
        return error
    } catch {
        Issue.record("expected a ChildIOError, got \(error)")
        return nil
    }
}

/// Records everything a child's `notices` stream yields (its single consumer).
final class ChildNoticeRecorder: Sendable {
    private let seen = Mutex<[ChildNotice]>([])
    private let finished = Mutex(false)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ child: any ChildDevice) {
        let stream = child.notices
        let t = Task { [self] in
            for await notice in stream { self.seen.withLock { $0.append(notice) } }
            self.finished.withLock { $0 = true }
        }
        task.withLock { $0 = t }
    }

    var notices: [ChildNotice] { seen.withLock { $0 } }
    var isFinished: Bool { finished.withLock { $0 } }

    /// Polls until `condition` holds on the notices so far, for up to `timeout`.
    func wait(timeout: Duration = .seconds(10), until condition: ([ChildNotice]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(notices) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(notices)
    }
}

/// A memory device that says which blocks hold data (what a thin replica's device does).
final class ChildRangesDevice: BlockDevice, AllocationReporting {
    let memory: MemoryBlockDevice
    let ranges: Mutex<[Range<UInt64>]>

    init(blockCount: UInt64, ranges: [Range<UInt64>]) {
        memory = MemoryBlockDevice(blockSize: 512, blockCount: blockCount)
        self.ranges = Mutex(ranges)
    }

    func allocatedBlockRanges() throws -> [Range<UInt64>] { ranges.withLock { $0 } }

    var blockSize: Int { memory.blockSize }
    var blockCount: UInt64 { memory.blockCount }
    var hasVolatileWriteCache: Bool { false }
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        memory.read(lba: lba, blocks: blocks, on: eventLoop)
    }
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memory.write(lba: lba, data: data, fua: fua, on: eventLoop)
    }
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { memory.flush(on: eventLoop) }
    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memory.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }
    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memory.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }
    func close() throws { try memory.close() }
}

/// A memory device whose writes wait until ``open()``: holds a command in flight (admitted by the
/// reservation gate) for as long as a test wants.
final class ChildHeldWritesDevice: BlockDevice {
    let memory = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 12)
    private struct State {
        var held = true
        var waiting: [(promise: EventLoopPromise<Void>, run: @Sendable () -> EventLoopFuture<Void>)] = []
    }
    private let state = Mutex(State())

    var heldWrites: Int { state.withLock { $0.waiting.count } }

    /// Lets every held write (and every later one) through.
    func open() {
        let waiting = state.withLock { s in
            s.held = false
            defer { s.waiting = [] }
            return s.waiting
        }
        for (promise, run) in waiting { promise.completeWith(run()) }
    }

    var blockSize: Int { memory.blockSize }
    var blockCount: UInt64 { memory.blockCount }
    var hasVolatileWriteCache: Bool { false }
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        memory.read(lba: lba, blocks: blocks, on: eventLoop)
    }
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let memory = self.memory
        let run: @Sendable () -> EventLoopFuture<Void> = { memory.write(lba: lba, data: data, fua: fua, on: eventLoop) }
        let promise = eventLoop.makePromise(of: Void.self)
        let now = state.withLock { s -> Bool in
            if !s.held { return true }
            s.waiting.append((promise, run))
            return false
        }
        if now { promise.completeWith(run()) }
        return promise.futureResult
    }
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { memory.flush(on: eventLoop) }
    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memory.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }
    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memory.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }
    func close() throws { try memory.close() }
}
