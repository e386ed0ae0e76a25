import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

@Suite("Pool concurrency")
struct ConcurrencyTests {
    @Test("first writes racing destroys, re-creates and resizes: no extent leaks or double use, import agrees")
    func racingAllocations() async throws {
        try await withFilePool(size: 32 << 20, options: PoolCreateOptions(name: "race", extentSize: 64 << 10, journalSize: 64 << 10)) { pool, dir in
            let uuids = (0..<4).map { _ in UUID() }
            for (i, u) in uuids.enumerated() {
                _ = try await pool.createReplica(uuid: u, name: "r\(i)", sizeBytes: 4 << 20, thin: true)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<6 {
                    group.addTask {
                        var rng = SplitMix64(seed: UInt64(writer))
                        for n in 0..<60 {
                            let u = uuids[Int(rng.next() % 4)]
                            guard let device = try? pool.device(uuid: u) else { continue }
                            let lba = rng.next() % 1000
                            // Errors are expected while a replica is destroyed or the pool is full.
                            _ = try? await device.writeBytesViaCallback(Pattern.block(tag: UInt64(writer * 1000 + n + 1), lba: lba, size: 4096), at: lba)
                        }
                    }
                }
                group.addTask {
                    for round in 0..<8 {
                        let u = uuids[round % 4]
                        try await pool.destroyReplica(uuid: u)
                        _ = try await pool.createReplica(uuid: u, name: "r\(round % 4)", sizeBytes: 4 << 20, thin: true)
                        _ = try await pool.resizeReplica(uuid: uuids[(round + 1) % 4], sizeBytes: UInt64(4 + round + 1) << 20)
                    }
                }
                try await group.waitForAll()
            }
            let info = pool.info
            let allocated = pool.replicas().reduce(0) { $0 + $1.allocatedBytes }
            #expect(info.freeBytes + info.usedBytes == info.capacityBytes)
            #expect(info.usedBytes == allocated)
            let ranges = try uuids.map { try pool.allocatedRanges(uuid: $0).reduce(0) { $0 + $1.length } }
            #expect(UInt64(ranges.reduce(0, +)) == allocated)
            await pool.export()
            let again = try await Pool.import(path: dir.file("pool.img"), ioThreads: 1)
            #expect(again.info.state == .online)
            #expect(again.info.usedBytes == info.usedBytes && again.info.freeBytes == info.freeBytes)
            #expect(again.replicas() == pool.replicas())
            await again.export()
        }
    }
}
