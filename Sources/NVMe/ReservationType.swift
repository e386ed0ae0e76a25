/// Reservation Type, RTYPE (NVMe base spec 2.0 §8.19, Figure 557; §7.3 of research/nvme-tcp.md):
/// Reservation Acquire/Release CDW10 b15:8 and the Reservation Report header. 0 means "no
/// reservation" in a report and is not a value of this type.
public enum ReservationType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case writeExclusive = 1
    case exclusiveAccess = 2
    case writeExclusiveRegistrantsOnly = 3
    case exclusiveAccessRegistrantsOnly = 4
    case writeExclusiveAllRegistrants = 5
    case exclusiveAccessAllRegistrants = 6

    /// Types 5 and 6: every registrant is a reservation holder.
    public var allRegistrantsAreHolders: Bool {
        self == .writeExclusiveAllRegistrants || self == .exclusiveAccessAllRegistrants
    }

    /// Types 3–6: registrants other than the holder have read and write access.
    public var registrantsHaveAccess: Bool { rawValue >= 3 }

    public var description: String {
        switch self {
        case .writeExclusive: "Write Exclusive"
        case .exclusiveAccess: "Exclusive Access"
        case .writeExclusiveRegistrantsOnly: "Write Exclusive - Registrants Only"
        case .exclusiveAccessRegistrantsOnly: "Exclusive Access - Registrants Only"
        case .writeExclusiveAllRegistrants: "Write Exclusive - All Registrants"
        case .exclusiveAccessAllRegistrants: "Exclusive Access - All Registrants"
        }
    }
}
