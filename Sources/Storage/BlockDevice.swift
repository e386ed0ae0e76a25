import NIOCore

/// A block device: fixed block size and block count; every call completes on `eventLoop`
/// (the caller's queue loop) and never blocks it.
///
/// Every implementation validates its arguments the same way (see ``BlockDeviceGeometry``):
/// a range reaching past `blockCount` fails with ``BlockDeviceError/outOfRange``, a buffer
/// whose length is not a multiple of `blockSize` fails with ``BlockDeviceError/misaligned``,
/// and any call after `close()` fails with ``BlockDeviceError/closed``.
public protocol BlockDevice: AnyObject, Sendable {
    /// The size of one logical block in bytes: 512 or 4096.
    var blockSize: Int { get }
    /// The number of logical blocks on the device.
    var blockCount: UInt64 { get }
    /// True when writes may sit in a volatile cache until flush (file backend: true).
    var hasVolatileWriteCache: Bool { get }
    /// Reads `blocks` blocks starting at `lba`; the result holds exactly blocks*blockSize bytes.
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer>
    /// Writes data (readableBytes must equal a multiple of blockSize) at `lba`; `fua` = durable before completion.
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Makes every completed write durable (fdatasync for files).
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Zeroes the range; `deallocate` lets the backend free it (reads must still return zeroes).
    func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    /// Deallocates the range (NVMe DSM deallocate): afterwards it reads as zeroes.
    func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Releases resources (closes the file). Idempotent.
    func close() throws

    /// ``read(lba:blocks:on:)`` reporting through `completion` instead of a future, for the I/O
    /// path: a backend that finishes inline (RAM) calls `completion` before returning and
    /// allocates no future. Must be called on `eventLoop`; `completion` runs there.
    func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
              completion: @escaping (Result<ByteBuffer, any Error>) -> Void)
    /// ``write(lba:data:fua:on:)`` reporting through `completion`, like the read above.
    func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
               completion: @escaping (Result<Void, any Error>) -> Void)
}

extension BlockDevice {
    /// Default: the future-returning read, observed on `eventLoop`.
    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping (Result<ByteBuffer, any Error>) -> Void) {
        read(lba: lba, blocks: blocks, on: eventLoop).hop(to: eventLoop).assumeIsolated().whenComplete(completion)
    }

    /// Default: the future-returning write, observed on `eventLoop`.
    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping (Result<Void, any Error>) -> Void) {
        write(lba: lba, data: data, fua: fua, on: eventLoop).hop(to: eventLoop).assumeIsolated().whenComplete(completion)
    }
}

extension BlockDevice {
    /// The capacity of the device in bytes (`blockCount * blockSize`).
    public var byteCount: UInt64 { blockCount &* UInt64(blockSize) }

    /// The device's geometry, for validating requests before issuing them.
    public var geometry: BlockDeviceGeometry {
        BlockDeviceGeometry(uncheckedBlockSize: blockSize, blockCount: blockCount)
    }
}
