import NIOCore
import NVMe

/// The NVMe reservation commands on an I/O queue (NVMe base spec 2.0 §7.4–§7.6; research/nvme-tcp.md
/// §7.1): Register, Acquire and Release become ``ReservationState/Request``s for the namespace's
/// gate; Report answers from the committed state. Never blocked by a reservation.
enum ReservationCommands {
    static func isReservation(_ opcode: UInt8) -> Bool {
        switch IOOpcode(rawValue: opcode) {
        case .reservationRegister, .reservationReport, .reservationAcquire, .reservationRelease: true
        default: false
        }
    }

    /// Executes a reservation command from `host` against `namespace`; completes on `eventLoop`.
    static func execute(_ sqe: SubmissionQueueEntry, data: ByteBuffer, namespace: Namespace, host: HostIdentifier,
                        on eventLoop: any EventLoop) -> EventLoopFuture<CommandOutcome> {
        var body = data
        let request: ReservationState.Request
        switch IOOpcode(rawValue: sqe.opcode) {
        case .reservationReport:
            return eventLoop.makeSucceededFuture(report(sqe, namespace: namespace))
        case .reservationRegister:
            guard body.readableBytes == ReservationRegisterData.encodedSize,
                  let d = try? ReservationRegisterData(decoding: &body) else { return eventLoop.makeSucceededFuture(.failure(.dataSGLLengthInvalid)) }
            request = .register(ReservationRegisterCommand(cdw10: sqe.cdw10), d)
        case .reservationAcquire:
            guard body.readableBytes == ReservationAcquireData.encodedSize,
                  let d = try? ReservationAcquireData(decoding: &body) else { return eventLoop.makeSucceededFuture(.failure(.dataSGLLengthInvalid)) }
            request = .acquire(ReservationAcquireCommand(cdw10: sqe.cdw10), d)
        case .reservationRelease:
            // 8 bytes per the spec; older Linux hosts send 16.
            guard (ReservationReleaseData.encodedSize...16).contains(body.readableBytes),
                  let d = try? ReservationReleaseData(decoding: &body) else { return eventLoop.makeSucceededFuture(.failure(.dataSGLLengthInvalid)) }
            request = .release(ReservationReleaseCommand(cdw10: sqe.cdw10), d)
        default:
            return eventLoop.makeSucceededFuture(.failure(.invalidOpcode))
        }
        return namespace.reservations.execute(request, by: host, on: eventLoop).map { CommandOutcome(status: $0.status) }
    }

    /// Reservation Report: only the extended data structure (128-bit host IDs) exists over fabrics;
    /// EDS=0 gets Host Identifier Inconsistent Format, as nvmet and SPDK answer.
    static func report(_ sqe: SubmissionQueueEntry, namespace: Namespace) -> CommandOutcome {
        if namespace.reservations.offlineReason != nil { return .failure(.namespaceNotReady) }
        let command = ReservationReportCommand(cdw10: sqe.cdw10, cdw11: sqe.cdw11)
        guard command.extendedDataStructure else { return .failure(.hostIdentifierInconsistentFormat) }
        let length = command.lengthInBytes
        guard length >= ReservationStatus.extendedHeaderSize else { return .failure(.invalidField) }
        guard length == Int(sqe.dataPointer.length) else { return .failure(.dataSGLLengthInvalid) }
        let status = namespace.reservations.state.status
        var buffer = ByteBufferAllocator().buffer(capacity: min(length, status.extendedSize))
        status.encodeExtended(into: &buffer, length: length)
        return .success(data: buffer)
    }
}
