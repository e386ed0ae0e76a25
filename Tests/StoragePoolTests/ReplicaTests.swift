import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

@Suite("Replicas: thin and thick allocation, errors, accounting")
struct ReplicaTests {
    @Test("idempotent create; same UUID with other parameters or a taken name is alreadyExists")
    func idempotency() async throws {
        try await withFilePool { pool, _ in
            let r = UUID()
            let first = try await pool.createReplica(uuid: r, name: "r", sizeBytes: 4 << 20, thin: true)
            let commits = pool.info.journalCommits
            let again = try await pool.createReplica(uuid: r, name: "r", sizeBytes: 4 << 20, thin: true)
            #expect(again == first)
            #expect(pool.info.journalCommits == commits, "an identical repeat writes nothing")
            await expectPoolError(PoolError.alreadyExists, containing: ["replica \(r) already exists as 'r'", "4194304", "8388608"]) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "r", sizeBytes: 8 << 20, thin: true)
            }
            await expectPoolError(PoolError.alreadyExists, containing: ["thick"]) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "r", sizeBytes: 4 << 20, thin: false)
            }
            await expectPoolError(PoolError.alreadyExists, containing: ["replica name 'r' is already used by replica \(r)"]) { () async throws(PoolError) in
                try await pool.createReplica(uuid: UUID(), name: "r", sizeBytes: 4 << 20, thin: true)
            }
            #expect(pool.replicas() == [first])
        }
    }

    @Test("every PoolError case, with a message naming the object and value")
    func errors() async throws {
        try await withFilePool { pool, _ in
            let missing = UUID()
            await expectPoolError(.notFound("replica \(missing) does not exist in pool 'test-pool'")) { () async throws(PoolError) in
                try await pool.destroyReplica(uuid: missing)
            }
            #expect(throws: PoolError.notFound("replica \(missing) does not exist in pool 'test-pool'")) { try pool.replica(uuid: missing) }
            #expect(throws: PoolError.self) { try pool.device(uuid: missing) }
            #expect(throws: PoolError.self) { try pool.allocatedRanges(uuid: missing) }
            #expect(pool.reservationState(uuid: missing) == nil)
            let r = UUID()
            await expectPoolError(.invalidArgument("replica \(r) size 1000 bytes: must be a non-zero multiple of the block size 4096")) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "x", sizeBytes: 1000, thin: true)
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["size 0 bytes"]) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "x", sizeBytes: 0, thin: true)
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["name ''"]) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "", sizeBytes: 4096, thin: true)
            }
            await expectPoolError(.outOfSpace("replica \(r) of 60817408 bytes exceeds pool 'test-pool' capacity of 58720256 bytes")) { () async throws(PoolError) in
                try await pool.createReplica(uuid: r, name: "x", sizeBytes: 58 << 20, thin: true)
            }
            _ = try await pool.createReplica(uuid: r, name: "x", sizeBytes: 8 << 20, thin: true)
            await expectPoolError(.invalidArgument("replica \(r) cannot shrink from 8388608 to 4194304 bytes (resize only grows)")) { () async throws(PoolError) in
                try await pool.resizeReplica(uuid: r, sizeBytes: 4 << 20)
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["allowed host ''"]) { () async throws(PoolError) in
                try await pool.setShare(uuid: r, shared: true, allowedHosts: [""])
            }
            await expectPoolError(PoolError.invalidArgument, containing: ["reservation state of 70000 bytes"]) { () async throws(PoolError) in
                try await pool.saveReservationState(uuid: r, blob: [UInt8](repeating: 1, count: 70000))
            }
            await expectPoolError(PoolError.failedPrecondition, containing: ["holds 1 replica"]) { () async throws(PoolError) in
                try await pool.destroy(force: false)
            }
            // .faulted and .io: see FaultTests.
        }
    }

    @Test("thin: 1 GiB replica, 8 MiB written → ≈8 MiB allocated and used; ranges; zero reads", arguments: [512, 4096])
    func thinAccounting(blockSize: Int) async throws {
        try await withFilePool(size: 2 << 30, options: PoolCreateOptions(name: "thin", blockSize: blockSize)) { pool, _ in
            let r = UUID()
            _ = try await pool.createReplica(uuid: r, name: "big", sizeBytes: 1 << 30, thin: true)
            #expect(pool.info.committedBytes == 1 << 30 && pool.info.usedBytes == 0)
            let device = try pool.device(uuid: r)
            let chunk = (1 << 20) / blockSize
            for i in 0..<8 {
                let lba = UInt64((16 + i) * chunk)
                try await device.writeBytesViaCallback(Pattern.blocks(tag: UInt64(i + 1), lba: lba, count: chunk, size: blockSize), at: lba)
            }
            try await device.flushNow()
            let info = try pool.replica(uuid: r)
            #expect(info.allocatedBytes == 8 << 20)
            #expect(pool.info.usedBytes == 8 << 20)
            #expect(pool.info.freeBytes + pool.info.usedBytes == pool.info.capacityBytes)
            #expect(try pool.allocatedRanges(uuid: r) == [ByteRange(offset: 16 << 20, length: 8 << 20)])
            for i in 0..<8 {
                let lba = UInt64((16 + i) * chunk)
                #expect(try await device.readBytes(at: lba, blocks: UInt32(chunk)) == Pattern.blocks(tag: UInt64(i + 1), lba: lba, count: chunk, size: blockSize))
            }
            // Unallocated: zeroes, both paths, and a read spanning allocated and not.
            #expect(try await device.readBytes(at: 0, blocks: 8) == [UInt8](repeating: 0, count: 8 * blockSize))
            #expect(try await device.readBytesViaCallback(at: UInt64(100 * chunk), blocks: 1) == [UInt8](repeating: 0, count: blockSize))
            let spanning = try await device.readBytes(at: UInt64(16 * chunk - 2), blocks: 4)
            #expect(Array(spanning[0..<(2 * blockSize)]) == [UInt8](repeating: 0, count: 2 * blockSize))
            #expect(Array(spanning[(2 * blockSize)...]) == Pattern.blocks(tag: 1, lba: UInt64(16 * chunk), count: 2, size: blockSize))
            // Out of range.
            await #expect(throws: BlockDeviceError.outOfRange) { try await device.readBytes(at: device.blockCount, blocks: 1) }
        }
    }

    @Test("an I/O crossing extent boundaries splits; concurrent first writes to one extent share one allocation")
    func splitAndCoalesce() async throws {
        try await withFilePool(options: PoolCreateOptions(name: "split", extentSize: 64 << 10)) { pool, _ in
            let r = UUID()
            _ = try await pool.createReplica(uuid: r, name: "r", sizeBytes: 4 << 20, thin: true)
            let device = try pool.device(uuid: r)
            // 64 KiB extents = 16 blocks: blocks 10..<40 touch extents 0, 1, 2.
            try await device.writeBytes(Pattern.blocks(tag: 7, lba: 10, count: 30, size: 4096), at: 10, fua: true)
            #expect(try pool.replica(uuid: r).allocatedBytes == 3 * (64 << 10))
            #expect(try pool.allocatedRanges(uuid: r) == [ByteRange(offset: 0, length: 3 * (64 << 10))])
            #expect(try await device.readBytes(at: 10, blocks: 30) == Pattern.blocks(tag: 7, lba: 10, count: 30, size: 4096))
            #expect(try await device.readBytes(at: 0, blocks: 10) == [UInt8](repeating: 0, count: 10 * 4096))
            // 16 concurrent writers, one block each, all into unallocated extent 10.
            let before = pool.info.journalCommits
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        let lba = UInt64(160 + i)
                        try await device.writeBytesViaCallback(Pattern.block(tag: 100 + UInt64(i), lba: lba, size: 4096), at: lba)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try pool.replica(uuid: r).allocatedBytes == 4 * (64 << 10), "one extent for all 16 writers")
            #expect(pool.info.journalCommits - before == 1, "one allocation record, one commit")
            for i in 0..<16 {
                let lba = UInt64(160 + i)
                #expect(try await device.readBytes(at: lba, blocks: 1) == Pattern.block(tag: 100 + UInt64(i), lba: lba, size: 4096))
            }
            // Write zeroes / deallocate inside allocated extents read back as zeroes.
            try await device.writeZeroes(lba: 12, blocks: 20, deallocate: false, fua: true, on: testLoops.next()).get()
            try await device.deallocate(lba: 160, blocks: 4, on: testLoops.next()).get()
            #expect(try await device.readBytes(at: 10, blocks: 30) ==
                    Pattern.blocks(tag: 7, lba: 10, count: 2, size: 4096) + [UInt8](repeating: 0, count: 20 * 4096) + Pattern.blocks(tag: 7, lba: 32, count: 8, size: 4096))
            #expect(try await device.readBytes(at: 160, blocks: 4) == [UInt8](repeating: 0, count: 4 * 4096))
        }
    }

    @Test("concurrent API changes share journal commits (group commit)")
    func groupCommit() async throws {
        try await withFilePool { pool, _ in
            let before = pool.info.journalCommits
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<24 {
                    group.addTask { _ = try await pool.createReplica(uuid: UUID(), name: "r\(i)", sizeBytes: 1 << 20, thin: true) }
                }
                try await group.waitForAll()
            }
            let commits = pool.info.journalCommits - before
            #expect(pool.info.replicaCount == 24)
            #expect(commits < 24, "24 creates in \(commits) commits")
        }
    }

    @Test("thick replicas allocate everything at create; out of space on create, resize and first write")
    func thickAndOutOfSpace() async throws {
        try await withFilePool { pool, _ in
            // 56 extents of 1 MiB.
            let thick = UUID()
            let info = try await pool.createReplica(uuid: thick, name: "thick", sizeBytes: 40 << 20, thin: false)
            #expect(info.allocatedBytes == 40 << 20 && !info.thin)
            #expect(pool.info.usedBytes == 40 << 20 && pool.info.freeBytes == 16 << 20)
            #expect(try pool.allocatedRanges(uuid: thick) == [ByteRange(offset: 0, length: 40 << 20)])
            let device = try pool.device(uuid: thick)
            #expect(try await device.readBytes(at: 1000, blocks: 2) == [UInt8](repeating: 0, count: 8192))
            let other = UUID()
            await expectPoolError(.outOfSpace("thick replica \(other) of 20971520 bytes needs 20 extents; pool 'test-pool' has 16 free")) { () async throws(PoolError) in
                try await pool.createReplica(uuid: other, name: "other", sizeBytes: 20 << 20, thin: false)
            }
            await expectPoolError(PoolError.outOfSpace, containing: ["replica \(thick) of 62914560 bytes exceeds pool 'test-pool' capacity"]) { () async throws(PoolError) in
                try await pool.resizeReplica(uuid: thick, sizeBytes: 60 << 20)
            }
            // Thin replicas may overcommit; the first write past the free extents fails with noSpace.
            let thin = UUID()
            _ = try await pool.createReplica(uuid: thin, name: "thin", sizeBytes: 32 << 20, thin: true)
            #expect(pool.info.committedBytes == 72 << 20)
            let thinDevice = try pool.device(uuid: thin)
            for i in 0..<16 {
                try await thinDevice.writeBytes(Pattern.block(tag: 1, lba: UInt64(i * 256), size: 4096), at: UInt64(i * 256))
            }
            #expect(pool.info.freeBytes == 0)
            await #expect(throws: BlockDeviceError.noSpace) {
                try await thinDevice.writeBytes(Pattern.block(tag: 2, lba: 16 * 256, size: 4096), at: 16 * 256)
            }
            await #expect(throws: BlockDeviceError.noSpace) {
                try await thinDevice.writeBytesViaCallback(Pattern.block(tag: 2, lba: 17 * 256, size: 4096), at: 17 * 256)
            }
            // Writes into allocated extents still work; the failed ones left nothing behind.
            try await thinDevice.writeBytes(Pattern.block(tag: 3, lba: 1, size: 4096), at: 1)
            #expect(try pool.replica(uuid: thin).allocatedBytes == 16 << 20)
            #expect(pool.info.usedBytes == pool.info.capacityBytes)
            await expectPoolError(.outOfSpace("growing thick replica \(thick) to 42991616 bytes needs 1 more extents; pool 'test-pool' has 0 free")) { () async throws(PoolError) in
                try await pool.resizeReplica(uuid: thick, sizeBytes: 41 << 20)
            }
            // Destroying frees; thick growth then succeeds.
            try await pool.destroyReplica(uuid: thin)
            #expect(pool.info.freeBytes == 16 << 20)
            let grown = try await pool.resizeReplica(uuid: thick, sizeBytes: 50 << 20)
            #expect(grown.allocatedBytes == 50 << 20 && device.blockCount == (50 << 20) / 4096)
            #expect(try await device.readBytes(at: (45 << 20) / 4096, blocks: 1) == [UInt8](repeating: 0, count: 4096))
        }
    }

    @Test("resize grows thin replicas (same size is a no-op); the device sees the new size")
    func resize() async throws {
        try await withFilePool { pool, _ in
            let r = UUID()
            _ = try await pool.createReplica(uuid: r, name: "r", sizeBytes: 2 << 20, thin: true)
            let device = try pool.device(uuid: r)
            await #expect(throws: BlockDeviceError.outOfRange) { try await device.writeBytes(Pattern.block(tag: 1, lba: 600, size: 4096), at: 600) }
            let grown = try await pool.resizeReplica(uuid: r, sizeBytes: 3 << 20)
            #expect(grown.sizeBytes == 3 << 20 && grown.allocatedBytes == 0)
            #expect(device.blockCount == 768)
            try await device.writeBytes(Pattern.block(tag: 1, lba: 600, size: 4096), at: 600, fua: true)
            #expect(try await device.readBytes(at: 600, blocks: 1) == Pattern.block(tag: 1, lba: 600, size: 4096))
            let same = try await pool.resizeReplica(uuid: r, sizeBytes: 3 << 20)
            #expect(same.sizeBytes == 3 << 20 && same.allocatedBytes == 1 << 20)
            #expect(pool.info.committedBytes == 3 << 20)
        }
    }

    @Test("a reused extent never shows the previous replica's data (destroy + create)")
    func reuseReadsZero() async throws {
        try await withFilePool(size: 16 << 20, options: PoolCreateOptions(name: "reuse", extentSize: 64 << 10, journalSize: 64 << 10)) { pool, _ in
            let capacity = pool.info.capacityBytes
            let a = UUID()
            _ = try await pool.createReplica(uuid: a, name: "a", sizeBytes: capacity, thin: true)
            let da = try pool.device(uuid: a)
            let blocks = Int(capacity / 4096)
            for start in stride(from: 0, to: blocks, by: 16) {
                try await da.writeBytes(Pattern.blocks(tag: 9, lba: UInt64(start), count: 16, size: 4096), at: UInt64(start))
            }
            #expect(pool.info.freeBytes == 0)
            try await pool.destroyReplica(uuid: a)
            await #expect(throws: BlockDeviceError.closed) { try await da.readBytes(at: 0, blocks: 1) }
            for thin in [true, false] {
                let b = UUID()
                _ = try await pool.createReplica(uuid: b, name: "b", sizeBytes: capacity, thin: thin)
                let db = try pool.device(uuid: b)
                // Touch every extent with a one-block write, then read the rest of each extent.
                for start in stride(from: 0, to: blocks, by: 16) {
                    try await db.writeBytes(Pattern.block(tag: 10, lba: UInt64(start), size: 4096), at: UInt64(start))
                    let rest = try await db.readBytes(at: UInt64(start + 1), blocks: 15)
                    #expect(rest.allSatisfy { $0 == 0 }, "extent at block \(start) shows old data")
                }
                try await pool.destroyReplica(uuid: b)
            }
        }
    }
}
