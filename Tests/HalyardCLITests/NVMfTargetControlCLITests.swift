import Foundation
import Testing

/// `halyard nvmf-target … --control unix:PATH` run as a process, driven by
/// `halyard nvmf-target ana|hosts|stats` (and `halyard nvme write` for I/O through each path).
@Suite("halyard nvmf-target control CLI", .serialized)
struct NVMfTargetControlCLITests {
    static let nqn = "nqn.2026-11.io.halyard:control-test"
    static let host = "nqn.2014-08.org.nvmexpress:uuid:0c0c0c0c-1111-2222-3333-444444444444"

    /// A `halyard nvmf-target` process (the flag form, i.e. the default subcommand) on two ephemeral
    /// listeners with a control socket; killed (SIGTERM) by `stop()`.
    final class ServedTarget: @unchecked Sendable {
        let process = Process()
        let dir: TemporaryDirectory
        var socket: String { dir.file("ctl.sock") }
        var control: [String] { ["--control", "unix:\(socket)"] }
        var logPath: String { dir.file("target.log") }
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        init(extra: [String] = []) throws {
            dir = try TemporaryDirectory()
            if let problem = HalyardExecutable.problem { throw CLITestSetupError(problem) }
            process.executableURL = URL(fileURLWithPath: HalyardExecutable.path!)
            process.arguments = ["nvmf-target", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--nqn", NVMfTargetControlCLITests.nqn,
                                 "--memory", "16MiB", "--control", "unix:\(dir.file("ctl.sock"))"] + extra
            _ = FileManager.default.createFile(atPath: dir.file("target.log"), contents: nil)
            let log = try #require(FileHandle(forWritingAtPath: dir.file("target.log")))
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = log
            process.standardError = log
            try process.run()
        }

        /// Waits until the control socket answers.
        func ready() async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if FileManager.default.fileExists(atPath: socket),
                   let run = try? await halyard(["nvmf-target", "stats"] + control, stateDir: dir.path), run.status == 0 {
                    return
                }
                guard process.isRunning else { throw CLITestSetupError("halyard nvmf-target exited: \(log)") }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw CLITestSetupError("the control socket never answered: \(log)")
        }

        func stop() async -> Int32 {
            if process.isRunning { process.terminate() }
            let deadline = ContinuousClock.now + .seconds(15)
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            return process.terminationStatus
        }

        func run(_ arguments: [String]) async throws -> CLIRun {
            try await halyard(arguments, stateDir: dir.path)
        }

        func stats() async throws -> [String: Any] {
            let run = try await self.run(["nvmf-target", "stats", "--json"] + control)
            try #require(run.status == 0, "\(run)")
            return try run.json()
        }

        /// The bound listener addresses, in configuration order.
        func listeners() async throws -> [String] {
            try #require((try await stats()["listeners"] as? [[String: Any]])?.compactMap { $0["address"] as? String })
        }

