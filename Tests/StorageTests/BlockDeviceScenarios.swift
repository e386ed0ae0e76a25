import NIOCore
import Storage
import Testing

/// Behaviour every ``BlockDevice`` must show, run against each implementation.
enum BlockDeviceScenarios {
    /// Writes patterns (including one across a 1 MiB boundary and the last block) and reads
    /// them back, whole and in parts.
    static func readAfterWrite(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let blockSize = device.blockSize
        let perMiB = UInt64((1 << 20) / blockSize)
        let writes: [(lba: UInt64, blocks: Int, seed: UInt8)] = [
            (0, 1, 1),
            (5, 3, 2),
            (perMiB - 2, 4, 3),  // straddles the first 1 MiB boundary
            (device.blockCount - 2, 2, 4),  // the end of the device
        ]
        for (index, write) in writes.enumerated() {
            let data = TestPattern.buffer(blocks: write.blocks, blockSize: blockSize, seed: write.seed)
            try await device.write(lba: write.lba, data: data, fua: index % 2 == 1, on: loop).get()
        }
        try await device.flush(on: loop).get()
        for write in writes {
            let expected = TestPattern.buffer(blocks: write.blocks, blockSize: blockSize, seed: write.seed)
            let read = try await device.read(lba: write.lba, blocks: UInt32(write.blocks), on: loop).get()
            #expect(read.readableBytes == write.blocks * blockSize)
            #expect(read == expected)
        }
        // A read of the second block of the straddling write alone.
        let part = try await device.read(lba: perMiB - 1, blocks: 1, on: loop).get()
        let whole = TestPattern.buffer(blocks: 4, blockSize: blockSize, seed: 3)
        #expect(part == whole.getSlice(at: blockSize, length: blockSize))
        // Overwrite in the middle of an earlier write.
        let overwrite = TestPattern.buffer(blocks: 1, blockSize: blockSize, seed: 9)
        try await device.write(lba: 6, data: overwrite, fua: false, on: loop).get()
        let merged = try await device.read(lba: 5, blocks: 3, on: loop).get()
        var expected = TestPattern.buffer(blocks: 3, blockSize: blockSize, seed: 2)
        expected.setBuffer(overwrite, at: blockSize)
        #expect(merged == expected)
    }

    /// Never-written blocks, including those next to written ones, read as zeroes.
    static func unwrittenReadsZero(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let blockSize = device.blockSize
        let untouched = try await device.read(lba: 0, blocks: 16, on: loop).get()
        #expect(untouched.readableBytes == 16 * blockSize)
        #expect(TestPattern.isZero(untouched))
        let last = try await device.read(lba: device.blockCount - 1, blocks: 1, on: loop).get()
        #expect(TestPattern.isZero(last))

        try await device.write(lba: 20, data: TestPattern.buffer(blocks: 2, blockSize: blockSize, seed: 7), fua: false, on: loop).get()
        let around = try await device.read(lba: 18, blocks: 6, on: loop).get()
        #expect(TestPattern.isZero(around.getSlice(at: 0, length: 2 * blockSize)!))
        #expect(around.getSlice(at: 2 * blockSize, length: 2 * blockSize) == TestPattern.buffer(blocks: 2, blockSize: blockSize, seed: 7))
        #expect(TestPattern.isZero(around.getSlice(at: 4 * blockSize, length: 2 * blockSize)!))
    }

