/// An NVMe completion status: Status Code Type, Status Code, and the More / Do Not Retry / Command
/// Retry Delay bits (NVMe base spec 2.0 §4.6.1, Figure 95). On the wire it is bits 15:1 of CQE
/// dword 3's upper half; bit 0 is the phase tag, always 0 over fabrics.
public struct NVMeStatus: Hashable, Sendable, CustomStringConvertible {
    /// Status Code Type (3 bits): 0 generic, 1 command specific, 2 media, 3 path related.
    public var codeType: UInt8
    /// Status Code within the type.
    public var code: UInt8
    /// Command Retry Delay index (2 bits).
    public var retryDelay: UInt8
    /// More information in the Error log page.
    public var more: Bool
    /// Do Not Retry: the host must not retry this command.
    public var doNotRetry: Bool

    public init(codeType: UInt8, code: UInt8, doNotRetry: Bool = false, more: Bool = false, retryDelay: UInt8 = 0) {
        self.codeType = codeType & 0x7
        self.code = code
        self.retryDelay = retryDelay & 0x3
        self.more = more
        self.doNotRetry = doNotRetry
    }

    /// Decodes the 16-bit CQE status field (phase bit ignored).
    public init(wire: UInt16) {
        self.code = UInt8(truncatingIfNeeded: wire >> 1)
        self.codeType = UInt8(truncatingIfNeeded: (wire >> 9) & 0x7)
        self.retryDelay = UInt8(truncatingIfNeeded: (wire >> 12) & 0x3)
        self.more = wire & 0x4000 != 0
        self.doNotRetry = wire & 0x8000 != 0
    }

    /// The 16-bit CQE status field with phase 0.
    public var wire: UInt16 {
        UInt16(code) << 1 | UInt16(codeType) << 9 | UInt16(retryDelay) << 12 | (more ? 0x4000 : 0) | (doNotRetry ? 0x8000 : 0)
    }

    /// `(SCT << 8) | SC`, the form Linux and nvme-cli print (e.g. 0x302).
    public var value: UInt16 { UInt16(codeType) << 8 | UInt16(code) }

    public var isSuccess: Bool { codeType == 0 && code == 0 }
    /// Path-related status (SCT 3): the host may retry on another path.
    public var isPathError: Bool { codeType == 3 }

    /// The same status with DNR set.
    public var dnr: NVMeStatus { var s = self; s.doNotRetry = true; return s }

    public var description: String {
        let raw = "NVMe status 0x\(String(value, radix: 16)) (SCT \(codeType) SC 0x\(String(code, radix: 16))\(doNotRetry ? ", DNR" : ""))"
        return name.map { "\($0), \(raw)" } ?? raw
    }

    /// The spec's name of this status code (NVMe base spec 2.0 §4.6.1.2), for the statuses a
    /// user meets; nil for the others.
    public var name: String? {
        switch (codeType, code) {
        case (0, 0x00): "Success"
        case (0, 0x01): "Invalid Command Opcode"
        case (0, 0x02): "Invalid Field in Command"
        case (0, 0x04): "Data Transfer Error"
        case (0, 0x06): "Internal Error"
        case (0, 0x07): "Command Abort Requested"
        case (0, 0x08): "Command Aborted due to SQ Deletion"
        case (0, 0x0B): "Invalid Namespace or Format"
        case (0, 0x0C): "Command Sequence Error"
        case (0, 0x0F): "Data SGL Length Invalid"
        case (0, 0x18): "Host Identifier Inconsistent Format"
        case (0, 0x1B): "Command Aborted due to Preempt and Abort"
        case (0, 0x22): "Transient Transport Error"
        case (0, 0x80): "LBA Out of Range"
        case (0, 0x81): "Capacity Exceeded"
        case (0, 0x82): "Namespace Not Ready"
        case (0, 0x83): "Reservation Conflict"
        case (1, 0x80): "Connect Incompatible Format"
        case (1, 0x81): "Connect Controller Busy"
        case (1, 0x82): "Connect Invalid Parameters"
        case (1, 0x84): "Connect Invalid Host"
        case (2, 0x80): "Write Fault"
        case (2, 0x81): "Unrecovered Read Error"
        case (3, 0x01): "Asymmetric Access Persistent Loss"
        case (3, 0x02): "Asymmetric Access Inaccessible"
        case (3, 0x03): "Asymmetric Access Transition"
        default: nil
        }
    }

