/// Reservation Report, I/O opcode 0Eh (NVMe base spec 2.0 §7.5, Figures 575–576): CDW10 NUMD
/// (0's based dwords to return), CDW11 b0 EDS (extended data structure, 128-bit host IDs).
/// The controller returns a ``ReservationStatus`` truncated to NUMD.
public struct ReservationReportCommand: Hashable, Sendable {
    /// Number of dwords, 0's based.
    public var numberOfDwords: UInt32
    /// EDS: return the extended data structure (required over fabrics).
    public var extendedDataStructure: Bool

    public init(numberOfDwords: UInt32, extendedDataStructure: Bool = true) {
        self.numberOfDwords = numberOfDwords
        self.extendedDataStructure = extendedDataStructure
    }

    /// A report of `lengthInBytes` (a positive multiple of 4).
    public init(lengthInBytes: Int, extendedDataStructure: Bool = true) {
        precondition(lengthInBytes >= 4 && lengthInBytes % 4 == 0, "a report is a positive number of dwords")
        self.init(numberOfDwords: UInt32(lengthInBytes / 4 - 1), extendedDataStructure: extendedDataStructure)
    }

    public init(cdw10: UInt32, cdw11: UInt32) {
        numberOfDwords = cdw10
        extendedDataStructure = cdw11 & 1 != 0
    }

    /// (NUMD + 1) × 4.
    public var lengthInBytes: Int { (Int(numberOfDwords) + 1) * 4 }

    public var cdw10: UInt32 { numberOfDwords }
    public var cdw11: UInt32 { extendedDataStructure ? 1 : 0 }

    public func submissionQueueEntry(namespaceID: UInt32, commandID: UInt16 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.reservationReport.rawValue, commandID: commandID, namespaceID: namespaceID,
                             dataPointer: .transport(length: UInt32(truncatingIfNeeded: lengthInBytes)), cdw10: cdw10, cdw11: cdw11)
    }
}
