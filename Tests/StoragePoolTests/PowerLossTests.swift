import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

/// What a replica must look like after a crash: its metadata and, per block, the tags its
/// content may show (0 = zeroes). An acknowledged write narrows a block to its tag; a write that
/// was in flight or failed adds its tag as a possibility.
struct ReplicaModel: Equatable {
    var name: String
    var size: UInt64
    var thin: Bool
    var shared = false
    var hosts: [String] = []
    var reservation: [UInt8]?
    var blocks: [UInt64: Set<UInt64>] = [:]

    func matches(_ info: ReplicaInfo, reservation actual: [UInt8]?) -> Bool {
        info.name == name && info.sizeBytes == size && info.thin == thin && info.shared == shared && info.allowedHosts == hosts
            && actual == reservation
    }
}

/// A seeded workload against a pool on a ``VolatileCacheBlockDevice``, with an oracle.
struct PowerLossWorkload {
    static let blockSize = 4096
    static let extentSize: UInt64 = 64 << 10
    var rng: SplitMix64
    var model: [UUID: ReplicaModel] = [:]
    var nextTag: UInt64 = 1
    var nextName = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    /// One operation: what it does to the model if it takes effect, and how to run it.
    struct Op {
        var uuid: UUID
        var after: ReplicaModel?  // nil: destroyed
        var isWrite = false
        var run: @Sendable (Pool) async throws -> Void
        var describe: String
    }

