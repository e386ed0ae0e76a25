import NIOCore
import NVMe

/// Sends reservation commands (NVMe base spec 2.0 §7.3 Register/Acquire/Release/Report, §8.19
/// Reservations) on exactly one path. A reservation command is never replayed on another path:
/// one that may already have taken effect (a preempt, a release) must not run twice, so a
/// transport failure is the caller's error. Reservation Conflict (0x83) is the command's answer,
/// never a path error.
public protocol ReservationCommandSender: Sendable {
    /// Sends `command` once on one I/O queue; the completion's status is returned as is.
    func sendReservationCommand(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int) async throws -> CommandCompletion
}

extension NVMeController: ReservationCommandSender {
    public func sendReservationCommand(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int) async throws -> CommandCompletion {
        try await submitIO(command, data: data, readLength: readLength).get()
    }
}

extension MultipathDevice: ReservationCommandSender {
    /// On one live path (a usable one if any), waiting while no path is live but one may come
    /// back; never replayed on another path.
    public func sendReservationCommand(_ command: SubmissionQueueEntry, data: ByteBuffer?, readLength: Int) async throws -> CommandCompletion {
        while true {
            try Task.checkCancellation()
            let generation = shared.signal.generation
            let statuses = members.map { ($0, $0.session.status) }
            let live = statuses.compactMap { path, status in status.controller.map { (path, status, $0) } }
            if let (path, _, controller) = live.first(where: { $0.0.candidate($0.1).isUsable }) ?? live.first {
                do {
                    return try await controller.submitIO(command, data: data, readLength: readLength).get()
                } catch {
                    if case .failover = FailoverDisposition.of(error) {
                        path.session.controllerFailed(controller, reason: "\(error)")
                    }
                    throw error
                }
            }
            guard statuses.contains(where: { $0.0.candidate($0.1).isAvailable }) else {
                throw MultipathError.noPathAvailable(paths.map(\.description).joined(separator: "; "))
            }
            await shared.signal.wait(after: generation)
        }
    }
}

extension ReservationCommandSender {
    /// Reservation Register (§7.3.3): register `newKey`, unregister, or replace `currentKey` with
    /// `newKey`; `persistence` changes Persist Through Power Loss (CPTPL). Throws
    /// ``NVMeHostError/status(_:commandID:)`` for any error status (Reservation Conflict included).
    public func reservationRegister(namespaceID: UInt32, action: ReservationRegisterCommand.Action, currentKey: UInt64 = 0,
                                    newKey: UInt64 = 0, ignoreExistingKey: Bool = false,
                                    persistence: ReservationRegisterCommand.PersistenceChange = .noChange) async throws {
        var data = ByteBuffer()
        ReservationRegisterData(currentKey: currentKey, newKey: newKey).encode(into: &data)
        let command = ReservationRegisterCommand(action: action, ignoreExistingKey: ignoreExistingKey, persistenceChange: persistence)
        try Self.check(try await sendReservationCommand(command.submissionQueueEntry(namespaceID: namespaceID), data: data, readLength: 0))
    }

    /// Reservation Acquire (§7.3.1): acquire, preempt, or preempt-and-abort the holder whose key
    /// is `preemptKey`.
    public func reservationAcquire(namespaceID: UInt32, action: ReservationAcquireCommand.Action, type: ReservationType,
                                   currentKey: UInt64, preemptKey: UInt64 = 0, ignoreExistingKey: Bool = false) async throws {
        var data = ByteBuffer()
        ReservationAcquireData(currentKey: currentKey, preemptKey: preemptKey).encode(into: &data)
        let command = ReservationAcquireCommand(action: action, type: type, ignoreExistingKey: ignoreExistingKey)
        try Self.check(try await sendReservationCommand(command.submissionQueueEntry(namespaceID: namespaceID), data: data, readLength: 0))
    }

    /// Reservation Release (§7.3.2): release the reservation of `type`, or clear every
    /// registration and the reservation.
    public func reservationRelease(namespaceID: UInt32, action: ReservationReleaseCommand.Action, type: ReservationType?,
                                   currentKey: UInt64, ignoreExistingKey: Bool = false) async throws {
        var data = ByteBuffer()
        ReservationReleaseData(currentKey: currentKey).encode(into: &data)
        let command = ReservationReleaseCommand(action: action, type: type, ignoreExistingKey: ignoreExistingKey)
        try Self.check(try await sendReservationCommand(command.submissionQueueEntry(namespaceID: namespaceID), data: data, readLength: 0))
    }

    /// Reservation Report (§7.3.4) with the extended data structure (128-bit host IDs, as
    /// NVMe over Fabrics requires). Reads again with a larger buffer when the first one could
    /// not hold every registrant.
    public func reservationReport(namespaceID: UInt32) async throws -> ReservationStatus {
        var length = 4096
        while true {
            let command = ReservationReportCommand(lengthInBytes: length, extendedDataStructure: true)
            let completion = try await sendReservationCommand(command.submissionQueueEntry(namespaceID: namespaceID), data: nil,
                                                              readLength: length)
            try Self.check(completion)
            var data = completion.data
            let status: ReservationStatus
            do {
                status = try ReservationStatus(decodingExtended: &data)
            } catch {
                throw NVMeHostError.protocolError("Reservation Report: \(error)")
            }
            let needed = ReservationStatus.extendedHeaderSize + Int(status.registrantCount) * ReservationStatus.extendedEntrySize
            if status.registrants.count >= Int(status.registrantCount) || length >= needed || needed > 1 << 20 {
                return status
            }
            length = (needed + 4095) / 4096 * 4096
        }
    }

    private static func check(_ completion: CommandCompletion) throws {
        guard completion.entry.status.isSuccess else {
            throw NVMeHostError.status(completion.entry.status, commandID: completion.entry.commandID)
        }
    }
}
