/// The embedded store's group commit, sans I/O: changes applied in memory wait here until the
/// I/O thread has written and fdatasynced them; callers wait for their ticket.
///
/// Every appended change gets the next sequence number; a caller's ticket is the last sequence
/// number appended when it computed its answer (its own change, or whatever it read), and it is
/// answered once ``durable`` reaches it. So no caller, reader or watcher ever sees a change
/// that could still be lost. The I/O thread takes everything pending as one batch (one frame,
/// one `write`, one `fdatasync`), so changes that arrive while a sync runs share the next one.
struct CommitQueue {
    typealias Waiter = CheckedContinuation<StoreError?, Never>

    /// What the I/O thread writes at once.
    struct Batch: Sendable {
        var records: [WALRecord]
        var events: [WatchEvent]
        /// The store revision after the batch.
        var revision: Int64
        /// The sequence number of its last change.
        var last: UInt64
    }

    private var records: [WALRecord] = []
    private var events: [WatchEvent] = []
    private(set) var appended: UInt64 = 0
    private(set) var durable: UInt64 = 0
    /// True while the I/O thread owns a batch (or is about to take one).
    var writing = false
    private var waiters: [(ticket: UInt64, continuation: Waiter)] = []

    var isIdle: Bool { !writing && records.isEmpty }

    /// True when changes are pending and no I/O is under way: the caller must start it (and
    /// this marks it started).
    mutating func claimIO() -> Bool {
        guard !writing, !records.isEmpty else { return false }
        writing = true
        return true
    }

    /// Queues a change; returns its sequence number.
    mutating func append(_ change: StoreState.Change) -> UInt64 {
        records.append(change.record)
        events += change.events
        appended += 1
        return appended
    }

    /// Everything pending, or nil when nothing is.
    mutating func takeBatch() -> Batch? {
        guard let last = records.last else { return nil }
        defer {
            records.removeAll(keepingCapacity: true)
            events.removeAll(keepingCapacity: true)
        }
        return Batch(records: records, events: events, revision: last.revision, last: appended)
    }

    /// Registers a caller waiting for `ticket`.
    mutating func wait(for ticket: UInt64, _ continuation: Waiter) {
        waiters.append((ticket, continuation))
    }

    /// Marks everything up to `last` durable; returns the waiters to resume.
    mutating func completed(through last: UInt64) -> [Waiter] {
        durable = max(durable, last)
        var ready: [Waiter] = []
        waiters.removeAll { waiter in
            guard waiter.ticket <= durable else { return false }
            ready.append(waiter.continuation)
            return true
        }
        return ready
    }

    /// Drops everything pending (the log failed); returns every waiter to resume with the error.
    mutating func failAll() -> [Waiter] {
        records.removeAll()
        events.removeAll()
        writing = false
        defer { waiters.removeAll() }
        return waiters.map(\.continuation)
    }
}
