import NIOCore
import NVMe

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Helpers shared by the fuzz targets. Nothing here may print on the hot path: libFuzzer runs
// hundreds of thousands of inputs and output slows it to a crawl.

/// Reports a property violation and traps, so libFuzzer records the input as a crash artifact.
/// The message goes to stderr first (the trap message alone can be truncated).
public func fuzzViolation(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ PROPERTY VIOLATION at \(file):\(line): \(message())\n"
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    fatalError(text, file: file, line: line)
}

/// Writes a line to stderr unbuffered (so it survives a crash right after), for traces.
public func traceLine(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// `fuzzViolation` unless `condition`.
@inline(__always)
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fuzzViolation(message(), file: file, line: line) }
}

/// Hex of a buffer's readable bytes (at most `limit` of them), for violation messages.
public func hex(_ buffer: ByteBuffer, limit: Int = 512) -> String {
    let bytes = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, limit)) ?? []
    return hex(bytes) + (buffer.readableBytes > limit ? "…(\(buffer.readableBytes) bytes)" : "")
}

public func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var out = ""
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return out
}

/// Whether an environment variable is set to a non-empty value other than "0".
public func environmentFlag(_ name: String) -> Bool {
    guard let value = getenv(name) else { return false }
    let s = String(cString: value)
    return !s.isEmpty && s != "0"
}

/// SplitMix64: a tiny deterministic generator. Fuzz harnesses must be deterministic in their
/// input, so every "random" choice is drawn from a generator seeded by input bytes.
public struct FuzzRandom {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `range` (the tiny modulo bias is irrelevant here).
    public mutating func next(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next() % span)
    }
}

extension ByteBuffer {
    /// A buffer holding `bytes`.
    public init(fuzzBytes bytes: UnsafeRawBufferPointer) {
        var b = ByteBufferAllocator().buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        self = b
    }

    /// The first `count` readable bytes, zero-padded to `count` when shorter.
    public func zeroPaddedPrefix(_ count: Int) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: count)
        let n = Swift.min(count, readableBytes)
        if n > 0 { out.writeImmutableBuffer(getSlice(at: readerIndex, length: n)!) }
        out.writeZeros(count - n)
        return out
    }
}
