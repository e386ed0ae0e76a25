import Logging
import NIOCore
import NVMe
import Synchronization

/// A dynamic controller: the association of one host with one subsystem, made by an admin-queue
/// Connect (NVMe over Fabrics spec 1.1 §3.3) and ended by shutdown, keep-alive expiry or the loss
/// of its admin connection. Holds the controller properties (CC/CSTS), the queues attached to it,
/// parked Asynchronous Event Requests and the keep-alive timer.
///
/// Shared between the admin queue's and the I/O queues' event loops, so its mutable state sits
/// behind a mutex; nothing here is touched per I/O except the `isReady` atomic.
public final class Controller: Sendable {
    public let id: UInt16
    public let subsystem: Subsystem
    public let hostNQN: String
    public let hostID: [UInt8]
    /// The host ID as reservations key it: every controller of one host shares its registrations.
    public let hostIdentifier: HostIdentifier
    /// Reservation notices not yet read through Get Log Page 80h (ReservationNotices.swift).
    let reservationNotices = ReservationNoticeQueue()
    /// The listener the admin queue connected through (its ANA view).
    public let listener: ListenerConfiguration
    /// That listener's index in the target's configuration (the path ANA states are kept for).
    public let listenerIndex: Int
    /// The ANA states of the subsystem's groups through that listener; read per I/O, lock-free.
    let anaPath: ANAPath
    /// Read/write counters of the controller's I/O queues.
    let ioCounterSet = IOCounterSet()
    let limits: TargetLimits
    let logger: Logger
    /// The admin queue's event loop: keep-alive timer and AER completions run there.
    let adminEventLoop: any EventLoop

    /// CC.EN = 1 and CSTS.RDY = 1: I/O and non-fabrics admin commands are allowed.
    private let ready = Atomic<Bool>(false)
    public var isReady: Bool { ready.load(ordering: .acquiring) }

    struct State {
        var configuration = ControllerConfiguration(rawValue: 0)
        var status = ControllerStatus(rawValue: 0)
        var keepAliveTimeout: TimeAmount?
        var lastKeepAlive = NIODeadline.now()
        var keepAliveTask: Scheduled<Void>?
        /// Granted I/O queues (1's based count); nil until Set Features Number of Queues.
        var grantedIOQueues: Int?
        var asyncEventConfiguration: UInt32 = 0
        /// CIDs of parked AERs, oldest first.
        var pendingAsyncEvents: [UInt16] = []
        /// Events raised while no AER was parked.
        var queuedAsyncEvents: [UInt32] = []
        var adminQueue: (any Channel)?
        var ioQueues: [UInt16: any Channel] = [:]
        var completionSink: (@Sendable (CompletionQueueEntry) -> Void)?
        var tornDown = false
    }
    let state: Mutex<State>

    init(id: UInt16, subsystem: Subsystem, hostNQN: String, hostID: [UInt8], listener: ListenerConfiguration, listenerIndex: Int,
         keepAliveTimeout: TimeAmount?, limits: TargetLimits, adminEventLoop: any EventLoop, logger: Logger) {
        self.id = id
        self.subsystem = subsystem
        self.hostNQN = hostNQN
        self.hostID = hostID
        self.hostIdentifier = HostIdentifier(bytes: hostID)
        self.listener = listener
        self.listenerIndex = listenerIndex
        self.anaPath = subsystem.ana.path(listenerIndex: listenerIndex)
        self.limits = limits
        self.adminEventLoop = adminEventLoop
        var logger = logger
        logger[metadataKey: "cntlid"] = "\(id)"
        logger[metadataKey: "hostnqn"] = "\(hostNQN)"
        self.logger = logger
        state = Mutex(State(keepAliveTimeout: keepAliveTimeout))
    }

    public var isDiscovery: Bool { subsystem.kind == .discovery }

    /// Registers the admin queue's channel and the function that sends a completion on it.
    func attachAdminQueue(_ channel: any Channel, completionSink: @escaping @Sendable (CompletionQueueEntry) -> Void) {
        state.withLock {
            $0.adminQueue = channel
            $0.completionSink = completionSink
        }
        armKeepAlive()
    }

    /// Registers I/O queue `qid`; false if the queue exists already or is not granted.
    func attachIOQueue(_ qid: UInt16, channel: any Channel) -> NVMeStatus? {
        state.withLock { state in
            if state.tornDown { return .commandSequenceError }
            guard let granted = state.grantedIOQueues, Int(qid) <= granted else { return .connectInvalidParameters }
            guard state.ioQueues[qid] == nil else { return .commandSequenceError }
            state.ioQueues[qid] = channel
            return nil
        }
    }

