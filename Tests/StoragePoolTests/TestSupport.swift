import Foundation
import NIOCore
import NIOPosix
import Storage
@testable import StoragePool
import Testing

/// A logger for tests that fault pools on purpose (the crash tests): errors only go to stderr
/// when they are critical.
let quietLogger = {
    var logger = Pool.defaultLogger
    logger.logLevel = .critical
    return logger
}()

/// Event loops shared by the pool tests (callers' loops: the pools run their own threads).
let testLoops = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// A uniquely named directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("halyard-pool-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        path = url.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Runs `body` with a fresh directory, removed afterwards.
    static func with<T>(_ body: (TemporaryDirectory) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        return try await body(directory)
    }
}

/// Deterministic block contents: block `lba` written by write `tag` (tag 0 = zeroes).
enum Pattern {
    static func block(tag: UInt64, lba: UInt64, size: Int) -> [UInt8] {
        guard tag != 0 else { return [UInt8](repeating: 0, count: size) }
        var rng = SplitMix64(seed: tag &* 0x9E37_79B9 ^ lba)
        var bytes = [UInt8](repeating: 0, count: size)
        withUnsafeBytes(of: tag.littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
        withUnsafeBytes(of: lba.littleEndian) { for i in 0..<8 { bytes[8 + i] = $0[i] } }
        var i = 16
        while i < size {
            let word = rng.next()
            withUnsafeBytes(of: word) { raw in for j in 0..<min(8, size - i) { bytes[i + j] = raw[j] } }
            i += 8
        }
        return bytes
    }

    static func blocks(tag: UInt64, lba: UInt64, count: Int, size: Int) -> [UInt8] {
        (0..<count).flatMap { block(tag: tag, lba: lba + UInt64($0), size: size) }
    }
}

extension BlockDevice {
    func writeBytes(_ bytes: [UInt8], at lba: UInt64, fua: Bool = false) async throws {
        try await write(lba: lba, data: ByteBuffer(bytes: bytes), fua: fua, on: testLoops.next()).get()
    }

    func readBytes(at lba: UInt64, blocks: UInt32) async throws -> [UInt8] {
        Array(buffer: try await read(lba: lba, blocks: blocks, on: testLoops.next()).get())
    }

    /// The callback form (the NVMe target's fast path), bridged to async.
    func readBytesViaCallback(at lba: UInt64, blocks: UInt32) async throws -> [UInt8] {
        let loop = testLoops.next()
        let promise = loop.makePromise(of: ByteBuffer.self)
        loop.execute {
            self.read(lba: lba, blocks: blocks, on: loop) { promise.completeWith($0) }
        }
        return Array(buffer: try await promise.futureResult.get())
    }

    func writeBytesViaCallback(_ bytes: [UInt8], at lba: UInt64, fua: Bool = false) async throws {
        let loop = testLoops.next()
        let promise = loop.makePromise(of: Void.self)
        loop.execute {
            self.write(lba: lba, data: ByteBuffer(bytes: bytes), fua: fua, on: loop) { promise.completeWith($0) }
        }
        try await promise.futureResult.get()
    }

    func flushNow() async throws {
        try await flush(on: testLoops.next()).get()
    }
}

/// Expects `body` to throw exactly `expected`.
func expectPoolError<T>(_ expected: PoolError, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () async throws(PoolError) -> T) async
{
    do {
        _ = try await body()
        Issue.record("expected \(expected), got success", sourceLocation: sourceLocation)
    } catch {
        #expect(error == expected, sourceLocation: sourceLocation)
    }
}

/// Expects `body` to throw a PoolError of the same case whose message contains every fragment.
func expectPoolError<T>(_ kind: (String) -> PoolError, containing fragments: [String],
                        sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws(PoolError) -> T) async
{
    do {
        _ = try await body()
        Issue.record("expected \(kind("…")), got success", sourceLocation: sourceLocation)
    } catch {
        #expect(error == kind(error.message), "got \(error)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", sourceLocation: sourceLocation)
        }
    }
}

/// A pool on a sparse file in a temporary directory, exported (and the directory removed) after.
func withFilePool<T>(size: UInt64 = 64 << 20, options: PoolCreateOptions? = nil,
                     _ body: (Pool, TemporaryDirectory) async throws -> T) async throws -> T
{
    try await TemporaryDirectory.with { directory in
        var options = options ?? PoolCreateOptions(name: "test-pool")
        options.createFileSize = size
        let pool = try await Pool.create(path: directory.file("pool.img"), options: options, ioThreads: 2)
        do {
            let result = try await body(pool, directory)
            await pool.export()
            return result
        } catch {
            await pool.export()
            throw error
        }
    }
}