        func listenerIO(_ index: Int) async throws -> [String: Any] {
            let listeners = try #require(try await stats()["listeners"] as? [[String: Any]])
            return try #require(listeners[index]["io"] as? [String: Any])
        }
    }

    static func withServedTarget(extra: [String] = [], _ body: (ServedTarget) async throws -> Void) async throws {
        let t = try ServedTarget(extra: extra)
        do {
            try await t.ready()
            try await body(t)
        } catch {
            _ = await t.stop()
            throw error
        }
        let status = await t.stop()
        #expect(status == 0, "SIGTERM: graceful exit\n\(t.log)")
        #expect(!FileManager.default.fileExists(atPath: t.socket), "the control socket file is removed at exit")
    }

    @Test("stats, ana and counters: the flag form still serves; ana moves one path's state; I/O through a path shows on its counter only")
    func anaAndStats() async throws {
        try await Self.withServedTarget { t in
            let listeners = try await t.listeners()
            #expect(listeners.count == 2 && listeners.allSatisfy { $0.hasPrefix("127.0.0.1:") && !$0.hasSuffix(":0") }, "\(listeners)")
            let stats = try await t.stats()
            let subsystem = try #require((stats["subsystems"] as? [[String: Any]])?.first)
            #expect(subsystem["nqn"] as? String == Self.nqn)
            let group = try #require((subsystem["anaGroups"] as? [[String: Any]])?.first)
            #expect(group["group"] as? Int == 1 && group["namespaces"] as? [Int] == [1])
            #expect((group["paths"] as? [[String: Any]])?.compactMap { $0["state"] as? String } == ["optimized", "optimized"])
            let changeCount = try #require(subsystem["anaChangeCount"] as? Int)

            // I/O through path 2 moves only its counter.
            let port2 = String(listeners[1].split(separator: ":").last!)
            let write = try await t.run(["nvme", "write", "-a", "127.0.0.1", "-s", port2, "-n", Self.nqn, "--lba", "0", "--pattern", "0x5a", "--blocks", "8",
                                         "--hostnqn", Self.host])
            #expect(write.status == 0, "\(write)")
            #expect(try await t.listenerIO(1)["writeCommands"] as? Int == 1)
            #expect(try await t.listenerIO(1)["writtenBytes"] as? Int == 4096)
            #expect(try await t.listenerIO(0)["writeCommands"] as? Int == 0)

            let ana = try await t.run(["nvmf-target", "ana"] + t.control + ["--nqn", Self.nqn, "--listener", listeners[1], "--state", "inaccessible"])
            #expect(ana.status == 0, "\(ana)")
            #expect(ana.stdoutText == "\(Self.nqn): ANA group 1 on \(listeners[1]) is now inaccessible (change count \(changeCount + 1), 0 controller(s) notified)\n", "\(ana)")
            let again = try await t.run(["nvmf-target", "ana"] + t.control + ["--nqn", Self.nqn, "--listener", listeners[1], "--state", "inaccessible", "--group", "1"])
            #expect(again.status == 0 && again.stdoutText.contains("was already inaccessible"), "\(again)")

            // I/O through the inaccessible path fails (a path status); the other path still works.
            let refused = try await t.run(["nvme", "write", "-a", "127.0.0.1", "-s", port2, "-n", Self.nqn, "--lba", "0", "--pattern", "1", "--hostnqn", Self.host])
            #expect(refused.status != 0, "\(refused)")
            #expect(try await t.listenerIO(1)["writeCommands"] as? Int == 1, "the refused write is not counted")
            let port1 = String(listeners[0].split(separator: ":").last!)
            let ok = try await t.run(["nvme", "write", "-a", "127.0.0.1", "-s", port1, "-n", Self.nqn, "--lba", "0", "--pattern", "1", "--hostnqn", Self.host])
            #expect(ok.status == 0, "\(ok)")

            let text = try await t.run(["nvmf-target", "stats"] + t.control)
            #expect(text.status == 0, "\(text)")
            #expect(text.stdoutText.contains("listener \(listeners[1]): 0 reads (0 bytes), 1 writes (4096 bytes)\n"), "\(text)")
            #expect(text.stdoutText.contains("ANA group 1 (namespaces 1): \(listeners[0]) optimized, \(listeners[1]) inaccessible\n"), "\(text)")
            #expect(text.stdoutText.contains("subsystem \(Self.nqn): ANA change count \(changeCount + 1)\n"), "\(text)")

            let json = try await t.run(["nvmf-target", "ana"] + t.control + ["--nqn", Self.nqn, "--listener", listeners[1], "--state", "optimized", "--json"])
            #expect(json.status == 0, "\(json)")
            #expect(try json.json()["changed"] as? Bool == true && (try json.json()["state"] as? String) == "optimized", "\(json)")
            let back = try await t.run(["nvme", "write", "-a", "127.0.0.1", "-s", port2, "-n", Self.nqn, "--lba", "0", "--pattern", "2", "--hostnqn", Self.host])
            #expect(back.status == 0, "\(back)")
            #expect(try await t.listenerIO(1)["writeCommands"] as? Int == 2)
        }
    }

    @Test("ana and stats errors: unknown NQN, listener or group, a bad state, an unreachable or non-loopback control address — non-zero exit, clear message")
    func anaErrors() async throws {
        try await Self.withServedTarget { t in
            let listeners = try await t.listeners()
            let base = ["nvmf-target", "ana"] + t.control
            let cases: [([String], String)] = [
                (base + ["--nqn", "nqn.2026-11.io.halyard:nope", "--listener", listeners[0], "--state", "inaccessible"],
                 "unknown subsystem NQN nqn.2026-11.io.halyard:nope"),
                (base + ["--nqn", Self.nqn, "--listener", "127.0.0.1:1", "--state", "inaccessible"], "unknown listener 127.0.0.1:1"),
                (base + ["--nqn", Self.nqn, "--listener", listeners[0], "--state", "inaccessible", "--group", "5"], "unknown ANA group 5"),
                (base + ["--nqn", Self.nqn, "--listener", listeners[0], "--state", "sleepy"], "unknown --state 'sleepy'"),
                (base + ["--nqn", Self.nqn, "--listener", "nonsense", "--state", "change"], "invalid --listener 'nonsense'"),
                (["nvmf-target", "ana", "--control", "unix:\(t.dir.file("nobody.sock"))", "--nqn", Self.nqn, "--listener", listeners[0], "--state", "change"],
                 "unreachable"),
                (["nvmf-target", "stats", "--control", "10.1.2.3:9000"], "not a loopback address"),
                (["nvmf-target", "stats", "--control", "127.0.0.1:1"], "unreachable"),
            ]
            for (arguments, message) in cases {
                let run = try await t.run(arguments)
                #expect(run.status != 0, "\(arguments): \(run)")
                #expect(run.stderr.contains(message), "\(arguments): expected '\(message)' in \(run)")
            }
            // Nothing changed.
            let subsystem = try #require((try await t.stats()["subsystems"] as? [[String: Any]])?.first)
            #expect(subsystem["anaChangeCount"] as? Int == 1)
        }
    }

    @Test("hosts: deny disconnects and refuses, allow restores, allow-only/allow-any replace the allow list, remove-allow without a list is a conflict")
    func hosts() async throws {
        try await Self.withServedTarget { t in
            let listeners = try await t.listeners()
            let port = String(listeners[0].split(separator: ":").last!)
            let write = ["nvme", "write", "-a", "127.0.0.1", "-s", port, "-n", Self.nqn, "--lba", "0", "--pattern", "7", "--hostnqn", Self.host]
            #expect(try await t.run(write).status == 0)
            let base = ["nvmf-target", "hosts"] + t.control + ["--nqn", Self.nqn]

            let deny = try await t.run(base + ["--deny", Self.host])
            #expect(deny.status == 0 && deny.stdoutText == "\(Self.nqn): allow any host; deny \(Self.host)\n", "\(deny)")
            let refused = try await t.run(write)
            #expect(refused.status != 0, "a denied host cannot connect: \(refused)")
            #expect(refused.stderr.contains("SC 0x84"), "Connect Invalid Host: \(refused)")

            let allow = try await t.run(base + ["--allow", Self.host, "--json"])
            #expect(allow.status == 0, "\(allow)")
            #expect(try allow.json()["deniedHosts"] as? [String] == [], "\(allow)")
            #expect(try allow.json()["allowedHosts"] is NSNull, "null = any host: \(allow)")
            #expect(try await t.run(write).status == 0)

            let other = "nqn.2026-11.io.halyard:someone-else"
            let only = try await t.run(base + ["--allow-only", other])
            #expect(only.status == 0 && only.stdoutText == "\(Self.nqn): allow \(other); deny none\n", "\(only)")
            #expect(try await t.run(write).status != 0, "not on the allow list")
            #expect(try await t.run(base + ["--allow", Self.host]).stdoutText == "\(Self.nqn): allow \(Self.host), \(other); deny none\n")
            #expect(try await t.run(write).status == 0)
            #expect(try await t.run(base + ["--remove-allow", Self.host]).status == 0)
            #expect(try await t.run(write).status != 0)
            let any = try await t.run(base + ["--allow-any"])
            #expect(any.status == 0 && any.stdoutText == "\(Self.nqn): allow any host; deny none\n", "\(any)")

            let conflict = try await t.run(base + ["--remove-allow", Self.host])
            #expect(conflict.status != 0 && conflict.stderr.contains("there is no allow list") && conflict.stderr.contains("HTTP 409"), "\(conflict)")
            let two = try await t.run(base + ["--allow", Self.host, "--deny", Self.host])
            #expect(two.status != 0 && two.stderr.contains("exactly one of"), "\(two)")
            let unknown = try await t.run(["nvmf-target", "hosts"] + t.control + ["--nqn", "nqn.2026-11.io.halyard:nope", "--deny", Self.host])
            #expect(unknown.status != 0 && unknown.stderr.contains("unknown subsystem NQN") && unknown.stderr.contains("HTTP 404"), "\(unknown)")
            #expect(try await t.run(write).status == 0)
        }
    }

    @Test("serve refuses a control address that is not loopback")
    func serveRefusesRemoteControl() async throws {
        let dir = try TemporaryDirectory()
        let run = try await halyard(["nvmf-target", "--listen", "127.0.0.1:0", "--nqn", Self.nqn, "--memory", "1MiB", "--control", "0.0.0.0:9999"],
                                    stateDir: dir.path, timeout: .seconds(30))
        #expect(run.status != 0 && run.stderr.contains("not a loopback address"), "\(run)")
    }
}
