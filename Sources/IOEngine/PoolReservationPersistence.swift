#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import NVMeTarget
import StoragePool
import Synchronization

/// Keeps a shared replica's NVMe reservation / PTPL state in its pool's metadata journal
/// (`Pool.saveReservationState`), so a restart of the io-engine restores registrations made
/// with Persist Through Power Loss. The blob is ``ReservationStateFile``'s JSON form.
///
/// The target calls ``save(_:)`` on a thread-pool thread and expects the state durable on
/// return: it starts the pool's async save and blocks that thread on a semaphore until the
/// journal commit is acknowledged (the pool commits on its own threads, never on the caller's).
struct PoolReservationPersistence: ReservationStatePersistence {
    let pool: Pool
    let uuid: UUID
    let poolName: String

    var name: String { "replica \(uuid.uuidString.lowercased()) in pool '\(poolName)'" }

    func load() throws(ReservationStateFile.Failure) -> ReservationState? {
        guard let blob = pool.reservationState(uuid: uuid), !blob.isEmpty else { return nil }
        return try ReservationStateFile.decode(blob, source: name)
    }

    func save(_ state: ReservationState) throws(ReservationStateFile.Failure) {
        let blob = ReservationStateFile.encode(state)
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let pool = self.pool, uuid = self.uuid
        Task.detached {
            do throws(PoolError) {
                try await pool.saveReservationState(uuid: uuid, blob: blob)
            } catch {
                outcome.error.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error.withLock({ $0 }) {
            throw ReservationStateFile.Failure(path: name, reason: "not saved in the pool journal: \(error)")
        }
    }
}

/// The result of one save, handed from the task that ran it to the blocked caller.
private final class Outcome: Sendable {
    let error = Mutex<PoolError?>(nil)
}
