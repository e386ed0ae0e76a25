// FuzzPoolImport: libFuzzer target over a storage pool's import (`Pool.import(device:path:logger:)`
// in Sources/StoragePool): superblock selection and layout checks, checkpoint decoding, journal
// replay and the metadata check (fsck), on damaged or hand-edited metadata.
//
// Once per process, base images are built with the real pool code on a 4 MiB in-memory device
// (512-byte blocks, 64 KiB extents, a 64 KiB journal: 14 data extents), so every input starts
// from a valid pool:
//   variant 0 "live"     replicas created, grown, shared, written (thin extents), one destroyed:
//                        every journal record type, none checkpointed yet (a crash image);
//   variant 1 "imported" the same pool exported and imported again (its records folded into a
//                        checkpoint under a new generation), then a few more records;
//   variant 2 "empty"    a freshly created pool;
//   variant 3 "journal"  a pool whose every change since create is still in the journal (8
//                        records: at 4 KiB per batch, the 9th would checkpoint the 64 KiB ring).
// (Variant 0 passed that point: its ring holds records folded into a checkpoint, a live tail
// after it, and the stale records of the previous window.)
// The random first generation a pool gets at create is normalized, so the images (and so every
// input's meaning) are the same in every process.
//
// Input format:
//   byte 0   options: b1:0 variant, b2 re-seal (after the edits, recompute the CRC32Cs of both
//            superblocks, both checkpoints and every journal record that has the magic, so edits
//            reach the semantic checks behind the CRCs), b3 after a clean import, change the pool
//            (create a thin replica and write to it, set properties, grow a replica) before the
//            re-import
//   rest     edits, each: selector u8 (b1:0 region: 0 the two superblock slots [0, 8 KiB),
//            1 the journal ring, 2 checkpoint slot A, 3 checkpoint slot B, each slot's first
//            16 KiB; b2: XOR instead of overwrite), offset u16 LE (modulo the region's size),
//            length u8, then that many bytes (cut at the region's end).
//
// Checked, for each input:
//   - no crash, trap or sanitizer report, no hang;
//   - the import gives a pool or throws a `PoolError` (typed throws);
//   - an online pool's public accounting adds up: free + used == capacity, the replicas'
//     allocated bytes sum to used, committed bytes and the replica count match `replicas()`,
//     names are unique, thick replicas are fully allocated, `allocatedRanges` are sorted,
//     merged, extent-aligned, inside the replica and cover exactly its allocated extents;
//   - a faulted pool refuses changes with `.faulted`, and its ranges are still well formed;
//   - after `export`, importing the same bytes again gives the same result: the same error, the
//     same faulted pool, or (the first import checkpointed under a new generation) an online
//     pool with the same replicas, extents and accounting, also after the b3 changes.
//
// Built with -parse-as-library: there is no top-level code; libFuzzer provides `main`.
// HALYARD_FUZZ_WRITE_SEEDS=DIR: write the seed corpus to DIR and exit (see README.md).

import Dispatch
import FuzzCommon
import Logging
import NIOCore
import NIOPosix
import NVMe
import Storage
import StoragePool

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

let deviceBytes: UInt64 = 4 << 20
let deviceBlockSize = 512
let extentSize: UInt64 = 64 << 10
let poolPath = "fuzz-pool"
let poolUUID = UUID(uuidString: "8A1D0C5E-3F47-4B2A-9C61-0D2E4F6A8B10")!
/// How much of each checkpoint slot the edits and the re-seal cover (a checkpoint of these small
/// pools is one 4 KiB block; the slot is over 1 MiB of zeroes).
let checkpointWindow = 16 << 10
/// The callers' event loop (replica writes; completing the memory device's futures).
let callerLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
/// HALYARD_FUZZ_TRACE=1: print what each import gives, and the pool's log (to look at one input).
let trace = environmentFlag("HALYARD_FUZZ_TRACE")
let quiet = Logger(label: "fuzz", factory: { label in
    trace ? StreamLogHandler.standardError(label: label) as any LogHandler : SwiftLogNoOpLogHandler()
})

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

