import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

/// Failover over real loopback TCP. One serialized suite (tests in several files extend it) so
/// the reconnect timings of one test do not compete with another's on a small machine.
@Suite("Failover over loopback", .serialized)
struct FailoverTests {}

extension FailoverTests {
    static func connectSession(_ address: TransportAddress, group: any EventLoopGroup,
                               _ sessionOptions: ControllerSessionOptions, options: ControllerOptions = MP.controllerOptions) async throws -> ControllerSession {
        try await ControllerSession.connect(to: address, subsystemNQN: MP.nqn, identity: MP.identity, options: options,
                                            sessionOptions: sessionOptions, group: group, logger: MP.quietLogger)
    }

    @Test("target killed mid-I/O: I/O waits while connecting and completes once the target is back (live → connecting → live)")
    func targetRestart() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let session = try await Self.connectSession(t.addresses[0], group: t.group, MP.sessionOptions(reconnectDelay: .milliseconds(200)))
            let recorder = StateRecorder(session)
            #expect(session.state == .live)

            // A steady stream of writes, 8 at a time, to distinct LBAs.
            let stop = Flag()
            let done = Counter()
            let restarted = Flag()
            let failures = Locked<[(NVMeStatus, afterRestart: Bool)]>([])
            let writers = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for w in 0..<8 {
                        group.addTask {
                            var i = 0
                            while !stop.isSet {
                                let lba = UInt64((w * 256 + i % 256) * 8)
                                let c = try await session.submit(.write(nsid: 1, lba: lba, blocks: 8), data: MP.pattern(4096, seed: lba))
                                if c.entry.status.isSuccess {
                                    done.increment()
                                } else {
                                    let after = restarted.isSet
                                    failures.withLock { $0.append((c.entry.status, after)) }
                                }
                                i += 1
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(await MP.eventually { done.value >= 50 })

            await t.stop()  // kill the target with writes in flight
            #expect(await MP.eventually { session.state == .connecting })

            // I/O issued during the outage waits…
            let finished = Flag()
            let outage = Task {
                defer { finished.set() }
                return try await session.submit(.write(nsid: 1, lba: 60_000, blocks: 8), data: MP.pattern(4096, seed: 60_000))
            }
            try await Task.sleep(for: .milliseconds(800))
            #expect(!finished.isSet, "I/O must wait while the target is down")
            #expect(session.state == .connecting)
            #expect(await MP.eventually { session.status.queuedIO >= 1 })

            // …and completes when a new target listens on the same port with the same device.
            try await t.start()
            restarted.set()
            let completion = try await outage.value
            #expect(completion.entry.status == .success)
            #expect(session.state == .live)
            let before = done.value
            #expect(await MP.eventually { done.value > before + 50 })
            stop.set()
            try await writers.value  // no writer saw a thrown error
            // A target that stops closes its queues without answering the commands in flight, so
            // they are retried after the reconnect: no write fails at all.
            let failed = failures.withLock { $0 }
            #expect(failed.isEmpty, "\(failed)")

            // The outage write landed (read back through the new controller).
            let read = try await session.submit(.read(nsid: 1, lba: 60_000, blocks: 8, blockSize: 512), readLength: 4096)
            #expect(read.data == MP.pattern(4096, seed: 60_000))
            #expect(session.liveController != nil)
            // The recorder consumes the stream on its own task: give it time to catch up.
            #expect(await MP.eventually { recorder.contains(inOrder: [.live, .connecting, .live]) }, "\(recorder.states)")
            // (One outage, one reconnect — though a machine loaded enough to delay keep-alives past
            // the target's limit can add another; that is correct behaviour, so only ≥ 1 is checked.)
            #expect(recorder.states.filter { $0 == .connecting }.count >= 1, "\(recorder.states)")

            await session.close()
            #expect(session.state == .deleted)
            #expect(await MP.eventually { recorder.states.suffix(2) == [.deleting, .deleted] })
        }
    }

    @Test("controller loss timeout: the session deletes itself and queued I/O fails")
    func controllerLossTimeout() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let session = try await Self.connectSession(
                t.addresses[0], group: t.group, MP.sessionOptions(reconnectDelay: .milliseconds(200), loss: .milliseconds(1500)))
            let recorder = StateRecorder(session)
            let clock = ContinuousClock()
            let start = clock.now
            await t.stop()
            #expect(await MP.eventually { session.state == .connecting })
            await #expect(throws: ControllerSessionError.controllerLost(t.addresses[0])) {
                _ = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            }
            // The loss timer starts when the loss is seen, after the stop: it cannot fire earlier.
            let waited = clock.now - start
            #expect(waited >= .milliseconds(1400), "the read waited for the loss timeout (\(waited))")
            #expect(session.state == .deleted)
            #expect(await MP.eventually { recorder.contains(inOrder: [.live, .connecting, .deleting, .deleted]) }, "\(recorder.states)")
            // Deleted for good: a returning target is not reconnected, new I/O fails at once.
            try await t.start()
            try await Task.sleep(for: .milliseconds(600))
            #expect(session.state == .deleted)
            await #expect(throws: ControllerSessionError.self) {
                _ = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            }
            await session.close()
        }
    }

    @Test("fast I/O fail: queued I/O fails early while the session keeps reconnecting")
    func fastIOFail() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let session = try await Self.connectSession(
                t.addresses[0], group: t.group, MP.sessionOptions(reconnectDelay: .milliseconds(200), loss: nil, fastFail: .milliseconds(700)))
            await t.stop()
            #expect(await MP.eventually { session.state == .connecting })
            await #expect(throws: ControllerSessionError.fastFailed(t.addresses[0])) {
                _ = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            }
            // Still reconnecting, but no longer available: new I/O fails at once.
            #expect(session.state == .connecting)
            #expect(session.status.fastFailed)
            #expect(!session.isAvailable)
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: ControllerSessionError.fastFailed(t.addresses[0])) {
                _ = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            }
            #expect(clock.now - start < .seconds(5))
            #expect(session.status.reconnectAttempts >= 1)
            // The target returns: the session reconnects and serves I/O again.
            try await t.start()
            #expect(await MP.eventually { session.state == .live })
            #expect(!session.status.fastFailed)
            let c = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            #expect(c.entry.status == .success)
            await session.close()
        }
    }

    @Test("keep-alive loss (a silent partition) is detected and the session reconnects")
    func keepAliveLoss() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let proxy = TCPProxy(upstream: t.addresses[0], group: t.group)
            try await proxy.start()
            var options = MP.controllerOptions
            options.keepAliveTimeout = .seconds(1)
            options.connectTimeout = .seconds(1)
            let session = try await Self.connectSession(proxy.address, group: t.group,
                                                        MP.sessionOptions(reconnectDelay: .milliseconds(300)), options: options)
            let recorder = StateRecorder(session)
            let firstID = try #require(session.status.controllerID)
            proxy.blackhole = true  // nothing gets through, nothing closes
            #expect(await MP.eventually { session.state == .connecting }, "keep-alive timeout must tear the controller down")
            proxy.blackhole = false
            #expect(await MP.eventually { session.state == .live })
            // A brand-new controller (Connect with CNTLID 0xFFFF; the target hands out another ID).
            #expect(session.status.controllerID != firstID)
            let c = try await session.submit(.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512), readLength: 512)
            #expect(c.entry.status == .success)
            #expect(await MP.eventually { recorder.contains(inOrder: [.live, .connecting, .live]) }, "\(recorder.states)")
            await session.close()
            await proxy.stop()
        }
    }

    @Test("an initial connect that fails throws and leaves nothing behind")
    func initialConnectFails() async throws {
        let t = try await RestartableTarget.start()
        try await withCleanup({ await t.shutdown() }) {
            let address = t.addresses[0]
            await t.stop()
            await #expect(throws: NVMeHostError.self) {
                _ = try await Self.connectSession(address, group: t.group, MP.sessionOptions())
            }
        }
    }
}
