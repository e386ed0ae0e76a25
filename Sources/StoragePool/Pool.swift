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
import NIOPosix
import Storage
import Synchronization

/// A storage pool: one backing file or block device holding thin and thick replicas, with a
/// crash-safe metadata journal (see docs/notes/io-engine-plan.md §3).
///
/// On-disk layout: two superblock slots (0 and 4 KiB), the journal ring at 1 MiB, two
/// checkpoint slots, then the extent-aligned data area. Every change (replica create, resize,
/// destroy, share, reservation state, a thin replica's extent allocation) is one journal
/// record, acknowledged once its batch is fdatasync'ed; concurrent changes share one
/// write + fdatasync (group commit). The free set is never stored: import rebuilds it as all
/// extents minus the mapped ones, after checking that no extent is mapped twice or out of
/// range; a pool that fails that check imports read-only, ``PoolState/faulted(reason:)``.
///
/// Concurrency: a final class with explicit locking. Journal and checkpoint writes are driven
/// by the pool's own event loop thread, file I/O runs on the pool's own thread pool; no method
/// blocks the calling thread for I/O. Operations on one replica are serialized; operations on
/// different replicas run concurrently.
public final class Pool: Sendable {
    let core: PoolCore
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool?
    private let serializer = KeyedSerializer()
    /// Set by export/destroy: later API calls fail.
    private let shutDown = Atomic<Bool>(false)

    private init(core: PoolCore, group: MultiThreadedEventLoopGroup, threadPool: NIOThreadPool?) {
        self.core = core
        self.group = group
        self.threadPool = threadPool
    }

    public static let defaultLogger = Logger(label: "halyard.pool")

    // MARK: Create, import

