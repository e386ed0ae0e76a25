import NIOCore
import NVMe
import NVMeTarget
import Storage

/// The nexus as the target serves it: namespace 1 of the volume's subsystem
/// (`nqn.2026-11.io.halyard:<volume-uuid>`). Each command runs the nexus's async I/O path and
/// completes on the queue's event loop; a held nexus answers Asymmetric Access Inaccessible
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
