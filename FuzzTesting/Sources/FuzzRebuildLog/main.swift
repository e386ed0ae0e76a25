// FuzzRebuildLog: libFuzzer target over the nexus's durable dirty-segment log (`RebuildLog.open` in
// Sources/Nexus/Rebuild: header decoding, the volume/child/geometry check, the record scan and the
// torn-tail cut), and what a log that opened does next (markDirty, close, reopen).
//
// Each input becomes the file at `RebuildLog.path(directory:volume:child:)` in a fresh directory
// (under /dev/shm when there is one, so the fsyncs cost nothing), removed afterwards.
//
// Input format:
//   byte 0   options: b0 prepend a valid header for the expected volume, child and geometry (the
//            input's file part is then the records); b1 re-seal the header's CRC32C (of bytes
//            0..<80, at 80); b2 re-seal every complete record's CRC32C (so edited segment indexes
//            reach the range check); b3 after a successful open, mark the segments listed below
//            dirty (then close and reopen, as always); b4 after a successful open, a second open
//            of the file must fail with `.inUse`; b7:5 the geometry the open expects (`geometries`)
//   with b3: byte 1 = n (at most `maximumMarks` used), then n segment picks, u16 LE each: the
//            segment `v % segmentCount`, except 0xFFFF = `segmentCount` (out of range); the first
//            half go in one `markDirty` call, the others one call each
//   the rest: the file (with b0: what follows the header).
//
// Checked, for each input:
//   - no crash, trap or sanitizer report, no hang;
//   - the open returns a log or throws a `RebuildLogError` (typed throws), and exactly what an
//     independent decoder of the documented layout (`RebuildLogFormat`'s doc comment) says:
//     `.corrupt` for a short file, bad magic/version/header length/header CRC or a CRC-valid
//     record naming a segment ≥ segmentCount; `.headerMismatch` naming the first field of volume,
//     child, segment size, block count, block size that differs; else a log whose `dirtySegments`
//     are the CRC-valid records before the first incomplete or damaged one (sorted, unique, every
//     one < segmentCount), with `truncatedBytes` the rest of the file and `createdAt` the header's;
//   - the file is never grown or rewritten by an open: a failed open leaves it byte for byte, a
//     successful one only cuts it to its valid prefix;
//   - a second open of an open log fails with `.inUse` (b4); markDirty of an index ≥ segmentCount
//     throws `.invalidSegment` and marks nothing; after markDirty, `dirtySegments` is the union;
//     each newly marked segment appends exactly one record; after close, markDirty throws
//     `.closed`; the closed file decodes (by the independent decoder) to the same segments with no
//     torn tail, and reopens to the same `dirtySegments` with nothing truncated.
//
// Built with -parse-as-library: there is no top-level code; libFuzzer provides `main`.
// HALYARD_FUZZ_WRITE_SEEDS=DIR: write the seed corpus to DIR and exit (see README.md).

import Dispatch
import FuzzCommon
import Nexus
import NIOPosix
import NVMe

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let volume = UUID(uuidString: "5EED0001-7A11-4C0D-9E1B-2F3A4B5C6D7E")!
let child = UUID(uuidString: "C41D0002-8B22-4D1E-8F2C-3A4B5C6D7E8F")!
/// The `createdAt` of the headers the harness builds (b0): 2023-11-14T22:13:20.123456789Z.
let builtCreated: Int64 = 1_700_000_000_123_456_789
let maximumMarks = 32
let scratchRoot: String = {
    if access("/dev/shm", W_OK) == 0 { return "/dev/shm" }
    if let tmp = getenv("TMPDIR") { return String(cString: tmp) }
    return "/tmp"
}()
nonisolated(unsafe) var runCount = 0
/// HALYARD_FUZZ_TRACE=1: print what each open gives (to look at one input).
let trace = environmentFlag("HALYARD_FUZZ_TRACE")

/// What the open expects (b7:5 of byte 0): segment size, block size, block count.
struct Geometry: Sendable {
    var segmentBytes: Int
    var blockSize: Int
    var blockCount: UInt64

    /// Segments, the last possibly short (computed here, not by `SegmentGeometry`).
    var segmentCount: UInt64 {
        let blocks = UInt64(segmentBytes / blockSize)
        return blockCount / blocks + (blockCount % blocks == 0 ? 0 : 1)
    }
}

