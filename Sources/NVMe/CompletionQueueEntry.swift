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
        buffer.writeInteger(dw0, endianness: .little)
        buffer.writeInteger(dw1, endianness: .little)
        buffer.writeInteger(submissionQueueHead, endianness: .little)
        buffer.writeInteger(submissionQueueID, endianness: .little)
        buffer.writeInteger(commandID, endianness: .little)
        buffer.writeInteger(status.wire, endianness: .little)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: 0, "CQE needs 16 bytes, have \(buffer.readableBytes)")
        }
        dw0 = buffer.readInteger(endianness: .little, as: UInt32.self)!
        dw1 = buffer.readInteger(endianness: .little, as: UInt32.self)!
        submissionQueueHead = buffer.readInteger(endianness: .little, as: UInt16.self)!
        submissionQueueID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        commandID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        status = NVMeStatus(wire: buffer.readInteger(endianness: .little, as: UInt16.self)!)
    }
}
