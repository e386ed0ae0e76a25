import Foundation
import Storage
@testable import StoragePool
import Testing

@Suite("Pool on-disk formats")
struct CodecTests {
    static let uuid = UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF")!

    static func sampleSuperblock() throws -> Superblock {
        var sb = try Superblock.layout(uuid: uuid, name: "pool-a", deviceSize: 64 << 20, blockSize: 4096, extentSize: 1 << 20,
                                       journalSize: nil, createdFile: true)
        sb.generation = 0x0102_0304_0506_0708
        sb.checkpointSeq = 42
        sb.journalStart = 8192
        return sb
    }

    @Test("superblock layout of a 64 MiB pool: journal 4 MiB at 1 MiB, data extent-aligned")
    func layout() throws {
        let sb = try Self.sampleSuperblock()
        #expect(sb.journalOffset == 1 << 20)
        #expect(sb.journalSize == 4 << 20)
        #expect(sb.checkpointOffsets[0] == 5 << 20)
        #expect(sb.checkpointSize == (1 << 20) + 4096)  // 64 extents × 8 B rounded up + the table budget
        #expect(sb.checkpointOffsets[1] == sb.checkpointOffsets[0] + sb.checkpointSize)
        #expect(sb.dataOffset == 8 << 20)
        #expect(sb.extentCount == 56)
        // Journal clamp: 0.1 % of a 100 GiB device is above 64 MiB → 64 MiB.
        let big = try Superblock.layout(uuid: Self.uuid, name: "b", deviceSize: 100 << 30, blockSize: 512, extentSize: 1 << 20,
                                        journalSize: nil, createdFile: false)
        #expect(big.journalSize == 64 << 20)
        let mid = try Superblock.layout(uuid: Self.uuid, name: "b", deviceSize: 10 << 30, blockSize: 512, extentSize: 1 << 20,
                                        journalSize: nil, createdFile: false)
        #expect(mid.journalSize == (10 << 30) / 1000 / 4096 * 4096)
    }

    @Test("superblock encodes to the documented bytes and round-trips")
    func superblockBytes() throws {
        let sb = try Self.sampleSuperblock()
        let bytes = sb.encode()
        #expect(bytes.count == 4096)
        #expect(Array(bytes[0..<8]) == Array("HLYDPOOL".utf8))
        #expect(Array(bytes[8..<12]) == [1, 0, 0, 0])  // version
        #expect(Array(bytes[12..<16]) == [1, 0, 0, 0])  // flags: created the file
        #expect(Array(bytes[16..<32]) == [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF])
        #expect(Array(bytes[32..<40]) == [8, 7, 6, 5, 4, 3, 2, 1])  // generation, little endian
        #expect(Array(bytes[40..<44]) == [0x00, 0x10, 0, 0])  // block size 4096
        #expect(Array(bytes[44..<52]) == [0, 0, 0x10, 0, 0, 0, 0, 0])  // extent size 1 MiB
        #expect(Array(bytes[60..<68]) == [0, 0, 0x10, 0, 0, 0, 0, 0])  // journal offset 1 MiB
        #expect(bytes[100] == 0)  // active checkpoint
        #expect(Array(bytes[101..<109]) == [42, 0, 0, 0, 0, 0, 0, 0])  // checkpoint seq
        #expect(Array(bytes[133..<135]) == [6, 0])
        #expect(Array(bytes[135..<141]) == Array("pool-a".utf8))
        #expect(bytes[141..<508].allSatisfy { $0 == 0 })
        let crc = UInt32(bytes[508]) | UInt32(bytes[509]) << 8 | UInt32(bytes[510]) << 16 | UInt32(bytes[511]) << 24
        #expect(crc == Checksum.crc32c(bytes, range: 0..<508))
        #expect(try Superblock.decode(bytes) == sb)
        #expect(sb.createdFile)
    }

    @Test("a superblock with one flipped bit, a bad magic or an impossible layout is refused")
    func superblockCorruption() throws {
        let bytes = try Self.sampleSuperblock().encode()
        for index in [0, 9, 20, 33, 60, 101, 136, 509] {
            var corrupt = bytes
            corrupt[index] ^= 0x10
            #expect(throws: DecodeError.self) { try Superblock.decode(corrupt) }
        }
        var overlapping = try Self.sampleSuperblock()
        overlapping.dataOffset = overlapping.checkpointOffsets[1]
        #expect(throws: DecodeError.self) { try Superblock.decode(overlapping.encode()) }
        var huge = try Self.sampleSuperblock()
        huge.extentCount = 1 << 40
        #expect(throws: DecodeError.self) { try Superblock.decode(huge.encode()) }
    }

