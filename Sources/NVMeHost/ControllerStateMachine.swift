import NIOCore
import NVMe

/// The life of one ``ControllerSession`` as a value type: every transition happens in
/// ``handle(_:)``, which returns the side effects to perform (connect, tear down, resume waiters,
/// arm timers) instead of doing them. The session holds it behind a mutex and performs the
/// actions after the lock is released (state-stream yields excepted: they happen under the lock so
/// subscribers see transitions in order).
///
/// Phases: `idle → connecting ⇄ live → deleting → deleted`. Each stay in `connecting` is an
/// *episode*; timers and connect attempts carry their episode number, so one that fires after
/// the episode ended is ignored. A lost controller is matched by identity, so a late failure
/// report for an old controller never tears down its successor.
struct ControllerStateMachine {
    typealias Waiter = CheckedContinuation<NVMeController, any Error>

    enum Phase {
        /// Created, not started.
        case idle
        case connecting(Outage)
        case live(NVMeController)
        /// Ending; `reason` is what queued and new I/O fails with.
        case deleting(reason: ControllerSessionError)
        case deleted(reason: ControllerSessionError)
    }

    /// One stay in `connecting`.
    struct Outage {
        var episode: UInt64
        /// Failed attempts so far.
        var attempts = 0
        /// A connect attempt is running (at most one at a time).
        var attempting = false
        /// `fastIOFailTimeout` expired: I/O fails instead of waiting.
        var fastFailed = false
    }

    enum Event {
        case start
        /// The reconnect delay of `episode` elapsed.
        case attemptDue(episode: UInt64)
        case attemptSucceeded(episode: UInt64, NVMeController)
        /// `fatal`: the controller was refused (identity changed), stop reconnecting.
        case attemptFailed(episode: UInt64, any Error, fatal: Bool)
        /// A queue of `controller` closed, a command on it timed out, or a keep-alive failed.
        case lost(NVMeController, reason: String)
        case fastFailExpired(episode: UInt64)
        case lossExpired(episode: UInt64)
        case close
        /// The orderly shutdown started by `close` finished.
        case shutdownComplete
        /// I/O wants the live controller (resumed at once, queued, or failed).
        case enqueue(id: UInt64, Waiter)
        case cancel(id: UInt64)
        /// Someone waits for the outcome of the first connect attempt.
        case awaitInitial(CheckedContinuation<Void, any Error>)
        case timerArmed(episode: UInt64, Scheduled<Void>)
    }

    /// Side effects of one transition, performed by the session in this order.
    struct Actions {
        /// States to publish (yielded under the lock).
        var published: [ControllerState] = []
        var resume: [(Waiter, NVMeController)] = []
        var fail: [(Waiter, any Error)] = []
        var initial: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = []
        var cancelTimers: [Scheduled<Void>] = []
        /// Error recovery: close every queue of this controller now (no shutdown handshake).
        var abort: NVMeController?
        /// A controller nobody wants any more (connected after the session ended): shut it down.
        var discard: NVMeController?
        /// `close` of a live session: shut this down, then send `.shutdownComplete`.
        var shutdown: NVMeController?
        /// Watch the new live controller's queues.
        var watch: NVMeController?
        /// Arm the reconnect timer of an episode.
        var scheduleAttempt: (episode: UInt64, delay: TimeAmount)?
        /// Start a connect attempt now.
        var runAttempt: UInt64?
        /// Arm the fast-fail and loss timers of a new episode.
        var armTimers: (episode: UInt64, fastFail: TimeAmount?, loss: TimeAmount?)?
        /// The session reached `deleted`: end these state streams.
        var finish: [AsyncStream<ControllerState>.Continuation] = []
        /// Something observable changed: tell the observer.
        var changed = false
    }

