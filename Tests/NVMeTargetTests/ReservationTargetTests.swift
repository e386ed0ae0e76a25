import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
@testable import NVMeTarget
import Storage
import Synchronization
import Testing

/// One host identity (NQN + 128-bit host ID) with an admin queue and I/O queues on the target.
struct ReservationTestHost {
    let admin: TestQueue
    let io: [TestQueue]
    let cntlid: UInt16
    let hostID: HostIdentifier

    static func hostNQN(_ tag: UInt8) -> String { "nqn.2014-08.org.nvmexpress:uuid:resv-host-\(tag)" }
    static func hostID(_ tag: UInt8) -> [UInt8] { [UInt8](repeating: tag, count: 15) + [0x01] }

    static func connect(_ t: TargetFixture, tag: UInt8, ioQueues: Int = 1, listener: Int = 0) async throws -> ReservationTestHost {
        let nqn = hostNQN(tag), id = hostID(tag)
        let admin = try await TestQueue.open(port: t.ports[listener], group: t.group)
        _ = try await admin.handshake()
        let c = try await admin.connect(queueID: 0, subsystemNQN: TargetFixture.nqn, hostNQN: nqn, hostID: id, kato: 0)
        try #require(c.status.isSuccess, "admin connect: \(c.status)")
        #expect(try await admin.setProperty(ControllerProperty.configuration, UInt64(ControllerConfiguration.linuxDefault(enable: true).rawValue)) == .success)
        try #require(ControllerStatus(rawValue: UInt32(try await admin.getProperty(ControllerProperty.status))).ready)
        let cntlid = UInt16(truncatingIfNeeded: c.dw0)
        let (nq, _) = try await admin.execute(.setFeature(.numberOfQueues, 0x0007_0007))
        try #require(nq.status.isSuccess)
        var queues: [TestQueue] = []
        for qid in 1...max(ioQueues, 1) {
            let q = try await TestQueue.open(port: t.ports[listener], group: t.group)
            _ = try await q.handshake()
            let r = try await q.connect(queueID: UInt16(qid), subsystemNQN: TargetFixture.nqn, hostNQN: nqn, hostID: id,
                                        controllerID: cntlid, queueSize: 128)
            try #require(r.status.isSuccess, "I/O connect \(qid): \(r.status)")
            queues.append(q)
        }
        return ReservationTestHost(admin: admin, io: queues, cntlid: cntlid, hostID: HostIdentifier(bytes: id))
    }

    var queue: TestQueue { io[0] }

    func close() async {
        for q in io { await q.close() }
        await admin.close()
    }
}

extension TestQueue {
    func register(_ action: ReservationRegisterCommand.Action, crkey: UInt64 = 0, nrkey: UInt64 = 0, iekey: Bool = false,
                  cptpl: ReservationRegisterCommand.PersistenceChange = .set) async throws -> NVMeStatus {
        var data = ByteBuffer()
        ReservationRegisterData(currentKey: crkey, newKey: nrkey).encode(into: &data)
        let command = ReservationRegisterCommand(action: action, ignoreExistingKey: iekey, persistenceChange: cptpl)
        return try await execute(command.submissionQueueEntry(namespaceID: 1), data: data).0.status
    }

    func acquire(_ action: ReservationAcquireCommand.Action, _ type: ReservationType, crkey: UInt64, prkey: UInt64 = 0) async throws -> NVMeStatus {
        try await execute(acquireCommand(action, type, crkey: crkey, prkey: prkey).0, data: acquireCommand(action, type, crkey: crkey, prkey: prkey).1).0.status
    }

    func acquireCommand(_ action: ReservationAcquireCommand.Action, _ type: ReservationType, crkey: UInt64, prkey: UInt64) -> (SubmissionQueueEntry, ByteBuffer) {
        var data = ByteBuffer()
        ReservationAcquireData(currentKey: crkey, preemptKey: prkey).encode(into: &data)
        return (ReservationAcquireCommand(action: action, type: type).submissionQueueEntry(namespaceID: 1), data)
    }

