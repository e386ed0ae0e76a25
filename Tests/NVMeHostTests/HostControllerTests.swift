import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Testing

/// NVMeHost against Halyard's own target over real loopback TCP.
@Suite("NVMeHost controller")
struct HostControllerTests {
    static let nqn = "nqn.2026-11.io.halyard:host-test"
    static let identity = HostIdentity(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-4908-8706-050403020100",
                                       hostID: [0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x49, 0x08, 0x87, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x00])

    struct Fixture {
        let target: NVMeTCPTarget
        let group: MultiThreadedEventLoopGroup
        let address: TransportAddress
        let discovery: TransportAddress

        static func start(device: any BlockDevice = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 17),
                          limits: TargetLimits = TargetLimits()) async throws -> Fixture {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let config = TargetConfiguration(
                listeners: [ListenerConfiguration(host: "127.0.0.1", port: 0)],
                discoveryListener: ListenerConfiguration(host: "127.0.0.1", port: 0),
                subsystems: [SubsystemConfiguration(nqn: HostControllerTests.nqn, namespaces: [NamespaceConfiguration(device: device)])],
                limits: limits)
            var logger = Logger(label: "host-test-target")
            logger.logLevel = .critical
            let target = NVMeTCPTarget(configuration: config, group: group, logger: logger)
            let bound = try await target.start()
            return Fixture(target: target, group: group, address: TransportAddress(host: "127.0.0.1", port: bound[0].port!),
                           discovery: TransportAddress(host: "127.0.0.1", port: bound[1].port!))
        }

        func connect(_ options: ControllerOptions = ControllerOptions()) async throws -> NVMeController {
            try await NVMeController.connect(to: address, subsystemNQN: HostControllerTests.nqn, identity: HostControllerTests.identity,
                                             options: options, group: group)
        }

