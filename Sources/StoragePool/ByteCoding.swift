#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CCRC32C

/// Why on-disk bytes could not be decoded. Decoders never trap on bad input: every length and
/// count is checked against the bytes that remain before anything is allocated or read.
struct DecodeError: Error, Equatable, CustomStringConvertible {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}

/// Appends little-endian integers, strings and byte arrays to a growing byte array.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { integer(value) }
    mutating func u32(_ value: UInt32) { integer(value) }
    mutating func u64(_ value: UInt64) { integer(value) }

    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ data: some Collection<UInt8>) { bytes.append(contentsOf: data) }

    mutating func uuid(_ value: UUID) {
        withUnsafeBytes(of: value.uuid) { bytes.append(contentsOf: $0) }
    }

    /// A u16 length and the UTF-8 bytes (callers keep strings under 64 KiB).
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u16(UInt16(truncatingIfNeeded: utf8.count))
        raw(utf8)
    }

    /// A u32 length and the bytes.
    mutating func blob(_ value: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: value.count))
        raw(value)
    }

    /// An optional blob: u32 0xFFFF_FFFF for nil.
    mutating func optionalBlob(_ value: [UInt8]?) {
        if let value { blob(value) } else { u32(.max) }
    }

    /// Zero bytes up to a multiple of `alignment`.
    mutating func pad(toMultipleOf alignment: Int) {
        let remainder = bytes.count % alignment
        if remainder != 0 { bytes.append(contentsOf: repeatElement(0, count: alignment - remainder)) }
    }

    /// Overwrites four bytes at `offset` with `value` (little endian).
    mutating func patchU32(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for i in 0..<4 { bytes[offset + i] = source[i] }
        }
    }
}

/// Reads little-endian values from a byte slice, throwing ``DecodeError`` when it runs out.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset: Int
    private let end: Int

    init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.end = min(end ?? bytes.count, bytes.count)
    }

    var remaining: Int { max(0, end - offset) }

    private mutating func take(_ count: Int, _ what: String) throws(DecodeError) -> Range<Int> {
        guard count >= 0, count <= remaining else {
            throw DecodeError("truncated \(what): needs \(count) bytes, \(remaining) left at offset \(offset)")
        }
        defer { offset += count }
        return offset..<(offset + count)
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(DecodeError) -> T {
        let range = try take(MemoryLayout<T>.size, what)
        var value: T = 0
        for (shift, index) in range.enumerated() {
            value |= T(truncatingIfNeeded: bytes[index]) << (shift * 8)
        }
        return value
    }

    mutating func u8(_ what: String = "u8") throws(DecodeError) -> UInt8 { try integer(UInt8.self, what) }
    mutating func u16(_ what: String = "u16") throws(DecodeError) -> UInt16 { try integer(UInt16.self, what) }
    mutating func u32(_ what: String = "u32") throws(DecodeError) -> UInt32 { try integer(UInt32.self, what) }
    mutating func u64(_ what: String = "u64") throws(DecodeError) -> UInt64 { try integer(UInt64.self, what) }

    mutating func bool(_ what: String) throws(DecodeError) -> Bool {
        switch try u8(what) {
        case 0: return false
        case 1: return true
        case let other: throw DecodeError("\(what): invalid boolean \(other)")
        }
    }

    mutating func raw(_ count: Int, _ what: String) throws(DecodeError) -> [UInt8] {
        Array(bytes[try take(count, what)])
    }

    mutating func uuid(_ what: String = "uuid") throws(DecodeError) -> UUID {
        let b = try raw(16, what)
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }

    mutating func string(_ what: String) throws(DecodeError) -> String {
        let count = Int(try u16("\(what) length"))
        let utf8 = try raw(count, what)
        guard let text = String(validating: utf8, as: UTF8.self) else { throw DecodeError("\(what): invalid UTF-8") }
        return text
    }

    mutating func blob(_ what: String) throws(DecodeError) -> [UInt8] {
        let count = try u32("\(what) length")
        guard count <= UInt32(remaining) else { throw DecodeError("\(what): length \(count) exceeds the \(remaining) bytes left") }
        return try raw(Int(count), what)
    }

    mutating func optionalBlob(_ what: String) throws(DecodeError) -> [UInt8]? {
        let count = try u32("\(what) length")
        if count == .max { return nil }
        guard count <= UInt32(remaining) else { throw DecodeError("\(what): length \(count) exceeds the \(remaining) bytes left") }
        return try raw(Int(count), what)
    }
}

/// CRC32C (Castagnoli) of on-disk structures, from the `CCRC32C` target (hardware `crc32`
/// instruction when the CPU has it).
enum Checksum {
    static func crc32c(_ bytes: [UInt8], range: Range<Int>? = nil, continuing crc: UInt32 = 0) -> UInt32 {
        let range = range ?? bytes.indices
        return bytes.withUnsafeBytes { raw in
            let slice = UnsafeRawBufferPointer(rebasing: raw[range])
            return halyard_crc32c(crc, slice.baseAddress, slice.count)
        }
    }
}

extension UUID {
    /// The low 64 bits (bytes 8…15, little endian): stamped on every journal record so that
    /// records of an earlier pool on the same disk never replay into a new one.
    var low64: UInt64 {
        let u = uuid
        return [u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15].enumerated().reduce(0) { $0 | UInt64($1.element) << ($1.offset * 8) }
    }
}

/// Rounds `value` up to a multiple of `alignment` (a power of two).
@inline(__always)
func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64 {
    (value + alignment - 1) & ~(alignment - 1)
}
