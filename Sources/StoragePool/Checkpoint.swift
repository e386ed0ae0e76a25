#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A checkpoint: the full metadata (replica table and extent maps) as of journal seq `seq`,
/// written to the inactive one of two slots before a superblock flip makes it current.
///
/// Header (64 bytes, little endian): magic "HLYDCKPT" (8), version u32 (1), payload CRC32C
/// u32, pool UUID low 64 bits, seq u64, payload length u64, header CRC32C u32 (of bytes 0..<40),
/// zero padding. Payload: replica count u32, then per replica: UUID, name (u16 length + UTF-8),
/// size u64, thin u8, shared u8, host count u16 + hosts (u16 length + UTF-8 each), reservation
/// and properties blobs (u32 length + bytes, 0xFFFF_FFFF = none), mapping count u32 and
/// (logical u32, physical u32) pairs.
enum Checkpoint {
    static let magic: [UInt8] = Array("HLYDCKPT".utf8)
    static let version: UInt32 = 1
    static let headerSize = 64

    static func encode(_ meta: PoolMetadata, seq: UInt64, poolLow: UInt64) -> [UInt8] {
        var payload = ByteWriter(capacity: meta.checkpointBytesNeeded)
        let replicas = meta.replicas.values.sorted { $0.uuid.uuidString < $1.uuid.uuidString }
        payload.u32(UInt32(replicas.count))
        for r in replicas {
            payload.uuid(r.uuid)
            payload.string(r.name)
            payload.u64(r.size)
            payload.u8(r.thin ? 1 : 0)
            payload.u8(r.shared ? 1 : 0)
            payload.u16(UInt16(r.allowedHosts.count))
            for h in r.allowedHosts { payload.string(h) }
            payload.optionalBlob(r.reservation)
            payload.optionalBlob(r.properties)
            payload.u32(UInt32(r.mappedCount))
            for (logical, entry) in r.map.enumerated() where entry != 0 {
                payload.u32(UInt32(logical))
                payload.u32(entry - 1)
            }
        }
        let body = payload.bytes
        var w = ByteWriter(capacity: headerSize + body.count + 4096)
        w.raw(magic)
        w.u32(version)
        w.u32(Checksum.crc32c(body))
        w.u64(poolLow)
        w.u64(seq)
        w.u64(UInt64(body.count))
        w.u32(Checksum.crc32c(w.bytes))
        w.pad(toMultipleOf: headerSize)
        w.raw(body)
        w.pad(toMultipleOf: 4096)
        return w.bytes
    }

    /// The header fields, once its CRC checked out.
    struct Header: Equatable {
        var payloadCRC: UInt32
        var poolLow: UInt64
        var seq: UInt64
        var payloadLength: UInt64
    }

    static func decodeHeader(_ bytes: [UInt8]) throws(DecodeError) -> Header {
        guard bytes.count >= headerSize else { throw DecodeError("checkpoint: short header") }
        guard Array(bytes[0..<8]) == magic else { throw DecodeError("checkpoint: bad magic") }
        var r = ByteReader(bytes, offset: 8, end: 44)
        let version = try r.u32("version")
        let payloadCRC = try r.u32("payload CRC")
        let poolLow = try r.u64("pool")
        let seq = try r.u64("seq")
        let length = try r.u64("payload length")
        let headerCRC = try r.u32("header CRC")
        guard headerCRC == Checksum.crc32c(bytes, range: 0..<40) else { throw DecodeError("checkpoint: header CRC mismatch") }
        guard version == Self.version else { throw DecodeError("checkpoint: unsupported version \(version)") }
        return Header(payloadCRC: payloadCRC, poolLow: poolLow, seq: seq, payloadLength: length)
    }

    /// Decodes a whole checkpoint (header + payload) into `meta` (which must be empty).
    static func decode(_ bytes: [UInt8], header: Header, into meta: inout PoolMetadata) throws(PoolError) {
        guard header.payloadLength <= UInt64(bytes.count - headerSize) else {
            throw .faulted("checkpoint payload of \(header.payloadLength) bytes exceeds its slot")
        }
        let end = headerSize + Int(header.payloadLength)
        guard Checksum.crc32c(bytes, range: headerSize..<end) == header.payloadCRC else {
            throw .faulted("checkpoint seq \(header.seq): payload CRC mismatch")
        }
        var r = ByteReader(bytes, offset: headerSize, end: end)
        do {
            let count = Int(try r.u32("replica count"))
            for _ in 0..<count {
                let uuid = try r.uuid()
                let name = try r.string("name")
                let size = try r.u64("size")
                let thin = try r.bool("thin")
                let shared = try r.bool("shared")
                let hostCount = Int(try r.u16("host count"))
                var hosts: [String] = []
                for _ in 0..<hostCount { hosts.append(try r.string("host")) }
                let reservation = try r.optionalBlob("reservation")
                let properties = try r.optionalBlob("properties")
                let mapped = Int(try r.u32("mapping count"))
                guard mapped <= r.remaining / 8 else { throw DecodeError("replica \(uuid): \(mapped) mappings in \(r.remaining) bytes") }
                let logicalCount = meta.logicalExtents(size)
                guard logicalCount <= meta.extentCount else {
                    throw DecodeError("replica \(uuid) of \(size) bytes exceeds the pool")
                }
                var map = [UInt32](repeating: 0, count: logicalCount)
                for _ in 0..<mapped {
                    let logical = Int(try r.u32("logical"))
                    let physical = try r.u32("physical")
                    guard logical < map.count, map[logical] == 0, physical < UInt32.max else {
                        throw DecodeError("replica \(uuid): bad mapping of logical extent \(logical)")
                    }
                    map[logical] = physical + 1
                }
                var replica = ReplicaMetadata(uuid: uuid, name: name, size: size, thin: thin, map: map)
                replica.shared = shared
                replica.allowedHosts = hosts
                replica.reservation = reservation
                replica.properties = properties
                replica.mappedCount = mapped
                try meta.load(replica)
            }
            guard r.remaining == 0 else { throw DecodeError("\(r.remaining) trailing bytes") }
        } catch let error as DecodeError {
            throw .faulted("checkpoint seq \(header.seq) is corrupt: \(error)")
        } catch let error as PoolError {
            throw error
        } catch {
            throw .faulted("checkpoint seq \(header.seq): \(error)")
        }
    }
}
