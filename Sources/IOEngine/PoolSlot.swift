#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StoragePool

/// A pool the engine knows of: imported (online, or faulted read-only — the pool says), or
/// recorded but not importable (its disk vanished, its labels are gone…), which is listed as
/// FAULTED with the reason so users see it.
enum PoolSlot: Sendable {
    case imported(Pool)
    case unavailable(name: String, disk: String, reason: String)

    /// The pool's info; an unavailable one has the nil UUID, zero sizes and state faulted.
    var info: PoolInfo {
        switch self {
        case .imported(let pool):
            return pool.info
        case .unavailable(let name, let disk, let reason):
            return PoolInfo(name: name, uuid: UUID.nilUUID, path: disk, state: .faulted(reason: reason), capacityBytes: 0,
                            usedBytes: 0, freeBytes: 0, committedBytes: 0, blockSize: 0, extentSize: 0, replicaCount: 0,
                            journalCommits: 0)
        }
    }

    /// The backing disk as recorded.
    var disk: String {
        switch self {
        case .imported(let pool): pool.info.path
        case .unavailable(_, let disk, _): disk
        }
    }

    var pool: Pool? {
        if case .imported(let pool) = self { return pool }
        return nil
    }
}

extension UUID {
    /// The nil UUID (reported for a pool that could not be imported).
    static let nilUUID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// Lowercase, as NQNs and the API spell it.
    var lowercased: String { uuidString.lowercased() }
}
