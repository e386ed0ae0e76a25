import NIOCore
import NIOPosix
import Storage
import Testing

@Suite("MemoryBlockDevice")
struct MemoryBlockDeviceTests {
    static let blockSizes = [512, 4096]
    static let fourMiB: UInt64 = 4 << 20

    private func withDevice(
        blockSize: Int,
        bytes: UInt64 = fourMiB,
        _ body: (MemoryBlockDevice, any EventLoop) async throws -> Void
    ) async throws {
        try await IOEnvironment.with { environment in
            let device = MemoryBlockDevice(blockSize: blockSize, blockCount: bytes / UInt64(blockSize))
            try await body(device, environment.loop)
        }
    }

    @Test("reads back what was written", arguments: blockSizes)
    func readAfterWrite(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, loop in
            #expect(device.blockSize == blockSize)
            #expect(device.blockCount == Self.fourMiB / UInt64(blockSize))
            #expect(device.hasVolatileWriteCache == false)
            try await BlockDeviceScenarios.readAfterWrite(device, on: loop)
        }
    }

    @Test("unwritten ranges read as zeroes", arguments: blockSizes)
    func unwrittenReadsZero(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, loop in
            try await BlockDeviceScenarios.unwrittenReadsZero(device, on: loop)
        }
    }

    @Test("out-of-range requests are rejected", arguments: blockSizes)
    func outOfRange(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, loop in
            try await BlockDeviceScenarios.rejectsOutOfRange(device, on: loop)
        }
    }

    @Test("misaligned writes are rejected", arguments: blockSizes)
    func misaligned(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, loop in
            try await BlockDeviceScenarios.rejectsMisaligned(device, on: loop)
        }
    }

    @Test("write zeroes and deallocate read back zeroes", arguments: blockSizes)
    func zeroing(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, loop in
            try await BlockDeviceScenarios.zeroingReadsZero(device, on: loop)
        }
    }

    @Test("every call fails after close")
    func closed() async throws {
        try await withDevice(blockSize: 4096) { device, loop in
            try await BlockDeviceScenarios.rejectsAfterClose(device, on: loop)
            #expect(device.allocatedBytes == 0)
        }
    }

    @Test("a 1 GiB device allocates nothing until written, and frees deallocated chunks")
    func lazyAllocation() async throws {
        try await withDevice(blockSize: 4096, bytes: 1 << 30) { device, loop in
            #expect(device.blockCount == 262_144)
            #expect(device.allocatedBytes == 0)
            let tail = try await device.read(lba: device.blockCount - 256, blocks: 256, on: loop).get()
            #expect(TestPattern.isZero(tail))
            #expect(device.allocatedBytes == 0)

            try await device.write(lba: 1000, data: TestPattern.buffer(blocks: 1, blockSize: 4096, seed: 1), fua: false, on: loop).get()
            #expect(device.allocatedBytes == MemoryBlockDevice.maximumChunkSize)

            // Zeroing part of the chunk keeps it; deallocating all of it frees it.
            try await device.writeZeroes(lba: 1000, blocks: 1, deallocate: false, fua: false, on: loop).get()
            #expect(device.allocatedBytes == MemoryBlockDevice.maximumChunkSize)
            let blocksPerChunk = UInt64(MemoryBlockDevice.maximumChunkSize / 4096)
            try await device.deallocate(lba: 1000 / blocksPerChunk * blocksPerChunk, blocks: blocksPerChunk, on: loop).get()
            #expect(device.allocatedBytes == 0)

            // Deallocating the whole device visits only the chunks that exist.
            try await device.write(lba: 5, data: TestPattern.buffer(blocks: 1, blockSize: 4096, seed: 1), fua: false, on: loop).get()
            try await device.deallocate(lba: 0, blocks: device.blockCount, on: loop).get()
            #expect(device.allocatedBytes == 0)
        }
    }

    @Test("data already read never changes when the blocks are overwritten (zero-copy reads)")
    func readsAreSnapshots() async throws {
        try await withDevice(blockSize: 4096, bytes: 1 << 24) { device, loop in
            let unwritten = try await device.read(lba: 10, blocks: 2, on: loop).get()
            let first = TestPattern.buffer(blocks: 2, blockSize: 4096, seed: 1)
            try await device.write(lba: 10, data: first, fua: false, on: loop).get()
            #expect(TestPattern.isZero(unwritten))
            let before = try await device.read(lba: 10, blocks: 2, on: loop).get()
            // A read spanning two chunks (copied) and one inside a chunk (sliced) both stay put.
            let chunkBlocks = UInt64(MemoryBlockDevice.maximumChunkSize / 4096)
            let spanning = try await device.read(lba: chunkBlocks - 1, blocks: 2, on: loop).get()
            let second = TestPattern.buffer(blocks: 2, blockSize: 4096, seed: 2)
            try await device.write(lba: 10, data: second, fua: false, on: loop).get()
            try await device.write(lba: chunkBlocks - 1, data: second, fua: false, on: loop).get()
            #expect(before == first)
            #expect(TestPattern.isZero(spanning))
            #expect(try await device.read(lba: 10, blocks: 2, on: loop).get() == second)
            #expect(try await device.read(lba: chunkBlocks - 1, blocks: 2, on: loop).get() == second)
        }
    }

    @Test("a device smaller than a chunk allocates only its own size")
    func smallDevice() async throws {
        try await withDevice(blockSize: 512, bytes: 8 * 512) { device, loop in
            try await device.write(lba: 7, data: TestPattern.buffer(blocks: 1, blockSize: 512, seed: 2), fua: false, on: loop).get()
            #expect(device.allocatedBytes == 8 * 512)
            #expect(try await device.read(lba: 7, blocks: 1, on: loop).get() == TestPattern.buffer(blocks: 1, blockSize: 512, seed: 2))
        }
    }
}
