import NVMe

/// SQE builders for the commands the host sends (NVMe base spec 2.0 §5, NVM command set spec 1.0 §3).
extension SubmissionQueueEntry {
    public static func read(nsid: UInt32, lba: UInt64, blocks: UInt32, blockSize: Int) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.read.rawValue, namespaceID: nsid,
                             dataPointer: .transport(length: blocks * UInt32(blockSize)),
                             cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32), cdw12: blocks - 1)
    }

    public static func write(nsid: UInt32, lba: UInt64, blocks: UInt32, fua: Bool = false) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.write.rawValue, namespaceID: nsid,
                             cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
                             cdw12: (blocks - 1) | (fua ? 1 << 30 : 0))
    }

    public static func flush(nsid: UInt32) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.flush.rawValue, namespaceID: nsid)
    }

    public static func writeZeroes(nsid: UInt32, lba: UInt64, blocks: UInt32, deallocate: Bool = false) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.writeZeroes.rawValue, namespaceID: nsid,
                             cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
                             cdw12: (blocks - 1) | (deallocate ? 1 << 25 : 0))
    }

    /// Dataset Management with the deallocate attribute; the ranges go as data.
    public static func deallocate(nsid: UInt32, rangeCount: Int) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: IOOpcode.datasetManagement.rawValue, namespaceID: nsid,
                             cdw10: UInt32(rangeCount - 1), cdw11: 0x4)
    }

    public static func identify(_ cns: IdentifyCNS, nsid: UInt32 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, namespaceID: nsid, cdw10: UInt32(cns.rawValue))
    }

    public static func getLogPage(_ lid: UInt8, length: Int, offset: UInt64 = 0, nsid: UInt32 = 0xFFFF_FFFF) -> SubmissionQueueEntry {
        let f = GetLogPageCommandFields(logPageIdentifier: lid, lengthInBytes: length, offset: offset)
        return SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, namespaceID: nsid,
                                    cdw10: f.cdw10, cdw11: f.cdw11, cdw12: f.cdw12, cdw13: f.cdw13, cdw14: f.cdw14)
    }

    public static func setFeature(_ fid: FeatureIdentifier, _ value: UInt32) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, cdw10: UInt32(fid.rawValue), cdw11: value)
    }

    public static func getFeature(_ fid: FeatureIdentifier, cdw11: UInt32 = 0) -> SubmissionQueueEntry {
        SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, cdw10: UInt32(fid.rawValue), cdw11: cdw11)
    }
}
