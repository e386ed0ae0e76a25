import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMe
import NVMeHost
import NVMeTarget
import Storage
import Synchronization
import Testing

/// Where the built `halyard` executable is. In order:
/// 1. `$HALYARD_BIN`, if set;
/// 2. next to this test process's executable (`<scratch>/debug/HalyardPackageTests.xctest`),
///    where `swift build` / `swift build --build-tests` with the same `--scratch-path` link it: the
///    binary of the same build (the normal case);
/// 3. `.build*/debug/halyard` under the package root (found from `#filePath`), the newest one;
/// 4. `swift build --show-bin-path` run in the package root.
///
/// `swift test` builds the test bundle but does not relink the `halyard` product, so the binary is
/// only current after `swift build` (scripts/test runs `swift build` first) or
/// `swift build --build-tests`. If an object file of a module halyard links (NVMe, NVMeHost,
/// NVMeTarget, Storage, CCRC32C, Store, StoreEtcd, StoragePool, IOEngine, IOEngineAPI, Halyard) is newer than the binary, the tests fail saying so
/// rather than test old code. (Object files, not sources: the compiler leaves an object alone when
/// a touched source compiles to the same code, and the binary is then not relinked either.)
/// A change to Sources/Halyard alone is not seen by that check when only `swift test` ran, since
/// `swift test` does not compile the Halyard module: build before testing CLI changes.
enum HalyardExecutable {
    static let path: String? = locate()

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Why `path` cannot be used (missing, or older than what it is linked from), or nil.
    static let problem: String? = {
        guard let path else {
            return "the halyard executable was not found: run `swift build` (or `swift build --build-tests`) before `swift test`, or set HALYARD_BIN"
        }
        let built = modified(path)
        let binDir = URL(fileURLWithPath: path).deletingLastPathComponent()
        for module in ["NVMe", "NVMeHost", "NVMeTarget", "Storage", "CCRC32C", "Store", "StoreEtcd", "StoragePool", "Nexus", "IOEngine", "IOEngineAPI", "Halyard"] {
            let dir = binDir.appendingPathComponent("\(module).build")
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where file.hasSuffix(".o") {
                if modified(dir.appendingPathComponent(file).path) > built {
                    return "\(path) is older than \(module).build/\(file): run `swift build` (or `swift build --build-tests`) before `swift test`"
                }
            }
        }
        return nil
    }()

    static func locate() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["HALYARD_BIN"], fm.isExecutableFile(atPath: env) { return env }
        if let exe = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            let candidate = exe.deletingLastPathComponent().appendingPathComponent("halyard").path
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        let root = packageRoot
        let builds = ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix(".build") }
        let found = builds.map { root.appendingPathComponent($0).appendingPathComponent("debug/halyard").path }
            .filter { fm.isExecutableFile(atPath: $0) }
            .max { modified($0) < modified($1) }
        if let found { return found }
        let swift = Process()
        swift.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        swift.arguments = ["swift", "build", "--show-bin-path"]
        swift.currentDirectoryURL = root
        let pipe = Pipe()
        swift.standardOutput = pipe
        swift.standardError = FileHandle.nullDevice
        guard (try? swift.run()) != nil else { return nil }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        swift.waitUntilExit()
        let dir = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let candidate = dir + "/halyard"
        return fm.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    static func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }
}

struct CLITestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The outcome of one `halyard` run.
struct CLIRun: CustomStringConvertible {
    var status: Int32
    var stdout: Data
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }

    func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: stdout)
        return try #require(object as? [String: Any], "stdout is not a JSON object: \(stdoutText)")
    }

    var description: String { "exit \(status)\nstdout: \(stdoutText.prefix(2000))\nstderr: \(stderr)" }
}

/// A scratch directory removed at the end of a test.
final class TemporaryDirectory: Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("halyard-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { "\(path)/\(name)" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs `halyard ARGS` as a subprocess (stdout/stderr to files, so nothing blocks on a full pipe)
/// and waits without blocking a concurrency thread. The host identity comes from `stateDir`
/// (`$HALYARD_STATE_DIR`) and never from this machine's /etc/nvme (`$HALYARD_NVME_ETC_DIR`
/// points at `etcDir`, by default a directory that does not exist).
func halyard(_ arguments: [String], stateDir: String, etcDir: String? = nil, timeout: Duration = .seconds(90)) async throws -> CLIRun {
    if let problem = HalyardExecutable.problem { throw CLITestSetupError(problem) }
    let binary = HalyardExecutable.path!
    let scratch = try TemporaryDirectory()
    let outPath = scratch.file("stdout"), errPath = scratch.file("stderr")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try #require(FileHandle(forWritingAtPath: outPath))
    let err = try #require(FileHandle(forWritingAtPath: errPath))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["HALYARD_STATE_DIR"] = stateDir
    env["HALYARD_NVME_ETC_DIR"] = etcDir ?? scratch.file("no-etc-nvme")
    process.environment = env
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    let box = ProcessBox(process)
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { p in continuation.resume(returning: p.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
            return
        }
        Task {
            try? await Task.sleep(for: timeout)
            if box.process.isRunning {
                Issue.record("halyard \(arguments.joined(separator: " ")) ran longer than \(timeout); killed")
                box.process.terminate()
            }
        }
    }
    try out.close()
    try err.close()
    let stdout = try Data(contentsOf: URL(fileURLWithPath: outPath))
    let stderr = String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self)
    return CLIRun(status: status, stdout: stdout, stderr: stderr)
}

