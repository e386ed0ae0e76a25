import Logging
import NIOPosix
import Synchronization

/// The single-process ``Store``: etcd v3 semantics (see ``MVCCState``, ``LeaseTable``) in
/// memory, durable in a directory when given one.
///
/// **Concurrency.** One `Mutex` guards the sans-I/O state (``StoreState``, the watchers, the
/// group-commit queue); every call holds it only to compute its answer. Blocking I/O (write,
/// fdatasync, snapshots) runs on one dedicated thread the store owns (a one-thread
/// `NIOThreadPool`), never on a caller's event loop or the cooperative pool. Lease expiry runs
/// in a task on the injected clock, checking every ``Options/leaseCheckInterval``; every call
/// also expires overdue leases first, so expiry is exact with respect to the clock.
///
/// **Durability** (directory given): a change is applied in memory, queued, and answered only
/// once the I/O thread has appended it to the WAL and fdatasynced it; changes that queue while
/// a sync runs share the next one (group commit: one frame, one `write`, one `fdatasync`).
/// Reads and watch events wait the same way for whatever they saw, so nothing observable can
/// be lost in a crash. When the WAL passes ``Options/snapshotThresholdBytes`` the I/O thread
/// writes a snapshot (temporary file, fsync, rename, fsync of the directory), starts a new WAL
/// and deletes the old files. Snapshots keep every key's history since the compaction point,
/// so a restart keeps the revision, the history (old-revision reads and watches) and the
/// compaction revision; leases keep their IDs and TTLs and restart their deadlines at
/// now + TTL (etcd's `Promote`). A WAL whose last frame is torn (a crash mid-write) is
/// truncated to its last whole frame on open; any other damage is ``StoreError/corrupt(_:)``.
/// If a write or sync fails, the store fails every pending and later call with
/// ``StoreError/unavailable(_:)``: it never answers from state the disk may not have.
///
/// **In memory** (`directory: nil`): the same, minus the files; changes are visible at once.
public final class EmbeddedStore: Store {
    /// Tuning for ``open(directory:clock:options:)``.
    public struct Options: Sendable {
        /// The WAL size past which the next group commit is followed by a snapshot (default 16 MiB).
        public var snapshotThresholdBytes: Int
        /// How often the expiry task checks lease deadlines (default 500 ms of the store's clock).
        public var leaseCheckInterval: Duration
        /// Where recovery and I/O failures are reported.
        public var logger: Logger

        public init(snapshotThresholdBytes: Int = 16 << 20, leaseCheckInterval: Duration = .milliseconds(500),
                    logger: Logger = Logger(label: "halyard.store.embedded")) {
            self.snapshotThresholdBytes = snapshotThresholdBytes
            self.leaseCheckInterval = leaseCheckInterval
            self.logger = logger
        }
    }

    /// Everything the lock guards.
    private struct Core {
        var state: StoreState
        var hub: WatchHub
        var commits = CommitQueue()
        var closed = false
        var failure: StoreError?
        /// close() calls waiting for the queue to drain.
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        /// The WAL size at which the I/O thread next snapshots.
        var snapshotAt: Int
        let durable: Bool

        mutating func usable() throws(StoreError) {
            if closed { throw .closed }
            if let failure { throw failure }
        }

        /// Logs a change (durable store) or publishes it at once (in memory).
        mutating func commit(_ change: StoreState.Change) {
            if durable {
                _ = commits.append(change)
            } else {
                hub.publish(change.events, through: change.record.revision)
            }
        }

        mutating func expireLeases(now: Duration) {
            for change in state.expireLeases(now: now) { commit(change) }
        }
    }

    private let core: Mutex<Core>
    private let wal: StoreWAL?
    private let ioThread: NIOThreadPool?
    private let options: Options
    /// The store's clock, as the time since it opened.
    private let now: @Sendable () -> Duration
    private let expiryTask = Mutex<Task<Void, Never>?>(nil)

