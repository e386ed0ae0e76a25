/// Controller property offsets and bit layouts (NVMe base spec 2.0 §3.1.3, Figure 33) as read and
/// written over fabrics with Property Get/Set.
public enum ControllerProperty {
    public static let capabilities: UInt32 = 0x00
    public static let version: UInt32 = 0x08
    public static let configuration: UInt32 = 0x14
    public static let status: UInt32 = 0x1C
    public static let subsystemReset: UInt32 = 0x20
    public static let readyTimeouts: UInt32 = 0x68
}

/// CAP, the Controller Capabilities property (NVMe base spec 2.0 §3.1.3.1).
public struct ControllerCapabilities: Hashable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// - Parameters:
    ///   - maxQueueEntries: MQES+1, the deepest queue the controller supports.
    ///   - timeout500ms: CAP.TO, worst-case time to become ready in 500 ms units.
    public init(maxQueueEntries: Int, timeout500ms: UInt8) {
        precondition(maxQueueEntries >= 2 && maxQueueEntries <= 65536)
        var v = UInt64(maxQueueEntries - 1)    // MQES b15:0
        v |= 1 << 16                           // CQR: contiguous queues required
        v |= UInt64(timeout500ms) << 24        // TO
        v |= 1 << 37                           // CSS: NVM command set
        // MPSMIN (b51:48) = 0 → 4 KiB, MPSMAX (b55:52) = 0. CRMS (b60:59) = 0.
        rawValue = v
    }

    public var maxQueueEntries: Int { Int(rawValue & 0xFFFF) + 1 }
    public var timeout500ms: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 24) }
}

/// CC, the Controller Configuration property (NVMe base spec 2.0 §3.1.3.5).
public struct ControllerConfiguration: Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public var enable: Bool { rawValue & 1 != 0 }
    /// I/O command set selected (b6:4).
    public var commandSetSelected: UInt8 { UInt8((rawValue >> 4) & 0x7) }
    /// Memory page size (b10:7): 2^(12+MPS).
    public var memoryPageSize: UInt8 { UInt8((rawValue >> 7) & 0xF) }
    /// Arbitration mechanism (b13:11).
    public var arbitrationMechanism: UInt8 { UInt8((rawValue >> 11) & 0x7) }
    /// Shutdown notification (b15:14): 0 none, 1 normal, 2 abrupt.
    public var shutdownNotification: UInt8 { UInt8((rawValue >> 14) & 0x3) }
    /// I/O submission queue entry size (b19:16), 2^n bytes.
    public var ioSubmissionQueueEntrySize: UInt8 { UInt8((rawValue >> 16) & 0xF) }
    /// I/O completion queue entry size (b23:20), 2^n bytes.
    public var ioCompletionQueueEntrySize: UInt8 { UInt8((rawValue >> 20) & 0xF) }

    /// What the Linux host writes: IOCQES 4, IOSQES 6, everything else 0, plus EN.
    public static func linuxDefault(enable: Bool) -> ControllerConfiguration {
        ControllerConfiguration(rawValue: 0x0046_0000 | (enable ? 1 : 0))
    }
}

/// CSTS, the Controller Status property (NVMe base spec 2.0 §3.1.3.6).
public struct ControllerStatus: Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public var ready: Bool {
        get { rawValue & 1 != 0 }
        set { rawValue = newValue ? rawValue | 1 : rawValue & ~1 }
    }
    /// Controller Fatal Status.
    public var fatal: Bool {
        get { rawValue & 2 != 0 }
        set { rawValue = newValue ? rawValue | 2 : rawValue & ~2 }
    }
    /// Shutdown status (b3:2): 0 normal operation, 1 occurring, 2 complete.
    public var shutdownStatus: UInt8 {
        get { UInt8((rawValue >> 2) & 0x3) }
        set { rawValue = (rawValue & ~0xC) | (UInt32(newValue & 0x3) << 2) }
    }
}