// MARK: The device

/// A memory device the pool cannot close: export closes (and frees) the backing device, and
/// the harness imports the same bytes again afterwards.
final class KeepOpenDevice: BlockDevice {
    let base: MemoryBlockDevice
    init(_ base: MemoryBlockDevice) { self.base = base }

    var blockSize: Int { base.blockSize }
    var blockCount: UInt64 { base.blockCount }
    var hasVolatileWriteCache: Bool { false }

    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        base.read(lba: lba, blocks: blocks, on: eventLoop)
    }

    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop, completion: @escaping (Result<ByteBuffer, any Error>) -> Void) {
        base.read(lba: lba, blocks: blocks, on: eventLoop, completion: completion)
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.write(lba: lba, data: data, fua: fua, on: eventLoop)
    }

    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop, completion: @escaping (Result<Void, any Error>) -> Void) {
        base.write(lba: lba, data: data, fua: fua, on: eventLoop, completion: completion)
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { base.flush(on: eventLoop) }

    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }

    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }

    func close() throws {}
}

// MARK: Metadata images

/// Where the metadata regions are (read from the base pool's superblock).
struct Layout {
    var journalOffset: UInt64
    var journalSize: Int
    var checkpointOffsets: [UInt64]
}

/// A pool's metadata: the regions the edits address, in order (superblocks, journal,
/// checkpoint A, checkpoint B).
struct Image: Equatable {
    var regions: [[UInt8]]
}

func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << ($1 * 8) }
}

func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << ($1 * 8) }
}

func put32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (i * 8)) }
}

func put64(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64) {
    for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (i * 8)) }
}

func crc(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
    bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
}

let superblockMagic: [UInt8] = Array("HLYDPOOL".utf8)
let checkpointMagic: [UInt8] = Array("HLYDCKPT".utf8)
let journalMagic: [UInt8] = Array("HLYJ".utf8)  // u32 0x4A594C48, little endian

func hasMagic(_ bytes: [UInt8], _ at: Int, _ magic: [UInt8]) -> Bool {
    at >= 0 && at + magic.count <= bytes.count && (0..<magic.count).allSatisfy { bytes[at + $0] == magic[$0] }
}

/// Offsets of everything in the ring that starts with the record magic and whose length fits.
func journalRecords(_ ring: [UInt8]) -> [Int] {
    var found: [Int] = []
    var at = 0
    while at + 40 <= ring.count {
        if ring[at] == journalMagic[0] && hasMagic(ring, at, journalMagic) && UInt64(u32(ring, at + 16)) <= UInt64(ring.count - at - 40) {
            found.append(at)
        }
        at += 1
    }
    return found
}

/// Whether the record at `at` carries a valid CRC.
func journalRecordValid(_ ring: [UInt8], _ at: Int) -> Bool {
    var copy = Array(ring[at..<(at + 40 + Int(u32(ring, at + 16)))])
    let stored = u32(copy, 20)
    put32(&copy, 20, 0)
    return crc(copy, 0..<copy.count) == stored
}

/// Recomputes the CRC of every record-like thing in the ring, last first (so a record whose
/// edited length covers the next one seals the next one's final bytes).
func resealJournal(_ ring: inout [UInt8]) {
    for at in journalRecords(ring).reversed() {
        let end = at + 40 + Int(u32(ring, at + 16))
        put32(&ring, at + 20, 0)
        put32(&ring, at + 20, crc(ring, at..<end))
    }
}

func resealCheckpoint(_ slot: inout [UInt8]) {
    guard hasMagic(slot, 0, checkpointMagic) else { return }
    let length = u64(slot, 32)
    if length <= UInt64(slot.count - 64) {
        put32(&slot, 12, crc(slot, 64..<(64 + Int(length))))
    }
    put32(&slot, 40, crc(slot, 0..<40))
}

