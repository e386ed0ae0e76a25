// FuzzStoreWAL: libFuzzer target over the embedded store's recovery (`EmbeddedStore.open(directory:)`
// in Sources/Store/Embedded): WAL frame scanning (torn tails, damage before valid frames), record
// decoding and replay, snapshot decoding and the state checks behind it.
//
// Each input becomes the files of a fresh store directory (under /dev/shm when there is one, so
// fsync costs nothing), removed afterwards.
//
// Input format:
//   byte 0   options: b0 a snapshot is present; b1 re-seal the WAL (walk its frames by their
//            length fields and recompute each CRC32C, so edits reach the decoder and replay);
//            b2 re-seal the snapshot (its trailing CRC32C); b3 grant a lease after the first open
//            (and check it after the reopen); b4 snapshot after the put (threshold 0), so the
//            reopen reads a snapshot this build wrote from the recovered state
//   with b0: bytes 1-2 the snapshot's length (u16 LE, cut to what is there), then the snapshot
//            (`snap-0000000000000001.bin`), then the WAL (`wal-0000000000000001.log`);
//   without: the rest is the WAL (`wal-0000000000000000.log`).
//
// Checked, for each input:
//   - no crash, trap or sanitizer report, no hang;
//   - the open returns a store or throws a `StoreError` (typed throws);
//   - a store that opened answers `range(.all)` consistently (count, no `more`, no modRevision
//     past the header revision; a limited read agrees; the revision before is readable or
//     compacted), accepts a put at exactly revision + 1 (and a lease grant, with b3), closes,
//     and reopens to exactly the same `range(.all)` (and the lease with its TTL).
// Lease deadlines follow a clock that never moves, so nothing expires between the reads.
//
// Built with -parse-as-library: there is no top-level code; libFuzzer provides `main`.
// HALYARD_FUZZ_WRITE_SEEDS=DIR: write the seed corpus to DIR and exit (see README.md).

import Dispatch
import FuzzCommon
import Logging
import NVMe
import Store

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
let putKey = "fuzz/after"
let scratchRoot: String = {
    if access("/dev/shm", W_OK) == 0 { return "/dev/shm" }
    if let tmp = getenv("TMPDIR") { return String(cString: tmp) }
    return "/tmp"
}()
nonisolated(unsafe) var runCount = 0
/// HALYARD_FUZZ_TRACE=1: print what each open gives (to look at one input).
let trace = environmentFlag("HALYARD_FUZZ_TRACE")

// MARK: Bridging

final class Box<T>: @unchecked Sendable {
    var value: T?
}

/// Runs `body` in a task and blocks the fuzzer thread until it finishes.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = Box<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        box.value = await body()
        done.signal()
    }
    done.wait()
    return box.value!
}

/// A clock that never moves: lease deadlines never pass, and the store's expiry task sleeps
/// until it is cancelled (by close).
struct FrozenClock: Clock {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    var now: Instant { Instant(offset: .zero) }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        if deadline <= now { return }
        try await Task.sleep(for: .seconds(365 * 86_400))
    }
}

// MARK: Files

func writeFile(_ path: String, _ bytes: some Collection<UInt8>) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { fuzzViolation("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let array = Array(bytes)
    array.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            guard n > 0 else { fuzzViolation("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }
}

func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fuzzViolation("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
    }
}

func names(in directory: String) -> [String] {
    guard let handle = opendir(directory) else { return [] }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes a store directory (the store only makes plain files in it).
func removeDirectory(_ directory: String) {
    for name in names(in: directory) { unlink(directory + "/" + name) }
    rmdir(directory)
}

func freshDirectory() -> String {
    runCount += 1
    let directory = "\(scratchRoot)/halyard-fuzz-store-\(getpid())-\(runCount)"
    removeDirectory(directory)
    guard mkdir(directory, 0o755) == 0 else { fuzzViolation("cannot create \(directory): \(String(cString: strerror(errno)))") }
    return directory
}

func fileName(_ prefix: String, _ sequence: UInt64, _ suffix: String) -> String {
    let hex = String(sequence, radix: 16)
    return prefix + String(repeating: "0", count: 16 - hex.count) + hex + suffix
}

// MARK: Re-sealing

func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << ($1 * 8) }
}

func put32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (i * 8)) }
}

