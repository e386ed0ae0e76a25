import Synchronization

/// The last finished rebuild jobs of one nexus (`nexus rebuild history`): a bounded ring, oldest
/// dropped first. Thread-safe (a `Mutex`).
public final class RebuildHistory: Sendable {
    /// Jobs kept by default.
    public static let defaultCapacity = 32

    public let capacity: Int
    private let ring: Mutex<Ring>

    /// - Precondition: `capacity > 0`.
    public init(capacity: Int = RebuildHistory.defaultCapacity) {
        precondition(capacity > 0, "history capacity must be positive")
        self.capacity = capacity
        self.ring = Mutex(Ring(capacity: capacity))
    }

    /// Adds a finished job, dropping the oldest when full.
    public func record(_ progress: RebuildProgress) {
        assert(progress.state.isFinished, "recording a rebuild that has not finished: \(progress.state)")
        ring.withLock { $0.append(progress) }
    }

    /// The kept jobs, oldest first.
    public var entries: [RebuildProgress] {
        ring.withLock { $0.ordered }
    }

    private struct Ring {
        var storage: [RebuildProgress] = []
        /// Where the next entry goes once `storage` is full (the oldest entry's index).
        var next = 0
        let capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
        }

        mutating func append(_ element: RebuildProgress) {
            if storage.count < capacity {
                storage.append(element)
            } else {
                storage[next] = element
                next = (next + 1) % capacity
            }
        }

        var ordered: [RebuildProgress] {
            Array(storage[next...] + storage[..<next])
        }
    }
}
