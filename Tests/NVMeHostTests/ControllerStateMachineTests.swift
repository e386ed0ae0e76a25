import NIOCore
import NVMe
@testable import NVMeHost
import Synchronization
import Testing

/// The session's state machine driven directly, event by event: no sockets, no timers.
@Suite("Controller session state machine")
struct ControllerStateMachineTests {
    static let address = TransportAddress(host: "192.0.2.1", port: 4420)

    /// The machine behind a lock, resuming waiters the way the session does.
    final class Box: Sendable {
        let machine: Mutex<ControllerStateMachine>
        init(_ options: ControllerSessionOptions) {
            machine = Mutex(ControllerStateMachine(address: ControllerStateMachineTests.address, options: options))
        }
        @discardableResult
        func handle(_ event: ControllerStateMachine.Event) -> (published: [ControllerState], attempt: (UInt64, TimeAmount)?,
                                                               run: UInt64?, timers: Bool, finished: Int) {
            let a = machine.withLock { $0.handle(event) }
            for (w, c) in a.resume { w.resume(returning: c) }
            for (w, e) in a.fail { w.resume(throwing: e) }
            for (w, r) in a.initial { w.resume(with: r) }
            for s in a.finish { s.finish() }
            return (a.published, a.scheduleAttempt.map { ($0.episode, $0.delay) }, a.runAttempt, a.armTimers != nil, a.finish.count)
        }
        var status: ControllerSessionStatus { machine.withLock { $0.status } }
        /// Queues a waiter and returns once it is in the machine.
        func waiter(id: UInt64) async -> Task<Void, any Error> {
            let t = Task {
                _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<NVMeController, any Error>) in
                    self.handle(.enqueue(id: id, c))
                }
            }
            while status.queuedIO == 0 { await Task.yield() }
            return t
        }
    }

    static func options(fastFail: TimeAmount? = nil, loss: TimeAmount? = .seconds(10)) -> ControllerSessionOptions {
        ControllerSessionOptions(reconnectDelay: .seconds(1), controllerLossTimeout: loss, fastIOFailTimeout: fastFail)
    }

    @Test("start: connecting, first attempt at once, timers armed; stale events are ignored")
    func startAndStaleEvents() {
        let box = Box(Self.options(fastFail: .seconds(3)))
        let a = box.handle(.start)
        #expect(a.published == [.connecting])
        #expect(a.attempt?.1 == .zero && a.timers)
        let episode = a.attempt!.0
        #expect(box.handle(.start).published.isEmpty, "start is idempotent")
        #expect(box.handle(.attemptDue(episode: episode + 7)).run == nil, "another episode's timer")
        #expect(box.handle(.attemptDue(episode: episode)).run == episode)
        #expect(box.handle(.attemptDue(episode: episode)).run == nil, "one attempt at a time")
        // A failed attempt schedules the next after reconnectDelay.
        let failed = box.handle(.attemptFailed(episode: episode, NVMeHostError.transportClosed("refused"), fatal: false))
        #expect(failed.attempt?.0 == episode && failed.attempt?.1 == .seconds(1))
        #expect(box.status.reconnectAttempts == 1 && box.status.state == .connecting)
        #expect(box.handle(.lossExpired(episode: episode + 1)).published.isEmpty)
    }

    @Test("fast-fail fails queued I/O and new I/O, the session stays connecting")
    func fastFail() async throws {
        let box = Box(Self.options(fastFail: .seconds(3)))
        let episode = box.handle(.start).attempt!.0
        let queued = await box.waiter(id: 1)
        box.handle(.fastFailExpired(episode: episode))
        await #expect(throws: ControllerSessionError.fastFailed(Self.address)) { try await queued.value }
        #expect(box.status.state == .connecting && box.status.fastFailed && !box.status.isAvailable)
        let late = Task {
            _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<NVMeController, any Error>) in
                box.handle(.enqueue(id: 2, c))
            }
        }
        await #expect(throws: ControllerSessionError.fastFailed(Self.address)) { try await late.value }
    }

    @Test("controller loss timeout: deleting then deleted, queued I/O and state streams end")
    func loss() async throws {
        let box = Box(Self.options())
        let episode = box.handle(.start).attempt!.0
        let (stream, continuation) = AsyncStream.makeStream(of: ControllerState.self)
        box.machine.withLock { $0.subscribers[1] = continuation }
        let queued = await box.waiter(id: 1)
        let a = box.handle(.lossExpired(episode: episode))
        #expect(a.published == [.deleting, .deleted])
        #expect(a.finished == 1)
        await #expect(throws: ControllerSessionError.controllerLost(Self.address)) { try await queued.value }
        var seen: [ControllerState] = []
        for await s in stream { seen.append(s) }
        #expect(seen.isEmpty, "the stream ended (states are yielded by the session, not the machine)")
        #expect(box.status.state == .deleted)
        // Nothing moves a deleted session.
        #expect(box.handle(.start).published.isEmpty)
        #expect(box.handle(.close).published.isEmpty)
    }

    @Test("a refused reconnect deletes the session; close while connecting deletes at once")
    func refusedAndClose() {
        let box = Box(Self.options(loss: nil))
        let episode = box.handle(.start).attempt!.0
        box.handle(.attemptDue(episode: episode))
        let a = box.handle(.attemptFailed(episode: episode, ControllerSessionError.refused("NGUID differs"), fatal: true))
        #expect(a.published == [.deleting, .deleted] && a.attempt == nil)

        let other = Box(Self.options(loss: nil))
        other.handle(.start)
        #expect(other.handle(.close).published == [.deleting, .deleted])
    }

    @Test("cancelling a queued waiter removes it, even when the cancel comes first")
    func cancel() async throws {
        let box = Box(Self.options())
        box.handle(.start)
        let queued = await box.waiter(id: 1)
        box.handle(.cancel(id: 1))
        await #expect(throws: CancellationError.self) { try await queued.value }
        box.handle(.cancel(id: 2))
        let early = Task {
            _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<NVMeController, any Error>) in
                box.handle(.enqueue(id: 2, c))
            }
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        #expect(box.status.queuedIO == 0)
    }
}