let geometries: [Geometry] = [
    Geometry(segmentBytes: 1 << 20, blockSize: 512, blockCount: 1 << 21),      // 0: 1 GiB, 1024 segments
    Geometry(segmentBytes: 1 << 20, blockSize: 4096, blockCount: 1000),        // 1: 4 segments, the last short
    Geometry(segmentBytes: 4096, blockSize: 4096, blockCount: 1),              // 2: 1 segment
    Geometry(segmentBytes: 512, blockSize: 512, blockCount: 0),                // 3: no segments at all
    Geometry(segmentBytes: 64 << 10, blockSize: 512, blockCount: 1 << 40),     // 4: 2^33 segments
    Geometry(segmentBytes: 8 << 20, blockSize: 4096, blockCount: .max),        // 5: 2^53 segments, the last short
    Geometry(segmentBytes: 512, blockSize: 512, blockCount: .max),             // 6: 2^64 - 1 segments
    Geometry(segmentBytes: 1 << 20, blockSize: 65536, blockCount: 33),         // 7: 3 segments of 16 blocks
]

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

// MARK: Files

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { fuzzViolation("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            guard n > 0 else { fuzzViolation("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }
}

func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fuzzViolation("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
    }
}

/// A fresh, empty base directory with the volume's directory in it.
func freshDirectory() -> String {
    runCount += 1
    let directory = "\(scratchRoot)/halyard-fuzz-seglog-\(getpid())-\(runCount)"
    removeDirectory(directory)
    guard mkdir(directory, 0o755) == 0, mkdir(volumeDirectory(directory), 0o755) == 0 else {
        fuzzViolation("cannot create \(directory): \(String(cString: strerror(errno)))")
    }
    return directory
}

func volumeDirectory(_ directory: String) -> String { directory + "/" + volume.uuidString.lowercased() }

/// Removes what a run leaves: the log (and a stray `.tmp`), the volume's directory, the base.
func removeDirectory(_ directory: String) {
    let path = RebuildLog.path(directory: directory, volume: volume, child: child)
    unlink(path)
    unlink(path + ".tmp")
    rmdir(volumeDirectory(directory))
    rmdir(directory)
}

// MARK: The layout, independently of RebuildLogFormat

let magic = Array("HLYDSEGL".utf8)
let headerBytes = 88
let recordBytes = 12

func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << ($1 * 8) }
}

func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << ($1 * 8) }
}

func put32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (i * 8)) }
}

func uuidBytes(_ uuid: UUID) -> [UInt8] { withUnsafeBytes(of: uuid.uuid) { Array($0) } }

func crc(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
    bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
}

/// A header for `geometry` (the documented layout).
func header(_ geometry: Geometry, volume: UUID = volume, child: UUID = child, created: Int64 = builtCreated) -> [UInt8] {
    var bytes = magic + le32(1) + le32(UInt32(headerBytes)) + uuidBytes(volume) + uuidBytes(child)
    bytes += le64(UInt64(geometry.segmentBytes)) + le64(geometry.blockCount) + le32(UInt32(geometry.blockSize)) + le32(0)
    bytes += le64(UInt64(bitPattern: created))
    bytes += le32(crc(bytes, 0..<80)) + le32(0)
    return bytes
}

func record(_ segment: UInt64) -> [UInt8] {
    let bytes = le64(segment)
    return bytes + le32(crc(bytes, 0..<8))
}

func resealHeader(_ file: inout [UInt8]) {
    guard file.count >= 84 else { return }
    put32(&file, 80, crc(file, 0..<80))
}

func resealRecords(_ file: inout [UInt8]) {
    var offset = headerBytes
    while offset + recordBytes <= file.count {
        put32(&file, offset + 8, crc(file, offset..<(offset + 8)))
        offset += recordBytes
    }
}

/// What opening `file` must give, by the layout documented in `RebuildLogFormat`.
enum Expected: Equatable {
    case corrupt
    case mismatch(field: String)
    case log(segments: [UInt64], validLength: Int, created: Int64)
}

func decode(_ file: [UInt8], _ geometry: Geometry) -> Expected {
    guard file.count >= headerBytes, Array(file[0..<8]) == magic, u32(file, 8) == 1, u32(file, 12) == UInt32(headerBytes),
          u32(file, 80) == crc(file, 0..<80) else { return .corrupt }
    if Array(file[16..<32]) != uuidBytes(volume) { return .mismatch(field: "volume") }
    if Array(file[32..<48]) != uuidBytes(child) { return .mismatch(field: "child") }
    if u64(file, 48) != UInt64(geometry.segmentBytes) { return .mismatch(field: "segment size") }
    if u64(file, 56) != geometry.blockCount { return .mismatch(field: "block count") }
    if u32(file, 64) != UInt32(geometry.blockSize) { return .mismatch(field: "block size") }
    var segments: [UInt64] = []
    var offset = headerBytes
    while offset + recordBytes <= file.count, u32(file, offset + 8) == crc(file, offset..<(offset + 8)) {
        segments.append(u64(file, offset))
        offset += recordBytes
    }
    if segments.contains(where: { $0 >= geometry.segmentCount }) { return .corrupt }
    return .log(segments: segments, validLength: offset, created: Int64(bitPattern: u64(file, 72)))
}