func resealSuperblocks(_ bytes: inout [UInt8]) {
    for base in [0, 4096] where hasMagic(bytes, base, superblockMagic) {
        put32(&bytes, base + 508, crc(bytes, base..<(base + 508)))
    }
}

func reseal(_ image: inout Image) {
    resealJournal(&image.regions[1])
    resealCheckpoint(&image.regions[2])
    resealCheckpoint(&image.regions[3])
    resealSuperblocks(&image.regions[0])
}

/// Rewrites the image's generations (superblocks and valid journal records) to start at 1000,
/// keeping their differences, and re-seals what it changed.
func normalizeGenerations(_ image: inout Image) {
    var generations: [UInt64] = []
    for base in [0, 4096] where hasMagic(image.regions[0], base, superblockMagic) {
        generations.append(u64(image.regions[0], base + 32))
    }
    let records = journalRecords(image.regions[1]).filter { journalRecordValid(image.regions[1], $0) }
    for at in records { generations.append(u64(image.regions[1], at + 32)) }
    guard let lowest = generations.min() else { return }
    for base in [0, 4096] where hasMagic(image.regions[0], base, superblockMagic) {
        put64(&image.regions[0], base + 32, u64(image.regions[0], base + 32) - lowest + 1000)
    }
    for at in records.reversed() {
        put64(&image.regions[1], at + 32, u64(image.regions[1], at + 32) - lowest + 1000)
        let end = at + 40 + Int(u32(image.regions[1], at + 16))
        put32(&image.regions[1], at + 20, 0)
        put32(&image.regions[1], at + 20, crc(image.regions[1], at..<end))
    }
    resealSuperblocks(&image.regions[0])
}

/// Reads from the memory device (which completes inline).
func readBytes(_ device: MemoryBlockDevice, at offset: UInt64, count: Int) -> [UInt8] {
    var result: Result<ByteBuffer, any Error>?
    device.read(lba: offset / UInt64(deviceBlockSize), blocks: UInt32(count / deviceBlockSize), on: callerLoops.next()) { result = $0 }
    switch result {
    case .success(let buffer)?: return Array(buffer: buffer)
    case .failure(let error)?: fuzzViolation("reading the base image: \(error)")
    case nil: fuzzViolation("the memory device did not complete a read inline")
    }
}

func writeBytes(_ device: MemoryBlockDevice, _ bytes: [UInt8], at offset: UInt64) {
    device.write(lba: offset / UInt64(deviceBlockSize), data: ByteBuffer(bytes: bytes), fua: false, on: callerLoops.next()) { result in
        if case .failure(let error) = result { fuzzViolation("writing the image: \(error)") }
    }
}

func layout(of device: MemoryBlockDevice) -> Layout {
    // The newer slot (the layout fields are the same in both).
    let labels = readBytes(device, at: 0, count: 8192)
    let slot = u64(labels, 32) >= u64(labels, 4096 + 32) ? 0 : 4096
    return Layout(journalOffset: u64(labels, slot + 60), journalSize: Int(u64(labels, slot + 68)),
                  checkpointOffsets: [u64(labels, slot + 76), u64(labels, slot + 84)])
}

func capture(_ device: MemoryBlockDevice, _ layout: Layout) -> Image {
    var image = Image(regions: [
        readBytes(device, at: 0, count: 8192),
        readBytes(device, at: layout.journalOffset, count: layout.journalSize),
        readBytes(device, at: layout.checkpointOffsets[0], count: checkpointWindow),
        readBytes(device, at: layout.checkpointOffsets[1], count: checkpointWindow),
    ])
    normalizeGenerations(&image)
    return image
}

func replicaUUID(_ n: UInt8) -> UUID {
    UUID(uuid: (0x52, 0x45, 0x50, 0x4C, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, n))
}

