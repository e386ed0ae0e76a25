import NIOCore

/// Errors a block device reports; the NVMe layer maps them to NVMe statuses.
public enum BlockDeviceError: Error, Hashable, Sendable {
    /// The offset/length lies (partly) beyond the device.
    case outOfRange
    /// The offset or length is not a multiple of `blockSize` (or does not match the block count).
    case misaligned
    /// The backend failed with the given `errno` (EIO, ENOSPC, ...).
    case ioError(errno: Int32)
    /// A fault-injecting device's configured error.
    case injected
    /// The device was closed.
    case closed
    /// No space left: the backing store is full (ENOSPC from a sparse file or its file system),
    /// or a thin volume found no free extent for a first write. NVMe: Capacity Exceeded.
    case noSpace
}

extension BlockDeviceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .outOfRange:
            return "block range lies beyond the end of the device"
        case .misaligned:
            return "offset or length is not a multiple of the block size"
        case .ioError(let errno):
            return "I/O error: \(SystemError.message(for: errno)) (errno \(errno))"
        case .injected:
            return "injected fault"
        case .closed:
            return "the block device is closed"
        case .noSpace:
            return "no space left on the backing store"
        }
    }
}
