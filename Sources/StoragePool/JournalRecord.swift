#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One logical → physical extent mapping (both indices 0-based).
struct ExtentMapping: Equatable, Hashable, Sendable {
    var logical: UInt32
    var physical: UInt32
}

/// One metadata change. Every API change is exactly one record, so it is atomic: after a crash
/// it is either replayed whole or not at all.
enum JournalRecord: Equatable, Sendable {
    /// A new replica; a thick one carries its (already zeroed) extents for logical 0, 1, ….
    case replicaCreate(uuid: UUID, name: String, size: UInt64, thin: Bool, extents: [UInt32])
    /// A replica grows to `size`; a thick one carries the extents for its new logical extents.
    case replicaResize(uuid: UUID, size: UInt64, extents: [UInt32])
    case replicaDestroy(uuid: UUID)
    /// Extents a thin replica's first writes allocated (zeroed before this record is written).
    case extentAlloc(uuid: UUID, mappings: [ExtentMapping])
    case replicaShare(uuid: UUID, shared: Bool, allowedHosts: [String])
    /// The replica's NVMe reservation / PTPL state, an opaque blob from the target.
    case reservationState(uuid: UUID, blob: [UInt8])
    /// Opaque per-replica properties (the control plane's labels, say).
    case replicaProperties(uuid: UUID, blob: [UInt8])

    /// The record type on disk.
    var type: UInt16 {
        switch self {
        case .replicaCreate: 1
        case .replicaResize: 2
        case .replicaDestroy: 3
        case .extentAlloc: 4
        case .replicaShare: 5
        case .reservationState: 6
        case .replicaProperties: 7
        }
    }

    var uuid: UUID {
        switch self {
        case .replicaCreate(let u, _, _, _, _), .replicaResize(let u, _, _), .replicaDestroy(let u), .extentAlloc(let u, _),
             .replicaShare(let u, _, _), .reservationState(let u, _), .replicaProperties(let u, _):
            return u
        }
    }

    /// Whether data-area writes (extent zeroing) must be durable before this record is: a
    /// record that maps extents. The batch holding it starts with a flush.
    var needsBarrier: Bool {
        switch self {
        case .replicaCreate(_, _, _, _, let extents), .replicaResize(_, _, let extents): !extents.isEmpty
        case .extentAlloc: true
        default: false
        }
    }

    func encodePayload() -> [UInt8] {
        var w = ByteWriter()
        w.uuid(uuid)
        switch self {
        case .replicaCreate(_, let name, let size, let thin, let extents):
            w.string(name)
            w.u64(size)
            w.u8(thin ? 1 : 0)
            w.u32(UInt32(extents.count))
            for e in extents { w.u32(e) }
        case .replicaResize(_, let size, let extents):
            w.u64(size)
            w.u32(UInt32(extents.count))
            for e in extents { w.u32(e) }
        case .replicaDestroy:
            break
        case .extentAlloc(_, let mappings):
            w.u32(UInt32(mappings.count))
            for m in mappings {
                w.u32(m.logical)
                w.u32(m.physical)
            }
        case .replicaShare(_, let shared, let hosts):
            w.u8(shared ? 1 : 0)
            w.u16(UInt16(hosts.count))
            for h in hosts { w.string(h) }
        case .reservationState(_, let blob), .replicaProperties(_, let blob):
            w.blob(blob)
        }
        return w.bytes
    }

    static func decodePayload(type: UInt16, _ bytes: [UInt8]) throws(DecodeError) -> JournalRecord {
        var r = ByteReader(bytes)
        let uuid = try r.uuid()
        let record: JournalRecord
        switch type {
        case 1:
            let name = try r.string("replica name")
            let size = try r.u64("size")
            let thin = try r.bool("thin")
            let extents = try readExtents(&r)
            record = .replicaCreate(uuid: uuid, name: name, size: size, thin: thin, extents: extents)
        case 2:
            let size = try r.u64("size")
            record = .replicaResize(uuid: uuid, size: size, extents: try readExtents(&r))
        case 3:
            record = .replicaDestroy(uuid: uuid)
        case 4:
            let count = Int(try r.u32("mapping count"))
            guard count <= r.remaining / 8 else { throw DecodeError("extent alloc: \(count) mappings in \(r.remaining) bytes") }
            var mappings: [ExtentMapping] = []
            mappings.reserveCapacity(count)
            for _ in 0..<count {
                mappings.append(ExtentMapping(logical: try r.u32("logical"), physical: try r.u32("physical")))
            }
            record = .extentAlloc(uuid: uuid, mappings: mappings)
        case 5:
            let shared = try r.bool("shared")
            let count = Int(try r.u16("host count"))
            var hosts: [String] = []
            for _ in 0..<count { hosts.append(try r.string("host NQN")) }
            record = .replicaShare(uuid: uuid, shared: shared, allowedHosts: hosts)
        case 6:
            record = .reservationState(uuid: uuid, blob: try r.blob("reservation state"))
        case 7:
            record = .replicaProperties(uuid: uuid, blob: try r.blob("properties"))
        default:
            throw DecodeError("unknown record type \(type)")
        }
        guard r.remaining == 0 else { throw DecodeError("record type \(type): \(r.remaining) trailing bytes") }
        return record
    }

