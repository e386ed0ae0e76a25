import Foundation
import Store
import Testing

#if canImport(StoreEtcd)
import StoreEtcd
#endif

/// The backends the conformance suite runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case embedded
    case etcd
    var testDescription: String { rawValue }
}

/// A store under test, with the means to restart it (for the durability case).
final class StoreUnderTest: @unchecked Sendable {
    let backend: Backend
    private(set) var store: any Store
    private let directory: String?      // embedded
    private let server: EtcdServer?     // a private etcd
    private let ownsServer: Bool

    init(backend: Backend, store: any Store, directory: String?, server: EtcdServer?, ownsServer: Bool) {
        self.backend = backend
        self.store = store
        self.directory = directory
        self.server = server
        self.ownsServer = ownsServer
    }

    /// Opens the backend: `isolated` gives a store nobody else uses (a private etcd server).
    static func open(_ backend: Backend, isolated: Bool) async throws -> StoreUnderTest? {
        switch backend {
        case .embedded:
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("halyard-store-\(UUID().uuidString.prefix(8))").path
            let store = try await EmbeddedStore.open(directory: directory)
            return StoreUnderTest(backend: backend, store: store, directory: directory, server: nil, ownsServer: false)
        case .etcd:
            #if canImport(StoreEtcd)
            guard EtcdFixture.available else { EtcdFixture.unavailable(); return nil }
            let server = isolated ? try await EtcdServer.start() : await EtcdFixture.shared()
            guard let server else { EtcdFixture.unavailable("etcd could not be started"); return nil }
            return StoreUnderTest(backend: backend, store: try EtcdStore(Self.etcdConfiguration(server.endpoint)),
                                  directory: nil, server: server, ownsServer: isolated)
            #else
            print("skipped: StoreEtcd is not in this build (HALYARD_DATA_PLANE_ONLY)")
            return nil
            #endif
        }
    }

    #if canImport(StoreEtcd)
    /// The suite checks semantics, not latency: a deadline generous enough for a loaded 2-core CI
    /// machine (etcd fsyncs every write) — the 5 s default is tested in EtcdStoreTests.
    static func etcdConfiguration(_ endpoint: String) -> EtcdStore.Configuration {
        EtcdStore.Configuration(endpoint: endpoint, callTimeout: .seconds(30))
    }
    #endif

    /// Closes the store (and the process, for a private etcd) and opens it again on the same data.
    func restart() async throws {
        await store.close()
        switch backend {
        case .embedded:
            store = try await EmbeddedStore.open(directory: directory)
        case .etcd:
            #if canImport(StoreEtcd)
            guard let server else { return }
            try await server.restart()
            store = try EtcdStore(Self.etcdConfiguration(server.endpoint))
            #endif
        }
    }

    func close() async {
        await store.close()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        if ownsServer { await server?.destroy() }
    }
}

/// Runs `body` against a fresh store of `backend` with a key prefix no other test uses.
func withStore(
    _ backend: Backend, isolated: Bool = false,
    _ body: (StoreUnderTest, String) async throws -> Void
) async throws {
    guard let subject = try await StoreUnderTest.open(backend, isolated: isolated) else { return }
    do {
        try await body(subject, "/conformance/\(UUID().uuidString.prefix(8))/")
    } catch {
        await subject.close()
        throw error
    }
    await subject.close()
}

