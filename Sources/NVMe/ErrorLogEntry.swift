import NIOCore

/// Error Information Log Entry, log page 01h (NVMe 2.0 base spec §5.16.1.2, Figure 205): 64 bytes.
/// The log page is an array of these (ELPE+1 entries); an entry with error count 0 is empty.
public struct ErrorLogEntry: Hashable, Sendable {
    /// Byte 0: Error Count, unique and incrementing from 1; 0 = invalid/empty entry.
    public var errorCount: UInt64
    /// Byte 8: Submission Queue ID of the failed command.
    public var submissionQueueID: UInt16
    /// Byte 10: Command ID of the failed command.
    public var commandID: UInt16
    /// Byte 12: Status Field: b0 phase tag, b15:1 the status as in a CQE's STATUS b15:1.
    public var statusField: UInt16
    /// Byte 14: Parameter Error Location (b7:0 byte in the SQE, b10:8 bit; 0xFFFF = not specific).
    public var parameterErrorLocation: UInt16
    /// Byte 16: first LBA that had the error.
    public var lba: UInt64
    /// Byte 24: namespace of the error.
    public var namespaceID: UInt32
    /// Byte 28: Vendor Specific Information Available (log page ID, 0 = none).
    public var vendorSpecificInformationAvailable: UInt8
    /// Byte 29: Transport Type (3 = TCP).
    public var transportType: UInt8
    /// Byte 30: Command Set Indicator.
    public var commandSetIndicator: UInt8
    /// Byte 31: Opcode of the failed command.
    public var opcode: UInt8
    /// Byte 32: Command Specific Information.
    public var commandSpecificInformation: UInt64
    /// Byte 40: Transport Type Specific Information.
    public var transportTypeSpecificInformation: UInt16
    /// Byte 63: Log Page Version (0 or 1).
    public var logPageVersion: UInt8

    public static let encodedSize = 64

    public init(
        errorCount: UInt64 = 0, submissionQueueID: UInt16 = 0, commandID: UInt16 = 0, statusField: UInt16 = 0,
        parameterErrorLocation: UInt16 = 0xFFFF, lba: UInt64 = 0, namespaceID: UInt32 = 0,
        vendorSpecificInformationAvailable: UInt8 = 0, transportType: UInt8 = 0, commandSetIndicator: UInt8 = 0,
        opcode: UInt8 = 0, commandSpecificInformation: UInt64 = 0, transportTypeSpecificInformation: UInt16 = 0,
        logPageVersion: UInt8 = 0
    ) {
        self.errorCount = errorCount
        self.submissionQueueID = submissionQueueID
        self.commandID = commandID
        self.statusField = statusField
        self.parameterErrorLocation = parameterErrorLocation
        self.lba = lba
        self.namespaceID = namespaceID
        self.vendorSpecificInformationAvailable = vendorSpecificInformationAvailable
        self.transportType = transportType
        self.commandSetIndicator = commandSetIndicator
        self.opcode = opcode
        self.commandSpecificInformation = commandSpecificInformation
        self.transportTypeSpecificInformation = transportTypeSpecificInformation
        self.logPageVersion = logPageVersion
    }

    /// Writes exactly 64 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(errorCount, endianness: .little)  // 0
        buffer.writeInteger(submissionQueueID, endianness: .little)  // 8
        buffer.writeInteger(commandID, endianness: .little)  // 10
        buffer.writeInteger(statusField, endianness: .little)  // 12
        buffer.writeInteger(parameterErrorLocation, endianness: .little)  // 14
        buffer.writeInteger(lba, endianness: .little)  // 16
        buffer.writeInteger(namespaceID, endianness: .little)  // 24
        buffer.writeInteger(vendorSpecificInformationAvailable, endianness: .little)  // 28
        buffer.writeInteger(transportType, endianness: .little)  // 29
        buffer.writeInteger(commandSetIndicator, endianness: .little)  // 30
        buffer.writeInteger(opcode, endianness: .little)  // 31
        buffer.writeInteger(commandSpecificInformation, endianness: .little)  // 32
        buffer.writeInteger(transportTypeSpecificInformation, endianness: .little)  // 40
        buffer.writeZeros(63 - 42)  // 42..62 reserved
        buffer.writeInteger(logPageVersion, endianness: .little)  // 63
    }

    /// Reads exactly 64 bytes; throws `.truncated` if fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Error log entry needs 64 bytes, have \(buffer.readableBytes)")
        }
        errorCount = buffer.readInteger(endianness: .little, as: UInt64.self)!
        submissionQueueID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        commandID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        statusField = buffer.readInteger(endianness: .little, as: UInt16.self)!
        parameterErrorLocation = buffer.readInteger(endianness: .little, as: UInt16.self)!
        lba = buffer.readInteger(endianness: .little, as: UInt64.self)!
        namespaceID = buffer.readInteger(endianness: .little, as: UInt32.self)!
        vendorSpecificInformationAvailable = buffer.readInteger(endianness: .little, as: UInt8.self)!
        transportType = buffer.readInteger(endianness: .little, as: UInt8.self)!
        commandSetIndicator = buffer.readInteger(endianness: .little, as: UInt8.self)!
        opcode = buffer.readInteger(endianness: .little, as: UInt8.self)!
        commandSpecificInformation = buffer.readInteger(endianness: .little, as: UInt64.self)!
        transportTypeSpecificInformation = buffer.readInteger(endianness: .little, as: UInt16.self)!
        buffer.moveReaderIndex(forwardBy: 63 - 42)
        logPageVersion = buffer.readInteger(endianness: .little, as: UInt8.self)!
    }
}
