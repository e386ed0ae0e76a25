import Foundation
import NIOCore
import NIOPosix
import NVMe
import NVMeTarget
import Nexus
import Storage
import Synchronization

/// Replicas as the nexus tests use them: one real NVMe/TCP target per "node" on 127.0.0.1
/// (port picked by the kernel, kept across a restart), each serving one replica subsystem
/// `nqn.2026-11.io.halyard:replica:<uuid>` over a RAM device that outlives the target, so a
/// stopped node keeps its data like a killed io-engine keeps its pool.
final class ReplicaNodes: Sendable {
    struct Node: Sendable {
        let replica: UUID
        let device: MemoryBlockDevice
        var target: NVMeTCPTarget?
        var port: Int
    }

    static let blockSize = 512
    let blockCount: UInt64
    private let nodes: Mutex<[Node]>

    private init(blockCount: UInt64, nodes: [Node]) {
        self.blockCount = blockCount
        self.nodes = Mutex(nodes)
    }

    static func start(count: Int, blockCount: UInt64 = 16_384) async throws -> ReplicaNodes {
        var nodes: [Node] = []
        for _ in 0..<count {
            let replica = UUID()
            let device = MemoryBlockDevice(blockSize: blockSize, blockCount: blockCount)
            let (target, port) = try await startTarget(replica: replica, device: device, port: 0)
            nodes.append(Node(replica: replica, device: device, target: target, port: port))
        }
        return ReplicaNodes(blockCount: blockCount, nodes: nodes)
    }

    static func nqn(_ replica: UUID) -> String { "nqn.2026-11.io.halyard:replica:\(replica.uuidString.lowercased())" }

    private static func startTarget(replica: UUID, device: MemoryBlockDevice, port: Int) async throws -> (NVMeTCPTarget, Int) {
        let configuration = TargetConfiguration(
            listeners: [ListenerConfiguration(host: "127.0.0.1", port: port)],
            subsystems: [SubsystemConfiguration(nqn: nqn(replica), namespaces: [NamespaceConfiguration(device: device)])])
        let target = NVMeTCPTarget(configuration: configuration)
        let addresses = try await target.start()
        return (target, addresses[0].port ?? port)
    }

    var count: Int { nodes.withLock { $0.count } }

    func uri(_ i: Int) -> String {
        nodes.withLock { "nvmf://127.0.0.1:\($0[i].port)/\(Self.nqn($0[i].replica))" }
    }

    var uris: [String] { (0..<count).map(uri) }

    func target(_ i: Int) -> NVMeTCPTarget? { nodes.withLock { $0[i].target } }

    func replica(_ i: Int) -> UUID { nodes.withLock { $0[i].replica } }

    /// Adds a node with a fresh (zeroed) replica.
    @discardableResult
    func add() async throws -> Int {
        let replica = UUID()
        let device = MemoryBlockDevice(blockSize: Self.blockSize, blockCount: blockCount)
        let (target, port) = try await Self.startTarget(replica: replica, device: device, port: 0)
        return nodes.withLock {
            $0.append(Node(replica: replica, device: device, target: target, port: port))
            return $0.count - 1
        }
    }

    /// Stops node i's target: its connections drop, like a killed io-engine.
    func stop(_ i: Int) async {
        let target = nodes.withLock { nodes -> NVMeTCPTarget? in
            defer { nodes[i].target = nil }
            return nodes[i].target
        }
        await target?.stop()
    }

    /// Starts node i again on its port with its data (reservations are not persistent here:
    /// a restarted RAM target forgets them, which the nexus re-takes on online).
    func restart(_ i: Int) async throws {
        let (replica, device, port) = nodes.withLock { ($0[i].replica, $0[i].device, $0[i].port) }
        let (target, _) = try await Self.startTarget(replica: replica, device: device, port: port)
        nodes.withLock { $0[i].target = target }
    }