    func release(_ action: ReservationReleaseCommand.Action, _ type: ReservationType?, crkey: UInt64) async throws -> NVMeStatus {
        var data = ByteBuffer()
        ReservationReleaseData(currentKey: crkey).encode(into: &data)
        return try await execute(ReservationReleaseCommand(action: action, type: type).submissionQueueEntry(namespaceID: 1), data: data).0.status
    }

    func report(length: Int = 4096, extended: Bool = true) async throws -> (NVMeStatus, ReservationStatus?) {
        let (cqe, data) = try await execute(ReservationReportCommand(lengthInBytes: length, extendedDataStructure: extended).submissionQueueEntry(namespaceID: 1))
        guard cqe.status.isSuccess else { return (cqe.status, nil) }
        var body = data
        #expect(body.readableBytes == length)
        return (cqe.status, try ReservationStatus(decodingExtended: &body))
    }

    func write(lba: UInt64, seed: UInt8 = 1) async throws -> NVMeStatus {
        try await execute(.write(lba: lba, blocks: 1), data: pattern(512, seed: seed)).0.status
    }

    func read(lba: UInt64) async throws -> NVMeStatus {
        try await execute(.read(lba: lba, blocks: 1, blockSize: 512)).0.status
    }
}

/// Counts writes that reached the device and completed there (below the fault injector's latency).
final class CountingBlockDevice: BlockDevice {
    let wrapped: any BlockDevice
    private let completedWrites = Atomic<Int>(0)
    init(wrapping device: any BlockDevice) { wrapped = device }
    var writesCompleted: Int { completedWrites.load(ordering: .acquiring) }
    var blockSize: Int { wrapped.blockSize }
    var blockCount: UInt64 { wrapped.blockCount }
    var hasVolatileWriteCache: Bool { wrapped.hasVolatileWriteCache }
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        wrapped.read(lba: lba, blocks: blocks, on: eventLoop)
    }
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.write(lba: lba, data: data, fua: fua, on: eventLoop).map { self.completedWrites.add(1, ordering: .releasing) }
    }
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { wrapped.flush(on: eventLoop) }
    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }
    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }
    func close() throws { try wrapped.close() }
}

final class CompletionFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// A temporary directory removed at the end of the test.
struct ScratchDirectory: ~Copyable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("halyard-resv-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension TargetFixture {
    /// A target serving `namespaces` as they are configured (reservation state location included).
    static func start(namespaces: [NamespaceConfiguration]) async throws -> TargetFixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let config = TargetConfiguration(
            listeners: [ListenerConfiguration(host: "127.0.0.1", port: 0)],
            subsystems: [SubsystemConfiguration(nqn: nqn, controllerIDRange: 10...20, namespaces: namespaces)])
        var logger = Logger(label: "test-target")
        logger.logLevel = ProcessInfo.processInfo.environment["HALYARD_TEST_LOG"] != nil ? .trace : .critical
        let target = NVMeTCPTarget(configuration: config, group: group, logger: logger)
        let bound = try await target.start()
        return TargetFixture(target: target, group: group, ports: bound.compactMap(\.port), discoveryPort: nil)
    }

    var reservations: NamespaceReservations? { target.subsystems[Self.nqn]?.namespace(1)?.reservations }
}

@Suite struct ReservationTargetTests {
    static let keyA: UInt64 = 0xA1A1, keyB: UInt64 = 0xB1B1