    func detachIOQueue(_ qid: UInt16, channel: any Channel) {
        state.withLock { state in
            if state.ioQueues[qid] === channel { state.ioQueues[qid] = nil }
        }
    }

    public var ioQueueCount: Int { state.withLock { $0.ioQueues.count } }

    // MARK: Properties (NVMe base spec 2.0 §3.1.3)

    var capabilities: ControllerCapabilities {
        ControllerCapabilities(maxQueueEntries: limits.maxQueueEntries, timeout500ms: 15)
    }
    static let version: UInt32 = 0x0001_0400

    func getProperty(_ property: PropertyCommand) -> (UInt64, NVMeStatus) {
        let (cc, csts) = state.withLock { ($0.configuration.rawValue, $0.status.rawValue) }
        switch (property.offset, property.isEightBytes) {
        case (ControllerProperty.capabilities, true): return (capabilities.rawValue, .success)
        case (ControllerProperty.capabilities, false): return (capabilities.rawValue & 0xFFFF_FFFF, .success)
        case (ControllerProperty.version, false): return (UInt64(Self.version), .success)
        case (ControllerProperty.configuration, false): return (UInt64(cc), .success)
        case (ControllerProperty.status, false): return (UInt64(csts), .success)
        default: return (0, .invalidField)
        }
    }

    /// Property Set: only CC is writable. Enabling validates the queue entry sizes, page size,
    /// arbitration and command set; a shutdown notification completes the shutdown at once.
    func setProperty(_ property: PropertyCommand) -> NVMeStatus {
        guard property.offset == ControllerProperty.configuration, !property.isEightBytes else { return .invalidField }
        let new = ControllerConfiguration(rawValue: UInt32(truncatingIfNeeded: property.value))
        var event: String?
        let ioQueues: [any Channel] = state.withLock { state in
            let old = state.configuration
            state.configuration = new
            var closing: [any Channel] = []
            if new.shutdownNotification != 0 && old.shutdownNotification == 0 {
                // Normal or abrupt shutdown: nothing is cached in the controller, so it completes now.
                state.status.shutdownStatus = 2
                state.status.ready = false
                closing = Array(state.ioQueues.values)
                event = "shutdown"
            } else if new.enable && !old.enable {
                if new.ioSubmissionQueueEntrySize == 6 && new.ioCompletionQueueEntrySize == 4 || isDiscovery,
                   new.memoryPageSize == 0, new.arbitrationMechanism == 0, new.commandSetSelected == 0 {
                    state.status.ready = true
                    state.status.fatal = false
                    state.status.shutdownStatus = 0
                    event = "enabled"
                } else {
                    state.status.fatal = true
                    event = "enable refused: CC 0x\(String(new.rawValue, radix: 16))"
                }
            } else if !new.enable && old.enable {
                state.status.ready = false
                state.status.shutdownStatus = 0
                closing = Array(state.ioQueues.values)
                event = "disabled"
            }
            ready.store(state.status.ready, ordering: .releasing)
            return closing
        }
        if let event { logger.info("controller \(event)") }
        for channel in ioQueues { channel.close(promise: nil) }
        return .success
    }

    // MARK: Features

    func setNumberOfQueues(requested: UInt32) -> (UInt32, NVMeStatus) {
        let nsqr = requested & 0xFFFF, ncqr = requested >> 16
        guard nsqr != 0xFFFF, ncqr != 0xFFFF else { return (0, .invalidField) }
        return state.withLock { state in
            if !state.ioQueues.isEmpty, let granted = state.grantedIOQueues {
                // Already in use: report what stands (NVMe base spec 2.0 §5.27.1.7).
                let g = UInt32(granted - 1)
                return (g | g << 16, .commandSequenceError)
            }
            let want = Int(min(nsqr, ncqr)) + 1
            let granted = min(want, limits.maxIOQueues)
            state.grantedIOQueues = granted
            let g = UInt32(granted - 1)
            return (g | g << 16, .success)
        }
    }

    var numberOfQueues: UInt32 {
        state.withLock { state in
            let g = UInt32((state.grantedIOQueues ?? limits.maxIOQueues) - 1)
            return g | g << 16
        }
    }

    /// Async events this controller can report (Identify OAES).
    var supportedAsyncEvents: UInt32 {
        isDiscovery ? 1 << 31 : (1 << 8) | (1 << 11)
    }

    func setAsyncEventConfiguration(_ value: UInt32) -> NVMeStatus {
        // SMART/health warning bits (7:0) are accepted and never fire.
        guard value & ~(supportedAsyncEvents | 0xFF) == 0 else { return .invalidField }
        state.withLock { $0.asyncEventConfiguration = value }
        return .success
    }