// MARK: The run

/// Each input gets its own I/O thread, shut down after it: the perpetual `NIOThreadPool.singleton`
/// (the default) holds its work queue where LeakSanitizer does not always see it, and reported it
/// as a leak at exit now and then.
func open(_ directory: String, _ geometry: Geometry, _ pool: NIOThreadPool) async throws(RebuildLogError) -> RebuildLog {
    try await RebuildLog.open(directory: directory, volume: volume, child: child, segmentBytes: geometry.segmentBytes,
                              blockCount: geometry.blockCount, blockSize: geometry.blockSize, threadPool: pool)
}

/// Runs `body` with a started one-thread pool, shut down afterwards.
func withThreadPool<T: Sendable>(_ body: @escaping @Sendable (NIOThreadPool) async -> T) -> T {
    let pool = NIOThreadPool(numberOfThreads: 1)
    pool.start()
    let result = blocking { await body(pool) }
    do {
        try pool.syncShutdownGracefully()
    } catch {
        fuzzViolation("cannot shut the I/O thread down: \(error)")
    }
    return result
}

func sortedUnique(_ segments: [UInt64]) -> Bool {
    zip(segments, segments.dropFirst()).allSatisfy { $0 < $1 }
}

/// The markDirty calls of b3: the first half of the picks in one call, the rest one call each.
func markCalls(_ picks: [UInt16], _ geometry: Geometry) -> [[UInt64]] {
    let count = geometry.segmentCount
    let segments = picks.map { $0 == 0xFFFF ? count : UInt64($0) % max(count, 1) }
    let half = segments.count / 2
    return (half > 0 ? [Array(segments[..<half])] : []) + segments[half...].map { [$0] }
}

