/// The embedded store's leases, sans I/O: each lease's granted TTL and deadline on the store's
/// injected clock (as a ``Duration`` since the store opened), and the next lease ID. Which keys
/// a lease holds is ``MVCCState``'s business (derived from the keys themselves).
///
/// etcd 3.4 semantics (`lease/lessor.go`): the granted TTL is at least
/// ``StoreLimits/minimumLeaseTTLSeconds``; a keep-alive moves the deadline to now + TTL; a lease
/// past its deadline is gone for keep-alive and time-to-live even before the store revokes it;
/// on restart every deadline becomes now + TTL (`Promote`).
struct LeaseTable: Sendable {
    struct Entry: Sendable, Hashable {
        var ttlSeconds: Int64
        var deadline: Duration
    }

    /// The first ID this store grants; IDs then increase and are never reused (the next ID is
    /// persisted), so a revoked lease's ID stays unknown.
    static let firstID: LeaseID = 0x0E5B_0000_0000_0001

    private(set) var leases: [LeaseID: Entry] = [:]
    private(set) var nextID: LeaseID = LeaseTable.firstID

    init() {}

    /// Rebuilds the table from a snapshot: every deadline is `now` + TTL.
    init(nextID: LeaseID, leases: [(LeaseID, Int64)], now: Duration) throws(StoreError) {
        guard nextID > 0, nextID < LeaseID.max else { throw .corrupt("snapshot next lease ID \(nextID)") }
        self.nextID = nextID
        for (id, ttl) in leases {
            guard id > 0, id < nextID, ttl > 0, ttl <= Self.maximumTTLSeconds, self.leases[id] == nil else { throw .corrupt("snapshot lease \(id) (TTL \(ttl))") }
            self.leases[id] = Entry(ttlSeconds: ttl, deadline: now + .seconds(ttl))
        }
    }

    /// etcd's `MaxLeaseTTL`: longer requests fail ("too large lease TTL").
    static let maximumTTLSeconds: Int64 = 9_000_000_000

    /// The TTL a request for `ttlSeconds` gets.
    static func grantedTTL(_ ttlSeconds: Int64) -> Int64 { max(ttlSeconds, StoreLimits.minimumLeaseTTLSeconds) }

    /// Grants a new lease expiring at `now` + TTL.
    mutating func grant(ttlSeconds: Int64, now: Duration) -> Lease {
        let id = nextID
        nextID += 1
        let ttl = Self.grantedTTL(ttlSeconds)
        leases[id] = Entry(ttlSeconds: ttl, deadline: now + .seconds(ttl))
        return Lease(id: id, ttlSeconds: ttl)
    }

    /// Replays a logged grant. Throws ``StoreError/corrupt(_:)`` for an ID already used.
    mutating func replayGrant(id: LeaseID, ttlSeconds: Int64, now: Duration) throws(StoreError) {
        guard id >= nextID, id < LeaseID.max, ttlSeconds > 0, ttlSeconds <= Self.maximumTTLSeconds else {
            throw .corrupt("WAL grants lease \(id) (TTL \(ttlSeconds)) but the next ID is \(nextID)")
        }
        nextID = id + 1
        leases[id] = Entry(ttlSeconds: ttlSeconds, deadline: now + .seconds(ttlSeconds))
    }

    /// True when the lease exists and has not passed its deadline.
    func isLive(_ id: LeaseID, now: Duration) -> Bool {
        guard let entry = leases[id] else { return false }
        return entry.deadline > now
    }

    /// Moves a live lease's deadline to `now` + TTL and returns the TTL.
    mutating func renew(_ id: LeaseID, now: Duration) throws(StoreError) -> Int64 {
        guard isLive(id, now: now), let ttl = leases[id]?.ttlSeconds else { throw .leaseNotFound(id) }
        leases[id]!.deadline = now + .seconds(ttl)
        return ttl
    }

    /// Whole seconds left (etcd truncates), nil when the lease is gone or past its deadline.
    func remaining(_ id: LeaseID, now: Duration) -> Int64? {
        guard let entry = leases[id], entry.deadline > now else { return nil }
        return (entry.deadline - now).components.seconds
    }

    /// Forgets a lease; false when there was none.
    @discardableResult
    mutating func remove(_ id: LeaseID) -> Bool { leases.removeValue(forKey: id) != nil }

    /// The leases whose deadline is at or before `now`, oldest deadline first.
    func expired(now: Duration) -> [LeaseID] {
        leases.filter { $0.value.deadline <= now }.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }.map(\.key)
    }

    /// The earliest deadline, if any lease exists.
    var nextDeadline: Duration? { leases.values.map(\.deadline).min() }
}
