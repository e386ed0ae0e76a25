import Foundation
import Testing

/// `halyard nvme connect-all` against in-process targets (part of the serialized CLI suite).
extension NVMeCLITests {
    @Test("connect-all --json: one subsystem on two listeners, one namespace, both paths optimized; everything disconnected after")
    func connectAll() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "connect-all", "-a", "127.0.0.1", "-s", String(t.discoveryPort), "--json"], stateDir: dir.path)
            #expect(run.status == 0 && run.stderr.isEmpty, "\(run)")
            let json = try run.json()
            let discovery = try #require(json["discovery"] as? [[String: Any]])
            #expect(discovery.count == 1 && discovery.first?["records"] as? Int == 2 && discovery.first?["error"] == nil, "\(run)")
            #expect((json["skipped"] as? [Any])?.isEmpty == true, "\(run)")
            let subsystems = try #require(json["subsystems"] as? [[String: Any]])
            #expect(subsystems.count == 1, "\(run)")
            let subsystem = try #require(subsystems.first)
            #expect(subsystem["subnqn"] as? String == CLITarget.nqn)
            let controllers = try #require(subsystem["controllers"] as? [[String: Any]])
            #expect(controllers.compactMap { $0["trsvcid"] as? String } == t.ports.map(String.init), "\(run)")
            #expect(controllers.allSatisfy { $0["error"] == nil && $0["cntlid"] is Int && $0["traddr"] as? String == "127.0.0.1" }, "\(run)")
            let namespaces = try #require(subsystem["namespaces"] as? [[String: Any]])
            #expect(namespaces.count == 1, "\(run)")
            let ns = try #require(namespaces.first)
            #expect(ns["nsid"] as? Int == 1 && ns["size_bytes"] as? Int == 512 << 17)
            let paths = try #require(ns["paths"] as? [[String: Any]])
            #expect(paths.compactMap { $0["path"] as? String } == t.ports.map { "127.0.0.1:\($0)" }, "\(run)")
            #expect(paths.map { $0["state"] as? String } == ["optimized", "optimized"], "\(run)")
            #expect(paths.map { $0["usable"] as? Bool } == [true, true], "both paths take I/O in the multipath device: \(run)")

            let text = try await halyard(["nvme", "connect-all", "-a", "127.0.0.1", "-s", String(t.discoveryPort)], stateDir: dir.path)
            #expect(text.status == 0 && text.stderr.isEmpty, "\(text)")
            #expect(text.stdoutText.contains("discovery 127.0.0.1:\(t.discoveryPort): 2 records"), "\(text)")
            #expect(text.stdoutText.contains("subsystem \(CLITarget.nqn)\n"), "\(text)")
            #expect(text.stdoutText.contains("path 127.0.0.1:\(t.ports[1]): controller "), "\(text)")
            #expect(text.stdoutText.contains("  127.0.0.1:\(t.ports[0]): optimized\n  127.0.0.1:\(t.ports[1]): optimized\n"), "\(text)")

            // Every controller was shut down when the command ended.
            let deadline = ContinuousClock.now + .seconds(20)
            while !t.connectedHosts().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(t.connectedHosts().isEmpty, "controllers left connected: \(t.connectedHosts())")
        }
    }

    @Test("connect-all: an advertised address nobody listens on is an error naming it (exit 1), the other subsystem still connects; --use-discovery-address reaches it")
    func connectAllUnreachable() async throws {
        try await withTarget { t, dir in
            // Its listener is on 127.0.0.1 but its discovery log entry says 127.0.0.2 (like a target
            // advertising an address the host cannot reach): connecting there is refused at once.
            let other = try await CLITarget.start(nqn: "nqn.2026-11.io.halyard:cli-test-other", listeners: 1, advertise: "127.0.0.2")
            do {
                let args = ["nvme", "connect-all", "-a", "127.0.0.1", "-s", String(t.discoveryPort), "-a", "127.0.0.1", "-s", String(other.discoveryPort),
                            "--connect-timeout", "10", "--json"]
                let run = try await halyard(args, stateDir: dir.path)
                #expect(run.status == 1, "\(run)")
                let unreachable = "127.0.0.2:\(other.ports[0])"
                #expect(run.stderrLines.count == 1 && run.stderr.hasPrefix("error: connect to \(unreachable) failed: "), "\(run)")
                let subsystems = try #require(try run.json()["subsystems"] as? [[String: Any]])
                #expect(subsystems.compactMap { $0["subnqn"] as? String } == [CLITarget.nqn, other.subsystemNQN], "\(run)")
                // The reachable subsystem: both paths, the namespace on both.
                let good = try #require(subsystems.first)
                #expect((good["controllers"] as? [[String: Any]])?.allSatisfy { $0["error"] == nil } == true, "\(run)")
                let goodPaths = (good["namespaces"] as? [[String: Any]])?.first?["paths"] as? [[String: Any]]
                #expect(goodPaths?.map { $0["state"] as? String } == ["optimized", "optimized"], "\(run)")
                // The unreachable one: its path's error names the address; no namespace.
                let bad = try #require(subsystems.last)
                let badControllers = try #require(bad["controllers"] as? [[String: Any]])
                #expect(badControllers.count == 1 && (badControllers.first?["error"] as? String)?.contains(unreachable) == true, "\(run)")
                #expect((bad["namespaces"] as? [Any])?.isEmpty == true, "\(run)")

                // The same with each entry's address replaced by the discovery controller's: all connect.
                let remapped = try await halyard(args + ["--use-discovery-address"], stateDir: dir.path)
                #expect(remapped.status == 0 && remapped.stderr.isEmpty, "\(remapped)")
                let all = try #require(try remapped.json()["subsystems"] as? [[String: Any]])
                let otherControllers = all.last?["controllers"] as? [[String: Any]]
                #expect(otherControllers?.count == 1 && otherControllers?.first?["traddr"] as? String == "127.0.0.1"
                        && otherControllers?.first?["trsvcid"] as? String == String(other.ports[0]) && otherControllers?.first?["error"] == nil,
                        "\(remapped)")
                let otherPaths = (all.last?["namespaces"] as? [[String: Any]])?.first?["paths"] as? [[String: Any]]
                #expect(otherPaths?.map { $0["state"] as? String } == ["optimized"], "\(remapped)")
            } catch {
                await other.stop()
                throw error
            }
            await other.stop()
        }
    }

    @Test("connect-all: a discovery controller that does not answer is an error (exit 1)")
    func connectAllDiscoveryDown() async throws {
        let dir = try TemporaryDirectory()
        let run = try await halyard(["nvme", "connect-all", "-a", "127.0.0.1", "-s", "1"], stateDir: dir.path)
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr == "error: connect to discovery controller 127.0.0.1:1 failed: TCP connection refused\n", "\(run)")
        #expect(run.stdoutText.contains("discovery 127.0.0.1:1: FAILED: "), "\(run)")
    }
}
