import Logging
import Testing
@testable import Store

/// The embedded store's files: restart, torn WAL tails, corruption, snapshots, group commit,
/// and a seeded fuzz of WAL bytes.
@Suite(.serialized) struct EmbeddedDurabilityTests {
    @Test func restartKeepsDataHistoryCompactionAndLeases() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let clock = ManualClock()
        var store = try await EmbeddedStore.open(directory: tmp.path, clock: clock)
        let lease = try await store.grantLease(ttlSeconds: 20)
        try await store.put("a", utf8("1"))                       // 1
        try await store.put("a", utf8("2"))                       // 2
        try await store.put("leased", utf8("l"), lease: lease.id)  // 3
        try await store.delete(.key("a"))                          // 4
        try await store.put("b", utf8("1"))                       // 5
        try await store.compact(revision: 2)
        clock.advance(by: .seconds(15))
        await store.close()

        store = try await EmbeddedStore.open(directory: tmp.path, clock: clock)
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 5)
        #expect(try await store.range(.all, revision: 2, limit: 0).kvs.map(\.string) == ["2"])
        await #expect(throws: StoreError.compacted(2)) { try await store.range(.all, revision: 1, limit: 0) }
        // The lease's deadline restarted at open: 20 s from now, not 5.
        #expect(try await store.timeToLive(lease.id) == 20)
        #expect(try await store.get("leased")?.lease == lease.id)
        // Lease IDs are not reused.
        #expect(try await store.grantLease(ttlSeconds: 5).id > lease.id)
        // Watch from an old revision after the restart.
        let replay = try await collectEvents(store.watch(.all, fromRevision: 2), events: 4)
        #expect(replay.map(\.revision) == [2, 3, 4, 5])
        #expect(replay[2].kind == .delete && replay[2].previous?.string == "2")
        // Expiry after the restart is durable too.
        clock.advance(by: .seconds(21))
        #expect(try await store.get("leased") == nil)
        await store.close()
        store = try await EmbeddedStore.open(directory: tmp.path, clock: clock)
        #expect(try await store.get("leased") == nil)
        #expect(try await store.timeToLive(lease.id) == nil)
        #expect(try await store.put("c", []) == 7)
        await store.close()
    }

    @Test func aSecondStoreCannotOpenTheSameDirectory() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let store = try await EmbeddedStore.open(directory: tmp.path)
        await #expect {
            _ = try await EmbeddedStore.open(directory: tmp.path)
        } throws: { error in
            guard case StoreError.unavailable = error else { return false }
            return true
        }
        await store.close()
        let again = try await EmbeddedStore.open(directory: tmp.path)
        await again.close()
    }

    /// Truncating the WAL anywhere inside its last frame gives the state before that frame,
    /// and the store keeps working (and stays consistent across another restart).
    @Test func tornTailAtEveryOffsetOfTheLastRecord() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let source = tmp.sub("source")
        var store = try await EmbeddedStore.open(directory: source)
        try await store.put("a", utf8("1"))
        let lease = try await store.grantLease(ttlSeconds: 60)
        try await store.put("b", utf8("1"), lease: lease.id)
        await store.close()
        let before = TestFiles.read(source + "/" + TestFiles.firstWAL).count
        store = try await EmbeddedStore.open(directory: source)
        _ = try await store.transaction(Transaction(success: [.put("c", utf8("torn")), .delete(.key("a"))]))
        await store.close()
        let wal = TestFiles.read(source + "/" + TestFiles.firstWAL)
        #expect(wal.count > before)
        for cut in before..<wal.count {
            let copy = tmp.sub("cut\(cut)")
            TestFiles.copyDirectory(source, to: copy)
            TestFiles.write(Array(wal[..<cut]), to: copy + "/" + TestFiles.firstWAL)
            var reopened = try await EmbeddedStore.open(directory: copy)
            let state = try await reopened.range(.all, revision: nil, limit: 0)
            #expect(state.revision == 2, "cut at \(cut)")
            #expect(state.kvs.map(\.key) == ["a", "b"], "cut at \(cut)")
            #expect(TestFiles.read(copy + "/" + TestFiles.firstWAL).count == before, "the torn tail is truncated")
            if cut % 7 == 0 || cut == wal.count - 1 {
                #expect(try await reopened.put("d", utf8("after")) == 3)
                #expect(try await reopened.keepAlive(lease.id) == 60)
                await reopened.close()
                reopened = try await EmbeddedStore.open(directory: copy)
                #expect(try await reopened.range(.all, revision: nil, limit: 0).kvs.map(\.key) == ["a", "b", "d"])
            }
            await reopened.close()
            TemporaryDirectory.removeTree(copy)
        }
    }

    @Test func aDamagedRecordBeforeValidOnesIsCorruption() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let store = try await EmbeddedStore.open(directory: tmp.path)
        try await store.put("a", utf8("1"))
        let afterFirst = TestFiles.read(tmp.path + "/" + TestFiles.firstWAL).count
        try await store.put("b", utf8("second"))
        try await store.put("c", utf8("3"))
        await store.close()
        var wal = TestFiles.read(tmp.path + "/" + TestFiles.firstWAL)
        wal[afterFirst + 20] ^= 0x40  // inside the second frame
        TestFiles.write(wal, to: tmp.path + "/" + TestFiles.firstWAL)
        await #expect {
            _ = try await EmbeddedStore.open(directory: tmp.path)
        } throws: { error in
            guard case StoreError.corrupt = error else { return false }
            return true
        }
    }

    @Test func snapshotsKeepEverythingAcrossRestarts() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let clock = ManualClock()
        let options = EmbeddedStore.Options(snapshotThresholdBytes: 2048)
        var store = try await EmbeddedStore.open(directory: tmp.path, clock: clock, options: options)
        let lease = try await store.grantLease(ttlSeconds: 30)
        for i in 0..<200 {
            try await store.put("k\(i % 50)", utf8(String(repeating: "v\(i)", count: 10)), lease: i % 10 == 0 ? lease.id : 0)
        }
        try await store.compact(revision: 100)
        try await store.delete(.key("k1"))
        await store.close()
        let names = TestFiles.names(tmp.path)
        #expect(names.filter { $0.hasPrefix("snap-") }.count == 1, "\(names)")
        #expect(names.filter { $0.hasPrefix("wal-") }.count == 1, "\(names)")
        #expect(!names.contains(TestFiles.firstWAL), "snapshots happened")

        store = try await EmbeddedStore.open(directory: tmp.path, clock: clock, options: options)
        let now = try await store.range(.all, revision: nil, limit: 0)
        #expect(now.revision == 201 && now.count == 49)
        #expect(try await store.get("k0")?.lease == lease.id)
        #expect(try await store.get("k49")?.string == String(repeating: "v199", count: 10))
        #expect(try await store.range(.key("k7"), revision: 150, limit: 0).kvs.first?.string == String(repeating: "v107", count: 10))
        await #expect(throws: StoreError.compacted(100)) { try await store.range(.all, revision: 99, limit: 0) }
        #expect(try await store.timeToLive(lease.id) == 30)
        let replay = try await collectEvents(store.watch(.key("k1"), fromRevision: 100), events: 3)
        #expect(replay.map(\.revision) == [102, 152, 201] && replay.last?.kind == .delete)
        try await store.revokeLease(lease.id)
        #expect(try await store.get("k0") == nil)
        await store.close()
        store = try await EmbeddedStore.open(directory: tmp.path, clock: clock, options: options)
        #expect(try await store.get("k0") == nil)
        #expect(try await store.range(.all, revision: nil, limit: 0).revision == 202)
        await store.close()
    }

    /// The files a crash during a snapshot can leave: a temporary snapshot, the previous
    /// snapshot and WAL not yet deleted, the new WAL not yet created.
    @Test func recoveryFromEverySnapshotCrashWindow() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let options = EmbeddedStore.Options(snapshotThresholdBytes: 512)
        var store = try await EmbeddedStore.open(directory: tmp.path, options: options)
        for i in 0..<40 { try await store.put("k\(i % 7)", utf8("value \(i)")) }
        await store.close()
        let names = TestFiles.names(tmp.path)
        let snapshot = try #require(names.first { $0.hasPrefix("snap-") })
        let sequence = try #require(StoreWAL.sequence(of: snapshot, prefix: "snap-", suffix: ".bin"))
        #expect(sequence > 1)
        let wal = StoreWAL.name("wal-", sequence, ".log")
        let walBytes = TestFiles.read(tmp.path + "/" + wal)
        // Older files (garbage: they must not even be read), a temporary file, and no current WAL
        // when it was still empty.
        TestFiles.write(utf8("old"), to: tmp.path + "/" + StoreWAL.name("snap-", sequence - 1, ".bin"))
        TestFiles.write(utf8("old"), to: tmp.path + "/" + StoreWAL.name("wal-", sequence - 1, ".log"))
        TestFiles.write(utf8("partial"), to: tmp.path + "/" + StoreWAL.name("snap-", sequence + 1, ".bin.tmp"))
        if walBytes.isEmpty { TemporaryDirectory.removeTree(tmp.path + "/" + wal) }
        store = try await EmbeddedStore.open(directory: tmp.path, options: options)
        let state = try await store.range(.all, revision: nil, limit: 0)
        #expect(state.revision == 40 && state.count == 7)
        #expect(try await store.string("k5") == "value 33")
        await store.close()
        #expect(TestFiles.names(tmp.path) == ["LOCK", snapshot, wal])
        // A WAL newer than every snapshot cannot be explained: refuse it.
        TestFiles.write([], to: tmp.path + "/" + StoreWAL.name("wal-", sequence + 1, ".log"))
        await #expect {
            _ = try await EmbeddedStore.open(directory: tmp.path, options: options)
        } throws: { error in
            guard case StoreError.corrupt = error else { return false }
            return true
        }
    }

    @Test func groupCommitAcknowledgesOnlyDurableWritesAndBatchesSyncs() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let writing = try await EmbeddedStore.open(directory: tmp.path)
        var store = writing
        let writers = 64
        let revisions = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<writers { group.addTask { try await writing.put("g/\(i)", utf8("\(i)")) } }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(Set(revisions).count == writers)
        #expect(revisions.max() == Int64(writers))
        let syncs = store.walSyncCount
        #expect(syncs >= 1 && syncs <= writers)
        print("group commit: \(writers) concurrent puts, \(syncs) fdatasyncs")
        await store.close()
        store = try await EmbeddedStore.open(directory: tmp.path)
        let all = try await store.list(prefix: "g/")
        #expect(all.count == Int64(writers) && all.revision == Int64(writers))
        await store.close()
    }

    /// Random damage to a WAL: open either recovers a state no newer than the original or throws
    /// a StoreError; it never traps. The scan and replay run directly for most cases (fast) and
    /// through a full open for the rest.
    @Test func seededWALFuzz() async throws {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let source = tmp.sub("source")
        let store = try await EmbeddedStore.open(directory: source)
        let lease = try await store.grantLease(ttlSeconds: 60)
        for i in 0..<12 { try await store.put("f/\(i % 5)", utf8("value \(i)"), lease: i % 3 == 0 ? lease.id : 0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 { group.addTask { try await store.put("batch/\(i)", utf8("\(i)")) } }
            try await group.waitForAll()
        }
        try await store.compact(revision: 5)
        try await store.delete(.prefix("f/"))
        try await store.revokeLease(lease.id)
        await store.close()
        let original = TestFiles.read(source + "/" + TestFiles.firstWAL)
        let finalRevision: Int64 = 21
        var generator = SplitMix64(seed: 0x5EED_1234)
        var outcomes = (recovered: 0, corrupt: 0)
        for round in 0..<1200 {
            var damaged = original
            let mutations = Int(generator.next() % 4) + 1
            for _ in 0..<mutations {
                switch generator.next() % 5 {
                case 0:
                    damaged = Array(damaged.prefix(Int(generator.next() % UInt64(damaged.count + 1))))
                case 1 where !damaged.isEmpty:
                    let index = Int(generator.next() % UInt64(damaged.count))
                    damaged[index] = UInt8(truncatingIfNeeded: generator.next())
                case 2:
                    damaged += (0..<Int(generator.next() % 40)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                default:
                    if !damaged.isEmpty {
                        let index = Int(generator.next() % UInt64(damaged.count))
                        damaged[index] ^= 1 << UInt8(generator.next() % 8)
                    }
                }
            }
            if round < 1000 {
                do {
                    let scan = try WALRecord.scan(damaged)
                    var state = StoreState()
                    for record in scan.records { try state.replay(record, now: .zero) }
                    #expect(state.revision <= finalRevision)
                    outcomes.recovered += 1
                } catch {
                    outcomes.corrupt += 1
                }
            } else {
                let copy = tmp.sub("fuzz\(round)")
                TestFiles.copyDirectory(source, to: copy)
                TestFiles.write(damaged, to: copy + "/" + TestFiles.firstWAL)
                do {
                    var quiet = Logger(label: "fuzz")
                    quiet.logLevel = .critical  // no torn-tail warning per case
                    let reopened = try await EmbeddedStore.open(directory: copy, options: .init(logger: quiet))
                    let revision = try await reopened.range(.all, revision: nil, limit: 0).revision
                    #expect(revision <= finalRevision)
                    #expect(try await reopened.put("after", []) == revision + 1)
                    await reopened.close()
                    outcomes.recovered += 1
                } catch {
                    outcomes.corrupt += 1
                }
                TemporaryDirectory.removeTree(copy)
            }
        }
        print("WAL fuzz: \(outcomes.recovered) recovered, \(outcomes.corrupt) refused as corrupt")
        #expect(outcomes.recovered > 0 && outcomes.corrupt > 0)
    }

    @Test func walFramesRoundTrip() throws {
        let records: [WALRecord] = [
            .transaction(revision: 1, changes: [.put(key: utf8("a"), value: utf8("1"), lease: 0), .delete(key: utf8("b"))]),
            .leaseGrant(revision: 1, id: 99, ttlSeconds: 30),
            .leaseRevoke(revision: 2, id: 99, expired: true, changes: [.delete(key: utf8("c"))]),
            .leaseRevoke(revision: 2, id: 98, expired: false, changes: []),
            .compaction(revision: 2, compactRevision: 1),
        ]
        var bytes: [UInt8] = []
        for record in records { bytes += WALRecord.frame([record]) }
        bytes += WALRecord.frame(records)
        let scan = try WALRecord.scan(bytes)
        #expect(scan.records == records + records)
        #expect(!scan.tornTail && scan.validLength == bytes.count)
        // Every cut inside the batch frame is a torn tail after the single frames.
        let singles = bytes.count - WALRecord.frame(records).count
        for cut in singles..<bytes.count {
            let torn = try WALRecord.scan(Array(bytes[..<cut]))
            #expect(torn.records == records && torn.validLength == singles && torn.tornTail == (cut > singles))
        }
    }

    @Test func snapshotFuzzNeverTraps() throws {
        var state = StoreState()
        let lease = state.grantLease(ttlSeconds: 10, now: .zero).0
        for i in 0..<20 {
            _ = try state.transaction(Transaction(success: [.put(key: "s/\(i % 6)", value: utf8("\(i)"), lease: i % 4 == 0 ? lease.id : 0)]),
                                      now: .zero)
        }
        try _ = state.compact(5)
        let original = StoreSnapshot.encode(state)
        let decoded = try StoreSnapshot.decode(original, now: .zero)
        #expect(decoded.mvcc.histories == state.mvcc.histories && decoded.revision == 20)
        var generator = SplitMix64(seed: 42)
        for _ in 0..<300 {
            var damaged = original
            let index = Int(generator.next() % UInt64(damaged.count))
            damaged[index] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            if generator.next() % 3 == 0 { damaged = Array(damaged.prefix(Int(generator.next() % UInt64(damaged.count)))) }
            #expect(throws: StoreError.self) { try StoreSnapshot.decode(damaged, now: .zero) }
        }
    }
}

/// A small seeded generator (SplitMix64) for reproducible fuzzing.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
