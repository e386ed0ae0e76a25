import Foundation

/// What `stat(2)` reports for a file: its apparent size and the bytes allocated on disk.
struct DiskUsage: Equatable {
    let size: Int64
    let allocatedBytes: Int64

    init(path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        size = Int64(info.st_size)
        allocatedBytes = Int64(info.st_blocks) * 512
    }
}
