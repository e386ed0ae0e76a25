/// Errors opening a ``FileBlockDevice``'s backing file. (I/O on an open device fails with
/// ``BlockDeviceError`` instead.)
public enum FileBlockDeviceError: Error, Hashable, Sendable {
    /// The block size is not a power of two in 512...65536.
    case invalidBlockSize(Int)
    /// The file does not exist and no size was given to create it with.
    case sizeRequired(path: String)
    /// The size (requested, or of the existing file) is zero, not a multiple of the block size,
    /// or too large.
    case invalidSize(path: String, size: UInt64, blockSize: Int)
    /// The file exists with a size other than the one requested. The file is left untouched:
    /// an existing backing file is never truncated or extended.
    case sizeMismatch(path: String, existing: UInt64, requested: UInt64)
    /// The path exists but is neither a regular file nor a block device.
    case notRegularFile(path: String)
    /// A system call failed while opening or creating the file.
    case systemCallFailed(path: String, call: String, errno: Int32)
}

extension FileBlockDeviceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidBlockSize(let blockSize):
            return "invalid block size \(blockSize): must be a power of two between 512 and 65536"
        case .sizeRequired(let path):
            return "backing file '\(path)' does not exist and no size was given to create it"
        case .invalidSize(let path, let size, let blockSize):
            return "invalid size \(size) bytes for backing file '\(path)': "
                + "must be a non-zero multiple of the block size \(blockSize)"
        case .sizeMismatch(let path, let existing, let requested):
            return "backing file '\(path)' already exists with size \(existing) bytes, "
                + "but \(requested) bytes were requested; refusing to resize an existing file "
                + "(omit the size to use the existing one, or choose another path)"
        case .notRegularFile(let path):
            return "backing path '\(path)' is neither a regular file nor a block device"
        case .systemCallFailed(let path, let call, let errno):
            return "\(call) failed for backing file '\(path)': \(SystemError.message(for: errno)) (errno \(errno))"
        }
    }
}