    // Generic command status (SCT 0).
    public static let success = NVMeStatus(codeType: 0, code: 0x00)
    public static let invalidOpcode = NVMeStatus(codeType: 0, code: 0x01, doNotRetry: true)
    public static let invalidField = NVMeStatus(codeType: 0, code: 0x02, doNotRetry: true)
    public static let dataTransferError = NVMeStatus(codeType: 0, code: 0x04)
    public static let internalError = NVMeStatus(codeType: 0, code: 0x06)
    public static let abortedByRequest = NVMeStatus(codeType: 0, code: 0x07)
    public static let abortedSQDeletion = NVMeStatus(codeType: 0, code: 0x08)
    public static let invalidNamespace = NVMeStatus(codeType: 0, code: 0x0B, doNotRetry: true)
    public static let commandSequenceError = NVMeStatus(codeType: 0, code: 0x0C, doNotRetry: true)
    public static let dataSGLLengthInvalid = NVMeStatus(codeType: 0, code: 0x0F, doNotRetry: true)
    public static let sglDescriptorTypeInvalid = NVMeStatus(codeType: 0, code: 0x11, doNotRetry: true)
    public static let hostIdentifierInconsistentFormat = NVMeStatus(codeType: 0, code: 0x18, doNotRetry: true)
    public static let keepAliveTimerExpired = NVMeStatus(codeType: 0, code: 0x19)
    public static let keepAliveTimeoutInvalid = NVMeStatus(codeType: 0, code: 0x1A, doNotRetry: true)
    public static let abortedPreempt = NVMeStatus(codeType: 0, code: 0x1B)
    public static let transientTransportError = NVMeStatus(codeType: 0, code: 0x22)
    public static let lbaOutOfRange = NVMeStatus(codeType: 0, code: 0x80, doNotRetry: true)
    public static let capacityExceeded = NVMeStatus(codeType: 0, code: 0x81, doNotRetry: true)
    public static let namespaceNotReady = NVMeStatus(codeType: 0, code: 0x82)
    public static let reservationConflict = NVMeStatus(codeType: 0, code: 0x83, doNotRetry: true)

    // Command specific status (SCT 1).
    public static let invalidLogPage = NVMeStatus(codeType: 1, code: 0x09, doNotRetry: true)
    public static let asyncEventRequestLimitExceeded = NVMeStatus(codeType: 1, code: 0x05, doNotRetry: true)
    public static let invalidQueueSize = NVMeStatus(codeType: 1, code: 0x02, doNotRetry: true)
    public static let featureNotSaveable = NVMeStatus(codeType: 1, code: 0x0D, doNotRetry: true)
    public static let featureNotChangeable = NVMeStatus(codeType: 1, code: 0x0E, doNotRetry: true)
    /// Fabrics Connect: Incompatible Format (RECFMT ≠ 0).
    public static let connectIncompatibleFormat = NVMeStatus(codeType: 1, code: 0x80, doNotRetry: true)
    /// Fabrics Connect: Controller Busy (no controller ID free).
    public static let connectControllerBusy = NVMeStatus(codeType: 1, code: 0x81, doNotRetry: true)
    /// Fabrics Connect: Invalid Parameters (see DW0 for the offset).
    public static let connectInvalidParameters = NVMeStatus(codeType: 1, code: 0x82, doNotRetry: true)
    /// Fabrics Connect: Restart Discovery.
    public static let connectRestartDiscovery = NVMeStatus(codeType: 1, code: 0x83, doNotRetry: true)
    /// Fabrics Connect: Invalid Host (host not allowed).
    public static let connectInvalidHost = NVMeStatus(codeType: 1, code: 0x84, doNotRetry: true)

    // Media and data integrity (SCT 2).
    public static let unrecoveredReadError = NVMeStatus(codeType: 2, code: 0x81)
    public static let writeFault = NVMeStatus(codeType: 2, code: 0x80)

    // Path related status (SCT 3). Never DNR.
    public static let internalPathError = NVMeStatus(codeType: 3, code: 0x00)
    public static let anaPersistentLoss = NVMeStatus(codeType: 3, code: 0x01)
    public static let anaInaccessible = NVMeStatus(codeType: 3, code: 0x02)
    public static let anaTransition = NVMeStatus(codeType: 3, code: 0x03)
    public static let hostPathError = NVMeStatus(codeType: 3, code: 0x70)
    public static let hostAbortedCommand = NVMeStatus(codeType: 3, code: 0x71)
}
