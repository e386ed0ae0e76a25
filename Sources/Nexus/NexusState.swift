/// A nexus's state as the API reports it (Mayastor's NexusStatus, research/mayastor.md §2).
/// Derived from the lifecycle and the children (``NexusCore/state``), never stored apart.
public enum NexusState: String, Hashable, Sendable, CaseIterable {
    /// Every child is online.
    case online = "Online"
    /// At least one child is online and at least one is not (faulted, offline, rebuilding).
    case degraded = "Degraded"
    /// No child is online: I/O is held (ANA inaccessible), never failed.
    case faulted = "Faulted"
    /// Shutting down: I/O is held while in-flight child I/O drains.
    case shuttingDown = "ShuttingDown"
    /// Shut down: children closed, I/O held until the host's path moves. Final.
    case shutdown = "Shutdown"
}

/// One child's state in its nexus.
public enum ChildState: Hashable, Sendable, CustomStringConvertible {
    /// In sync: receives writes, serves reads.
    case online
    /// Receives writes while a rebuild copies the rest; serves no reads.
    case rebuilding
    /// Retired after an error (or by request); receives nothing. Its missed segments are logged
    /// when it has a rebuild log.
    case faulted(ChildFaultReason)
    /// Taken offline by request; receives nothing, missed segments logged.
    case offline
    /// Closed by the nexus shutting down.
    case closed

    public var name: String {
        switch self {
        case .online: "Online"
        case .rebuilding: "Rebuilding"
        case .faulted: "Faulted"
        case .offline: "Offline"
        case .closed: "Closed"
        }
    }

    public var description: String {
        if case .faulted(let reason) = self { return "Faulted(\(reason))" }
        return name
    }

    /// Whether host writes are sent to it.
    var receivesWrites: Bool {
        switch self {
        case .online, .rebuilding: true
        default: false
        }
    }
}

/// Why a child was faulted.
public enum ChildFaultReason: Hashable, Sendable, CustomStringConvertible {
    /// A command failed (media error, connection lost, timeout).
    case ioError(String)
    /// It could not be opened or fenced (connect refused, reservation held by a key the policy
    /// may not preempt, size too small).
    case cannotOpen(String)
    /// Its rebuild failed.
    case rebuildFailed(String)
    /// Faulted by request (`halyard nexus child fault`).
    case byRequest

    public var description: String {
        switch self {
        case .ioError(let why): "I/O error: \(why)"
        case .cannotOpen(let why): "cannot open: \(why)"
        case .rebuildFailed(let why): "rebuild failed: \(why)"
        case .byRequest: "by request"
        }
    }
}

/// Why a nexus shut down.
public enum ShutdownReason: Hashable, Sendable, CustomStringConvertible {
    /// Requested (`halyard nexus shutdown`, destroy, io-engine stop).
    case requested
    /// A child answered Reservation Conflict or reported our registration preempted: another
    /// nexus owns the volume now (DESIGN.md §4.3).
    case fenced(childURI: String)

    public var description: String {
        switch self {
        case .requested: "requested"
        case .fenced(let uri): "fenced by another nexus (reservation conflict from \(uri))"
        }
    }
}
