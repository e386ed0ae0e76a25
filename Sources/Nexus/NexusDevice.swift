import NIOCore
import NVMe
import NVMeTarget
import Storage

/// The nexus as the target serves it: namespace 1 of the volume's subsystem
/// (`nqn.2026-11.io.halyard:<volume-uuid>`). Reads and writes take the nexus's callback path,
/// the other commands its async one; every command completes on the queue's event loop; a held nexus answers Asymmetric Access Inaccessible
/// (``NexusIOError/held``) so the Linux host requeues rather than failing the I/O.
public final class NexusDevice: BlockDevice {
    public let nexus: Nexus

    init(nexus: Nexus) {
        self.nexus = nexus
    }

    public var blockSize: Int { nexus.blockSize }
    public var blockCount: UInt64 { nexus.blockCount }
    /// Children may cache writes: Flush is forwarded to every child.
    public var hasVolatileWriteCache: Bool { true }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let nexus = self.nexus
        return eventLoop.makeFutureWithTask { try await nexus.read(lba: lba, blocks: blocks) }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let nexus = self.nexus
        return eventLoop.makeFutureWithTask { try await nexus.write(lba: lba, data: data, fua: fua) }
    }

    /// The nexus's callback read path (no task unless a child fails).
    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping (Result<ByteBuffer, any Error>) -> Void) {
        let done = NIOLoopBound(completion, eventLoop: eventLoop)
        nexus.read(lba: lba, blocks: blocks, on: eventLoop) { result in done.value(result.mapError { $0 }) }
    }

    /// The nexus's callback write path (no task while no rebuild runs and every child is in sync).
    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping (Result<Void, any Error>) -> Void) {
        let done = NIOLoopBound(completion, eventLoop: eventLoop)
        nexus.write(lba: lba, data: data, fua: fua, on: eventLoop) { result in done.value(result.mapError { $0 }) }
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let nexus = self.nexus
        return eventLoop.makeFutureWithTask { try await nexus.flush() }
    }

    public func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool,
                            on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let nexus = self.nexus
        return eventLoop.makeFutureWithTask {
            var lba = lba
            var remaining = blocks
            while remaining > 0 {
                let chunk = UInt32(min(remaining, UInt64(UInt16.max) + 1))
                try await nexus.writeZeroes(lba: lba, blocks: chunk, deallocate: deallocate)
                lba += UInt64(chunk)
                remaining -= UInt64(chunk)
            }
        }
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let nexus = self.nexus
        return eventLoop.makeFutureWithTask {
            var lba = lba
            var remaining = blocks
            while remaining > 0 {
                let chunk = UInt32(min(remaining, UInt64(UInt32.max)))
                try await nexus.deallocate(lba: lba, blocks: chunk)
                lba += UInt64(chunk)
                remaining -= UInt64(chunk)
            }
        }
    }

    /// The nexus outlives its device handle; shutting it down is the nexus's business.
    public func close() throws {}
}

extension NexusIOError: NVMeStatusError {}

extension Nexus {
    /// The block device to serve as namespace 1 of the volume's subsystem.
    public var device: NexusDevice { NexusDevice(nexus: self) }
}
