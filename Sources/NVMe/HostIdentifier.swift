import NIOCore

/// The 128-bit Host Identifier (NVMe base spec 2.0 §5.27.1.25; NVMe over Fabrics spec 1.1 §3.3,
/// Connect data bytes 0–15). Reservations key registrants by it (NVMe base spec 2.0 §8.19), so
/// every path of one host shares one registration. Kept as the 16 bytes in wire order, in two
/// words loaded little-endian so it hashes and compares without an allocation.
public struct HostIdentifier: Hashable, Sendable, CustomStringConvertible {
    /// Bytes 0–7, loaded little-endian.
    public var low: UInt64
    /// Bytes 8–15, loaded little-endian.
    public var high: UInt64

    public static let encodedSize = 16
    public static let zero = HostIdentifier(low: 0, high: 0)

    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// The first 16 bytes of `bytes` in wire order; fewer are padded with zeros (a Connect data
    /// structure always carries exactly 16).
    public init(bytes: some Sequence<UInt8>) {
        var low: UInt64 = 0, high: UInt64 = 0
        for (index, byte) in bytes.prefix(Self.encodedSize).enumerated() {
            if index < 8 { low |= UInt64(byte) << (8 * index) } else { high |= UInt64(byte) << (8 * (index - 8)) }
        }
        self.init(low: low, high: high)
    }

    /// 32 hexadecimal digits (either case), the form `description` prints; nil otherwise.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        var index = 0
        while index < 32 {
            guard let hi = Self.nibble(digits[index]), let lo = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            index += 2
        }
        self.init(bytes: bytes)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The 16 bytes in wire order.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: low >> (8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: high >> (8 * $0)) }
    }

    /// The bytes in wire order as 32 lowercase hexadecimal digits (as `nvme resv-report` prints).
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(low, endianness: .little)
        buffer.writeInteger(high, endianness: .little)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard let low = buffer.readInteger(endianness: .little, as: UInt64.self),
              let high = buffer.readInteger(endianness: .little, as: UInt64.self) else {
            throw NVMeWireError(.truncated, offset: 0, "host identifier needs 16 bytes")
        }
        self.init(low: low, high: high)
    }
}