/// Writes 4 KiB of `tag` at `lba` of a replica (a thin replica allocates the extent).
func writeReplica(_ pool: Pool, _ uuid: UUID, lba: UInt64, tag: UInt8) async throws {
    let device = try pool.device(uuid: uuid)
    defer { try? device.close() }
    var data = ByteBufferAllocator().buffer(capacity: 4096)
    data.writeRepeatingByte(tag, count: 4096)
    try await device.write(lba: lba, data: data, fua: false, on: callerLoops.next()).get()
}

/// Builds the base images (see the top of the file) with the pool's own code.
func buildImages() async throws -> (Layout, [Image]) {
    let memory = MemoryBlockDevice(blockSize: deviceBlockSize, blockCount: deviceBytes / UInt64(deviceBlockSize))
    let device = KeepOpenDevice(memory)
    let options = PoolCreateOptions(name: "fuzz", uuid: poolUUID, blockSize: 512, extentSize: extentSize, journalSize: 64 << 10)
    var pool = try await Pool.create(device: device, path: poolPath, options: options, logger: quiet)
    let layout = layout(of: memory)
    let empty = capture(memory, layout)

    let alpha = replicaUUID(1), beta = replicaUUID(2), gamma = replicaUUID(3), delta = replicaUUID(4)
    _ = try await pool.createReplica(uuid: alpha, name: "alpha", sizeBytes: 2 * extentSize, thin: false)
    _ = try await pool.createReplica(uuid: beta, name: "beta", sizeBytes: 4 * extentSize, thin: true)
    try await writeReplica(pool, beta, lba: 0, tag: 0xB0)
    try await writeReplica(pool, beta, lba: 3 * extentSize / 512, tag: 0xB3)
    _ = try await pool.setShare(uuid: beta, shared: true, allowedHosts: ["nqn.2014-08.org.nvmexpress:uuid:fuzz"])
    try await pool.saveReservationState(uuid: alpha, blob: [1, 2, 3, 4, 5, 6, 7, 8])
    try await pool.setProperties(uuid: beta, blob: Array("owner=fuzz".utf8))
    _ = try await pool.resizeReplica(uuid: alpha, sizeBytes: 3 * extentSize)
    _ = try await pool.resizeReplica(uuid: beta, sizeBytes: 5 * extentSize - 512)
    _ = try await pool.createReplica(uuid: gamma, name: "gamma", sizeBytes: extentSize, thin: true)
    try await writeReplica(pool, gamma, lba: 8, tag: 0xC0)
    try await pool.destroyReplica(uuid: gamma)
    let live = capture(memory, layout)
    await pool.export()

    pool = try await Pool.import(device: device, path: poolPath, logger: quiet)
    _ = try await pool.createReplica(uuid: delta, name: "delta", sizeBytes: 2 * extentSize, thin: true)
    try await writeReplica(pool, delta, lba: extentSize / 512, tag: 0xD1)
    try await pool.setProperties(uuid: alpha, blob: Array("tier=gold".utf8))
    _ = try await pool.setShare(uuid: alpha, shared: true, allowedHosts: [])
    let imported = capture(memory, layout)
    await pool.export()
    try memory.close()

    // Eight records, all still in the journal.
    let second = MemoryBlockDevice(blockSize: deviceBlockSize, blockCount: deviceBytes / UInt64(deviceBlockSize))
    pool = try await Pool.create(device: KeepOpenDevice(second), path: poolPath, options: options, logger: quiet)
    _ = try await pool.createReplica(uuid: alpha, name: "alpha", sizeBytes: 2 * extentSize, thin: false)
    _ = try await pool.createReplica(uuid: beta, name: "beta", sizeBytes: 3 * extentSize, thin: true)
    try await writeReplica(pool, beta, lba: 2 * extentSize / 512, tag: 0xB2)
    _ = try await pool.setShare(uuid: beta, shared: true, allowedHosts: ["nqn.2014-08.org.nvmexpress:uuid:fuzz", "nqn.h2"])
    try await pool.saveReservationState(uuid: alpha, blob: [9, 8, 7])
    _ = try await pool.resizeReplica(uuid: alpha, sizeBytes: 3 * extentSize)
    _ = try await pool.createReplica(uuid: gamma, name: "gamma", sizeBytes: extentSize, thin: false)
    try await pool.destroyReplica(uuid: gamma)
    let journal = capture(second, layout)
    await pool.export()
    try second.close()
    return (layout, [live, imported, empty, journal])
}

