import Logging
import NIOCore
import NVMe
import Synchronization

/// One controller's unread Reservation Notification log entries (NVMe base spec 2.0 §5.16.1.21
/// and §8.19.6; research/nvme-tcp.md §7.4). Each Get Log Page 80h returns the oldest and removes
/// it; the first notice queued raises the asynchronous event "Reservation Log Page Available"
/// (DW0 00800006h). At most 255 wait; the Log Page Count still counts the ones dropped past that,
/// so the host sees the gap.
final class ReservationNoticeQueue: Sendable {
    private struct State {
        var count: UInt64 = 0
        var entries: [ReservationNotificationLogPage] = []
    }
    private let state = Mutex(State())
    static let capacity = 255

    /// Queues a notice; true when the queue was empty (the caller raises the event).
    func append(_ type: ReservationNotificationLogPage.NoticeType, namespaceID: UInt32) -> Bool {
        state.withLock { s in
            s.count = s.count == .max ? 1 : s.count + 1  // 0 is skipped
            guard s.entries.count < Self.capacity else { return false }
            s.entries.append(ReservationNotificationLogPage(count: s.count, type: type, availableCount: 0, namespaceID: namespaceID))
            return s.entries.count == 1
        }
    }

    /// The oldest notice (removed), with the number still queued; an empty page when none.
    func next() -> ReservationNotificationLogPage {
        state.withLock { s in
            guard !s.entries.isEmpty else { return .empty }
            var page = s.entries.removeFirst()
            page.availableCount = UInt8(clamping: s.entries.count)
            return page
        }
    }

    var pendingCount: Int { state.withLock { $0.entries.count } }
}

extension Controller {
    /// Completes a parked AER with "Reservation Log Page Available", or queues the event until the
    /// host parks one. Not subject to Asynchronous Event Configuration (it has no bit for it).
    func raiseReservationLogEvent() {
        let result = AsyncEventCompletion.reservationLog.dword
        let cid: UInt16? = state.withLock { state in
            guard !state.tornDown else { return nil }
            guard !state.pendingAsyncEvents.isEmpty else {
                if !state.queuedAsyncEvents.contains(result) { state.queuedAsyncEvents.append(result) }
                return nil
            }
            return state.pendingAsyncEvents.removeFirst()
        }
        if let cid { sendCompletion(CompletionQueueEntry(dw0: result, commandID: cid)) }
    }
}

extension Subsystem {
    /// Routes each namespace's reservation notices to the controllers of the hosts they concern,
    /// and logs every namespace kept offline by an unreadable reservation state file.
    func prepareReservations(logger: Logger) {
        for id in namespaceIDs {
            guard let ns = namespace(id) else { continue }
            if let reason = ns.reservations.offlineReason {
                logger.error("namespace offline: \(reason)", metadata: ["subnqn": "\(nqn)", "nsid": "\(id)"])
            } else if let file = ns.reservations.stateFile {
                let s = ns.reservations.state
                logger.info("reservation state \(file.name): \(s.registrants.count) registrant(s), reservation \(s.reservation.map { "type \($0.type.rawValue)" } ?? "none"), generation \(s.generation)", metadata: ["subnqn": "\(nqn)", "nsid": "\(id)"])
            }
            ns.reservations.setNoticeHandler { [weak self] namespaceID, notices in
                self?.deliverReservationNotices(namespaceID: namespaceID, notices)
            }
        }
    }

    func deliverReservationNotices(namespaceID: UInt32, _ notices: [ReservationState.Notice]) {
        let controllers = self.controllers
        for notice in notices {
            for controller in controllers where controller.hostIdentifier == notice.hostID {
                if controller.reservationNotices.append(notice.type, namespaceID: namespaceID) {
                    controller.raiseReservationLogEvent()
                }
            }
        }
    }
}
