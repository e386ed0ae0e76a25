/// One version of one key in ``MVCCState``'s history: a put, or the tombstone of a delete.
struct KeyVersion: Sendable, Hashable {
    /// The revision that wrote this version (the key's modRevision).
    var revision: Int64
    /// The operation's position inside its transaction (etcd's sub-revision): orders the events
    /// of one revision.
    var sub: Int32
    var isTombstone: Bool
    var value: [UInt8]
    /// 0 for a tombstone.
    var createRevision: Int64
    /// 0 for a tombstone.
    var version: Int64
    /// 0 for a tombstone.
    var lease: LeaseID
}

/// One write, as the WAL stores it: the outcome of a transaction or a lease revocation, not the
/// request (compares and reads are not replayed).
enum KeyChange: Sendable, Hashable {
    case put(key: [UInt8], value: [UInt8], lease: LeaseID)
    case delete(key: [UInt8])
}

/// The embedded store's multi-version key space, sans I/O: applies transactions and lease
/// revocations (each writing one revision), answers reads at any revision since the compaction
/// point, replays history for watches, and compacts. Semantics are etcd 3.4's `mvcc` package:
///
/// - The revision advances by one per transaction that writes; one that only reads, or deletes
///   nothing, leaves it.
/// - A key's `createRevision` is the revision of the put that created it after its last delete,
///   `version` counts its puts since then (a delete resets it), `modRevision` is its last write.
/// - An absent key compares as version, createRevision, modRevision and lease 0; a value compare
///   on it is false.
/// - Ranges are sorted by key bytes.
/// - After compacting at `C`, reads at `C` or later still work and events at `C` or later still
///   replay; anything earlier is ``StoreError/compacted(_:)``.
///
/// The history of every key since the compaction point is kept: each key's versions in
/// revision order (a put, or a tombstone), plus, for each key, the last put before the
/// compaction point (what a read at the compaction revision sees).
struct MVCCState: Sendable {
    /// The current revision: the last one written.
    private(set) var revision: Int64 = 0
    /// Reads and watches below it fail with ``StoreError/compacted(_:)``; 0 before any compaction.
    private(set) var compactRevision: Int64 = 0
    /// Every key that has history, sorted by bytes.
    private(set) var sortedKeys: [[UInt8]] = []
    /// Each key's versions, oldest first (never empty).
    private(set) var histories: [[UInt8]: [KeyVersion]] = [:]
    /// The live keys attached to each lease.
    private(set) var leaseKeys: [LeaseID: Set<[UInt8]>] = [:]

    init() {}

    /// Rebuilds a state from a snapshot's parts, checking they are consistent (keys sorted and
    /// unique, histories ordered and within the revision bounds).
    init(revision: Int64, compactRevision: Int64, histories: [([UInt8], [KeyVersion])]) throws(StoreError) {
        guard revision >= 0, compactRevision >= 0, compactRevision <= revision else {
            throw .corrupt("snapshot revision \(revision) / compaction revision \(compactRevision)")
        }
        self.revision = revision
        self.compactRevision = compactRevision
        sortedKeys.reserveCapacity(histories.count)
        for (key, versions) in histories {
            if let last = sortedKeys.last, !last.lexicographicallyPrecedes(key) {
                throw .corrupt("snapshot keys out of order")
            }
            guard !key.isEmpty, !versions.isEmpty else { throw .corrupt("snapshot has an empty key or history") }
            var previous: (Int64, Int32) = (-1, -1)
            for version in versions {
                guard version.revision > 0, version.revision <= revision, (version.revision, version.sub) > previous else {
                    throw .corrupt("snapshot history of a key out of order")
                }
                previous = (version.revision, version.sub)
            }
            sortedKeys.append(key)
            self.histories[key] = versions
            if let last = versions.last, !last.isTombstone, last.lease != 0 {
                leaseKeys[last.lease, default: []].insert(key)
            }
        }
    }

    // MARK: Reads

