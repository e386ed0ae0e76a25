import NIOCore

/// Deterministic, never-all-zero test data.
enum TestPattern {
    /// `blocks` blocks of bytes derived from `seed` and the position, so misplaced or
    /// swapped blocks are detected.
    static func buffer(blocks: Int, blockSize: Int, seed: UInt8) -> ByteBuffer {
        let count = blocks * blockSize
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes in
            for index in 0..<count {
                bytes[index] = UInt8(truncatingIfNeeded: index &* 31 &+ index / blockSize &+ Int(seed)) | 1
            }
            return count
        }
        return buffer
    }

    /// `count` zero bytes.
    static func zeroes(_ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: 0, count: count)
    }

    /// Whether every readable byte of `buffer` is zero.
    static func isZero(_ buffer: ByteBuffer) -> Bool {
        buffer == zeroes(buffer.readableBytes)
    }
}
