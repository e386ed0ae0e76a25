import NIOCore
import Storage

/// A ``BlockDevice`` that counts the reads and writes passing through it, with their latency,
/// into a ``ReplicaIOStats``: what the io-engine serves a replica through, so `/metrics` has per
/// replica IOPS, bytes and latency. Everything else is passed through unchanged.
public final class MeteredBlockDevice: BlockDevice {
    public let wrapped: any BlockDevice
    public let stats: ReplicaIOStats

    public init(wrapping device: any BlockDevice, stats: ReplicaIOStats) {
        wrapped = device
        self.stats = stats
    }

    public var blockSize: Int { wrapped.blockSize }
    public var blockCount: UInt64 { wrapped.blockCount }
    public var hasVolatileWriteCache: Bool { wrapped.hasVolatileWriteCache }

    @inline(__always) private static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let start = Self.now()
        let bytes = Int(blocks) * blockSize
        let stats = self.stats
        return wrapped.read(lba: lba, blocks: blocks, on: eventLoop).always { result in
            stats.reads.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: (try? result.get()) == nil)
        }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let start = Self.now()
        let bytes = data.readableBytes
        let stats = self.stats
        return wrapped.write(lba: lba, data: data, fua: fua, on: eventLoop).always { result in
            stats.writes.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: (try? result.get()) == nil)
        }
    }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping (Result<ByteBuffer, any Error>) -> Void) {
        let start = Self.now()
        let bytes = Int(blocks) * blockSize
        let stats = self.stats
        wrapped.read(lba: lba, blocks: blocks, on: eventLoop) { result in
            if case .failure = result {
                stats.reads.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: true)
            } else {
                stats.reads.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: false)
            }
            completion(result)
        }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping (Result<Void, any Error>) -> Void) {
        let start = Self.now()
        let bytes = data.readableBytes
        let stats = self.stats
        wrapped.write(lba: lba, data: data, fua: fua, on: eventLoop) { result in
            if case .failure = result {
                stats.writes.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: true)
            } else {
                stats.writes.record(bytes: bytes, nanoseconds: Self.now() &- start, failed: false)
            }
            completion(result)
        }
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { wrapped.flush(on: eventLoop) }

    public func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void> {
        wrapped.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        wrapped.deallocate(lba: lba, blocks: blocks, on: eventLoop)
    }

    public func close() throws { try wrapped.close() }
}

extension MeteredBlockDevice: AllocationReporting {
    /// Forwards to the wrapped device; ``AllocationReportingError/notSupported`` when it cannot tell.
    public func allocatedBlockRanges() throws -> [Range<UInt64>] {
        guard let reporting = wrapped as? any AllocationReporting else { throw AllocationReportingError.notSupported }
        return try reporting.allocatedBlockRanges()
    }
}
