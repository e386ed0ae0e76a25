#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import Storage
import Synchronization

/// A ``BlockDevice`` over one replica of a pool: what an NVMe namespace serves.
///
/// LBAs map to (logical extent, offset); an I/O crossing an extent boundary is split. Reads of
/// unallocated extents return zeroes without touching the disk. A write to an unallocated
/// extent of a thin replica allocates it first (zero → journal → write; concurrent first
/// writes to one extent share the allocation) and fails with ``BlockDeviceError/noSpace``
/// when the pool has no free extent. Write Zeroes and Deallocate zero (punch) inside the
/// allocated extents they touch; whole extents are not returned to the pool.
///
/// The extent map lookup is one short lock of the replica's own; I/O to allocated extents goes
/// straight to the backing device with no hop through the pool. Each call to
/// ``Pool/device(uuid:)`` returns a new handle: ``close()`` closes that handle only; destroying
/// the replica (or exporting the pool) closes them all.
public final class ReplicaDevice: BlockDevice {
    /// The replica's UUID.
    public let uuid: UUID
    let volume: ReplicaVolume
    private let handleClosed = Atomic<Bool>(false)

    init(volume: ReplicaVolume) {
        self.uuid = volume.uuid
        self.volume = volume
    }

    public var blockSize: Int { volume.blockSize }
    /// The replica's size in blocks (grows when the replica is resized).
    public var blockCount: UInt64 { volume.blockCount }
    public var hasVolatileWriteCache: Bool { volume.core.backing.hasVolatileWriteCache }

    private var backing: any BlockDevice { volume.core.backing }

    private func begin(lba: UInt64, blocks: UInt64, write: Bool) -> Result<[ReplicaVolume.Piece], BlockDeviceError> {
        if handleClosed.load(ordering: .relaxed) { return .failure(.closed) }
        return volume.begin(lba: lba, blocks: blocks, write: write)
    }

