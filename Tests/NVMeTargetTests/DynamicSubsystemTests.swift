import Foundation
import NIOCore
import NIOPosix
import NVMe
@testable import NVMeTarget
import Storage
import Testing

/// Subsystems added to and removed from a running target (what the io-engine does when it shares
/// and unshares a replica), through real sockets: Connect refused before and after, served while
/// present, connected hosts disconnected by the removal, discovery and its GENCTR following.
@Suite("Dynamic subsystems")
struct DynamicSubsystemTests {
    static let added = "nqn.2026-11.io.halyard:replica:0c2d9a6e-4f1b-4b7e-9d55-3c1f0e2a7b11"

    static func config(_ nqn: String = added, device: any BlockDevice = MemoryBlockDevice(blockSize: 512, blockCount: 2048),
                       reservationState: ReservationStateLocation = .memory) -> SubsystemConfiguration {
        SubsystemConfiguration(nqn: nqn, controllerIDRange: 1...0xFFEF, allowedHosts: nil,
                               namespaces: [NamespaceConfiguration(namespaceID: 1, device: device, reservationState: reservationState)])
    }

    static func discover(_ q: TestQueue) async throws -> DiscoveryLogPage {
        let (cqe, data) = try await q.execute(.getLogPage(0x70, length: 8192, nsid: 0))
        try #require(cqe.status.isSuccess)
        var page = data
        return try DiscoveryLogPage(decoding: &page)
    }

    @Test("add → connect and I/O; duplicate refused; remove → host disconnected, Connect refused, discovery follows")
    func addAndRemove() async throws {
        try await withTarget(try await ANAAndHostAccessTests.start(discovery: true)) { t in
            let port = try #require(t.discoveryPort)
            let discovery = try await TestQueue.open(port: port, group: t.group)
            _ = try await discovery.bringUpAdmin(subsystemNQN: Subsystem.discoveryNQN, kato: 0)
            #expect(try await discovery.execute(.setFeature(.asyncEventConfiguration, 1 << 31)).0.status.isSuccess)
            let before = try await Self.discover(discovery)
            #expect(!before.entries.contains { $0.subsystemNQN == Self.added })

            // Not there yet: Connect Invalid Parameters.
            let early = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await early.handshake()
            let refused = try await early.connect(queueID: 0, subsystemNQN: Self.added, controllerID: 0xFFFF, queueSize: 32)
            #expect(!refused.status.isSuccess)
            await early.close()

            var aer = SubmissionQueueEntry(opcode: AdminOpcode.asyncEventRequest.rawValue)
            aer.commandID = 0x7001
            try await discovery.submit(aer)
            try await Task.sleep(for: .milliseconds(100))
            try t.target.addSubsystem(Self.config())
            let (aen, _) = try await discovery.nextCompletion()
            #expect(aen.commandID == 0x7001 && aen.dw0 == 0x0070_F002, "Discovery Log Page Change notice")
            let listed = try await Self.discover(discovery)
            #expect(listed.entries.filter { $0.subsystemNQN == Self.added }.count == 2)
            #expect(listed.generationCounter != before.generationCounter)

            #expect(throws: TargetControlError.subsystemExists(Self.added)) { try t.target.addSubsystem(Self.config()) }
            #expect(throws: TargetControlError.invalidSubsystemNQN("")) { try t.target.addSubsystem(Self.config("")) }

            // Served: admin + I/O queue, a write and a read back.
            let admin = try await TestQueue.open(port: t.ports[1], group: t.group)
            let cntlid = try await admin.bringUpAdmin(subsystemNQN: Self.added, kato: 0)
            try #require(try await admin.execute(.setFeature(.numberOfQueues, 0x0001_0001)).0.status.isSuccess)
            let io = try await TestQueue.open(port: t.ports[1], group: t.group)
            _ = try await io.handshake()
            try #require(try await io.connect(queueID: 1, subsystemNQN: Self.added, controllerID: cntlid, queueSize: 32).status.isSuccess)
            let pattern = ByteBuffer(repeating: 0x5A, count: 4096)
            #expect(try await io.execute(.write(lba: 8, blocks: 8), data: pattern).0.status.isSuccess)
            let (rc, data) = try await io.execute(.read(lba: 8, blocks: 8, blockSize: 512))
            #expect(rc.status.isSuccess && data == pattern)

            // Removal: both queues closed before it returns; a new Connect is refused.
            let aer2 = { var e = aer; e.commandID = 0x7002; return e }()
            try await discovery.submit(aer2)
            try await Task.sleep(for: .milliseconds(100))
            let disconnected = try await t.target.removeSubsystem(nqn: Self.added)
            #expect(disconnected == 1)
            #expect(await ANAAndHostAccessTests.isClosed(io))
            #expect(await ANAAndHostAccessTests.isClosed(admin))
            let (aen2, _) = try await discovery.nextCompletion()
            #expect(aen2.commandID == 0x7002 && aen2.dw0 == 0x0070_F002)
            let after = try await Self.discover(discovery)
            #expect(!after.entries.contains { $0.subsystemNQN == Self.added })
            let late = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await late.handshake()
            #expect(!(try await late.connect(queueID: 0, subsystemNQN: Self.added, controllerID: 0xFFFF, queueSize: 32)).status.isSuccess)
            await late.close()
            await #expect(throws: TargetControlError.self) { try await t.target.removeSubsystem(nqn: Self.added) }

            // The original subsystem was never affected; the NQN can be added again.
            #expect(t.target.subsystems[TargetFixture.nqn] != nil)
            try t.target.addSubsystem(Self.config())
            #expect(t.target.subsystems[Self.added] != nil)
            await discovery.close()
        }
    }

