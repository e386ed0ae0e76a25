/// Feature Identifiers for Set Features / Get Features (NVMe 2.0 base spec §5.27.1, Figure 317).
public enum FeatureIdentifier: UInt8, Hashable, Sendable, CaseIterable {
    case arbitration = 0x01
    case powerManagement = 0x02
    case temperatureThreshold = 0x04
    /// 05h (was "Error Recovery"; NVMe 2.0 keeps the FID).
    case errorRecovery = 0x05
    case volatileWriteCache = 0x06
    case numberOfQueues = 0x07
    case interruptCoalescing = 0x08
    case asyncEventConfiguration = 0x0B
    case keepAliveTimer = 0x0F
    case hostIdentifier = 0x81
    case reservationNotificationMask = 0x82
    case reservationPersistence = 0x83
}

/// Set/Get Features CDW10 (NVMe 2.0 base spec Figures 316 and 190): FID b7:0, Get's SEL b10:8,
/// Set's SV b31. The feature value itself is in CDW11 (Set) and the completion's DW0.
public struct FeatureCommandFields: Hashable, Sendable {
    /// Feature Identifier (raw, since unknown FIDs are answered with Invalid Field).
    public var featureIdentifier: UInt8
    /// Get Features Select (0 current, 1 default, 2 saved, 3 supported capabilities).
    public var select: UInt8
    /// Set Features Save.
    public var save: Bool

    public init(featureIdentifier: UInt8, select: UInt8 = 0, save: Bool = false) {
        self.featureIdentifier = featureIdentifier
        self.select = select & 0x7
        self.save = save
    }

    public init(feature: FeatureIdentifier, select: UInt8 = 0, save: Bool = false) {
        self.init(featureIdentifier: feature.rawValue, select: select, save: save)
    }

    public init(cdw10: UInt32) {
        featureIdentifier = UInt8(truncatingIfNeeded: cdw10)
        select = UInt8(truncatingIfNeeded: cdw10 >> 8) & 0x7
        save = cdw10 & (1 << 31) != 0
    }

    public var feature: FeatureIdentifier? { FeatureIdentifier(rawValue: featureIdentifier) }

    public var cdw10: UInt32 {
        UInt32(featureIdentifier) | UInt32(select & 0x7) << 8 | (save ? 1 << 31 : 0)
    }
}

/// Number of Queues feature, FID 07h (NVMe 2.0 base spec §5.27.1.5, Figures 322/323). Set CDW11
/// and the completion DW0 share the layout {NSQ b15:0, NCQ b31:16}, both 0's based (0xFFFF is
/// invalid in a request).
public struct NumberOfQueues: Hashable, Sendable {
    /// Number of I/O submission queues, 0's based.
    public var submissionQueues: UInt16
    /// Number of I/O completion queues, 0's based.
    public var completionQueues: UInt16

    public init(submissionQueues: UInt16, completionQueues: UInt16) {
        self.submissionQueues = submissionQueues
        self.completionQueues = completionQueues
    }

    public init(dword: UInt32) {
        submissionQueues = UInt16(truncatingIfNeeded: dword)
        completionQueues = UInt16(truncatingIfNeeded: dword >> 16)
    }

    public var dword: UInt32 { UInt32(submissionQueues) | UInt32(completionQueues) << 16 }
}

/// Asynchronous Event Configuration feature, FID 0Bh (NVMe 2.0 base spec §5.27.1.9, Figure 331):
/// which events may complete an Asynchronous Event Request.
public struct AsyncEventConfiguration: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// b7:0: SMART / Health critical warnings (one bit per Critical Warning bit).
    public static let smartMask = AsyncEventConfiguration(rawValue: 0xFF)
    /// b8: Namespace Attribute Notices.
    public static let namespaceAttribute = AsyncEventConfiguration(rawValue: 1 << 8)
    /// b9: Firmware Activation Notices.
    public static let firmwareActivation = AsyncEventConfiguration(rawValue: 1 << 9)
    /// b11: Asymmetric Namespace Access Change Notices.
    public static let anaChange = AsyncEventConfiguration(rawValue: 1 << 11)
    /// b31: Discovery Log Page Change Notification (discovery controllers).
    public static let discoveryLogChange = AsyncEventConfiguration(rawValue: 1 << 31)
}

/// Asynchronous Event Type (AER completion DW0 b2:0; NVMe 2.0 base spec §5.2, Figure 146).
public enum AsyncEventType: UInt8, Hashable, Sendable, CaseIterable {
    case errorStatus = 0
    case smartHealthStatus = 1
    case notice = 2
    case immediate = 3
    case ioCommandSpecificStatus = 6
    case vendorSpecific = 7
}

/// Completion DW0 of an Asynchronous Event Request (NVMe 2.0 base spec §5.2, Figure 145):
/// `type b2:0 | info b15:8 | log page ID b23:16`.
public struct AsyncEventCompletion: Hashable, Sendable {
    /// Asynchronous Event Type (3 bits).
    public var eventType: UInt8
    /// Asynchronous Event Information.
    public var eventInformation: UInt8
    /// Log page the host should read to learn more (and, with RAE 0, to re-enable the event).
    public var logPageIdentifier: UInt8

    public init(eventType: UInt8, eventInformation: UInt8, logPageIdentifier: UInt8) {
        self.eventType = eventType & 0x7
        self.eventInformation = eventInformation
        self.logPageIdentifier = logPageIdentifier
    }

    public init(type: AsyncEventType, eventInformation: UInt8, logPage: LogPageIdentifier) {
        self.init(eventType: type.rawValue, eventInformation: eventInformation, logPageIdentifier: logPage.rawValue)
    }

    public init(dword: UInt32) {
        eventType = UInt8(truncatingIfNeeded: dword) & 0x7
        eventInformation = UInt8(truncatingIfNeeded: dword >> 8)
        logPageIdentifier = UInt8(truncatingIfNeeded: dword >> 16)
    }

    public var dword: UInt32 {
        UInt32(eventType & 0x7) | UInt32(eventInformation) << 8 | UInt32(logPageIdentifier) << 16
    }

    public var type: AsyncEventType? { AsyncEventType(rawValue: eventType) }

    /// Notice 03h "ANA change", LID 0Ch: DW0 0x000C0302.
    public static let anaChange = AsyncEventCompletion(type: .notice, eventInformation: 0x03, logPage: .ana)
    /// Notice 00h "Namespace Attribute Changed", LID 04h: DW0 0x00040002.
    public static let namespaceAttributeChanged = AsyncEventCompletion(
        type: .notice, eventInformation: 0x00, logPage: .changedNamespaces)
    /// Notice F0h "Discovery Log Page Change", LID 70h: DW0 0x0070F002.
    public static let discoveryLogChanged = AsyncEventCompletion(type: .notice, eventInformation: 0xF0, logPage: .discovery)
    /// I/O command specific 00h "Reservation Log Page Available", LID 80h: DW0 0x00800006.
    public static let reservationLog = AsyncEventCompletion(
        type: .ioCommandSpecificStatus, eventInformation: 0x00, logPage: .reservationNotification)
}
