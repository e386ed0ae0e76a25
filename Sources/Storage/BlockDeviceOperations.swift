/// A set of ``BlockDevice`` operation kinds, used to target injected faults and latency.
public struct BlockDeviceOperations: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// ``BlockDevice/read(lba:blocks:on:)``.
    public static let read = BlockDeviceOperations(rawValue: 1 << 0)
    /// ``BlockDevice/write(lba:data:fua:on:)``.
    public static let write = BlockDeviceOperations(rawValue: 1 << 1)
    /// ``BlockDevice/flush(on:)``.
    public static let flush = BlockDeviceOperations(rawValue: 1 << 2)
    /// ``BlockDevice/writeZeroes(lba:blocks:deallocate:fua:on:)``.
    public static let writeZeroes = BlockDeviceOperations(rawValue: 1 << 3)
    /// ``BlockDevice/deallocate(lba:blocks:on:)``.
    public static let deallocate = BlockDeviceOperations(rawValue: 1 << 4)

    /// Reads, writes and flushes: the data path.
    public static let io: BlockDeviceOperations = [.read, .write, .flush]
    /// Every operation.
    public static let all: BlockDeviceOperations = [.read, .write, .flush, .writeZeroes, .deallocate]
}
