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
import Logging
import NIOCore
import Storage
import Synchronization

/// The shared heart of a pool: the metadata state machine, the group-committing journal
/// writer and the thin allocator, guarded by one mutex. Journal and checkpoint I/O is driven
/// from `loop`, the pool's own event loop thread (never a caller's loop, never
/// `NIOThreadPool.singleton`); nothing here blocks a thread: writers wait on promises.
///
/// Commit pipeline: an API change validates and applies its record to `meta` under the lock
/// (so the in-memory order is the seq order), queues it and gets a future. One commit runs at a
/// time; it takes every queued record and either appends them as one batch (flush first if a
/// record maps extents, so their zeroing is durable before the mapping; write at the next 4 KiB
/// block; fdatasync) or, when the batch would fill the journal past half, writes a checkpoint
/// of `meta` instead (flush; checkpoint to the inactive slot; flush; superblock generation + 1
/// to the other slot; flush), which makes those records durable without journaling them.
final class PoolCore: Sendable {
    let backing: any BlockDevice
    let loop: any EventLoop
    let uuid: UUID
    let poolLow: UInt64
    let name: String
    let path: String
    let blockSize: Int
    let extentSize: UInt64
    let extentCount: Int
    let dataOffset: UInt64
    let createdFile: Bool
    let logger: Logger
    let state: Mutex<CoreState>

    init(backing: any BlockDevice, loop: any EventLoop, path: String, superblock: Superblock, currentSlot: Int,
         meta: PoolMetadata, head: UInt64, lastSeq: UInt64, fault: String?, logger: Logger)
    {
        self.backing = backing
        self.loop = loop
        self.uuid = superblock.uuid
        self.poolLow = superblock.uuid.low64
        self.name = superblock.name
        self.path = path
        self.blockSize = superblock.blockSize
        self.extentSize = superblock.extentSize
        self.extentCount = Int(superblock.extentCount)
        self.dataOffset = superblock.dataOffset
        self.createdFile = superblock.createdFile
        self.logger = logger
        self.state = Mutex(CoreState(meta: meta, superblock: superblock, currentSlot: currentSlot, head: head,
                                     appendedSeq: lastSeq, durableSeq: lastSeq, fault: fault))
        let volumes = state.withLock { s in
            for replica in s.meta.replicas.values {
                s.volumes[replica.uuid] = ReplicaVolume(core: self, replica: replica, readOnly: fault != nil)
            }
            return s.volumes.count
        }
        _ = volumes
    }

    // MARK: Submitting changes

    /// Validates and applies a change under the lock and queues its record for the next
    /// commit. `body` returns the record (after its own checks, with precise errors) and a
    /// value for the caller; the record is then applied to the metadata. Returns the future
    /// of the record's durability, the destroy's freed extents, and `body`'s value.
    func submit<T>(_ body: (inout CoreState) throws(PoolError) -> (JournalRecord, T)) throws(PoolError)
        -> (durable: EventLoopFuture<Void>, freed: [UInt32], value: T)
    {
        let promise = loop.makePromise(of: Void.self)
        let result: (Bool, [UInt32], T)
        do {
            result = try state.withLock { (s: inout CoreState) throws(PoolError) -> (Bool, [UInt32], T) in
                try s.checkWritable()
                let (record, value) = try body(&s)
                let freed = try s.meta.apply(record)
                s.appendedSeq += 1
                s.pending.append((s.appendedSeq, record))
                s.waiters.append((s.appendedSeq, promise))
                let start = !s.committing
                s.committing = true
                return (start, freed, value)
            }
        } catch {
            promise.fail(error)
            throw error
        }
        if result.0 {
            loop.execute { self.commitNext() }
        }
        return (promise.futureResult, result.1, result.2)
    }

