// PoolCrashWorker: a seeded pool workload for the kill -9 crash tests (StoragePoolTests).
//
//   PoolCrashWorker --disk FILE --seed N [--ops COUNT]
//
// Creates the pool on FILE (a 32 MiB sparse file, 64 KiB extents, a 64 KiB journal so that
// checkpoints happen often) or imports it if FILE exists, then runs COUNT seeded operations one
// at a time: replica create (thin or thick) / destroy / resize, and FUA pattern writes into
// unallocated extents of thin replicas (each one allocates). Before each operation it prints
// `BEGIN <op> <args>`, after it is acknowledged `ACK <op> <args>` (or `FAIL <op> <reason>` when
// the pool refused it), each line written straight to stdout (no buffering), so a parent that
// SIGKILLs it knows exactly which changes were acknowledged. Lines:
//
//   create <uuid> <name> <sizeBytes> <thin 0|1>
//   destroy <uuid>
//   resize <uuid> <sizeBytes>
//   write <uuid> <lba> <blocks> <tag>      (4 KiB blocks; contents: see `patternBlock`)
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import Storage
import StoragePool

func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n > 0 { done += n } else if errno != EINTR { exit(3) }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("PoolCrashWorker: " + message + "\n").utf8))
    exit(2)
}

/// Block `lba` of the write tagged `tag` (the tests compute the same bytes).
func patternBlock(tag: UInt64, lba: UInt64, size: Int) -> [UInt8] {
    var rng = SplitMix64(seed: tag &* 0x9E37_79B9 ^ lba)
    var bytes = [UInt8](repeating: 0, count: size)
    withUnsafeBytes(of: tag.littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
    withUnsafeBytes(of: lba.littleEndian) { for i in 0..<8 { bytes[8 + i] = $0[i] } }
    var i = 16
    while i < size {
        let word = rng.next()
        withUnsafeBytes(of: word) { raw in for j in 0..<min(8, size - i) { bytes[i + j] = raw[j] } }
        i += 8
    }
    return bytes
}

var diskArgument: String?
var seed: UInt64 = 0
var opCount = 200
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--disk":
        diskArgument = arguments.next()
    case "--seed":
        guard let value = arguments.next().flatMap({ UInt64($0) }) else { fail("--seed needs a number") }
        seed = value
    case "--ops":
        guard let value = arguments.next().flatMap({ Int($0) }) else { fail("--ops needs a number") }
        opCount = value
    default:
        fail("unknown argument \(argument); usage: PoolCrashWorker --disk FILE --seed N [--ops COUNT]")
    }
}
guard let disk = diskArgument else { fail("--disk is required") }
// stdout carries only the protocol lines: logs go to stderr.
LoggingSystem.bootstrap(StreamLogHandler.standardError)
await run(disk: disk, seed: seed, opCount: opCount)

func run(disk: String, seed: UInt64, opCount: Int) async {

    let extentSize: UInt64 = 64 << 10
    let blockSize = 4096
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    var rng = SplitMix64(seed: seed)
    func random(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }

    let pool: Pool
    do {
        if FileManager.default.fileExists(atPath: disk) {
            pool = try await Pool.import(path: disk, ioThreads: 2)
            emit("IMPORTED \(pool.info.replicaCount)")
        } else {
            pool = try await Pool.create(path: disk, options: PoolCreateOptions(
                name: "crash", blockSize: blockSize, extentSize: extentSize, createFileSize: 32 << 20, journalSize: 64 << 10), ioThreads: 2)
            emit("CREATED")
        }
    } catch {
        fail("cannot open the pool on \(disk): \(error)")
    }
    guard pool.info.state == .online else { fail("pool is \(pool.info.state)") }

    var nextTag = seed << 32 | 1
    for index in 0..<opCount {
        let replicas = pool.replicas()
        let choice = replicas.isEmpty ? 0 : random(10)
        let line: String
        let action: () async throws -> Void
        switch choice {
        case 0, 1:
            var bytes = [UInt8](repeating: 0, count: 16)
            for i in 0..<16 { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
            let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                                   bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
            let thin = random(4) != 0
            let size = UInt64(1 + random(thin ? 16 : 4)) * extentSize - UInt64(random(2) * blockSize)
            let name = "w\(seed)-\(index)"
            line = "create \(uuid) \(name) \(size) \(thin ? 1 : 0)"
            action = { _ = try await pool.createReplica(uuid: uuid, name: name, sizeBytes: size, thin: thin) }
        case 2:
            let r = replicas[random(replicas.count)]
            line = "destroy \(r.uuid)"
            action = { try await pool.destroyReplica(uuid: r.uuid) }
        case 3:
            let r = replicas[random(replicas.count)]
            let size = r.sizeBytes + UInt64(1 + random(3)) * extentSize
            line = "resize \(r.uuid) \(size)"
            action = { _ = try await pool.resizeReplica(uuid: r.uuid, sizeBytes: size) }
        default:
            let thin = replicas.filter(\.thin)
            guard !thin.isEmpty else { continue }
            let r = thin[random(thin.count)]
            let allocated = (try? pool.allocatedRanges(uuid: r.uuid)) ?? []
            let extents = Int((r.sizeBytes + extentSize - 1) / extentSize)
            let free = (0..<extents).filter { e in
                let start = UInt64(e) * extentSize
                return !allocated.contains { $0.offset <= start && start < $0.end }
            }
            guard !free.isEmpty else { continue }
            let extent = free[random(free.count)]
            let extentBlocks = Int(extentSize) / blockSize
            let firstLBA = UInt64(extent * extentBlocks)
            let sizeBlocks = Int(r.sizeBytes) / blockSize
            let available = min(extentBlocks, sizeBlocks - Int(firstLBA))
            let count = 1 + random(available)
            let lba = firstLBA + UInt64(random(available - count + 1))
            let tag = nextTag
            nextTag += 1
            line = "write \(r.uuid) \(lba) \(count) \(tag)"
            let data = (0..<count).flatMap { patternBlock(tag: tag, lba: lba + UInt64($0), size: blockSize) }
            action = {
                let device = try pool.device(uuid: r.uuid)
                try await device.write(lba: lba, data: ByteBuffer(bytes: data), fua: true, on: loop).get()
            }
        }
        emit("BEGIN \(line)")
        do {
            try await action()
            emit("ACK \(line)")
        } catch {
            emit("FAIL \(line) \(error)")
        }
    }
    emit("DONE")
    await pool.export()
}