    private static func readExtents(_ r: inout ByteReader) throws(DecodeError) -> [UInt32] {
        let count = Int(try r.u32("extent count"))
        guard count <= r.remaining / 4 else { throw DecodeError("\(count) extents in \(r.remaining) bytes") }
        var extents: [UInt32] = []
        extents.reserveCapacity(count)
        for _ in 0..<count { extents.append(try r.u32("extent")) }
        return extents
    }
}

/// The journal's record framing. A record is a 40-byte header and its payload:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic "HLYJ" |
/// | 4 | 2 | type |
/// | 6 | 2 | flags (0) |
/// | 8 | 8 | seq |
/// | 16 | 4 | payload length |
/// | 20 | 4 | CRC32C of header (this field 0) + payload |
/// | 24 | 8 | pool UUID, low 64 bits |
/// | 32 | 8 | superblock generation the record was written under |
///
/// Records of one commit batch are packed back to back; the batch is padded with zeroes to a
/// multiple of 4 KiB and the next batch starts on a fresh 4 KiB block, so a block holding
/// acknowledged records is never rewritten. A batch never wraps around the ring's end.
///
/// The generation field (beyond the plan's header) makes replay exact after a crash: import
/// always checkpoints under a new generation before writing records, so stale records of an
/// older generation left behind a torn tail can never be mistaken for new ones.
enum JournalFormat {
    static let magic: UInt32 = 0x4A59_4C48  // "HLYJ"
    static let headerSize = 40
    static let blockSize: UInt64 = 4096
    /// A record larger than this is corrupt (the API bounds every record far below it).
    static let maximumPayload = 16 << 20

    /// Encodes one record (header + payload).
    static func encode(_ record: JournalRecord, seq: UInt64, poolLow: UInt64, generation: UInt64, into w: inout ByteWriter) {
        let payload = record.encodePayload()
        let start = w.count
        w.u32(magic)
        w.u16(record.type)
        w.u16(0)
        w.u64(seq)
        w.u32(UInt32(payload.count))
        w.u32(0)
        w.u64(poolLow)
        w.u64(generation)
        w.raw(payload)
        let crc = Checksum.crc32c(w.bytes, range: start..<w.count)
        w.patchU32(crc, at: start + 20)
    }

    /// A commit batch: the records, padded to a multiple of 4 KiB.
    static func encodeBatch(_ records: [(seq: UInt64, record: JournalRecord)], poolLow: UInt64, generation: UInt64) -> [UInt8] {
        var w = ByteWriter()
        for (seq, record) in records { encode(record, seq: seq, poolLow: poolLow, generation: generation, into: &w) }
        w.pad(toMultipleOf: Int(blockSize))
        return w.bytes
    }

    /// The result of scanning the journal ring.
    struct Replay {
        var records: [(seq: UInt64, record: JournalRecord)] = []
        /// The ring offset where the next batch goes (4 KiB aligned).
        var end: UInt64
        /// Bytes of the ring the replayed window occupies (including a skipped tail at a wrap).
        var used: UInt64
        /// Why the scan stopped.
        var stop: String
        /// A CRC-valid record that could not be decoded: corruption no torn write explains.
        var corruption: String?
    }

    /// Scans `ring` (the whole journal region) from `start`, replaying records with consecutive
    /// seqs from `firstSeq` while each is whole, CRC-valid and of this pool and generation.
    /// A failed record at an unaligned offset is batch padding: the scan retries at the next
    /// 4 KiB block, then at ring offset 0 (a batch that did not fit before the end wrapped).
    static func scan(ring: [UInt8], start: UInt64, firstSeq: UInt64, poolLow: UInt64, generation: UInt64) -> Replay {
        let size = UInt64(ring.count)
        var position = start
        var expected = firstSeq
        var used: UInt64 = 0
        var replay = Replay(end: start, used: 0, stop: "")
        func attempt(_ at: UInt64) -> Result<(JournalRecord, UInt64), ScanStop> {
            readRecord(ring: ring, at: at, expectedSeq: expected, poolLow: poolLow, generation: generation)
        }
        while used < size {
            var result = attempt(position)
            // The failure where the next batch would start (after padding), for the stop reason.
            var primary: ScanStop? = if case .failure(let stop) = result { stop } else { nil }
            var skipped: UInt64 = 0
            if case .failure(let stop) = result, case .corrupt = stop {
                replay.corruption = stop.description
                replay.stop = stop.description
                break
            }
            if case .failure = result, position % blockSize != 0 {
                let next = alignUp(position, blockSize)
                skipped = next - position
                position = next
                result = next < size ? attempt(next) : .failure(.end("ring end"))
                if next < size, case .failure(let stop) = result { primary = stop }
            }
            // So is one where the next batch would start: do not look past it for a wrapped
            // batch (whose failure would replace it, and the replay end quietly before it).
            if case .failure(let stop) = result, case .corrupt = stop {
                replay.corruption = stop.description
                replay.stop = stop.description
                break
            }
            if case .failure = result, position != 0 {
                skipped += size - position
                result = attempt(0)
                if case .success = result { position = 0 }
            }
            switch result {
            case .success(let (record, length)):
                replay.records.append((expected, record))
                expected += 1
                used += skipped + length
                position += length
            case .failure(let stop):
                if case .corrupt = stop { replay.corruption = stop.description }
                // Why the record where the window would continue failed (not the retries').
                replay.stop = (primary ?? stop).description
                replay.end = alignUp(position, blockSize) % size
                replay.used = alignUp(used, blockSize)
                return replay
            }
        }
        replay.end = alignUp(position, blockSize) % size
        replay.used = alignUp(used, blockSize)
        if replay.stop.isEmpty { replay.stop = "journal window full" }
        return replay
    }