    let address: TransportAddress
    let options: ControllerSessionOptions
    private(set) var phase: Phase = .idle
    private var nextEpisode: UInt64 = 1
    private var waiters: [(id: UInt64, waiter: Waiter)] = []
    /// Cancellations that arrived before their enqueue.
    private var cancelled: Set<UInt64> = []
    private var initialWaiters: [CheckedContinuation<Void, any Error>] = []
    private var initialOutcome: Result<Void, any Error>?
    private var timers: [Scheduled<Void>] = []
    private(set) var lastError: String?
    var subscribers: [UInt64: AsyncStream<ControllerState>.Continuation] = [:]

    init(address: TransportAddress, options: ControllerSessionOptions) {
        precondition(options.maxQueuedIO >= 0 && options.maxRetries >= 0)
        precondition(options.reconnectDelay >= .zero)
        self.address = address
        self.options = options
    }

    // MARK: Queries

    var state: ControllerState {
        switch phase {
        case .idle, .connecting: .connecting
        case .live: .live
        case .deleting: .deleting
        case .deleted: .deleted
        }
    }

    var liveController: NVMeController? {
        if case .live(let c) = phase { return c }
        return nil
    }

    var status: ControllerSessionStatus {
        var s = ControllerSessionStatus(address: address, state: state, controller: liveController, fastFailed: false,
                                        reconnectAttempts: 0, lastError: lastError, queuedIO: waiters.count)
        if case .connecting(let o) = phase {
            s.fastFailed = o.fastFailed
            s.reconnectAttempts = o.attempts
        }
        return s
    }

    // MARK: Transitions

    mutating func handle(_ event: Event) -> Actions {
        var a = Actions()
        switch event {
        case .start:
            guard case .idle = phase else { break }
            enterConnecting(&a, delay: .zero)
        case .attemptDue(let episode):
            guard case .connecting(var o) = phase, o.episode == episode, !o.attempting else { break }
            o.attempting = true
            phase = .connecting(o)
            a.runAttempt = episode
        case .attemptSucceeded(let episode, let controller):
            guard case .connecting(let o) = phase, o.episode == episode else {
                a.discard = controller  // the session ended (or moved on) while it connected
                break
            }
            precondition(o.attempting, "a connect attempt succeeded that was not running")
            phase = .live(controller)
            lastError = nil
            a.cancelTimers = timers
            timers = []
            a.watch = controller
            a.resume = waiters.map { ($0.waiter, controller) }
            waiters = []
            a.published.append(.live)
            settleInitial(&a, .success(()))
        case .attemptFailed(let episode, let error, let fatal):
            guard case .connecting(var o) = phase, o.episode == episode else { break }
            precondition(o.attempting, "a connect attempt failed that was not running")
            o.attempting = false
            o.attempts += 1
            phase = .connecting(o)
            lastError = "\(error)"
            a.changed = true
            settleInitial(&a, .failure(error))
            if fatal {
                enterDeleting(&a, reason: .refused("\(error)"))
            } else {
                a.scheduleAttempt = (episode, options.reconnectDelay)
            }
        case .lost(let controller, let reason):
            guard case .live(let current) = phase, current === controller else { break }
            lastError = reason
            a.abort = controller
            enterConnecting(&a, delay: options.reconnectDelay)
        case .fastFailExpired(let episode):
            guard case .connecting(var o) = phase, o.episode == episode, !o.fastFailed else { break }
            o.fastFailed = true
            phase = .connecting(o)
            a.fail = waiters.map { ($0.waiter, ControllerSessionError.fastFailed(address)) }
            waiters = []
            a.changed = true
        case .lossExpired(let episode):
            guard case .connecting(let o) = phase, o.episode == episode else { break }
            enterDeleting(&a, reason: .controllerLost(address))
        case .close:
            switch phase {
            case .idle, .connecting:
                enterDeleting(&a, reason: .closed(address))
            case .live(let controller):
                phase = .deleting(reason: .closed(address))
                a.published.append(.deleting)
                a.shutdown = controller
            case .deleting, .deleted:
                break
            }
        case .shutdownComplete:
            guard case .deleting(let reason) = phase else { break }
            finishDeletion(&a, reason: reason)
        case .enqueue(let id, let waiter):
            enqueue(&a, id: id, waiter: waiter)
        case .cancel(let id):
            if let i = waiters.firstIndex(where: { $0.id == id }) {
                a.fail.append((waiters.remove(at: i).waiter, CancellationError()))
            } else {
                cancelled.insert(id)
            }
        case .awaitInitial(let waiter):
            if let initialOutcome {
                a.initial.append((waiter, initialOutcome))
            } else {
                initialWaiters.append(waiter)
            }
        case .timerArmed(let episode, let timer):
            if case .connecting(let o) = phase, o.episode == episode {
                timers.append(timer)
            } else {
                a.cancelTimers.append(timer)
            }
        }
        if !a.published.isEmpty { a.changed = true }
        checkInvariants()
        return a
    }

