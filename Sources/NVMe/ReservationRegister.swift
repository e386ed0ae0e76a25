import NIOCore

/// Reservation Register, I/O opcode 0Dh (NVMe base spec 2.0 §7.6, Figures 583–585): CDW10
/// {RREGA b2:0, IEKEY b3, CPTPL b31:30}; 16 bytes of data {CRKEY u64, NRKEY u64}.
public struct ReservationRegisterCommand: Hashable, Sendable {
    /// Reservation Register Action.
    public enum Action: UInt8, Hashable, Sendable {
        case register = 0
        case unregister = 1
        case replace = 2
    }

    /// Change Persist Through Power Loss State (01b is reserved).
    public enum PersistenceChange: UInt8, Hashable, Sendable {
        case noChange = 0
        case clear = 2
        case set = 3
    }

    /// RREGA as sent (3 bits); values above 2 are reserved.
    public var rawAction: UInt8
    /// IEKEY: ignore CRKEY.
    public var ignoreExistingKey: Bool
    /// CPTPL as sent (2 bits).
    public var rawPersistenceChange: UInt8

    public init(action: Action, ignoreExistingKey: Bool = false, persistenceChange: PersistenceChange = .noChange) {
        rawAction = action.rawValue
        self.ignoreExistingKey = ignoreExistingKey
        rawPersistenceChange = persistenceChange.rawValue
    }

    public init(cdw10: UInt32) {
        rawAction = UInt8(truncatingIfNeeded: cdw10) & 0x7
        ignoreExistingKey = cdw10 & (1 << 3) != 0
        rawPersistenceChange = UInt8(truncatingIfNeeded: cdw10 >> 30) & 0x3
    }

    public var action: Action? { Action(rawValue: rawAction) }
    public var persistenceChange: PersistenceChange? { PersistenceChange(rawValue: rawPersistenceChange) }

    public var cdw10: UInt32 {
        UInt32(rawAction & 0x7) | (ignoreExistingKey ? 1 << 3 : 0) | UInt32(rawPersistenceChange & 0x3) << 30
    }

    /// The command for namespace `nsid`, its 16 data bytes described by a transport SGL.
    public func submissionQueueEntry(namespaceID: UInt32, commandID: UInt16 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.reservationRegister.rawValue, commandID: commandID, namespaceID: namespaceID,
                             dataPointer: .transport(length: UInt32(ReservationRegisterData.encodedSize)), cdw10: cdw10)
    }
}

/// Reservation Register data (NVMe base spec 2.0 Figure 585): Current Reservation Key at 0, New
/// Reservation Key at 8.
public struct ReservationRegisterData: Hashable, Sendable {
    public var currentKey: UInt64
    public var newKey: UInt64

    public static let encodedSize = 16

    public init(currentKey: UInt64, newKey: UInt64) {
        self.currentKey = currentKey
        self.newKey = newKey
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(currentKey, endianness: .little)
        buffer.writeInteger(newKey, endianness: .little)
    }

    /// Reads 16 bytes; throws `.truncated` when fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize,
              let crkey = buffer.readInteger(endianness: .little, as: UInt64.self),
              let nrkey = buffer.readInteger(endianness: .little, as: UInt64.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "Reservation Register data needs 16 bytes, have \(buffer.readableBytes)")
        }
        self.init(currentKey: crkey, newKey: nrkey)
    }
}
