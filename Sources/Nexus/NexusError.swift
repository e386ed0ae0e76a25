import NVMe

/// Why a nexus management operation failed; the io-engine maps each case to a gRPC code.
public enum NexusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Bad argument: malformed URI, size 0 or larger than a child, duplicate child.
    case invalidArgument(String)
    /// No such child.
    case notFound(String)
    /// Not possible in the current state: removing the last healthy child, operating on a
    /// shut-down nexus, no child could be opened.
    case failedPrecondition(String)
    /// A child could not be reached or fenced.
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .failedPrecondition(let m), .unavailable(let m): m
        }
    }
}

/// Why a nexus I/O failed, as the host sees it (an ``NVMeStatus`` through the target).
public enum NexusIOError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The nexus holds I/O (shutting down, shut down, fenced, or no healthy child): Asymmetric
    /// Access Inaccessible (SCT 3h, SC 02h, no DNR) — the Linux host requeues and retries on
    /// another path instead of failing the I/O (research/nvme-tcp.md §6).
    case held
    /// The request lies outside the volume.
    case outOfRange
    /// A buffer that is not a whole number of blocks.
    case misaligned

    public var nvmeStatus: NVMeStatus {
        switch self {
        case .held: .anaInaccessible
        case .outOfRange: .lbaOutOfRange
        case .misaligned: .dataSGLLengthInvalid
        }
    }

    public var description: String {
        switch self {
        case .held: "nexus holds I/O (ANA inaccessible)"
        case .outOfRange: "LBA out of range"
        case .misaligned: "length not a multiple of the block size"
        }
    }
}
