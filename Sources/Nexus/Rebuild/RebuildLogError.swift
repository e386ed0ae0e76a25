/// Why a ``RebuildLog`` could not be opened, written or removed. Any of them means the log cannot
/// be trusted to name every segment the child missed: the caller falls back to a full rebuild.
public enum RebuildLogError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file is a valid log of another geometry or identity (segment size, child block count,
    /// block size, volume or child UUID changed): its segment indexes mean something else.
    case headerMismatch(path: String, field: String, expected: String, found: String)
    /// The file is not a valid log (bad magic, version or header checksum, too short, a record
    /// naming a segment beyond the device).
    case corrupt(path: String, reason: String)
    /// A system call failed (open, write, fdatasync, rename, unlink …), or the I/O threads stopped.
    case io(String)
    /// Another open ``RebuildLog`` (in this or another process) holds the file.
    case inUse(path: String)
    /// The log was closed or discarded.
    case closed
    /// A segment index at or beyond the log's segment count: a bug of the caller.
    case invalidSegment(UInt64, segmentCount: UInt64)

    public var description: String {
        switch self {
        case .headerMismatch(let path, let field, let expected, let found):
            "rebuild log \(path) is for another \(field) (expected \(expected), found \(found))"
        case .corrupt(let path, let reason): "rebuild log \(path) is corrupt: \(reason)"
        case .io(let message): "rebuild log I/O failed: \(message)"
        case .inUse(let path): "rebuild log \(path) is open elsewhere"
        case .closed: "rebuild log closed"
        case .invalidSegment(let segment, let count): "segment \(segment) beyond the log's \(count) segments"
        }
    }
}
