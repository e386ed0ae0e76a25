#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One replica's metadata: what the checkpoint stores, plus in-memory bookkeeping.
struct ReplicaMetadata: Equatable, Sendable {
    var uuid: UUID
    var name: String
    var size: UInt64
    var thin: Bool
    var shared = false
    var allowedHosts: [String] = []
    var reservation: [UInt8]?
    var properties: [UInt8]?
    /// Logical extent → physical extent + 1 (0 = not allocated); ceil(size / extentSize) entries.
    var map: [UInt32]
    /// How many entries of `map` are allocated.
    var mappedCount = 0

    /// Bytes this replica takes in a checkpoint, apart from its mappings (8 bytes each).
    var tableBytes: Int {
        16 + 2 + name.utf8.count + 8 + 1 + 1 + 2 + allowedHosts.reduce(0) { $0 + 2 + $1.utf8.count }
            + 4 + (reservation?.count ?? 0) + 4 + (properties?.count ?? 0) + 4
    }
}

/// The pool's metadata state machine: the replica table and extent maps, and which physical
/// extents are in use. Journal records and checkpoints are applied to it with the same
/// checks at run time and at import (so a replay that breaks an invariant is caught: fsck).
/// The free list is not part of the durable state: import rebuilds it as all − ∪ maps.
struct PoolMetadata: Sendable {
    let blockSize: Int
    let extentSize: UInt64
    let extentCount: Int
    var replicas: [UUID: ReplicaMetadata] = [:]
    /// Physical extent → in use by some map.
    var inUse: [Bool]
    var usedCount = 0
    /// Free physical extents (a stack; the most recently freed is reused first). Maintained by
    /// the pool: extents leave it when reserved and return when released.
    var free: [UInt32] = []

    init(blockSize: Int, extentSize: UInt64, extentCount: Int) {
        self.blockSize = blockSize
        self.extentSize = extentSize
        self.extentCount = extentCount
        self.inUse = [Bool](repeating: false, count: extentCount)
    }

    /// Logical extents of a replica of `size` bytes.
    func logicalExtents(_ size: UInt64) -> Int {
        // Not (size + extentSize - 1) / extentSize: that overflows for a size near 2^64 read
        // from a damaged (but CRC-valid) checkpoint or journal record.
        Int(size / extentSize + (size % extentSize == 0 ? 0 : 1))
    }

    var capacityBytes: UInt64 { UInt64(extentCount) * extentSize }

    /// Rebuilds the free list from `inUse` (import).
    mutating func rebuildFreeList() {
        free = []
        free.reserveCapacity(extentCount - usedCount)
        for index in stride(from: extentCount - 1, through: 0, by: -1) where !inUse[index] {
            free.append(UInt32(index))
        }
    }

    /// Marks a physical extent used, refusing one out of range or already mapped.
    private mutating func claim(_ physical: UInt32, for uuid: UUID, logical: Int) throws(PoolError) {
        guard Int(physical) < extentCount else {
            throw .faulted("replica \(uuid) logical extent \(logical) maps physical extent \(physical), beyond the pool's \(extentCount) extents")
        }
        guard !inUse[Int(physical)] else {
            throw .faulted("replica \(uuid) logical extent \(logical) maps physical extent \(physical), which is already mapped")
        }
        inUse[Int(physical)] = true
        usedCount += 1
    }

    private func checkSize(_ size: UInt64, _ uuid: UUID) throws(PoolError) {
        guard size > 0, size % UInt64(blockSize) == 0 else {
            throw .invalidArgument("replica \(uuid) size \(size) bytes: must be a non-zero multiple of the block size \(blockSize)")
        }
        guard logicalExtents(size) <= extentCount else {
            throw .outOfSpace("replica \(uuid) size \(size) bytes exceeds the pool capacity \(capacityBytes) bytes")
        }
    }

    private func existing(_ uuid: UUID) throws(PoolError) -> ReplicaMetadata {
        guard let replica = replicas[uuid] else { throw .notFound("replica \(uuid) does not exist") }
        return replica
    }