    static let records: [JournalRecord] = [
        .replicaCreate(uuid: uuid, name: "r1", size: 1 << 30, thin: true, extents: []),
        .replicaCreate(uuid: uuid, name: "thick", size: 3 << 20, thin: false, extents: [7, 8, 2]),
        .replicaResize(uuid: uuid, size: 2 << 30, extents: []),
        .replicaResize(uuid: uuid, size: 5 << 20, extents: [9, 10]),
        .replicaDestroy(uuid: uuid),
        .extentAlloc(uuid: uuid, mappings: [ExtentMapping(logical: 3, physical: 17), ExtentMapping(logical: 4, physical: 1)]),
        .replicaShare(uuid: uuid, shared: true, allowedHosts: ["nqn.2014-08.org.nvmexpress:uuid:a", "nqn.b"]),
        .replicaShare(uuid: uuid, shared: false, allowedHosts: []),
        .reservationState(uuid: uuid, blob: Array("{\"version\":1}".utf8)),
        .replicaProperties(uuid: uuid, blob: []),
    ]

    @Test("every record type round-trips through its payload codec")
    func recordRoundTrip() throws {
        for record in Self.records {
            #expect(try JournalRecord.decodePayload(type: record.type, record.encodePayload()) == record)
        }
        #expect(throws: DecodeError.self) { try JournalRecord.decodePayload(type: 99, Self.records[0].encodePayload()) }
        #expect(throws: DecodeError.self) { try JournalRecord.decodePayload(type: 1, Self.records[0].encodePayload() + [0]) }
    }

    @Test("record header bytes: magic, type, seq, length, CRC32C, pool low 64 bits, generation")
    func recordHeaderBytes() throws {
        var w = ByteWriter()
        let record = JournalRecord.replicaDestroy(uuid: Self.uuid)
        JournalFormat.encode(record, seq: 0x1122, poolLow: Self.uuid.low64, generation: 5, into: &w)
        let b = w.bytes
        #expect(b.count == 40 + 16)
        #expect(Array(b[0..<4]) == Array("HLYJ".utf8))
        #expect(Array(b[4..<6]) == [3, 0])
        #expect(Array(b[6..<8]) == [0, 0])
        #expect(Array(b[8..<16]) == [0x22, 0x11, 0, 0, 0, 0, 0, 0])
        #expect(Array(b[16..<20]) == [16, 0, 0, 0])
        #expect(Array(b[24..<32]) == [0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF])
        #expect(Self.uuid.low64 == 0xFFEE_DDCC_BBAA_9988)
        #expect(Array(b[32..<40]) == [5, 0, 0, 0, 0, 0, 0, 0])
        var zeroed = b
        for i in 20..<24 { zeroed[i] = 0 }
        let crc = UInt32(b[20]) | UInt32(b[21]) << 8 | UInt32(b[22]) << 16 | UInt32(b[23]) << 24
        #expect(crc == Checksum.crc32c(zeroed))
    }

    /// A ring with `batches` of the sample records, seq from 1, generation 7.
    static func ring(size: Int = 64 << 10, batches: [[JournalRecord]], start: Int = 0) -> [UInt8] {
        var ring = [UInt8](repeating: 0, count: size)
        var position = start
        var seq: UInt64 = 1
        for batch in batches {
            let encoded = JournalFormat.encodeBatch(batch.map { r in defer { seq += 1 }; return (seq, r) }, poolLow: uuid.low64, generation: 7)
            if position + encoded.count > size { position = 0 }
            ring.replaceSubrange(position..<(position + encoded.count), with: encoded)
            position += encoded.count
        }
        return ring
    }