    private init(state: StoreState, wal: StoreWAL?, ioThread: NIOThreadPool?, options: Options, now: @escaping @Sendable () -> Duration) {
        self.core = Mutex(Core(state: state, hub: WatchHub(publishedRevision: state.revision),
                               snapshotAt: options.snapshotThresholdBytes, durable: wal != nil))
        self.wal = wal
        self.ioThread = ioThread
        self.options = options
        self.now = now
    }

    /// Opens a store: in memory when `directory` is nil, else durable in `directory` (created
    /// if missing; locked against a second store). Lease deadlines follow `clock`.
    /// Throws ``StoreError/corrupt(_:)`` for damaged files (beyond a torn WAL tail) and
    /// ``StoreError/unavailable(_:)`` for I/O failures or a directory in use.
    public static func open(
        directory: String?, clock: some Clock<Duration> = ContinuousClock(), options: Options = Options()
    ) async throws(StoreError) -> EmbeddedStore {
        let origin = clock.now
        let now: @Sendable () -> Duration = { origin.duration(to: clock.now) }
        let store: EmbeddedStore
        if let directory {
            let thread = NIOThreadPool(numberOfThreads: 1)
            thread.start()
            let opened: Result<(StoreWAL, StoreState, tornTail: Bool), StoreError>
            do {
                opened = try await thread.runIfActive { Result { () throws(StoreError) in try StoreWAL.open(directory: directory, now: now()) } }
            } catch {
                opened = .failure(.unavailable("cannot open \(directory): \(error)"))
            }
            switch opened {
            case .success(let (wal, state, tornTail)):
                if tornTail {
                    options.logger.warning("store WAL had a torn tail (an unacknowledged write); truncated",
                                           metadata: ["directory": "\(directory)", "revision": "\(state.revision)"])
                }
                store = EmbeddedStore(state: state, wal: wal, ioThread: thread, options: options, now: now)
            case .failure(let error):
                try? await thread.shutdownGracefully()
                throw error
            }
        } else {
            store = EmbeddedStore(state: StoreState(), wal: nil, ioThread: nil, options: options, now: now)
        }
        store.startExpiry(clock: clock, origin: origin)
        return store
    }

    deinit {
        // Only when never closed: release the thread and end the watches.
        let watchers = core.withLock { core -> [WatchHub.Continuation] in
            guard !core.closed else { return [] }
            core.closed = true
            return core.hub.removeAll()
        }
        for watcher in watchers { watcher.finish(throwing: StoreError.closed) }
        expiryTask.withLock { $0?.cancel() }
        ioThread?.shutdownGracefully { _ in }
    }

    private func startExpiry<C: Clock<Duration>>(clock: C, origin: C.Instant) {
        let interval = options.leaseCheckInterval
        let task = Task { [weak self] in
            while !Task.isCancelled {
                let checkedAt = clock.now
                guard let store = self else { return }
                store.expireLeases(now: origin.duration(to: checkedAt))
                do {
                    try await clock.sleep(until: checkedAt.advanced(by: interval), tolerance: nil)
                } catch {
                    return
                }
            }
        }
        expiryTask.withLock { $0 = task }
    }

    /// Revokes every lease past its deadline (the expiry task; calls do it too).
    func expireLeases(now time: Duration? = nil) {
        let kick = core.withLock { core -> Bool in
            guard (try? core.usable()) != nil else { return false }
            core.expireLeases(now: time ?? now())
            return core.commits.claimIO()
        }
        if kick { startIO() }
    }

    // MARK: The common path

    /// Runs `body` under the lock (after expiring overdue leases), starts I/O for whatever it
    /// queued, and answers once everything it saw is durable.
    private func perform<T: Sendable>(_ body: (inout Core, Duration) throws(StoreError) -> T) async throws(StoreError) -> T {
        let (outcome, ticket, kick) = core.withLock { core -> (Result<T, StoreError>, UInt64, Bool) in
            do throws(StoreError) {
                try core.usable()
            } catch {
                return (.failure(error), 0, false)
            }
            let time = now()
            core.expireLeases(now: time)
            let outcome: Result<T, StoreError>
            do throws(StoreError) {
                outcome = .success(try body(&core, time))
            } catch {
                outcome = .failure(error)
            }
            return (outcome, core.commits.appended, core.commits.claimIO())
        }
        if kick { startIO() }
        let value = try outcome.get()
        try await waitUntilDurable(ticket)
        return value
    }