    @Test("two hosts: register, Exclusive Access, conflicts with DNR, report, preempt and abort")
    func twoHosts() async throws {
        try await withTarget(try await .start()) { t in
            let a = try await ReservationTestHost.connect(t, tag: 0xA)
            let b = try await ReservationTestHost.connect(t, tag: 0xB)
            // Identify: ONCS b5 (reservations), RESCAP every type + PTPL + IEKEY.
            var idc = try await b.admin.execute(.identify(.controller)).1
            #expect(try IdentifyController(decoding: &idc).oncs & 0x20 != 0)
            var idn = try await b.admin.execute(.identify(.namespace, nsid: 1)).1
            #expect(try IdentifyNamespace(decoding: &idn).rescap == 0xFF)

            #expect(try await a.queue.register(.register, nrkey: Self.keyA) == .success)
            #expect(try await b.queue.register(.register, nrkey: Self.keyB) == .success)
            #expect(try await a.queue.acquire(.acquire, .exclusiveAccess, crkey: Self.keyA) == .success)

            // The non-holder is refused, with DNR so the Linux host does not retry.
            let (denied, _) = try await b.queue.execute(.write(lba: 8, blocks: 1), data: pattern(512, seed: 2))
            #expect(denied.status == .reservationConflict)
            #expect(denied.status.doNotRetry)
            #expect(denied.status.wire == 0x8106)
            #expect(try await b.queue.read(lba: 8) == .reservationConflict)
            #expect(try await a.queue.write(lba: 8) == .success)
            #expect(try await a.queue.read(lba: 8) == .success)
            // Register and Report are never blocked.
            let (status, report) = try await b.queue.report()
            #expect(status == .success)
            let r = try #require(report)
            #expect(r.generation == 2)
            #expect(r.type == .exclusiveAccess)
            #expect(r.persistThroughPowerLoss)  // CPTPL=11b as Linux sends it
            #expect(r.registrants == [
                .init(controllerID: 0xFFFF, holdsReservation: true, key: Self.keyA, hostID: a.hostID),
                .init(controllerID: 0xFFFF, holdsReservation: false, key: Self.keyB, hostID: b.hostID),
            ])
            // Truncated to NUMD: the header and one entry.
            let (_, short) = try await b.queue.report(length: 128)
            #expect(short?.registrantCount == 2)
            #expect(short?.registrants.count == 1)
            let (eds0, _) = try await b.queue.report(extended: false)
            #expect(eds0 == .hostIdentifierInconsistentFormat)
            #expect(eds0.doNotRetry)
            #expect(try await b.queue.report(length: 32).0 == .invalidField)  // smaller than the header
            // Acquire IEKEY, unknown types: Invalid Field.
            var iekey = ReservationAcquireCommand(action: .acquire, type: .exclusiveAccess, ignoreExistingKey: true).submissionQueueEntry(namespaceID: 1)
            iekey.dataPointer = .inCapsule(length: 16)
            #expect(try await b.queue.execute(iekey, data: b.queue.acquireCommand(.acquire, .exclusiveAccess, crkey: Self.keyB, prkey: 0).1).0.status == .invalidField)

