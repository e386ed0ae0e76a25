/// One entry of the embedded store's write-ahead log: the outcome of something that changed
/// the store (never the request: compares, reads and failed transactions are not logged).
///
/// On disk a WAL is a sequence of frames, one per group commit:
///
///     len u32 | crc32c u32 | revision i64 | kind u8 | payload
///
/// little-endian; `len` counts the bytes after the CRC; the CRC (CRC32C, chained over `len` and
/// the rest) covers the whole frame. A frame holding one entry is that entry (kinds 1–4, whose
/// `revision` is the store revision after it); a group commit of several entries is one frame
/// of kind 5 (`batch`: count u32, then per entry revision i64, kind u8, payload length u32,
/// payload), so a crash can tear only the last frame, and a bad frame followed by a valid one is
/// corruption, never a torn write.
///
/// Payloads: changes = count u32, then per change op u8 (0 put, 1 delete), key (u32 length +
/// bytes), and for a put lease i64 and value (u32 length + bytes).
/// 1 transaction: changes · 2 lease grant: id i64, ttl i64 · 3 lease revoke: id i64,
/// expired u8, changes (the deletions) · 4 compaction: compact revision i64.
enum WALRecord: Sendable, Hashable {
    /// A transaction that wrote: `revision` is the one it created.
    case transaction(revision: Int64, changes: [KeyChange])
    /// A lease grant at store revision `revision` (grants do not advance it).
    case leaseGrant(revision: Int64, id: LeaseID, ttlSeconds: Int64)
    /// A revocation or expiry, with the deletions it made; `revision` is the store revision after
    /// it (advanced only when it deleted keys).
    case leaseRevoke(revision: Int64, id: LeaseID, expired: Bool, changes: [KeyChange])
    /// A compaction at `compactRevision`, logged at store revision `revision`.
    case compaction(revision: Int64, compactRevision: Int64)

    static let headerBytes = 8
    /// revision + kind: the smallest body.
    static let minimumBodyBytes = 9

    var revision: Int64 {
        switch self {
        case .transaction(let revision, _), .leaseGrant(let revision, _, _), .leaseRevoke(let revision, _, _, _),
             .compaction(let revision, _):
            revision
        }
    }

    private var kind: UInt8 {
        switch self {
        case .transaction: 1
        case .leaseGrant: 2
        case .leaseRevoke: 3
        case .compaction: 4
        }
    }

    private func writePayload(to writer: inout ByteWriter) {
        switch self {
        case .transaction(_, let changes):
            Self.write(changes, to: &writer)
        case .leaseGrant(_, let id, let ttl):
            writer.write(id)
            writer.write(ttl)
        case .leaseRevoke(_, let id, let expired, let changes):
            writer.write(id)
            writer.write(expired ? 1 as UInt8 : 0)
            Self.write(changes, to: &writer)
        case .compaction(_, let compactRevision):
            writer.write(compactRevision)
        }
    }

    private static func write(_ changes: [KeyChange], to writer: inout ByteWriter) {
        writer.write(UInt32(changes.count))
        for change in changes {
            switch change {
            case .put(let key, let value, let lease):
                writer.write(0 as UInt8)
                writer.writeBlob(key)
                writer.write(lease)
                writer.writeBlob(value)
            case .delete(let key):
                writer.write(1 as UInt8)
                writer.writeBlob(key)
            }
        }
    }

    /// One frame holding `records` (one, or a batch).
    static func frame(_ records: [WALRecord]) -> [UInt8] {
        precondition(!records.isEmpty)
        var writer = ByteWriter(reservingCapacity: 256)
        writer.write(0 as UInt32)  // len, patched below
        writer.write(0 as UInt32)  // crc, patched below
        if records.count == 1 {
            writer.write(records[0].revision)
            writer.write(records[0].kind)
            records[0].writePayload(to: &writer)
        } else {
            writer.write(records[records.count - 1].revision)
            writer.write(5 as UInt8)
            writer.write(UInt32(records.count))
            for record in records {
                writer.write(record.revision)
                writer.write(record.kind)
                var payload = ByteWriter()
                record.writePayload(to: &payload)
                writer.writeBlob(payload.bytes)
            }
        }
        var frame = writer.bytes
        let length = UInt32(frame.count - headerBytes)
        withUnsafeBytes(of: length.littleEndian) { frame.replaceSubrange(0..<4, with: $0) }
        let checksum = Self.checksum(frame, frameStart: 0, bodyLength: Int(length))
        withUnsafeBytes(of: checksum.littleEndian) { frame.replaceSubrange(4..<8, with: $0) }
        return frame
    }

