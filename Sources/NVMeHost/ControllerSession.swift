import Logging
import NIOCore
import NVMe
import Synchronization

/// The long-lived host controller of one path, like Linux's `nvme_ctrl`: it owns a succession of
/// ``NVMeController``s to one address and keeps the path alive across failures
/// (research/nvme-tcp.md §9).
///
/// ```
///            start                      transport error / command timeout / keep-alive loss
///   (idle) ───────► connecting ──────► live ──────────────────────────────┐
///                     ▲   │  connect ok                                  │
///                     │   └─ failed: retry after reconnectDelay          │
///                     └──────────────────────────────────────────────────┘
///   connecting ── controllerLossTimeout / refused ──► deleting ──► deleted
///   any ── close() ──► deleting (orderly shutdown if live) ──► deleted
/// ```
///
/// - Loss is detected when any queue's channel closes: the target closed it, a command timed out
///   (the queue handler closes the queue), or the keep-alive command timed out (same). A user of
///   the live controller may also report a failure with ``controllerFailed(_:reason:)``.
/// - Error recovery closes every queue of the failed controller at once (in-flight commands fail
///   with a transport error), then reconnects with a brand-new controller (Connect with CNTLID
///   0xFFFF) after `reconnectDelay`, again and again until `controllerLossTimeout`.
/// - I/O that arrives while connecting waits (at most `maxQueuedIO`) and goes out when the session
///   is live again; it fails only once `fastIOFailTimeout` or `controllerLossTimeout` expires.
///
/// Thread safety: all state is one ``ControllerStateMachine`` behind a mutex; every transition
/// goes through its `handle(_:)`. Side effects (connecting, closing channels, resuming waiters)
/// run after the lock is released.
public final class ControllerSession: Sendable {
    public let address: TransportAddress
    public let subsystemNQN: String
    public let identity: HostIdentity
    public let options: ControllerOptions
    public let sessionOptions: ControllerSessionOptions
    let group: any EventLoopGroup
    let logger: Logger
    /// Runs on each newly connected controller before it goes live; throwing
    /// ``ControllerSessionError/refused(_:)`` deletes the session, any other error retries.
    let validate: (@Sendable (NVMeController) async throws -> Void)?
    /// Told (outside the lock) after every observable change.
    let onChange: (@Sendable (ControllerSessionStatus) -> Void)?
    private let machine: Mutex<ControllerStateMachine>
    private let ids = Atomic<UInt64>(0)
    /// Connect attempts and shutdowns still running; `close()` waits for them, so nothing touches
    /// the event loop group after it returns.
    private let background = BackgroundTasks()

    /// A session that has not started; call ``start()``.
    public init(address: TransportAddress, subsystemNQN: String, identity: HostIdentity,
                options: ControllerOptions = ControllerOptions(), sessionOptions: ControllerSessionOptions = ControllerSessionOptions(),
                group: any EventLoopGroup, logger: Logger = Logger(label: "halyard.nvme-host"),
                validate: (@Sendable (NVMeController) async throws -> Void)? = nil,
                onChange: (@Sendable (ControllerSessionStatus) -> Void)? = nil) {
        self.address = address
        self.subsystemNQN = subsystemNQN
        self.identity = identity
        self.options = options
        self.sessionOptions = sessionOptions
        self.group = group
        var logger = logger
        logger[metadataKey: "path"] = "\(address)"
        self.logger = logger
        self.validate = validate
        self.onChange = onChange
        machine = Mutex(ControllerStateMachine(address: address, options: sessionOptions))
    }

    /// Connects like `nvme connect`: the first attempt must succeed (else the session is deleted
    /// and the error thrown); later losses reconnect per `sessionOptions`.
    public static func connect(to address: TransportAddress, subsystemNQN: String, identity: HostIdentity,
                               options: ControllerOptions = ControllerOptions(),
                               sessionOptions: ControllerSessionOptions = ControllerSessionOptions(),
                               group: any EventLoopGroup, logger: Logger = Logger(label: "halyard.nvme-host"),
                               validate: (@Sendable (NVMeController) async throws -> Void)? = nil,
                               onChange: (@Sendable (ControllerSessionStatus) -> Void)? = nil) async throws -> ControllerSession {
        let session = ControllerSession(address: address, subsystemNQN: subsystemNQN, identity: identity, options: options,
                                        sessionOptions: sessionOptions, group: group, logger: logger,
                                        validate: validate, onChange: onChange)
        session.start()
        do {
            try await session.initialConnect()
        } catch {
            await session.close()
            throw error
        }
        return session
    }