func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

/// The CRC of a WAL frame: CRC32C over its length field, continued over the body.
func frameCRC(_ bytes: [UInt8], at offset: Int, bodyLength: Int) -> UInt32 {
    bytes.withUnsafeBytes { raw in
        let overLength = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + 4)]))
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + 8 + bodyLength)]), continuing: overLength)
    }
}

/// Walks the frames by their length fields, recomputing each CRC, until a length does not fit.
func resealWAL(_ wal: inout [UInt8]) {
    var offset = 0
    while offset + 8 <= wal.count {
        let length = Int(u32(wal, offset))
        guard length <= wal.count - offset - 8 else { return }
        put32(&wal, offset + 4, frameCRC(wal, at: offset, bodyLength: length))
        offset += 8 + length
    }
}

func resealSnapshot(_ snapshot: inout [UInt8]) {
    guard snapshot.count >= 12 else { return }
    let crc = snapshot.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(snapshot.count - 4)])) }
    put32(&snapshot, snapshot.count - 4, crc)
}

/// The frames of a WAL (offset and body length), as far as they chain.
func frames(_ wal: [UInt8]) -> [(offset: Int, length: Int)] {
    var found: [(Int, Int)] = []
    var offset = 0
    while offset + 8 <= wal.count {
        let length = Int(u32(wal, offset))
        guard length <= wal.count - offset - 8 else { break }
        found.append((offset, length))
        offset += 8 + length
    }
    return found
}

// MARK: The run

func options(snapshotAfterPut: Bool) -> EmbeddedStore.Options {
    EmbeddedStore.Options(snapshotThresholdBytes: snapshotAfterPut ? 0 : 16 << 20, logger: quiet)
}

/// What a range read promises whatever the files held.
func checkRange(_ result: RangeResult, limit: Int, _ what: String) {
    fuzzCheck(result.revision >= 0, "\(what): revision \(result.revision)")
    fuzzCheck(result.count >= Int64(result.kvs.count), "\(what): count \(result.count) < \(result.kvs.count) keys")
    if limit == 0 {
        fuzzCheck(result.count == Int64(result.kvs.count) && !result.more, "\(what): count \(result.count), \(result.kvs.count) keys, more \(result.more)")
    } else {
        fuzzCheck(result.kvs.count == min(limit, Int(result.count)) && result.more == (result.count > Int64(limit)),
                  "\(what): limit \(limit): \(result.kvs.count) keys of \(result.count), more \(result.more)")
    }
    for kv in result.kvs {
        fuzzCheck(kv.modRevision <= result.revision && kv.modRevision > 0,
                  "\(what): key \(kv.key) modRevision \(kv.modRevision), store revision \(result.revision)")
    }
}