    /// Up to 4 ops on distinct replicas (or new ones).
    mutating func step() -> [Op] {
        var ops: [Op] = []
        var used: Set<UUID> = []
        for _ in 0..<(1 + random(4)) {
            let existing = model.keys.sorted { $0.uuidString < $1.uuidString }.filter { !used.contains($0) }
            let choice = existing.isEmpty ? 0 : random(10)
            if choice <= 1 || existing.isEmpty {
                let uuid = UUID(uuid: (UInt8(truncatingIfNeeded: rng.next()), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                       UInt8(truncatingIfNeeded: nextName >> 8), UInt8(truncatingIfNeeded: nextName)))
                let thin = random(3) != 0
                let size = UInt64(1 + random(thin ? 12 : 4)) * Self.extentSize - UInt64(random(2) * Self.blockSize)
                let name = "r\(nextName)"
                nextName += 1
                used.insert(uuid)
                ops.append(Op(uuid: uuid, after: ReplicaModel(name: name, size: size, thin: thin),
                              run: { _ = try await $0.createReplica(uuid: uuid, name: name, sizeBytes: size, thin: thin) },
                              describe: "create \(name) \(size) thin=\(thin)"))
                continue
            }
            let uuid = existing[random(existing.count)]
            used.insert(uuid)
            var m = model[uuid]!
            switch choice {
            case 2:
                ops.append(Op(uuid: uuid, after: nil, run: { try await $0.destroyReplica(uuid: uuid) }, describe: "destroy \(m.name)"))
            case 3:
                let size = m.size + UInt64(random(3)) * Self.extentSize + UInt64(random(2) * Self.blockSize)
                m.size = size
                ops.append(Op(uuid: uuid, after: m, run: { _ = try await $0.resizeReplica(uuid: uuid, sizeBytes: size) },
                              describe: "resize \(m.name) \(size)"))
            case 4:
                let hosts = (0..<random(3)).map { "nqn.2026-11.io.halyard:host:\($0)-\(nextTag)" }
                let shared = random(2) == 0
                nextTag += 1
                m.shared = shared
                m.hosts = hosts
                ops.append(Op(uuid: uuid, after: m, run: { _ = try await $0.setShare(uuid: uuid, shared: shared, allowedHosts: hosts) },
                              describe: "share \(m.name)"))
            case 5:
                let blob = (0..<random(200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                m.reservation = blob
                ops.append(Op(uuid: uuid, after: m, run: { try await $0.saveReservationState(uuid: uuid, blob: blob) },
                              describe: "reservation \(m.name) \(blob.count) bytes"))
            default:
                let sizeBlocks = Int(m.size / UInt64(Self.blockSize))
                let count = min(1 + random(24), sizeBlocks)
                let lba = UInt64(random(sizeBlocks - count + 1))
                let tag = nextTag
                nextTag += 1
                let fua = random(2) == 0
                for b in lba..<(lba + UInt64(count)) { m.blocks[b] = [tag] }
                let data = Pattern.blocks(tag: tag, lba: lba, count: count, size: Self.blockSize)
                ops.append(Op(uuid: uuid, after: m, isWrite: true, run: { pool in
                    let device = try pool.device(uuid: uuid)
                    try await device.writeBytes(data, at: lba, fua: fua)
                    if !fua { try await device.flushNow() }
                }, describe: "write \(m.name) lba \(lba) +\(count) tag \(tag) fua=\(fua)"))
            }
        }
        return ops
    }

    /// Folds an op's outcome into the model. Returns the replica's possible states (for a
    /// crash check) when the outcome is unknown.
    mutating func settle(_ op: Op, acked: Bool) {
        let before = model[op.uuid]
        if acked {
            model[op.uuid] = op.after
            return
        }
        // Not acknowledged: a write may have landed (block by block); anything else stays
        // ambiguous until the crash check picks the state the pool shows.
        if op.isWrite, var m = before, let after = op.after {
            for (block, tags) in after.blocks where m.blocks[block] != tags {
                m.blocks[block, default: [0]].formUnion(tags)
            }
            model[op.uuid] = m
        }
    }
}

@Suite("Pool crash safety: power loss (volatile cache dropped or torn)")
struct PowerLossTests {
    /// Reads the whole replica and checks each 512-byte sector against its block's candidates.
    static func checkData(_ pool: Pool, _ uuid: UUID, _ model: ReplicaModel, context: String) async throws {
        let device = try pool.device(uuid: uuid)
        let blocks = Int(model.size / UInt64(PowerLossWorkload.blockSize))
        let bytes = try await device.readBytes(at: 0, blocks: UInt32(blocks))
        for block in 0..<blocks {
            let candidates = model.blocks[UInt64(block)] ?? [0]
            let actual = bytes[(block * 4096)..<((block + 1) * 4096)]
            let options = candidates.map { Pattern.block(tag: $0, lba: UInt64(block), size: 4096) }
            for sector in 0..<8 {
                let range = (sector * 512)..<((sector + 1) * 512)
                let got = Array(actual[(actual.startIndex + range.lowerBound)..<(actual.startIndex + range.upperBound)])
                if !options.contains(where: { Array($0[range]) == got }) {
                    Issue.record("\(context): replica \(model.name) block \(block) sector \(sector) matches none of tags \(candidates.sorted())")
                    return
                }
            }
        }
    }

    /// Import after a crash and compare with the oracle; returns the reconciled model.
    static func verify(_ pool: Pool, _ workload: inout PowerLossWorkload, inFlight: [PowerLossWorkload.Op], context: String) async throws {
        let info = pool.info
        #expect(info.state == .online, "\(context): \(info.state)")
        #expect(info.freeBytes + info.usedBytes == info.capacityBytes, "\(context): free + used ≠ capacity (leak)")
        let replicas = pool.replicas()
        #expect(info.usedBytes == replicas.reduce(0) { $0 + $1.allocatedBytes }, "\(context): used ≠ Σ allocated")
        let unknown = Dictionary(inFlight.map { ($0.uuid, $0) }, uniquingKeysWith: { a, _ in a })
        var seen: Set<UUID> = []
        for replica in replicas {
            seen.insert(replica.uuid)
            let reservation = pool.reservationState(uuid: replica.uuid)
            var candidates: [ReplicaModel] = []
            if let m = workload.model[replica.uuid] { candidates.append(m) }
            if let op = unknown[replica.uuid], var after = op.after {
                if let before = workload.model[replica.uuid] { after.blocks = before.blocks }  // data: the settled candidates
                candidates.append(after)
            }
            guard let match = candidates.first(where: { $0.matches(replica, reservation: reservation) }) else {
                Issue.record("\(context): replica \(replica.name) \(replica) matches no acknowledged state \(candidates)")
                continue
            }
            workload.model[replica.uuid] = match
            if !match.thin {
                #expect(replica.allocatedBytes == (match.size + PowerLossWorkload.extentSize - 1) / PowerLossWorkload.extentSize * PowerLossWorkload.extentSize)
            }
            let ranges = try pool.allocatedRanges(uuid: replica.uuid)
            #expect(ranges.reduce(0) { $0 + ($1.length + PowerLossWorkload.extentSize - 1) / PowerLossWorkload.extentSize } * PowerLossWorkload.extentSize
                    == replica.allocatedBytes)
            try await checkData(pool, replica.uuid, match, context: context)
        }
        for (uuid, m) in workload.model where !seen.contains(uuid) {
            if let op = unknown[uuid], op.after == nil {
                workload.model[uuid] = nil  // an unacknowledged destroy took effect
            } else {
                Issue.record("\(context): acknowledged replica \(m.name) (\(uuid)) is missing")
                workload.model[uuid] = nil
            }
        }
    }

    @Test("seeded op sequences, crash mid-commit, import: acked changes present, nothing leaked", arguments: 0..<48)
    func powerLoss(seed: UInt64) async throws {
        let memory = MemoryBlockDevice(blockSize: 512, blockCount: (8 << 20) / 512)
        var workload = PowerLossWorkload(seed: seed)
        var device = VolatileCacheBlockDevice(durable: memory, loop: testLoops.next())
        var pool = try await Pool.create(device: device, path: "memory:\(seed)", options: PoolCreateOptions(
            name: "crash", blockSize: 4096, extentSize: PowerLossWorkload.extentSize, journalSize: 64 << 10), logger: quietLogger)
        for round in 0..<3 {
            let steps = 4 + workload.random(10)
            for step in 0...steps {
                let ops = workload.step()
                let crashing = step == steps
                if crashing { device.crash(atOperation: 1 + workload.random(12), seed: seed &* 31 &+ UInt64(round)) }
                let results = await withTaskGroup(of: (Int, Bool).self) { group in
                    for (i, op) in ops.enumerated() {
                        let pool = pool
                        group.addTask {
                            do {
                                try await op.run(pool)
                                return (i, true)
                            } catch {
                                return (i, false)
                            }
                        }
                    }
                    var acked = [Bool](repeating: false, count: ops.count)
                    for await (i, ok) in group { acked[i] = ok }
                    return acked
                }
                if !crashing {
                    // Outside the crash step a failure is a refused op (out of space): no effect,
                    // except a write, which may have landed in part.
                    for (op, ok) in zip(ops, results) { workload.settle(op, acked: ok) }
                    continue
                }
                device.crash(seed: seed &+ UInt64(round))
                var unknown: [PowerLossWorkload.Op] = []
                for (op, ok) in zip(ops, results) {
                    workload.settle(op, acked: ok)
                    if !ok { unknown.append(op) }
                }
                await pool.export()
                device = VolatileCacheBlockDevice(durable: memory, loop: testLoops.next())
                pool = try await Pool.import(device: device, path: "memory:\(seed)", logger: quietLogger)
                try await Self.verify(pool, &workload, inFlight: unknown, context: "seed \(seed) round \(round) step \(step)")
            }
        }
        await pool.export()
    }
}

@Suite("Pool crash safety: zero-before-map under power loss")
struct ZeroBeforeMapTests {
    /// Replica A fills extents with data and is destroyed; B's first write reuses one of them.
    /// Power fails at every point of that first write (each device operation, several tear
    /// patterns): after import B's extent holds zeroes or B's data, never A's.
    @Test("a reused extent never shows the old owner's data, whatever part of its allocation persisted",
          arguments: 1...8)
    func crashDuringFirstWrite(operation: Int) async throws {
        for tear in 0..<6 {
            let memory = MemoryBlockDevice(blockSize: 512, blockCount: (8 << 20) / 512)
            let device = VolatileCacheBlockDevice(durable: memory, loop: testLoops.next())
            let pool = try await Pool.create(device: device, path: "memory:zero", options: PoolCreateOptions(
                name: "zero", extentSize: 64 << 10, journalSize: 64 << 10), logger: quietLogger)
            let a = UUID(), b = UUID()
            _ = try await pool.createReplica(uuid: a, name: "a", sizeBytes: 256 << 10, thin: true)
            let da = try pool.device(uuid: a)
            try await da.writeBytes(Pattern.blocks(tag: 1, lba: 0, count: 64, size: 4096), at: 0, fua: true)
            try await pool.destroyReplica(uuid: a)
            _ = try await pool.createReplica(uuid: b, name: "b", sizeBytes: 256 << 10, thin: true)
            let db = try pool.device(uuid: b)
            device.crash(atOperation: operation, seed: UInt64(operation * 100 + tear))
            var acked = (try? await db.writeBytes(Pattern.block(tag: 2, lba: 3, size: 4096), at: 3, fua: false)) != nil
            if acked { acked = (try? await db.flushNow()) != nil }
            device.crash(seed: UInt64(tear))
            await pool.export()
            let again = try await Pool.import(device: VolatileCacheBlockDevice(durable: memory, loop: testLoops.next()), path: "memory:zero",
                                              logger: quietLogger)
            #expect(again.info.state == .online)
            #expect(again.info.freeBytes + again.info.usedBytes == again.info.capacityBytes)
            let bytes = try await again.device(uuid: b).readBytes(at: 0, blocks: 64)
            let mine = Pattern.block(tag: 2, lba: 3, size: 4096)
            for sector in 0..<(64 * 8) {
                let got = bytes[(sector * 512)..<((sector + 1) * 512)]
                let zero = got.allSatisfy { $0 == 0 }
                let ours = sector / 8 == 3 && Array(got) == Array(mine[((sector % 8) * 512)..<((sector % 8 + 1) * 512)])
                // An unacknowledged write may be torn sector by sector; an acknowledged one is whole.
                if !(zero || ours) || (acked && sector / 8 == 3 && !ours) {
                    Issue.record("operation \(operation) tear \(tear): sector \(sector) of b shows neither zeroes nor b's data (acked \(acked))")
                    break
                }
            }
            await again.export()
        }
    }
}
