import NIOCore

/// Why bytes could not be decoded as an NVMe or NVMe/TCP structure.
///
/// `offset` is the byte offset of the offending field from the start of the structure (for a PDU:
/// from the start of the PDU), which is what an NVMe/TCP termination request reports as FEI
/// (NVMe/TCP transport spec §3.6.2.8).
public struct NVMeWireError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// Fewer bytes than the structure's fixed size.
        case truncated
        /// A field holds a value the spec does not allow.
        case invalidField
        /// A PDU type this side never accepts (or that is unknown).
        case unsupportedPDUType
        /// PLEN larger than this side accepts.
        case pduTooLarge
        /// The header digest (HDGST) does not match the header.
        case headerDigestMismatch
    }

    public var kind: Kind
    public var offset: Int
    public var message: String

    public init(_ kind: Kind, offset: Int, _ message: String) {
        self.kind = kind
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(message) (at byte \(offset))" }
}

extension ByteBuffer {
    /// Writes `string` as ASCII into exactly `width` bytes, padded with `pad` (spaces for SN/MN/FR,
    /// NUL for NQNs), truncated if longer.
    @inlinable
    public mutating func writeFixedASCII(_ string: String, width: Int, pad: UInt8) {
        var written = 0
        for byte in string.utf8 where written < width {
            self.writeInteger(byte)
            written += 1
        }
        if written < width { self.writeRepeatingByte(pad, count: width - written) }
    }

    /// Reads `width` bytes as ASCII, dropping trailing NUL and space padding.
    @inlinable
    public mutating func readFixedASCII(width: Int) -> String? {
        guard let bytes = self.readBytes(length: width) else { return nil }
        // The text stops at its first NUL (NQNs); then space padding (SN/MN/FR) is dropped.
        var end = bytes.firstIndex(of: 0) ?? bytes.count
        while end > 0, bytes[end - 1] == 0x20 { end -= 1 }
        return String(decoding: bytes[0..<end], as: UTF8.self)
    }

    /// Writes `count` zero bytes.
    @inlinable
    public mutating func writeZeros(_ count: Int) {
        if count > 0 { self.writeRepeatingByte(0, count: count) }
    }
}
