import NIOCore

/// A 16-byte NVMe completion, the Completion Queue Entry (NVMe base spec 2.0 §4.6, Figure 89)
/// carried by an NVMe/TCP CapsuleResp PDU.
public struct CompletionQueueEntry: Hashable, Sendable {
    /// Command specific dword 0 (e.g. the controller ID for Connect, the property value for Get).
    public var dw0: UInt32
    public var dw1: UInt32
    public var submissionQueueHead: UInt16
    public var submissionQueueID: UInt16
    public var commandID: UInt16
    public var status: NVMeStatus

    public static let encodedSize = 16

    public init(dw0: UInt32 = 0, dw1: UInt32 = 0, submissionQueueHead: UInt16 = 0, submissionQueueID: UInt16 = 0,
                commandID: UInt16, status: NVMeStatus = .success) {
        self.dw0 = dw0
        self.dw1 = dw1
        self.submissionQueueHead = submissionQueueHead
        self.submissionQueueID = submissionQueueID
        self.commandID = commandID
        self.status = status
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.encodedSize) { bytes in
            store(into: bytes, at: 0)
            return Self.encodedSize
        }
    }

    /// Writes the 16 bytes at `offset` of `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeLittleEndian(dw0, at: offset)
        bytes.storeLittleEndian(dw1, at: offset + 4)
        bytes.storeLittleEndian(submissionQueueHead, at: offset + 8)
        bytes.storeLittleEndian(submissionQueueID, at: offset + 10)
        bytes.storeLittleEndian(commandID, at: offset + 12)
        bytes.storeLittleEndian(status.wire, at: offset + 14)
    }

    /// Reads the 16 bytes at `offset` of `bytes`.
    init(loading bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.init(dw0: bytes.loadLittleEndian(at: offset), dw1: bytes.loadLittleEndian(at: offset + 4),
                  submissionQueueHead: bytes.loadLittleEndian(at: offset + 8), submissionQueueID: bytes.loadLittleEndian(at: offset + 10),
                  commandID: bytes.loadLittleEndian(at: offset + 12), status: NVMeStatus(wire: bytes.loadLittleEndian(at: offset + 14)))
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: 0, "CQE needs 16 bytes, have \(buffer.readableBytes)")
        }
        self = buffer.withUnsafeReadableBytes { Self(loading: $0, at: 0) }
        buffer.moveReaderIndex(forwardBy: Self.encodedSize)
    }
}
