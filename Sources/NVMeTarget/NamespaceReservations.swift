import Logging
import NIOCore
import NIOPosix
import NVMe
import Synchronization

/// The reservation gate of one namespace (NVMe base spec 2.0 §8.19): every command that touches
/// the namespace's data is admitted here before it reaches the block device, and every
/// reservation command runs here. It sits in the namespace layer, not in the TCP front end, so
/// every access path (an NVMe/TCP queue today, a nexus reaching a local replica later) passes the
/// same check.
///
/// - **Admission** (`admit`/`release`, the I/O hot path): one lock, the access matrix of the
///   committed ``ReservationState``, and a per-host in-flight count. No allocation.
/// - **Reservation commands** run one at a time in arrival order: the transition is computed,
///   written durably when PTPL is on (off the event loop), then committed — from that instant
///   admission follows the new state.
/// - **Fencing**: a Preempt, Preempt and Abort or Clear completes only after every command other
///   hosts had admitted before the commit has finished (each host's in-flight count at commit time
///   drains to zero; later admissions are counted apart, under a new epoch, so they cannot hold the
///   preempt up). Commands are drained, not aborted. So once the preempt's completion is sent, a
///   preempted host has nothing in flight, and anything it sends is judged by the new state.
public final class NamespaceReservations: Sendable {
    public let namespaceID: UInt32
    /// Where the PTPL state is saved; nil keeps it in memory.
    public let stateFile: (any ReservationStatePersistence)?
    /// Why the namespace is offline (its state file could not be read); nil when it serves I/O.
    /// Offline: I/O and reservation commands get Namespace Not Ready, Identify still answers.
    public let offlineReason: String?
    /// Where state files are written; nil means NIO's shared pool, touched only when a state file
    /// is first written (a memory namespace never starts its threads).
    private let threadPool: NIOThreadPool?
    private let gate: Mutex<Gate>
    private let noticeHandler = Mutex<(@Sendable (UInt32, [ReservationState.Notice]) -> Void)?>(nil)
    private let noticeObservers = Mutex<NoticeObservers>(NoticeObservers())
    private let logger = Logger(label: "halyard.nvmf-target.reservations")

    /// Proof that a command was admitted; give it back with ``release(_:)`` exactly once, after the
    /// command has completed.
    public struct Token: Sendable {
        let host: HostIdentifier
        let epoch: UInt32
    }

    public enum Admission: Sendable {
        case admitted(Token)
        /// Reservation Conflict, or Namespace Not Ready while offline.
        case denied(NVMeStatus)
    }

    private struct HostActivity {
        /// Bumped at every fencing commit; tokens of older epochs count in `draining`.
        var epoch: UInt32 = 0
        var current = 0
        var draining = 0
        /// Fencing commands waiting for `draining` to reach 0.
        var barriers: [UInt64] = []
    }

    private struct Barrier {
        var remaining: Int
        let promise: EventLoopPromise<Void>
    }

    private struct Pending: Sendable {
        let request: ReservationState.Request
        let host: HostIdentifier
        let eventLoop: any EventLoop
        let promise: EventLoopPromise<ReservationState.Transition>
    }

    private struct NoticeObservers {
        var next: UInt64 = 0
        var observers: [UInt64: @Sendable ([ReservationState.Notice]) -> Void] = [:]
    }

    private struct Gate {
        var state: ReservationState
        var hosts: [HostIdentifier: HostActivity] = [:]
        var barriers: [UInt64: Barrier] = [:]
        var nextBarrierID: UInt64 = 0
        /// A reservation command is between compute and commit.
        var busy = false
        var queue: [Pending] = []
    }

