import NIOCore

/// A namespace identifier of fixed size carried as raw bytes in Identify structures and
/// Namespace Identification Descriptors (NVMe base spec 2.0 §4.5.2): NGUID, UUID, EUI-64.
public protocol FixedSizeIdentifier: Hashable, Sendable {
    /// Size on the wire.
    static var byteCount: Int { get }
    /// The bytes in wire order; exactly `byteCount` of them.
    var bytes: [UInt8] { get }
    init(_ bytes: [UInt8])
}

extension FixedSizeIdentifier {
    /// All zeros: "not reported".
    public static var zero: Self { Self([UInt8](repeating: 0, count: byteCount)) }

    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeBytes(bytes)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard let bytes = buffer.readBytes(length: Self.byteCount) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "\(Self.self) needs \(Self.byteCount) bytes, have \(buffer.readableBytes)")
        }
        self.init(bytes)
    }
}

/// Namespace Globally Unique Identifier: the 128-bit NGUID of Identify Namespace bytes 104..119
/// (NVMe 2.0 base spec §4.5.2 / Figure 280) and of Namespace Identification Descriptor type 2h
/// (Figure 283). Linux matches paths of one namespace on it; it must be identical on every path.
public struct NGUID: FixedSizeIdentifier, CustomStringConvertible {
    /// Exactly 16 bytes, in wire order.
    public var bytes: [UInt8]

    public static let byteCount = 16

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "NGUID is 16 bytes")
        self.bytes = bytes
    }

    /// 32 lowercase hex digits, no separators.
    public var description: String { namespaceIdentifierHex(bytes) }
}

/// Namespace UUID (RFC 4122 / RFC 9562), carried in Namespace Identification Descriptor type 3h
/// (NVMe 2.0 base spec §4.5.2, Figure 283). Bytes are in network (RFC) order on the wire.
public struct NamespaceUUID: FixedSizeIdentifier, CustomStringConvertible {
    /// Exactly 16 bytes, in RFC 4122 byte order.
    public var bytes: [UInt8]

    public static let byteCount = 16

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "UUID is 16 bytes")
        self.bytes = bytes
    }

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case); nil if malformed.
    public init?(string: String) {
        let utf8 = Array(string.utf8)
        guard utf8.count == 36 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        var index = 0
        while index < 36 {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard utf8[index] == UInt8(ascii: "-") else { return nil }
                index += 1
                continue
            }
            guard let high = hexNibble(utf8[index]), let low = hexNibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Lowercase RFC 4122 form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
    public var description: String {
        let hex = namespaceIdentifierHex(bytes)
        var result = ""
        result.reserveCapacity(36)
        for (i, character) in hex.enumerated() {
            if i == 8 || i == 12 || i == 16 || i == 20 { result.append("-") }
            result.append(character)
        }
        return result
    }
}

/// IEEE Extended Unique Identifier: the 64-bit EUI64 of Identify Namespace bytes 120..127
/// (NVMe 2.0 base spec Figure 280) and of Namespace Identification Descriptor type 1h (Figure 283).
public struct EUI64: FixedSizeIdentifier, CustomStringConvertible {
    /// Exactly 8 bytes, in wire (big-endian, OUI first) order.
    public var bytes: [UInt8]

    public static let byteCount = 8

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "EUI64 is 8 bytes")
        self.bytes = bytes
    }

    /// 16 lowercase hex digits.
    public var description: String { namespaceIdentifierHex(bytes) }
}

private func namespaceIdentifierHex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

private func hexNibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
