import NIOCore
import NVMe

/// The self-describing block `halyard nvme verify` writes: each block says which run (seed),
/// which LBA and which write (generation) it came from, and checksums itself, so a read-back
/// block can be told apart as current, stale, misdirected or garbage.
///
/// Layout (little endian):
///
/// | bytes  | field |
/// |--------|-------|
/// | 0..<8  | magic `HLYDVFY1` |
/// | 8..<16 | seed |
/// | 16..<24| LBA |
/// | 24..<28| generation (≥ 1) |
/// | 28..<32| CRC32C of bytes 0..<28 and 32..<blockSize |
/// | 32...  | SplitMix64 stream seeded from (seed, LBA, generation) |
public enum VerifyBlock {
    public static let magic: UInt64 = 0x3159_4656_4459_4C48  // "HLYDVFY1" read little endian
    public static let headerSize = 32

    /// A decoded block.
    public enum Content: Hashable, Sendable {
        /// All zeroes: never written (or deallocated).
        case zeros
        /// A valid stamp.
        case stamp(seed: UInt64, lba: UInt64, generation: UInt32)
        /// Anything else, with why.
        case garbage(String)
    }

    /// Appends one block for (`seed`, `lba`, `generation`).
    public static func write(seed: UInt64, lba: UInt64, generation: UInt32, blockSize: Int, into buffer: inout ByteBuffer) {
        precondition(blockSize >= 512 && blockSize % 8 == 0, "block size \(blockSize)")
        precondition(generation > 0, "generation 0 is reserved")
        let start = buffer.writerIndex
        buffer.writeInteger(magic, endianness: .little)
        buffer.writeInteger(seed, endianness: .little)
        buffer.writeInteger(lba, endianness: .little)
        buffer.writeInteger(generation, endianness: .little)
        buffer.writeInteger(UInt32(0), endianness: .little)
        var prng = fillGenerator(seed: seed, lba: lba, generation: generation)
        for _ in 0..<(blockSize - headerSize) / 8 {
            buffer.writeInteger(prng.next(), endianness: .little)
        }
        let crc = checksum(buffer, at: start, blockSize: blockSize)
        buffer.setInteger(crc, at: start + 28, endianness: .little)
        assert(decode(buffer.getSlice(at: start, length: blockSize)!) == .stamp(seed: seed, lba: lba, generation: generation))
    }

    /// `count` consecutive blocks from `lba`, all of `generation`.
    public static func make(seed: UInt64, lba: UInt64, count: Int, generation: UInt32, blockSize: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count * blockSize)
        for i in 0..<count {
            write(seed: seed, lba: lba + UInt64(i), generation: generation, blockSize: blockSize, into: &buffer)
        }
        return buffer
    }

    /// Decodes one block (`block.readableBytes` is the block size). A block whose header is
    /// intact but whose fill differs from its seed's stream fails the checksum.
    public static func decode(_ block: ByteBuffer) -> Content {
        let blockSize = block.readableBytes
        let start = block.readerIndex
        let isZero = block.withUnsafeReadableBytes { raw in raw.allSatisfy { $0 == 0 } }
        if isZero { return .zeros }
        guard blockSize >= 512,
              let m = block.getInteger(at: start, endianness: .little, as: UInt64.self), m == magic else {
            return .garbage("no verify stamp")
        }
        let seed = block.getInteger(at: start + 8, endianness: .little, as: UInt64.self)!
        let lba = block.getInteger(at: start + 16, endianness: .little, as: UInt64.self)!
        let generation = block.getInteger(at: start + 24, endianness: .little, as: UInt32.self)!
        let stored = block.getInteger(at: start + 28, endianness: .little, as: UInt32.self)!
        guard stored == checksum(block, at: start, blockSize: blockSize) else {
            return .garbage("checksum mismatch (stamp says LBA \(lba), generation \(generation))")
        }
        guard generation > 0 else { return .garbage("generation 0") }
        return .stamp(seed: seed, lba: lba, generation: generation)
    }

    private static func checksum(_ buffer: ByteBuffer, at start: Int, blockSize: Int) -> UInt32 {
        buffer.withUnsafeReadableBytes { raw in
            let base = start - buffer.readerIndex
            let head = UnsafeRawBufferPointer(rebasing: raw[base..<(base + 28)])
            let tail = UnsafeRawBufferPointer(rebasing: raw[(base + headerSize)..<(base + blockSize)])
            return CRC32C.checksum(tail, continuing: CRC32C.checksum(head))
        }
    }

    static func fillGenerator(seed: UInt64, lba: UInt64, generation: UInt32) -> VerifyRandom {
        var mix = VerifyRandom(seed: seed)
        let a = mix.next() ^ lba &* 0x9E37_79B9_7F4A_7C15
        return VerifyRandom(seed: a ^ UInt64(generation) &* 0xD1B5_4A32_D192_ED03)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and ours, so a seed means the same
/// stream on every platform and release.
public struct VerifyRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
