/// Single-operation conveniences, every one a ``Store/transaction(_:)`` or ``Store/range(_:revision:limit:)``.
extension Store {
    /// The key's current value, or nil.
    public func get(_ key: String) async throws(StoreError) -> KeyValue? {
        try await range(.key(key), revision: nil, limit: 0).kvs.first
    }

    /// Every key under `prefix`, sorted.
    public func list(prefix: String, revision: Int64? = nil) async throws(StoreError) -> RangeResult {
        try await range(.prefix(prefix), revision: revision, limit: 0)
    }

    /// Sets `key`; returns the new store revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID = 0) async throws(StoreError) -> Int64 {
        try await transaction(Transaction(success: [.put(key: key, value: value, lease: lease)])).revision
    }

    /// Deletes every key in `range`; returns how many there were.
    @discardableResult
    public func delete(_ range: KeyRange) async throws(StoreError) -> Int {
        let result = try await transaction(Transaction(success: [.delete(range)]))
        guard case .delete(let deleted)? = result.responses.first else { return 0 }
        return deleted.count
    }

    /// Sets `key` only if it was last modified at `expectedModRevision` (0: only if absent).
    /// Returns the new revision, or nil when the guard failed (someone else changed the key).
    public func compareAndSwap(
        key: String, expectedModRevision: Int64, value: [UInt8], lease: LeaseID = 0
    ) async throws(StoreError) -> Int64? {
        let result = try await transaction(Transaction(
            compares: [.modRevision(key, is: expectedModRevision)],
            success: [.put(key: key, value: value, lease: lease)]))
        return result.succeeded ? result.revision : nil
    }
}

extension Transaction {
    /// Checks the rules every backend enforces, with etcd 3.4's (`v3rpc/key.go` checkTxnRequest,
    /// checkIntervals) and its messages: at most ``StoreLimits/maxOperationsPerTransaction``
    /// compares or operations per branch; no empty key; no key put twice, or put and deleted, in
    /// one branch ("duplicate key given in txn request"; overlapping deletes are allowed).
    /// Backends call this before doing anything, so a bad request never half-applies.
    public func validate() throws(StoreError) {
        let limit = StoreLimits.maxOperationsPerTransaction
        if compares.count > limit || success.count > limit || failure.count > limit {
            throw .invalidArgument("too many operations in txn request")
        }
        if compares.contains(where: { $0.key.isEmpty }) { throw .invalidArgument("key is not provided") }
        for branch in [success, failure] {
            var puts = Set<String>()
            var deletes: [KeyRange] = []
            for operation in branch {
                switch operation {
                case .put(let key, _, _):
                    if key.isEmpty { throw .invalidArgument("key is not provided") }
                    if !puts.insert(key).inserted { throw .invalidArgument("duplicate key given in txn request") }
                case .delete(let range):
                    if range.start.isEmpty { throw .invalidArgument("key is not provided") }
                    deletes.append(range)
                case .range(let range, _):
                    if range.start.isEmpty { throw .invalidArgument("key is not provided") }
                }
            }
            for key in puts where deletes.contains(where: { $0.contains(Array(key.utf8)) }) {
                throw .invalidArgument("duplicate key given in txn request")
            }
        }
    }
}
