import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real etcd servers for the tests.
///
/// `shared` is the etcd every test may use (keys under a unique prefix per test): the one named
/// by `$HALYARD_TEST_ETCD` (`host:port`; scripts/test starts it), else one started here from
/// `etcd` on PATH on free loopback ports, in a temporary data directory, stopped when this test
/// process exits. ``EtcdServer/start()`` starts a private one, for tests that compact or restart
/// (compaction is global: it would break other tests' watches from old revisions).
///
/// When no etcd exists, the etcd cases are skipped locally (with a note) but fail under `CI=true`.
///
/// Nothing here blocks a thread while waiting (the cooperative pool has as many threads as
/// cores: a test sleeping on one would stall every other test of the process).
enum EtcdFixture {
    private actor SharedServer {
        var server: EtcdServer??
        func get() async -> EtcdServer? {
            if let server { return server }
            let started: EtcdServer?
            if let endpoint = ProcessInfo.processInfo.environment["HALYARD_TEST_ETCD"], !endpoint.isEmpty {
                started = EtcdServer(endpoint: endpoint, process: nil, dataDirectory: nil)
            } else {
                started = try? await EtcdServer.start()
            }
            server = .some(started)
            return started
        }
    }
    private static let sharedServer = SharedServer()

    /// The etcd every test may share (started on first use when `$HALYARD_TEST_ETCD` is unset).
    static func shared() async -> EtcdServer? { await sharedServer.get() }

    static var available: Bool { EtcdServer.binary != nil || ProcessInfo.processInfo.environment["HALYARD_TEST_ETCD"] != nil }

    /// Records why etcd cases cannot run: an issue under CI, a note otherwise.
    static func unavailable(_ comment: Comment = "no etcd: install etcd-server or set HALYARD_TEST_ETCD") {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record(comment)
        } else {
            print("skipped: \(comment)")
        }
    }
}

/// One etcd server process (or an external endpoint).
final class EtcdServer: @unchecked Sendable {
    let endpoint: String
    private var process: Process?
    let dataDirectory: String?
    private let clientPort: Int
    private let peerPort: Int

    init(endpoint: String, process: Process?, dataDirectory: String?, clientPort: Int = 0, peerPort: Int = 0) {
        self.endpoint = endpoint
        self.process = process
        self.dataDirectory = dataDirectory
        self.clientPort = clientPort
        self.peerPort = peerPort
    }

    static let binary: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/etcd"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// Starts a new single-member etcd on free 127.0.0.1 ports with a new data directory and
    /// waits until it answers.
    static func start() async throws -> EtcdServer {
        guard binary != nil else { throw FixtureError("etcd not found on PATH") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("halyard-etcd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let client = try freePort(), peer = try freePort()
        let server = EtcdServer(endpoint: "127.0.0.1:\(client)", process: nil, dataDirectory: dir, clientPort: client, peerPort: peer)
        try await server.launch()
        return server
    }

    private func launch() async throws {
        guard let binary = Self.binary, let dataDirectory else { return }
        let process = Process()
        // A watchdog shell: etcd is killed when this test process exits, however it exits.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let etcd = [binary, "--name", "t", "--data-dir", "\(dataDirectory)/data",
                    "--listen-client-urls", "http://127.0.0.1:\(clientPort)",
                    "--advertise-client-urls", "http://127.0.0.1:\(clientPort)",
                    "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                    "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                    "--initial-cluster", "t=http://127.0.0.1:\(peerPort)",
                    "--logger", "zap", "--log-outputs", "\(dataDirectory)/etcd.log"].joined(separator: " ")
        process.arguments = ["-c", "\(etcd) & e=$!; trap 'kill $e 2>/dev/null' EXIT TERM; while kill -0 \(getpid()) 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.3; done"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        var environment = ProcessInfo.processInfo.environment
        for key in environment.keys where key.hasPrefix("ETCD_") { environment.removeValue(forKey: key) }
        process.environment = environment
        try process.run()
        self.process = process
        // Ready when the client port accepts and etcd answers a health probe.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if await Self.healthy(port: clientPort) { return }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        await stop()
        throw FixtureError("etcd on 127.0.0.1:\(clientPort) did not become healthy; log \(dataDirectory)/etcd.log")
    }

    /// Stops the process (SIGTERM to the watchdog, which kills etcd) and waits for it.
    func stop() async {
        guard let process, process.isRunning else { return }
        process.terminate()
        // The watchdog's trap kills etcd; wait until it is gone and the client port is closed.
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline, process.isRunning || Self.listening(port: clientPort) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        self.process = nil
    }

    /// Stops and starts the same member on the same data directory and ports.
    func restart() async throws {
        await stop()
        try await launch()
    }

    /// Stops it and removes its data directory.
    func destroy() async {
        await stop()
        if let dataDirectory { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }

    static func healthy(port: Int) async -> Bool {
        guard listening(port: port) else { return false }
        guard let url = URL(string: "http://127.0.0.1:\(port)/health") else { return false }
        var request = URLRequest(url: url)
        request.timeoutInterval = 2
        guard let (data, _) = try? await URLSession.shared.data(for: request) else { return false }
        return String(decoding: data, as: UTF8.self).contains("\"true\"")
    }

    static func listening(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A port the kernel just handed out for 127.0.0.1 (bound, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw FixtureError("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
