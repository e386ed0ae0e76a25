/// The embedded store's snapshot file, `snap-<sequence>.bin`: the whole ``StoreState`` —
/// every key's history since the compaction point (not just current values), the compaction
/// revision, the leases (ID and TTL; deadlines restart at open) and the next lease ID — so a
/// restart loses no history and keeps the compaction point.
///
///     magic "HSNP" u32 | format u32 = 1 | revision i64 | compactRevision i64 | nextLeaseID i64
///     | lease count u32, per lease: id i64, ttl i64
///     | key count u32, per key: key (u32 length + bytes), version count u32, per version:
///       revision i64, sub u32, tombstone u8, createRevision i64, version i64, lease i64,
///       value (u32 length + bytes)
///     | crc32c u32 of everything before
///
/// Written as `<name>.tmp`, fsync, rename, fsync of the directory; a snapshot that fails its
/// CRC or does not decode is ``StoreError/corrupt(_:)``.
enum StoreSnapshot {
    static let magic: UInt32 = 0x504E_5348  // "HSNP" little-endian
    static let format: UInt32 = 1

    static func encode(_ state: StoreState) -> [UInt8] {
        var writer = ByteWriter(reservingCapacity: 1 << 16)
        writer.write(magic)
        writer.write(format)
        writer.write(state.mvcc.revision)
        writer.write(state.mvcc.compactRevision)
        writer.write(state.leases.nextID)
        let leases = state.leases.leases.sorted { $0.key < $1.key }
        writer.write(UInt32(leases.count))
        for (id, entry) in leases {
            writer.write(id)
            writer.write(entry.ttlSeconds)
        }
        writer.write(UInt32(state.mvcc.sortedKeys.count))
        for key in state.mvcc.sortedKeys {
            let versions = state.mvcc.histories[key] ?? []
            writer.writeBlob(key)
            writer.write(UInt32(versions.count))
            for version in versions {
                writer.write(version.revision)
                writer.write(UInt32(bitPattern: version.sub))
                writer.write(version.isTombstone ? 1 as UInt8 : 0)
                writer.write(version.createRevision)
                writer.write(version.version)
                writer.write(version.lease)
                writer.writeBlob(version.value)
            }
        }
        writer.write(storeCRC32C(writer.bytes, 0..<writer.bytes.count))
        return writer.bytes
    }

    /// Decodes a snapshot; lease deadlines become `now` + TTL.
    static func decode(_ bytes: [UInt8], now: Duration) throws(StoreError) -> StoreState {
        guard bytes.count >= 8 + 4 else { throw .corrupt("snapshot of \(bytes.count) bytes") }
        let stored = ByteReader.uint32(bytes, at: bytes.count - 4)
        guard storeCRC32C(bytes, 0..<bytes.count - 4) == stored else { throw .corrupt("snapshot CRC mismatch") }
        var reader = ByteReader(bytes, range: 0..<bytes.count - 4, what: "snapshot")
        guard try reader.readUInt32() == magic else { throw .corrupt("not a snapshot (bad magic)") }
        let version = try reader.readUInt32()
        guard version == format else { throw .corrupt("snapshot format \(version) (this build reads \(format))") }
        let revision = try reader.readInt64()
        let compactRevision = try reader.readInt64()
        let nextLeaseID = try reader.readInt64()
        let leaseCount = try reader.readCount(minimumItemBytes: 16)
        var leases: [(LeaseID, Int64)] = []
        for _ in 0..<leaseCount { leases.append((try reader.readInt64(), try reader.readInt64())) }
        let keyCount = try reader.readCount(minimumItemBytes: 8)
        var histories: [([UInt8], [KeyVersion])] = []
        histories.reserveCapacity(keyCount)
        for _ in 0..<keyCount {
            let key = try reader.readBlob()
            let versionCount = try reader.readCount(minimumItemBytes: 41)
            var versions: [KeyVersion] = []
            versions.reserveCapacity(versionCount)
            for _ in 0..<versionCount {
                let revision = try reader.readInt64()
                let sub = Int32(bitPattern: try reader.readUInt32())
                let tombstone = try reader.readUInt8()
                guard tombstone <= 1 else { throw .corrupt("snapshot tombstone flag \(tombstone)") }
                let createRevision = try reader.readInt64()
                let version = try reader.readInt64()
                let lease = try reader.readInt64()
                let value = try reader.readBlob()
                versions.append(KeyVersion(revision: revision, sub: sub, isTombstone: tombstone == 1, value: value,
                                           createRevision: createRevision, version: version, lease: lease))
            }
            histories.append((key, versions))
        }
        guard reader.isAtEnd else { throw .corrupt("snapshot has trailing bytes") }
        let mvcc = try MVCCState(revision: revision, compactRevision: compactRevision, histories: histories)
        let table = try LeaseTable(nextID: nextLeaseID, leases: leases, now: now)
        for lease in mvcc.leaseKeys.keys where table.leases[lease] == nil {
            throw .corrupt("snapshot key attached to unknown lease \(lease)")
        }
        return StoreState(mvcc: mvcc, leases: table)
    }
}
