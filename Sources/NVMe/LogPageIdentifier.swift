import NIOCore

/// Log Page Identifiers (LID) this project serves or reads (NVMe 2.0 base spec §5.16, Figure 202).
public enum LogPageIdentifier: UInt8, Hashable, Sendable, CaseIterable {
    /// 01h Error Information (64-byte entries).
    case error = 0x01
    /// 02h SMART / Health Information (512 bytes).
    case smart = 0x02
    /// 03h Firmware Slot Information (512 bytes).
    case firmwareSlot = 0x03
    /// 04h Changed Namespace List (4096 bytes).
    case changedNamespaces = 0x04
    /// 05h Commands Supported and Effects.
    case commandEffects = 0x05
    /// 0Ch Asymmetric Namespace Access.
    case ana = 0x0C
    /// 70h Discovery (NVMe over Fabrics).
    case discovery = 0x70
    /// 80h Reservation Notification (64 bytes).
    case reservationNotification = 0x80
    /// C0h (vendor specific) Halyard allocated ranges: ``AllocatedRangesLogPage``.
    case allocatedRanges = 0xC0
}

/// The Get Log Page command's dwords 10..14 (NVMe 2.0 base spec §5.16, Figures 197–201):
/// CDW10 {LID b7:0, LSP b14:8, RAE b15, NUMDL b31:16}, CDW11 {NUMDU b15:0, LSI b31:16},
/// CDW12/13 LPO (byte offset, low/high), CDW14 {UUID index b6:0, OT b23, CSI b31:24}.
public struct GetLogPageCommandFields: Hashable, Sendable {
    /// Log Page Identifier (raw, since unknown LIDs must be answered with Invalid Log Page).
    public var logPageIdentifier: UInt8
    /// Log Specific Parameter (7 bits); for the ANA log, bit 0 is RGO (groups only).
    public var logSpecificField: UInt8
    /// Retain Asynchronous Event: when false, reading clears the matching AEN mask.
    public var retainAsynchronousEvent: Bool
    /// Number of dwords to return, 0's based (NUMDU << 16 | NUMDL).
    public var numberOfDwords: UInt32
    /// Log Specific Identifier.
    public var logSpecificIdentifier: UInt16
    /// Log Page Offset in bytes (or an index when `offsetIsIndex`).
    public var offset: UInt64
    /// UUID index (CDW14 b6:0).
    public var uuidIndex: UInt8
    /// Offset Type (CDW14 b23): LPO is an entry index rather than a byte offset.
    public var offsetIsIndex: Bool
    /// Command Set Identifier (CDW14 b31:24).
    public var commandSetIdentifier: UInt8

    /// Parses a Get Log Page SQE's dwords 10..14.
    public init(cdw10: UInt32, cdw11: UInt32, cdw12: UInt32, cdw13: UInt32, cdw14: UInt32) {
        logPageIdentifier = UInt8(truncatingIfNeeded: cdw10)
        logSpecificField = UInt8(truncatingIfNeeded: cdw10 >> 8) & 0x7F
        retainAsynchronousEvent = cdw10 & (1 << 15) != 0
        numberOfDwords = (cdw11 & 0xFFFF) << 16 | cdw10 >> 16
        logSpecificIdentifier = UInt16(truncatingIfNeeded: cdw11 >> 16)
        offset = UInt64(cdw13) << 32 | UInt64(cdw12)
        uuidIndex = UInt8(truncatingIfNeeded: cdw14) & 0x7F
        offsetIsIndex = cdw14 & (1 << 23) != 0
        commandSetIdentifier = UInt8(truncatingIfNeeded: cdw14 >> 24)
    }

    /// Builds the fields for a request of `lengthInBytes` (a positive multiple of 4) at `offset`.
    public init(
        logPageIdentifier: UInt8, lengthInBytes: Int, offset: UInt64 = 0, logSpecificField: UInt8 = 0,
        retainAsynchronousEvent: Bool = false, logSpecificIdentifier: UInt16 = 0, uuidIndex: UInt8 = 0,
        offsetIsIndex: Bool = false, commandSetIdentifier: UInt8 = 0
    ) {
        precondition(lengthInBytes >= 4 && lengthInBytes % 4 == 0 && lengthInBytes / 4 <= 1 << 32,
                     "log page length must be a positive multiple of 4")
        self.logPageIdentifier = logPageIdentifier
        self.logSpecificField = logSpecificField & 0x7F
        self.retainAsynchronousEvent = retainAsynchronousEvent
        self.numberOfDwords = UInt32(lengthInBytes / 4 - 1)
        self.logSpecificIdentifier = logSpecificIdentifier
        self.offset = offset
        self.uuidIndex = uuidIndex & 0x7F
        self.offsetIsIndex = offsetIsIndex
        self.commandSetIdentifier = commandSetIdentifier
    }

    /// Same, with a known LID.
    public init(
        logPage: LogPageIdentifier, lengthInBytes: Int, offset: UInt64 = 0, logSpecificField: UInt8 = 0,
        retainAsynchronousEvent: Bool = false
    ) {
        self.init(
            logPageIdentifier: logPage.rawValue, lengthInBytes: lengthInBytes, offset: offset,
            logSpecificField: logSpecificField, retainAsynchronousEvent: retainAsynchronousEvent)
    }

    /// The LID, if it is one of the known ones.
    public var logPage: LogPageIdentifier? { LogPageIdentifier(rawValue: logPageIdentifier) }

    /// Bytes to return: (NUMD + 1) · 4.
    public var lengthInBytes: Int { (Int(numberOfDwords) + 1) * 4 }

    public var cdw10: UInt32 {
        UInt32(logPageIdentifier) | UInt32(logSpecificField & 0x7F) << 8 | (retainAsynchronousEvent ? 1 << 15 : 0)
            | (numberOfDwords & 0xFFFF) << 16
    }

    public var cdw11: UInt32 { numberOfDwords >> 16 | UInt32(logSpecificIdentifier) << 16 }
    public var cdw12: UInt32 { UInt32(truncatingIfNeeded: offset) }
    public var cdw13: UInt32 { UInt32(truncatingIfNeeded: offset >> 32) }

    public var cdw14: UInt32 {
        UInt32(uuidIndex & 0x7F) | (offsetIsIndex ? 1 << 23 : 0) | UInt32(commandSetIdentifier) << 24
    }

    /// This command's slice of a whole encoded log `page`: exactly `lengthInBytes` bytes starting
    /// at byte `offset`, zero-padded past the end.
    public func window(of page: ByteBuffer) -> ByteBuffer {
        Self.window(of: page, offset: offset, length: lengthInBytes)
    }

    /// Exactly `length` bytes of `page`'s readable bytes starting at byte `offset`, zero-padded
    /// past the end (an offset at or beyond the end yields all zeros).
    public static func window(of page: ByteBuffer, offset: UInt64, length: Int) -> ByteBuffer {
        precondition(length >= 0, "negative length")
        var out = ByteBuffer()
        out.reserveCapacity(length)
        let available = page.readableBytes
        if offset < UInt64(available) {
            let start = Int(offset)
            let count = min(length, available - start)
            out.writeImmutableBuffer(page.getSlice(at: page.readerIndex + start, length: count)!)
        }
        out.writeZeros(length - out.readableBytes)
        return out
    }
}
