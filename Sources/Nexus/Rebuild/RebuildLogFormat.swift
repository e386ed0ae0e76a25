#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NVMe

/// The on-disk layout of a dirty-segment log (``RebuildLog``), all integers little-endian:
///
///     header (88 bytes)
///       0  magic "HLYDSEGL"          8
///       8  version (1)               u32
///      12  header length (88)        u32
///      16  volume UUID               16
///      32  child UUID                16
///      48  segment bytes             u64
///      56  child block count         u64
///      64  block size                u32
///      68  reserved (0)              u32
///      72  created, ns since 1970    i64
///      80  CRC32C of bytes 0..<80    u32
///      84  reserved (0)              u32
///     records (12 bytes each, appended)
///       0  segment index             u64
///       8  CRC32C of bytes 0..<8     u32
///
/// A record whose bytes are incomplete or whose CRC does not match ends the log: it and all that
/// follows were never acknowledged (a write is acknowledged only after its batch's fdatasync).
enum RebuildLogFormat {
    static let magic: [UInt8] = Array("HLYDSEGL".utf8)
    static let version: UInt32 = 1
    static let headerBytes = 88
    static let recordBytes = 12

    /// The identity and geometry a log file was written for.
    struct Header: Hashable, Sendable {
        var volume: UUID
        var child: UUID
        var segmentBytes: UInt64
        var blockCount: UInt64
        var blockSize: UInt32
        var createdNanoseconds: Int64
    }

    static func encode(_ header: Header) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerBytes)
        bytes += magic
        append(version, to: &bytes)
        append(UInt32(headerBytes), to: &bytes)
        withUnsafeBytes(of: header.volume.uuid) { bytes += $0 }
        withUnsafeBytes(of: header.child.uuid) { bytes += $0 }
        append(header.segmentBytes, to: &bytes)
        append(header.blockCount, to: &bytes)
        append(header.blockSize, to: &bytes)
        append(UInt32(0), to: &bytes)
        append(UInt64(bitPattern: header.createdNanoseconds), to: &bytes)
        append(CRC32C.checksum(bytes), to: &bytes)
        append(UInt32(0), to: &bytes)
        assert(bytes.count == headerBytes)
        return bytes
    }

    /// Decodes the header at the start of `bytes`.
    static func decodeHeader(_ bytes: [UInt8], path: String) throws(RebuildLogError) -> Header {
        guard bytes.count >= headerBytes else {
            throw .corrupt(path: path, reason: "\(bytes.count) bytes, shorter than the \(headerBytes)-byte header")
        }
        guard Array(bytes[0..<8]) == magic else { throw .corrupt(path: path, reason: "bad magic") }
        let version: UInt32 = load(bytes, at: 8)
        guard version == Self.version else { throw .corrupt(path: path, reason: "unknown version \(version)") }
        let length: UInt32 = load(bytes, at: 12)
        guard length == headerBytes else { throw .corrupt(path: path, reason: "header length \(length)") }
        let stored: UInt32 = load(bytes, at: 80)
        let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<80])) }
        guard stored == computed else { throw .corrupt(path: path, reason: "header checksum mismatch") }
        return bytes.withUnsafeBytes { raw in
            Header(volume: UUID(uuid: raw.loadUnaligned(fromByteOffset: 16, as: uuid_t.self)),
                   child: UUID(uuid: raw.loadUnaligned(fromByteOffset: 32, as: uuid_t.self)),
                   segmentBytes: load(bytes, at: 48),
                   blockCount: load(bytes, at: 56),
                   blockSize: load(bytes, at: 64),
                   createdNanoseconds: Int64(bitPattern: load(bytes, at: 72)))
        }
    }

    static func encodeRecords(_ segments: some Collection<UInt64>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(segments.count * recordBytes)
        for segment in segments {
            let start = bytes.count
            append(segment, to: &bytes)
            let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + 8)])) }
            append(crc, to: &bytes)
        }
        return bytes
    }

    /// The records after the header, up to the first incomplete or damaged one, and the length
    /// of the file's valid prefix (header included).
    static func decodeRecords(_ bytes: [UInt8]) -> (segments: [UInt64], validLength: Int) {
        var segments: [UInt64] = []
        var offset = headerBytes
        bytes.withUnsafeBytes { raw in
            while offset + recordBytes <= raw.count {
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + 8)]))
                guard crc == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)) else { break }
                segments.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                offset += recordBytes
            }
        }
        return (segments, offset)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func load<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
