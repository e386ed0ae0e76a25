#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NVMe

/// Which current holder a new nexus may preempt when it opens a child (Mayastor's
/// NexusNvmePreemption, research/mayastor.md §3): `holder` preempts whoever holds the
/// reservation (the default, as Mayastor's control plane uses); `argKey` preempts only a holder
/// whose key is the given one, and refuses any other.
public enum PreemptPolicy: Hashable, Sendable, CustomStringConvertible {
    case holder
    case argKey(UInt64)

    public var description: String {
        switch self {
        case .holder: "holder"
        case .argKey(let key): "argkey(0x\(String(key, radix: 16)))"
        }
    }
}

/// Takes a child's reservation for a nexus (NVMe base spec 2.0 §8.19; DESIGN.md §2): register the
/// nexus key (Replace, IEKEY), acquire when nobody holds it, Preempt-and-Abort the holder when the
/// policy allows, and verify with a Reservation Report that this key now holds a reservation of
/// the wanted type. Preempt-and-Abort guarantees that once it completes no command of the old
/// holder completes successfully on that replica — the old nexus is fenced.
public enum Fencing {
    /// What happened on one child.
    public enum Outcome: Hashable, Sendable {
        case acquired
        case alreadyHeld
        /// Preempt and Abort of `previousKey`, sent at `sentAt` (wall clock): from then on the old
        /// holder's commands on this replica are aborted or refused.
        case preempted(previousKey: UInt64, sentAt: Date)
    }

    public static func acquire(_ child: any ChildDevice, key: UInt64, type: ReservationType,
                               policy: PreemptPolicy) async throws(NexusError) -> Outcome {
        do {
            try await child.register(key: key)
            let before = try await child.reservationReport()
            let outcome: Outcome
            if let holderKey = holderKey(before) {
                if holderKey == key && before.rawType == type.rawValue {
                    outcome = .alreadyHeld
                } else if holderKey == key {
                    // Ours, but of another type: preempting ourselves changes the type (§8.19.7).
                    let sentAt = Date()
                    try await child.acquire(key: key, type: type, preempting: key)
                    outcome = .preempted(previousKey: key, sentAt: sentAt)
                } else {
                    if case .argKey(let allowed) = policy, allowed != holderKey {
                        throw NexusError.unavailable(
                            "\(child.uri): reservation held by key 0x\(String(holderKey, radix: 16)), policy \(policy) may not preempt it")
                    }
                    let sentAt = Date()
                    try await child.acquire(key: key, type: type, preempting: holderKey)
                    outcome = .preempted(previousKey: holderKey, sentAt: sentAt)
                }
            } else {
                try await child.acquire(key: key, type: type, preempting: nil)
                outcome = .acquired
            }
            let after = try await child.reservationReport()
            guard holderKey(after) == key, after.rawType == type.rawValue else {
                throw NexusError.unavailable(
                    "\(child.uri): after acquiring, the reservation is \(after.rawType) held by \(holderKey(after).map { "0x" + String($0, radix: 16) } ?? "nobody"), not ours")
            }
            return outcome
        } catch let error as NexusError {
            throw error
        } catch {
            throw .unavailable("\(child.uri): taking the reservation: \(error)")
        }
    }

    /// The key of the registrant holding the reservation, nil when none is held.
    static func holderKey(_ status: ReservationStatus) -> UInt64? {
        guard status.rawType != 0 else { return nil }
        return status.registrants.first(where: \.holdsReservation)?.key
    }
}
