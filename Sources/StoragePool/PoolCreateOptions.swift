#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How ``Pool/create(path:options:ioThreads:)`` lays out a new pool.
public struct PoolCreateOptions: Sendable, Hashable {
    /// The pool's name (1…128 bytes of UTF-8), recorded in its superblock.
    public var name: String
    /// The pool UUID; a random one when nil.
    public var uuid: UUID?
    /// The logical block size of the pool's replicas: 512 or 4096.
    public var blockSize: Int
    /// The allocation unit: a power of two from 64 KiB to 64 MiB (default 1 MiB).
    public var extentSize: UInt64
    /// Create a sparse file of this many bytes when `path` does not exist; the pool then owns
    /// the file and ``Pool/destroy(force:)`` unlinks it.
    public var createFileSize: UInt64?
    /// The metadata journal's size; nil = clamp(0.1 % of the device, 4 MiB, 64 MiB). A
    /// multiple of 4 KiB, at least 64 KiB (small journals checkpoint often: tests use them).
    public var journalSize: UInt64?
    /// Overwrite a device that already holds a pool label (the old pool is lost). Off by
    /// default: creating over an existing pool fails with ``PoolError/failedPrecondition(_:)``.
    public var overwriteExistingPool: Bool

    /// The smallest extent size.
    public static let minimumExtentSize: UInt64 = 64 << 10
    /// The largest extent size.
    public static let maximumExtentSize: UInt64 = 64 << 20
    /// The default extent size, 1 MiB.
    public static let defaultExtentSize: UInt64 = 1 << 20

    public init(
        name: String,
        uuid: UUID? = nil,
        blockSize: Int = 4096,
        extentSize: UInt64 = PoolCreateOptions.defaultExtentSize,
        createFileSize: UInt64? = nil,
        journalSize: UInt64? = nil,
        overwriteExistingPool: Bool = false
    ) {
        self.name = name
        self.uuid = uuid
        self.blockSize = blockSize
        self.extentSize = extentSize
        self.createFileSize = createFileSize
        self.journalSize = journalSize
        self.overwriteExistingPool = overwriteExistingPool
    }
}
