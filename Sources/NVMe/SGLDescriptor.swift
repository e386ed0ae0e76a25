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
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.encodedSize) { bytes in
            store(into: bytes, at: 0)
            return Self.encodedSize
        }
    }

    /// Writes the 16 bytes at `offset` of `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeLittleEndian(address, at: offset)
        bytes.storeLittleEndian(length, at: offset + 8)
        bytes.storeLittleEndian(UInt8(truncatingIfNeeded: reserved), at: offset + 12)
        bytes.storeLittleEndian(UInt16(truncatingIfNeeded: reserved >> 8), at: offset + 13)
        bytes.storeLittleEndian(identifier, at: offset + 15)
    }

    /// Reads the 16 bytes at `offset` of `bytes`.
    init(loading bytes: UnsafeRawBufferPointer, at offset: Int) {
        let r0 = bytes.loadLittleEndian(at: offset + 12, as: UInt8.self)
        let r1 = bytes.loadLittleEndian(at: offset + 13, as: UInt16.self)
        self.init(address: bytes.loadLittleEndian(at: offset), length: bytes.loadLittleEndian(at: offset + 8),
                  reserved: UInt32(r0) | UInt32(r1) << 8, identifier: bytes.loadLittleEndian(at: offset + 15))
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: 0, "SGL descriptor needs 16 bytes")
        }
        self = buffer.withUnsafeReadableBytes { Self(loading: $0, at: 0) }
        buffer.moveReaderIndex(forwardBy: Self.encodedSize)
    }
}
