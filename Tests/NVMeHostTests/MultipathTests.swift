import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

extension FailoverTests {
    static func connectDevice(_ paths: [TransportAddress], group: any EventLoopGroup,
                              sessionOptions: ControllerSessionOptions = MP.sessionOptions(),
                              policy: PathPolicy = .roundRobin, logger: Logger = MP.quietLogger) async throws -> MultipathDevice {
        try await MultipathDevice.connect(paths: paths, subsystemNQN: MP.nqn, namespaceID: 1, identity: MP.identity,
                                          options: MP.controllerOptions, sessionOptions: sessionOptions, policy: policy,
                                          group: group, logger: logger)
    }

    /// `workers` tasks, each writing a fresh pattern to its own LBAs and reading it straight back.
    /// Any error or mismatch ends the task with an error; `done` counts verified round trips.
    static func readWriteLoad(_ device: MultipathDevice, workers: Int = 8, stop: Flag, done: Counter) -> Task<Void, any Error> {
        Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<workers {
                    group.addTask {
                        var i: UInt64 = 0
                        while !stop.isSet {
                            let lba = UInt64(w * 1024) + (i % 128) * 8
                            let data = MP.pattern(4096, seed: lba ^ (i << 32))
                            try await device.write(lba: lba, data: data)
                            let back = try await device.read(lba: lba, blocks: 8)
                            guard back == data else { throw NVMeHostError.protocolError("LBA \(lba) read back different data") }
                            done.increment()
                            i += 1
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("two paths: one is cut mid-I/O, I/O goes on over the other without an error; the path comes back and is used again")
    func pathCut() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        let proxy = TCPProxy(upstream: t.addresses[1], group: t.group)
        try await withCleanup({ await proxy.stop(); await t.shutdown() }) {
            try await proxy.start()
            let device = try await Self.connectDevice([t.addresses[0], proxy.address], group: t.group)
            #expect(device.blockSize == 512 && device.blockCount == 1 << 16)
            #expect(device.paths.allSatisfy { $0.state == .live && $0.anaState == .optimized && $0.isUsable })
            #expect(Set(device.paths.compactMap(\.controllerID)).count == 2, "two controllers, distinct CNTLIDs")

            let stop = Flag()
            let done = Counter()
            let load = Self.readWriteLoad(device, stop: stop, done: done)
            // Round-robin: both paths carry I/O.
            #expect(await MP.eventually { device.paths.allSatisfy { $0.completed > 20 } })

            await proxy.stop()  // cut path 2 with I/O in flight
            #expect(await MP.eventually { device.paths[1].state == .connecting })
            let during = done.value
            let onSurvivor = device.paths[0].completed
            #expect(await MP.eventually { done.value > during + 100 }, "I/O continues on the surviving path")
            #expect(device.paths[0].completed > onSurvivor)
            #expect(device.paths[1].state == .connecting && !device.paths[1].isUsable)

            try await proxy.start()  // path 2 comes back
            #expect(await MP.eventually { device.paths[1].state == .live })
            let resumed = device.paths[1].completed
            #expect(await MP.eventually { device.paths[1].completed > resumed + 20 }, "the returning path is used again")
            stop.set()
            try await load.value  // no I/O error, no mismatch
            #expect(done.value > 200)
            await device.close()
            #expect(device.paths.allSatisfy { $0.state == .deleted })
        }
    }

    @Test("no usable path: I/O waits while a path is reconnecting, fails once every path has fast-failed")
    func allPathsDown() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let device = try await Self.connectDevice(t.addresses, group: t.group,
                                                      sessionOptions: MP.sessionOptions(reconnectDelay: .milliseconds(200), fastFail: .seconds(2)))
            let clock = ContinuousClock()
            let start = clock.now
            await t.stop()
            #expect(await MP.eventually { device.paths[0].state == .connecting })
            // Waits (the path is connecting and not fast-failed), then fails when fast-fail expires.
            do {
                _ = try await device.read(lba: 0, blocks: 1)
                Issue.record("the read should fail once the only path fast-failed")
            } catch let error as MultipathError {
                guard case .noPathAvailable = error else { Issue.record("unexpected \(error)"); return }
            }
            #expect(clock.now - start >= .milliseconds(1900), "the read waited for fast-fail before failing")
            // A read issued while the path is down but before fast-fail waits and succeeds when it returns.
            try await t.start()
            #expect(await MP.eventually { device.paths[0].state == .live })
            await t.stop()
            #expect(await MP.eventually { device.paths[0].state == .connecting })
            let waiting = Task { try await device.read(lba: 0, blocks: 1) }
            try await Task.sleep(for: .milliseconds(300))
            try await t.start()
            let data = try await waiting.value
            #expect(data.readableBytes == 512)
            await device.close()
        }
    }

    @Test("a path that is down at connect time joins once it comes up (and is checked)")
    func lateJoiningPath() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        let proxy = TCPProxy(upstream: t.addresses[1], group: t.group)
        try await withCleanup({ await proxy.stop(); await t.shutdown() }) {
            try await proxy.start()
            let address = proxy.address
            await proxy.stop()
            let device = try await Self.connectDevice([t.addresses[0], address], group: t.group)
            #expect(device.paths[0].state == .live)
            #expect(device.paths[1].state == .connecting)
            try await device.write(lba: 8, data: MP.pattern(512, seed: 8))
            try await proxy.start()
            #expect(await MP.eventually { device.paths[1].state == .live })
            #expect(device.paths[1].anaState == .optimized)
            #expect(try await device.read(lba: 8, blocks: 1) == MP.pattern(512, seed: 8))
            await device.close()
        }
    }