    private func waitUntilDurable(_ ticket: UInt64) async throws(StoreError) {
        guard wal != nil, ticket > 0 else { return }
        let error: StoreError? = await withCheckedContinuation { continuation in
            let answer: StoreError?? = core.withLock { core in
                if core.commits.durable >= ticket { return .some(nil) }
                if let failure = core.failure { return .some(failure) }
                core.commits.wait(for: ticket, continuation)
                return .none
            }
            if let answer { continuation.resume(returning: answer) }
        }
        if let error { throw error }
    }

    // MARK: The I/O thread

    private func startIO() {
        guard let ioThread else { return }
        ioThread.submit { [self] state in
            guard case .active = state else {
                failIO(.unavailable("the store's I/O thread stopped"))
                return
            }
            runIO()
        }
    }

    /// Writes batches until none is pending (on the I/O thread).
    private func runIO() {
        guard let wal else { return }
        while true {
            enum Job {
                case write(CommitQueue.Batch, snapshot: StoreState?)
                case idle(drained: [CheckedContinuation<Void, Never>])
            }
            let job = core.withLock { core -> Job in
                if let batch = core.commits.takeBatch() {
                    return .write(batch, snapshot: wal.size >= core.snapshotAt ? core.state : nil)
                }
                // Whoever queues next sees `writing == false` and starts the I/O again.
                core.commits.writing = false
                defer { core.drainWaiters.removeAll() }
                return .idle(drained: core.drainWaiters)
            }
            guard case .write(let batch, let snapshot) = job else {
                if case .idle(let drained) = job { for waiter in drained { waiter.resume() } }
                return
            }
            do {
                try wal.append(WALRecord.frame(batch.records))
            } catch {
                failIO(error)
                return
            }
            let waiters = core.withLock { core in
                core.hub.publish(batch.events, through: batch.revision)
                return core.commits.completed(through: batch.last)
            }
            for waiter in waiters { waiter.resume(returning: nil) }
            if let snapshot { writeSnapshot(snapshot, wal: wal) }
        }
    }

    private func writeSnapshot(_ state: StoreState, wal: StoreWAL) {
        do throws(StoreWAL.SnapshotFailure) {
            try wal.writeSnapshot(state)
            let threshold = options.snapshotThresholdBytes
            core.withLock { $0.snapshotAt = threshold }
        } catch {
            switch error {
            case .beforeRename(let error):
                options.logger.error("store snapshot failed; keeping the WAL", metadata: ["error": "\(error)"])
                let retryAt = wal.size + options.snapshotThresholdBytes
                core.withLock { $0.snapshotAt = retryAt }
            case .afterRename(let error):
                failIO(error)
            }
        }
    }

    /// The log is broken: fail every waiter, every watch and every later call.
    private func failIO(_ error: StoreError) {
        options.logger.error("store I/O failed; the store is unavailable", metadata: ["error": "\(error)"])
        let (waiters, watchers, drained) = core.withLock { core in
            if core.failure == nil { core.failure = error }
            let drained = core.drainWaiters
            core.drainWaiters.removeAll()
            return (core.commits.failAll(), core.hub.removeAll(), drained)
        }
        for waiter in waiters { waiter.resume(returning: error) }
        for watcher in watchers { watcher.finish(throwing: error) }
        for waiter in drained { waiter.resume() }
    }

    // MARK: Store

    public func range(_ range: KeyRange, revision: Int64?, limit: Int) async throws(StoreError) -> RangeResult {
        try await perform { core, _ throws(StoreError) in try core.state.mvcc.range(range, revision: revision, limit: limit) }
    }

