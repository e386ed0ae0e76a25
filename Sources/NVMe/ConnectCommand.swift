import NIOCore

/// The Fabrics Connect command's fields (NVMe over Fabrics spec 1.1 §3.3, Figure 19): a typed view
/// over an SQE with opcode 0x7F and FCTYPE 0x01.
public struct ConnectCommand: Hashable, Sendable {
    /// Record format, must be 0.
    public var recordFormat: UInt16
    /// Queue ID: 0 = admin queue.
    public var queueID: UInt16
    /// Submission queue size, 0's based (0 is invalid).
    public var submissionQueueSize: UInt16
    /// Connect attributes: b1:0 priority class, b2 disable SQ flow control.
    public var attributes: UInt8
    /// Keep Alive Timeout in milliseconds (admin queue only; 0 disables).
    public var keepAliveTimeoutMilliseconds: UInt32

    public init(recordFormat: UInt16 = 0, queueID: UInt16, submissionQueueSize: UInt16, attributes: UInt8 = 0,
                keepAliveTimeoutMilliseconds: UInt32 = 0) {
        self.recordFormat = recordFormat
        self.queueID = queueID
        self.submissionQueueSize = submissionQueueSize
        self.attributes = attributes
        self.keepAliveTimeoutMilliseconds = keepAliveTimeoutMilliseconds
    }

    public init(_ sqe: SubmissionQueueEntry) {
        recordFormat = UInt16(truncatingIfNeeded: sqe.cdw10)
        queueID = UInt16(truncatingIfNeeded: sqe.cdw10 >> 16)
        submissionQueueSize = UInt16(truncatingIfNeeded: sqe.cdw11)
        attributes = UInt8(truncatingIfNeeded: sqe.cdw11 >> 16)
        keepAliveTimeoutMilliseconds = sqe.cdw12
    }

    /// SQ flow control disabled (CATTR b2): SQHD is then 0xFFFF in every completion.
    public var sqFlowControlDisabled: Bool { attributes & 0x4 != 0 }

    /// The SQE for this Connect, whose 1024-byte data goes in-capsule.
    public func submissionQueueEntry(commandID: UInt16) -> SubmissionQueueEntry {
        SubmissionQueueEntry(
            opcode: AdminOpcode.fabrics.rawValue, commandID: commandID,
            namespaceID: UInt32(FabricsCommandType.connect.rawValue),
            dataPointer: .inCapsule(length: UInt32(ConnectData.encodedSize)),
            cdw10: UInt32(recordFormat) | UInt32(queueID) << 16,
            cdw11: UInt32(submissionQueueSize) | UInt32(attributes) << 16,
            cdw12: keepAliveTimeoutMilliseconds)
    }
}

/// The 1024-byte data of a Fabrics Connect command (NVMe over Fabrics spec 1.1 §3.3, Figure 20):
/// the host identifier, the controller ID, and the subsystem and host NQNs.
public struct ConnectData: Hashable, Sendable {
    /// 128-bit host identifier; reservations identify a host by it.
    public var hostID: [UInt8]
    /// 0xFFFF on the admin queue (dynamic controller); the assigned controller ID on I/O queues.
    public var controllerID: UInt16
    public var subsystemNQN: String
    public var hostNQN: String

    public static let encodedSize = 1024
    /// Connect's controller ID asking for a dynamically allocated controller.
    public static let dynamicControllerID: UInt16 = 0xFFFF

    public init(hostID: [UInt8], controllerID: UInt16, subsystemNQN: String, hostNQN: String) {
        precondition(hostID.count == 16, "host ID is 16 bytes")
        self.hostID = hostID
        self.controllerID = controllerID
        self.subsystemNQN = subsystemNQN
        self.hostNQN = hostNQN
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeBytes(hostID)
        buffer.writeInteger(controllerID, endianness: .little)
        buffer.writeZeros(256 - 18)
        buffer.writeFixedASCII(subsystemNQN, width: 256, pad: 0)
        buffer.writeFixedASCII(hostNQN, width: 256, pad: 0)
        buffer.writeZeros(256)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: 0, "Connect data needs 1024 bytes, have \(buffer.readableBytes)")
        }
        hostID = buffer.readBytes(length: 16)!
        controllerID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        buffer.moveReaderIndex(forwardBy: 256 - 18)
        subsystemNQN = buffer.readFixedASCII(width: 256)!
        hostNQN = buffer.readFixedASCII(width: 256)!
        buffer.moveReaderIndex(forwardBy: 256)
    }
}

/// Fabrics Property Get / Property Set fields (NVMe over Fabrics spec 1.1 §3.4–§3.5).
public struct PropertyCommand: Hashable, Sendable {
    /// Property size: false = 4 bytes, true = 8 bytes (ATTRIB b2:0).
    public var isEightBytes: Bool
    /// Register offset (CAP 0x00, VS 0x08, CC 0x14, CSTS 0x1C, …).
    public var offset: UInt32
    /// Property Set only: the value to write.
    public var value: UInt64

    public init(isEightBytes: Bool, offset: UInt32, value: UInt64 = 0) {
        self.isEightBytes = isEightBytes
        self.offset = offset
        self.value = value
    }

    public init(_ sqe: SubmissionQueueEntry) {
        isEightBytes = sqe.cdw10 & 0x7 == 1
        offset = sqe.cdw11
        value = UInt64(sqe.cdw12) | UInt64(sqe.cdw13) << 32
    }

    public func submissionQueueEntry(set: Bool, commandID: UInt16) -> SubmissionQueueEntry {
        SubmissionQueueEntry(
            opcode: AdminOpcode.fabrics.rawValue, commandID: commandID,
            namespaceID: UInt32(set ? FabricsCommandType.propertySet.rawValue : FabricsCommandType.propertyGet.rawValue),
            cdw10: isEightBytes ? 1 : 0, cdw11: offset,
            cdw12: set ? UInt32(truncatingIfNeeded: value) : 0, cdw13: set ? UInt32(truncatingIfNeeded: value >> 32) : 0)
    }
}