let base: (layout: Layout, images: [Image]) = {
    let built = blocking { () async -> Result<(Layout, [Image]), any Error> in
        do { return .success(try await buildImages()) } catch { return .failure(error) }
    }
    switch built {
    case .success(let (layout, images)):
        // Reproducibility: the images must not depend on the process (random generations).
        let again = blocking { () async -> [Image]? in try? await buildImages().1 }
        fuzzCheck(again == images, "the base images differ between two builds")
        return (layout, images)
    case .failure(let error):
        fuzzViolation("building the base images: \(error)")
    }
}()

// MARK: Inputs

/// The image an input describes: its variant, its edits, the optional re-seal.
func image(for bytes: UnsafeRawBufferPointer) -> Image {
    var image = base.images[Int(bytes[0] & 3)]
    var i = 1
    while i + 4 <= bytes.count {
        let selector = bytes[i]
        let offset = Int(bytes[i + 1]) | Int(bytes[i + 2]) << 8
        let length = Int(bytes[i + 3])
        i += 4
        let available = min(length, bytes.count - i)
        let region = Int(selector & 3)
        let size = image.regions[region].count
        let start = offset % size
        for k in 0..<min(available, size - start) {
            if selector & 4 != 0 {
                image.regions[region][start + k] ^= bytes[i + k]
            } else {
                image.regions[region][start + k] = bytes[i + k]
            }
        }
        i += available
    }
    if bytes[0] & 4 != 0 { reseal(&image) }
    return image
}

func makeDevice(_ image: Image) -> MemoryBlockDevice {
    let device = MemoryBlockDevice(blockSize: deviceBlockSize, blockCount: deviceBytes / UInt64(deviceBlockSize))
    let layout = base.layout
    writeBytes(device, image.regions[0], at: 0)
    writeBytes(device, image.regions[1], at: layout.journalOffset)
    writeBytes(device, image.regions[2], at: layout.checkpointOffsets[0])
    writeBytes(device, image.regions[3], at: layout.checkpointOffsets[1])
    return device
}

// MARK: Checks

/// What the public API shows of a pool (all but the commit counter).
struct PoolView: Equatable {
    var name: String
    var uuid: UUID
    var state: PoolState
    var capacity: UInt64
    var used: UInt64
    var free: UInt64
    var committed: UInt64
    var blockSize: Int
    var extentSize: UInt64
    var replicaCount: Int
    var replicas: [ReplicaInfo]
    var ranges: [[ByteRange]]
    var reservations: [[UInt8]?]
    var properties: [[UInt8]?]
}

func view(_ pool: Pool) -> PoolView {
    let info = pool.info
    let replicas = pool.replicas()
    var ranges: [[ByteRange]] = []
    for replica in replicas {
        do {
            ranges.append(try pool.allocatedRanges(uuid: replica.uuid))
        } catch {
            fuzzViolation("allocatedRanges of listed replica \(replica.uuid) failed: \(error)")
        }
    }
    return PoolView(name: info.name, uuid: info.uuid, state: info.state, capacity: info.capacityBytes, used: info.usedBytes,
                    free: info.freeBytes, committed: info.committedBytes, blockSize: info.blockSize, extentSize: info.extentSize,
                    replicaCount: info.replicaCount, replicas: replicas, ranges: ranges,
                    reservations: replicas.map { pool.reservationState(uuid: $0.uuid) },
                    properties: replicas.map { pool.properties(uuid: $0.uuid) })
}