    public func transaction(_ transaction: Transaction) async throws(StoreError) -> TransactionResult {
        try transaction.validate()
        if RequestSize.of(transaction) > StoreLimits.maxRequestBytes { throw .invalidArgument("request is too large") }
        return try await perform { core, time throws(StoreError) in
            let (result, change) = try core.state.transaction(transaction, now: time)
            if let change { core.commit(change) }
            return result
        }
    }

    public func compact(revision: Int64) async throws(StoreError) {
        try await perform { core, _ throws(StoreError) in core.commit(try core.state.compact(revision)) }
    }

    public func grantLease(ttlSeconds: Int64) async throws(StoreError) -> Lease {
        if ttlSeconds > LeaseTable.maximumTTLSeconds { throw .invalidArgument("too large lease TTL") }
        return try await perform { core, time throws(StoreError) in
            let (lease, change) = core.state.grantLease(ttlSeconds: ttlSeconds, now: time)
            core.commit(change)
            return lease
        }
    }

    public func keepAlive(_ lease: LeaseID) async throws(StoreError) -> Int64 {
        try await perform { core, time throws(StoreError) in try core.state.leases.renew(lease, now: time) }
    }

    public func revokeLease(_ lease: LeaseID) async throws(StoreError) {
        try await perform { core, time throws(StoreError) in
            core.commit(try core.state.revokeLease(lease, expired: false, now: time))
        }
    }

    public func timeToLive(_ lease: LeaseID) async throws(StoreError) -> Int64? {
        try await perform { core, time throws(StoreError) in core.state.leases.remaining(lease, now: time) }
    }

    /// See ``Store/watch(_:fromRevision:)``. `fromRevision` nil or ≤ 0 means after the current
    /// revision; a revision still to come is waited for. History is replayed one element per
    /// revision, then live events arrive one element per group commit.
    public func watch(_ range: KeyRange, fromRevision: Int64?) -> AsyncThrowingStream<[WatchEvent], any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [WatchEvent].self, throwing: (any Error).self,
                                                                    bufferingPolicy: .unbounded)
        let failure = core.withLock { core -> StoreError? in
            do throws(StoreError) {
                try core.usable()
                let published = core.hub.publishedRevision
                let start = fromRevision.flatMap { $0 > 0 ? $0 : nil } ?? published + 1
                if start <= published || start < core.state.mvcc.compactRevision {
                    let history = try core.state.mvcc.events(in: range, from: start, through: published)
                    var index = 0
                    while index < history.count {
                        let revision = history[index].revision
                        var end = index
                        while end < history.count && history[end].revision == revision { end += 1 }
                        continuation.yield(Array(history[index..<end]))
                        index = end
                    }
                }
                let id = core.hub.add(range, nextRevision: max(start, published + 1), continuation: continuation)
                continuation.onTermination = { [weak self] _ in self?.removeWatcher(id) }
                return nil
            } catch {
                return error
            }
        }
        if let failure { continuation.finish(throwing: failure) }
        return stream
    }

    private func removeWatcher(_ id: Int) {
        let removed = core.withLock { $0.hub.remove(id) }
        _ = removed  // dropped outside the lock
    }

    /// Finishes pending writes, ends every watch with ``StoreError/closed``, stops the I/O
    /// thread and the expiry task, and releases the directory. Idempotent.
    public func close() async {
        let (first, drain) = core.withLock { core -> (Bool, Bool) in
            if core.closed { return (false, false) }
            core.closed = true
            return (true, !core.commits.isIdle && core.failure == nil)
        }
        guard first else { return }
        let task = expiryTask.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        if drain {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = core.withLock { core -> Bool in
                    if core.commits.isIdle || core.failure != nil { return true }
                    core.drainWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }
        let watchers = core.withLock { $0.hub.removeAll() }
        for watcher in watchers { watcher.finish(throwing: StoreError.closed) }
        try? await ioThread?.shutdownGracefully()
        wal?.close()
    }

    // MARK: For tests

    /// How many watches are registered.
    var watcherCount: Int { core.withLock { $0.hub.count } }

    /// How many fdatasyncs the WAL has made (0 in memory).
    var walSyncCount: Int { wal?.syncCount ?? 0 }
}
