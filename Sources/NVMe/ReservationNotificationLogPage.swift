import NIOCore

/// Reservation Notification log page, LID 80h (NVMe base spec 2.0 §5.16.1.21, Figure 263): 64
/// bytes {Log Page Count u64 @0, Reservation Notification Log Page Type u8 @8, Number of Available
/// Log Pages u8 @9, NSID u32 @12}. Each read returns the oldest unread notice and removes it.
public struct ReservationNotificationLogPage: Hashable, Sendable {
    /// Reservation Notification Log Page Type.
    public enum NoticeType: UInt8, Hashable, Sendable {
        case empty = 0
        case registrationPreempted = 1
        case reservationReleased = 2
        case reservationPreempted = 3
    }

    /// Log Page Count: increments per notice, wraps past 0 (0 is skipped); 0 on an empty page.
    public var count: UInt64
    public var rawType: UInt8
    /// Number of further notices still queued (saturates at 255).
    public var availableCount: UInt8
    public var namespaceID: UInt32

    public static let encodedSize = 64

    public init(count: UInt64, type: NoticeType, availableCount: UInt8, namespaceID: UInt32) {
        self.count = count
        self.rawType = type.rawValue
        self.availableCount = availableCount
        self.namespaceID = namespaceID
    }

    public static let empty = ReservationNotificationLogPage(count: 0, type: .empty, availableCount: 0, namespaceID: 0)

    public var type: NoticeType? { NoticeType(rawValue: rawType) }

    /// Writes exactly 64 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(count, endianness: .little)
        buffer.writeInteger(rawType)
        buffer.writeInteger(availableCount)
        buffer.writeZeros(2)
        buffer.writeInteger(namespaceID, endianness: .little)
        buffer.writeZeros(48)
    }

    /// Reads exactly 64 bytes.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard var page = buffer.readSlice(length: Self.encodedSize),
              let count = page.readInteger(endianness: .little, as: UInt64.self),
              let rawType = page.readInteger(as: UInt8.self),
              let available = page.readInteger(as: UInt8.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "Reservation Notification log page needs 64 bytes, have \(buffer.readableBytes)")
        }
        page.moveReaderIndex(forwardBy: 2)
        self.count = count
        self.rawType = rawType
        self.availableCount = available
        self.namespaceID = page.readInteger(endianness: .little, as: UInt32.self) ?? 0
    }
}
