import Foundation
import NIOCore
import NIOPosix
import Storage
import Testing

@Suite("FileBlockDevice sparseness")
struct FileBlockDeviceSparseTests {
    @Test("a new 1 GiB backing file is sparse")
    func sparseCreation() async throws {
        try await IOEnvironment.with { environment in
            let path = environment.directory.file("big.img")
            let device = try FileBlockDevice.open(path: path, size: 1 << 30, blockSize: 4096, threadPool: environment.threadPool)
            defer { try? device.close() }
            #expect(device.blockCount == 262_144)
            let usage = try DiskUsage(path: path)
            #expect(usage.size == 1 << 30)
            #expect(usage.allocatedBytes <= 64 << 10)
            #expect(TestPattern.isZero(try await device.read(lba: device.blockCount - 8, blocks: 8, on: environment.loop).get()))
        }
    }

    @Test("deallocate and write zeroes punch holes in written ranges")
    func punchHole() async throws {
        try await IOEnvironment.with { environment in
            let path = environment.directory.file("holes.img")
            let device = try FileBlockDevice.open(path: path, size: 64 << 20, blockSize: 4096, threadPool: environment.threadPool)
            defer { try? device.close() }
            let loop = environment.loop
            let mib = TestPattern.buffer(blocks: 256, blockSize: 4096, seed: 4)
            for index in 0..<16 as Range<UInt64> {
                try await device.write(lba: index * 256, data: mib, fua: false, on: loop).get()
            }
            try await device.flush(on: loop).get()
            let written = try DiskUsage(path: path).allocatedBytes
            #expect(written >= 16 << 20)

            // Deallocate 4 MiB, then write-zeroes (deallocating) another 4 MiB.
            try await device.deallocate(lba: 1024, blocks: 1024, on: loop).get()
            let afterDeallocate = try DiskUsage(path: path).allocatedBytes
            #expect(afterDeallocate <= written - (4 << 20))

            try await device.writeZeroes(lba: 2048, blocks: 1024, deallocate: true, fua: true, on: loop).get()
            let afterWriteZeroes = try DiskUsage(path: path).allocatedBytes
            #expect(afterWriteZeroes <= afterDeallocate - (4 << 20))
            #expect(try DiskUsage(path: path).size == 64 << 20)

            #expect(TestPattern.isZero(try await device.read(lba: 1024, blocks: 2048, on: loop).get()))
            #expect(try await device.read(lba: 1020, blocks: 4, on: loop).get() == mib.getSlice(at: 252 * 4096, length: 4 * 4096))
            #expect(try await device.read(lba: 3072, blocks: 256, on: loop).get() == mib)
        }
    }
}