    /// Ranges reaching past the end, including ones whose end overflows `UInt64`, fail with
    /// `.outOfRange` instead of trapping; empty ranges at the end are fine.
    static func rejectsOutOfRange(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let count = device.blockCount
        let block = TestPattern.buffer(blocks: 1, blockSize: device.blockSize, seed: 1)
        let two = TestPattern.buffer(blocks: 2, blockSize: device.blockSize, seed: 1)

        await #expect(throws: BlockDeviceError.outOfRange) { try await device.read(lba: count, blocks: 1, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.read(lba: count - 1, blocks: 2, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.read(lba: .max, blocks: .max, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.write(lba: count, data: block, fua: false, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.write(lba: count - 1, data: two, fua: true, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.write(lba: .max, data: block, fua: false, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) {
            try await device.writeZeroes(lba: 1, blocks: .max, deallocate: true, fua: false, on: loop).get()
        }
        await #expect(throws: BlockDeviceError.outOfRange) {
            try await device.writeZeroes(lba: 0, blocks: count + 1, deallocate: false, fua: false, on: loop).get()
        }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.deallocate(lba: .max, blocks: 1, on: loop).get() }
        await #expect(throws: BlockDeviceError.outOfRange) { try await device.deallocate(lba: .max, blocks: .max, on: loop).get() }

        // Exactly the last block, and empty ranges at the very end, are in range.
        try await device.write(lba: count - 1, data: block, fua: false, on: loop).get()
        #expect(try await device.read(lba: count - 1, blocks: 1, on: loop).get() == block)
        #expect(try await device.read(lba: count, blocks: 0, on: loop).get().readableBytes == 0)
        try await device.deallocate(lba: count, blocks: 0, on: loop).get()
    }

    /// Data whose length is not a whole number of blocks fails with `.misaligned`.
    static func rejectsMisaligned(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let blockSize = device.blockSize
        for length in [1, 100, blockSize - 1, blockSize + 1, 3 * blockSize + 512 / 2] {
            let data = ByteBuffer(repeating: 0xAB, count: length)
            await #expect(throws: BlockDeviceError.misaligned) { try await device.write(lba: 0, data: data, fua: false, on: loop).get() }
        }
        // Nothing was written.
        #expect(TestPattern.isZero(try await device.read(lba: 0, blocks: 4, on: loop).get()))
    }

    /// Write Zeroes (with and without deallocate) and Deallocate read back zeroes, and leave
    /// the neighbouring blocks alone.
    static func zeroingReadsZero(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let blockSize = device.blockSize
        let perMiB = UInt64((1 << 20) / blockSize)
        let start = perMiB - 8  // 16 blocks across the first 1 MiB boundary
        let data = TestPattern.buffer(blocks: 16, blockSize: blockSize, seed: 5)
        try await device.write(lba: start, data: data, fua: false, on: loop).get()

        try await device.writeZeroes(lba: start + 1, blocks: 2, deallocate: false, fua: true, on: loop).get()
        try await device.writeZeroes(lba: start + 5, blocks: 2, deallocate: true, fua: false, on: loop).get()
        try await device.deallocate(lba: start + 7, blocks: 3, on: loop).get()  // crosses the boundary

        var expected = data
        for zeroed in [1, 2, 5, 6, 7, 8, 9] {
            expected.setBuffer(TestPattern.zeroes(blockSize), at: zeroed * blockSize)
        }
        #expect(try await device.read(lba: start, blocks: 16, on: loop).get() == expected)

        // Zeroing never-written space is fine too.
        try await device.deallocate(lba: 0, blocks: 4, on: loop).get()
        #expect(TestPattern.isZero(try await device.read(lba: 0, blocks: 4, on: loop).get()))
    }

    /// After close every operation fails with `.closed`; close is idempotent.
    static func rejectsAfterClose(_ device: any BlockDevice, on loop: any EventLoop) async throws {
        let block = TestPattern.buffer(blocks: 1, blockSize: device.blockSize, seed: 1)
        try await device.write(lba: 0, data: block, fua: false, on: loop).get()
        try device.close()
        try device.close()
        await #expect(throws: BlockDeviceError.closed) { try await device.read(lba: 0, blocks: 1, on: loop).get() }
        await #expect(throws: BlockDeviceError.closed) { try await device.write(lba: 0, data: block, fua: false, on: loop).get() }
        await #expect(throws: BlockDeviceError.closed) { try await device.flush(on: loop).get() }
        await #expect(throws: BlockDeviceError.closed) {
            try await device.writeZeroes(lba: 0, blocks: 1, deallocate: true, fua: false, on: loop).get()
        }
        await #expect(throws: BlockDeviceError.closed) { try await device.deallocate(lba: 0, blocks: 1, on: loop).get() }
    }
}
