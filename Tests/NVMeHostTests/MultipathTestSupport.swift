import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

/// Shared pieces of the session / multipath / verify tests.
enum MP {
    static let nqn = "nqn.2026-11.io.halyard:multipath-test"
    static let identity = HostControllerTests.identity

    /// Short timers so failures are seen quickly; every wait in the tests is generous instead.
    static var controllerOptions: ControllerOptions {
        var o = ControllerOptions()
        o.keepAliveTimeout = .seconds(2)
        o.connectTimeout = .seconds(3)
        o.adminTimeout = .seconds(15)
        o.ioTimeout = .seconds(15)
        o.ioQueueCount = 2
        return o
    }

    static func sessionOptions(reconnectDelay: TimeAmount = .milliseconds(200), loss: TimeAmount? = nil,
                               fastFail: TimeAmount? = nil) -> ControllerSessionOptions {
        ControllerSessionOptions(reconnectDelay: reconnectDelay, controllerLossTimeout: loss, fastIOFailTimeout: fastFail)
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "multipath-test")
        logger.logLevel = .critical
        return logger
    }

    /// Polls `condition` every 20 ms for up to `timeout`.
    static func eventually(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    static func pattern(_ count: Int, seed: UInt64) -> ByteBuffer {
        HostControllerTests.pattern(count, seed: seed)
    }
}

/// An in-process target whose listeners can be stopped and started again on the same ports with
/// the same device (a "killed and restarted" target).
final class RestartableTarget: Sendable {
    let group: MultiThreadedEventLoopGroup
    let device: any BlockDevice
    let listenerCount: Int
    let namespaceIdentity: NamespaceIdentity?
    private struct State {
        var target: NVMeTCPTarget?
        var ports: [Int]
    }
    private let state: Mutex<State>

    private init(group: MultiThreadedEventLoopGroup, device: any BlockDevice, listeners: Int, namespaceIdentity: NamespaceIdentity?) {
        self.group = group
        self.device = device
        self.listenerCount = listeners
        self.namespaceIdentity = namespaceIdentity
        state = Mutex(State(target: nil, ports: Array(repeating: 0, count: listeners)))
    }

    /// Starts a target with `listeners` listeners on fresh ports (bound to port 0).
    static func start(listeners: Int = 1, device: any BlockDevice = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 16),
                      namespaceIdentity: NamespaceIdentity? = nil,
                      group: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)) async throws -> RestartableTarget {
        let t = RestartableTarget(group: group, device: device, listeners: listeners, namespaceIdentity: namespaceIdentity)
        try await t.start()
        return t
    }

    var addresses: [TransportAddress] {
        state.withLock { $0.ports.map { TransportAddress(host: "127.0.0.1", port: $0) } }
    }

    var target: NVMeTCPTarget? { state.withLock { $0.target } }

    /// Starts a new `NVMeTCPTarget` on the same ports (port 0 the first time) with the same device.
    func start() async throws {
        let ports = state.withLock { $0.ports }
        let config = TargetConfiguration(
            listeners: ports.map { ListenerConfiguration(host: "127.0.0.1", port: $0) },
            subsystems: [SubsystemConfiguration(nqn: MP.nqn, namespaces: [NamespaceConfiguration(device: device, identity: namespaceIdentity)])])
        let target = NVMeTCPTarget(configuration: config, group: group, logger: MP.quietLogger)
        let bound = try await target.start()
        state.withLock {
            $0.target = target
            $0.ports = bound.map { $0.port! }
        }
    }

    /// Kills the target: listeners closed, every controller torn down (its queues close).
    func stop() async {
        let target = state.withLock { s -> NVMeTCPTarget? in defer { s.target = nil }; return s.target }
        await target?.stop()
    }

    func shutdown() async {
        await stop()
        try? await group.shutdownGracefully()
    }
}

/// Records a session's state stream.
final class StateRecorder: Sendable {
    private let seen = Mutex<[ControllerState]>([])
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ session: ControllerSession) {
        let stream = session.states
        let t = Task { [self] in
            for await state in stream { self.seen.withLock { $0.append(state) } }
        }
        task.withLock { $0 = t }
    }

    var states: [ControllerState] { seen.withLock { $0 } }

    /// Waits until the recorded states end with `suffix`... or contain it in order.
    func contains(inOrder wanted: [ControllerState]) -> Bool {
        var i = 0
        for s in states where i < wanted.count && s == wanted[i] { i += 1 }
        return i == wanted.count
    }
}

/// Runs `body` and always cleans up, even when it throws.
func withCleanup(_ cleanup: () async -> Void, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
}

/// A counter shared by test tasks.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    func increment() { atomic.add(1, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}

/// A flag shared by test tasks.
final class Flag: Sendable {
    private let atomic = Atomic<Bool>(false)
    func set() { atomic.store(true, ordering: .relaxed) }
    var isSet: Bool { atomic.load(ordering: .relaxed) }
}

/// A value shared by test tasks behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