func run(directory: String, options flags: UInt8) async {
    let store: EmbeddedStore
    do {
        store = try await EmbeddedStore.open(directory: directory, clock: FrozenClock(), options: options(snapshotAfterPut: flags & 0x10 != 0))
    } catch {
        if trace { traceLine("open: \(error)") }
        return  // a StoreError (typed throws): damaged files refused
    }
    let before: RangeResult
    do {
        before = try await store.range(.all, revision: nil, limit: 0)
        checkRange(before, limit: 0, "range(.all) after open")
        let limited = try await store.range(.all, revision: nil, limit: 1)
        checkRange(limited, limit: 1, "range(.all, limit: 1) after open")
        fuzzCheck(limited.count == before.count && limited.revision == before.revision && limited.kvs == Array(before.kvs.prefix(1)),
                  "a limited read disagrees with the full one: \(limited) vs \(before)")
    } catch {
        fuzzViolation("a store that opened refused a read: \(error)")
    }
    if trace { traceLine("open: revision \(before.revision), \(before.count) keys") }
    if before.revision > 1 {
        do throws(StoreError) {
            let older = try await store.range(.all, revision: before.revision - 1, limit: 0)
            checkRange(older, limit: 0, "range(.all) at revision \(before.revision - 1)")
            fuzzCheck(older.revision == before.revision, "a read at an older revision answered with header revision \(older.revision)")
        } catch {
            guard case .compacted = error else { fuzzViolation("a read at revision \(before.revision - 1) failed: \(error)") }
        }
    }
    let value = Array("value at \(before.revision)".utf8)
    let revision: Int64
    var lease: Lease?
    let after: RangeResult
    do {
        revision = try await store.put(putKey, value)
        fuzzCheck(revision == before.revision + 1, "a put after revision \(before.revision) made revision \(revision)")
        if flags & 0x8 != 0 { lease = try await store.grantLease(ttlSeconds: 60) }
        after = try await store.range(.all, revision: nil, limit: 0)
    } catch {
        fuzzViolation("a store that opened (revision \(before.revision)) refused a change: \(error)")
    }
    checkRange(after, limit: 0, "range(.all) after the put")
    fuzzCheck(after.revision == revision, "after the put to revision \(revision), range says revision \(after.revision)")
    fuzzCheck(after.kvs.contains { $0.key == putKey && $0.value == value && $0.modRevision == revision },
              "the put of \(putKey) at revision \(revision) is not in range(.all)")
    await store.close()

    let reopened: EmbeddedStore
    do {
        reopened = try await EmbeddedStore.open(directory: directory, clock: FrozenClock(), options: options(snapshotAfterPut: false))
    } catch {
        fuzzViolation("a store this build wrote (revision \(revision)) does not reopen: \(error)")
    }
    do {
        let again = try await reopened.range(.all, revision: nil, limit: 0)
        fuzzCheck(again == after, "the reopened store differs:\n before \(after)\n after  \(again)")
        if let lease {
            let ttl = try await reopened.timeToLive(lease.id)
            fuzzCheck(ttl == lease.ttlSeconds, "lease \(lease.id) granted for \(lease.ttlSeconds) s has \(String(describing: ttl)) s left after the reopen")
        }
    } catch {
        fuzzViolation("the reopened store refused a read: \(error)")
    }
    await reopened.close()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStoreWAL(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard bytes.count >= 1 else { return 0 }
    let flags = bytes[0]
    var rest = bytes[1...]
    var snapshot: [UInt8]?
    if flags & 1 != 0 {
        guard rest.count >= 2 else { return 0 }
        let length = min(Int(rest[rest.startIndex]) | Int(rest[rest.startIndex + 1]) << 8, rest.count - 2)
        let from = rest.startIndex + 2
        snapshot = Array(rest[from..<(from + length)])
        rest = rest[(from + length)...]
    }
    var wal = Array(rest)
    if flags & 2 != 0 { resealWAL(&wal) }
    if flags & 4 != 0, snapshot != nil { resealSnapshot(&snapshot!) }

    let directory = freshDirectory()
    if let snapshot {
        writeFile(directory + "/" + fileName("snap-", 1, ".bin"), snapshot)
        writeFile(directory + "/" + fileName("wal-", 1, ".log"), wal)
    } else {
        writeFile(directory + "/" + fileName("wal-", 0, ".log"), wal)
    }
    blocking { await run(directory: directory, options: flags) }
    removeDirectory(directory)
    return 0
}

// MARK: Seeds

/// The files of a store the seeds are made from: `body` runs against it, then it is closed.
func storeFiles(snapshotThreshold: Int, _ body: @escaping @Sendable (EmbeddedStore) async throws -> Void) -> (snapshot: [UInt8]?, wal: [UInt8]) {
    let directory = freshDirectory()
    defer { removeDirectory(directory) }
    let failure = blocking { () async -> String? in
        do {
            let store = try await EmbeddedStore.open(directory: directory, clock: FrozenClock(),
                                                     options: .init(snapshotThresholdBytes: snapshotThreshold, logger: quiet))
            try await body(store)
            await store.close()
            return nil
        } catch {
            return "\(error)"
        }
    }
    if let failure { fuzzViolation("building a seed store: \(failure)") }
    let all = names(in: directory)
    let snapshots = all.filter { $0.hasPrefix("snap-") }.sorted()
    let wals = all.filter { $0.hasPrefix("wal-") }.sorted()
    fuzzCheck(wals.count == 1 && snapshots.count <= 1, "unexpected seed store files \(all)")
    return (snapshots.last.map { readFile(directory + "/" + $0) }, readFile(directory + "/" + wals[0]))
}

/// Writes the seed corpus (HALYARD_FUZZ_WRITE_SEEDS=DIR): WALs of every record kind written by
/// the store itself, a batch frame built from them by hand, a torn tail, and snapshot + WAL pairs.
func writeSeeds(to directory: String) {
    let operations = storeFiles(snapshotThreshold: 16 << 20) { store in
        try await store.put("a", utf8("1"))
        let lease = try await store.grantLease(ttlSeconds: 60)
        try await store.put("b", utf8("2"), lease: lease.id)
        try await store.put("c/x", utf8("3"))
        try await store.put("a", utf8("4"))
        try await store.delete(.key("c/x"))
        try await store.compact(revision: 3)
        try await store.revokeLease(lease.id)
        let other = try await store.grantLease(ttlSeconds: 5)
        try await store.put("d", utf8("5"), lease: other.id)
        _ = try await store.transaction(Transaction(compares: [Compare(key: "a", .equal, .version(2))],
                                                    success: [.put(key: "e", value: utf8("6"), lease: 0), .delete(.prefix("d"))]))
    }.wal
    var seeds: [(String, [UInt8])] = [
        ("empty.bin", [0x00]),
        ("wal-ops.bin", [0x00] + operations),
        ("wal-ops-reseal-lease.bin", [0x0A] + operations),
        ("wal-ops-snapshot-after.bin", [0x10] + operations),
        ("wal-torn-tail.bin", [0x00] + operations.dropLast(3)),
    ]
    // A batch frame (kind 5) of the first three single frames, then the others.
    let chain = frames(operations)
    if chain.count > 3 {
        var body: [UInt8] = []
        var entries: [UInt8] = []
        for (offset, length) in chain[0..<3] {
            let revision = Array(operations[(offset + 8)..<(offset + 16)])
            let kind = operations[offset + 16]
            let payload = Array(operations[(offset + 17)..<(offset + 8 + length)])
            entries += revision + [kind] + le32(UInt32(payload.count)) + payload
            body = revision  // the batch carries the last entry's revision
        }
        body += [5] + le32(3) + entries
        var frame = le32(UInt32(body.count)) + [0, 0, 0, 0] + body
        put32(&frame, 4, frameCRC(frame, at: 0, bodyLength: body.count))
        seeds.append(("wal-batch.bin", [0x00] + frame + Array(operations[chain[3].offset...])))
    }
    let snapshotted = storeFiles(snapshotThreshold: 96) { store in
        let lease = try await store.grantLease(ttlSeconds: 30)
        for i in 0..<6 { try await store.put("k/\(i % 3)", utf8("v\(i)"), lease: i == 4 ? lease.id : 0) }
        try await store.compact(revision: 3)
        try await store.delete(.key("k/1"))
        try await store.put("z", utf8("last"))
    }
    if let snapshot = snapshotted.snapshot, snapshot.count <= 0xFFFF {
        let header: [UInt8] = [UInt8(snapshot.count & 0xFF), UInt8(snapshot.count >> 8)]
        seeds.append(("snapshot-wal.bin", [0x01] + header + snapshot + snapshotted.wal))
        seeds.append(("snapshot-wal-reseal.bin", [0x07] + header + snapshot + snapshotted.wal))
        seeds.append(("snapshot-only-lease.bin", [0x0D] + header + snapshot))
    }
    for (name, bytes) in seeds { writeFile(directory + "/" + name, bytes) }
    traceLine("wrote \(seeds.count) seeds to \(directory)")
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzStoreWALInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    if let directory = getenv("HALYARD_FUZZ_WRITE_SEEDS") {
        writeSeeds(to: String(cString: directory))
        exit(0)
    }
    return 0
}
