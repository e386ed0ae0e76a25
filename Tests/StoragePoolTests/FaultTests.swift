import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

@Suite("Faulted pools")
struct FaultTests {
    @Test("a CRC-valid journal record that maps an extent twice fails fsck: the pool imports faulted and read-only")
    func fsckFailure() async throws {
        let a = UUID(), b = UUID()
        let disk = MemoryBlockDevice(blockSize: 512, blockCount: (16 << 20) / 512)
        let wrapper = KeepOpenBlockDevice(disk)
        let p2 = try await Pool.create(device: wrapper, path: "memory:fsck", options: PoolCreateOptions(
            name: "fsck", extentSize: 64 << 10, journalSize: 64 << 10))
        _ = try await p2.createReplica(uuid: a, name: "a", sizeBytes: 1 << 20, thin: true)
        _ = try await p2.createReplica(uuid: b, name: "b", sizeBytes: 1 << 20, thin: true)
        try await p2.device(uuid: a).writeBytes(Pattern.block(tag: 5, lba: 0, size: 4096), at: 0, fua: true)
        let (sb2, head2, seq2, physical2) = p2.core.state.withLock { s in
            (s.superblock, s.head, s.appendedSeq, s.meta.replicas[a]!.map[0] - 1)
        }
        await p2.export()
        let forged = JournalFormat.encodeBatch(
            [(seq2 + 1, .extentAlloc(uuid: b, mappings: [ExtentMapping(logical: 0, physical: physical2)]))],
            poolLow: sb2.uuid.low64, generation: sb2.generation)
        try await disk.writeBytes(forged, at: (sb2.journalOffset + head2) / 512)

        let faulted = try await Pool.import(device: KeepOpenBlockDevice(disk), path: "memory:fsck")
        guard case .faulted(let reason) = faulted.info.state else {
            Issue.record("expected a faulted pool, got \(faulted.info.state)")
            return
        }
        #expect(reason.contains("journal record seq \(seq2 + 1)") && reason.contains("physical extent \(physical2), which is already mapped"))
        await expectPoolError(.faulted("pool is read-only: \(reason)")) { () async throws(PoolError) in
            try await faulted.createReplica(uuid: UUID(), name: "c", sizeBytes: 1 << 20, thin: true)
        }
        await expectPoolError(PoolError.faulted, containing: ["read-only"]) { () async throws(PoolError) in
            try await faulted.destroyReplica(uuid: a)
        }
        // Data stays readable; writes are refused.
        let device = try faulted.device(uuid: a)
        #expect(try await device.readBytes(at: 0, blocks: 1) == Pattern.block(tag: 5, lba: 0, size: 4096))
        await #expect(throws: BlockDeviceError.ioError(errno: EROFS)) { try await device.writeBytes(Pattern.block(tag: 6, lba: 0, size: 4096), at: 0) }
        // A faulted pool can still be destroyed (labels wiped).
        try await faulted.destroy(force: true)
        await expectPoolError(PoolError.failedPrecondition, containing: ["holds no pool label"]) { () async throws(PoolError) in
            try await Pool.import(device: KeepOpenBlockDevice(disk), path: "memory:fsck")
        }
    }

    @Test("a failed journal fdatasync fails the change with .io and faults the pool (read-only)")
    func ioFailure() async throws {
        let disk = MemoryBlockDevice(blockSize: 512, blockCount: (16 << 20) / 512)
        let faulty = FaultInjectingBlockDevice(wrapping: KeepOpenBlockDevice(disk))
        let pool = try await Pool.create(device: faulty, path: "memory:io", options: PoolCreateOptions(
            name: "io", extentSize: 64 << 10, journalSize: 64 << 10))
        let r = UUID()
        _ = try await pool.createReplica(uuid: r, name: "ok", sizeBytes: 1 << 20, thin: true)
        faulty.injectFailure(BlockDeviceError.ioError(errno: EIO), into: .flush, trigger: .always)
        await expectPoolError(PoolError.io, containing: ["journal write of seq ≤ 2 failed", "errno 5"]) { () async throws(PoolError) in
            try await pool.createReplica(uuid: UUID(), name: "lost", sizeBytes: 1 << 20, thin: true)
        }
        guard case .faulted = pool.info.state else {
            Issue.record("expected faulted, got \(pool.info.state)")
            return
        }
        await expectPoolError(PoolError.faulted, containing: ["journal write of seq ≤ 2 failed"]) { () async throws(PoolError) in
            try await pool.resizeReplica(uuid: r, sizeBytes: 2 << 20)
        }
        await #expect(throws: BlockDeviceError.ioError(errno: EROFS)) {
            try await pool.device(uuid: r).writeBytes(Pattern.block(tag: 1, lba: 0, size: 4096), at: 0)
        }
        await pool.export()
        // The acknowledged replica survives; the failed create is old-or-new (here: it never hit the disk).
        faulty.removeAllFailures()
        let again = try await Pool.import(device: KeepOpenBlockDevice(disk), path: "memory:io")
        #expect(again.info.state == .online)
        #expect(try again.replica(uuid: r).name == "ok")
        await again.export()
    }
}

/// Forwards to a device but ignores `close()`, so a test can export a pool and import the same
/// in-memory disk again.
final class KeepOpenBlockDevice: BlockDevice {
    let wrapped: any BlockDevice
    init(_ wrapped: any BlockDevice) { self.wrapped = wrapped }
    var blockSize: Int { wrapped.blockSize }
    var blockCount: UInt64 { wrapped.blockCount }
    var hasVolatileWriteCache: Bool { wrapped.hasVolatileWriteCache }
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        wrapped.read(lba: lba, blocks: blocks, on: eventLoop)
    }
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.write(lba: lba, data: data, fua: fua, on: eventLoop)
    }
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { wrapped.flush(on: eventLoop) }
    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }
    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }
    func close() throws {}
}
