import NIOCore
import NVMe
import NVMeHost
import Testing

/// Reservations through NVMeHost against Halyard's target over loopback: two host identities,
/// one controller each, and a two-path multipath device for the holder.
@Suite("NVMeHost reservations")
struct ReservationHostTests {
    /// MP's options with a keep-alive that survives the multi-second scheduling stalls of a full
    /// parallel test run on 2 cores (this suite tests reservations, not keep-alive).
    static var options: ControllerOptions {
        var o = MP.controllerOptions
        o.keepAliveTimeout = .seconds(10)
        return o
    }

    static let hostA = HostIdentity(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a",
                                    hostID: [0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0a])
    static let hostB = HostIdentity(hostNQN: "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-00000000000b",
                                    hostID: [0xbb, 0xbb, 0xbb, 0xbb, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0b])
    static let keyA: UInt64 = 0xA1A1_A1A1
    static let keyB: UInt64 = 0xB2B2_B2B2

    static func status(of body: () async throws -> Void) async -> NVMeStatus? {
        do {
            try await body()
            return .success
        } catch NVMeHostError.status(let status, _) {
            return status
        } catch {
            Issue.record("expected an NVMe status, got \(error)")
            return nil
        }
    }

    @Test("register, acquire Exclusive Access, report, non-holder refused, preempt-and-abort moves it, release")
    func lifecycle() async throws {
        let target = try await RestartableTarget.start(listeners: 2)
        try await withCleanup({ await target.shutdown() }) {
            let a = try await NVMeController.connect(to: target.addresses[0], subsystemNQN: MP.nqn, identity: Self.hostA,
                                                     options: Self.options, group: target.group)
            let b = try await NVMeController.connect(to: target.addresses[1], subsystemNQN: MP.nqn, identity: Self.hostB,
                                                     options: Self.options, group: target.group)
            try await a.reservationRegister(namespaceID: 1, action: .register, newKey: Self.keyA)
            try await b.reservationRegister(namespaceID: 1, action: .register, newKey: Self.keyB)
            // A wrong current key is a Reservation Conflict, answered, not retried.
            #expect(await Self.status {
                try await a.reservationAcquire(namespaceID: 1, action: .acquire, type: .exclusiveAccess, currentKey: 0xDEAD)
            } == .reservationConflict)
            try await a.reservationAcquire(namespaceID: 1, action: .acquire, type: .exclusiveAccess, currentKey: Self.keyA)

            let report = try await b.reservationReport(namespaceID: 1)
            #expect(report.type == .exclusiveAccess)
            #expect(report.registrantCount == 2)
            let byKey = Dictionary(uniqueKeysWithValues: report.registrants.map { ($0.key, $0) })
            #expect(byKey[Self.keyA]?.holdsReservation == true)
            #expect(byKey[Self.keyB]?.holdsReservation == false)
            #expect(byKey[Self.keyA]?.hostID == HostIdentifier(bytes: Self.hostA.hostID))

            let data = MP.pattern(4096, seed: 1)
            let writeB = try await b.submitIO(.write(nsid: 1, lba: 0, blocks: 8), data: data).get()
            #expect(writeB.entry.status == .reservationConflict)
            #expect(writeB.entry.status.doNotRetry, "Reservation Conflict carries DNR")
            let readB = try await b.submitIO(.read(nsid: 1, lba: 0, blocks: 8, blockSize: 512), readLength: 4096).get()
            #expect(readB.entry.status == .reservationConflict, "Exclusive Access: a registrant that is not the holder may not read")
            #expect(try await a.submitIO(.write(nsid: 1, lba: 0, blocks: 8), data: data).get().entry.status == .success)

            try await b.reservationAcquire(namespaceID: 1, action: .preemptAndAbort, type: .exclusiveAccess,
                                           currentKey: Self.keyB, preemptKey: Self.keyA)
            let after = try await a.reservationReport(namespaceID: 1)
            #expect(after.registrantCount == 1 && after.registrants.first?.key == Self.keyB && after.registrants.first?.holdsReservation == true)
            #expect(try await a.submitIO(.write(nsid: 1, lba: 0, blocks: 8), data: data).get().entry.status == .reservationConflict,
                    "the preempted host is fenced")
            #expect(try await b.submitIO(.write(nsid: 1, lba: 0, blocks: 8), data: data).get().entry.status == .success)

            try await b.reservationRelease(namespaceID: 1, action: .release, type: .exclusiveAccess, currentKey: Self.keyB)
            #expect(try await a.reservationReport(namespaceID: 1).type == nil)
            #expect(try await a.submitIO(.write(nsid: 1, lba: 0, blocks: 8), data: data).get().entry.status == .success)
            try await b.reservationRelease(namespaceID: 1, action: .clear, type: nil, currentKey: Self.keyB)
            #expect(try await a.reservationReport(namespaceID: 1).registrantCount == 0)
            await a.shutdown()
            await b.shutdown()
        }
    }

    @Test("multipath: every path of one host shares its registration; Reservation Conflict is the answer, never failed over")
    func multipath() async throws {
        let target = try await RestartableTarget.start(listeners: 2)
        try await withCleanup({ await target.shutdown() }) {
            let device = try await MultipathDevice.connect(paths: target.addresses, subsystemNQN: MP.nqn, identity: Self.hostA,
                                                           options: Self.options, sessionOptions: MP.sessionOptions(),
                                                           group: target.group, logger: MP.quietLogger)
            let b = try await NVMeController.connect(to: target.addresses[0], subsystemNQN: MP.nqn, identity: Self.hostB,
                                                     options: Self.options, group: target.group)
            try await device.reservationRegister(namespaceID: 1, action: .register, newKey: Self.keyA)
            try await device.reservationAcquire(namespaceID: 1, action: .acquire, type: .writeExclusive, currentKey: Self.keyA)
            // Writes from the holder succeed on whichever path the device picks (both are the same host).
            for i in 0..<16 { try await device.write(lba: UInt64(i * 8), data: MP.pattern(4096, seed: UInt64(i))) }
            // Host B takes the reservation away; the device's next write is refused at once on every path.
            try await b.reservationRegister(namespaceID: 1, action: .register, newKey: Self.keyB)
            try await b.reservationAcquire(namespaceID: 1, action: .preempt, type: .writeExclusive, currentKey: Self.keyB,
                                           preemptKey: Self.keyA)
            let clock = ContinuousClock()
            let started = clock.now
            #expect(await Self.status { try await device.write(lba: 0, data: MP.pattern(4096, seed: 99)) } == .reservationConflict)
            #expect(clock.now - started < .seconds(10), "answered, not retried until a timeout")
            // Write Exclusive: reads stay allowed for a non-registrant.
            #expect(try await device.read(lba: 8, blocks: 8) == MP.pattern(4096, seed: 1))
            await device.close()
            await b.shutdown()
        }
    }
}