    /// A future that completes when everything submitted so far is durable.
    func sync() -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let outcome: Result<Void, PoolError>? = state.withLock { s in
            if let fault = s.fault { return .failure(.faulted(fault)) }
            if s.durableSeq == s.appendedSeq { return .success(()) }
            s.waiters.append((s.appendedSeq, promise))
            return nil
        }
        if let outcome { promise.completeWith(outcome.mapError { $0 }) }
        return promise.futureResult
    }

    /// What the next commit writes.
    private enum CommitPlan {
        case journal(position: UInt64, batch: [UInt8], lastSeq: UInt64, barrier: Bool, used: UInt64, head: UInt64)
        case checkpoint(image: [UInt8], next: Superblock, slot: Int, lastSeq: UInt64)
    }

    /// Runs on `loop`: writes the queued records (or a checkpoint), then looks for more.
    private func commitNext() {
        let plan: CommitPlan? = state.withLock { s in
            guard !s.pending.isEmpty, s.fault == nil else {
                s.committing = false
                return nil
            }
            let records = s.pending
            s.pending = []
            let lastSeq = records.last!.seq
            let journalSize = s.superblock.journalSize
            let batch = JournalFormat.encodeBatch(records, poolLow: poolLow, generation: s.superblock.generation)
            let length = UInt64(batch.count)
            var position = s.head
            var waste: UInt64 = 0
            if position + length > journalSize {
                waste = journalSize - position
                position = 0
            }
            if s.used + waste + length <= journalSize / 2 {
                return .journal(position: position, batch: batch, lastSeq: lastSeq,
                                barrier: records.contains { $0.record.needsBarrier },
                                used: s.used + waste + length, head: (position + length) % journalSize)
            }
            var next = s.superblock
            next.generation += 1
            next.activeCheckpoint = 1 - next.activeCheckpoint
            next.checkpointSeq = lastSeq
            next.journalStart = s.head
            let image = Checkpoint.encode(s.meta, seq: lastSeq, poolLow: poolLow)
            return .checkpoint(image: image, next: next, slot: 1 - s.currentSlot, lastSeq: lastSeq)
        }
        guard let plan else { return }
        if case .checkpoint(let image, let next, _, let lastSeq) = plan, image.count > Int(next.checkpointSize) {
            fail("checkpoint of seq \(lastSeq) needs \(image.count) bytes, the slot holds \(next.checkpointSize)")
            return
        }
        switch plan {
        case .journal(let position, let batch, let lastSeq, let barrier, let used, let head):
            let journalOffset = state.withLock { $0.superblock.journalOffset }
            let before = barrier ? backing.flush(on: loop) : loop.makeSucceededVoidFuture()
            before.flatMap {
                self.writeBytes(batch, at: journalOffset + position)
            }.flatMap {
                self.backing.flush(on: self.loop)
            }.whenComplete { result in
                switch result {
                case .success:
                    self.committed(through: lastSeq) { s in
                        s.head = head
                        s.used = used
                    }
                case .failure(let error):
                    self.fail("journal write of seq ≤ \(lastSeq) failed: \(error)")
                }
            }
        case .checkpoint(let image, let next, let slot, let lastSeq):
            let checkpointOffset = next.checkpointOffsets[next.activeCheckpoint]
            backing.flush(on: loop).flatMap {
                self.writeBytes(image, at: checkpointOffset)
            }.flatMap {
                self.backing.flush(on: self.loop)
            }.flatMap {
                self.writeBytes(next.encode(), at: Superblock.slotOffsets[slot])
            }.flatMap {
                self.backing.flush(on: self.loop)
            }.whenComplete { result in
                switch result {
                case .success:
                    self.committed(through: lastSeq) { s in
                        s.superblock = next
                        s.currentSlot = slot
                        s.used = 0
                    }
                case .failure(let error):
                    self.fail("checkpoint of seq ≤ \(lastSeq) failed: \(error)")
                }
            }
        }
    }

    /// Marks everything through `seq` durable, wakes its waiters and starts the next commit.
    private func committed(through seq: UInt64, _ update: (inout CoreState) -> Void) {
        let ready: [EventLoopPromise<Void>] = state.withLock { s in
            update(&s)
            s.durableSeq = seq
            s.commits += 1
            let split = s.waiters.partition { $0.seq > seq }
            let ready = s.waiters[..<split].map(\.promise)
            s.waiters.removeSubrange(..<split)
            return ready
        }
        for promise in ready { promise.succeed(()) }
        // Through the loop, not recursively: a device that completes inline must not nest
        // one commit inside the last.
        loop.execute { self.commitNext() }
    }

    /// Faults the pool: every waiter fails, later changes are refused, I/O becomes read-only.
    func fail(_ reason: String) {
        let (waiters, volumes): ([EventLoopPromise<Void>], [ReplicaVolume]) = state.withLock { s in
            if s.fault == nil { s.fault = reason }
            s.committing = false
            s.pending = []
            let waiters = s.waiters.map(\.promise)
            s.waiters = []
            return (waiters, Array(s.volumes.values))
        }
        logger.error("pool faulted", metadata: ["pool": "\(name)", "reason": "\(reason)"])
        for volume in volumes { volume.setReadOnly() }
        for promise in waiters { promise.fail(PoolError.io(reason)) }
    }

    // MARK: Metadata I/O

    func writeBytes(_ bytes: [UInt8], at offset: UInt64) -> EventLoopFuture<Void> {
        let size = UInt64(backing.blockSize)
        return backing.write(lba: offset / size, data: ByteBuffer(bytes: bytes), fua: false, on: loop)
    }

    func readBytes(at offset: UInt64, count: Int) -> EventLoopFuture<[UInt8]> {
        let size = UInt64(backing.blockSize)
        return backing.read(lba: offset / size, blocks: UInt32(count / Int(size)), on: loop).map { Array(buffer: $0) }
    }

    /// The backing LBA of byte `within` of physical extent `physical`.
    @inline(__always)
    func backingLBA(physical: UInt32, byteWithin: UInt64) -> UInt64 {
        (dataOffset + UInt64(physical) * extentSize + byteWithin) / UInt64(backing.blockSize)
    }

    /// Zeroes physical extents (punching holes where the backend can), coalescing runs.
    func zero(extents: [UInt32]) -> EventLoopFuture<Void> {
        var runs: [(start: UInt32, count: UInt32)] = []
        for e in extents.sorted() {
            if let last = runs.last, last.start + last.count == e {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((e, 1))
            }
        }
        let extentBlocks = extentSize / UInt64(backing.blockSize)
        let futures = runs.map { run in
            backing.writeZeroes(lba: backingLBA(physical: run.start, byteWithin: 0), blocks: UInt64(run.count) * extentBlocks,
                                deallocate: true, fua: false, on: loop)
        }
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }

    // MARK: Thin allocation

    /// The physical extent for logical extent `logical` of `volume`, allocating it on first
    /// use: take a free extent, zero it, journal the mapping (its batch starts with a flush,
    /// so the zeroing is durable first), then publish it to the volume's I/O map. Concurrent
    /// first writes to one extent share one allocation. Fails with
    /// ``BlockDeviceError/noSpace`` when no extent is free.
    func allocate(_ volume: ReplicaVolume, logical: UInt32) -> EventLoopFuture<UInt32> {
        enum Decision {
            case wait(EventLoopFuture<UInt32>)
            case done(UInt32)
            case start(UInt32, EventLoopPromise<UInt32>)
            case fail(BlockDeviceError)
        }
        let key = AllocationKey(volume: ObjectIdentifier(volume), logical: logical)
        let decision: Decision = state.withLock { s in
            if s.fault != nil { return .fail(.ioError(errno: EROFS)) }
            if let pending = s.allocations[key] { return .wait(pending) }
            guard s.volumes[volume.uuid] === volume, let replica = s.meta.replicas[volume.uuid] else { return .fail(.closed) }
            guard Int(logical) < replica.map.count else { return .fail(.outOfRange) }
            let entry = replica.map[Int(logical)]
            if entry != 0 { return .done(entry - 1) }
            guard let physical = s.meta.free.popLast() else { return .fail(.noSpace) }
            let promise = loop.makePromise(of: UInt32.self)
            s.allocations[key] = promise.futureResult
            return .start(physical, promise)
        }
        switch decision {
        case .wait(let future): return future
        case .done(let physical): return loop.makeSucceededFuture(physical)
        case .fail(let error): return loop.makeFailedFuture(error)
        case .start(let physical, let promise):
            let appended = Flag()
            zero(extents: [physical]).flatMapThrowing { (_: Void) throws -> EventLoopFuture<Void> in
                let (durable, _, _) = try self.submit { (s: inout CoreState) throws(PoolError) -> (JournalRecord, Void) in
                    guard s.volumes[volume.uuid] === volume, let replica = s.meta.replicas[volume.uuid],
                        Int(logical) < replica.map.count, replica.map[Int(logical)] == 0
                    else { throw .notFound("replica \(volume.uuid) was destroyed during an allocation") }
                    return (.extentAlloc(uuid: volume.uuid, mappings: [ExtentMapping(logical: logical, physical: physical)]), ())
                }
                appended.value.store(true, ordering: .relaxed)
                return durable
            }.flatMap { $0 }.whenComplete { result in
                self.state.withLock { s in
                    s.allocations[key] = nil
                    switch result {
                    case .success:
                        volume.publish(logical: logical, physical: physical)
                    case .failure:
                        // Not journaled: the extent is in no map, so it is free again.
                        if !appended.value.load(ordering: .relaxed) { s.meta.free.append(physical) }
                    }
                }
                switch result {
                case .success: promise.succeed(physical)
                case .failure(let error as BlockDeviceError): promise.fail(error)
                case .failure(PoolError.notFound): promise.fail(BlockDeviceError.closed)
                case .failure(PoolError.faulted), .failure(PoolError.io): promise.fail(BlockDeviceError.ioError(errno: EIO))
                case .failure(let error): promise.fail(error)
                }
            }
            return promise.futureResult
        }
    }

    /// Returns extents to the free list (after their destroy is durable and their I/O drained).
    func release(_ extents: [UInt32]) {
        guard !extents.isEmpty else { return }
        state.withLock { s in s.meta.free.append(contentsOf: extents) }
    }

    /// Takes `count` free extents for a thick replica (nil if there are not enough).
    func reserve(_ count: Int) -> [UInt32]? {
        state.withLock { s in
            guard s.meta.free.count >= count else { return nil }
            let taken = Array(s.meta.free.suffix(count))
            s.meta.free.removeLast(count)
            return taken
        }
    }
}