    /// CRC32C over the length field and the body.
    private static func checksum(_ bytes: [UInt8], frameStart: Int, bodyLength: Int) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer -> UInt32 in
            let base = buffer.baseAddress! + frameStart
            let overLength = halyardCRC(0, base, 4)
            return halyardCRC(overLength, base + headerBytes, bodyLength)
        }
    }

    /// Decodes one frame's body (`bytes[range]`, CRC already checked).
    private static func decodeBody(_ bytes: [UInt8], _ range: Range<Int>) throws(StoreError) -> [WALRecord] {
        var reader = ByteReader(bytes, range: range, what: "WAL record")
        let revision = try reader.readInt64()
        let kind = try reader.readUInt8()
        var records: [WALRecord] = []
        if kind == 5 {
            let count = try reader.readCount(minimumItemBytes: 13)
            guard count >= 2 else { throw .corrupt("WAL batch of \(count) records") }
            for _ in 0..<count {
                let innerRevision = try reader.readInt64()
                let innerKind = try reader.readUInt8()
                let length = Int(try reader.readUInt32())
                guard length <= reader.remaining else { throw .corrupt("WAL batch entry overruns its frame") }
                let start = reader.offset
                var inner = ByteReader(bytes, range: start..<start + length, what: "WAL record")
                records.append(try decodePayload(kind: innerKind, revision: innerRevision, &inner))
                guard inner.isAtEnd else { throw .corrupt("WAL record has trailing bytes") }
                try reader.skip(length)
            }
            guard records.last?.revision == revision else { throw .corrupt("WAL batch revision \(revision) mismatch") }
        } else {
            records.append(try decodePayload(kind: kind, revision: revision, &reader))
        }
        guard reader.isAtEnd else { throw .corrupt("WAL record has trailing bytes") }
        return records
    }

    private static func decodePayload(kind: UInt8, revision: Int64, _ reader: inout ByteReader) throws(StoreError) -> WALRecord {
        switch kind {
        case 1:
            return .transaction(revision: revision, changes: try readChanges(&reader))
        case 2:
            return .leaseGrant(revision: revision, id: try reader.readInt64(), ttlSeconds: try reader.readInt64())
        case 3:
            let id = try reader.readInt64()
            let expired = try reader.readUInt8()
            guard expired <= 1 else { throw .corrupt("WAL lease revoke flag \(expired)") }
            return .leaseRevoke(revision: revision, id: id, expired: expired == 1, changes: try readChanges(&reader))
        case 4:
            return .compaction(revision: revision, compactRevision: try reader.readInt64())
        default:
            throw .corrupt("WAL record kind \(kind)")
        }
    }

    private static func readChanges(_ reader: inout ByteReader) throws(StoreError) -> [KeyChange] {
        let count = try reader.readCount(minimumItemBytes: 5)
        var changes: [KeyChange] = []
        changes.reserveCapacity(count)
        for _ in 0..<count {
            let op = try reader.readUInt8()
            let key = try reader.readBlob()
            switch op {
            case 0:
                let lease = try reader.readInt64()
                changes.append(.put(key: key, value: try reader.readBlob(), lease: lease))
            case 1:
                changes.append(.delete(key: key))
            default:
                throw .corrupt("WAL change op \(op)")
            }
        }
        return changes
    }

    /// What a WAL file holds: its records in order, where the valid part ends, and whether a
    /// torn frame follows it.
    struct Scan: Sendable {
        var records: [WALRecord]
        /// The length of the valid prefix (where a torn tail gets truncated).
        var validLength: Int
        /// True when bytes after `validLength` (a torn last frame) were ignored.
        var tornTail: Bool
    }

    /// Reads every frame of a WAL. A short or bad-CRC frame with no valid frame after it is a
    /// torn tail (the last group commit, never acknowledged): the scan stops before it. A bad
    /// frame followed by a valid one, or a frame whose CRC holds but whose body does not decode,
    /// throws ``StoreError/corrupt(_:)``.
    static func scan(_ bytes: [UInt8]) throws(StoreError) -> Scan {
        var records: [WALRecord] = []
        var offset = 0
        while offset < bytes.count {
            guard let length = validFrameLength(bytes, at: offset) else {
                var probe = offset + 1
                while probe + headerBytes + minimumBodyBytes <= bytes.count {
                    if validFrameLength(bytes, at: probe) != nil {
                        throw .corrupt("WAL frame at byte \(offset) is damaged but a valid frame follows at byte \(probe)")
                    }
                    probe += 1
                }
                return Scan(records: records, validLength: offset, tornTail: true)
            }
            records += try decodeBody(bytes, offset + headerBytes..<offset + headerBytes + length)
            offset += headerBytes + length
        }
        return Scan(records: records, validLength: offset, tornTail: false)
    }

    /// The body length of the frame at `offset` when it is whole and its CRC matches.
    private static func validFrameLength(_ bytes: [UInt8], at offset: Int) -> Int? {
        guard offset + headerBytes <= bytes.count else { return nil }
        let length = Int(ByteReader.uint32(bytes, at: offset))
        guard length >= minimumBodyBytes, length <= bytes.count - offset - headerBytes else { return nil }
        // A cheap plausibility check before the CRC: the kind byte after the revision.
        guard (1...5).contains(bytes[offset + headerBytes + 8]) else { return nil }
        let stored = ByteReader.uint32(bytes, at: offset + 4)
        return checksum(bytes, frameStart: offset, bodyLength: length) == stored ? length : nil
    }
}