    /// The key's version visible at `revision` (nil: absent or deleted then).
    func visible(_ key: [UInt8], at revision: Int64) -> KeyVersion? {
        guard let versions = histories[key] else { return nil }
        // The last version written at or before `revision`.
        var low = 0, high = versions.count
        while low < high {
            let mid = (low + high) / 2
            if versions[mid].revision <= revision { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let version = versions[low - 1]
        return version.isTombstone ? nil : version
    }

    /// The key's current version (nil: absent).
    func current(_ key: [UInt8]) -> KeyVersion? {
        guard let last = histories[key]?.last, !last.isTombstone else { return nil }
        return last
    }

    static func keyValue(_ key: [UInt8], _ version: KeyVersion) -> KeyValue {
        KeyValue(key: String(decoding: key, as: UTF8.self), value: version.value, createRevision: version.createRevision,
                 modRevision: version.revision, version: version.version, lease: version.lease)
    }

    /// The index of the first key not below `key`.
    private func lowerBound(_ key: [UInt8]) -> Int {
        var low = 0, high = sortedKeys.count
        while low < high {
            let mid = (low + high) / 2
            if sortedKeys[mid].lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Calls `body` with every key with history in `range`, in byte order.
    private func forEachKey(in range: KeyRange, _ body: ([UInt8]) -> Void) {
        guard let end = range.end else {
            if histories[range.start] != nil { body(range.start) }
            return
        }
        var index = lowerBound(range.start)
        while index < sortedKeys.count {
            let key = sortedKeys[index]
            if !end.isEmpty && !key.lexicographicallyPrecedes(end) { break }
            body(key)
            index += 1
        }
    }

    /// Checks `revision` against the compaction point and the current revision; nil or ≤ 0 means
    /// the current revision.
    func readRevision(_ revision: Int64?) throws(StoreError) -> Int64 {
        guard let revision, revision > 0 else { return self.revision }
        if revision > self.revision { throw .futureRevision(revision) }
        if revision < compactRevision { throw .compacted(compactRevision) }
        return revision
    }

    /// The keys of `range` at `revision` (see ``readRevision(_:)``), at most `limit` (0: all).
    func range(_ range: KeyRange, revision: Int64?, limit: Int) throws(StoreError) -> RangeResult {
        let at = try readRevision(revision)
        return read(range, at: at, limit: limit, headerRevision: self.revision)
    }

    private func read(_ range: KeyRange, at revision: Int64, limit: Int, headerRevision: Int64) -> RangeResult {
        var kvs: [KeyValue] = []
        var count: Int64 = 0
        forEachKey(in: range) { key in
            guard let version = visible(key, at: revision) else { return }
            count += 1
            if limit <= 0 || kvs.count < limit { kvs.append(Self.keyValue(key, version)) }
        }
        return RangeResult(kvs: kvs, more: Int64(kvs.count) < count, count: count, revision: headerRevision)
    }

    /// One compare against the current state (etcd `applierV3backend` compareKV).
    func holds(_ compare: Compare) -> Bool {
        let current = current(Array(compare.key.utf8))
        func relate<T: Comparable>(_ field: T, _ target: T) -> Bool {
            switch compare.relation {
            case .equal: field == target
            case .notEqual: field != target
            case .greater: field > target
            case .less: field < target
            }
        }
        switch compare.target {
        case .version(let target): return relate(current?.version ?? 0, target)
        case .createRevision(let target): return relate(current?.createRevision ?? 0, target)
        case .modRevision(let target): return relate(current?.revision ?? 0, target)
        case .lease(let target): return relate(current?.lease ?? 0, target)
        case .value(let target):
            guard let current else { return false }
            switch compare.relation {
            case .equal: return current.value == target
            case .notEqual: return current.value != target
            case .greater: return target.lexicographicallyPrecedes(current.value)
            case .less: return current.value.lexicographicallyPrecedes(target)
            }
        }
    }

    // MARK: Writes

    /// What a transaction did: the caller's answer, the changes to log, the events to publish.
    struct Outcome: Sendable {
        var result: TransactionResult
        var changes: [KeyChange]
        var events: [WatchEvent]
    }

    /// Applies a validated transaction. Throws ``StoreError/leaseNotFound(_:)`` (and changes
    /// nothing) when a put of the branch that runs names a lease `leaseExists` rejects.
    mutating func apply(_ transaction: Transaction, leaseExists: (LeaseID) -> Bool) throws(StoreError) -> Outcome {
        let succeeded = transaction.compares.allSatisfy(holds)
        let operations = succeeded ? transaction.success : transaction.failure
        for case .put(_, _, let lease) in operations where lease != 0 && !leaseExists(lease) {
            throw .leaseNotFound(lease)
        }
        let next = revision + 1
        var changes: [KeyChange] = []
        var events: [WatchEvent] = []
        var responses: [TransactionResponse] = []
        responses.reserveCapacity(operations.count)
        for operation in operations {
            switch operation {
            case .put(let key, let value, let lease):
                let change = KeyChange.put(key: Array(key.utf8), value: value, lease: lease)
                let event = write(change, revision: next, sub: Int32(changes.count))
                changes.append(change)
                events.append(event)
                responses.append(.put(previous: event.previous))
            case .delete(let range):
                var deleted: [KeyValue] = []
                for key in liveKeys(in: range) {
                    let change = KeyChange.delete(key: key)
                    let event = write(change, revision: next, sub: Int32(changes.count))
                    changes.append(change)
                    events.append(event)
                    if let previous = event.previous { deleted.append(previous) }
                }
                responses.append(.delete(deleted: deleted))
            case .range(let range, let limit):
                // Reads see the transaction's earlier writes (etcd storeTxnWrite.Range).
                let at = changes.isEmpty ? revision : next
                responses.append(.range(read(range, at: at, limit: limit, headerRevision: at)))
            }
        }
        if !changes.isEmpty { revision = next }
        return Outcome(result: TransactionResult(succeeded: succeeded, revision: revision, responses: responses),
                       changes: changes, events: events)
    }

    /// Deletes every key attached to `lease` in one revision (none written when there are none).
    mutating func deleteKeys(attachedTo lease: LeaseID) -> (changes: [KeyChange], events: [WatchEvent]) {
        let keys = (leaseKeys[lease] ?? []).sorted { $0.lexicographicallyPrecedes($1) }
        guard !keys.isEmpty else { return ([], []) }
        let next = revision + 1
        var changes: [KeyChange] = []
        var events: [WatchEvent] = []
        for key in keys {
            let change = KeyChange.delete(key: key)
            events.append(write(change, revision: next, sub: Int32(changes.count)))
            changes.append(change)
        }
        revision = next
        return (changes, events)
    }

    /// Replays logged changes as revision `revision` (which must be the next one). Throws
    /// ``StoreError/corrupt(_:)`` when they do not fit the state (an inconsistent log).
    mutating func replay(_ changes: [KeyChange], revision: Int64) throws(StoreError) -> [WatchEvent] {
        guard revision == self.revision + 1, !changes.isEmpty else {
            throw .corrupt("WAL record for revision \(revision) after revision \(self.revision)")
        }
        var events: [WatchEvent] = []
        for (sub, change) in changes.enumerated() {
            switch change {
            case .put(let key, _, _):
                guard !key.isEmpty, histories[key]?.last?.revision != revision else {
                    throw .corrupt("WAL record for revision \(revision) writes a key twice")
                }
            case .delete(let key):
                guard let last = histories[key]?.last, !last.isTombstone, last.revision != revision else {
                    throw .corrupt("WAL record for revision \(revision) deletes an absent key")
                }
            }
            events.append(write(change, revision: revision, sub: Int32(sub)))
        }
        self.revision = revision
        return events
    }

    /// The keys in `range` that currently exist.
    private func liveKeys(in range: KeyRange) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        forEachKey(in: range) { key in
            if current(key) != nil { keys.append(key) }
        }
        return keys
    }

    /// Appends one version (a delete only of a live key) and returns its event.
    private mutating func write(_ change: KeyChange, revision: Int64, sub: Int32) -> WatchEvent {
        switch change {
        case .put(let key, let value, let lease):
            let previous = current(key)
            let version = KeyVersion(revision: revision, sub: sub, isTombstone: false, value: value,
                                     createRevision: previous?.createRevision ?? revision,
                                     version: (previous?.version ?? 0) + 1, lease: lease)
            append(version, to: key)
            if let previous, previous.lease != 0 { detach(key, from: previous.lease) }
            if lease != 0 { leaseKeys[lease, default: []].insert(key) }
            return WatchEvent(kind: .put, kv: Self.keyValue(key, version), previous: previous.map { Self.keyValue(key, $0) })
        case .delete(let key):
            let previous = current(key)
            let tombstone = KeyVersion(revision: revision, sub: sub, isTombstone: true, value: [],
                                       createRevision: 0, version: 0, lease: 0)
            append(tombstone, to: key)
            if let previous, previous.lease != 0 { detach(key, from: previous.lease) }
            return WatchEvent(kind: .delete, kv: Self.keyValue(key, tombstone), previous: previous.map { Self.keyValue(key, $0) })
        }
    }

    private mutating func append(_ version: KeyVersion, to key: [UInt8]) {
        if histories[key] == nil {
            sortedKeys.insert(key, at: lowerBound(key))
            histories[key] = [version]
        } else {
            histories[key]!.append(version)
        }
    }

    private mutating func detach(_ key: [UInt8], from lease: LeaseID) {
        leaseKeys[lease]?.remove(key)
        if leaseKeys[lease]?.isEmpty == true { leaseKeys[lease] = nil }
    }

    // MARK: Compaction and history

    /// Discards the history before `revision` (etcd semantics: `revision` above the current one
    /// → futureRevision; at or below the compaction point → compacted).
    mutating func compact(_ revision: Int64) throws(StoreError) {
        if revision > self.revision { throw .futureRevision(revision) }
        if revision <= compactRevision { throw .compacted(compactRevision) }
        compactRevision = revision
        var emptied = false
        for key in sortedKeys {
            let versions = histories[key]!
            // Versions from `revision` on stay; of the older ones only the last, if it is a put.
            let firstKept = versions.firstIndex(where: { $0.revision >= revision }) ?? versions.count
            guard firstKept > 0 else { continue }
            let lastOld = versions[firstKept - 1]
            let dropFrom = lastOld.isTombstone ? firstKept : firstKept - 1
            guard dropFrom > 0 else { continue }
            if dropFrom == versions.count {
                histories[key] = nil
                emptied = true
            } else {
                histories[key] = Array(versions[dropFrom...])
            }
        }
        if emptied { sortedKeys.removeAll { histories[$0] == nil } }
    }

    /// The events on `range` with revisions in `from...through`, in revision order; throws
    /// ``StoreError/compacted(_:)`` when `from` is below the compaction point.
    func events(in range: KeyRange, from: Int64, through: Int64) throws(StoreError) -> [WatchEvent] {
        if from < compactRevision { throw .compacted(compactRevision) }
        guard from <= through else { return [] }
        var found: [(Int64, Int32, WatchEvent)] = []
        forEachKey(in: range) { key in
            let versions = histories[key]!
            for (index, version) in versions.enumerated() where version.revision >= from && version.revision <= through {
                let before = index > 0 ? versions[index - 1] : nil
                let previous = before.flatMap { $0.isTombstone ? nil : Self.keyValue(key, $0) }
                let event = WatchEvent(kind: version.isTombstone ? .delete : .put, kv: Self.keyValue(key, version), previous: previous)
                found.append((version.revision, version.sub, event))
            }
        }
        found.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        return found.map(\.2)
    }

}