    /// Restores the state from `stateFile` (if any). An unreadable file leaves the namespace
    /// offline with ``offlineReason`` naming the file; the file is never overwritten then.
    public init(namespaceID: UInt32, stateFile: (any ReservationStatePersistence)?, threadPool: NIOThreadPool? = nil) {
        self.namespaceID = namespaceID
        self.stateFile = stateFile
        self.threadPool = threadPool
        var state = ReservationState()
        var offline: String?
        if let stateFile {
            do {
                if let restored = try stateFile.load(), restored.persistThroughPowerLoss {
                    // PTPL off when last written: the reservation did not survive the "power loss".
                    state = restored
                }
            } catch {
                offline = "\(error); namespace \(namespaceID) stays offline until the file is repaired or removed"
            }
        }
        offlineReason = offline
        gate = Mutex(Gate(state: state))
    }

    /// The committed state.
    public var state: ReservationState { gate.withLock { $0.state } }

    /// Identify Namespace RESCAP: every type, PTPL, IEKEY as in NVMe 1.3.
    public var capabilities: ReservationCapabilities { .all }

    // MARK: Admission (the I/O path)

    /// Admits a command of `host` that reads (`isWrite` false: Read, Compare) or writes (Write,
    /// Write Zeroes, Dataset Management, Flush) per the access matrix.
    @inline(__always)
    public func admit(host: HostIdentifier, isWrite: Bool) -> Admission {
        if offlineReason != nil { return .denied(.namespaceNotReady) }
        return gate.withLock { g in
            guard g.state.allows(host, write: isWrite) else { return .denied(.reservationConflict) }
            if let index = g.hosts.index(forKey: host) {
                g.hosts.values[index].current += 1
                return .admitted(Token(host: host, epoch: g.hosts.values[index].epoch))
            }
            g.hosts[host] = HostActivity(current: 1)
            return .admitted(Token(host: host, epoch: 0))
        }
    }

    /// Ends an admitted command. Call after its completion has been handed to the transport.
    @inline(__always)
    public func release(_ token: Token) {
        let ready: [EventLoopPromise<Void>] = gate.withLock { g in
            guard let index = g.hosts.index(forKey: token.host) else {
                assertionFailure("reservation token released twice or never admitted")
                return []
            }
            var ready: [EventLoopPromise<Void>] = []
            if g.hosts.values[index].epoch == token.epoch {
                assert(g.hosts.values[index].current > 0)
                g.hosts.values[index].current -= 1
            } else {
                assert(g.hosts.values[index].draining > 0)
                g.hosts.values[index].draining -= 1
                if g.hosts.values[index].draining == 0 {
                    for id in g.hosts.values[index].barriers {
                        g.barriers[id]?.remaining -= 1
                        if let barrier = g.barriers[id], barrier.remaining == 0 {
                            ready.append(barrier.promise)
                            g.barriers[id] = nil
                        }
                    }
                    g.hosts.values[index].barriers = []
                }
            }
            if g.hosts.values[index].current == 0 && g.hosts.values[index].draining == 0 {
                g.hosts.remove(at: index)
            }
            return ready
        }
        for promise in ready { promise.succeed(()) }
    }

    // MARK: Reservation commands

    /// Runs `request` from `host`; the future (on `eventLoop`) completes once the new state is
    /// durable (PTPL), committed and — for a fencing command — drained.
    public func execute(_ request: ReservationState.Request, by host: HostIdentifier,
                        on eventLoop: any EventLoop) -> EventLoopFuture<ReservationState.Transition> {
        if offlineReason != nil {
            return eventLoop.makeSucceededFuture(.init(status: .namespaceNotReady, state: ReservationState(), changed: false))
        }
        let pending = Pending(request: request, host: host, eventLoop: eventLoop, promise: eventLoop.makePromise())
        let startNow = gate.withLock { g in
            if g.busy {
                g.queue.append(pending)
                return false
            }
            g.busy = true
            return true
        }
        if startNow { run(pending) }
        return pending.promise.futureResult
    }

    /// Calls `handler` with the notices of every committed transition (the subsystem delivers them
    /// to the hosts' controllers).
    func setNoticeHandler(_ handler: @escaping @Sendable (UInt32, [ReservationState.Notice]) -> Void) {
        noticeHandler.withLock { $0 = handler }
    }