func run(directory: String, file: [UInt8], geometry: Geometry, flags: UInt8, picks: [UInt16], pool: NIOThreadPool) async {
    let path = RebuildLog.path(directory: directory, volume: volume, child: child)
    let expected = decode(file, geometry)
    let log: RebuildLog
    do throws(RebuildLogError) {
        log = try await open(directory, geometry, pool)
    } catch {
        if trace { traceLine("open: \(error); expected \(expected)") }
        switch (error, expected) {
        case (.corrupt(let p, _), .corrupt):
            fuzzCheck(p == path, "corrupt names \(p), not \(path)")
        case (.headerMismatch(let p, let field, let wanted, let found), .mismatch(let expectedField)):
            fuzzCheck(p == path && field == expectedField && wanted != found,
                      "header mismatch \(error), expected one of field \(expectedField)")
        default:
            fuzzViolation("open threw \(error); expected \(expected)\n file \(hex(file))")
        }
        let after = readFile(path)
        fuzzCheck(after == file, "a failed open (\(error)) changed the file\n before \(hex(file))\n after  \(hex(after))")
        return
    }
    guard case .log(let records, let validLength, let created) = expected else {
        fuzzViolation("open gave a log of \(log.dirtySegments.count) segments; expected \(expected)\n file \(hex(file))")
    }
    let count = geometry.segmentCount
    let initial = log.dirtySegments
    if trace { traceLine("open: \(initial.count) segments (\(records.count) records), \(log.truncatedBytes) bytes cut") }
    fuzzCheck(sortedUnique(initial) && initial.allSatisfy { $0 < count },
              "dirtySegments not sorted, unique and below \(count): \(initial)")
    fuzzCheck(initial == Set(records).sorted(), "dirtySegments \(initial), records \(records)\n file \(hex(file))")
    fuzzCheck(log.truncatedBytes == file.count - validLength,
              "truncatedBytes \(log.truncatedBytes), valid prefix \(validLength) of \(file.count) bytes")
    fuzzCheck(log.createdAt == Date(timeIntervalSince1970: Double(created) / 1e9), "createdAt \(log.createdAt), header \(created) ns")
    fuzzCheck(log.geometry.segmentCount == count && log.path == path, "log geometry \(log.geometry), path \(log.path)")
    let opened = readFile(path)
    fuzzCheck(opened == Array(file[..<validLength]),
              "open did not just cut the file to its \(validLength)-byte valid prefix\n before \(hex(file))\n after  \(hex(opened))")

    if flags & 0x10 != 0 {
        do throws(RebuildLogError) {
            let second = try await open(directory, geometry, pool)
            await second.close()
            fuzzViolation("a second open of an open log succeeded")
        } catch {
            fuzzCheck(error == .inUse(path: path), "a second open of an open log threw \(error)")
        }
    }

    var marked = Set(initial)
    for call in markCalls(picks, geometry) {
        do throws(RebuildLogError) {
            try await log.markDirty(segments: call)
            fuzzCheck(call.allSatisfy { $0 < count }, "markDirty(\(call)) of \(count) segments succeeded")
            marked.formUnion(call)
        } catch {
            let bad = call.first { $0 >= count }
            fuzzCheck(bad != nil && error == .invalidSegment(bad!, segmentCount: count), "markDirty(\(call)) of \(count) segments threw \(error)")
        }
        fuzzCheck(log.dirtySegments == marked.sorted(), "after markDirty(\(call)): \(log.dirtySegments), expected \(marked.sorted())")
    }
    await log.close()
    do throws(RebuildLogError) {
        try await log.markDirty(segments: [])
        fuzzViolation("markDirty after close succeeded")
    } catch {
        fuzzCheck(error == .closed, "markDirty after close threw \(error)")
    }

    let closed = readFile(path)
    let appended = marked.count - initial.count
    fuzzCheck(closed.count == validLength + appended * recordBytes && Array(closed.prefix(validLength)) == Array(file[..<validLength]),
              "\(appended) new segments took the file from \(validLength) to \(closed.count) bytes\n file \(hex(closed))")
    guard case .log(let after, let length, let stamp) = decode(closed, geometry), length == closed.count, stamp == created,
          Set(after) == marked else {
        fuzzViolation("the closed log decodes to \(decode(closed, geometry)); marked \(marked.sorted())\n file \(hex(closed))")
    }

    let reopened: RebuildLog
    do throws(RebuildLogError) {
        reopened = try await open(directory, geometry, pool)
    } catch {
        fuzzViolation("a log that opened does not reopen after close: \(error)\n file \(hex(closed))")
    }
    fuzzCheck(reopened.dirtySegments == marked.sorted() && reopened.truncatedBytes == 0,
              "reopened: \(reopened.dirtySegments) (\(reopened.truncatedBytes) bytes cut), expected \(marked.sorted())")
    fuzzCheck(reopened.createdAt == log.createdAt, "createdAt \(log.createdAt) became \(reopened.createdAt)")
    await reopened.close()
}

