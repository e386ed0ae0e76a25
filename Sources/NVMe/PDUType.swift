/// NVMe/TCP PDU types, byte 0 of the common header (NVMe/TCP transport spec 1.0 §3.6.1, Figure 21).
public enum PDUType: UInt8, Sendable, CaseIterable {
    case icReq = 0x00
    case icResp = 0x01
    case h2cTermReq = 0x02
    case c2hTermReq = 0x03
    case capsuleCommand = 0x04
    case capsuleResponse = 0x05
    case h2cData = 0x06
    case c2hData = 0x07
    case r2t = 0x09

    /// HLEN every PDU of this type must carry.
    public var headerLength: Int {
        switch self {
        case .icReq, .icResp: 128
        case .capsuleCommand: 72
        default: 24
        }
    }

    /// Whether header/data digests may be present on this type (never on ICReq/ICResp/TermReq).
    public var allowsDigests: Bool {
        switch self {
        case .icReq, .icResp, .h2cTermReq, .c2hTermReq: false
        default: true
        }
    }

    /// Whether the PDU may carry data after its header.
    public var carriesData: Bool {
        switch self {
        case .capsuleCommand, .h2cData, .c2hData, .h2cTermReq, .c2hTermReq: true
        default: false
        }
    }
}

/// Common-header FLAGS (NVMe/TCP transport spec 1.0 §3.6.1, Figure 22).
public struct PDUFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// HDGSTF: a header digest follows the header.
    public static let headerDigest = PDUFlags(rawValue: 0x01)
    /// DDGSTF: a data digest follows the data.
    public static let dataDigest = PDUFlags(rawValue: 0x02)
    /// LAST_PDU: the last data PDU of a transfer (H2CData of an R2T, C2HData of a command).
    public static let lastPDU = PDUFlags(rawValue: 0x04)
    /// SUCCESS (C2HData only): the command completed successfully; no CapsuleResp follows.
    public static let success = PDUFlags(rawValue: 0x08)
}

/// Fatal Error Status of a termination request (NVMe/TCP transport spec 1.0 §3.6.2.8, Figure 32).
public enum FatalErrorStatus: UInt16, Sendable {
    case invalidHeaderField = 0x01
    case pduSequenceError = 0x02
    case headerDigestError = 0x03
    case dataTransferOutOfRange = 0x04
    case r2tLimitExceeded = 0x05
    case unsupportedParameter = 0x06
}
