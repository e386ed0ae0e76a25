import NIOCore

/// Reservation Acquire, I/O opcode 11h (NVMe base spec 2.0 §7.4, Figures 572–574): CDW10
/// {RACQA b2:0, IEKEY b3, RTYPE b15:8}; 16 bytes of data {CRKEY u64, PRKEY u64}.
public struct ReservationAcquireCommand: Hashable, Sendable {
    /// Reservation Acquire Action.
    public enum Action: UInt8, Hashable, Sendable {
        case acquire = 0
        case preempt = 1
        case preemptAndAbort = 2
    }

    /// RACQA as sent (3 bits); values above 2 are reserved.
    public var rawAction: UInt8
    /// IEKEY (the target answers Invalid Field when set, as nvmet and SPDK do).
    public var ignoreExistingKey: Bool
    /// RTYPE as sent; 1…6 are valid.
    public var rawType: UInt8

    public init(action: Action, type: ReservationType, ignoreExistingKey: Bool = false) {
        rawAction = action.rawValue
        rawType = type.rawValue
        self.ignoreExistingKey = ignoreExistingKey
    }

    public init(cdw10: UInt32) {
        rawAction = UInt8(truncatingIfNeeded: cdw10) & 0x7
        ignoreExistingKey = cdw10 & (1 << 3) != 0
        rawType = UInt8(truncatingIfNeeded: cdw10 >> 8)
    }

    public var action: Action? { Action(rawValue: rawAction) }
    public var type: ReservationType? { ReservationType(rawValue: rawType) }

    public var cdw10: UInt32 {
        UInt32(rawAction & 0x7) | (ignoreExistingKey ? 1 << 3 : 0) | UInt32(rawType) << 8
    }

    public func submissionQueueEntry(namespaceID: UInt32, commandID: UInt16 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.reservationAcquire.rawValue, commandID: commandID, namespaceID: namespaceID,
                             dataPointer: .transport(length: UInt32(ReservationAcquireData.encodedSize)), cdw10: cdw10)
    }
}

/// Reservation Acquire data (NVMe base spec 2.0 Figure 574): Current Reservation Key at 0,
/// Preempt Reservation Key at 8.
public struct ReservationAcquireData: Hashable, Sendable {
    public var currentKey: UInt64
    public var preemptKey: UInt64

    public static let encodedSize = 16

    public init(currentKey: UInt64, preemptKey: UInt64 = 0) {
        self.currentKey = currentKey
        self.preemptKey = preemptKey
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(currentKey, endianness: .little)
        buffer.writeInteger(preemptKey, endianness: .little)
    }

    /// Reads 16 bytes; throws `.truncated` when fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize,
              let crkey = buffer.readInteger(endianness: .little, as: UInt64.self),
              let prkey = buffer.readInteger(endianness: .little, as: UInt64.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "Reservation Acquire data needs 16 bytes, have \(buffer.readableBytes)")
        }
        self.init(currentKey: crkey, preemptKey: prkey)
    }
}