    /// Creates a pool on `path` (a file or block device), formatting it: empty checkpoint,
    /// both superblocks, fsync. If `path` does not exist and `options.createFileSize` is set, a
    /// sparse file of that size is created (and unlinked again if creation fails). A device
    /// that already holds a pool label is refused unless `options.overwriteExistingPool`.
    /// - Parameter ioThreads: threads of the pool's own I/O thread pool (file reads/writes).
    public static func create(path: String, options: PoolCreateOptions, ioThreads: Int = 4,
                              logger: Logger = Pool.defaultLogger) async throws(PoolError) -> Pool
    {
        try validate(options)
        let threadPool = NIOThreadPool(numberOfThreads: max(1, ioThreads))
        threadPool.start()
        let existed = FileManager.default.fileExists(atPath: path)
        if !existed && options.createFileSize == nil {
            try? await threadPool.shutdownGracefully()
            throw .notFound("backing path '\(path)' does not exist (set createFileSize to create a file)")
        }
        let device: FileBlockDevice
        do {
            device = try await open(path: path, size: existed ? nil : options.createFileSize, threadPool: threadPool)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
        do throws(PoolError) {
            return try await format(device: device, path: path, options: options, createdFile: !existed, threadPool: threadPool,
                                    logger: logger)
        } catch {
            try? device.close()
            try? await threadPool.shutdownGracefully()
            if !existed { unlink(path) }
            throw error
        }
    }

    /// Creates a pool on an already open block device (tests, custom backends). The pool owns
    /// `device` from now on and closes it on export or destroy. `path` is only reported.
    public static func create(device: any BlockDevice, path: String, options: PoolCreateOptions,
                              logger: Logger = Pool.defaultLogger) async throws(PoolError) -> Pool
    {
        try validate(options)
        return try await format(device: device, path: path, options: options, createdFile: false, threadPool: nil, logger: logger)
    }

    /// Imports the pool on `path`: reads the newer valid superblock, its checkpoint, replays
    /// the journal, checks the metadata (fsck) and rebuilds the free set. A disk without a
    /// pool label fails with ``PoolError/failedPrecondition(_:)``; a pool whose metadata is
    /// inconsistent imports read-only with state ``PoolState/faulted(reason:)``.
    public static func `import`(path: String, ioThreads: Int = 4, logger: Logger = Pool.defaultLogger)
        async throws(PoolError) -> Pool
    {
        let threadPool = NIOThreadPool(numberOfThreads: max(1, ioThreads))
        threadPool.start()
        do throws(PoolError) {
            let device = try await open(path: path, size: nil, threadPool: threadPool)
            do throws(PoolError) {
                return try await load(device: device, path: path, threadPool: threadPool, logger: logger)
            } catch {
                try? device.close()
                throw error
            }
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Imports the pool on an open block device (tests, custom backends); the pool owns it.
    public static func `import`(device: any BlockDevice, path: String, logger: Logger = Pool.defaultLogger)
        async throws(PoolError) -> Pool
    {
        try await load(device: device, path: path, threadPool: nil, logger: logger)
    }

    private static func validate(_ options: PoolCreateOptions) throws(PoolError) {
        let nameBytes = options.name.utf8.count
        guard nameBytes >= 1, nameBytes <= Superblock.maximumNameBytes else {
            throw .invalidArgument("pool name '\(options.name)': must be 1 to \(Superblock.maximumNameBytes) bytes of UTF-8")
        }
        guard options.blockSize == 512 || options.blockSize == 4096 else {
            throw .invalidArgument("pool '\(options.name)' block size \(options.blockSize): must be 512 or 4096")
        }
        let extent = options.extentSize
        guard extent >= PoolCreateOptions.minimumExtentSize, extent <= PoolCreateOptions.maximumExtentSize, extent & (extent - 1) == 0
        else {
            throw .invalidArgument("pool '\(options.name)' extent size \(extent) bytes: must be a power of two from 64 KiB to 64 MiB")
        }
        if let size = options.createFileSize {
            guard size > 0, size % 4096 == 0 else {
                throw .invalidArgument("pool '\(options.name)' file size \(size) bytes: must be a non-zero multiple of 4096")
            }
        }
    }

    /// Opens (or creates) the backing file or block device on the thread pool.
    private static func open(path: String, size: UInt64?, threadPool: NIOThreadPool) async throws(PoolError) -> FileBlockDevice {
        do {
            return try await threadPool.runIfActive {
                try FileBlockDevice.open(path: path, size: size, blockSize: 512, threadPool: threadPool)
            }
        } catch let error as FileBlockDeviceError {
            switch error {
            case .sizeRequired: throw .notFound("backing path '\(path)' does not exist")
            case .notRegularFile, .invalidSize, .sizeMismatch, .invalidBlockSize: throw .invalidArgument(error.description)
            case .systemCallFailed(_, _, let code) where code == ENOENT: throw .notFound(error.description)
            case .systemCallFailed: throw .io(error.description)
            }
        } catch {
            throw .io("opening '\(path)': \(error)")
        }
    }

    private static func makeGroup() -> MultiThreadedEventLoopGroup {
        MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Reads both superblock slots: the decoded ones (with their slot) and why the others failed.
    private static func readSuperblocks(_ device: any BlockDevice, loop: any EventLoop)
        async throws(PoolError) -> (valid: [(Superblock, Int)], magic: Bool, problems: [String])
    {
        guard device.byteCount >= 8192 else { return ([], false, ["device of \(device.byteCount) bytes"]) }
        let bytes = try await device.read(lba: 0, blocks: UInt32(8192 / device.blockSize), on: loop).map { Array(buffer: $0) }
            .poolValue("reading the superblocks")
        var valid: [(Superblock, Int)] = []
        var magic = false
        var problems: [String] = []
        for slot in 0..<2 {
            let image = Array(bytes[(slot * 4096)..<((slot + 1) * 4096)])
            magic = magic || Superblock.hasMagic(image)
            do {
                valid.append((try Superblock.decode(image), slot))
            } catch {
                problems.append("slot \(slot): \(error)")
            }
        }
        return (valid, magic, problems)
    }

    private static func format(device: any BlockDevice, path: String, options: PoolCreateOptions, createdFile: Bool,
                               threadPool: NIOThreadPool?, logger: Logger) async throws(PoolError) -> Pool
    {
        guard device.blockSize <= options.blockSize, 4096 % device.blockSize == 0 else {
            throw .invalidArgument("device '\(path)' block size \(device.blockSize) does not fit pool block size \(options.blockSize)")
        }
        let group = makeGroup()
        let loop = group.next()
        do throws(PoolError) {
            let existing = try await readSuperblocks(device, loop: loop)
            if let (old, _) = existing.valid.max(by: { $0.0.generation < $1.0.generation }), !options.overwriteExistingPool {
                throw .failedPrecondition(
                    "'\(path)' already holds pool '\(old.name)' (\(old.uuid)): import it, destroy it, or set overwriteExistingPool")
            }
            let uuid = options.uuid ?? UUID()
            var superblock = try Superblock.layout(
                uuid: uuid, name: options.name, deviceSize: device.byteCount, blockSize: options.blockSize,
                extentSize: options.extentSize, journalSize: options.journalSize, createdFile: createdFile)
            // A random first generation: records of an earlier pool with the same UUID on this
            // disk can never match the new pool's generation.
            superblock.generation = UInt64.random(in: 1..<(1 << 62))
            var meta = PoolMetadata(blockSize: options.blockSize, extentSize: options.extentSize, extentCount: Int(superblock.extentCount))
            meta.rebuildFreeList()
            let size = UInt64(device.blockSize)
            func write(_ bytes: [UInt8], at offset: UInt64) async throws(PoolError) {
                try await device.write(lba: offset / size, data: ByteBuffer(bytes: bytes), fua: false, on: loop).poolValue("formatting '\(path)'")
            }
            func flush() async throws(PoolError) {
                try await device.flush(on: loop).poolValue("flushing '\(path)'")
            }
            // Wipe the old labels first, so a crash mid-create never leaves an old label that
            // outranks the new one.
            try await write([UInt8](repeating: 0, count: 8192), at: 0)
            try await flush()
            try await write([UInt8](repeating: 0, count: 4096), at: superblock.journalOffset)
            try await write(Checkpoint.encode(meta, seq: 0, poolLow: uuid.low64), at: superblock.checkpointOffsets[0])
            try await flush()
            try await write(superblock.encode(), at: Superblock.slotOffsets[0])
            try await flush()
            superblock.generation += 1
            try await write(superblock.encode(), at: Superblock.slotOffsets[1])
            try await flush()
            let core = PoolCore(backing: device, loop: loop, path: path, superblock: superblock, currentSlot: 1, meta: meta,
                                head: 0, lastSeq: 0, fault: nil, logger: logger)
            logger.info("pool created", metadata: [
                "pool": "\(options.name)", "uuid": "\(uuid)", "path": "\(path)", "extents": "\(superblock.extentCount)",
            ])
            return Pool(core: core, group: group, threadPool: threadPool)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func load(device: any BlockDevice, path: String, threadPool: NIOThreadPool?, logger: Logger)
        async throws(PoolError) -> Pool
    {
        let group = makeGroup()
        let loop = group.next()
        do throws(PoolError) {
            let labels = try await readSuperblocks(device, loop: loop)
            guard let (superblock, slot) = labels.valid.max(by: { $0.0.generation < $1.0.generation }) else {
                if labels.magic {
                    throw .failedPrecondition("'\(path)' has a pool label but both superblock copies are invalid: "
                        + labels.problems.joined(separator: "; "))
                }
                throw .failedPrecondition("'\(path)' holds no pool label: not a pool (create one first)")
            }
            guard superblock.deviceSize <= device.byteCount else {
                throw .failedPrecondition(
                    "'\(path)' is \(device.byteCount) bytes but pool '\(superblock.name)' was created on \(superblock.deviceSize) bytes")
            }
            guard device.blockSize <= superblock.blockSize, 4096 % device.blockSize == 0 else {
                throw .invalidArgument("device '\(path)' block size \(device.blockSize) does not fit pool block size \(superblock.blockSize)")
            }
            var meta = PoolMetadata(blockSize: superblock.blockSize, extentSize: superblock.extentSize,
                                    extentCount: Int(superblock.extentCount))
            var fault: String?
            var lastSeq = superblock.checkpointSeq
            var head = superblock.journalStart
            var ringGeneration: UInt64 = 0
            let size = UInt64(device.blockSize)
            func read(_ offset: UInt64, _ count: UInt64) async throws(PoolError) -> [UInt8] {
                try await device.read(lba: offset / size, blocks: UInt32(count / size), on: loop).map { Array(buffer: $0) }
                    .poolValue("reading pool metadata on '\(path)'")
            }
            // The checkpoint.
            let image = try await read(superblock.checkpointOffsets[superblock.activeCheckpoint], superblock.checkpointSize)
            do {
                let header = try Checkpoint.decodeHeader(image)
                if header.poolLow != superblock.uuid.low64 {
                    fault = "checkpoint slot \(superblock.activeCheckpoint) belongs to another pool"
                } else if header.seq != superblock.checkpointSeq {
                    fault = "checkpoint slot \(superblock.activeCheckpoint) holds seq \(header.seq), superblock expects \(superblock.checkpointSeq)"
                } else {
                    try Checkpoint.decode(image, header: header, into: &meta)
                }
            } catch let error as DecodeError {
                fault = "checkpoint slot \(superblock.activeCheckpoint): \(error)"
            } catch let error as PoolError {
                fault = error.message
            } catch {
                fault = "\(error)"
            }
            // The journal.
            if fault == nil {
                let ring = try await read(superblock.journalOffset, superblock.journalSize)
                ringGeneration = JournalFormat.highestGeneration(ring: ring, poolLow: superblock.uuid.low64)
                let replay = JournalFormat.scan(ring: ring, start: superblock.journalStart, firstSeq: superblock.checkpointSeq + 1,
                                                poolLow: superblock.uuid.low64, generation: superblock.generation)
                if let corruption = replay.corruption { fault = "journal: \(corruption)" }
                for (seq, record) in replay.records where fault == nil {
                    do {
                        try meta.apply(record)
                        lastSeq = seq
                    } catch {
                        fault = "journal record seq \(seq) (type \(record.type), replica \(record.uuid)) does not apply: \(error.message)"
                    }
                }
                head = replay.end
                logger.info("pool journal replayed", metadata: [
                    "pool": "\(superblock.name)", "records": "\(replay.records.count)", "stop": "\(replay.stop)",
                ])
            }
            if fault == nil, let problem = meta.check() { fault = problem }
            // Generations only grow by small steps from below 2^62 (create): one this large is
            // damage, and could not advance.
            if fault == nil, max(superblock.generation, ringGeneration) >= 1 << 63 {
                fault = "generation \(max(superblock.generation, ringGeneration)) is out of range"
            }
            var current = superblock
            var currentSlot = slot
            if let fault {
                logger.error("pool imported faulted (read-only)", metadata: ["pool": "\(superblock.name)", "reason": "\(fault)"])
            } else {
                meta.rebuildFreeList()
                // Fold the replayed records into a checkpoint under a new generation before
                // anything is appended: stale records past a torn tail can never replay later.
                // Above every generation in the ring too: if the other slot is a damaged newer
                // label, records journaled under it may lie past the replayed window, and reusing
                // their generation would resurrect them on the next import.
                var next = superblock
                next.generation = max(superblock.generation, ringGeneration) + 1
                next.activeCheckpoint = 1 - superblock.activeCheckpoint
                next.checkpointSeq = lastSeq
                next.journalStart = head
                let nextSlot = 1 - slot
                let encoded = Checkpoint.encode(meta, seq: lastSeq, poolLow: superblock.uuid.low64)
                guard encoded.count <= next.checkpointSize else {
                    throw .faulted("metadata of \(encoded.count) bytes exceeds the checkpoint slot of \(next.checkpointSize) bytes")
                }
                try await device.write(lba: next.checkpointOffsets[next.activeCheckpoint] / size, data: ByteBuffer(bytes: encoded),
                                       fua: false, on: loop).poolValue("writing the import checkpoint")
                try await device.flush(on: loop).poolValue("flushing the import checkpoint")
                try await device.write(lba: Superblock.slotOffsets[nextSlot] / size, data: ByteBuffer(bytes: next.encode()), fua: false,
                                       on: loop).poolValue("writing the superblock")
                try await device.flush(on: loop).poolValue("flushing the superblock")
                current = next
                currentSlot = nextSlot
            }
            let core = PoolCore(backing: device, loop: loop, path: path, superblock: current, currentSlot: currentSlot, meta: meta,
                                head: head, lastSeq: lastSeq, fault: fault, logger: logger)
            logger.info("pool imported", metadata: [
                "pool": "\(superblock.name)", "uuid": "\(superblock.uuid)", "replicas": "\(meta.replicas.count)",
            ])
            return Pool(core: core, group: group, threadPool: threadPool)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    // MARK: Export, destroy

    /// Closes the pool, keeping its data: stops new I/O and changes, waits for I/O and
    /// commits in flight, flushes and closes the device, stops the pool's threads. Idempotent.
    public func export() async {
        guard !shutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await quiesce()
        _ = try? await core.backing.flush(on: core.loop).get()
        await finish()
    }

    /// Destroys the pool: refused while it holds replicas unless `force`. Wipes both
    /// superblocks (the data area is left as is), fsyncs, closes the device and, if the pool
    /// created its backing file, unlinks it.
    public func destroy(force: Bool) async throws(PoolError) {
        let count = core.state.withLock { $0.meta.replicas.count }
        if count > 0 && !force {
            throw .failedPrecondition("pool '\(core.name)' holds \(count) replica(s): destroy them first, or force")
        }
        guard !shutDown.exchange(true, ordering: .acquiringAndReleasing) else {
            throw .failedPrecondition("pool '\(core.name)' has already been exported or destroyed")
        }
        await quiesce()
        let size = UInt64(core.backing.blockSize)
        var failure: PoolError?
        do throws(PoolError) {
            try await core.backing.writeZeroBlocks(lba: 0, blocks: 8192 / size, on: core.loop)
        } catch {
            failure = error
        }
        await finish()
        if let failure { throw failure }
        if core.createdFile {
            var info = stat()
            if stat(core.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, unlink(core.path) != 0 {
                throw .io("pool '\(core.name)' destroyed, but unlinking '\(core.path)' failed: \(String(cString: strerror(errno)))")
            }
        }
        core.logger.info("pool destroyed", metadata: ["pool": "\(core.name)", "uuid": "\(core.uuid)"])
    }

    /// Closes every replica (waiting for their I/O) and waits for the journal to go idle.
    private func quiesce() async {
        let volumes = core.state.withLock { Array($0.volumes.values) }
        for volume in volumes { _ = try? await volume.close(on: core.loop).get() }
        _ = try? await core.sync().get()
        core.state.withLock { s in
            s.closed = true
            s.volumes = [:]
        }
    }

    /// Closes the device and stops the pool's threads.
    private func finish() async {
        try? core.backing.close()
        try? await group.shutdownGracefully()
        if let threadPool { try? await threadPool.shutdownGracefully() }
    }

    private func checkOpen() throws(PoolError) {
        if shutDown.load(ordering: .acquiring) {
            throw .failedPrecondition("pool '\(core.name)' has been exported or destroyed")
        }
    }

    // MARK: Info

    /// The pool's identity, state and space accounting.
    public var info: PoolInfo {
        core.state.withLock { s in
            PoolInfo(
                name: core.name, uuid: core.uuid, path: core.path,
                state: s.fault.map { .faulted(reason: $0) } ?? .online,
                capacityBytes: UInt64(core.extentCount) * core.extentSize,
                usedBytes: UInt64(s.meta.usedCount) * core.extentSize,
                freeBytes: UInt64(s.meta.free.count) * core.extentSize,
                committedBytes: s.meta.replicas.values.reduce(0) { $0 + $1.size },
                blockSize: core.blockSize, extentSize: core.extentSize, replicaCount: s.meta.replicas.count,
                journalCommits: s.commits)
        }
    }

    private func info(_ r: ReplicaMetadata) -> ReplicaInfo {
        ReplicaInfo(uuid: r.uuid, name: r.name, sizeBytes: r.size, thin: r.thin, allocatedBytes: UInt64(r.mappedCount) * core.extentSize,
                    shared: r.shared, allowedHosts: r.allowedHosts)
    }

    /// Every replica, by name.
    public func replicas() -> [ReplicaInfo] {
        core.state.withLock { s in s.meta.replicas.values.map(info) }.sorted { ($0.name, $0.uuid.uuidString) < ($1.name, $1.uuid.uuidString) }
    }

    /// One replica.
    public func replica(uuid: UUID) throws(PoolError) -> ReplicaInfo {
        guard let r = core.state.withLock({ $0.meta.replicas[uuid] }) else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
        return info(r)
    }

    // MARK: Replicas

    /// The checks of a create; returns the existing replica for an identical repeat.
    private func checkCreate(_ s: CoreState, uuid: UUID, name: String, size: UInt64, thin: Bool, needFree: Bool)
        throws(PoolError) -> ReplicaMetadata?
    {
        try s.checkWritable()
        if let r = s.meta.replicas[uuid] {
            if r.name == name && r.size == size && r.thin == thin { return r }
            throw .alreadyExists("replica \(uuid) already exists as '\(r.name)' (\(r.size) bytes, \(r.thin ? "thin" : "thick")); "
                + "requested '\(name)' (\(size) bytes, \(thin ? "thin" : "thick"))")
        }
        if let other = s.meta.replicas.values.first(where: { $0.name == name }) {
            throw .alreadyExists("replica name '\(name)' is already used by replica \(other.uuid)")
        }
        guard size > 0, size % UInt64(core.blockSize) == 0 else {
            throw .invalidArgument("replica \(uuid) size \(size) bytes: must be a non-zero multiple of the block size \(core.blockSize)")
        }
        let capacity = UInt64(core.extentCount) * core.extentSize
        guard size <= capacity else {
            throw .outOfSpace("replica \(uuid) of \(size) bytes exceeds pool '\(core.name)' capacity of \(capacity) bytes")
        }
        let extents = s.meta.logicalExtents(size)
        if !thin && needFree && extents > s.meta.free.count {
            throw .outOfSpace("thick replica \(uuid) of \(size) bytes needs \(extents) extents; pool '\(core.name)' has \(s.meta.free.count) free")
        }
        let entry = ReplicaMetadata(uuid: uuid, name: name, size: size, thin: thin, map: [])
        let needed = s.meta.checkpointBytesNeeded + entry.tableBytes
        guard needed <= Int(s.superblock.checkpointSize) else {
            throw .outOfSpace("pool '\(core.name)' metadata is full (\(needed) bytes needed, checkpoint slot holds \(s.superblock.checkpointSize))")
        }
        return nil
    }

    /// Creates a replica of `sizeBytes` (a multiple of the block size, at most the pool's
    /// capacity). Thin: extents are allocated on first write. Thick: every extent is allocated
    /// and zeroed now. Returns when the creation is durable. Repeating an identical create
    /// returns the existing replica; the same UUID with other parameters, or another replica's
    /// name, is ``PoolError/alreadyExists(_:)``.
    public func createReplica(uuid: UUID, name: String, sizeBytes: UInt64, thin: Bool) async throws(PoolError) -> ReplicaInfo {
        try checkOpen()
        let nameBytes = name.utf8.count
        guard nameBytes >= 1, nameBytes <= 255 else {
            throw .invalidArgument("replica \(uuid) name '\(name)': must be 1 to 255 bytes of UTF-8")
        }
        return try await serializer.run(uuid) { () async throws(PoolError) -> ReplicaInfo in
            let existing = try core.state.withLock { (s: inout CoreState) throws(PoolError) -> ReplicaMetadata? in
                try checkCreate(s, uuid: uuid, name: name, size: sizeBytes, thin: thin, needFree: true)
            }
            if let existing {
                try await core.sync().poolValue("waiting for replica \(uuid)")
                return info(existing)
            }
            var extents: [UInt32] = []
            if !thin {
                let count = Int((sizeBytes + core.extentSize - 1) / core.extentSize)
                guard let taken = core.reserve(count) else {
                    throw .outOfSpace("thick replica \(uuid) of \(sizeBytes) bytes needs \(count) extents; pool '\(core.name)' has fewer free")
                }
                extents = taken
                do throws(PoolError) {
                    try await core.zero(extents: extents).poolValue("zeroing the extents of replica \(uuid)")
                } catch {
                    core.release(extents)
                    throw error
                }
            }
            let durable: EventLoopFuture<Void>
            do throws(PoolError) {
                durable = try core.submit { (s: inout CoreState) throws(PoolError) -> (JournalRecord, Void) in
                    if try checkCreate(s, uuid: uuid, name: name, size: sizeBytes, thin: thin, needFree: false) != nil {
                        throw .alreadyExists("replica \(uuid) was created concurrently")
                    }
                    var map = [UInt32](repeating: 0, count: s.meta.logicalExtents(sizeBytes))
                    for (i, e) in extents.enumerated() { map[i] = e + 1 }
                    let replica = ReplicaMetadata(uuid: uuid, name: name, size: sizeBytes, thin: thin, map: map)
                    s.volumes[uuid] = ReplicaVolume(core: core, replica: replica, readOnly: false)
                    return (.replicaCreate(uuid: uuid, name: name, size: sizeBytes, thin: thin, extents: extents), ())
                }.durable
            } catch {
                core.release(extents)
                throw error
            }
            try await durable.poolValue("creating replica \(uuid)")
            return try replica(uuid: uuid)
        }
    }

    /// Destroys a replica: closes its devices, waits for their I/O, journals the destroy; its
    /// extents return to the free set once that is durable.
    public func destroyReplica(uuid: UUID) async throws(PoolError) {
        try checkOpen()
        try await serializer.run(uuid) { () async throws(PoolError) in
            let volume = try core.state.withLock { (s: inout CoreState) throws(PoolError) -> ReplicaVolume? in
                try s.checkWritable()
                guard s.meta.replicas[uuid] != nil else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
                return s.volumes[uuid]
            }
            if let volume { _ = try? await volume.close(on: core.loop).get() }
            let (durable, freed, _) = try core.submit { (s: inout CoreState) throws(PoolError) -> (JournalRecord, Void) in
                guard s.meta.replicas[uuid] != nil else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
                s.volumes[uuid] = nil
                return (.replicaDestroy(uuid: uuid), ())
            }
            try await durable.poolValue("destroying replica \(uuid)")
            core.release(freed)
        }
    }

    /// Grows a replica to `sizeBytes` (a thick one gets zeroed extents for the new part).
    /// Shrinking is ``PoolError/invalidArgument(_:)``; the same size returns the replica.
    public func resizeReplica(uuid: UUID, sizeBytes: UInt64) async throws(PoolError) -> ReplicaInfo {
        try checkOpen()
        return try await serializer.run(uuid) { () async throws(PoolError) -> ReplicaInfo in
            func check(_ s: CoreState, needFree: Bool) throws(PoolError) -> (ReplicaMetadata, Int) {
                try s.checkWritable()
                guard let r = s.meta.replicas[uuid] else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
                guard sizeBytes > 0, sizeBytes % UInt64(core.blockSize) == 0 else {
                    throw .invalidArgument("replica \(uuid) size \(sizeBytes) bytes: must be a non-zero multiple of the block size \(core.blockSize)")
                }
                guard sizeBytes >= r.size else {
                    throw .invalidArgument("replica \(uuid) cannot shrink from \(r.size) to \(sizeBytes) bytes (resize only grows)")
                }
                let capacity = UInt64(core.extentCount) * core.extentSize
                guard sizeBytes <= capacity else {
                    throw .outOfSpace("replica \(uuid) of \(sizeBytes) bytes exceeds pool '\(core.name)' capacity of \(capacity) bytes")
                }
                let added = s.meta.logicalExtents(sizeBytes) - r.map.count
                if !r.thin && needFree && added > s.meta.free.count {
                    throw .outOfSpace("growing thick replica \(uuid) to \(sizeBytes) bytes needs \(added) more extents; pool '\(core.name)' has \(s.meta.free.count) free")
                }
                return (r, added)
            }
            let (current, added) = try core.state.withLock { (s: inout CoreState) throws(PoolError) in try check(s, needFree: true) }
            if current.size == sizeBytes {
                try await core.sync().poolValue("waiting for replica \(uuid)")
                return info(current)
            }
            var extents: [UInt32] = []
            if !current.thin && added > 0 {
                guard let taken = core.reserve(added) else {
                    throw .outOfSpace("growing thick replica \(uuid) needs \(added) more extents; pool '\(core.name)' has fewer free")
                }
                extents = taken
                do throws(PoolError) {
                    try await core.zero(extents: extents).poolValue("zeroing new extents of replica \(uuid)")
                } catch {
                    core.release(extents)
                    throw error
                }
            }
            let durable: EventLoopFuture<Void>
            do throws(PoolError) {
                durable = try core.submit { (s: inout CoreState) throws(PoolError) -> (JournalRecord, Void) in
                    let (r, again) = try check(s, needFree: false)
                    guard r.size == current.size, again == added else { throw .failedPrecondition("replica \(uuid) changed during resize") }
                    return (.replicaResize(uuid: uuid, size: sizeBytes, extents: extents), ())
                }.durable
            } catch {
                core.release(extents)
                throw error
            }
            try await durable.poolValue("resizing replica \(uuid)")
            let grown: (ReplicaVolume?, [UInt32]) = core.state.withLock { s in
                let map = s.meta.replicas[uuid]?.map ?? []
                return (s.volumes[uuid], Array(map.dropFirst(current.map.count)))
            }
            grown.0?.grow(appending: grown.1, size: sizeBytes)
            return try replica(uuid: uuid)
        }
    }

    /// Records whether the replica is shared and which hosts may connect (durable on return).
    public func setShare(uuid: UUID, shared: Bool, allowedHosts: [String]) async throws(PoolError) -> ReplicaInfo {
        try checkOpen()
        guard allowedHosts.count <= 256 else {
            throw .invalidArgument("replica \(uuid): \(allowedHosts.count) allowed hosts, at most 256")
        }
        for host in allowedHosts where host.utf8.isEmpty || host.utf8.count > 223 {
            throw .invalidArgument("replica \(uuid): allowed host '\(host)' must be an NQN of 1 to 223 bytes")
        }
        return try await change(uuid, what: "sharing replica") { r throws(PoolError) in
            r.shared == shared && r.allowedHosts == allowedHosts ? nil : .replicaShare(uuid: uuid, shared: shared, allowedHosts: allowedHosts)
        }
    }

    /// Stores the replica's NVMe reservation / PTPL state (an opaque blob, at most 64 KiB);
    /// durable when this returns.
    public func saveReservationState(uuid: UUID, blob: [UInt8]) async throws(PoolError) {
        try checkOpen()
        guard blob.count <= 64 << 10 else {
            throw .invalidArgument("replica \(uuid): reservation state of \(blob.count) bytes exceeds 65536")
        }
        _ = try await change(uuid, what: "saving the reservation state of replica") { _ throws(PoolError) in
            .reservationState(uuid: uuid, blob: blob)
        }
    }

    /// The replica's last saved reservation state; nil if none was saved (or no such replica).
    public func reservationState(uuid: UUID) -> [UInt8]? {
        core.state.withLock { $0.meta.replicas[uuid]?.reservation }
    }

    /// Stores opaque per-replica properties (at most 64 KiB); durable when this returns.
    public func setProperties(uuid: UUID, blob: [UInt8]) async throws(PoolError) {
        try checkOpen()
        guard blob.count <= 64 << 10 else {
            throw .invalidArgument("replica \(uuid): properties of \(blob.count) bytes exceed 65536")
        }
        _ = try await change(uuid, what: "saving the properties of replica") { _ throws(PoolError) in
            .replicaProperties(uuid: uuid, blob: blob)
        }
    }

    /// The replica's properties blob, if any was set.
    public func properties(uuid: UUID) -> [UInt8]? {
        core.state.withLock { $0.meta.replicas[uuid]?.properties }
    }

    /// Journals the record `make` builds from the replica (nil: nothing to change).
    private func change(_ uuid: UUID, what: String, _ make: @escaping (ReplicaMetadata) throws(PoolError) -> JournalRecord?)
        async throws(PoolError) -> ReplicaInfo
    {
        try await serializer.run(uuid) { () async throws(PoolError) -> ReplicaInfo in
            let (durable, _, changed) = try core.submitIfNeeded { (s: inout CoreState) throws(PoolError) -> JournalRecord? in
                guard let r = s.meta.replicas[uuid] else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
                let record = try make(r)
                if let record {
                    let growth = record.encodePayload().count
                    guard s.meta.checkpointBytesNeeded + growth <= Int(s.superblock.checkpointSize) else {
                        throw .outOfSpace("pool '\(core.name)' metadata is full")
                    }
                }
                return record
            }
            _ = changed
            try await durable.poolValue("\(what) \(uuid)")
            return try replica(uuid: uuid)
        }
    }

    /// The byte ranges of the replica that are allocated (durably mapped extents, the last
    /// one clipped to the size), merged where adjacent; everything else reads as zeroes, so a
    /// rebuild can skip it.
    public func allocatedRanges(uuid: UUID) throws(PoolError) -> [ByteRange] {
        let (volume, size) = core.state.withLock { s in (s.volumes[uuid], s.meta.replicas[uuid]?.size) }
        guard let volume, let size else { throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'") }
        var ranges: [ByteRange] = []
        for logical in volume.allocatedExtents() {
            let start = UInt64(logical) * core.extentSize
            let end = min(start + core.extentSize, size)
            if let last = ranges.last, last.end == start {
                ranges[ranges.count - 1].length = end - last.offset
            } else {
                ranges.append(ByteRange(offset: start, length: end - start))
            }
        }
        return ranges
    }

    /// A block device over the replica (a new handle each call), for the NVMe target.
    public func device(uuid: UUID) throws(PoolError) -> ReplicaDevice {
        try checkOpen()
        guard let volume = core.state.withLock({ $0.volumes[uuid] }) else {
            throw .notFound("replica \(uuid) does not exist in pool '\(core.name)'")
        }
        return ReplicaDevice(volume: volume)
    }
}

extension PoolCore {
    /// ``submit(_:)`` for a change that may turn out to be a no-op (then it only waits for
    /// what is already queued).
    func submitIfNeeded(_ body: (inout CoreState) throws(PoolError) -> JournalRecord?) throws(PoolError)
        -> (durable: EventLoopFuture<Void>, freed: [UInt32], changed: Bool)
    {
        var noop = false
        do {
            let result = try submit { (s: inout CoreState) throws(PoolError) -> (JournalRecord, Void) in
                guard let record = try body(&s) else {
                    noop = true
                    throw .failedPrecondition("no change")
                }
                return (record, ())
            }
            return (result.durable, result.freed, true)
        } catch where noop {
            return (sync(), [], false)
        }
    }
}

extension BlockDevice {
    /// Writes `blocks` zero blocks at `lba` (wiping labels), durably.
    func writeZeroBlocks(lba: UInt64, blocks: UInt64, on loop: any EventLoop) async throws(PoolError) {
        var zeroes = ByteBufferAllocator().buffer(capacity: Int(blocks) * blockSize)
        zeroes.writeRepeatingByte(0, count: Int(blocks) * blockSize)
        try await write(lba: lba, data: zeroes, fua: false, on: loop).poolValue("wiping the superblocks")
        try await flush(on: loop).poolValue("flushing the wiped superblocks")
    }
}

extension EventLoopFuture where Value: Sendable {
    /// The value, with any failure as a ``PoolError`` (others become ``PoolError/io(_:)``).
    func poolValue(_ what: String) async throws(PoolError) -> Value {
        do {
            return try await get()
        } catch let error as PoolError {
            throw error
        } catch let error as BlockDeviceError where error == .noSpace {
            throw .outOfSpace("\(what): \(error)")
        } catch {
            throw .io("\(what): \(error)")
        }
    }
}