    private mutating func enterConnecting(_ a: inout Actions, delay: TimeAmount) {
        let episode = nextEpisode
        nextEpisode += 1
        phase = .connecting(Outage(episode: episode))
        a.published.append(.connecting)
        a.scheduleAttempt = (episode, delay)
        a.armTimers = (episode, options.fastIOFailTimeout, options.controllerLossTimeout)
    }

    /// From `idle`/`connecting`: nothing to shut down (an attempt still running is discarded when
    /// it ends), so `deleting` is followed at once by `deleted`.
    private mutating func enterDeleting(_ a: inout Actions, reason: ControllerSessionError) {
        phase = .deleting(reason: reason)
        a.published.append(.deleting)
        a.fail += waiters.map { ($0.waiter, reason) }
        waiters = []
        settleInitial(&a, .failure(reason))
        finishDeletion(&a, reason: reason)
    }

    private mutating func finishDeletion(_ a: inout Actions, reason: ControllerSessionError) {
        phase = .deleted(reason: reason)
        a.published.append(.deleted)
        a.cancelTimers += timers
        timers = []
        a.fail += waiters.map { ($0.waiter, reason) }
        waiters = []
        settleInitial(&a, .failure(reason))
        a.finish = Array(subscribers.values)
        subscribers = [:]
        cancelled = []
    }

    private mutating func enqueue(_ a: inout Actions, id: UInt64, waiter: Waiter) {
        if cancelled.remove(id) != nil {
            a.fail.append((waiter, CancellationError()))
            return
        }
        switch phase {
        case .live(let controller):
            a.resume.append((waiter, controller))
        case .connecting(let o) where o.fastFailed:
            a.fail.append((waiter, ControllerSessionError.fastFailed(address)))
        case .idle, .connecting:
            if waiters.count >= options.maxQueuedIO {
                a.fail.append((waiter, ControllerSessionError.queueFull(address)))
            } else {
                waiters.append((id, waiter))
            }
        case .deleting(let reason), .deleted(let reason):
            a.fail.append((waiter, reason))
        }
    }

    private mutating func settleInitial(_ a: inout Actions, _ outcome: Result<Void, any Error>) {
        guard initialOutcome == nil else { return }
        initialOutcome = outcome
        a.initial = initialWaiters.map { ($0, outcome) }
        initialWaiters = []
    }

    private func checkInvariants() {
        switch phase {
        case .idle:
            precondition(timers.isEmpty)
        case .connecting(let o):
            precondition(!o.fastFailed || waiters.isEmpty, "waiters left behind after fast-fail")
            precondition(waiters.count <= options.maxQueuedIO)
        case .live:
            precondition(waiters.isEmpty, "I/O waits although the controller is live")
            precondition(timers.isEmpty, "outage timers armed while live")
        case .deleting:
            precondition(waiters.isEmpty)
        case .deleted:
            precondition(waiters.isEmpty && subscribers.isEmpty && timers.isEmpty)
            precondition(initialOutcome != nil && initialWaiters.isEmpty)
        }
    }
}