    /// Registers `observer` for the notices of every committed transition, alongside the
    /// subsystem's delivery to NVMe/TCP controllers (NVMe base spec 2.0 §8.19.6): how an
    /// in-process access path (a nexus's local child) learns that its host's registration was
    /// preempted. Called outside the gate's lock, in commit order, on whichever thread commits.
    /// Returns the ID to pass to ``removeNoticeObserver(_:)``.
    public func addNoticeObserver(_ observer: @escaping @Sendable ([ReservationState.Notice]) -> Void) -> UInt64 {
        noticeObservers.withLock { o in
            let id = o.next
            o.next &+= 1
            o.observers[id] = observer
            return id
        }
    }

    /// Stops calling the observer `id` names. Idempotent.
    public func removeNoticeObserver(_ id: UInt64) {
        _ = noticeObservers.withLock { $0.observers.removeValue(forKey: id) }
    }

    private func run(_ command: Pending) {
        let (before, transition) = gate.withLock { g in
            assert(g.busy)
            return (g.state, g.state.applying(command.request, by: command.host))
        }
        guard transition.status.isSuccess, transition.changed else {
            return finish(command, transition, drained: nil)
        }
        guard let stateFile, before.persistThroughPowerLoss || transition.state.persistThroughPowerLoss else {
            return commit(command, transition, before: before)
        }
        let newState = transition.state
        (threadPool ?? .singleton).runIfActive(eventLoop: command.eventLoop) { () throws -> Void in
            try stateFile.save(newState)
        }.whenComplete { result in
            switch result {
            case .success:
                self.commit(command, transition, before: before)
            case .failure(let error):
                // Not durable, so not done: the state stays as it was and the host sees an error.
                self.logger.error("reservation change not persisted; command failed", metadata: ["nsid": "\(self.namespaceID)", "error": "\(error)"])
                self.finish(command, .init(status: .internalError, state: before, changed: false), drained: nil)
            }
        }
    }

    private func commit(_ command: Pending, _ transition: ReservationState.Transition, before: ReservationState) {
        let drained: EventLoopFuture<Void>? = gate.withLock { g in
            assert(g.state == before, "reservation state changed under a running command")
            g.state = transition.state
            guard transition.fences else { return nil }
            let id = g.nextBarrierID
            g.nextBarrierID &+= 1
            var waiting = 0
            for index in g.hosts.indices where g.hosts.keys[index] != command.host {
                g.hosts.values[index].draining += g.hosts.values[index].current
                g.hosts.values[index].current = 0
                g.hosts.values[index].epoch &+= 1
                if g.hosts.values[index].draining > 0 {
                    g.hosts.values[index].barriers.append(id)
                    waiting += 1
                }
            }
            guard waiting > 0 else { return nil }
            let promise = command.eventLoop.makePromise(of: Void.self)
            g.barriers[id] = Barrier(remaining: waiting, promise: promise)
            return promise.futureResult
        }
        if !transition.notices.isEmpty {
            if let handler = noticeHandler.withLock({ $0 }) {
                handler(namespaceID, transition.notices)
            }
            for observer in noticeObservers.withLock({ Array($0.observers.values) }) {
                observer(transition.notices)
            }
        }
        finish(command, transition, drained: drained)
    }

    /// Completes `command` (after `drained`, if given) and starts the next queued one: it computes
    /// from the committed state, so it need not wait for this one's drain.
    private func finish(_ command: Pending, _ transition: ReservationState.Transition, drained: EventLoopFuture<Void>?) {
        let next: Pending? = gate.withLock { g in
            guard !g.queue.isEmpty else {
                g.busy = false
                return nil
            }
            return g.queue.removeFirst()
        }
        if let next { next.eventLoop.execute { self.run(next) } }
        if let drained {
            drained.whenComplete { _ in command.promise.succeed(transition) }
        } else {
            command.promise.succeed(transition)
        }
    }
}