    var asyncEventConfiguration: UInt32 { state.withLock { $0.asyncEventConfiguration } }

    var keepAliveTimeout: TimeAmount? { state.withLock { $0.keepAliveTimeout } }

    func setKeepAliveTimeout(milliseconds: UInt32) {
        state.withLock { $0.keepAliveTimeout = milliseconds == 0 ? nil : .milliseconds(Int64(milliseconds)) }
        keepAliveReceived()
        armKeepAlive()
    }

    // MARK: Asynchronous events (NVMe base spec 2.0 §5.2)

    /// Parks an AER; returns false when more than AERL+1 would be outstanding.
    func parkAsyncEventRequest(commandID: UInt16) -> Bool {
        let (accepted, fire) = state.withLock { state -> (Bool, UInt32?) in
            guard state.pendingAsyncEvents.count < Int(Self.asyncEventRequestLimit) + 1 else { return (false, nil) }
            if !state.queuedAsyncEvents.isEmpty {
                return (true, state.queuedAsyncEvents.removeFirst())
            }
            state.pendingAsyncEvents.append(commandID)
            return (true, nil)
        }
        if let fire {
            sendCompletion(CompletionQueueEntry(dw0: fire, commandID: commandID))
        }
        return accepted
    }

    /// Completes one parked AER with `result` (e.g. 0x000C0302 for an ANA change), or queues the
    /// event until the host parks one. Events whose kind the host did not enable are dropped.
    public func raiseAsyncEvent(_ result: UInt32, enableBit: UInt32) {
        let cid: UInt16? = state.withLock { state in
            guard state.asyncEventConfiguration & enableBit != 0, !state.tornDown else { return nil }
            if state.pendingAsyncEvents.isEmpty {
                if !state.queuedAsyncEvents.contains(result) { state.queuedAsyncEvents.append(result) }
                return nil
            }
            return state.pendingAsyncEvents.removeFirst()
        }
        if let cid { sendCompletion(CompletionQueueEntry(dw0: result, commandID: cid)) }
    }

    /// AERL (0's based).
    static let asyncEventRequestLimit: UInt8 = 3

    func sendCompletion(_ cqe: CompletionQueueEntry) {
        let sink = state.withLock { $0.completionSink }
        sink?(cqe)
    }

    // MARK: Keep alive (NVMe base spec 2.0 §3.9)

    func keepAliveReceived() {
        state.withLock { $0.lastKeepAlive = .now() }
    }

    private func armKeepAlive() {
        let timeout = state.withLock { $0.keepAliveTimeout }
        guard let timeout else { return }
        let limit = timeout + limits.keepAliveGrace
        let task = adminEventLoop.scheduleTask(in: limit) { [self] in
            self.checkKeepAlive()
        }
        let old = state.withLock { state -> Scheduled<Void>? in
            let old = state.keepAliveTask
            state.keepAliveTask = task
            return old
        }
        old?.cancel()
    }

    private func checkKeepAlive() {
        let (timeout, last, down) = state.withLock { ($0.keepAliveTimeout, $0.lastKeepAlive, $0.tornDown) }
        guard let timeout, !down else { return }
        let limit = timeout + limits.keepAliveGrace
        let expiry = last + limit
        if expiry <= .now() {
            logger.warning("keep-alive expired (KATO \(timeout.nanoseconds / 1_000_000) ms, no keep-alive for \((NIODeadline.now() - last).nanoseconds / 1_000_000) ms); tearing the controller down")
            state.withLock { $0.status.fatal = true }
            tearDown(reason: "keep-alive timeout")
        } else {
            let task = adminEventLoop.scheduleTask(deadline: expiry) { [self] in self.checkKeepAlive() }
            state.withLock { $0.keepAliveTask = task }
        }
    }

    // MARK: Teardown

    /// Ends the controller: closes every queue, cancels the keep-alive timer and frees the
    /// controller ID. Idempotent.
    public func tearDown(reason: String) {
        let channels: [any Channel]? = state.withLock { state in
            guard !state.tornDown else { return nil }
            state.tornDown = true
            state.status.ready = false
            ready.store(false, ordering: .releasing)
            state.keepAliveTask?.cancel()
            state.keepAliveTask = nil
            state.completionSink = nil
            var all = Array(state.ioQueues.values)
            if let admin = state.adminQueue { all.append(admin) }
            state.ioQueues = [:]
            state.adminQueue = nil
            return all
        }
        guard let channels else { return }
        subsystem.removeController(self)
        logger.info("controller removed: \(reason)", metadata: ["subnqn": "\(subsystem.nqn)"])
        for channel in channels { channel.close(promise: nil) }
    }

    public var isTornDown: Bool { state.withLock { $0.tornDown } }
}
