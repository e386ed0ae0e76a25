import Testing
@testable import Store

/// The embedded backend's semantics in memory (the conformance suite covers the shared ones
/// against both backends; these pin down the details and the embedded-only behaviour).
@Suite struct EmbeddedStoreTests {
    @Test func versionsAndRevisionsFollowEtcd() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        #expect(try await store.put("k", utf8("1")) == 1)
        #expect(try await store.put("k", utf8("2")) == 2)
        var kv = try #require(try await store.get("k"))
        #expect((kv.createRevision, kv.modRevision, kv.version) == (1, 2, 2))
        #expect(try await store.delete(.key("k")) == 1)
        #expect(try await store.get("k") == nil)
        #expect(try await store.put("k", utf8("3")) == 4)
        kv = try #require(try await store.get("k"))
        #expect((kv.createRevision, kv.modRevision, kv.version) == (4, 4, 1))
        // A delete of nothing and a read-only transaction keep the revision.
        #expect(try await store.delete(.key("absent")) == 0)
        let readOnly = try await store.transaction(Transaction(success: [.range(.key("k"), limit: 0)]))
        #expect(readOnly.revision == 4)
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 4)
        // History.
        #expect(try await store.range(.key("k"), revision: 2, limit: 0).kvs.first?.string == "2")
        #expect(try await store.range(.key("k"), revision: 3, limit: 0).kvs.isEmpty)
        await #expect(throws: StoreError.futureRevision(5)) { try await store.range(.all, revision: 5, limit: 0) }
    }

    @Test func rangesAreSortedByBytesWithLimitAndCount() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        for key in ["a/c", "a/a", "a0", "a/b", "b", "a/\u{e9}"] { try await store.put(key, utf8(key)) }
        let all = try await store.list(prefix: "a/")
        #expect(all.kvs.map(\.key) == ["a/a", "a/b", "a/c", "a/\u{e9}"])
        #expect(all.count == 4 && !all.more)
        let limited = try await store.range(.prefix("a/"), revision: nil, limit: 2)
        #expect(limited.kvs.map(\.key) == ["a/a", "a/b"])
        #expect(limited.more && limited.count == 4)
        #expect(try await store.range(.between("a/b", "b"), revision: nil, limit: 0).kvs.map(\.key) == ["a/b", "a/c", "a/\u{e9}", "a0"])
        #expect(try await store.range(KeyRange(start: utf8("a0"), end: []), revision: nil, limit: 0).kvs.map(\.key) == ["a0", "b"])
        #expect(try await store.range(.all, revision: nil, limit: 0).count == 6)
    }

    @Test func transactionsCompareLikeEtcd() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        // Absent key: version/createRevision/modRevision/lease 0; a value compare is false.
        let absent = try await store.transaction(Transaction(
            compares: [.absent("x"), Compare(key: "x", .equal, .modRevision(0)), Compare(key: "x", .equal, .lease(0)),
                       Compare(key: "x", .equal, .createRevision(0))],
            success: [.put("x", utf8("v")), .range(.key("x"), limit: 0)]))
        #expect(absent.succeeded && absent.revision == 1)
        // The range after the put sees it, at the transaction's revision.
        guard case .range(let read) = absent.responses[1] else { Issue.record("no range response"); return }
        #expect(read.kvs.first?.string == "v" && read.revision == 1)
        for relation in [Compare.Relation.equal, .notEqual, .greater, .less] {
            let onAbsent = try await store.transaction(Transaction(compares: [Compare(key: "nope", relation, .value([]))]))
            #expect(!onAbsent.succeeded)
        }
        let value = try await store.transaction(Transaction(
            compares: [Compare(key: "x", .greater, .value(utf8("u"))), Compare(key: "x", .less, .value(utf8("w")))],
            success: [.put("y", utf8("1"))], failure: [.put("z", utf8("1"))]))
        #expect(value.succeeded && value.revision == 2)
        // Failure branch runs its operations; the put response carries the previous value.
        let failed = try await store.transaction(Transaction(
            compares: [Compare(key: "x", .equal, .version(7))], failure: [.put("x", utf8("w")), .delete(.key("y"))]))
        #expect(!failed.succeeded && failed.revision == 3)
        guard case .put(let previous) = failed.responses[0], case .delete(let deleted) = failed.responses[1] else {
            Issue.record("wrong responses"); return
        }
        #expect(previous?.string == "v" && deleted.map(\.key) == ["y"])
        #expect(try await store.compareAndSwap(key: "x", expectedModRevision: 1, value: utf8("no")) == nil)
        #expect(try await store.compareAndSwap(key: "x", expectedModRevision: 3, value: utf8("ok")) == 4)
    }

    @Test func invalidTransactionsAreRejectedBeforeAnything() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        await #expect(throws: StoreError.invalidArgument("duplicate key given in txn request")) {
            try await store.transaction(Transaction(success: [.put("a", []), .put("a", [])]))
        }
        let tooMany = (0...StoreLimits.maxOperationsPerTransaction).map { TransactionOperation.put("k\($0)", []) }
        await #expect(throws: StoreError.invalidArgument("too many operations in txn request")) {
            try await store.transaction(Transaction(success: tooMany))
        }
        await #expect(throws: StoreError.invalidArgument("request is too large")) {
            try await store.put("big", [UInt8](repeating: 1, count: StoreLimits.maxRequestBytes))
        }
        try await store.put("fits", [UInt8](repeating: 1, count: StoreLimits.maxRequestBytes - 64))
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 1)
    }

    @Test func compaction() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        try await store.put("a", utf8("1"))  // 1
        try await store.put("b", utf8("1"))  // 2
        try await store.delete(.key("b"))      // 3
        try await store.put("a", utf8("2"))  // 4
        await #expect(throws: StoreError.futureRevision(9)) { try await store.compact(revision: 9) }
        try await store.compact(revision: 3)
        await #expect(throws: StoreError.compacted(3)) { try await store.compact(revision: 3) }
        await #expect(throws: StoreError.compacted(3)) { try await store.range(.all, revision: 2, limit: 0) }
        // The compaction revision itself still reads.
        #expect(try await store.range(.all, revision: 3, limit: 0).kvs.map(\.string) == ["1"])
        let stream = store.watch(.all, fromRevision: 2)
        await #expect(throws: StoreError.compacted(3)) { for try await _ in stream {} }
        let fromCompaction = try await collectEvents(store.watch(.all, fromRevision: 3), events: 2)
        #expect(fromCompaction.map(\.revision) == [3, 4])
        #expect(fromCompaction.map(\.kind) == [.delete, .put])
        #expect(fromCompaction[1].previous?.string == "1")
    }

    @Test func watchReplaysHistoryThenLiveEventsInOrder() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        try await store.put("w/a", utf8("1"))          // 1
        try await store.put("other", utf8("1"))        // 2
        try await store.put("w/a", utf8("2"))          // 3
        let stream = store.watch(.prefix("w/"), fromRevision: 1)
        let live = store.watch(.prefix("w/"), fromRevision: nil)
        try await store.delete(.prefix("w/"))            // 4
        _ = try await store.transaction(Transaction(success: [.put("w/b", utf8("x")), .put("w/c", utf8("y"))]))  // 5
        let events = try await collectEvents(stream, events: 5)
        #expect(events.map(\.revision) == [1, 3, 4, 5, 5])
        #expect(events.map(\.kv.key) == ["w/a", "w/a", "w/a", "w/b", "w/c"])
        #expect(events[0].previous == nil && events[1].previous?.string == "1")
        let delete = events[2]
        #expect(delete.kind == .delete && delete.kv.value.isEmpty && delete.kv.version == 0 && delete.kv.modRevision == 4)
        #expect(delete.previous?.string == "2")
        #expect(try await collectEvents(live, events: 3).map(\.revision) == [4, 5, 5])
    }

    @Test func watchCancellationAndCloseEndStreams() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        let consumer = Task {
            for try await _ in store.watch(.all, fromRevision: nil) {}
        }
        let stays = store.watch(.all, fromRevision: nil)
        while store.watcherCount < 2 { await Task.yield() }
        consumer.cancel()
        _ = await consumer.result
        while store.watcherCount != 1 { await Task.yield() }
        await store.close()
        await #expect(throws: StoreError.closed) { for try await _ in stays {} }
        await #expect(throws: StoreError.closed) { for try await _ in store.watch(.all, fromRevision: nil) {} }
        await store.close()  // idempotent
        await #expect(throws: StoreError.closed) { try await store.put("a", []) }
        await #expect(throws: StoreError.closed) { try await store.grantLease(ttlSeconds: 5) }
    }

    @Test func leasesExpireOnTheInjectedClock() async throws {
        let clock = ManualClock()
        let store = try await EmbeddedStore.open(directory: nil, clock: clock)
        defer { Task { await store.close() } }
        #expect(try await store.grantLease(ttlSeconds: 1).ttlSeconds == StoreLimits.minimumLeaseTTLSeconds)
        let lease = try await store.grantLease(ttlSeconds: 10)
        #expect(lease.ttlSeconds == 10)
        try await store.put("l/a", utf8("1"), lease: lease.id)   // 1
        try await store.put("l/b", utf8("1"), lease: lease.id)   // 2
        try await store.put("l/free", utf8("1"))                 // 3
        #expect(try await store.get("l/a")?.lease == lease.id)
        let events = store.watch(.prefix("l/"), fromRevision: nil)
        clock.advance(by: .seconds(6))
        #expect(try await store.timeToLive(lease.id) == 4)
        #expect(try await store.keepAlive(lease.id) == 10)
        clock.advance(by: .seconds(6))
        #expect(try await store.get("l/a") != nil)  // renewed at 6 s: deadline 16 s
        clock.advance(by: .seconds(5))              // 17 s: the expiry task deletes both keys in one revision
        let deletes = try await collectEvents(events, events: 2)
        #expect(deletes.map(\.kind) == [.delete, .delete] && deletes.map(\.revision) == [4, 4])
        #expect(try await store.timeToLive(lease.id) == nil)
        await #expect(throws: StoreError.leaseNotFound(lease.id)) { try await store.keepAlive(lease.id) }
        await #expect(throws: StoreError.leaseNotFound(lease.id)) { try await store.put("l/c", [], lease: lease.id) }
        #expect(try await store.list(prefix: "l/").kvs.map(\.key) == ["l/free"])
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 4)
    }

    @Test func leasesRevokeAndUnknownLeases() async throws {
        let clock = ManualClock()
        let store = try await EmbeddedStore.open(directory: nil, clock: clock)
        defer { Task { await store.close() } }
        let lease = try await store.grantLease(ttlSeconds: 30)
        let empty = try await store.grantLease(ttlSeconds: 30)
        try await store.put("a", [], lease: lease.id)
        try await store.put("b", [], lease: lease.id)
        try await store.put("b", [])  // re-put without the lease detaches it
        // A put with an unknown lease applies nothing, even the other operations.
        await #expect(throws: StoreError.leaseNotFound(42)) {
            try await store.transaction(Transaction(success: [.put("c", []), .put(key: "d", value: [], lease: 42)]))
        }
        #expect(try await store.get("c") == nil)
        try await store.revokeLease(empty.id)
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 3)  // no keys: no revision
        try await store.revokeLease(lease.id)
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 4)
        #expect(try await store.get("a") == nil)
        #expect(try await store.get("b") != nil)
        await #expect(throws: StoreError.leaseNotFound(lease.id)) { try await store.revokeLease(lease.id) }
        await #expect(throws: StoreError.leaseNotFound(7)) { try await store.keepAlive(7) }
        #expect(try await store.timeToLive(7) == nil)
        // Expiry is also applied by the next call, without waiting for the task.
        let short = try await store.grantLease(ttlSeconds: 2)
        try await store.put("s", [], lease: short.id)
        clock.advance(by: .seconds(2))
        #expect(try await store.get("s") == nil)
    }

    @Test func concurrentCompareAndSwapLosesNoUpdate() async throws {
        let store = try await EmbeddedStore.open(directory: nil)
        defer { Task { await store.close() } }
        try await store.put("counter", utf8("0"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<25 {
                        while true {
                            let kv = try #require(try await store.get("counter"))
                            let next = utf8(String(Int(kv.string)! + 1))
                            if try await store.compareAndSwap(key: "counter", expectedModRevision: kv.modRevision, value: next) != nil { break }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.string("counter") == "200")
    }
}
