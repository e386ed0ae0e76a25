import NVMe

/// How a ``MultipathDevice`` spreads I/O over its usable paths (Linux
/// `/sys/class/nvme-subsystem/nvme-subsysN/iopolicy`, research/nvme-tcp.md §6.5).
public enum PathPolicy: String, Hashable, Sendable, CaseIterable {
    /// Rotate among optimized paths; non-optimized only when no path is optimized.
    case roundRobin = "round-robin"
    /// Fewest commands in flight among optimized paths, else among non-optimized ones.
    case queueDepth = "queue-depth"
}

/// What the selector knows about one path.
public struct PathCandidate: Hashable, Sendable {
    public var state: ControllerState
    /// Failed fast while connecting (no longer counts as available).
    public var fastFailed: Bool
    /// The path's ANA state for the namespace; nil = not known yet (treated as unusable).
    public var anaState: ANAState?
    /// An SCT 3 status came back and the ANA log has not been re-read yet (Linux "ANA pending").
    public var anaPending: Bool
    public var inFlight: Int

    public init(state: ControllerState, fastFailed: Bool = false, anaState: ANAState?, anaPending: Bool = false, inFlight: Int = 0) {
        self.state = state
        self.fastFailed = fastFailed
        self.anaState = anaState
        self.anaPending = anaPending
        self.inFlight = inFlight
    }

    /// I/O may be sent here now: live, not ANA-pending, optimized or non-optimized.
    public var isUsable: Bool {
        state == .live && !anaPending && (anaState?.isAccessible ?? false)
    }

    /// I/O may be served here later, so it should wait rather than fail (Linux
    /// `nvme_available_path`): live, or connecting and not fast-failed. Unlike Linux, a live path
    /// in ANA persistent loss does not count (it will not come back).
    public var isAvailable: Bool {
        switch state {
        case .live: anaState != .persistentLoss
        case .connecting: !fastFailed
        case .deleting, .deleted: false
        }
    }
}

/// The outcome of one selection.
public enum PathChoice: Hashable, Sendable {
    /// Send on the path at this index.
    case path(Int)
    /// No path is usable now but one may become so: queue the I/O.
    case wait
    /// No path can serve the I/O any more.
    case fail
}

/// Path choice as a pure value: ANA state first (optimized, then non-optimized; never
/// inaccessible, persistent loss or change), then the policy. Unit-testable with fake paths.
public struct PathSelector: Hashable, Sendable {
    public var policy: PathPolicy
    /// Round-robin cursor: the index after the last path used.
    private var next = 0

    public init(policy: PathPolicy) {
        self.policy = policy
    }

    public mutating func select(_ paths: [PathCandidate]) -> PathChoice {
        let optimized = paths.indices.filter { paths[$0].isUsable && paths[$0].anaState == .optimized }
        let tier = optimized.isEmpty ? paths.indices.filter { paths[$0].isUsable } : optimized
        guard !tier.isEmpty else {
            return paths.contains(where: \.isAvailable) ? .wait : .fail
        }
        let chosen: Int
        switch policy {
        case .roundRobin:
            // The first path of the tier at or after the cursor, wrapping around.
            chosen = tier.first(where: { $0 >= next }) ?? tier[0]
        case .queueDepth:
            // Fewest in flight; ties go round-robin so equal paths share the load.
            let least = tier.map { paths[$0].inFlight }.min()!
            let tied = tier.filter { paths[$0].inFlight == least }
            chosen = tied.first(where: { $0 >= next }) ?? tied[0]
        }
        next = chosen + 1
        precondition(paths[chosen].isUsable)
        return .path(chosen)
    }
}

/// What to do with a multipath I/O command after one attempt on one path (Linux
/// `nvme_decide_disposition` with multipath, research/nvme-tcp.md §6.5).
public enum FailoverDisposition: Hashable, Sendable {
    /// Hand the result (success or error status) to the caller.
    case complete
    /// The path failed it: try another usable path (or wait for one). The path's ANA state must
    /// be re-read when `rereadANA`.
    case failover(rereadANA: Bool)

    /// For a completion status: SCT 3 (path related, e.g. ANA inaccessible) fails over, anything
    /// else — Reservation Conflict (0x83) included — is the command's answer.
    public static func of(_ status: NVMeStatus) -> FailoverDisposition {
        status.isPathError ? .failover(rereadANA: true) : .complete
    }

    /// For a thrown error: transport loss, protocol errors and timeouts fail over; everything
    /// else (invalid argument, session closed…) is the caller's.
    public static func of(_ error: any Error) -> FailoverDisposition {
        switch error {
        case let e as NVMeHostError:
            if case .status(let s, _) = e { return of(s) }
            return e.isPathError ? .failover(rereadANA: false) : .complete
        default:
            return .complete
        }
    }
}