/// Splits an input into its parts (see the format at the top).
func parse(_ bytes: UnsafeRawBufferPointer) -> (flags: UInt8, geometry: Geometry, picks: [UInt16], file: [UInt8])? {
    guard bytes.count >= 1 else { return nil }
    let flags = bytes[0]
    let geometry = geometries[Int(flags >> 5)]
    var rest = bytes[1...]
    var picks: [UInt16] = []
    if flags & 0x08 != 0 {
        guard let n = rest.first else { return nil }
        let from = rest.startIndex + 1
        let available = (rest.count - 1) / 2
        let used = min(Int(n), available, maximumMarks)
        picks = (0..<used).map { UInt16(rest[from + 2 * $0]) | UInt16(rest[from + 2 * $0 + 1]) << 8 }
        rest = rest[(from + 2 * min(Int(n), available))...]
    }
    var file = Array(rest)
    if flags & 0x01 != 0 {
        file = header(geometry) + file
    } else if flags & 0x02 != 0 {
        resealHeader(&file)
    }
    if flags & 0x04 != 0 { resealRecords(&file) }
    return (flags, geometry, picks, file)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRebuildLog(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = parse(UnsafeRawBufferPointer(start: start, count: count)) else { return 0 }
    let directory = freshDirectory()
    writeFile(RebuildLog.path(directory: directory, volume: volume, child: child), input.file)
    withThreadPool { pool in
        await run(directory: directory, file: input.file, geometry: input.geometry, flags: input.flags, picks: input.picks, pool: pool)
    }
    removeDirectory(directory)
    return 0
}

// MARK: Seeds

/// The file of a log the real code writes: created for `geometry`, `segments` marked, closed
/// (its creation time then set to `builtCreated`).
func realLog(_ geometry: Geometry, _ segments: [[UInt64]]) -> [UInt8] {
    let directory = freshDirectory()
    rmdir(volumeDirectory(directory))  // open creates it
    defer { removeDirectory(directory) }
    let failure = withThreadPool { pool -> String? in
        do {
            let log = try await open(directory, geometry, pool)
            for call in segments { try await log.markDirty(segments: call) }
            await log.close()
            return nil
        } catch {
            return "\(error)"
        }
    }
    if let failure { fuzzViolation("building a seed log: \(failure)") }
    var file = readFile(RebuildLog.path(directory: directory, volume: volume, child: child))
    // The creation time is now: fixed (and the header re-sealed) so the seeds are reproducible.
    file.replaceSubrange(72..<80, with: le64(UInt64(bitPattern: builtCreated)))
    resealHeader(&file)
    return file
}

func options(_ flags: UInt8, geometry: Int, picks: [UInt16] = []) -> [UInt8] {
    var bytes = [flags | UInt8(geometry) << 5]
    if flags & 0x08 != 0 {
        bytes.append(UInt8(picks.count))
        for pick in picks { bytes += [UInt8(pick & 0xFF), UInt8(pick >> 8)] }
    }
    return bytes
}

/// Writes the seed corpus (HALYARD_FUZZ_WRITE_SEEDS=DIR): logs the real code wrote for several
/// geometries, as is, torn, edited and re-sealed, with marks and a second open.
func writeSeeds(to directory: String) {
    let g0 = realLog(geometries[0], [[7, 3], [3, 4, 5], [9]])
    let g0Empty = realLog(geometries[0], [])
    let g1 = realLog(geometries[1], [[0, 3]])
    let g3 = realLog(geometries[3], [])
    let g6 = realLog(geometries[6], [[.max - 1, 0], [1 << 40]])
    let g7 = realLog(geometries[7], [[2], [0]])

    var badCRC = record(12)
    badCRC[9] ^= 0xFF
    var editedRecord = g0
    editedRecord[headerBytes] = 0x11  // segment 7 → 17, CRC stale until b2 re-seals it
    var otherChild = g0
    otherChild[40] ^= 0x5A
    var flippedHeader = g0
    flippedHeader[50] ^= 0x01
    var version2 = g0
    version2[8] = 2

    let seeds: [(String, [UInt8])] = [
        ("empty.bin", [0x00]),
        ("short.bin", options(0, geometry: 0) + g0.prefix(40)),
        ("g0-header-only.bin", options(0, geometry: 0) + g0Empty),
        ("g0-records.bin", options(0, geometry: 0) + g0),
        ("g0-records-mark.bin", options(0x08, geometry: 0, picks: [3, 100, 1023, 7, 0xFFFF, 100, 500]) + g0),
        ("g0-in-use.bin", options(0x10, geometry: 0) + g0),
        ("g0-torn-partial.bin", options(0, geometry: 0) + g0 + [1, 2, 3, 4, 5, 6, 7]),
        ("g0-torn-bad-crc.bin", options(0x08, geometry: 0, picks: [12, 13]) + g0 + badCRC + record(13)),
        ("g0-reseal-record.bin", options(0x04, geometry: 0) + editedRecord),
        ("g0-built-header.bin", options(0x01, geometry: 0) + Array(g0[headerBytes...])),
        ("g0-built-header-reseal.bin", options(0x05, geometry: 0) + le64(1023) + [0, 0, 0, 0] + le64(1024) + [0, 0, 0, 0]),
        ("g0-header-crc.bin", options(0, geometry: 0) + flippedHeader),
        ("g0-version-reseal.bin", options(0x02, geometry: 0) + version2),
        ("g0-other-child-reseal.bin", options(0x02, geometry: 0) + otherChild),
        ("g0-as-g1-mismatch.bin", options(0, geometry: 1) + g0),
        ("g1-last-segment.bin", options(0x08, geometry: 1, picks: [1, 3, 0xFFFF, 2]) + g1),
        ("g1-beyond.bin", options(0, geometry: 1) + g1 + record(4)),
        ("g3-no-segments.bin", options(0x08, geometry: 3, picks: [0, 0xFFFF]) + g3),
        ("g6-huge.bin", options(0x18, geometry: 6, picks: [0xFFFF, 5]) + g6),
        ("g6-beyond.bin", options(0, geometry: 6) + g6 + record(.max)),
        ("g7-records.bin", options(0x08, geometry: 7, picks: [1, 2, 3]) + g7),
    ]
    for (name, bytes) in seeds { writeFile(directory + "/" + name, bytes) }
    traceLine("wrote \(seeds.count) seeds to \(directory)")
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzRebuildLogInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    if let directory = getenv("HALYARD_FUZZ_WRITE_SEEDS") {
        writeSeeds(to: String(cString: directory))
        exit(0)
    }
    return 0
}
