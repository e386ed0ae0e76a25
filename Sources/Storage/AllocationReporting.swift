/// A block device that can tell which of its blocks hold data: everything outside the reported
/// ranges reads as zeroes. A thin replica reports its allocated extents; a rebuild then copies only
/// those (served to remote nexuses as the vendor-specific log page C0h "Halyard allocated ranges",
/// docs/notes/nexus-plan.md; NVMe base spec 2.0 §5.16.1 reserves LIDs C0h–FFh for vendors).
public protocol AllocationReporting {
    /// The block ranges that hold data, ascending and disjoint (adjacent ranges merged). Throws
    /// ``AllocationReportingError/notSupported`` when the device cannot tell after all (a wrapper
    /// whose wrapped device does not report), or the device's own error.
    func allocatedBlockRanges() throws -> [Range<UInt64>]
}

/// Why ``AllocationReporting/allocatedBlockRanges()`` gave no answer.
public enum AllocationReportingError: Error, Hashable, Sendable {
    /// The device cannot tell which blocks hold data (treat every block as allocated).
    case notSupported
}

extension BlockDevice {
    /// The block ranges holding data, or nil when the device cannot tell (it does not conform to
    /// ``AllocationReporting`` or answers ``AllocationReportingError/notSupported``).
    public func reportedAllocatedBlockRanges() throws -> [Range<UInt64>]? {
        guard let reporting = self as? any AllocationReporting else { return nil }
        do {
            return try reporting.allocatedBlockRanges()
        } catch AllocationReportingError.notSupported {
            return nil
        }
    }
}