    @Test("replay reads batches on 4 KiB boundaries, stops at the first gap, and follows a wrap")
    func replay() throws {
        let batches = [Array(Self.records[0..<3]), [Self.records[3]], Array(Self.records[4..<10])]
        let ring = Self.ring(batches: batches)
        let replay = JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: Self.uuid.low64, generation: 7)
        #expect(replay.records.map(\.record) == Self.records)
        #expect(replay.records.map(\.seq) == Array(1...10))
        #expect(replay.end == 3 * 4096)
        #expect(replay.corruption == nil)
        // Another generation, another pool, a later first seq: nothing replays.
        #expect(JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: Self.uuid.low64, generation: 8).records.isEmpty)
        #expect(JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: 1, generation: 7).records.isEmpty)
        #expect(JournalFormat.scan(ring: ring, start: 0, firstSeq: 2, poolLow: Self.uuid.low64, generation: 7).records.isEmpty)
        // A batch that did not fit before the ring's end went to offset 0.
        let wrapped = Self.ring(size: 16 << 10, batches: batches, start: 12 << 10)
        let replayWrapped = JournalFormat.scan(ring: wrapped, start: 12 << 10, firstSeq: 1, poolLow: Self.uuid.low64, generation: 7)
        #expect(replayWrapped.records.count == 10)
        #expect(replayWrapped.end == 8192)
    }

    @Test("a torn batch loses only itself: replay stops at the first bad record")
    func tornTail() throws {
        let batches = [Array(Self.records[0..<3]), Array(Self.records[3..<6])]
        var ring = Self.ring(batches: batches)
        ring[4096 + 60] ^= 0xFF  // inside the second batch's first record
        let replay = JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: Self.uuid.low64, generation: 7)
        #expect(replay.records.count == 3)
        #expect(replay.end == 4096)
        #expect(replay.corruption == nil)
        #expect(replay.stop.contains("CRC"))
    }

    @Test("seeded fuzz: corrupted journal bytes never trap; replay yields a clean prefix", arguments: 0..<8)
    func fuzz(seed: UInt64) throws {
        let original = Self.ring(size: 32 << 10, batches: [Array(Self.records[0..<4]), Array(Self.records[4..<7]), Array(Self.records[7..<10])])
        var rng = SplitMix64(seed: seed)
        for _ in 0..<300 {
            var ring = original
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let index = Int(rng.next() % UInt64(12 << 10))
                switch rng.next() % 3 {
                case 0: ring[index] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                case 1: ring[index] = 0xFF
                default:  // a random u32 (lengths, counts) at a random place
                    for i in 0..<4 where index + i < ring.count { ring[index + i] = UInt8(truncatingIfNeeded: rng.next()) }
                }
            }
            let replay = JournalFormat.scan(ring: ring, start: 0, firstSeq: 1, poolLow: Self.uuid.low64, generation: 7)
            // Whatever replays is a prefix of what was written (CRC32C catches the corruption).
            #expect(replay.records.map(\.record) == Array(Self.records.prefix(replay.records.count)))
            #expect(replay.end % 4096 == 0 && replay.end < UInt64(ring.count))
            // Raw payload decoding of garbage never traps either.
            let junk = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? JournalRecord.decodePayload(type: UInt16(rng.next() % 9), Self.uuid.uuidString.utf8.map { $0 } + junk)
            _ = try? JournalRecord.decodePayload(type: UInt16(rng.next() % 9), junk)
        }
    }

    @Test("checkpoint round-trips the replica table and maps; corruption is refused")
    func checkpoint() throws {
        var meta = PoolMetadata(blockSize: 4096, extentSize: 1 << 20, extentCount: 32)
        let a = UUID(), b = UUID()
        try meta.apply(.replicaCreate(uuid: a, name: "a", size: 5 << 20, thin: true, extents: []))
        try meta.apply(.extentAlloc(uuid: a, mappings: [ExtentMapping(logical: 4, physical: 9), ExtentMapping(logical: 0, physical: 3)]))
        try meta.apply(.replicaCreate(uuid: b, name: "b", size: 2 << 20, thin: false, extents: [1, 2]))
        try meta.apply(.replicaShare(uuid: b, shared: true, allowedHosts: ["nqn.host"]))
        try meta.apply(.reservationState(uuid: b, blob: [1, 2, 3]))
        let image = Checkpoint.encode(meta, seq: 12, poolLow: 99)
        #expect(image.count % 4096 == 0)
        let header = try Checkpoint.decodeHeader(image)
        #expect(header.seq == 12 && header.poolLow == 99)
        var decoded = PoolMetadata(blockSize: 4096, extentSize: 1 << 20, extentCount: 32)
        try Checkpoint.decode(image, header: header, into: &decoded)
        #expect(decoded.replicas == meta.replicas)
        #expect(decoded.usedCount == 4)
        #expect(decoded.check() == nil)
        var corrupt = image
        corrupt[Checkpoint.headerSize + 20] ^= 1
        #expect(throws: PoolError.self) { try Checkpoint.decode(corrupt, header: header, into: &decoded) }
        corrupt = image
        corrupt[30] ^= 1
        #expect(throws: DecodeError.self) { try Checkpoint.decodeHeader(corrupt) }
    }

    @Test("metadata refuses a double mapping, an out-of-range extent and a shrink (fsck rules)")
    func metadataRules() throws {
        var meta = PoolMetadata(blockSize: 4096, extentSize: 1 << 20, extentCount: 8)
        let a = UUID(), b = UUID()
        try meta.apply(.replicaCreate(uuid: a, name: "a", size: 4 << 20, thin: true, extents: []))
        try meta.apply(.replicaCreate(uuid: b, name: "b", size: 4 << 20, thin: true, extents: []))
        try meta.apply(.extentAlloc(uuid: a, mappings: [ExtentMapping(logical: 0, physical: 5)]))
        #expect(throws: PoolError.self) { try meta.apply(.extentAlloc(uuid: b, mappings: [ExtentMapping(logical: 0, physical: 5)])) }
        #expect(throws: PoolError.self) { try meta.apply(.extentAlloc(uuid: b, mappings: [ExtentMapping(logical: 1, physical: 8)])) }
        #expect(throws: PoolError.self) { try meta.apply(.extentAlloc(uuid: a, mappings: [ExtentMapping(logical: 0, physical: 6)])) }
        #expect(throws: PoolError.self) { try meta.apply(.replicaResize(uuid: a, size: 1 << 20, extents: [])) }
        let freed = try meta.apply(.replicaDestroy(uuid: a))
        #expect(freed == [5])
        try meta.apply(.extentAlloc(uuid: b, mappings: [ExtentMapping(logical: 0, physical: 5)]))
        #expect(meta.check() == nil)
        meta.rebuildFreeList()
        #expect(meta.free.count == 7 && !meta.free.contains(5))
    }
}