        func stop() async {
            await target.stop()
            try? await group.shutdownGracefully()
        }
    }

    func withFixture(device: any BlockDevice = MemoryBlockDevice(blockSize: 512, blockCount: 1 << 17),
                     limits: TargetLimits = TargetLimits(),
                     _ body: (Fixture) async throws -> Void) async throws {
        let f = try await Fixture.start(device: device, limits: limits)
        do { try await body(f) } catch { await f.stop(); throw error }
        await f.stop()
    }

    static func pattern(_ count: Int, seed: UInt64) -> ByteBuffer {
        var b = ByteBuffer()
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for _ in 0..<(count + 7) / 8 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; b.writeInteger(x) }
        b.moveWriterIndex(to: count)
        return b
    }

    @Test("connect brings the controller up like Linux: identity, queues, namespaces", arguments: [false, true])
    func connect(digests: Bool) async throws {
        try await withFixture { f in
            var options = ControllerOptions()
            options.headerDigest = digests
            options.dataDigest = digests
            options.ioQueueCount = 3
            let c = try await f.connect(options)
            #expect(c.identify.subnqn == Self.nqn)
            #expect(c.identify.cntlid == c.controllerID)
            #expect(c.ioQueues.count == 3)
            #expect(try await c.activeNamespaces() == [1])
            let ns = try await c.identifyNamespace(1)
            #expect(ns.nsze == 1 << 17)
            let descs = try await c.namespaceDescriptors(1)
            #expect(descs.nguid == ns.nguid && descs.uuid != nil)
            let ana = try await c.anaLogPage()
            #expect(ana.groups.first?.state == .optimized)
            // The target sees our host identity.
            let seen = try #require(f.target.subsystems[Self.nqn]?.controllers.first)
            #expect(seen.hostNQN == Self.identity.hostNQN && seen.hostID == Self.identity.hostID)
            await c.shutdown()
        }
    }

    @Test("writes and reads of every transfer shape come back identical (digests; reads completed by C2HData SUCCESS or by CapsuleResp)",
          arguments: [false, true], [true, false])
    func readWrite(digests: Bool, disableSQFlowControl: Bool) async throws {
        try await withFixture { f in
            var options = ControllerOptions()
            options.headerDigest = digests
            options.dataDigest = digests
            options.disableSQFlowControl = disableSQFlowControl
            let c = try await f.connect(options)
            // In-capsule (≤ 16 KiB), one R2T, R2T split over several H2CData PDUs (1 MiB > MAXH2CDATA).
            for (lba, bytes) in [(UInt64(0), 512), (8, 16384), (64, 65536), (1024, 1 << 20)] {
                let data = Self.pattern(bytes, seed: lba + 1)
                let w = try await c.submitIO(.write(nsid: 1, lba: lba, blocks: UInt32(bytes / 512)), data: data).get()
                #expect(w.entry.status == .success)
                let r = try await c.submitIO(.read(nsid: 1, lba: lba, blocks: UInt32(bytes / 512), blockSize: 512), readLength: bytes).get()
                #expect(r.entry.status == .success && r.data == data, "\(bytes) bytes at LBA \(lba)")
            }
            let oob = try await c.submitIO(.read(nsid: 1, lba: 1 << 17, blocks: 1, blockSize: 512), readLength: 512).get()
            #expect(oob.entry.status == .lbaOutOfRange)
            await c.shutdown()
        }
    }

    @Test("queue depth kept full: 4 × 128 concurrent writes then reads")
    func concurrency() async throws {
        try await withFixture { f in
            var options = ControllerOptions()
            options.ioQueueCount = 4
            let c = try await f.connect(options)
            let writes = (0..<512).map { i in
                c.submitIO(.write(nsid: 1, lba: UInt64(i * 8), blocks: 8), data: Self.pattern(4096, seed: UInt64(i)))
            }
            for w in writes { #expect(try await w.get().entry.status == .success) }
            let reads = (0..<512).map { i in c.submitIO(.read(nsid: 1, lba: UInt64(i * 8), blocks: 8, blockSize: 512), readLength: 4096) }
            for (i, r) in reads.enumerated() { #expect(try await r.get().data == Self.pattern(4096, seed: UInt64(i))) }
            await c.shutdown()
        }
    }

    @Test("keep-alive holds the controller past KATO; shutdown removes it from the target")
    func keepAliveAndShutdown() async throws {
        // KATO 2 s and a 5 s grace on the target: without keep-alives the controller would be gone
        // after 7 s; with them it survives 10 s even if a loaded machine delays a few of them.
        var limits = TargetLimits()
        limits.keepAliveGrace = .seconds(5)
        try await withFixture(limits: limits) { f in
            var options = ControllerOptions()
            options.keepAliveTimeout = .seconds(2)
            let c = try await f.connect(options)
            try await Task.sleep(for: .seconds(10))  // well past KATO + the target's grace
            #expect(try await c.submitIO(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512).get().entry.status == .success)
            let subsystem = try #require(f.target.subsystems[Self.nqn])
            #expect(subsystem.controllers.count == 1)
            await c.shutdown()
            try await Task.sleep(for: .milliseconds(200))
            #expect(subsystem.controllers.isEmpty)
        }
    }

    @Test("asynchronous events reach the host's event stream")
    func asyncEvents() async throws {
        try await withFixture { f in
            let c = try await f.connect()
            let controller = try #require(f.target.subsystems[Self.nqn]?.controllers.first)
            try await Task.sleep(for: .milliseconds(100))  // the AER is parked
            controller.raiseAsyncEvent(0x000C_0302, enableBit: 1 << 11)
            var iterator = c.asyncEvents.makeAsyncIterator()
            #expect(await iterator.next() == 0x000C_0302)
            await c.shutdown()
        }
    }

    @Test("discovery log lists the subsystem")
    func discovery() async throws {
        try await withFixture { f in
            let d = try await NVMeController.connect(to: f.discovery, subsystemNQN: "nqn.2014-08.org.nvmexpress.discovery",
                                                     identity: Self.identity, group: f.group)
            #expect(d.isDiscovery)
            let page = try await d.discoveryLogPage()
            #expect(page.entries.map(\.subsystemNQN) == [Self.nqn])
            #expect(page.entries.first?.transportServiceID == String(f.address.port))
            await d.shutdown()
        }
    }

    @Test("connect errors are reported with the target's status")
    func connectErrors() async throws {
        try await withFixture { f in
            await #expect(throws: NVMeHostError.self) {
                _ = try await NVMeController.connect(to: f.address, subsystemNQN: "nqn.2026-11.io.halyard:missing",
                                                     identity: Self.identity, group: f.group)
            }
            await #expect(throws: NVMeHostError.self) {
                _ = try await NVMeController.connect(to: TransportAddress(host: "127.0.0.1", port: 1), subsystemNQN: Self.nqn,
                                                     identity: Self.identity, group: f.group)
            }
        }
    }

    @Test("a command that outlives its timeout fails with a timeout and the queue is dropped")
    func timeout() async throws {
        let faulty = FaultInjectingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 1 << 14))
        faulty.addLatency(.seconds(5), to: .read, lbas: 7..<8)
        try await withFixture(device: faulty) { f in
            var options = ControllerOptions()
            options.ioTimeout = .milliseconds(500)
            options.ioQueueCount = 1
            let c = try await f.connect(options)
            do {
                _ = try await c.submitIO(.read(nsid: 1, lba: 7, blocks: 1, blockSize: 512), readLength: 512).get()
                Issue.record("the slow read should have timed out")
            } catch let error as NVMeHostError {
                guard case .timeout = error else { Issue.record("expected a timeout, got \(error)"); return }
            }
            #expect(!c.ioQueues[0].isActive, "a timed-out queue is closed")
            await c.shutdown()
        }
    }
}
