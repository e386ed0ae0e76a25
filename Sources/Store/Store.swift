/// A consistent key-value store with etcd v3 semantics: a single, monotonically increasing
/// revision that every writing transaction advances by one; multi-version reads at a revision;
/// compare-and-swap transactions; leases that expire and delete the keys attached to them; and
/// watches that replay history from any revision not yet compacted.
///
/// Two backends implement it: `EtcdStore` (module StoreEtcd, a real etcd v3 server: every
/// multi-process deployment) and ``EmbeddedStore`` (one process, durable in a directory). One
/// conformance suite (Tests/StoreTests) runs against both, so the embedded backend never grows
/// semantics etcd lacks.
///
/// Limits are etcd's: at most ``StoreLimits/maxOperationsPerTransaction`` operations per
/// transaction and ``StoreLimits/maxRequestBytes`` per request; a key may appear in at most one
/// writing operation of a transaction branch.
public protocol Store: Sendable {
    /// Reads the keys in `range` at `revision` (nil: the current revision), sorted by key,
    /// at most `limit` of them (0: no limit).
    /// Throws ``StoreError/compacted(_:)`` below the compaction point and
    /// ``StoreError/futureRevision(_:)`` above the current revision.
    func range(_ range: KeyRange, revision: Int64?, limit: Int) async throws(StoreError) -> RangeResult

    /// Runs `transaction` atomically: when every compare holds, its `success` operations, else its
    /// `failure` operations. A transaction that writes advances the revision by exactly one;
    /// one that writes nothing (only reads, or deletes of absent keys) does not.
    func transaction(_ transaction: Transaction) async throws(StoreError) -> TransactionResult

    /// Discards the history before `revision`: reads and watches below it fail with
    /// ``StoreError/compacted(_:)`` afterwards.
    func compact(revision: Int64) async throws(StoreError)

    /// Grants a lease of at least `ttlSeconds` (the backend may round up: etcd's minimum is 2 s).
    func grantLease(ttlSeconds: Int64) async throws(StoreError) -> Lease

    /// Renews the lease to its full TTL and returns that TTL in seconds.
    /// Throws ``StoreError/leaseNotFound(_:)`` for an expired, revoked or unknown lease.
    func keepAlive(_ lease: LeaseID) async throws(StoreError) -> Int64

    /// Revokes the lease at once, deleting every key attached to it (one revision).
    func revokeLease(_ lease: LeaseID) async throws(StoreError)

    /// The lease's remaining time to live in seconds, or nil when it does not exist (any more).
    func timeToLive(_ lease: LeaseID) async throws(StoreError) -> Int64?

    /// Watches `range` from `fromRevision` (nil: changes after now). Each element is the events
    /// of one or more revisions in revision order; the stream ends with
    /// ``StoreError/compacted(_:)`` when `fromRevision` is below the compaction point, and with
    /// ``StoreError/unavailable(_:)`` or ``StoreError/closed`` when the backend goes away.
    /// Cancelling the consuming task cancels the watch.
    func watch(_ range: KeyRange, fromRevision: Int64?) -> AsyncThrowingStream<[WatchEvent], any Error>

    /// Closes the store; later calls throw ``StoreError/closed``. Idempotent.
    func close() async
}

/// The limits every backend enforces (etcd 3.4's defaults: `embed/config.go`).
public enum StoreLimits {
    /// etcd's `--max-txn-ops` default.
    public static let maxOperationsPerTransaction = 128
    /// etcd's `--max-request-bytes` default (1.5 MiB).
    public static let maxRequestBytes = 1_572_864
    /// etcd's minimum lease TTL with its default heartbeat and election timeout.
    public static let minimumLeaseTTLSeconds: Int64 = 2
}
