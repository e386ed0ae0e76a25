import Foundation
import Testing

/// `halyard nexus …` against a `halyard io-engine` process, and `halyard io-engine --demo-volume`:
/// the CLI forms of docs/notes/nexus-plan.md, table and `--json` output, `error: <code>: <message>`.
@Suite("halyard nexus CLI", .serialized)
struct NexusCLITests {
    typealias Engine = IOEngineCLITests.ServedIOEngine

    static func json(_ run: CLIRun) throws -> [String: Any] {
        #expect(run.status == 0, "\(run)")
        return try run.json()
    }

    /// Polls `nexus get UUID --json` until `done` holds.
    static func waitFor(_ engine: Engine, _ uuid: String, _ what: String, _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(30)
        var last = try json(try await engine.cli(["nexus", "get", uuid, "--json"]))
        while !done(last) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            last = try json(try await engine.cli(["nexus", "get", uuid, "--json"]))
        }
        #expect(done(last), "\(what): \(last)")
        return last
    }

    static func children(_ nexus: [String: Any]) -> [[String: Any]] { nexus["children"] as? [[String: Any]] ?? [] }

    @Test("nexus create/list/get/publish/child/rebuild/limits/health/unpublish/shutdown/destroy over the CLI; errors")
    func lifecycle() async throws {
        let dir = try TemporaryDirectory()
        let engine = try Engine(dir: dir, extra: ["--create-pool", "pool-1:\(dir.file("pool-1.img")):256MiB"])
        do {
            try await engine.ready()
            var uris: [String] = []
            for _ in 0..<2 {
                let replica = try Self.json(try await engine.cli(["replica", "create", "--pool", "pool-1", "--size", "64MiB", "--share", "--json"]))
                uris.append(try #require(replica["uri"] as? String))
            }
            let uuid = "3d5c6a1e-8f2b-4c7d-9e0a-1b2c3d4e5f60", volume = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
            let nqn = "nqn.2026-11.io.halyard:\(volume)"

            // create (published), then list and get.
            let created = try Self.json(try await engine.cli([
                "nexus", "create", uuid, "--volume", volume, "--size", "64MiB", "--child", uris[0], "--child", uris[1],
                "--min-cntlid", "10", "--max-cntlid", "20", "--resv-key", "0x1234", "--publish", "--json",
            ]))
            #expect(created["state"] as? String == "Online" && created["nqn"] as? String == nqn, "\(created)")
            #expect(created["uri"] as? String == "nvmf://127.0.0.1:\(engine.nvmfPort)/\(nqn)")
            #expect(created["reservationKey"] as? String == "0x1234" && created["minCntlid"] as? Int == 10 && created["maxCntlid"] as? Int == 20)
            #expect(Self.children(created).map { $0["local"] as? Bool } == [true, true], "both replicas are this engine's")
            let table = try await engine.cli(["nexus", "list"])
            #expect(table.status == 0 && table.stdoutText.contains(uuid) && table.stdoutText.contains("Online")
                && table.stdoutText.contains("2/2 online"), "\(table)")
            let detail = try await engine.cli(["nexus", "get", uuid])
            #expect(detail.status == 0 && detail.stdoutText.contains("nqn:") && detail.stdoutText.contains(uris[1]), "\(detail)")
            let listed = try IOEngineCLITests.jsonArray(try await engine.cli(["nexus", "list", "--json"]))
            #expect(listed.count == 1 && listed.first?["uuid"] as? String == uuid)

            // I/O through the published volume.
            let write = try await halyard(["nvme", "write", "-a", "127.0.0.1", "-s", engine.nvmfPort, "-n", nqn,
                                           "--lba", "0", "--blocks", "256", "--pattern", "0x6b"], stateDir: dir.file("host"))
            #expect(write.status == 0, "\(write)")

            // publish again with an allowed host: prints the NQN and URI.
            let published = try await engine.cli(["nexus", "publish", uuid, "--allow-host", "nqn.2014-08.org.nvmexpress:uuid:cli-host"])
            #expect(published.status == 0 && published.stdoutText.contains("nqn: \(nqn)")
                && published.stdoutText.contains("uri: nvmf://127.0.0.1:\(engine.nvmfPort)/\(nqn)"), "\(published)")

            // children: fault, online (rebuilt), offline, online.
            let faulted = try Self.json(try await engine.cli(["nexus", "child", "fault", uuid, uris[1], "--json"]))
            #expect(faulted["state"] as? String == "Degraded", "\(faulted)")
            #expect(Self.children(faulted).last?["state"] as? String == "Faulted" && Self.children(faulted).last?["reason"] as? String == "by request")
            let health = try Self.json(try await engine.cli(["nexus", "health", uuid, "--json"]))
            #expect((health["children"] as? [[String: Any]])?.map { $0["healthy"] as? Bool } == [true, false], "\(health)")
            #expect(health["key"] as? String == "/halyard/v1/volumes/\(volume)/nexus/\(uuid)/health")
            let healthTable = try await engine.cli(["nexus", "health", uuid])
            #expect(healthTable.status == 0 && healthTable.stdoutText.contains("clean shutdown: no"), "\(healthTable)")
            #expect(try await engine.cli(["nexus", "child", "online", uuid, uris[1]]).status == 0)
            _ = try await Self.waitFor(engine, uuid, "rebuilt") { $0["state"] as? String == "Online" }
            #expect(try await engine.cli(["nexus", "child", "offline", uuid, uris[0]]).status == 0)
            #expect(try await engine.cli(["nexus", "child", "online", uuid, uris[0]]).status == 0)
            _ = try await Self.waitFor(engine, uuid, "rebuilt") { $0["state"] as? String == "Online" }
            let history = try IOEngineCLITests.jsonArray(try await engine.cli(["nexus", "rebuild", "history", uuid, "--json"]))
            #expect(history.count == 2 && history.allSatisfy { $0["state"] as? String == "Completed" }, "\(history)")
            let historyTable = try await engine.cli(["nexus", "rebuild", "history", uuid])
            #expect(historyTable.status == 0 && historyTable.stdoutText.contains("Completed") && historyTable.stdoutText.contains("100%"),
                    "\(historyTable)")
            let running = try IOEngineCLITests.jsonArray(try await engine.cli(["nexus", "rebuild", "list", uuid, "--json"]))
            #expect(running.isEmpty)

            // rebuild limits: get, set.
            let limits = try Self.json(try await engine.cli(["nexus", "rebuild", "limits", "--json"]))
            #expect(limits["concurrency"] as? Int == 4 && limits["segmentBytes"] as? Int == 1 << 20 && limits["bytesPerSecond"] == nil, "\(limits)")
            let set = try Self.json(try await engine.cli(["nexus", "rebuild", "limits", "--concurrency", "2", "--rate", "50MiB/s", "--segment", "2MiB", "--json"]))
            #expect(set["concurrency"] as? Int == 2 && set["bytesPerSecond"] as? Int == 50 << 20 && set["segmentBytes"] as? Int == 2 << 20, "\(set)")
            let limitsTable = try await engine.cli(["nexus", "rebuild", "limits"])
            #expect(limitsTable.stdoutText.contains("50.0 MiB/s") && limitsTable.stdoutText.contains("2.0 MiB"), "\(limitsTable)")
            let badLimits = try await engine.cli(["nexus", "rebuild", "limits", "--concurrency", "0"])
            #expect(badLimits.status == 1 && badLimits.stderr.contains("error: invalidArgument:"), "\(badLimits)")

            // Errors: the gRPC code name and the message, exit status 1.
            let unknown = try await engine.cli(["nexus", "get", "11111111-2222-4333-8444-555555555555"])
            #expect(unknown.status == 1 && unknown.stderr.contains("error: notFound:") && unknown.stderr.contains("11111111"), "\(unknown)")
            let badURI = try await engine.cli(["nexus", "child", "add", uuid, "http://x"])
            #expect(badURI.status == 1 && badURI.stderr.contains("error: invalidArgument:"), "\(badURI)")
            let lastOnline = try await engine.cli(["nexus", "child", "fault", uuid, uris[0]])
            #expect(lastOnline.status == 0, "two online children: one may be faulted: \(lastOnline)")
            let onlyOne = try await engine.cli(["nexus", "child", "fault", uuid, uris[1]])
            #expect(onlyOne.status == 1 && onlyOne.stderr.contains("error: failedPrecondition:"), "\(onlyOne)")
            let conflicting = try await engine.cli(["nexus", "create", uuid, "--volume", volume, "--size", "32MiB", "--child", uris[0]])
            #expect(conflicting.status == 1 && conflicting.stderr.contains("error: alreadyExists:"), "\(conflicting)")
            let zero = try await engine.cli(["nexus", "create", "22222222-2222-4333-8444-555555555555", "--volume", volume, "--size", "0",
                                             "--child", uris[0]])
            #expect(zero.status == 1 && zero.stderr.contains("error: invalidArgument:"), "\(zero)")
            let usage = try await engine.cli(["nexus", "create", uuid, "--volume", volume, "--size", "64MiB"])
            #expect(usage.status != 0 && usage.stderr.contains("--child"), "a create without --child is a usage error: \(usage)")

            // metrics.
            let metrics = try await engine.scrape()
            #expect(metrics.contains("halyard_nexus_state{nexus=\"\(uuid)\",volume=\"\(volume)\",state=\"Degraded\"} 1"), "\(metrics.suffix(2000))")

            // unpublish, shutdown, destroy.
            let unpublished = try await engine.cli(["nexus", "unpublish", uuid])
            #expect(unpublished.status == 0 && unpublished.stdoutText.contains("unpublished"), "\(unpublished)")
            let down = try Self.json(try await engine.cli(["nexus", "shutdown", uuid, "--json"]))
            #expect(down["state"] as? String == "Shutdown" && down["shutdownCompletedAtUnixNanos"] != nil, "\(down)")
            let clean = try Self.json(try await engine.cli(["nexus", "health", uuid, "--json"]))
            #expect(clean["cleanShutdown"] as? Bool == true)
            let destroyed = try await engine.cli(["nexus", "destroy", uuid])
            #expect(destroyed.status == 0 && destroyed.stdoutText.contains("destroyed"), "\(destroyed)")
            #expect(try IOEngineCLITests.jsonArray(try await engine.cli(["nexus", "list", "--json"])).isEmpty)
            #expect(try await engine.cli(["nexus", "health", uuid]).status == 0, "the record outlives the nexus (embedded store)")
            #expect(await engine.stop() == 0, "\(engine.log)")
        } catch {
            _ = await engine.stop()
            throw error
        }
    }

    @Test("io-engine --demo-volume: pool, replica and a published nexus; the printed NQN takes I/O; the same NQN after a restart")
    func demoVolume() async throws {
        let dir = try TemporaryDirectory()
        func demoLines(_ engine: Engine) throws -> (nqn: String, uri: String, connect: String) {
            let out = try String(contentsOfFile: engine.outPath, encoding: .utf8)
            let demo = try #require(out.split(separator: "\n").first { $0.hasPrefix("demo volume: ") }, "\(out)" as Comment)
            let connect = try #require(out.split(separator: "\n").first { $0.hasPrefix("nvme connect ") }, "\(out)" as Comment)
            var fields: [String: String] = [:]
            for field in demo.dropFirst("demo volume: ".count).split(separator: " ") {
                let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            return (try #require(fields["nqn"]), try #require(fields["uri"]), String(connect))
        }

        let engine = try Engine(dir: dir, extra: ["--demo-volume", "64MiB"])
        let first: String
        do {
            try await engine.ready()
            let (nqn, uri, connect) = try demoLines(engine)
            first = nqn
            #expect(nqn.hasPrefix("nqn.2026-11.io.halyard:") && !nqn.contains("replica"), "\(nqn)")
            #expect(uri == "nvmf://127.0.0.1:\(engine.nvmfPort)/\(nqn)")
            #expect(connect == "nvme connect -t tcp -a 127.0.0.1 -s \(engine.nvmfPort) -n \(nqn)", "\(connect)")
            let pools = try IOEngineCLITests.jsonArray(try await engine.cli(["pool", "list", "--json"]))
            #expect(pools.map { $0["name"] as? String } == ["demo"] && pools.first?["disk"] as? String == dir.file("state") + "/demo-pool.img")
            let nexuses = try IOEngineCLITests.jsonArray(try await engine.cli(["nexus", "list", "--json"]))
            #expect(nexuses.count == 1 && nexuses.first?["state"] as? String == "Online" && nexuses.first?["published"] as? Bool == true)
            let write = try await halyard(["nvme", "write", "-a", "127.0.0.1", "-s", engine.nvmfPort, "-n", nqn,
                                           "--lba", "8", "--blocks", "4", "--pattern", "0x3c"], stateDir: dir.file("host"))
            #expect(write.status == 0, "\(write)")
            #expect(await engine.stop() == 0, "\(engine.log)")
        } catch {
            _ = await engine.stop()
            throw error
        }

        let again = try Engine(dir: dir, extra: ["--demo-volume", "64MiB"])
        do {
            try await again.ready()
            let (nqn, _, _) = try demoLines(again)
            #expect(nqn == first, "the demo volume keeps its NQN across restarts")
            let replicas = try IOEngineCLITests.jsonArray(try await again.cli(["replica", "list", "--json"]))
            #expect(replicas.count == 1, "the replica is reused")
            let read = try await halyard(["nvme", "read", "-a", "127.0.0.1", "-s", again.nvmfPort, "-n", nqn,
                                          "--lba", "8", "--blocks", "1", "--output", dir.file("block")], stateDir: dir.file("host"))
            #expect(read.status == 0, "\(read)")
            let block = try Data(contentsOf: URL(fileURLWithPath: dir.file("block")))
            #expect(block.count == 4096 && block.allSatisfy { $0 == 0x3C }, "the data written before the restart")
            #expect(await again.stop() == 0)
        } catch {
            _ = await again.stop()
            throw error
        }
    }

    @Test("io-engine --emulated-media-latency: every replica read and write of the demo volume takes at least that long; a bad value is refused")
    func emulatedMediaLatency() async throws {
        let dir = try TemporaryDirectory()
        let bad = try await halyard(["io-engine", "--state-dir", dir.file("bad"), "--emulated-media-latency", "20 parsecs"],
                                    stateDir: dir.file("host"))
        #expect(bad.status != 0 && bad.stderr.contains("expected a whole number of us, ms or s"), "\(bad)")

        let engine = try Engine(dir: dir, extra: ["--demo-volume", "64MiB", "--emulated-media-latency", "20ms"])
        do {
            try await engine.ready()
            let out = try String(contentsOfFile: engine.outPath, encoding: .utf8)
            let demo = try #require(out.split(separator: "\n").first { $0.hasPrefix("demo volume: ") }, "\(out)" as Comment)
            let nqn = try #require(demo.split(separator: " ").first { $0.hasPrefix("nqn=") }?.dropFirst(4))
            for workload in ["randwrite", "randread"] {
                let run = try await halyard(["nvme", "perf", "-a", "127.0.0.1", "-s", engine.nvmfPort, "-n", String(nqn),
                                             "-q", "1", "-o", "4096", "-w", workload, "-t", "1", "--json"], stateDir: dir.file("host"))
                #expect(run.status == 0, "\(run)")
                let json = try run.json()
                #expect(json["errors"] as? Int == 0)
                // A lower bound only: the replica cannot answer before the emulated media does.
                let p50 = try #require(json["lat_p50_us"] as? Double)
                #expect(p50 >= 20_000, "\(workload) p50 \(p50) µs with 20 ms of media latency")
            }
            #expect(await engine.stop() == 0, "\(engine.log)")
        } catch {
            _ = await engine.stop()
            throw error
        }
    }
}
