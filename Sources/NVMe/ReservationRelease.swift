import NIOCore

/// Reservation Release, I/O opcode 15h (NVMe base spec 2.0 §7.5, Figures 579–580): CDW10
/// {RRELA b2:0, IEKEY b3, RTYPE b15:8}; 8 bytes of data {CRKEY u64}. Older Linux hosts send 16
/// bytes, so a decoder accepts 8 or more.
public struct ReservationReleaseCommand: Hashable, Sendable {
    /// Reservation Release Action.
    public enum Action: UInt8, Hashable, Sendable {
        case release = 0
        case clear = 1
    }

    /// RRELA as sent (3 bits); values above 1 are reserved.
    public var rawAction: UInt8
    /// IEKEY (the target answers Invalid Field when set, as nvmet and SPDK do).
    public var ignoreExistingKey: Bool
    /// RTYPE as sent (checked against the held reservation on release).
    public var rawType: UInt8

    public init(action: Action, type: ReservationType?, ignoreExistingKey: Bool = false) {
        rawAction = action.rawValue
        rawType = type?.rawValue ?? 0
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
        SubmissionQueueEntry(opcode: IOOpcode.reservationRelease.rawValue, commandID: commandID, namespaceID: namespaceID,
                             dataPointer: .transport(length: UInt32(ReservationReleaseData.encodedSize)), cdw10: cdw10)
    }
}

/// Reservation Release data (NVMe base spec 2.0 Figure 580): Current Reservation Key at 0.
public struct ReservationReleaseData: Hashable, Sendable {
    public var currentKey: UInt64

    public static let encodedSize = 8

    public init(currentKey: UInt64) { self.currentKey = currentKey }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(currentKey, endianness: .little)
    }

    /// Reads CRKEY and skips whatever follows it (up to 8 more bytes an older host sends).
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard let crkey = buffer.readInteger(endianness: .little, as: UInt64.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "Reservation Release data needs 8 bytes, have \(buffer.readableBytes)")
        }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        self.init(currentKey: crkey)
    }
}
