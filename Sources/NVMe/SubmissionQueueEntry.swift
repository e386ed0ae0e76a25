import NIOCore

/// A 64-byte NVMe command, the Submission Queue Entry (NVMe base spec 2.0 §4.2, Figure 88) as it
/// travels in an NVMe/TCP CapsuleCmd PDU. Fields are kept raw; typed views (`ConnectCommand`,
/// `ReadWriteCommand`, …) interpret the command dwords.
public struct SubmissionQueueEntry: Hashable, Sendable {
    public var opcode: UInt8
    /// Byte 1: FUSE b1:0, PSDT b7:6 (01b = SGL for data, required over fabrics).
    public var flags: UInt8
    public var commandID: UInt16
    /// Namespace ID; for Fabrics commands (opcode 0x7F) byte 4 holds FCTYPE instead.
    public var namespaceID: UInt32
    public var cdw2: UInt32
    public var cdw3: UInt32
    public var metadataPointer: UInt64
    public var dataPointer: SGLDescriptor
    public var cdw10: UInt32
    public var cdw11: UInt32
    public var cdw12: UInt32
    public var cdw13: UInt32
    public var cdw14: UInt32
    public var cdw15: UInt32

    public static let encodedSize = 64
    /// PSDT = 01b: SGLs are used for this transfer.
    public static let psdtSGL: UInt8 = 0x40

    public init(
        opcode: UInt8, flags: UInt8 = SubmissionQueueEntry.psdtSGL, commandID: UInt16 = 0, namespaceID: UInt32 = 0,
        cdw2: UInt32 = 0, cdw3: UInt32 = 0, metadataPointer: UInt64 = 0,
        dataPointer: SGLDescriptor = .transport(length: 0),
        cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0, cdw13: UInt32 = 0, cdw14: UInt32 = 0, cdw15: UInt32 = 0
    ) {
        self.opcode = opcode
        self.flags = flags
        self.commandID = commandID
        self.namespaceID = namespaceID
        self.cdw2 = cdw2
        self.cdw3 = cdw3
        self.metadataPointer = metadataPointer
        self.dataPointer = dataPointer
        self.cdw10 = cdw10
        self.cdw11 = cdw11
        self.cdw12 = cdw12
        self.cdw13 = cdw13
        self.cdw14 = cdw14
        self.cdw15 = cdw15
    }

    /// FUSE bits (must be 0: fused operations are not supported).
    public var fuse: UInt8 { flags & 0x3 }
    /// PSDT bits.
    public var psdt: UInt8 { flags & 0xC0 }
    /// Fabrics command type (byte 4) when `opcode == 0x7F`.
    public var fabricsCommandType: UInt8 { UInt8(truncatingIfNeeded: namespaceID) }
    /// Data transfer direction from opcode bits 1:0: 01b host→controller, 10b controller→host.
    public var dataDirection: DataDirection { DataDirection(rawValue: opcode & 0x3) ?? .none }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.encodedSize) { bytes in
            store(into: bytes, at: 0)
            return Self.encodedSize
        }
    }

    /// Writes the 64 bytes at `offset` of `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeLittleEndian(opcode, at: offset)
        bytes.storeLittleEndian(flags, at: offset + 1)
        bytes.storeLittleEndian(commandID, at: offset + 2)
        bytes.storeLittleEndian(namespaceID, at: offset + 4)
        bytes.storeLittleEndian(cdw2, at: offset + 8)
        bytes.storeLittleEndian(cdw3, at: offset + 12)
        bytes.storeLittleEndian(metadataPointer, at: offset + 16)
        dataPointer.store(into: bytes, at: offset + 24)
        bytes.storeLittleEndian(cdw10, at: offset + 40)
        bytes.storeLittleEndian(cdw11, at: offset + 44)
        bytes.storeLittleEndian(cdw12, at: offset + 48)
        bytes.storeLittleEndian(cdw13, at: offset + 52)
        bytes.storeLittleEndian(cdw14, at: offset + 56)
        bytes.storeLittleEndian(cdw15, at: offset + 60)
    }

    /// Reads the 64 bytes at `offset` of `bytes`.
    init(loading bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.init(
            opcode: bytes.loadLittleEndian(at: offset), flags: bytes.loadLittleEndian(at: offset + 1),
            commandID: bytes.loadLittleEndian(at: offset + 2), namespaceID: bytes.loadLittleEndian(at: offset + 4),
            cdw2: bytes.loadLittleEndian(at: offset + 8), cdw3: bytes.loadLittleEndian(at: offset + 12),
            metadataPointer: bytes.loadLittleEndian(at: offset + 16),
            dataPointer: SGLDescriptor(loading: bytes, at: offset + 24),
            cdw10: bytes.loadLittleEndian(at: offset + 40), cdw11: bytes.loadLittleEndian(at: offset + 44),
            cdw12: bytes.loadLittleEndian(at: offset + 48), cdw13: bytes.loadLittleEndian(at: offset + 52),
            cdw14: bytes.loadLittleEndian(at: offset + 56), cdw15: bytes.loadLittleEndian(at: offset + 60))
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: 0, "SQE needs 64 bytes, have \(buffer.readableBytes)")
        }
        self = buffer.withUnsafeReadableBytes { Self(loading: $0, at: 0) }
        buffer.moveReaderIndex(forwardBy: Self.encodedSize)
    }
}

/// Direction of a command's data transfer (NVMe base spec 2.0 §5, opcode bits 1:0).
public enum DataDirection: UInt8, Sendable {
    case none = 0
    case hostToController = 1
    case controllerToHost = 2
    case bidirectional = 3
}