    /// Starts connecting (the first attempt at once). Idempotent.
    public func start() {
        perform(transition(.start))
    }

    /// Waits for the outcome of the first connect attempt: returns if it went live, throws its
    /// error if it failed (the session goes on reconnecting unless the error was a refusal).
    public func initialConnect() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            perform(transition(.awaitInitial(c)))
        }
    }

    // MARK: Observing

    public var state: ControllerState { machine.withLock { $0.state } }

    public var status: ControllerSessionStatus { machine.withLock { $0.status } }

    /// The live controller, or nil while connecting or after deletion.
    public var liveController: NVMeController? { machine.withLock { $0.liveController } }

    /// Whether I/O may still be served here: live, or connecting and not fast-failed.
    public var isAvailable: Bool { status.isAvailable }

    /// A new stream of the session's states: the current state first, then every transition in
    /// order; it ends after `deleted`. Each access makes a new subscription.
    public var states: AsyncStream<ControllerState> {
        let (stream, continuation) = AsyncStream.makeStream(of: ControllerState.self, bufferingPolicy: .unbounded)
        let id = ids.wrappingAdd(1, ordering: .relaxed).newValue
        continuation.onTermination = { [weak self] _ in
            _ = self?.machine.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        let ended = machine.withLock { m -> Bool in
            continuation.yield(m.state)
            if m.state == .deleted { return true }
            m.subscribers[id] = continuation
            return false
        }
        if ended { continuation.finish() }
        return stream
    }

    // MARK: I/O

    /// The live controller, waiting while the session is connecting. Throws
    /// ``ControllerSessionError`` once fast-failed, lost or closed.
    public func waitForLive() async throws -> NVMeController {
        if let c = liveController { return c }
        let id = ids.wrappingAdd(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<NVMeController, any Error>) in
                perform(transition(.enqueue(id: id, c)))
            }
        } onCancel: {
            perform(transition(.cancel(id: id)))
        }
    }

    /// An I/O command on this path, with single-path semantics: it waits while the session is
    /// connecting, and a command whose controller failed under it is sent again on the next
    /// controller (at most `maxRetries` times), as Linux does without multipath. The completion's
    /// status is returned as is; transport failures and session errors are thrown.
    public func submit(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) async throws -> CommandCompletion {
        var resent = 0
        while true {
            let controller = try await waitForLive()
            do {
                return try await controller.submitIO(command, data: data, readLength: readLength).get()
            } catch let error as NVMeHostError where error.isPathError {
                controllerFailed(controller, reason: error.description)
                guard resent < sessionOptions.maxRetries else { throw error }
                resent += 1
            }
        }
    }

    /// An admin command on the live controller (waiting while connecting); never resent.
    public func adminCommand(_ command: SubmissionQueueEntry, data: ByteBuffer? = nil, readLength: Int = 0) async throws -> CommandCompletion {
        let controller = try await waitForLive()
        do {
            return try await controller.admin.submit(command, data: data, readLength: readLength, timeout: options.adminTimeout).get()
        } catch let error as NVMeHostError where error.isPathError {
            controllerFailed(controller, reason: error.description)
            throw error
        }
    }

    /// Reports that `controller` failed (a transport error or timeout seen by a user): if it is
    /// still the live one, the session starts error recovery. Late reports are ignored.
    public func controllerFailed(_ controller: NVMeController, reason: String) {
        perform(transition(.lost(controller, reason: reason)))
    }

    /// Ends the session: an orderly shutdown of the live controller (CC.SHN), then `deleted`.
    /// Queued I/O fails with ``ControllerSessionError/closed(_:)``. Idempotent; returns once deleted
    /// and once a connect attempt that was under way has ended (at most the connect and admin
    /// timeouts), so the event loop group may be shut down afterwards.
    public func close() async {
        let actions = transition(.close)
        perform(actions)
        if let controller = actions.shutdown {
            await controller.shutdown()
            perform(transition(.shutdownComplete))
        }
        for await state in states where state == .deleted { break }
        await background.drain()
    }

    // MARK: Transitions and their effects

    private func transition(_ event: ControllerStateMachine.Event) -> ControllerStateMachine.Actions {
        machine.withLock { m in
            let actions = m.handle(event)
            // Streams that end with this transition (`finish`) still get its states.
            for state in actions.published {
                for subscriber in m.subscribers.values { subscriber.yield(state) }
                for subscriber in actions.finish { subscriber.yield(state) }
            }
            return actions
        }
    }

    /// Performs a transition's effects. Waiters are resumed last, so whoever they wake (a test
    /// about to shut the group down, say) finds the timers already armed and registered.
    private func perform(_ a: ControllerStateMachine.Actions) {
        for state in a.published { log(state) }
        for timer in a.cancelTimers { timer.cancel() }
        if let controller = a.abort { Self.abort(controller) }
        if let controller = a.discard { background.spawn { await controller.shutdown() } }
        if let controller = a.watch { watch(controller) }
        if let (episode, delay) = a.scheduleAttempt {
            let timer = group.next().scheduleTask(in: delay) { [weak self] in
                guard let self else { return }
                self.perform(self.transition(.attemptDue(episode: episode)))
            }
            perform(transition(.timerArmed(episode: episode, timer)))
        }
        if let episode = a.runAttempt {
            background.spawn { await self.runAttempt(episode) }
        }
        if let (episode, fastFail, loss) = a.armTimers {
            if let fastFail { arm(episode: episode, after: fastFail, .fastFailExpired(episode: episode)) }
            if let loss { arm(episode: episode, after: loss, .lossExpired(episode: episode)) }
        }
        for subscriber in a.finish { subscriber.finish() }
        if a.changed, let onChange { onChange(status) }
        for (waiter, controller) in a.resume { waiter.resume(returning: controller) }
        for (waiter, error) in a.fail { waiter.resume(throwing: error) }
        for (waiter, outcome) in a.initial { waiter.resume(with: outcome) }
    }

    private func arm(episode: UInt64, after delay: TimeAmount, _ event: ControllerStateMachine.Event) {
        let timer = group.next().scheduleTask(in: delay) { [weak self] in
            guard let self else { return }
            self.perform(self.transition(event))
        }
        perform(transition(.timerArmed(episode: episode, timer)))
    }

    private func runAttempt(_ episode: UInt64) async {
        do {
            let controller = try await NVMeController.connect(to: address, subsystemNQN: subsystemNQN, identity: identity,
                                                              options: options, group: group, logger: logger)
            if let validate {
                do {
                    try await validate(controller)
                } catch {
                    await controller.shutdown()
                    throw error
                }
            }
            perform(transition(.attemptSucceeded(episode: episode, controller)))
        } catch {
            var fatal = false
            if case .refused = error as? ControllerSessionError { fatal = true }
            logger.debug("connect attempt failed: \(error)")
            perform(transition(.attemptFailed(episode: episode, error, fatal: fatal)))
        }
    }

    /// Loss detection: any queue's channel closing (target gone, command or keep-alive timeout).
    private func watch(_ controller: NVMeController) {
        for queue in [controller.admin] + controller.ioQueues {
            let qid = queue.queueID
            queue.channel.closeFuture.whenComplete { [weak self] _ in
                self?.controllerFailed(controller, reason: "queue \(qid) closed")
            }
        }
    }

    /// Error recovery's teardown: close every queue now; in-flight commands fail with a transport
    /// error and go elsewhere (multipath) or are resent after the reconnect.
    private static func abort(_ controller: NVMeController) {
        for queue in controller.ioQueues { queue.channel.close(promise: nil) }
        controller.admin.channel.close(promise: nil)
    }

    private func log(_ state: ControllerState) {
        let s = status
        switch state {
        case .live: logger.info("controller live", metadata: ["cntlid": "\(s.controllerID.map(String.init) ?? "-")"])
        case .connecting: logger.notice("controller connecting", metadata: ["reason": "\(s.lastError ?? "start")"])
        case .deleting: logger.notice("controller deleting", metadata: ["reason": "\(s.lastError ?? "close")"])
        case .deleted: logger.info("controller deleted")
        }
    }
}

/// Unstructured tasks someone must be able to wait for (`close()` waits for every one).
final class BackgroundTasks: Sendable {
    private struct State {
        var next: UInt64 = 0
        var tasks: [UInt64: Task<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func spawn(_ body: @escaping @Sendable () async -> Void) {
        state.withLock { s in
            let id = s.next
            s.next += 1
            // Registered under the lock, so the task's own removal (which takes it) comes after.
            s.tasks[id] = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Waits until no task is left (including ones spawned meanwhile).
    func drain() async {
        while let tasks = state.withLock({ $0.tasks.isEmpty ? nil : Array($0.tasks.values) }) {
            for task in tasks { await task.value }
        }
    }
}
