/// Reservation Capabilities, RESCAP: Identify Namespace byte 31 (NVMe NVM command set spec 1.0
/// §4.1.5.1, Figure 97): which reservation types the namespace supports, Persist Through Power
/// Loss, and the NVMe 1.3 meaning of IEKEY.
public struct ReservationCapabilities: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// b0: Persist Through Power Loss.
    public static let persistThroughPowerLoss = ReservationCapabilities(rawValue: 1 << 0)
    /// b1: Write Exclusive.
    public static let writeExclusive = ReservationCapabilities(rawValue: 1 << 1)
    /// b2: Exclusive Access.
    public static let exclusiveAccess = ReservationCapabilities(rawValue: 1 << 2)
    /// b3: Write Exclusive - Registrants Only.
    public static let writeExclusiveRegistrantsOnly = ReservationCapabilities(rawValue: 1 << 3)
    /// b4: Exclusive Access - Registrants Only.
    public static let exclusiveAccessRegistrantsOnly = ReservationCapabilities(rawValue: 1 << 4)
    /// b5: Write Exclusive - All Registrants.
    public static let writeExclusiveAllRegistrants = ReservationCapabilities(rawValue: 1 << 5)
    /// b6: Exclusive Access - All Registrants.
    public static let exclusiveAccessAllRegistrants = ReservationCapabilities(rawValue: 1 << 6)
    /// b7: Ignore Existing Key behaves as in NVMe 1.3 and later.
    public static let ignoreExistingKey13 = ReservationCapabilities(rawValue: 1 << 7)

    /// Every type, PTPL and IEKEY (0xFF).
    public static let all = ReservationCapabilities(rawValue: 0xFF)

    /// The bit for one reservation type.
    public init(type: ReservationType) { self.init(rawValue: 1 << type.rawValue) }
}
