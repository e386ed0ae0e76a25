import Storage
import Testing

@Suite("BlockDeviceGeometry")
struct BlockDeviceGeometryTests {
    @Test("accepts powers of two from 512 to 64 KiB only")
    func blockSizes() {
        for size in [512, 1024, 4096, 65536] {
            #expect(BlockDeviceGeometry(blockSize: size, blockCount: 1) != nil)
        }
        for size in [0, -512, 256, 520, 1000, 131_072] {
            #expect(BlockDeviceGeometry(blockSize: size, blockCount: 1) == nil)
        }
    }

    @Test("rejects capacities that overflow")
    func capacity() {
        #expect(BlockDeviceGeometry(blockSize: 4096, blockCount: .max) == nil)
        #expect(BlockDeviceGeometry(blockSize: 512, blockCount: UInt64(Int64.max) / 512) != nil)
    }

    @Test("range checks are overflow-safe")
    func ranges() throws {
        let geometry = try #require(BlockDeviceGeometry(blockSize: 512, blockCount: 100))
        #expect(throws: Never.self) { try geometry.checkRange(lba: 0, blocks: 100) }
        #expect(throws: Never.self) { try geometry.checkRange(lba: 100, blocks: 0) }
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkRange(lba: 99, blocks: 2) }
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkRange(lba: .max, blocks: 2) }
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkRange(lba: 2, blocks: .max) }
        #expect(try geometry.checkRead(lba: 10, blocks: 3) == 1536)
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkRead(lba: .max, blocks: .max) }
    }

    @Test("write lengths must be whole blocks and match the expected count")
    func writes() throws {
        let geometry = try #require(BlockDeviceGeometry(blockSize: 4096, blockCount: 8))
        #expect(try geometry.checkWrite(lba: 0, byteCount: 8192) == 2)
        #expect(throws: BlockDeviceError.misaligned) { try geometry.checkWrite(lba: 0, byteCount: 4095) }
        #expect(throws: BlockDeviceError.misaligned) { try geometry.checkWrite(lba: 0, byteCount: -4096) }
        #expect(throws: BlockDeviceError.misaligned) { try geometry.checkWrite(lba: 0, blocks: 3, byteCount: 8192) }
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkWrite(lba: 7, byteCount: 8192) }
        #expect(throws: BlockDeviceError.misaligned) { try geometry.checkByteRange(offset: 100, length: 4096) }
        #expect(throws: BlockDeviceError.misaligned) { try geometry.checkByteRange(offset: 4096, length: 100) }
        #expect(throws: BlockDeviceError.outOfRange) { try geometry.checkByteRange(offset: .max - 4095, length: 8192) }
        #expect(try geometry.checkByteRange(offset: 8192, length: 8192) == 2..<4)
    }
}