/// Collects watch events until `count` arrived (or `timeout` passed: then what arrived so far).
func collect(
    _ stream: AsyncThrowingStream<[WatchEvent], any Error>, count: Int, timeout: Duration = .seconds(10)
) async throws -> [WatchEvent] {
    try await withThrowingTaskGroup(of: [WatchEvent]?.self) { group in
        group.addTask {
            var events: [WatchEvent] = []
            for try await batch in stream {
                events += batch
                if events.count >= count { break }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        return first ?? []
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// One conformance suite for every Store backend (etcd v3 semantics). Each case states the etcd
/// behaviour it pins down; the embedded backend must match the real etcd server exactly. Cases
/// that check exact revision numbers run on a private store (`isolated`: a private etcd server),
/// since the revision is global and other tests write concurrently.
@Suite("Store conformance", .timeLimit(.minutes(2)))
struct StoreConformanceTests {
    @Test("put/get; every writing transaction advances the revision by one", arguments: Backend.allCases)
    func putGetAndRevision(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let r1 = try await store.put(p + "a", bytes("1"))
            let r2 = try await store.put(p + "b", bytes("2"))
            #expect(r2 == r1 + 1)
            let a = try #require(try await store.get(p + "a"))
            #expect(a.string == "1")
            #expect(a.modRevision == r1)
            let read = try await store.range(.key(p + "b"), revision: nil, limit: 0)
            #expect(read.revision >= r2)
            #expect(read.kvs.map(\.string) == ["2"])
            #expect(try await store.get(p + "missing") == nil)
        }
    }

    @Test("createRevision, modRevision and version across put, put, delete, put", arguments: Backend.allCases)
    func versionBookkeeping(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let k = p + "k"
            let r1 = try await store.put(k, bytes("a"))
            let r2 = try await store.put(k, bytes("b"))
            var kv = try #require(try await store.get(k))
            #expect((kv.createRevision, kv.modRevision, kv.version) == (r1, r2, 2))
            let deleted = try await store.delete(.key(k))
            #expect(deleted == 1)
            let r4 = try await store.put(k, bytes("c"))
            kv = try #require(try await store.get(k))
            #expect((kv.createRevision, kv.modRevision, kv.version) == (r4, r4, 1))
            #expect(r4 == r2 + 2)  // the delete took r2+1
        }
    }

    @Test("prefix ranges are sorted, exclusive, limited, and readable at an old revision", arguments: Backend.allCases)
    func prefixRanges(_ backend: Backend) async throws {
        try await withStore(backend) { subject, p in
            let store = subject.store
            for key in ["a/3", "a/1", "a0", "a/2", "a", "b/1"] { try await store.put(p + key, bytes(key)) }
            let all = try await store.range(.prefix(p + "a/"), revision: nil, limit: 0)
            #expect(all.kvs.map(\.key) == ["a/1", "a/2", "a/3"].map { p + $0 })
            #expect(all.count == 3 && !all.more)
            let limited = try await store.range(.prefix(p + "a/"), revision: nil, limit: 2)
            #expect(limited.kvs.map(\.key) == ["a/1", "a/2"].map { p + $0 })
            #expect(limited.more && limited.count == 3)
            let between = try await store.range(.between(p + "a/2", p + "b"), revision: nil, limit: 0)
            #expect(between.kvs.map(\.key) == ["a/2", "a/3", "a0"].map { p + $0 })

            let old = try await store.put(p + "a/1", bytes("new"))
            try await store.delete(.key(p + "a/2"))
            let before = try await store.range(.prefix(p + "a/"), revision: old - 1, limit: 0)
            #expect(before.kvs.map(\.string) == ["a/1", "a/2", "a/3"])
            let now = try await store.range(.prefix(p + "a/"), revision: nil, limit: 0)
            #expect(now.kvs.map(\.string) == ["new", "a/3"])
            await #expect(throws: StoreError.futureRevision(now.revision + 100)) {
                _ = try await store.range(.prefix(p), revision: now.revision + 100, limit: 0)
            }
        }
    }

    @Test("transactions: CAS on modRevision, absent keys, AND of compares, failure branch", arguments: Backend.allCases)
    func compareAndSwap(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let k = p + "cas"
            // Absent key: modRevision 0, version 0; a value compare on it is false.
            #expect(try await store.compareAndSwap(key: k, expectedModRevision: 0, value: bytes("v1")) != nil)
            #expect(try await store.compareAndSwap(key: k, expectedModRevision: 0, value: bytes("v2")) == nil)
            let kv = try #require(try await store.get(k))
            #expect(try await store.compareAndSwap(key: k, expectedModRevision: kv.modRevision, value: bytes("v2")) != nil)
            #expect(try await store.get(k)?.string == "v2")

            let absentValue = try await store.transaction(Transaction(
                compares: [Compare(key: p + "nothing", .equal, .value([]))], success: [.put(p + "x", bytes("1"))]))
            #expect(!absentValue.succeeded)

            // AND: one false compare sends the transaction to its failure branch, which runs.
            let before = try await store.range(.key(k), revision: nil, limit: 0).revision
            let result = try await store.transaction(Transaction(
                compares: [Compare(key: k, .equal, .value(bytes("v2"))), Compare(key: k, .greater, .version(5))],
                success: [.put(p + "won", bytes("1"))],
                failure: [.put(p + "lost", bytes("1")), .range(.key(k), limit: 0)]))
            #expect(!result.succeeded)
            #expect(result.revision == before + 1)
            #expect(try await store.get(p + "won") == nil)
            #expect(try await store.get(p + "lost") != nil)
            guard result.responses.count == 2, case .range(let read) = result.responses[1] else {
                Issue.record("expected put + range responses, got \(result.responses)")
                return
            }
            #expect(read.kvs.map(\.string) == ["v2"])
            guard case .put(let previous) = result.responses[0] else { Issue.record("no put response"); return }
            #expect(previous == nil)

            // Put returns the previous value; every relation works.
            let put = try await store.transaction(Transaction(
                compares: [Compare(key: k, .notEqual, .value(bytes("zz"))), Compare(key: k, .less, .version(3)),
                           Compare(key: k, .equal, .lease(0)), Compare(key: k, .greater, .createRevision(0))],
                success: [.put(k, bytes("v3"))]))
            #expect(put.succeeded)
            guard case .put(let prev)? = put.responses.first else { Issue.record("no put response"); return }
            #expect(prev?.string == "v2")
        }
    }

    @Test("a key written twice in one branch, or too many operations, is an invalid argument", arguments: Backend.allCases)
    func transactionLimits(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let revision = try await store.put(p + "seed", bytes("x"))
            for bad in [
                Transaction(success: [.put(p + "d", bytes("1")), .put(p + "d", bytes("2"))]),
                Transaction(success: [.delete(.prefix(p)), .put(p + "d", bytes("2"))]),
                Transaction(success: (0...StoreLimits.maxOperationsPerTransaction).map { .put(p + "k\($0)", bytes("v")) }),
            ] {
                await #expect {
                    _ = try await store.transaction(bad)
                } throws: { error in
                    guard case StoreError.invalidArgument = error else { return false }
                    return true
                }
            }
            // Overlapping deletes are allowed; the same key in both branches is allowed.
            let ok = try await store.transaction(Transaction(
                success: [.delete(.prefix(p + "z")), .delete(.key(p + "z1")), .put(p + "d", bytes("1"))],
                failure: [.put(p + "d", bytes("2"))]))
            #expect(ok.succeeded)
            #expect(ok.revision == revision + 1)
            #expect(try await store.get(p + "k0") == nil)  // nothing of a refused transaction applied
        }
    }

    @Test("delete counts; no-op deletes and read-only transactions keep the revision", arguments: Backend.allCases)
    func deletesAndNoOps(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            for i in 0..<5 { try await store.put(p + "d/\(i)", bytes("\(i)")) }
            let current = try await store.range(.key(p), revision: nil, limit: 0).revision
            #expect(try await store.delete(.prefix(p + "d/")) == 5)
            let afterDelete = try await store.range(.key(p), revision: nil, limit: 0).revision
            #expect(afterDelete == current + 1)  // one revision for the whole delete
            #expect(try await store.delete(.prefix(p + "d/")) == 0)
            let readOnly = try await store.transaction(Transaction(success: [.range(.prefix(p), limit: 0)]))
            #expect(readOnly.revision == afterDelete)
            let r = try await store.range(.key(p), revision: nil, limit: 0).revision
            #expect(r == afterDelete)
        }
    }

    @Test("leases: granted TTL, keep-alive, revoke and expiry delete the keys", arguments: Backend.allCases)
    func leases(_ backend: Backend) async throws {
        try await withStore(backend) { subject, p in
            let store = subject.store
            // Keep-alive and time to live, on a lease long enough for a loaded machine.
            let long = try await store.grantLease(ttlSeconds: 30)
            #expect(long.ttlSeconds >= 30)
            try await store.put(p + "long/a", bytes("a"), lease: long.id)
            #expect(try await store.get(p + "long/a")?.lease == long.id)
            #expect(try await store.keepAlive(long.id) == long.ttlSeconds)
            let ttl = try #require(try await store.timeToLive(long.id))
            #expect(ttl > 0 && ttl <= long.ttlSeconds)
            try await store.revokeLease(long.id)

            // Expiry: a 1 s lease is granted at least etcd's minimum; no keep-alive → the key goes,
            // with a DELETE event, within its TTL (+ the expiry check's granularity and slack).
            let lease = try await store.grantLease(ttlSeconds: 1)
            #expect(lease.ttlSeconds >= StoreLimits.minimumLeaseTTLSeconds)
            let revision = try await store.put(p + "lease/a", bytes("a"), lease: lease.id)
            let events = store.watch(.prefix(p + "lease/"), fromRevision: revision + 1)
            let deadline = ContinuousClock.now + .seconds(lease.ttlSeconds + 6)
            let seen = try await collect(events, count: 1, timeout: .seconds(lease.ttlSeconds + 6))
            #expect(seen.map(\.kind) == [.delete])
            #expect(seen.first?.kv.key == p + "lease/a")
            #expect(ContinuousClock.now < deadline)
            #expect(try await store.get(p + "lease/a") == nil)
            #expect(try await store.timeToLive(lease.id) == nil)
            await #expect(throws: StoreError.leaseNotFound(lease.id)) { _ = try await store.keepAlive(lease.id) }

            // Revoke: at once.
            let second = try await store.grantLease(ttlSeconds: 30)
            try await store.put(p + "lease/b", bytes("b"), lease: second.id)
            try await store.put(p + "lease/c", bytes("c"), lease: second.id)
            try await store.revokeLease(second.id)
            #expect(try await store.list(prefix: p + "lease/").kvs.isEmpty)

            // An unknown lease on put.
            await #expect(throws: StoreError.leaseNotFound(second.id)) {
                try await store.put(p + "lease/d", bytes("d"), lease: second.id)
            }
            #expect(try await store.get(p + "lease/d") == nil)
        }
    }

    @Test("watch: live events, replay from an old revision, prefix isolation, two watchers", arguments: Backend.allCases)
    func watches(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let r1 = try await store.put(p + "w/a", bytes("1"))
            try await store.put(p + "w/a", bytes("2"))
            try await store.put(p + "other", bytes("x"))
            try await store.delete(.key(p + "w/a"))
            // Replay from the first revision: put, put (prev = 1), delete (prev = 2); "other" not seen.
            let replay = try await collect(store.watch(.prefix(p + "w/"), fromRevision: r1), count: 3)
            #expect(replay.map(\.kind) == [.put, .put, .delete])
            #expect(replay.map(\.revision) == [r1, r1 + 1, r1 + 3])
            #expect(replay.map { $0.kv.string } == ["1", "2", ""])
            #expect(replay.map { $0.previous?.string } == [nil, "1", "2"])

            // Live: two watchers from the next revision both see the same events in order.
            let now = try await store.range(.key(p), revision: nil, limit: 0).revision
            let first = store.watch(.prefix(p + "w/"), fromRevision: now + 1)
            let second = store.watch(.key(p + "w/b"), fromRevision: now + 1)
            async let a = collect(first, count: 3)
            async let b = collect(second, count: 2)
            try await store.put(p + "w/b", bytes("b1"))
            try await store.put(p + "w/c", bytes("c1"))
            try await store.put(p + "w/b", bytes("b2"))
            let (seenA, seenB) = try await (a, b)
            #expect(seenA.map { $0.kv.key } == ["w/b", "w/c", "w/b"].map { p + $0 })
            #expect(seenA.map(\.revision) == [now + 1, now + 2, now + 3])
            #expect(seenB.map { $0.kv.string } == ["b1", "b2"])

            // fromRevision nil: only what happens after the watch started.
            try await store.put(p + "n/x", bytes("before"))
            let fromNow = store.watch(.prefix(p + "n/"), fromRevision: nil)
            async let later = collect(fromNow, count: 1)
            try await Task.sleep(for: .milliseconds(500))
            try await store.put(p + "n/x", bytes("after"))
            #expect(try await later.map { $0.kv.string } == ["after"])
        }
    }

    @Test("a cancelled watch stops; the store keeps working", arguments: Backend.allCases)
    func watchCancellation(_ backend: Backend) async throws {
        try await withStore(backend) { subject, p in
            let store = subject.store
            let stream = store.watch(.prefix(p), fromRevision: nil)
            let task = Task { () -> Int in
                var n = 0
                for try await batch in stream { n += batch.count }
                return n
            }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            _ = try? await task.value  // ends (a cancellation error or a clean finish), doesn't hang
            try await store.put(p + "after", bytes("1"))
            #expect(try await store.get(p + "after")?.string == "1")
        }
    }

    @Test("concurrent CAS increments lose no update", arguments: Backend.allCases)
    func concurrentCounter(_ backend: Backend) async throws {
        try await withStore(backend) { subject, p in
            let store = subject.store
            let key = p + "counter"
            try await store.put(key, bytes("0"))
            let tasks = 8, increments = 10
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<tasks {
                    group.addTask {
                        var done = 0
                        while done < increments {
                            let kv = try #require(try await store.get(key))
                            let next = Int(kv.string)! + 1
                            if try await store.compareAndSwap(key: key, expectedModRevision: kv.modRevision, value: bytes("\(next)")) != nil {
                                done += 1
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.get(key)?.string == "\(tasks * increments)")
        }
    }

    @Test("compaction: reads and watches below it fail as compacted; compacting the future is refused", arguments: Backend.allCases)
    func compaction(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let store = subject.store
            let r1 = try await store.put(p + "c", bytes("1"))
            try await store.put(p + "c", bytes("2"))
            let r3 = try await store.put(p + "c", bytes("3"))
            try await store.compact(revision: r3)
            await #expect {
                _ = try await store.range(.key(p + "c"), revision: r1, limit: 0)
            } throws: { error in
                guard case StoreError.compacted = error else { return false }
                return true
            }
            #expect(try await store.range(.key(p + "c"), revision: r3, limit: 0).kvs.map(\.string) == ["3"])
            // A watch from below the compaction point ends with the compaction revision.
            var thrown: (any Error)?
            do {
                _ = try await collect(store.watch(.prefix(p), fromRevision: r1), count: 1)
            } catch { thrown = error }
            #expect(thrown as? StoreError == .compacted(r3))
            // Compacting again at (or below) the compaction point, or in the future.
            await #expect {
                try await store.compact(revision: r3)
            } throws: { error in
                guard case StoreError.compacted = error else { return false }
                return true
            }
            await #expect(throws: StoreError.futureRevision(r3 + 10)) { try await store.compact(revision: r3 + 10) }
            // A watch from the compaction revision itself still replays.
            let fromCompaction = try await collect(store.watch(.prefix(p), fromRevision: r3), count: 1)
            #expect(fromCompaction.map { $0.kv.string } == ["3"])
        }
    }

    @Test("a restart keeps data, the revision and leases", arguments: Backend.allCases)
    func restartKeepsState(_ backend: Backend) async throws {
        try await withStore(backend, isolated: true) { subject, p in
            let lease = try await subject.store.grantLease(ttlSeconds: 60)
            try await subject.store.put(p + "durable", bytes("yes"))
            let revision = try await subject.store.put(p + "leased", bytes("l"), lease: lease.id)
            try await subject.restart()
            let store = subject.store
            let read = try await store.range(.prefix(p), revision: nil, limit: 0)
            #expect(read.kvs.map(\.string) == ["yes", "l"])
            #expect(read.revision == revision)
            #expect(try await store.get(p + "leased")?.lease == lease.id)
            #expect(try await store.keepAlive(lease.id) == lease.ttlSeconds)
            #expect(try await store.put(p + "next", bytes("n")) == revision + 1)
        }
    }
}
