import Foundation
import NIOCore
import NIOPosix
@testable import Storage
import Testing

@Suite("FileBlockDevice I/O")
struct FileBlockDeviceTests {
    static let blockSizes = [512, 4096]
    static let fourMiB: UInt64 = 4 << 20

    private func withDevice(
        blockSize: Int,
        _ body: (FileBlockDevice, IOEnvironment) async throws -> Void
    ) async throws {
        try await IOEnvironment.with { environment in
            let device = try FileBlockDevice.open(
                path: environment.directory.file("disk.img"),
                size: Self.fourMiB,
                blockSize: blockSize,
                threadPool: environment.threadPool
            )
            do {
                try await body(device, environment)
            } catch {
                try? device.close()
                throw error
            }
            try device.close()
        }
    }

    @Test("reads back what was written", arguments: blockSizes)
    func readAfterWrite(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, environment in
            #expect(device.blockSize == blockSize)
            #expect(device.blockCount == Self.fourMiB / UInt64(blockSize))
            #expect(device.hasVolatileWriteCache)
            #expect(device.path == environment.directory.file("disk.img"))
            try await BlockDeviceScenarios.readAfterWrite(device, on: environment.loop)
        }
    }

    @Test("unwritten ranges read as zeroes", arguments: blockSizes)
    func unwrittenReadsZero(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, environment in
            try await BlockDeviceScenarios.unwrittenReadsZero(device, on: environment.loop)
        }
    }

    @Test("out-of-range requests are rejected", arguments: blockSizes)
    func outOfRange(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, environment in
            try await BlockDeviceScenarios.rejectsOutOfRange(device, on: environment.loop)
        }
    }

    @Test("misaligned writes are rejected", arguments: blockSizes)
    func misaligned(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, environment in
            try await BlockDeviceScenarios.rejectsMisaligned(device, on: environment.loop)
        }
    }

    @Test("write zeroes and deallocate read back zeroes", arguments: blockSizes)
    func zeroing(blockSize: Int) async throws {
        try await withDevice(blockSize: blockSize) { device, environment in
            try await BlockDeviceScenarios.zeroingReadsZero(device, on: environment.loop)
        }
    }

    @Test("zeroing falls back to writing zeroes without hole punching")
    func zeroingFallback() async throws {
        try await withDevice(blockSize: 4096) { device, environment in
            device.disableHolePunching()
            try await BlockDeviceScenarios.zeroingReadsZero(device, on: environment.loop)
        }
    }

    @Test("every call fails after close")
    func closed() async throws {
        try await withDevice(blockSize: 512) { device, environment in
            try await BlockDeviceScenarios.rejectsAfterClose(device, on: environment.loop)
        }
    }

    @Test("closing with I/O in flight neither crashes nor touches a reused descriptor")
    func closeWhileInFlight() async throws {
        try await withDevice(blockSize: 4096) { device, environment in
            let loop = environment.loop
            let data = TestPattern.buffer(blocks: 1, blockSize: 4096, seed: 3)
            var futures: [EventLoopFuture<Void>] = []
            for lba in 0..<64 as Range<UInt64> {
                futures.append(device.write(lba: lba, data: data, fua: false, on: loop))
                futures.append(device.read(lba: lba, blocks: 1, on: loop).map { _ in })
            }
            try device.close()
            for future in futures {
                do {
                    try await future.get()
                } catch let error as BlockDeviceError {
                    #expect(error == .closed)
                }
            }
        }
    }

    @Test("a stopped thread pool reports the device as closed")
    func stoppedThreadPool() async throws {
        try await IOEnvironment.with { environment in
            let pool = NIOThreadPool(numberOfThreads: 1)
            pool.start()
            let device = try FileBlockDevice.open(
                path: environment.directory.file("disk.img"),
                size: 1 << 20,
                blockSize: 512,
                threadPool: pool
            )
            try await pool.shutdownGracefully()
            await #expect(throws: BlockDeviceError.closed) { try await device.read(lba: 0, blocks: 1, on: environment.loop).get() }
            try device.close()
        }
    }
}
