#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nexus
import Synchronization

/// The nexuses this io-engine runs, in memory only: an io-engine restart forgets them (their
/// health records stay in the store, their rebuild logs under `<state-dir>/rebuild-logs`) and the
/// control plane creates them again. Changes are serialized by the engine (``EngineCore``'s nexus
/// serializer); reads take a snapshot under the lock.
final class NexusTable: Sendable {
    private let entries = Mutex<[UUID: NexusEntry]>([:])

    var all: [NexusEntry] {
        entries.withLock { $0.values.sorted { $0.nexus.uuid.uuidString < $1.nexus.uuid.uuidString } }
    }

    subscript(uuid: UUID) -> NexusEntry? { entries.withLock { $0[uuid] } }

    /// The nexus of `volume` on this engine, if any.
    func entry(volume: UUID) -> NexusEntry? {
        entries.withLock { $0.values.first { $0.request.volumeUUID == volume } }
    }

    func insert(_ entry: NexusEntry) { entries.withLock { $0[entry.nexus.uuid] = entry } }

    @discardableResult
    func remove(_ uuid: UUID) -> NexusEntry? { entries.withLock { $0.removeValue(forKey: uuid) } }
}

/// One nexus with what the engine keeps beside it: the request it was created with (an identical
/// repeat is a no-op), its publication, its host I/O counters and its finished-rebuild counts.
final class NexusEntry: Sendable {
    /// The volume's subsystem on this engine's target while published.
    struct Publication: Sendable, Hashable {
        /// Empty: any host.
        var allowedHosts: [String]
    }

    let nexus: Nexus
    let request: NexusCreateRequest
    /// Host I/O through the published subsystem (``MeteredBlockDevice`` over the nexus device).
    let stats = ReplicaIOStats()
    private let publicationState = Mutex<Publication?>(nil)
    private let finished = Mutex(FinishedRebuilds())

    init(nexus: Nexus, request: NexusCreateRequest) {
        self.nexus = nexus
        self.request = request
    }

    var publication: Publication? { publicationState.withLock { $0 } }

    func setPublication(_ publication: Publication?) { publicationState.withLock { $0 = publication } }

    /// Rebuilds finished since the nexus was created, by outcome (`completed`, `failed`,
    /// `cancelled`). Counted from the nexus's bounded history: each history entry is counted
    /// once, when first seen here (every `/metrics` scrape and rebuild call looks), so a count
    /// misses rebuilds only if more than the history holds finish between two looks.
    func finishedRebuilds() -> [String: UInt64] {
        let history = nexus.rebuildHistory
        return finished.withLock { book in
            for entry in history where !book.seen.contains(entry.id) {
                book.counts[Self.outcome(entry.state), default: 0] += 1
            }
            book.seen = Set(history.map(\.id))
            return book.counts
        }
    }

    static func outcome(_ state: RebuildProgress.State) -> String {
        switch state {
        case .pending: "pending"
        case .running: "running"
        case .completed: "completed"
        case .failed: "failed"
        case .cancelled: "cancelled"
        }
    }

    private struct FinishedRebuilds {
        var seen: Set<UUID> = []
        var counts: [String: UInt64] = ["completed": 0, "failed": 0, "cancelled": 0]
    }
}