/// The invariants of `view` (all of them for an online pool; the shape of the ranges for a
/// faulted one, whose metadata failed the import check).
func check(_ v: PoolView) {
    let online = v.state == .online
    let extent = v.extentSize
    fuzzCheck(extent > 0 && extent & (extent - 1) == 0, "extent size \(extent)")
    for (replica, ranges) in zip(v.replicas, v.ranges) {
        var extents: UInt64 = 0
        var previousEnd: UInt64?
        for range in ranges {
            fuzzCheck(range.length > 0 && range.offset % extent == 0 && range.end <= replica.sizeBytes,
                      "replica \(replica.uuid) (\(replica.sizeBytes) bytes): allocated range \(range)")
            if let previousEnd {
                fuzzCheck(range.offset > previousEnd, "replica \(replica.uuid): ranges \(ranges) unsorted, overlapping or not merged")
            }
            previousEnd = range.end
            extents += (range.end + extent - 1) / extent - range.offset / extent
        }
        guard online else { continue }
        let logical = (replica.sizeBytes + extent - 1) / extent
        fuzzCheck(replica.sizeBytes > 0 && replica.sizeBytes % UInt64(v.blockSize) == 0, "replica \(replica.uuid) size \(replica.sizeBytes)")
        fuzzCheck(extents * extent == replica.allocatedBytes,
                  "replica \(replica.uuid): ranges \(ranges) hold \(extents) extents, allocatedBytes \(replica.allocatedBytes)")
        fuzzCheck(replica.allocatedBytes <= logical * extent, "replica \(replica.uuid): \(replica.allocatedBytes) bytes allocated of \(replica.sizeBytes)")
        fuzzCheck(replica.thin || replica.allocatedBytes == logical * extent,
                  "thick replica \(replica.uuid) of \(replica.sizeBytes) bytes has \(replica.allocatedBytes) bytes allocated")
    }
    guard online else { return }
    fuzzCheck(v.used + v.free == v.capacity, "used \(v.used) + free \(v.free) != capacity \(v.capacity)")
    let allocated = v.replicas.reduce(0) { $0 + $1.allocatedBytes }
    fuzzCheck(allocated == v.used, "replicas hold \(allocated) bytes of extents, the pool counts \(v.used) used")
    fuzzCheck(v.replicaCount == v.replicas.count, "replicaCount \(v.replicaCount), \(v.replicas.count) replicas listed")
    fuzzCheck(v.committed == v.replicas.reduce(0) { $0 + $1.sizeBytes }, "committedBytes \(v.committed) != the sum of the replicas' sizes")
    fuzzCheck(Set(v.replicas.map(\.name)).count == v.replicas.count, "replica names are not unique: \(v.replicas.map(\.name))")
    fuzzCheck(Set(v.replicas.map(\.uuid)).count == v.replicas.count, "replica UUIDs are not unique")
}

enum Outcome: Sendable {
    case pool(Pool)
    case failed(PoolError)
}

func importPool(_ device: KeepOpenDevice) async -> Outcome {
    do throws(PoolError) {
        return .pool(try await Pool.import(device: device, path: poolPath, logger: quiet))
    } catch {
        return .failed(error)
    }
}

/// Changes an online pool through the API: whatever fails must fail with a PoolError (or a
/// block device error for a write), and leave the accounting exact.
func change(_ pool: Pool, seed: UInt8) async {
    let fresh = UUID(uuid: (0xF0, 0x22, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, seed))
    if (try? await pool.createReplica(uuid: fresh, name: "fuzz-new", sizeBytes: 2 * extentSize, thin: true)) != nil {
        try? await writeReplica(pool, fresh, lba: 0, tag: seed)
        try? await writeReplica(pool, fresh, lba: extentSize / 512 + 8, tag: seed)
    }
    if let first = pool.replicas().first {
        try? await pool.setProperties(uuid: first.uuid, blob: [seed, 1, 2])
        _ = try? await pool.resizeReplica(uuid: first.uuid, sizeBytes: first.sizeBytes + extentSize)
    }
}