    /// The highest generation of any CRC-valid record of pool `poolLow` that starts a 4 KiB
    /// block of the ring (every batch does, and a batch has one generation); 0 if none. Import
    /// moves past it, so records journaled under a label that has since been damaged (and
    /// that import fell back from) can never match a generation it writes.
    static func highestGeneration(ring: [UInt8], poolLow: UInt64) -> UInt64 {
        var highest: UInt64 = 0
        var offset = 0
        while offset + headerSize <= ring.count {
            defer { offset += Int(blockSize) }
            var r = ByteReader(ring, offset: offset, end: offset + headerSize)
            guard let magic = try? r.u32(), magic == self.magic, (try? r.u16()) != nil, (try? r.u16()) != nil,
                (try? r.u64()) != nil, let length = try? r.u32(), let storedCRC = try? r.u32(), let low = try? r.u64(),
                let generation = try? r.u64(), low == poolLow, generation > highest,
                Int(length) <= maximumPayload, Int(length) <= ring.count - offset - headerSize
            else { continue }
            var header = Array(ring[offset..<(offset + headerSize)])
            for i in 20..<24 { header[i] = 0 }
            let crc = Checksum.crc32c(ring, range: (offset + headerSize)..<(offset + headerSize + Int(length)),
                                      continuing: Checksum.crc32c(header))
            if crc == storedCRC { highest = generation }
        }
        return highest
    }

    enum ScanStop: Error, CustomStringConvertible {
        case end(String)
        case corrupt(String)
        var description: String {
            switch self {
            case .end(let s): s
            case .corrupt(let s): s
            }
        }
    }

    /// One record at `offset`, or why there is none.
    static func readRecord(ring: [UInt8], at offset: UInt64, expectedSeq: UInt64, poolLow: UInt64, generation: UInt64)
        -> Result<(JournalRecord, UInt64), ScanStop>
    {
        let size = UInt64(ring.count)
        guard offset < size, size - offset >= UInt64(headerSize) else { return .failure(.end("no room for a header at \(offset)")) }
        let o = Int(offset)
        var r = ByteReader(ring, offset: o, end: o + headerSize)
        do {
            let magic = try r.u32()
            guard magic == self.magic else { return .failure(.end("no record at \(offset) (magic 0x\(String(magic, radix: 16)))")) }
            let type = try r.u16()
            _ = try r.u16()
            let seq = try r.u64()
            let length = try r.u32()
            let storedCRC = try r.u32()
            let low = try r.u64()
            let gen = try r.u64()
            guard low == poolLow else { return .failure(.end("record at \(offset) belongs to another pool")) }
            guard gen == generation else { return .failure(.end("record at \(offset) is of generation \(gen), not \(generation)")) }
            guard seq == expectedSeq else { return .failure(.end("record at \(offset) has seq \(seq), expected \(expectedSeq)")) }
            guard Int(length) <= maximumPayload, UInt64(length) <= size - offset - UInt64(headerSize) else {
                return .failure(.end("record seq \(seq) at \(offset): length \(length) runs past the ring"))
            }
            let total = headerSize + Int(length)
            var header = Array(ring[o..<(o + headerSize)])
            for i in 20..<24 { header[i] = 0 }
            var crc = Checksum.crc32c(header)
            crc = Checksum.crc32c(ring, range: (o + headerSize)..<(o + total), continuing: crc)
            guard crc == storedCRC else { return .failure(.end("record seq \(seq) at \(offset): CRC mismatch (torn write)")) }
            let payload = Array(ring[(o + headerSize)..<(o + total)])
            do {
                let record = try JournalRecord.decodePayload(type: type, payload)
                return .success((record, UInt64(total)))
            } catch {
                return .failure(.corrupt("record seq \(seq) at \(offset) has a valid CRC but cannot be decoded: \(error)"))
            }
        } catch {
            return .failure(.end("short header at \(offset)"))
        }
    }
}
