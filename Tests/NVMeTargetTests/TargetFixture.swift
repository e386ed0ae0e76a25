import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
@testable import NVMeTarget
import Storage

/// A target on 127.0.0.1 with ephemeral ports, for one test.
struct TargetFixture {
    static let nqn = "nqn.2026-11.io.halyard:test"
    let target: NVMeTCPTarget
    let group: MultiThreadedEventLoopGroup
    let ports: [Int]
    let discoveryPort: Int?

    static func start(devices: [any BlockDevice] = [MemoryBlockDevice(blockSize: 512, blockCount: 131072)],
                      listeners: Int = 1, discovery: Bool = false, allowedHosts: Set<String>? = nil,
                      limits: TargetLimits = TargetLimits(), advertise: String? = nil,
                      fixedPorts: [Int]? = nil) async throws -> TargetFixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let namespaces = devices.enumerated().map { NamespaceConfiguration(namespaceID: UInt32($0.offset + 1), device: $0.element) }
        let config = TargetConfiguration(
            listeners: (0..<listeners).map { ListenerConfiguration(host: "127.0.0.1", port: fixedPorts?[$0] ?? 0, advertisedHost: advertise) },
            discoveryListener: discovery ? ListenerConfiguration(host: "127.0.0.1", port: 0, advertisedHost: advertise) : nil,
            subsystems: [SubsystemConfiguration(nqn: nqn, controllerIDRange: 10...20, allowedHosts: allowedHosts, namespaces: namespaces)],
            limits: limits)
        var logger = Logger(label: "test-target")
        logger.logLevel = ProcessInfo.processInfo.environment["HALYARD_TEST_LOG"] != nil ? .trace : .critical
        let target = NVMeTCPTarget(configuration: config, group: group, logger: logger)
        let bound = try await target.start()
        let ports = bound.map { $0.port! }
        return TargetFixture(target: target, group: group, ports: Array(ports.prefix(listeners)),
                             discoveryPort: discovery ? ports.last : nil)
    }

    func stop() async {
        await target.stop()
        try? await group.shutdownGracefully()
    }

    func connectAdmin(listener: Int = 0, kato: UInt32 = 0, headerDigest: Bool = false, dataDigest: Bool = false,
                      hostNQN: String = TestQueue.hostNQN) async throws -> (TestQueue, UInt16) {
        let q = try await TestQueue.open(port: ports[listener], group: group)
        let cntlid = try await q.bringUpAdmin(subsystemNQN: Self.nqn, hostNQN: hostNQN, kato: kato, headerDigest: headerDigest, dataDigest: dataDigest)
        return (q, cntlid)
    }

    /// Admin bring-up, Number of Queues, and one I/O queue.
    func connectIO(listener: Int = 0, headerDigest: Bool = false, dataDigest: Bool = false, queueSize: UInt16 = 128,
                   disableSQFlowControl: Bool = false)
        async throws -> (admin: TestQueue, io: TestQueue, cntlid: UInt16) {
        let (admin, cntlid) = try await connectAdmin(listener: listener, headerDigest: headerDigest, dataDigest: dataDigest)
        let (nq, _) = try await admin.execute(.setFeature(.numberOfQueues, 0x0003_0003))
        guard nq.status.isSuccess else { throw TestFailure("number of queues: \(nq.status)") }
        let io = try await TestQueue.open(port: ports[listener], group: group)
        _ = try await io.handshake(headerDigest: headerDigest, dataDigest: dataDigest)
        let c = try await io.connect(queueID: 1, subsystemNQN: Self.nqn, controllerID: cntlid, queueSize: queueSize,
                                     attributes: disableSQFlowControl ? 0x4 : 0)
        guard c.status.isSuccess else { throw TestFailure("I/O connect: \(c.status)") }
        return (admin, io, cntlid)
    }
}

func withTarget<T>(_ fixture: TargetFixture, _ body: (TargetFixture) async throws -> T) async throws -> T {
    do {
        let result = try await body(fixture)
        await fixture.stop()
        return result
    } catch {
        await fixture.stop()
        throw error
    }
}
