import Foundation
import Storage
@testable import StoragePool
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Loop devices need root, /dev/loop-control and losetup (CI runs as root with both).
enum LoopSupport {
    static let losetup: String? = ["/usr/sbin/losetup", "/sbin/losetup", "/usr/bin/losetup"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var available: Bool {
        getuid() == 0 && losetup != nil && FileManager.default.fileExists(atPath: "/dev/loop-control")
    }

    /// Runs losetup, returning its trimmed stdout.
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: losetup!)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PoolTestFailure("losetup \(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct PoolTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("Pools on loop block devices")
struct LoopDeviceTests {
    @Test("create, write, re-import and destroy a pool on /dev/loopN (size via BLKGETSIZE64)",
          .enabled(if: LoopSupport.available, "needs root, /dev/loop-control and losetup"))
    func loopDevice() async throws {
        try await TemporaryDirectory.with { dir in
            let file = dir.file("loop-backing.img")
            #expect(FileManager.default.createFile(atPath: file, contents: nil))
            let handle = try #require(FileHandle(forWritingAtPath: file))
            try handle.truncate(atOffset: 96 << 20)
            try handle.close()
            let loop = try LoopSupport.run(["-f", "--show", file])
            defer { _ = try? LoopSupport.run(["-d", loop]) }
            #expect(loop.hasPrefix("/dev/loop"))

            // Storage: a block device opens with its real size.
            let threadPool = NIOThreadPoolHolder()
            defer { threadPool.stop() }
            let raw = try FileBlockDevice.open(path: loop, size: nil, blockSize: 512, threadPool: threadPool.pool)
            #expect(raw.byteCount == 96 << 20)
            try raw.close()

            let pool = try await Pool.create(path: loop, options: PoolCreateOptions(name: "loop-pool", extentSize: 256 << 10), ioThreads: 2)
            #expect(pool.info.capacityBytes > 80 << 20)
            let r = UUID()
            _ = try await pool.createReplica(uuid: r, name: "on-loop", sizeBytes: 16 << 20, thin: true)
            let device = try pool.device(uuid: r)
            let data = Pattern.blocks(tag: 77, lba: 100, count: 130, size: 4096)  // crosses an extent boundary
            try await device.writeBytes(data, at: 100, fua: true)
            #expect(try await device.readBytes(at: 100, blocks: 130) == data)
            await pool.export()

            let again = try await Pool.import(path: loop, ioThreads: 2)
            #expect(again.info.state == .online && again.info.name == "loop-pool")
            #expect(try again.replica(uuid: r).allocatedBytes == 3 * (256 << 10))
            let reopened = try again.device(uuid: r)
            #expect(try await reopened.readBytes(at: 100, blocks: 130) == data)
            #expect(try await reopened.readBytes(at: 0, blocks: 100) == [UInt8](repeating: 0, count: 100 * 4096))
            // A reused extent on the block device reads zero (punch/zero-out on a block device).
            try await again.destroyReplica(uuid: r)
            let s = UUID()
            _ = try await again.createReplica(uuid: s, name: "second", sizeBytes: 16 << 20, thin: true)
            let second = try again.device(uuid: s)
            try await second.writeBytes(Pattern.block(tag: 1, lba: 0, size: 4096), at: 0, fua: true)
            #expect(try await second.readBytes(at: 1, blocks: 63) == [UInt8](repeating: 0, count: 63 * 4096))
            try await again.destroy(force: true)
            #expect(FileManager.default.fileExists(atPath: loop), "a block device is never unlinked")
            await expectPoolError(PoolError.failedPrecondition, containing: ["holds no pool label"]) { () async throws(PoolError) in
                try await Pool.import(path: loop, ioThreads: 1)
            }
        }
    }
}

import NIOPosix

/// A started NIOThreadPool, stopped synchronously by `stop()`.
final class NIOThreadPoolHolder: Sendable {
    let pool = NIOThreadPool(numberOfThreads: 1)
    init() { pool.start() }
    func stop() { try? pool.syncShutdownGracefully() }
}
