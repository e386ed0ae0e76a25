import Foundation
import NIOCore
import Storage
@testable import StoragePool
import Testing

@Suite("ReplicaDevice AllocatedRanges (AllocationReporting)")
struct ReplicaAllocatedRangesTests {
    @Test("the durably mapped extents in blocks, merged, the last clipped to the size; the same map as Pool.allocatedRanges")
    func allocatedBlockRanges() async throws {
        try await withFilePool(options: PoolCreateOptions(name: "ranges", extentSize: 64 << 10)) { pool, _ in
            let r = UUID()
            // 64 KiB extents = 16 blocks of 4 KiB; the size ends one block into extent 64.
            _ = try await pool.createReplica(uuid: r, name: "r", sizeBytes: (4 << 20) + 4096, thin: true)
            let device = try pool.device(uuid: r)
            #expect(try device.allocatedBlockRanges() == [])
            #expect(try device.reportedAllocatedBlockRanges() == [])
            try await device.writeBytes(Pattern.blocks(tag: 1, lba: 10, count: 30, size: 4096), at: 10, fua: true)  // extents 0–2
            try await device.writeBytes(Pattern.blocks(tag: 2, lba: 160, count: 1, size: 4096), at: 160, fua: true)  // extent 10
            try await device.writeBytes(Pattern.blocks(tag: 3, lba: 1024, count: 1, size: 4096), at: 1024, fua: true)  // extent 64 (1 block)
            let ranges = try device.allocatedBlockRanges()
            #expect(ranges == [0..<48, 160..<176, 1024..<1025])
            let bytes = try pool.allocatedRanges(uuid: r).map { $0.offset / 4096..<$0.end / 4096 }
            #expect(ranges == bytes)
            try device.close()
            #expect(throws: BlockDeviceError.closed) { try device.allocatedBlockRanges() }
        }
    }
}
