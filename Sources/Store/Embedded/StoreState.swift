/// The whole embedded store as a sans-I/O state machine: the key space (``MVCCState``) and the
/// leases (``LeaseTable``). Every change returns the ``WALRecord`` to log and the events to
/// publish; ``replay(_:now:)`` applies logged records on open. Time is the caller's `now`
/// (a ``Duration`` on the store's clock since it opened).
struct StoreState: Sendable {
    var mvcc = MVCCState()
    var leases = LeaseTable()

    init() {}

    init(mvcc: MVCCState, leases: LeaseTable) {
        self.mvcc = mvcc
        self.leases = leases
    }

    var revision: Int64 { mvcc.revision }

    /// A change to log and the events it makes.
    struct Change: Sendable {
        var record: WALRecord
        var events: [WatchEvent]
    }

    /// Runs a validated transaction; the change is nil when it wrote nothing.
    mutating func transaction(_ transaction: Transaction, now: Duration) throws(StoreError) -> (TransactionResult, Change?) {
        let leases = self.leases
        let outcome = try mvcc.apply(transaction) { leases.isLive($0, now: now) }
        guard !outcome.changes.isEmpty else { return (outcome.result, nil) }
        return (outcome.result, Change(record: .transaction(revision: mvcc.revision, changes: outcome.changes), events: outcome.events))
    }

    mutating func grantLease(ttlSeconds: Int64, now: Duration) -> (Lease, Change) {
        let lease = leases.grant(ttlSeconds: ttlSeconds, now: now)
        return (lease, Change(record: .leaseGrant(revision: mvcc.revision, id: lease.id, ttlSeconds: lease.ttlSeconds), events: []))
    }

    /// Revokes a lease (or expires it): its keys are deleted in one revision.
    mutating func revokeLease(_ id: LeaseID, expired: Bool, now: Duration) throws(StoreError) -> Change {
        guard leases.leases[id] != nil, expired || leases.isLive(id, now: now) else { throw .leaseNotFound(id) }
        leases.remove(id)
        let (changes, events) = mvcc.deleteKeys(attachedTo: id)
        return Change(record: .leaseRevoke(revision: mvcc.revision, id: id, expired: expired, changes: changes), events: events)
    }

    /// Expires every lease past its deadline, one change each.
    mutating func expireLeases(now: Duration) -> [Change] {
        guard let next = leases.nextDeadline, next <= now else { return [] }
        var changes: [Change] = []
        for id in leases.expired(now: now) {
            if let change = try? revokeLease(id, expired: true, now: now) { changes.append(change) }
        }
        return changes
    }

    mutating func compact(_ revision: Int64) throws(StoreError) -> Change {
        try mvcc.compact(revision)
        return Change(record: .compaction(revision: mvcc.revision, compactRevision: revision), events: [])
    }

    /// Applies a logged record; throws ``StoreError/corrupt(_:)`` when it does not follow from
    /// the state (a log that is not this store's history).
    mutating func replay(_ record: WALRecord, now: Duration) throws(StoreError) {
        switch record {
        case .transaction(let revision, let changes):
            for case .put(_, _, let lease) in changes where lease != 0 && leases.leases[lease] == nil {
                throw .corrupt("WAL revision \(revision) puts a key with unknown lease \(lease)")
            }
            _ = try mvcc.replay(changes, revision: revision)
        case .leaseGrant(let revision, let id, let ttl):
            guard revision == mvcc.revision else { throw .corrupt("WAL lease grant at revision \(revision) after \(mvcc.revision)") }
            try leases.replayGrant(id: id, ttlSeconds: ttl, now: now)
        case .leaseRevoke(let revision, let id, _, let changes):
            guard leases.remove(id) else { throw .corrupt("WAL revokes unknown lease \(id)") }
            let attached = mvcc.leaseKeys[id] ?? []
            guard changes.count == attached.count,
                  changes.allSatisfy({ if case .delete(let key) = $0 { attached.contains(key) } else { false } }) else {
                throw .corrupt("WAL revocation of lease \(id) does not delete exactly its keys")
            }
            if changes.isEmpty {
                guard revision == mvcc.revision else { throw .corrupt("WAL lease revoke at revision \(revision) after \(mvcc.revision)") }
            } else {
                _ = try mvcc.replay(changes, revision: revision)
            }
        case .compaction(let revision, let compactRevision):
            guard revision == mvcc.revision else { throw .corrupt("WAL compaction at revision \(revision) after \(mvcc.revision)") }
            do { try mvcc.compact(compactRevision) } catch { throw .corrupt("WAL compaction at \(compactRevision): \(error)") }
        }
    }
}