    /// A persistence the test controls: what a pool's journal does for a replica.
    final class RecordingPersistence: ReservationStatePersistence, @unchecked Sendable {
        let lock = NSLock()
        var saved: [UInt8]?
        var name: String { "test persistence" }
        func load() throws(ReservationStateFile.Failure) -> ReservationState? {
            let bytes = lock.withLock { saved }
            return try bytes.map { bytes throws(ReservationStateFile.Failure) in try ReservationStateFile.decode(bytes, source: name) }
        }
        func save(_ state: ReservationState) throws(ReservationStateFile.Failure) {
            let bytes = ReservationStateFile.encode(state)
            lock.withLock { saved = bytes }
        }
    }

    @Test("reservation state kept by an embedder's persistence survives removing and re-adding the subsystem")
    func customPersistence() async throws {
        try await withTarget(try await ANAAndHostAccessTests.start()) { t in
            let persistence = RecordingPersistence()
            let device = MemoryBlockDevice(blockSize: 512, blockCount: 2048)
            try t.target.addSubsystem(Self.config(device: device, reservationState: .custom(persistence)))
            let admin = try await TestQueue.open(port: t.ports[0], group: t.group)
            let cntlid = try await admin.bringUpAdmin(subsystemNQN: Self.added, kato: 0)
            try #require(try await admin.execute(.setFeature(.numberOfQueues, 0x0001_0001)).0.status.isSuccess)
            let io = try await TestQueue.open(port: t.ports[0], group: t.group)
            _ = try await io.handshake()
            try #require(try await io.connect(queueID: 1, subsystemNQN: Self.added, controllerID: cntlid, queueSize: 32).status.isSuccess)
            // Register key 0xA1 with PTPL set (CPTPL 11b).
            let register = ReservationRegisterData(currentKey: 0, newKey: 0xA1)
            var sqe = SubmissionQueueEntry(opcode: IOOpcode.reservationRegister.rawValue)
            sqe.namespaceID = 1
            sqe.cdw10 = ReservationRegisterCommand(action: .register, persistenceChange: .set).cdw10
            var payload = ByteBuffer()
            register.encode(into: &payload)
            #expect(try await io.execute(sqe, data: payload).0.status.isSuccess)
            let saved = try #require(try persistence.load())
            #expect(saved.registrants.map(\.key) == [0xA1] && saved.persistThroughPowerLoss)

            try await t.target.removeSubsystem(nqn: Self.added)
            let subsystem = try t.target.addSubsystem(Self.config(device: device, reservationState: .custom(persistence)))
            let restored = try #require(subsystem.namespace(1)?.reservations.state)
            #expect(restored.registrants.map(\.key) == [0xA1])
            #expect(restored.generation == saved.generation)
        }
    }
}