    @Test("a path whose namespace identity differs is refused")
    func identityMismatch() async throws {
        let good = try await RestartableTarget.start()
        let other = NamespaceIdentity(nguid: NGUID(Array(1...16)), uuid: NamespaceUUID(Array(17...32)))
        let bad = try await RestartableTarget.start(namespaceIdentity: other)
        try await withCleanup({ await good.shutdown(); await bad.shutdown() }) {
            do {
                let device = try await Self.connectDevice([good.addresses[0], bad.addresses[0]], group: good.group)
                Issue.record("connect should refuse the second path")
                await device.close()
            } catch MultipathError.pathRefused(let address, let why) {
                #expect(address == bad.addresses[0])
                #expect(why.contains("NGUID"), "\(why)")
            }
            // Each alone is fine.
            let device = try await Self.connectDevice([bad.addresses[0]], group: good.group)
            #expect(device.nguid == other.nguid && device.uuid == other.uuid)
            await device.close()
        }
    }

    @Test("ANA: every path reads its ANA state; an ANA-change event re-reads that path's log")
    func anaChangeEvent() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        let logs = LogStore()
        var logger = Logger(label: "ana-test") { _ in CapturingLogHandler(store: logs) }
        logger.logLevel = .debug
        try await withCleanup({ await t.shutdown() }) {
            let device = try await Self.connectDevice(t.addresses, group: t.group, logger: logger)
            #expect(device.paths.map(\.anaState) == [.optimized, .optimized])
            let before = logs.count { $0.contains("ANA log read") }
            #expect(before >= 2, "each path read the ANA log while connecting")
            let controllers = try #require(t.target?.subsystems[MP.nqn]?.controllers)
            #expect(controllers.count == 2)
            try await Task.sleep(for: .milliseconds(200))  // AERs parked
            for c in controllers { c.raiseAsyncEvent(0x000C_0302, enableBit: 1 << 11) }
            #expect(await MP.eventually { logs.count { $0.contains("ANA log read") } >= before + 2 })
            #expect(device.paths.map(\.anaState) == [.optimized, .optimized])
            try await device.write(lba: 0, data: MP.pattern(512, seed: 1))
            await device.close()
        }
    }

    @Test("admin commands go to one path; queue-depth policy serves I/O")
    func adminAndQueueDepth() async throws {
        let t = try await RestartableTarget.start(listeners: 2)
        try await withCleanup({ await t.shutdown() }) {
            let device = try await Self.connectDevice(t.addresses, group: t.group, policy: .queueDepth)
            var data = try await device.adminCommand(.identify(.controller), readLength: 4096).data
            #expect(try IdentifyController(decoding: &data).subnqn == MP.nqn)
            let writes = (0..<64).map { i in
                Task { try await device.write(lba: UInt64(i * 8), data: MP.pattern(4096, seed: UInt64(i))) }
            }
            for w in writes { try await w.value }
            #expect(device.paths.allSatisfy { $0.completed > 0 && $0.inFlight == 0 })
            device.policy = .roundRobin
            #expect(device.policy == .roundRobin)
            // A large transfer is split by MDTS and reassembled.
            let big = MP.pattern(3 << 20, seed: 99)
            try await device.write(lba: 4096, data: big)
            #expect(try await device.read(lba: 4096, blocks: UInt32((3 << 20) / 512)) == big)
            // Out of range is the caller's error, not a path error.
            await #expect(throws: NVMeHostError.self) { _ = try await device.read(lba: device.blockCount, blocks: 1) }
            await device.close()
            await #expect(throws: MultipathError.closed) { _ = try await device.read(lba: 0, blocks: 1) }
        }
    }
}

/// Collects log messages.
final class LogStore: Sendable {
    private let messages = Mutex<[String]>([])
    func append(_ m: String) { messages.withLock { $0.append(m) } }
    func count(where predicate: (String) -> Bool) -> Int { messages.withLock { $0.filter(predicate).count } }
}

struct CapturingLogHandler: LogHandler {
    let store: LogStore
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.append(event.message.description)
    }
}
