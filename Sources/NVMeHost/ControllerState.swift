import NIOCore
import NVMe

/// The state of a ``ControllerSession``, as Linux shows it in `/sys/class/nvme/nvmeX/state`
/// (research/nvme-tcp.md §9). Linux's short-lived `resetting` (queues being torn down) is folded
/// into `connecting` here: the teardown happens inside the transition.
public enum ControllerState: String, Hashable, Sendable, CustomStringConvertible {
    /// No live controller: the first connect, or reconnecting after a transport error or a
    /// keep-alive loss. I/O waits (unless the session has fast-failed).
    case connecting
    /// A controller is connected, enabled and has its I/O queues; I/O goes out at once.
    case live
    /// The session is ending (closed, controller loss timeout, or refused on reconnect).
    case deleting
    /// Gone for good; the state stream ends here.
    case deleted

    public var description: String { rawValue }
}

/// The timers of one session (nvme-cli `connect -c/-l/-f`, research/nvme-tcp.md §9). Each session
/// has its own: a nexus wants children that fail fast; a host wants to wait.
public struct ControllerSessionOptions: Sendable {
    /// Delay between reconnect attempts (Linux `reconnect_delay`, default 10 s). The first attempt
    /// after a loss also waits this long, as in Linux.
    public var reconnectDelay: TimeAmount = .seconds(10)
    /// How long the session keeps reconnecting before it gives up and deletes itself (Linux
    /// `ctrl_loss_tmo`, default 600 s); nil = forever.
    public var controllerLossTimeout: TimeAmount? = .seconds(600)
    /// After this long in `connecting`, queued I/O fails and the path stops counting as available,
    /// while reconnect attempts go on (Linux `fast_io_fail_tmo`); nil = off (the default).
    public var fastIOFailTimeout: TimeAmount?
    /// Most I/O that may wait for the controller to come back; more fails with
    /// ``ControllerSessionError/queueFull``.
    public var maxQueuedIO: Int = 4096
    /// How many times ``ControllerSession/submit(_:data:readLength:)`` resends a command whose
    /// controller failed under it (Linux `nvme_core.max_retries`).
    public var maxRetries: Int = 5

    public init() {}

    public init(reconnectDelay: TimeAmount, controllerLossTimeout: TimeAmount?, fastIOFailTimeout: TimeAmount? = nil) {
        self.reconnectDelay = reconnectDelay
        self.controllerLossTimeout = controllerLossTimeout
        self.fastIOFailTimeout = fastIOFailTimeout
    }
}

/// Why a ``ControllerSession`` refused or failed a request.
public enum ControllerSessionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The session was in `connecting` longer than `fastIOFailTimeout`; it is still reconnecting.
    case fastFailed(TransportAddress)
    /// The controller loss timeout expired: the session is deleted.
    case controllerLost(TransportAddress)
    /// The session was closed.
    case closed(TransportAddress)
    /// A reconnected controller was refused (its namespace identity changed); the session is deleted.
    case refused(String)
    /// Too much I/O is waiting for the controller to come back.
    case queueFull(TransportAddress)

    public var description: String {
        switch self {
        case .fastFailed(let a): "\(a): I/O failed fast while reconnecting (fast_io_fail_tmo expired)"
        case .controllerLost(let a): "\(a): controller lost (ctrl_loss_tmo expired)"
        case .closed(let a): "\(a): session closed"
        case .refused(let why): "path refused: \(why)"
        case .queueFull(let a): "\(a): too much I/O queued while reconnecting"
        }
    }
}

/// A snapshot of a session, for display and for path selection.
public struct ControllerSessionStatus: Sendable {
    public var address: TransportAddress
    public var state: ControllerState
    /// The live controller (nil unless `state == .live`).
    public var controller: NVMeController?
    /// True once the current outage outlived `fastIOFailTimeout`.
    public var fastFailed: Bool
    /// Failed connect attempts in the current outage.
    public var reconnectAttempts: Int
    /// Why the last attempt (or the last controller) failed.
    public var lastError: String?
    /// I/O waiting for the controller to come back.
    public var queuedIO: Int

    public var controllerID: UInt16? { controller?.controllerID }

    /// Whether I/O may still be served by this session: live, or connecting and not fast-failed
    /// (Linux `nvme_available_path`).
    public var isAvailable: Bool {
        switch state {
        case .live: true
        case .connecting: !fastFailed
        case .deleting, .deleted: false
        }
    }
}
