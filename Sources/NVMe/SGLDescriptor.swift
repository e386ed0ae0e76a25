import NIOCore

/// A Scatter Gather List descriptor, the 16-byte data pointer of an SQE over fabrics
/// (NVMe base spec 2.0 §4.1.2, Figures 117–120; NVMe/TCP transport spec §3.3.3).
///
/// NVMe/TCP uses two kinds: a Data Block descriptor with the Offset subtype (identifier 0x01) for
/// in-capsule data, and a Transport SGL Data Block (identifier 0x5A) for data moved by
/// C2HData / R2T + H2CData, or for commands without data (length 0).
public struct SGLDescriptor: Hashable, Sendable {
    public var address: UInt64
    public var length: UInt32
    /// Bytes 12..14, reserved.
    public var reserved: UInt32
    /// Byte 15: descriptor type (b7:4) and subtype (b3:0).
    public var identifier: UInt8

    public init(address: UInt64 = 0, length: UInt32 = 0, reserved: UInt32 = 0, identifier: UInt8) {
        self.address = address
        self.length = length
        self.reserved = reserved & 0xFF_FFFF
        self.identifier = identifier
    }

    /// Data Block, Offset subtype: data is in the capsule at `address` (ICDOFF-relative).
    public static let inCapsuleIdentifier: UInt8 = 0x01
    /// Transport SGL Data Block, transport-specific subtype.
    public static let transportIdentifier: UInt8 = 0x5A

    public static func inCapsule(length: UInt32) -> SGLDescriptor {
        SGLDescriptor(address: 0, length: length, identifier: inCapsuleIdentifier)
    }

    public static func transport(length: UInt32) -> SGLDescriptor {
        SGLDescriptor(address: 0, length: length, identifier: transportIdentifier)
    }

    public var descriptorType: UInt8 { identifier >> 4 }
    public var subtype: UInt8 { identifier & 0xF }
    public var isInCapsule: Bool { identifier == Self.inCapsuleIdentifier }
    public var isTransport: Bool { identifier == Self.transportIdentifier }

    public static let encodedSize = 16

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(address, endianness: .little)
        buffer.writeInteger(length, endianness: .little)
        buffer.writeInteger(UInt8(truncatingIfNeeded: reserved))
        buffer.writeInteger(UInt16(truncatingIfNeeded: reserved >> 8), endianness: .little)
        buffer.writeInteger(identifier)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize,
              let address = buffer.readInteger(endianness: .little, as: UInt64.self),
              let length = buffer.readInteger(endianness: .little, as: UInt32.self),
              let r0 = buffer.readInteger(as: UInt8.self),
              let r1 = buffer.readInteger(endianness: .little, as: UInt16.self),
              let identifier = buffer.readInteger(as: UInt8.self)
        else { throw NVMeWireError(.truncated, offset: 0, "SGL descriptor needs 16 bytes") }
        self.init(address: address, length: length, reserved: UInt32(r0) | UInt32(r1) << 8, identifier: identifier)
    }
}