func run(_ options: UInt8, _ memory: MemoryBlockDevice) async {
    let device = KeepOpenDevice(memory)
    let first = await importPool(device)
    if trace {
        switch first {
        case .failed(let error): traceLine("import: \(error)")
        case .pool(let pool): traceLine("import: \(pool.info.state), replicas \(pool.replicas().map { "\($0.name) \($0.sizeBytes) B, \($0.allocatedBytes) B allocated" })")
        }
    }
    var expected: PoolView?
    switch first {
    case .failed:
        break
    case .pool(let pool):
        var v = view(pool)
        check(v)
        if v.state == .online {
            if options & 8 != 0 {
                await change(pool, seed: options)
                v = view(pool)
                check(v)
                fuzzCheck(v.state == .online, "the pool faulted during API changes: \(v.state)")
            }
        } else {
            do throws(PoolError) {
                _ = try await pool.createReplica(uuid: replicaUUID(0xEE), name: "refused", sizeBytes: extentSize, thin: true)
                fuzzViolation("a faulted pool (\(v.state)) created a replica")
            } catch {
                guard case .faulted = error else { fuzzViolation("a faulted pool refused a create with \(error), not .faulted") }
            }
        }
        expected = v
        await pool.export()
    }

    let second = await importPool(device)
    switch (first, second) {
    case (.failed(let a), .failed(let b)):
        fuzzCheck(a == b, "importing the same bytes twice failed differently: \(a), then \(b)")
    case (.failed(let a), .pool(let pool)):
        let state = pool.info.state
        await pool.export()
        fuzzViolation("import failed (\(a)), then the same bytes imported as a pool (\(state))")
    case (.pool, .failed(let b)):
        fuzzViolation("a pool (\(expected!.state)) exported and imported again failed: \(b)")
    case (.pool, .pool(let pool)):
        let again = view(pool)
        check(again)
        await pool.export()
        fuzzCheck(again == expected!, "a pool exported and imported again differs:\n before \(expected!)\n after  \(again)")
    }
}

// MARK: Seeds

