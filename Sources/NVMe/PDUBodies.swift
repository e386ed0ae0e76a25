import NIOCore

/// Initialize Connection Request (NVMe/TCP transport spec 1.0 §3.6.2.2, Figure 26), the first PDU
/// a host sends on every connection.
public struct ICReq: Hashable, Sendable {
    /// PDU format version, 0.
    public var pduFormatVersion: UInt16
    /// Host PDU data alignment, 0's based dwords.
    public var hostPDUDataAlignment: UInt8
    public var headerDigest: Bool
    public var dataDigest: Bool
    /// Maximum outstanding R2Ts per command, 0's based.
    public var maxR2T: UInt32

    public init(pduFormatVersion: UInt16 = 0, hostPDUDataAlignment: UInt8 = 0, headerDigest: Bool = false,
                dataDigest: Bool = false, maxR2T: UInt32 = 0) {
        self.pduFormatVersion = pduFormatVersion
        self.hostPDUDataAlignment = hostPDUDataAlignment
        self.headerDigest = headerDigest
        self.dataDigest = dataDigest
        self.maxR2T = maxR2T
    }
}

/// Initialize Connection Response (NVMe/TCP transport spec 1.0 §3.6.2.3, Figure 27).
public struct ICResp: Hashable, Sendable {
    public var pduFormatVersion: UInt16
    /// Controller PDU data alignment, 0's based dwords; the Linux host requires 0.
    public var controllerPDUDataAlignment: UInt8
    public var headerDigest: Bool
    public var dataDigest: Bool
    /// Largest H2CData payload the controller accepts (≥ 4096, multiple of 4).
    public var maxH2CData: UInt32

    public init(pduFormatVersion: UInt16 = 0, controllerPDUDataAlignment: UInt8 = 0, headerDigest: Bool = false,
                dataDigest: Bool = false, maxH2CData: UInt32) {
        self.pduFormatVersion = pduFormatVersion
        self.controllerPDUDataAlignment = controllerPDUDataAlignment
        self.headerDigest = headerDigest
        self.dataDigest = dataDigest
        self.maxH2CData = maxH2CData
    }
}

/// Command Capsule (NVMe/TCP transport spec 1.0 §3.6.2.4): an SQE and optional in-capsule data.
public struct CapsuleCommand: Hashable, Sendable {
    public var command: SubmissionQueueEntry
    /// In-capsule data; empty when the command carries none.
    public var data: ByteBuffer

    public init(command: SubmissionQueueEntry, data: ByteBuffer = ByteBuffer()) {
        self.command = command
        self.data = data
    }
}

/// Response Capsule (NVMe/TCP transport spec 1.0 §3.6.2.5): a CQE.
public struct CapsuleResponse: Hashable, Sendable {
    public var completion: CompletionQueueEntry
    public init(completion: CompletionQueueEntry) { self.completion = completion }
}

/// H2CData or C2HData (NVMe/TCP transport spec 1.0 §3.6.2.6–§3.6.2.7): one chunk of a command's data.
public struct DataTransfer: Hashable, Sendable {
    /// Command capsule CID the data belongs to.
    public var commandID: UInt16
    /// Transfer tag from the R2T (H2CData); 0 for C2HData.
    public var transferTag: UInt16
    /// Offset of this chunk within the command's data.
    public var dataOffset: UInt32
    /// LAST_PDU flag.
    public var last: Bool
    /// SUCCESS flag (C2HData only).
    public var success: Bool
    public var data: ByteBuffer

    public init(commandID: UInt16, transferTag: UInt16 = 0, dataOffset: UInt32, last: Bool, success: Bool = false,
                data: ByteBuffer) {
        self.commandID = commandID
        self.transferTag = transferTag
        self.dataOffset = dataOffset
        self.last = last
        self.success = success
        self.data = data
    }
}

/// Ready to Transfer (NVMe/TCP transport spec 1.0 §3.6.2.9): the controller asks for a range of a
/// write's data.
public struct ReadyToTransfer: Hashable, Sendable {
    public var commandID: UInt16
    public var transferTag: UInt16
    /// R2TO: offset of the requested range within the command's data.
    public var offset: UInt32
    /// R2TL: length of the requested range, non-zero.
    public var length: UInt32

    public init(commandID: UInt16, transferTag: UInt16, offset: UInt32, length: UInt32) {
        self.commandID = commandID
        self.transferTag = transferTag
        self.offset = offset
        self.length = length
    }
}

/// H2C or C2H Termination Request (NVMe/TCP transport spec 1.0 §3.6.2.8): a fatal transport error;
/// the sender closes the connection after it.
public struct TerminationRequest: Hashable, Sendable {
    public var status: UInt16
    /// Fatal error information: for an invalid header field, the byte offset of the field.
    public var information: UInt32
    /// Up to 128 bytes of the offending PDU header.
    public var offendingHeader: ByteBuffer

    public static let maximumOffendingHeader = 128

    public init(status: FatalErrorStatus, information: UInt32 = 0, offendingHeader: ByteBuffer = ByteBuffer()) {
        self.init(rawStatus: status.rawValue, information: information, offendingHeader: offendingHeader)
    }

    public init(rawStatus: UInt16, information: UInt32, offendingHeader: ByteBuffer) {
        self.status = rawStatus
        self.information = information
        var header = offendingHeader
        if header.readableBytes > Self.maximumOffendingHeader {
            header = header.getSlice(at: header.readerIndex, length: Self.maximumOffendingHeader)!
        }
        self.offendingHeader = header
    }

    public var fatalErrorStatus: FatalErrorStatus? { FatalErrorStatus(rawValue: status) }
}