    /// Applies one record. Returns the physical extents it freed (a destroy): the caller
    /// returns them to the free list once the record is durable (and the replica's I/O drained).
    @discardableResult
    mutating func apply(_ record: JournalRecord) throws(PoolError) -> [UInt32] {
        switch record {
        case .replicaCreate(let uuid, let name, let size, let thin, let extents):
            guard replicas[uuid] == nil else { throw .alreadyExists("replica \(uuid) already exists") }
            try checkSize(size, uuid)
            let count = logicalExtents(size)
            var replica = ReplicaMetadata(uuid: uuid, name: name, size: size, thin: thin, map: [UInt32](repeating: 0, count: count))
            if thin {
                guard extents.isEmpty else { throw .faulted("thin replica \(uuid) created with \(extents.count) extents") }
            } else {
                guard extents.count == count else {
                    throw .faulted("thick replica \(uuid) of \(count) extents created with \(extents.count) extents")
                }
                for (logical, physical) in extents.enumerated() {
                    try claim(physical, for: uuid, logical: logical)
                    replica.map[logical] = physical + 1
                }
                replica.mappedCount = count
            }
            replicas[uuid] = replica
            return []
        case .replicaResize(let uuid, let size, let extents):
            var replica = try existing(uuid)
            try checkSize(size, uuid)
            guard size >= replica.size else {
                throw .invalidArgument("replica \(uuid) cannot shrink from \(replica.size) to \(size) bytes")
            }
            let oldCount = replica.map.count
            let newCount = logicalExtents(size)
            replica.map += [UInt32](repeating: 0, count: newCount - oldCount)
            if replica.thin {
                guard extents.isEmpty else { throw .faulted("thin replica \(uuid) resized with \(extents.count) extents") }
            } else {
                guard extents.count == newCount - oldCount else {
                    throw .faulted("thick replica \(uuid) grown by \(newCount - oldCount) extents with \(extents.count) extents")
                }
                for (i, physical) in extents.enumerated() {
                    try claim(physical, for: uuid, logical: oldCount + i)
                    replica.map[oldCount + i] = physical + 1
                }
                replica.mappedCount += extents.count
            }
            replica.size = size
            replicas[uuid] = replica
            return []
        case .replicaDestroy(let uuid):
            let replica = try existing(uuid)
            var freed: [UInt32] = []
            for entry in replica.map where entry != 0 {
                inUse[Int(entry - 1)] = false
                usedCount -= 1
                freed.append(entry - 1)
            }
            replicas[uuid] = nil
            return freed
        case .extentAlloc(let uuid, let mappings):
            var replica = try existing(uuid)
            for m in mappings {
                guard Int(m.logical) < replica.map.count else {
                    throw .faulted("replica \(uuid): allocation of logical extent \(m.logical) beyond its \(replica.map.count) extents")
                }
                guard replica.map[Int(m.logical)] == 0 else {
                    throw .faulted("replica \(uuid): logical extent \(m.logical) allocated twice")
                }
                try claim(m.physical, for: uuid, logical: Int(m.logical))
                replica.map[Int(m.logical)] = m.physical + 1
                replica.mappedCount += 1
            }
            replicas[uuid] = replica
            return []
        case .replicaShare(let uuid, let shared, let hosts):
            var replica = try existing(uuid)
            replica.shared = shared
            replica.allowedHosts = hosts
            replicas[uuid] = replica
            return []
        case .reservationState(let uuid, let blob):
            var replica = try existing(uuid)
            replica.reservation = blob
            replicas[uuid] = replica
            return []
        case .replicaProperties(let uuid, let blob):
            var replica = try existing(uuid)
            replica.properties = blob
            replicas[uuid] = replica
            return []
        }
    }

    /// Adds a replica read from a checkpoint, claiming its extents (duplicates fail).
    mutating func load(_ replica: ReplicaMetadata) throws(PoolError) {
        guard replicas[replica.uuid] == nil else { throw .faulted("replica \(replica.uuid) appears twice in the checkpoint") }
        for (logical, entry) in replica.map.enumerated() where entry != 0 {
            try claim(entry - 1, for: replica.uuid, logical: logical)
        }
        replicas[replica.uuid] = replica
    }

    /// The import-time consistency check (beyond what apply/load already refused): sizes match
    /// maps, thick replicas are fully mapped, names are unique, the counts add up.
    func check() -> String? {
        var names: [String: UUID] = [:]
        var mapped = 0
        for replica in replicas.values.sorted(by: { $0.uuid.uuidString < $1.uuid.uuidString }) {
            guard replica.size > 0, replica.size % UInt64(blockSize) == 0 else {
                return "replica \(replica.uuid) has size \(replica.size), not a non-zero multiple of \(blockSize)"
            }
            guard replica.map.count == logicalExtents(replica.size) else {
                return "replica \(replica.uuid) of \(replica.size) bytes has \(replica.map.count) extent map entries, expected \(logicalExtents(replica.size))"
            }
            let count = replica.map.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            guard count == replica.mappedCount else { return "replica \(replica.uuid): mapped count \(replica.mappedCount) ≠ \(count)" }
            if !replica.thin && count != replica.map.count {
                return "thick replica \(replica.uuid) has \(replica.map.count - count) unallocated extents"
            }
            if let other = names[replica.name] {
                return "replicas \(other) and \(replica.uuid) share the name '\(replica.name)'"
            }
            names[replica.name] = replica.uuid
            mapped += count
        }
        guard mapped == usedCount, inUse.reduce(0, { $0 + ($1 ? 1 : 0) }) == usedCount else {
            return "extent accounting mismatch: \(mapped) mapped, \(usedCount) marked used"
        }
        return nil
    }

    /// Bytes a checkpoint of this state needs (replica table + 8 bytes per possible mapping).
    var checkpointBytesNeeded: Int {
        Checkpoint.headerSize + 4 + replicas.values.reduce(0) { $0 + $1.tableBytes } + 8 * extentCount
    }
}
