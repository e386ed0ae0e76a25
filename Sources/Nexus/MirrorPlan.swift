import NIOCore
import Synchronization

/// A child that failed one mirrored command.
struct ChildFailure: Sendable {
    var uri: String
    /// The child was online (in sync) when the command was routed, not rebuilding.
    var online: Bool
    var error: ChildIOError
}

/// How one mirrored command is routed, taken under the nexus's lock.
struct MirrorPlan: Sendable {
    /// The I/O generation it counts in (``Nexus/endIO(_:)``).
    var gen: UInt64
    var targets: [(uri: String, device: any ChildDevice, online: Bool)]
    /// Logs of children that miss it.
    var logs: [RebuildLogSlot]
    /// The health version that must be durable before it is acknowledged (0: none).
    var requiredHealth: UInt64
    /// A rebuild runs: take segment holds.
    var takeLocks: Bool

    /// Nothing to do besides the children's own I/O: no segment hold, no log, no health version.
    var isDirect: Bool { !takeLocks && logs.isEmpty && requiredHealth == 0 }
}

/// Counts a fanned-out command's answers; the last one gets the failures.
final class MirrorFanout: Sendable {
    private let state: Mutex<(remaining: Int, failures: [ChildFailure])>

    init(_ count: Int) {
        precondition(count > 0)
        state = Mutex((count, []))
    }

    /// Records one child's answer; returns every failure once all have answered, else nil.
    func answered(_ failure: ChildFailure?) -> [ChildFailure]? {
        state.withLock { s in
            if let failure { s.failures.append(failure) }
            s.remaining -= 1
            assert(s.remaining >= 0, "more answers than children")
            return s.remaining == 0 ? s.failures : nil
        }
    }
}