/// Writes the seed corpus (HALYARD_FUZZ_WRITE_SEEDS=DIR): every variant as is and re-sealed,
/// and edits that reach the checks behind the CRCs.
func writeSeeds(to directory: String) {
    var seeds: [(String, [UInt8])] = []
    func edit(_ selector: UInt8, _ offset: Int, _ bytes: [UInt8]) -> [UInt8] {
        [selector, UInt8(offset & 0xFF), UInt8(offset >> 8), UInt8(bytes.count)] + bytes
    }
    func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
    for (variant, name) in ["live", "imported", "empty", "journal"].enumerated() {
        seeds.append(("\(variant)-\(name).bin", [UInt8(variant)]))
        seeds.append(("\(variant)-\(name)-change.bin", [UInt8(variant) | 8]))
    }
    /// The records an import of `image` replays: valid, of the newer superblock's generation.
    func replayed(_ image: Image) -> [Int] {
        let generation = max(u64(image.regions[0], 32), u64(image.regions[0], 4096 + 32))
        return journalRecords(image.regions[1]).filter { journalRecordValid(image.regions[1], $0) && u64(image.regions[1], $0 + 32) == generation }
    }
    let live = base.images[0], imported = base.images[1], journal = base.images[3]
    let liveRecords = replayed(journal)
    let importedRecords = replayed(imported)
    // Torn writes (no re-seal): a superblock slot, a journal record, a checkpoint.
    seeds.append(("0-torn-superblock-1.bin", [0] + edit(4, 4096 + 40, [0x01])))
    if liveRecords.count > 3 { seeds.append(("3-torn-record.bin", [3] + edit(5, liveRecords[3] + 45, [0x80]))) }
    if let tail = replayed(live).first { seeds.append(("0-torn-tail-record.bin", [0] + edit(5, tail + 41, [0x01]))) }
    let newest = u64(imported.regions[0], 32) > u64(imported.regions[0], 4096 + 32) ? 0 : 4096
    let active = Int(imported.regions[0][newest + 100]) == 0 ? 2 : 3
    seeds.append(("1-torn-checkpoint.bin", [1] + edit(4 | UInt8(active), 70, [0x01])))
    // Re-sealed semantic edits.
    if liveRecords.count > 2 {
        let r = liveRecords[2]
        seeds.append(("3-record-type.bin", [7] + edit(1, r + 4, [9, 0])))
        seeds.append(("3-record-seq-gap.bin", [7] + edit(1, r + 8, le64(99))))
        seeds.append(("3-record-length.bin", [7] + edit(1, r + 16, le32(u32(journal.regions[1], r + 16) + 8))))
        seeds.append(("3-record-uuid.bin", [7] + edit(1, r + 40 + 15, [0x33])))
    }
    // An extent allocation (type 4: UUID, count, then logical/physical pairs) that maps an extent
    // a thick replica holds, and one beyond the pool's 14.
    if let r = liveRecords.first(where: { u32(journal.regions[1], $0 + 4) & 0xFFFF == 4 }) {
        seeds.append(("3-record-extent-twice.bin", [7] + edit(1, r + 40 + 16 + 4 + 4, le32(0))))
        seeds.append(("3-record-extent-beyond.bin", [7] + edit(1, r + 40 + 16 + 4 + 4, le32(14))))
    }
    if let r = importedRecords.first {
        seeds.append(("1-record-generation.bin", [5] + edit(1, r + 32, [0x01])))
    }
    // Superblock fields: generations, checkpoint seq, journal start, extent count, device size.
    seeds.append(("0-superblock-generation.bin", [4] + edit(0, 32, le64(2000))))
    seeds.append(("1-superblock-checkpoint-seq.bin", [5] + edit(0, 101, le64(1)) + edit(0, 4096 + 101, le64(1))))
    seeds.append(("1-superblock-journal-start.bin", [5] + edit(0, 109, le64(8192)) + edit(0, 4096 + 109, le64(8192))))
    seeds.append(("0-superblock-extents.bin", [4] + edit(0, 125, le64(1 << 40)) + edit(0, 4096 + 125, le64(15))))
    seeds.append(("0-superblock-huge-journal.bin", [4] + edit(0, 68, le64(0xFFFF_FFFF_FFFF_F000)) + edit(0, 4096 + 52, le64(1 << 62))))
    // Checkpoint payload: the first replica's size (after count, UUID, name).
    let slot = imported.regions[active]
    if hasMagic(slot, 0, checkpointMagic) {
        let nameLength = Int(slot[64 + 4 + 16]) | Int(slot[64 + 4 + 17]) << 8
        let sizeAt = 64 + 4 + 16 + 2 + nameLength
        seeds.append(("1-checkpoint-size.bin", [5] + edit(UInt8(active), sizeAt, le64(0xFFFF_FFFF_FFFF_FE00))))
        seeds.append(("1-checkpoint-size-small.bin", [5] + edit(UInt8(active), sizeAt, le64(512))))
        seeds.append(("1-checkpoint-count.bin", [5] + edit(UInt8(active), 64, le32(7))))
    }
    for (name, bytes) in seeds {
        let path = directory + "/" + name
        guard let file = fopen(path, "wb") else { fuzzViolation("cannot create \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    traceLine("wrote \(seeds.count) seeds to \(directory)")
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzPoolImportInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    _ = base
    if let directory = getenv("HALYARD_FUZZ_WRITE_SEEDS") {
        writeSeeds(to: String(cString: directory))
        exit(0)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPoolImport(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard bytes.count >= 1 else { return 0 }
    let options = bytes[0]
    let memory = makeDevice(image(for: bytes))
    blocking { await run(options, memory) }
    try? memory.close()
    return 0
}