    /// Node i's whole replica, read from its device directly (not through NVMe).
    func contents(_ i: Int) async throws -> [UInt8] {
        let device = nodes.withLock { $0[i].device }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var data = try await device.read(lba: 0, blocks: UInt32(blockCount), on: loop).get()
        return data.readBytes(length: data.readableBytes)!
    }

    func shutdown() async {
        for i in 0..<count { await stop(i) }
    }
}

/// Opens every child as a ``RemoteChild``, or as a ``LocalChild`` for the nodes in `local`
/// (their namespace on the in-process target — as the io-engine does for its own replicas).
struct TestConnector: ChildConnector {
    let nodes: ReplicaNodes
    var local: Set<Int> = []

    func open(uri: String, identity: NexusIdentity) async throws(ChildIOError) -> any ChildDevice {
        for i in local where nodes.uri(i) == uri {
            guard let namespace = nodes.target(i)?.subsystems[ReplicaNodes.nqn(nodes.replica(i))]?.namespace(1) else {
                throw .unreachable("node \(i) is down")
            }
            return try LocalChild.open(namespace: namespace, uri: uri, hostID: identity.hostIdentifier,
                                       eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        }
        return try await RemoteChild.open(uri: uri, identity: identity)
    }
}

/// A health record store in memory whose writes can be made to fail (a store outage).
final class MemoryHealthRecorder: NexusHealthRecorder {
    private struct State {
        var record: NexusHealthRecord?
        var failing = false
        var writes = 0
    }
    private let state = Mutex(State())

    func write(_ record: NexusHealthRecord) async throws {
        try state.withLock { s in
            if s.failing { throw StoreDown() }
            s.record = record
            s.writes += 1
        }
    }

    struct StoreDown: Error {}

    var record: NexusHealthRecord? { state.withLock { $0.record } }
    var writes: Int { state.withLock { $0.writes } }
    func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    func healthy(_ replica: UUID) -> Bool? {
        record?.children.first { $0.uuid == replica.uuidString.lowercased() }?.healthy
    }
}

/// A deterministic block pattern: `seed` and the LBA in every 8 bytes.
func pattern(lba: UInt64, blocks: Int, seed: UInt64, blockSize: Int = ReplicaNodes.blockSize) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: blocks * blockSize)
    for b in 0..<blocks {
        for word in 0..<(blockSize / 8) {
            buffer.writeInteger((seed &* 0x9E37_79B9_7F4A_7C15) ^ (lba + UInt64(b)) << 16 ^ UInt64(word), endianness: .little)
        }
    }
    return buffer
}

/// Polls `condition` every 20 ms for up to `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "halyard-nexus-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// How a test drives a nexus's reads and writes: its async API, or the callback path the NVMe/TCP
/// target takes (``Nexus/write(lba:data:fua:on:completion:)``), which must behave the same.
enum IOPath: String, CaseIterable, Sendable {
    case async
    case callback
}

extension Nexus {
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, via path: IOPath) async throws(NexusIOError) {
        switch path {
        case .async:
            try await write(lba: lba, data: data, fua: fua)
        case .callback:
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let result = await withCheckedContinuation { (c: CheckedContinuation<Result<Void, NexusIOError>, Never>) in
                loop.execute {
                    self.write(lba: lba, data: data, fua: fua, on: loop) { result in
                        loop.preconditionInEventLoop()
                        c.resume(returning: result)
                    }
                }
            }
            try result.get()
        }
    }

    func read(lba: UInt64, blocks: UInt32, via path: IOPath) async throws(NexusIOError) -> ByteBuffer {
        switch path {
        case .async:
            return try await read(lba: lba, blocks: blocks)
        case .callback:
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let result = await withCheckedContinuation { (c: CheckedContinuation<Result<ByteBuffer, NexusIOError>, Never>) in
                loop.execute {
                    self.read(lba: lba, blocks: blocks, on: loop) { result in
                        loop.preconditionInEventLoop()
                        c.resume(returning: result)
                    }
                }
            }
            return try result.get()
        }
    }
}
