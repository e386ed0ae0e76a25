#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Storage
import Synchronization

/// The I/O side of one replica incarnation: its durable extent map (only mappings whose
/// journal record is durable), size, and in-flight I/O count, behind a small lock of its own so
/// the read path of allocated extents never touches the pool lock or an actor.
final class ReplicaVolume: Sendable {
    let uuid: UUID
    let core: PoolCore
    let blockSize: Int
    /// Logical blocks per extent.
    let extentBlocks: UInt64
    private let io: Mutex<IOState>

    struct IOState {
        /// Logical extent → physical + 1, 0 = unallocated (reads zeroes).
        var map: [UInt32]
        var blockCount: UInt64
        var closed = false
        var readOnly: Bool
        var inFlight = 0
        var drained: [EventLoopPromise<Void>] = []
    }

    init(core: PoolCore, replica: ReplicaMetadata, readOnly: Bool) {
        self.uuid = replica.uuid
        self.core = core
        self.blockSize = core.blockSize
        self.extentBlocks = core.extentSize / UInt64(core.blockSize)
        self.io = Mutex(IOState(map: replica.map, blockCount: replica.size / UInt64(core.blockSize), readOnly: readOnly))
    }

    var blockCount: UInt64 { io.withLock { $0.blockCount } }

    /// One extent's part of an I/O.
    struct Piece {
        var logical: UInt32
        /// First block within the extent.
        var within: UInt64
        var blocks: UInt64
        /// Physical extent, nil when unallocated.
        var physical: UInt32?
        /// Offset of this piece in the I/O's data, in bytes.
        var dataOffset: Int
    }

    /// Checks the range, splits it at extent boundaries and counts the I/O in flight (the
    /// caller must call ``end()``).
    func begin(lba: UInt64, blocks: UInt64, write: Bool) -> Result<[Piece], BlockDeviceError> {
        io.withLock { s in
            guard !s.closed else { return .failure(.closed) }
            if write && s.readOnly { return .failure(.ioError(errno: EROFS)) }
            let (end, overflow) = lba.addingReportingOverflow(blocks)
            guard !overflow, end <= s.blockCount else { return .failure(.outOfRange) }
            var pieces: [Piece] = []
            var current = lba
            var offset = 0
            while current < end {
                let logical = current / extentBlocks
                let within = current % extentBlocks
                let count = min(end - current, extentBlocks - within)
                let entry = s.map[Int(logical)]
                pieces.append(Piece(logical: UInt32(logical), within: within, blocks: count,
                                    physical: entry == 0 ? nil : entry - 1, dataOffset: offset))
                current += count
                offset += Int(count) * blockSize
            }
            s.inFlight += 1
            return .success(pieces)
        }
    }

    func end() {
        let waiters: [EventLoopPromise<Void>] = io.withLock { s in
            s.inFlight -= 1
            guard s.inFlight == 0, s.closed else { return [] }
            defer { s.drained = [] }
            return s.drained
        }
        for w in waiters { w.succeed(()) }
    }

    /// The backing LBA and block count of a piece on physical extent `physical`.
    func backingRange(_ piece: Piece, physical: UInt32) -> (lba: UInt64, blocks: UInt64) {
        let ratio = UInt64(blockSize / core.backing.blockSize)
        return (core.backingLBA(physical: physical, byteWithin: piece.within * UInt64(blockSize)), piece.blocks * ratio)
    }

    /// Records a durable allocation.
    func publish(logical: UInt32, physical: UInt32) {
        io.withLock { s in
            if Int(logical) < s.map.count { s.map[Int(logical)] = physical + 1 }
        }
    }

    /// Adopts a durable resize: `entries` are the map entries of the new logical extents
    /// (a thick replica's new extents; zeroes for a thin one).
    func grow(appending entries: [UInt32], size: UInt64) {
        io.withLock { s in
            s.map += entries
            s.blockCount = size / UInt64(blockSize)
        }
    }

    func setReadOnly() {
        io.withLock { $0.readOnly = true }
    }

    /// The allocated logical extents.
    func allocatedExtents() -> [Int] {
        io.withLock { s in s.map.indices.filter { s.map[$0] != 0 } }
    }

    /// Refuses new I/O; the future completes once the I/O in flight has finished.
    func close(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let idle: Bool = io.withLock { s in
            s.closed = true
            if s.inFlight == 0 { return true }
            s.drained.append(promise)
            return false
        }
        if idle { promise.succeed(()) }
        return promise.futureResult
    }
}
