/// The shape of a block device (block size and block count) and the argument checks every
/// ``BlockDevice`` implementation performs, with overflow-safe arithmetic: no LBA or length,
/// however large, traps.
public struct BlockDeviceGeometry: Hashable, Sendable {
    /// The smallest supported block size (NVMe LBA data size is at least 512 bytes).
    public static let minimumBlockSize = 512
    /// The largest supported block size.
    public static let maximumBlockSize = 65536

    /// Bytes per logical block; a power of two between 512 and 65536.
    public let blockSize: Int
    /// Number of logical blocks.
    public let blockCount: UInt64

    /// Creates a geometry, or returns nil if `blockSize` is not a power of two in
    /// `minimumBlockSize...maximumBlockSize` or the capacity does not fit in an `Int64`
    /// (the largest file offset).
    public init?(blockSize: Int, blockCount: UInt64) {
        guard Self.isValidBlockSize(blockSize) else { return nil }
        let (bytes, overflow) = blockCount.multipliedReportingOverflow(by: UInt64(blockSize))
        guard !overflow, bytes <= UInt64(Int64.max) else { return nil }
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    init(uncheckedBlockSize blockSize: Int, blockCount: UInt64) {
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    /// True for a power of two in `minimumBlockSize...maximumBlockSize`.
    public static func isValidBlockSize(_ blockSize: Int) -> Bool {
        blockSize >= minimumBlockSize && blockSize <= maximumBlockSize && blockSize & (blockSize - 1) == 0
    }

    /// The capacity in bytes.
    public var byteCount: UInt64 { blockCount &* UInt64(blockSize) }

    /// The byte offset of `lba`. Only meaningful for an LBA that passed one of the checks.
    public func byteOffset(of lba: UInt64) -> UInt64 {
        lba &* UInt64(blockSize)
    }

    /// Checks that `[lba, lba + blocks)` lies on the device; an empty range is valid when
    /// `lba <= blockCount`.
    public func checkRange(lba: UInt64, blocks: UInt64) throws(BlockDeviceError) {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard !overflow, end <= blockCount else { throw .outOfRange }
    }

    /// Checks a read of `blocks` blocks at `lba` and returns the number of bytes it yields.
    public func checkRead(lba: UInt64, blocks: UInt32) throws(BlockDeviceError) -> Int {
        try checkRange(lba: lba, blocks: UInt64(blocks))
        // blocks <= UInt32.max and blockSize <= 65536, so this fits in Int on 64-bit platforms.
        return Int(blocks) * blockSize
    }

    /// Checks a write of `byteCount` bytes at `lba` and returns the number of blocks it covers.
    /// A length that is not a multiple of `blockSize` is ``BlockDeviceError/misaligned``.
    public func checkWrite(lba: UInt64, byteCount: Int) throws(BlockDeviceError) -> UInt64 {
        guard byteCount >= 0, byteCount % blockSize == 0 else { throw .misaligned }
        let blocks = UInt64(byteCount / blockSize)
        try checkRange(lba: lba, blocks: blocks)
        return blocks
    }

    /// Checks a write of `byteCount` bytes that must cover exactly `blocks` blocks at `lba`
    /// (as an NVMe write's data length must match its NLB field).
    public func checkWrite(lba: UInt64, blocks: UInt64, byteCount: Int) throws(BlockDeviceError) {
        let actual = try checkWrite(lba: lba, byteCount: byteCount)
        guard actual == blocks else { throw .misaligned }
    }

    /// Checks a byte-addressed range: both `offset` and `length` must be multiples of
    /// `blockSize`, and the range must lie on the device. Returns the LBA range it covers.
    public func checkByteRange(offset: UInt64, length: UInt64) throws(BlockDeviceError) -> Range<UInt64> {
        let size = UInt64(blockSize)
        guard offset % size == 0, length % size == 0 else { throw .misaligned }
        let lba = offset / size
        let blocks = length / size
        try checkRange(lba: lba, blocks: blocks)
        return lba..<(lba + blocks)
    }
}