/// `Process` is thread-safe for `isRunning`/`terminate`; this only carries it into the watchdog.
final class ProcessBox: @unchecked Sendable {
    let process: Process
    init(_ process: Process) { self.process = process }
}

/// An in-process Halyard target on ephemeral loopback ports: two listeners (two paths to one
/// subsystem) and a discovery controller, one RAM namespace.
struct CLITarget {
    static let nqn = "nqn.2026-11.io.halyard:cli-test"
    let target: NVMeTCPTarget
    let group: MultiThreadedEventLoopGroup
    let device: MemoryBlockDevice
    let ports: [Int]
    let discoveryPort: Int
    /// The subsystem's NQN (`nqn` unless started with another).
    let subsystemNQN: String

    var port: String { String(ports[0]) }

    /// `wrap` puts something (a fault injector) between the namespace and its RAM device;
    /// `advertise` is the listeners' address in discovery log entries (default: 127.0.0.1).
    static func start(blockSize: Int = 512, blockCount: UInt64 = 1 << 17, nqn: String = CLITarget.nqn, listeners: Int = 2,
                      advertise: String? = nil, wrap: (MemoryBlockDevice) -> any BlockDevice = { $0 }) async throws -> CLITarget {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let device = MemoryBlockDevice(blockSize: blockSize, blockCount: blockCount)
        let config = TargetConfiguration(
            listeners: (0..<listeners).map { _ in ListenerConfiguration(host: "127.0.0.1", port: 0, advertisedHost: advertise) },
            discoveryListener: ListenerConfiguration(host: "127.0.0.1", port: 0),
            subsystems: [SubsystemConfiguration(nqn: nqn, namespaces: [NamespaceConfiguration(device: wrap(device))])])
        var logger = Logger(label: "cli-test-target")
        logger.logLevel = .critical
        let target = NVMeTCPTarget(configuration: config, group: group, logger: logger)
        let bound = try await target.start()
        return CLITarget(target: target, group: group, device: device, ports: bound.dropLast().map { $0.port! },
                         discoveryPort: bound[listeners].port!, subsystemNQN: nqn)
    }

    func stop() async {
        await target.stop()
        try? await group.shutdownGracefully()
    }

    /// The common arguments: first path and the subsystem NQN.
    var connectArgs: [String] { ["-a", "127.0.0.1", "-s", port, "-n", Self.nqn] }

    /// Every (host NQN, host ID) of the controllers connected right now.
    func connectedHosts() -> [HostSeen] {
        (target.subsystems[subsystemNQN]?.controllers ?? []).map { HostSeen(hostNQN: $0.hostNQN, hostID: $0.hostID) }
    }

    /// Collects the hosts connected while `body` runs (polled every 5 ms).
    func hostsSeen(during body: () async throws -> Void) async throws -> Set<HostSeen> {
        let seen = Mutex<Set<HostSeen>>([])
        let watcher = Task {
            while !Task.isCancelled {
                let now = connectedHosts()
                seen.withLock { $0.formUnion(now) }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        do { try await body() } catch { watcher.cancel(); throw error }
        watcher.cancel()
        _ = await watcher.value
        return seen.withLock { $0 }
    }
}

struct HostSeen: Hashable, Sendable, CustomStringConvertible {
    var hostNQN: String
    var hostID: [UInt8]
    var description: String { "\(hostNQN) / \(NamespaceUUID(hostID))" }
}

func withTarget(wrap: (MemoryBlockDevice) -> any BlockDevice = { $0 },
                _ body: (CLITarget, TemporaryDirectory) async throws -> Void) async throws {
    let target = try await CLITarget.start(wrap: wrap)
    let dir = try TemporaryDirectory()
    do { try await body(target, dir) } catch { await target.stop(); throw error }
    await target.stop()
}

/// Deterministic test data.
func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out: [UInt8] = []
    out.reserveCapacity(count + 8)
    while out.count < count {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        withUnsafeBytes(of: x) { out.append(contentsOf: $0) }
    }
    return Array(out.prefix(count))
}