    // MARK: Read

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        switch begin(lba: lba, blocks: UInt64(blocks), write: false) {
        case .failure(let error):
            return eventLoop.makeFailedFuture(error)
        case .success(let pieces):
            let volume = self.volume
            return readPieces(pieces, total: Int(blocks) * blockSize, on: eventLoop).always { _ in volume.end() }
        }
    }

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping (Result<ByteBuffer, any Error>) -> Void)
    {
        let pieces: [ReplicaVolume.Piece]
        switch begin(lba: lba, blocks: UInt64(blocks), write: false) {
        case .failure(let error):
            completion(.failure(error))
            return
        case .success(let p):
            pieces = p
        }
        let volume = self.volume
        if pieces.count == 1 {
            let piece = pieces[0]
            guard let physical = piece.physical else {
                volume.end()
                completion(.success(Self.zeroes(Int(blocks) * blockSize)))
                return
            }
            let range = volume.backingRange(piece, physical: physical)
            backing.read(lba: range.lba, blocks: UInt32(range.blocks), on: eventLoop) { result in
                volume.end()
                completion(result)
            }
            return
        }
        readPieces(pieces, total: Int(blocks) * blockSize, on: eventLoop).hop(to: eventLoop).assumeIsolated().whenComplete {
            volume.end()
            completion($0)
        }
    }

    private func readPieces(_ pieces: [ReplicaVolume.Piece], total: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let futures = pieces.map { piece -> EventLoopFuture<ByteBuffer> in
            guard let physical = piece.physical else {
                return eventLoop.makeSucceededFuture(Self.zeroes(Int(piece.blocks) * blockSize))
            }
            let range = volume.backingRange(piece, physical: physical)
            return backing.read(lba: range.lba, blocks: UInt32(range.blocks), on: eventLoop)
        }
        if futures.count == 1 { return futures[0] }
        return EventLoopFuture.whenAllSucceed(futures, on: eventLoop).map { parts in
            var buffer = ByteBufferAllocator().buffer(capacity: total)
            for var part in parts { buffer.writeBuffer(&part) }
            return buffer
        }
    }

    /// A shared all-zero buffer for reads of unallocated extents.
    private static let zeroBuffer: ByteBuffer = {
        var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
        buffer.writeRepeatingByte(0, count: 1 << 20)
        return buffer
    }()

    static func zeroes(_ count: Int) -> ByteBuffer {
        if count <= zeroBuffer.readableBytes { return zeroBuffer.getSlice(at: zeroBuffer.readerIndex, length: count)! }
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeRepeatingByte(0, count: count)
        return buffer
    }

    // MARK: Write

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard data.readableBytes % blockSize == 0 else { return eventLoop.makeFailedFuture(BlockDeviceError.misaligned) }
        switch begin(lba: lba, blocks: UInt64(data.readableBytes / blockSize), write: true) {
        case .failure(let error):
            return eventLoop.makeFailedFuture(error)
        case .success(let pieces):
            let volume = self.volume
            return writePieces(pieces, data: data, fua: fua, on: eventLoop).always { _ in volume.end() }
        }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping (Result<Void, any Error>) -> Void)
    {
        guard data.readableBytes % blockSize == 0 else {
            completion(.failure(BlockDeviceError.misaligned))
            return
        }
        let pieces: [ReplicaVolume.Piece]
        switch begin(lba: lba, blocks: UInt64(data.readableBytes / blockSize), write: true) {
        case .failure(let error):
            completion(.failure(error))
            return
        case .success(let p):
            pieces = p
        }
        let volume = self.volume
        if pieces.count == 1, let physical = pieces[0].physical {
            let range = volume.backingRange(pieces[0], physical: physical)
            backing.write(lba: range.lba, data: data, fua: fua, on: eventLoop) { result in
                volume.end()
                completion(result)
            }
            return
        }
        writePieces(pieces, data: data, fua: fua, on: eventLoop).hop(to: eventLoop).assumeIsolated().whenComplete {
            volume.end()
            completion($0)
        }
    }

    private func writePieces(_ pieces: [ReplicaVolume.Piece], data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let volume = self.volume
        let backing = self.backing
        let blockSize = self.blockSize
        let futures = pieces.map { piece -> EventLoopFuture<Void> in
            let slice = data.getSlice(at: data.readerIndex + piece.dataOffset, length: Int(piece.blocks) * blockSize)!
            if let physical = piece.physical {
                let range = volume.backingRange(piece, physical: physical)
                return backing.write(lba: range.lba, data: slice, fua: fua, on: eventLoop)
            }
            return volume.core.allocate(volume, logical: piece.logical).hop(to: eventLoop).flatMap { physical in
                let range = volume.backingRange(piece, physical: physical)
                return backing.write(lba: range.lba, data: slice, fua: fua, on: eventLoop)
            }
        }
        if futures.count == 1 { return futures[0] }
        return EventLoopFuture.andAllSucceed(futures, on: eventLoop)
    }

    // MARK: Flush, zeroes, close

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        switch begin(lba: 0, blocks: 0, write: false) {
        case .failure(let error):
            return eventLoop.makeFailedFuture(error)
        case .success:
            let volume = self.volume
            return backing.flush(on: eventLoop).always { _ in volume.end() }
        }
    }

    public func writeZeroes(lba: UInt64, blocks: UInt64, deallocate: Bool, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        zero(lba: lba, blocks: blocks, fua: fua, on: eventLoop)
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        zero(lba: lba, blocks: blocks, fua: false, on: eventLoop)
    }

    /// Zeroes the allocated parts of the range (unallocated extents already read as zeroes).
    private func zero(lba: UInt64, blocks: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        switch begin(lba: lba, blocks: blocks, write: true) {
        case .failure(let error):
            return eventLoop.makeFailedFuture(error)
        case .success(let pieces):
            let volume = self.volume
            let futures = pieces.compactMap { piece -> EventLoopFuture<Void>? in
                guard let physical = piece.physical else { return nil }
                let range = volume.backingRange(piece, physical: physical)
                return backing.writeZeroes(lba: range.lba, blocks: range.blocks, deallocate: true, fua: fua, on: eventLoop)
            }
            return EventLoopFuture.andAllSucceed(futures, on: eventLoop).always { _ in volume.end() }
        }
    }

    /// Closes this handle (later calls fail with ``BlockDeviceError/closed``); the replica and
    /// other handles stay usable. Idempotent.
    public func close() throws {
        handleClosed.store(true, ordering: .relaxed)
    }
}

extension ReplicaDevice: AllocationReporting {
    /// The replica's durably mapped extents as block ranges (the last one clipped to the size),
    /// merged where adjacent: the same map as ``Pool/allocatedRanges(uuid:)``, in blocks. Served as
    /// log page C0h so a nexus rebuilding from this replica copies only these.
    public func allocatedBlockRanges() throws -> [Range<UInt64>] {
        if handleClosed.load(ordering: .relaxed) { throw BlockDeviceError.closed }
        let extentBlocks = volume.extentBlocks
        let blockCount = volume.blockCount
        var ranges: [Range<UInt64>] = []
        for logical in volume.allocatedExtents() {
            let start = UInt64(logical) * extentBlocks
            guard start < blockCount else { break }
            let end = min(start + extentBlocks, blockCount)
            if let last = ranges.last, last.upperBound == start {
                ranges[ranges.count - 1] = last.lowerBound..<end
            } else {
                ranges.append(start..<end)
            }
        }
        return ranges
    }
}
