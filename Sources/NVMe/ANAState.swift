/// Asymmetric Namespace Access state of one ANA group as seen through one controller: the ANAS
/// field (b3:0 of byte 16) of an ANA Group Descriptor (NVMe 2.0 base spec §8.1.1 "Asymmetric
/// Namespace Access Reporting", §5.16.1.12 Figure 226).
public enum ANAState: UInt8, Hashable, Sendable, CaseIterable {
    /// 1h: I/O executes; preferred path.
    case optimized = 0x01
    /// 2h: I/O executes; used when no optimized path exists.
    case nonOptimized = 0x02
    /// 3h: I/O fails with Asymmetric Access Inaccessible (SCT 3h / SC 02h).
    case inaccessible = 0x03
    /// 4h: I/O fails with Asymmetric Access Persistent Loss (SCT 3h / SC 01h).
    case persistentLoss = 0x04
    /// Fh: transitioning; I/O fails with Asymmetric Access Transition (SCT 3h / SC 03h).
    case change = 0x0F

    /// Whether I/O to a namespace in this state executes on this path.
    public var isAccessible: Bool { self == .optimized || self == .nonOptimized }
}
