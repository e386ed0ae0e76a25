import NIOCore
import NVMe
import Testing

/// A deterministic generator so failures reproduce (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// Bit-at-a-time CRC32C straight from the definition (reflected polynomial 0x82F63B78, init and
/// final XOR 0xFFFFFFFF): an oracle independent of the table and SSE4.2 code under test.
func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
    }
    return crc ^ 0xFFFF_FFFF
}

@Suite struct CRC32CTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var crc: UInt32
        var testDescription: String { name }
    }

    /// "123456789" is the CRC catalogue check value; the 32-byte ones are RFC 3720 §B.4 (iSCSI).
    static let vectors: [Vector] = [
        Vector(name: "\"123456789\"", bytes: Array("123456789".utf8), crc: 0xE306_9283),
        Vector(name: "32 zero bytes", bytes: [UInt8](repeating: 0, count: 32), crc: 0x8A91_36AA),
        Vector(name: "32 bytes 0xFF", bytes: [UInt8](repeating: 0xFF, count: 32), crc: 0x62A8_AB43),
        Vector(name: "32 ascending 0..31", bytes: (0..<32).map { UInt8($0) }, crc: 0x46DD_794E),
        Vector(name: "32 descending 31..0", bytes: (0..<32).reversed().map { UInt8($0) }, crc: 0x113F_DB5C),
        Vector(name: "empty", bytes: [], crc: 0),
        Vector(name: "single 'a'", bytes: [0x61], crc: 0xC1D0_4330),
    ]

    @Test(arguments: vectors)
    func standardVector(_ v: Vector) {
        // The oracle itself must agree with the published values, or the other tests prove nothing.
        #expect(referenceCRC32C(v.bytes) == v.crc)
        #expect(CRC32C.checksum(v.bytes) == v.crc)
        #expect(CRC32C.checksum(ByteBuffer(bytes: v.bytes)) == v.crc)
        v.bytes.withUnsafeBytes { raw in
            #expect(CRC32C.checksum(raw) == v.crc)
            #expect(CRC32C.portableChecksum(raw) == v.crc)
            if CRC32C.hasHardwareSupport {
                #expect(CRC32C.hardwareChecksum(raw) == v.crc)
            } else {
                #expect(CRC32C.hardwareChecksum(raw) == nil)
            }
        }
    }

    /// Digests are sent little-endian: 0xE3069283 goes out as 83 92 06 E3.
    @Test func digestBytesAreLittleEndian() {
        var buffer = ByteBuffer()
        buffer.writeInteger(CRC32C.checksum(Array("123456789".utf8)), endianness: .little)
        #expect(Array(buffer.readableBytesView) == [0x83, 0x92, 0x06, 0xE3])
    }

    static let lengths: [Int] = Array(0...80) + [127, 128, 129, 255, 256, 511, 512, 1000, 1023, 1024, 1025,
                                                 4095, 4096, 4097, 8191, 8192, 65_536 + 3]

    @Test func portableMatchesBitwiseReferenceOnRandomBuffers() {
        var rng = SplitMix64(seed: 0x4E56_4D65)
        for length in Self.lengths {
            let bytes = rng.bytes(length)
            let expected = referenceCRC32C(bytes)
            bytes.withUnsafeBytes { raw in
                #expect(CRC32C.portableChecksum(raw) == expected, "length \(length)")
                #expect(CRC32C.checksum(raw) == expected, "length \(length)")
            }
        }
    }

    @Test(.enabled(if: CRC32C.hasHardwareSupport, "CPU lacks SSE4.2 crc32"))
    func hardwareMatchesPortableOnRandomBuffers() throws {
        var rng = SplitMix64(seed: 0xC0FF_EE00)
        for length in Self.lengths {
            // Also at every misalignment 0..7 of the start address.
            let storage = rng.bytes(length + 8)
            for misalignment in 0..<8 {
                try storage.withUnsafeBytes { all in
                    let raw = UnsafeRawBufferPointer(rebasing: all[misalignment..<(misalignment + length)])
                    let portable = CRC32C.portableChecksum(raw)
                    let hardware = try #require(CRC32C.hardwareChecksum(raw))
                    #expect(hardware == portable, "length \(length) misalignment \(misalignment)")
                    #expect(CRC32C.checksum(raw) == portable, "length \(length) misalignment \(misalignment)")
                }
            }
            // Chaining from a non-zero running value must agree too.
            storage.withUnsafeBytes { raw in
                #expect(CRC32C.hardwareChecksum(raw, continuing: 0x1234_5678)
                        == CRC32C.portableChecksum(raw, continuing: 0x1234_5678), "length \(length)")
            }
        }
    }

    @Test(arguments: [1, 7, 8, 9, 63, 4096])
    func incrementalEqualsOneShot(split: Int) throws {
        var rng = SplitMix64(seed: UInt64(split) &* 7919)
        for total in [split, split + 1, split + 9, 8192 + 5] where total >= split {
            let bytes = rng.bytes(total)
            let whole = referenceCRC32C(bytes)
            let head = Array(bytes[..<split]), tail = Array(bytes[split...])
            #expect(CRC32C.checksum(tail, continuing: CRC32C.checksum(head)) == whole, "total \(total)")
            #expect(CRC32C.checksum(ByteBuffer(bytes: tail), continuing: CRC32C.checksum(ByteBuffer(bytes: head))) == whole)
            try head.withUnsafeBytes { h in
                try tail.withUnsafeBytes { t in
                    #expect(CRC32C.checksum(t, continuing: CRC32C.checksum(h)) == whole)
                    #expect(CRC32C.portableChecksum(t, continuing: CRC32C.portableChecksum(h)) == whole)
                    if CRC32C.hasHardwareSupport {
                        let h1 = try #require(CRC32C.hardwareChecksum(h))
                        #expect(CRC32C.hardwareChecksum(t, continuing: h1) == whole)
                    }
                }
            }
        }
    }

    /// A split into many pieces (every byte separately) still chains.
    @Test func byteAtATimeChaining() {
        let bytes = Array("123456789".utf8)
        var crc: UInt32 = 0
        for byte in bytes { crc = CRC32C.checksum([byte], continuing: crc) }
        #expect(crc == 0xE306_9283)
    }

    /// The ByteBuffer overload covers only the readable bytes, not what precedes the reader index.
    @Test func byteBufferUsesReadableBytesOnly() {
        var buffer = ByteBuffer()
        buffer.writeString("xxxx123456789")
        buffer.moveReaderIndex(forwardBy: 4)
        #expect(CRC32C.checksum(buffer) == 0xE306_9283)
        let slice = buffer.getSlice(at: buffer.readerIndex, length: 9)!
        #expect(CRC32C.checksum(slice) == 0xE306_9283)
    }
}
