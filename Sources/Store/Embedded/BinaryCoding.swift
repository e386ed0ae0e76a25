import CCRC32C

/// Appends little-endian integers and length-prefixed byte strings: the encoding of the embedded
/// store's WAL records and snapshots.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func write(_ value: UInt8) { bytes.append(value) }

    mutating func write(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func write(_ value: Int64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A u32 length, then the bytes.
    mutating func writeBlob(_ blob: [UInt8]) {
        write(UInt32(blob.count))
        bytes.append(contentsOf: blob)
    }
}

/// Reads what ``ByteWriter`` wrote, bounds-checked: running off the end (or an absurd length)
/// throws ``StoreError/corrupt(_:)`` instead of trapping, so damaged files never crash the process.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int
    let what: String

    init(_ bytes: [UInt8], range: Range<Int>? = nil, what: String) {
        self.bytes = bytes
        self.offset = range?.lowerBound ?? 0
        self.end = range?.upperBound ?? bytes.count
        self.what = what
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset == end }

    private mutating func take(_ count: Int) throws(StoreError) -> Int {
        guard count >= 0, count <= remaining else { throw .corrupt("\(what): truncated at byte \(offset)") }
        let start = offset
        offset += count
        return start
    }

    mutating func readUInt8() throws(StoreError) -> UInt8 {
        let at = try take(1)
        return bytes[at]
    }

    mutating func readUInt32() throws(StoreError) -> UInt32 {
        let at = try take(4)
        return Self.uint32(bytes, at: at)
    }

    mutating func readInt64() throws(StoreError) -> Int64 {
        let at = try take(8)
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[at + index]) << (8 * UInt64(index)) }
        return Int64(bitPattern: value)
    }

    mutating func skip(_ count: Int) throws(StoreError) { _ = try take(count) }

    mutating func readBlob() throws(StoreError) -> [UInt8] {
        let count = Int(try readUInt32())
        let at = try take(count)
        return Array(bytes[at..<at + count])
    }

    /// A count of items that each take at least `minimumItemBytes`: rejects counts the
    /// remaining bytes cannot hold before anything allocates for them.
    mutating func readCount(minimumItemBytes: Int) throws(StoreError) -> Int {
        let count = Int(try readUInt32())
        guard count <= remaining / max(minimumItemBytes, 1) else { throw .corrupt("\(what): impossible count \(count)") }
        return count
    }

    static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
}

/// CRC32C of `bytes[range]` (the CCRC32C target, as NVMe's digests use it).
func storeCRC32C(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
    bytes.withUnsafeBufferPointer { buffer in
        halyard_crc32c(0, buffer.baseAddress.map { $0 + range.lowerBound }, range.count)
    }
}

/// Continues a CRC32C over `count` bytes at `pointer`.
func halyardCRC(_ crc: UInt32, _ pointer: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
    halyard_crc32c(crc, pointer, count)
}
