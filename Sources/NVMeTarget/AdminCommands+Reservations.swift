import NIOCore
import NVMe

/// The admin side of reservations: Set/Get Features Reservation Persistence (FID 83h, NVMe base
/// spec 2.0 §5.27.1.27) and the Reservation Notification log page (LID 80h, §5.16.1.21).
extension AdminCommands {
    /// Whether `sqe` is a Set Features of the Reservation Persistence feature.
    static func isSetReservationPersistence(_ sqe: SubmissionQueueEntry) -> Bool {
        FeatureCommandFields(cdw10: sqe.cdw10).feature == .reservationPersistence
    }

    /// Set Features 83h: PTPL from CDW11 b0 for the namespace NSID names. The change is written
    /// durably (when the namespace has a state file) before the command completes, so it completes
    /// later on the admin queue: returns nil then, or a failure at once.
    func setReservationPersistence(_ sqe: SubmissionQueueEntry) -> CommandOutcome? {
        if FeatureCommandFields(cdw10: sqe.cdw10).save { return .failure(.featureNotSaveable) }
        guard let ns = subsystem.namespace(sqe.namespaceID) else {
            return .failure(sqe.namespaceID == 0xFFFF_FFFF ? .invalidField : .invalidNamespace)
        }
        let feature = ReservationPersistenceFeature(dword: sqe.cdw11)
        let controller = self.controller
        let commandID = sqe.commandID
        ns.reservations.execute(.setPersistence(feature.persistThroughPowerLoss), by: controller.hostIdentifier,
                                on: controller.adminEventLoop).whenComplete { result in
            let status: NVMeStatus
            switch result {
            case .success(let transition): status = transition.status
            case .failure: status = .internalError
            }
            controller.sendCompletion(CompletionQueueEntry(commandID: commandID, status: status))
        }
        return nil
    }

    /// Get Features 83h: DW0 b0 = PTPL of the namespace NSID names.
    func getReservationPersistence(_ sqe: SubmissionQueueEntry) -> CommandOutcome {
        guard let ns = subsystem.namespace(sqe.namespaceID) else {
            return .failure(sqe.namespaceID == 0xFFFF_FFFF ? .invalidField : .invalidNamespace)
        }
        if ns.reservations.offlineReason != nil { return .failure(.namespaceNotReady) }
        let feature = ReservationPersistenceFeature(persistThroughPowerLoss: ns.reservations.state.persistThroughPowerLoss)
        return .success(dw0: feature.dword)
    }

    /// Log page 80h: this controller's oldest unread reservation notice (removed by the read), or
    /// an empty page.
    func reservationNotificationLogPage() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: ReservationNotificationLogPage.encodedSize)
        controller.reservationNotices.next().encode(into: &buffer)
        return buffer
    }
}