            // A parks an AER: the preemption raises "Reservation Log Page Available".
            var aer = SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue)
            aer.commandID = 0x7000
            try await a.admin.submit(aer)

            #expect(try await b.queue.acquire(.preemptAndAbort, .exclusiveAccess, crkey: Self.keyB, prkey: Self.keyA) == .success)
            #expect(try await a.queue.write(lba: 8) == .reservationConflict)
            #expect(try await a.queue.read(lba: 8) == .reservationConflict)
            #expect(try await b.queue.write(lba: 8) == .success)
            let (_, after) = try await a.queue.report()
            #expect(after?.generation == 3)
            #expect(after?.registrants == [.init(controllerID: 0xFFFF, holdsReservation: true, key: Self.keyB, hostID: b.hostID)])

            let (event, _) = try await a.admin.nextCompletion()
            #expect(event.commandID == 0x7000)
            #expect(event.dw0 == 0x0080_0006)
            var log = try await a.admin.execute(.getLogPage(0x80, length: 64)).1
            let notice = try ReservationNotificationLogPage(decoding: &log)
            #expect(notice.type == .registrationPreempted)
            #expect(notice.namespaceID == 1)
            #expect(notice.count == 1)
            var empty = try await a.admin.execute(.getLogPage(0x80, length: 64)).1
            #expect(try ReservationNotificationLogPage(decoding: &empty).type == .empty)

            // Release by the holder, then anyone writes again.
            #expect(try await b.queue.release(.release, .exclusiveAccess, crkey: Self.keyB) == .success)
            #expect(try await a.queue.write(lba: 8) == .success)
            await a.close()
            await b.close()
        }
    }

    @Test("Linux blk-PR unregister (replace with NRKEY 0) removes the registration")
    func replaceWithZero() async throws {
        try await withTarget(try await .start()) { t in
            let a = try await ReservationTestHost.connect(t, tag: 0xA)
            let b = try await ReservationTestHost.connect(t, tag: 0xB)
            #expect(try await a.queue.register(.register, nrkey: Self.keyA) == .success)
            #expect(try await b.queue.register(.register, nrkey: Self.keyB) == .success)
            #expect(try await a.queue.acquire(.acquire, .writeExclusiveRegistrantsOnly, crkey: Self.keyA) == .success)
            #expect(try await b.queue.write(lba: 1) == .success)  // registrants may write under type 3
            #expect(try await b.queue.register(.replace, crkey: Self.keyB, nrkey: 0) == .success)
            #expect(try await b.queue.write(lba: 1) == .reservationConflict)  // no longer a registrant
            #expect(try await b.queue.read(lba: 1) == .success)
            #expect(try await b.queue.report().1?.registrants.map(\.hostID) == [a.hostID])
            await a.close()
            await b.close()
        }
    }

    @Test("preempt and abort waits for the old holder's writes in flight on every queue; later ones conflict")
    func fencingDrainsInFlightWrites() async throws {
        let counting = CountingBlockDevice(wrapping: MemoryBlockDevice(blockSize: 512, blockCount: 65536))
        let faulty = FaultInjectingBlockDevice(wrapping: counting)
        try await withTarget(try await .start(devices: [faulty])) { t in
            let old = try await ReservationTestHost.connect(t, tag: 0xA, ioQueues: 3)
            let new = try await ReservationTestHost.connect(t, tag: 0xB)
            #expect(try await old.queue.register(.register, nrkey: Self.keyA) == .success)
            #expect(try await new.queue.register(.register, nrkey: Self.keyB) == .success)
            #expect(try await old.queue.acquire(.acquire, .exclusiveAccess, crkey: Self.keyA) == .success)

            // Writes to LBAs 1000..<1100 take 3 s; four in flight on each of the old holder's queues.
            faulty.addLatency(.seconds(3), to: .write, lbas: 1000..<1100)
            let perQueue = 4
            for (qi, q) in old.io.enumerated() {
                for i in 0..<perQueue {
                    var w = SubmissionQueueEntry.write(lba: UInt64(1000 + qi * 10 + i), blocks: 1)
                    w.commandID = UInt16(100 + i)
                    try await q.submit(w, data: pattern(512, seed: UInt8(i)))
                }
            }
            let inFlight = old.io.count * perQueue
            // Wait until every one of them was admitted and is held by the device.
            let deadline = ContinuousClock.now + .seconds(30)
            while faulty.delayedOperationCount < inFlight && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(faulty.delayedOperationCount == inFlight)
            #expect(counting.writesCompleted == 0)

            // The new host preempts and aborts. Its completion may come only after every admitted write
            // of the old host has completed.
            #expect(try await new.queue.acquire(.preemptAndAbort, .exclusiveAccess, crkey: Self.keyB, prkey: Self.keyA) == .success)
            #expect(counting.writesCompleted == inFlight, "preempt completed with old writes still in flight")

            // Those admitted writes were drained, not failed.
            for q in old.io {
                for _ in 0..<perQueue {
                    let (c, _) = try await q.nextCompletion()
                    #expect(c.status == .success)
                }
            }
            // From now on nothing of the old host gets through, on any queue.
            faulty.removeAllLatency()
            for q in old.io {
                #expect(try await q.write(lba: 1000) == .reservationConflict)
                #expect(try await q.read(lba: 1000) == .reservationConflict)
                let flush = try await q.execute(SubmissionQueueEntry(opcode: IOOpcode.flush.rawValue, namespaceID: 1)).0
                #expect(flush.status == .reservationConflict)
            }
            #expect(try await new.queue.write(lba: 1000) == .success)
            #expect(t.reservations?.state.registrants.map(\.hostID) == [new.hostID])
            await old.close()
            await new.close()
        }
    }

    @Test("the gate drains across event loops without a transport (namespace layer)")
    func gateDrainsDirectly() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let gate = NamespaceReservations(namespaceID: 1, stateFile: nil)
        let a = HostIdentifier(low: 0xA, high: 0), b = HostIdentifier(low: 0xB, high: 0)
        let loops = [group.next(), group.next()]
        for (host, key) in [(a, Self.keyA), (b, Self.keyB)] {
            let t = try await gate.execute(.register(ReservationRegisterCommand(action: .register), .init(currentKey: 0, newKey: key)), by: host, on: loops[0]).get()
            #expect(t.status == .success)
        }
        #expect(try await gate.execute(.acquire(ReservationAcquireCommand(action: .acquire, type: .exclusiveAccess), .init(currentKey: Self.keyA)), by: a, on: loops[0]).get().status == .success)
        guard case .admitted(let t1) = gate.admit(host: a, isWrite: true), case .admitted(let t2) = gate.admit(host: a, isWrite: false) else {
            Issue.record("holder not admitted")
            return
        }
        guard case .denied(let denied) = gate.admit(host: b, isWrite: false) else { Issue.record("non-holder admitted"); return }
        #expect(denied == .reservationConflict)
        let preempt = gate.execute(.acquire(ReservationAcquireCommand(action: .preemptAndAbort, type: .exclusiveAccess),
                                            .init(currentKey: Self.keyB, preemptKey: Self.keyA)), by: b, on: loops[1])
        let completed = CompletionFlag()
        preempt.whenComplete { _ in completed.set() }
        // Committed at once: the old holder is refused, the new one admitted, while the preempt waits.
        guard case .denied = gate.admit(host: a, isWrite: true) else { Issue.record("preempted host admitted"); return }
        guard case .admitted(let t3) = gate.admit(host: b, isWrite: true) else { Issue.record("new holder refused"); return }
        gate.release(t3)
        try await Task.sleep(for: .milliseconds(200))
        // Not a duration check: with two of the old holder's commands still admitted it must not be done.
        #expect(!completed.isSet)
        loops[0].execute { gate.release(t1) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!completed.isSet)
        loops[1].execute { gate.release(t2) }
        #expect(try await preempt.get().status == .success)
        try await group.shutdownGracefully()
    }

    // MARK: Persist Through Power Loss

    @Test("PTPL: registrants, holder, type and GEN survive a restart on the same file")
    func persistThroughRestart() async throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/ns.img"
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let stateFile = path + ".reservations.json"

        let device1 = try FileBlockDevice.open(path: path, size: 16 << 20, blockSize: 512, threadPool: pool)
        let before = try await withTarget(try await .start(devices: [device1])) { t in
            let a = try await ReservationTestHost.connect(t, tag: 0xA)
            let b = try await ReservationTestHost.connect(t, tag: 0xB)
            #expect(t.reservations?.stateFile?.name == stateFile)
            #expect(try await a.queue.register(.register, nrkey: Self.keyA, cptpl: .set) == .success)
            // Durable before the completion: the file already holds this registration.
            #expect(try ReservationStateFile(path: stateFile).load()?.registrants.count == 1)
            #expect(try await b.queue.register(.register, nrkey: Self.keyB, cptpl: .set) == .success)
            #expect(try await a.queue.acquire(.acquire, .writeExclusive, crkey: Self.keyA) == .success)
            #expect(try await b.queue.write(lba: 3) == .reservationConflict)
            let (getPTPL, _) = try await a.admin.execute(SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, namespaceID: 1, cdw10: 0x83))
            #expect(getPTPL.status == .success && getPTPL.dw0 == 1)
            let report = try #require(try await a.queue.report().1)
            await a.close()
            await b.close()
            return report
        }
        try device1.close()
        #expect(FileManager.default.fileExists(atPath: stateFile))
        #expect(!FileManager.default.fileExists(atPath: stateFile + ".tmp"))

        let device2 = try FileBlockDevice.open(path: path, size: 16 << 20, blockSize: 512, threadPool: pool)
        try await withTarget(try await .start(devices: [device2])) { t in
            let b = try await ReservationTestHost.connect(t, tag: 0xB)
            let after = try #require(try await b.queue.report().1)
            #expect(after == before)
            #expect(after.generation == 2)
            #expect(after.type == .writeExclusive)
            #expect(try await b.queue.write(lba: 3) == .reservationConflict)  // still fenced
            #expect(try await b.queue.read(lba: 3) == .success)
            // Set Features 83h: PTPL off is written too, so the next restart starts clean.
            let (setPTPL, _) = try await b.admin.execute(SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, namespaceID: 1, cdw10: 0x83, cdw11: 0))
            #expect(setPTPL.status == .success)
            #expect(try ReservationStateFile(path: stateFile).load()?.persistThroughPowerLoss == false)
            await b.close()
        }
        try device2.close()
        let device3 = try FileBlockDevice.open(path: path, size: 16 << 20, blockSize: 512, threadPool: pool)
        try await withTarget(try await .start(devices: [device3])) { t in
            #expect(t.reservations?.state == ReservationState())
        }
        try device3.close()
        try await pool.shutdownGracefully()
    }

    @Test("PTPL: a truncated state file keeps the namespace offline, naming the file")
    func truncatedStateFileKeepsNamespaceOffline() async throws {
        let dir = try ScratchDirectory()
        let statePath = dir.path + "/state.json"
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let device = try FileBlockDevice.open(path: dir.path + "/ns.img", size: 4 << 20, blockSize: 512, threadPool: pool)
        var good = ReservationState()
        good = good.applying(.register(ReservationRegisterCommand(action: .register, persistenceChange: .set), .init(currentKey: 0, newKey: 7)),
                             by: HostIdentifier(low: 1, high: 2)).state
        try ReservationStateFile(path: statePath).save(good)
        let text = try Data(contentsOf: URL(fileURLWithPath: statePath))
        try text.prefix(text.count / 2).write(to: URL(fileURLWithPath: statePath))

        try await withTarget(try await .start(namespaces: [NamespaceConfiguration(device: device, reservationState: .file(statePath))])) { t in
            let reason = try #require(t.reservations?.offlineReason)
            #expect(reason.contains(statePath))
            let a = try await ReservationTestHost.connect(t, tag: 0xA)
            // Identify still answers; I/O and reservation commands get Namespace Not Ready.
            let (idn, _) = try await a.admin.execute(.identify(.namespace, nsid: 1))
            #expect(idn.status == .success)
            #expect(try await a.queue.write(lba: 0) == .namespaceNotReady)
            #expect(try await a.queue.read(lba: 0) == .namespaceNotReady)
            #expect(try await a.queue.register(.register, nrkey: 1) == .namespaceNotReady)
            #expect(try await a.queue.report().0 == .namespaceNotReady)
            await a.close()
        }
        // Never overwritten.
        #expect(try Data(contentsOf: URL(fileURLWithPath: statePath)) == text.prefix(text.count / 2))
        try device.close()
        try await pool.shutdownGracefully()
    }

    @Test("PTPL: --state-dir placement, and a memory namespace forgets on restart")
    func stateDirectoryAndMemoryNamespace() async throws {
        let dir = try ScratchDirectory()
        let location = ReservationStateLocation.file(inDirectory: dir.path, subsystemNQN: TargetFixture.nqn, namespaceID: 1)
        guard case .file(let path) = location else { Issue.record("not a file location: \(location)"); return }
        #expect(path == dir.path + "/" + TargetFixture.nqn + "-ns1.reservations.json")
        try await withTarget(try await .start(namespaces: [
            NamespaceConfiguration(device: MemoryBlockDevice(blockSize: 512, blockCount: 8192), reservationState: location)
        ])) { t in
            let a = try await ReservationTestHost.connect(t, tag: 0xA)
            #expect(try await a.queue.register(.register, nrkey: Self.keyA) == .success)
            #expect(try ReservationStateFile(path: dir.path + "/" + TargetFixture.nqn + "-ns1.reservations.json").load()?.generation == 1)
            await a.close()
        }
        // A memory namespace (automatic location): PTPL accepted and reported, nothing survives.
        for round in 0..<2 {
            try await withTarget(try await .start()) { t in
                #expect(t.reservations?.stateFile == nil)
                let a = try await ReservationTestHost.connect(t, tag: 0xA)
                let (_, report) = try await a.queue.report()
                #expect(report?.registrantCount == 0)
                #expect(report?.generation == 0)
                if round == 0 {
                    #expect(try await a.queue.register(.register, nrkey: Self.keyA, cptpl: .set) == .success)
                    #expect(try await a.queue.acquire(.acquire, .exclusiveAccess, crkey: Self.keyA) == .success)
                    #expect(try await a.queue.report().1?.persistThroughPowerLoss == true)
                }
                await a.close()
            }
        }
    }
}
