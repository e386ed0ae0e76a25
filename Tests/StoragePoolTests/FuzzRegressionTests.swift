import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

/// Regressions for what FuzzTesting/FuzzPoolImport found (reproducers in
/// FuzzTesting/FailCases/FuzzPoolImport/).
@Suite("Pool import: fuzzer regressions")
struct FuzzRegressionTests {
    static func layout() throws -> Superblock {
        try Superblock.layout(uuid: UUID(), name: "f", deviceSize: 64 << 20, blockSize: 4096, extentSize: 1 << 20,
                              journalSize: nil, createdFile: false)
    }

    @Test("a label whose journal or checkpoint end wraps past 2^64 is refused, not trusted (P1)")
    func wrappingRegions() throws {
        // The journal end wrapped to below checkpoint A and passed the overlap check; import
        // then read a journal of ~2^64 bytes and trapped converting its block count to UInt32.
        var journal = try Self.layout()
        journal.journalSize = 0xFFFF_FFFF_FFFF_F000
        journal.journalStart = 0
        #expect(throws: DecodeError.self) { try Superblock.decode(journal.encode()) }
        var slotA = try Self.layout()
        slotA.checkpointSize = 0xFFFF_FFFF_FFF0_0000
        #expect(throws: DecodeError.self) { try Superblock.decode(slotA.encode()) }
        var slotB = try Self.layout()
        slotB.checkpointOffsets[1] = 0xFFFF_FFFF_FFFF_0000
        #expect(throws: DecodeError.self) { try Superblock.decode(slotB.encode()) }
        let valid = try Self.layout()
        #expect(try Superblock.decode(valid.encode()) == valid)
    }

    @Test("import after falling back to the older label never reuses the damaged label's generation (P2)")
    func fallbackDoesNotResurrectRecords() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("pool.img")
            let a = UUID(), b = UUID()
            var pool = try await Pool.create(path: path, options: PoolCreateOptions(name: "p", blockSize: 512, extentSize: 64 << 10,
                                                                                 createFileSize: 8 << 20, journalSize: 64 << 10),
                                             ioThreads: 1, logger: quietLogger)
            _ = try await pool.createReplica(uuid: a, name: "a", sizeBytes: 64 << 10, thin: true)
            await pool.export()
            // Create left labels g (slot 0) and g + 1 (slot 1, "a" journaled under it); this
            // import writes label g + 2 to slot 0 and journals "b" under it.
            pool = try await Pool.import(path: path, ioThreads: 1, logger: quietLogger)
            _ = try await pool.createReplica(uuid: b, name: "b", sizeBytes: 64 << 10, thin: true)
            await pool.export()

            // The newer label is damaged: import falls back to the older one and loses "b".
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            let labels = [UInt8](try handle.read(upToCount: 8192) ?? Data())
            func generation(_ slot: Int) -> UInt64 {
                (0..<8).reduce(0) { $0 | UInt64(labels[slot * 4096 + 32 + $1]) << ($1 * 8) }
            }
            let newer = generation(0) > generation(1) ? 0 : 1
            try handle.seek(toOffset: UInt64(newer * 4096 + 200))
            try handle.write(contentsOf: Data([0xFF]))
            try handle.close()
            pool = try await Pool.import(path: path, ioThreads: 1, logger: quietLogger)
            #expect(pool.info.state == .online)
            #expect(pool.replicas().map(\.name) == ["a"])
            await pool.export()

            // Imported again, "b" must stay gone: its record, left in the ring right where the
            // fallback's window ended, had the generation the fallback import wrote (g + 2).
            pool = try await Pool.import(path: path, ioThreads: 1, logger: quietLogger)
            #expect(pool.info.state == .online)
            #expect(pool.replicas().map(\.name) == ["a"])
            await pool.export()
        }
    }

    @Test("a CRC-valid label whose generation cannot advance imports faulted, without trapping (P3)")
    func exhaustedGeneration() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir.file("pool.img")
            let pool = try await Pool.create(path: path, options: PoolCreateOptions(name: "p", createFileSize: 8 << 20, journalSize: 64 << 10),
                                             ioThreads: 1, logger: quietLogger)
            await pool.export()
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            for slot in 0..<2 {
                try handle.seek(toOffset: UInt64(slot * 4096))
                var label = try Superblock.decode([UInt8](try handle.read(upToCount: 4096) ?? Data()))
                label.generation = .max - UInt64(1 - slot)
                try handle.seek(toOffset: UInt64(slot * 4096))
                try handle.write(contentsOf: Data(label.encode()))
            }
            try handle.close()
            let faulted = try await Pool.import(path: path, ioThreads: 1, logger: quietLogger)
            guard case .faulted(let reason) = faulted.info.state else {
                Issue.record("imported \(faulted.info.state)")
                return
            }
            #expect(reason.contains("generation"))
            await faulted.export()
        }
    }

    @Test("a CRC-valid record that does not decode at the next batch's block is corruption, not the end (P5)")
    func undecodableRecordAtBatchStart() {
        let uuid = UUID()
        let low = uuid.low64
        var ring = [UInt8](repeating: 0, count: 32 << 10)
        let first = JournalFormat.encodeBatch([(1, .replicaCreate(uuid: uuid, name: "a", size: 1 << 20, thin: true, extents: []))],
                                              poolLow: low, generation: 7)
        ring.replaceSubrange(0..<first.count, with: first)
        // Seq 2 in the next block, CRC-valid, of an unknown type: corruption no torn write explains.
        var bad = JournalFormat.encodeBatch([(2, .replicaDestroy(uuid: uuid))], poolLow: low, generation: 7)
        bad[4] = 9
        for i in 20..<24 { bad[i] = 0 }
        let length = 40 + Int(bad[16]) | Int(bad[17]) << 8
        let crc = Checksum.crc32c(bad, range: 0..<length)
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bad[20 + i] = $0[i] } }
        ring.replaceSubrange(4096..<(4096 + bad.count), with: bad)
        let replay = JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: low, generation: 7)
        #expect(replay.records.count == 1)
        #expect(replay.corruption?.contains("unknown record type 9") == true)
    }

    @Test("a replica size near 2^64 in a checkpoint or record is refused, not an overflow trap (P4)")
    func hugeReplicaSize() {
        var meta = PoolMetadata(blockSize: 512, extentSize: 64 << 10, extentCount: 14)
        #expect(meta.logicalExtents(0xFFFF_FFFF_FFFF_FE00) == 1 << 48)
        #expect(meta.logicalExtents(64 << 10) == 1 && meta.logicalExtents((64 << 10) + 512) == 2 && meta.logicalExtents(0) == 0)
        #expect(throws: PoolError.self) {
            try meta.apply(.replicaCreate(uuid: UUID(), name: "huge", size: 0xFFFF_FFFF_FFFF_FE00, thin: true, extents: []))
        }
        var source = PoolMetadata(blockSize: 512, extentSize: 64 << 10, extentCount: 14)
        let uuid = UUID()
        try? source.apply(.replicaCreate(uuid: uuid, name: "r", size: 64 << 10, thin: true, extents: []))
        source.replicas[uuid]?.size = 0xFFFF_FFFF_FFFF_FE00
        let image = Checkpoint.encode(source, seq: 1, poolLow: 5)
        #expect(throws: PoolError.self) { try Checkpoint.decode(image, header: try Checkpoint.decodeHeader(image), into: &meta) }
    }
}