/// Identifies one in-flight allocation: a volume incarnation and a logical extent.
struct AllocationKey: Hashable {
    var volume: ObjectIdentifier
    var logical: UInt32
}

/// Everything `PoolCore.state` guards.
struct CoreState {
    var meta: PoolMetadata
    /// The current superblock, and which slot (0 or 1) holds it.
    var superblock: Superblock
    var currentSlot: Int
    /// Ring offset where the next batch goes, and ring bytes used since `journalStart`.
    var head: UInt64
    var used: UInt64 = 0
    var appendedSeq: UInt64
    var durableSeq: UInt64
    var pending: [(seq: UInt64, record: JournalRecord)] = []
    var waiters: [(seq: UInt64, promise: EventLoopPromise<Void>)] = []
    var committing = false
    var fault: String?
    var commits: UInt64 = 0
    var closed = false
    /// The I/O side of each replica (one per incarnation).
    var volumes: [UUID: ReplicaVolume] = [:]
    var allocations: [AllocationKey: EventLoopFuture<UInt32>] = [:]

    init(meta: PoolMetadata, superblock: Superblock, currentSlot: Int, head: UInt64, appendedSeq: UInt64, durableSeq: UInt64,
         fault: String?)
    {
        self.meta = meta
        self.superblock = superblock
        self.currentSlot = currentSlot
        self.head = head
        self.appendedSeq = appendedSeq
        self.durableSeq = durableSeq
        self.fault = fault
    }

    func checkWritable() throws(PoolError) {
        if let fault { throw .faulted("pool is read-only: \(fault)") }
        if closed { throw .failedPrecondition("pool has been exported or destroyed") }
    }
}

/// A thread-safe boolean flag.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
