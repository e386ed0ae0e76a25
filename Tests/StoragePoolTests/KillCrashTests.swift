import Foundation
import Storage
@testable import StoragePool
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where the built `PoolCrashWorker` executable is: next to this test bundle (the same build),
/// else the newest `.build*/debug/PoolCrashWorker` under the package root.
enum CrashWorkerExecutable {
    static let path: String? = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["POOL_CRASH_WORKER"], fm.isExecutableFile(atPath: env) { return env }
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL?.resolvingSymlinksInPath() { candidates.append(exe.deletingLastPathComponent()) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent())
        for dir in candidates {
            let candidate = dir.appendingPathComponent("PoolCrashWorker").path
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let builds = ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix(".build") }
        return builds.map { root.appendingPathComponent($0).appendingPathComponent("debug/PoolCrashWorker").path }
            .filter { fm.isExecutableFile(atPath: $0) }
            .max { modified($0) < modified($1) }
    }()

    /// Why `path` cannot be used: missing, or older than the StoragePool/Storage objects it
    /// links (then it would test old pool code), or nil.
    static let problem: String? = {
        guard let path else {
            return "PoolCrashWorker was not found next to the test bundle or in .build*/debug: run `swift build` (or `swift build --build-tests`) before `swift test`, or set POOL_CRASH_WORKER"
        }
        let built = modified(path)
        let binDir = URL(fileURLWithPath: path).deletingLastPathComponent()
        for module in ["StoragePool", "Storage", "PoolCrashWorker"] {
            let dir = binDir.appendingPathComponent("\(module).build")
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where file.hasSuffix(".o") {
                if modified(dir.appendingPathComponent(file).path) > built {
                    return "\(path) is older than \(module).build/\(file): run `swift build` (or `swift build --build-tests`) before `swift test`"
                }
            }
        }
        return nil
    }()

    static func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }
}

/// Runs the worker, SIGKILLs it right after the `killAfter`-th ACK line plus `delay` µs, and
/// returns every line it printed (an ACK already in the pipe counts: it was acknowledged).
func runWorker(disk: String, seed: UInt64, killAfter: Int, delayMicroseconds: UInt32) async throws -> (lines: [String], killed: Bool) {
    if let problem = CrashWorkerExecutable.problem { throw PoolTestFailure(problem) }
    let binary = try #require(CrashWorkerExecutable.path)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = ["--disk", disk, "--seed", "\(seed)", "--ops", "120"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.standardError
    try process.run()
    let pid = process.processIdentifier
    let fd = pipe.fileHandleForReading.fileDescriptor
    // A dedicated thread reads the pipe (blocking reads never occupy a cooperative thread).
    let result: ([String], Bool) = await withCheckedContinuation { continuation in
        let thread = Thread {
            var pending = [UInt8]()
            var lines: [String] = []
            var acks = 0
            var killed = false
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending += buffer[0..<n]
                while let newline = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    lines.append(line)
                    if line.hasPrefix("ACK ") {
                        acks += 1
                        if acks == killAfter && !killed {
                            if delayMicroseconds > 0 { usleep(delayMicroseconds) }
                            kill(pid, SIGKILL)
                            killed = true
                        }
                    }
                }
            }
            continuation.resume(returning: (lines, killed))
        }
        thread.start()
    }
    process.waitUntilExit()
    try? pipe.fileHandleForReading.close()
    if !result.1 {
        #expect(process.terminationStatus == 0, "worker exited with \(process.terminationStatus): \(result.0.suffix(3))")
    }
    return result
}

@Suite("Pool crash safety: kill -9 of a real process")
struct KillCrashTests {
    /// Applies the worker's acknowledged lines to the model; the last BEGIN without an ACK is
    /// the operation in flight when the process died.
    static func apply(_ lines: [String], to model: inout [UUID: ReplicaModel]) -> (uuid: UUID, after: ReplicaModel?, isWrite: Bool)? {
        var inFlight: (UUID, ReplicaModel?, Bool)?
        for line in lines {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 3, words[0] == "BEGIN" || words[0] == "ACK", let uuid = UUID(uuidString: words[2]) else { continue }
            var after = model[uuid]
            var isWrite = false
            switch words[1] {
            case "create":
                after = ReplicaModel(name: words[3], size: UInt64(words[4])!, thin: words[5] == "1")
            case "destroy":
                after = nil
            case "resize":
                after?.size = UInt64(words[3])!
            case "write":
                let lba = UInt64(words[3])!, count = UInt64(words[4])!, tag = UInt64(words[5])!
                for b in lba..<(lba + count) { after?.blocks[b] = [tag] }
                isWrite = true
            default:
                continue
            }
            if words[0] == "BEGIN" {
                inFlight = (uuid, after, isWrite)
            } else {
                model[uuid] = after
                inFlight = nil
            }
        }
        // An unacknowledged write may have landed: widen its blocks' candidates now.
        if let (uuid, after, isWrite) = inFlight, isWrite, var m = model[uuid], let after {
            for (block, tags) in after.blocks where m.blocks[block] != tags { m.blocks[block, default: [0]].formUnion(tags) }
            model[uuid] = m
        }
        return inFlight
    }

    @Test("kill -9 at seeded points, import in-process: acked changes and data intact, fsck clean, nothing leaked",
          arguments: 0..<25)
    func killNine(seed: UInt64) async throws {
        try await TemporaryDirectory.with { dir in
            let disk = dir.file("pool.img")
            var rng = SplitMix64(seed: seed &* 7919)
            var model: [UUID: ReplicaModel] = [:]
            for round in 0..<2 {
                let killAfter = 1 + Int(rng.next() % 30)
                let delay = UInt32(rng.next() % 3000)
                let (lines, killed) = try await runWorker(disk: disk, seed: seed * 10 + UInt64(round), killAfter: killAfter, delayMicroseconds: delay)
                #expect(lines.first == "CREATED" || lines.first?.hasPrefix("IMPORTED") == true, "\(lines.prefix(2))")
                let inFlight = Self.apply(lines, to: &model)
                let pool = try await Pool.import(path: disk, ioThreads: 1)
                let context = "seed \(seed) round \(round) (killed=\(killed) after \(killAfter) ACKs + \(delay) µs)"
                var workload = PowerLossWorkload(seed: 0)
                workload.model = model
                var unknown: [PowerLossWorkload.Op] = []
                if let (uuid, after, isWrite) = inFlight {
                    unknown.append(PowerLossWorkload.Op(uuid: uuid, after: after, isWrite: isWrite, run: { _ in }, describe: "in flight"))
                }
                try await PowerLossTests.verify(pool, &workload, inFlight: unknown, context: context)
                model = workload.model
                await pool.export()
            }
        }
    }
}
