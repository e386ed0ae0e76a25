import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `halyard io-engine` run as a process, driven by `halyard pool …` / `halyard replica …` over
/// its gRPC API, `halyard nvme write|read` over NVMe/TCP, and a scrape of `/metrics`.
@Suite("halyard io-engine CLI", .serialized)
struct IOEngineCLITests {
    /// A `halyard io-engine` process on ephemeral ports; `ready()` waits for its ready line.
    final class ServedIOEngine: @unchecked Sendable {
        let process = Process()
        let dir: TemporaryDirectory
        let outPath: String, logPath: String
        private(set) var grpc = "", nvmfPort = "", metrics = ""

        init(dir: TemporaryDirectory, extra: [String]) throws {
            self.dir = dir
            if let problem = HalyardExecutable.problem { throw CLITestSetupError(problem) }
            outPath = dir.file("io-engine-\(UUID().uuidString.prefix(4)).out")
            logPath = outPath + ".log"
            process.executableURL = URL(fileURLWithPath: HalyardExecutable.path!)
            process.arguments = ["io-engine", "--node", "cli-node", "--nvmf", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
                                 "--metrics", "127.0.0.1:0", "--state-dir", dir.file("state")] + extra
            _ = FileManager.default.createFile(atPath: outPath, contents: nil)
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try #require(FileHandle(forWritingAtPath: outPath))
            process.standardError = try #require(FileHandle(forWritingAtPath: logPath))
            try process.run()
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        /// Waits for "ready node=… nvmf=HOST:PORT grpc=HOST:PORT metrics=HOST:PORT" and keeps the endpoints.
        func ready() async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
                if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) {
                    for field in line.split(separator: " ") {
                        let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
                        guard parts.count == 2 else { continue }
                        switch parts[0] {
                        case "grpc": grpc = parts[1]
                        case "nvmf": nvmfPort = String(parts[1].split(separator: ":").last ?? "")
                        case "metrics": metrics = parts[1]
                        default: break
                        }
                    }
                    return
                }
                guard process.isRunning else { throw CLITestSetupError("halyard io-engine exited \(process.terminationStatus): \(log)") }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw CLITestSetupError("no ready line within 60 s: \(log)")
        }

        func stop() async -> Int32 {
            if process.isRunning { process.terminate() }
            let deadline = ContinuousClock.now + .seconds(20)
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            return process.terminationStatus
        }

        func cli(_ arguments: [String]) async throws -> CLIRun {
            try await halyard(arguments + ["--io-engine", grpc], stateDir: dir.file("host"))
        }

        func scrape() async throws -> String {
            let (data, _) = try await URLSession.shared.data(from: try #require(URL(string: "http://\(metrics)/metrics")))
            return String(decoding: data, as: UTF8.self)
        }
    }

    static func jsonArray(_ run: CLIRun) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: run.stdout) as? [[String: Any]], "not a JSON array: \(run)")
    }

    @Test("pool and replica lifecycle over the CLI; I/O over NVMe/TCP; thin allocation; metrics; restart keeps everything")
    func lifecycle() async throws {
        let dir = try TemporaryDirectory()
        let disk = dir.file("pool-1.img")
        let engine = try ServedIOEngine(dir: dir, extra: ["--create-pool", "pool-1:\(disk):256MiB"])
        do {
            try await engine.ready()
            // The --create-pool pool, in a table and as JSON.
            let table = try await engine.cli(["pool", "list"])
            #expect(table.status == 0, "\(table)")
            #expect(table.stdoutText.contains("pool-1") && table.stdoutText.contains("online"), "\(table)")
            let pools = try Self.jsonArray(try await engine.cli(["pool", "list", "--json"]))
            #expect(pools.count == 1)
            #expect(pools.first?["name"] as? String == "pool-1")
            #expect((pools.first?["capacityBytes"] as? Int ?? 0) > 200 << 20)
            #expect(pools.first?["usedBytes"] as? Int == 0)

            // A thin, shared replica: 8 MiB written through NVMe/TCP use ≈ 8 MiB of the pool.
            let uuid = "6f1e3c2a-0d4b-4e8f-9a7c-5b2d1e0f3a4c"
            let created = try await engine.cli(["replica", "create", "--pool", "pool-1", "--size", "128MiB", "--uuid", uuid, "--share", "--json"])
            #expect(created.status == 0, "\(created)")
            let replica = try created.json()
            let nqn = try #require(replica["nqn"] as? String)
            #expect(nqn == "nqn.2026-11.io.halyard:replica:\(uuid)")
            #expect((replica["uri"] as? String)?.hasSuffix(":\(engine.nvmfPort)/\(nqn)") == true, "\(replica)")
            let write = try await halyard(["nvme", "write", "-a", "127.0.0.1", "-s", engine.nvmfPort, "-n", nqn,
                                           "--lba", "4096", "--blocks", "2048", "--pattern", "0x5a"], stateDir: dir.file("host"))
            #expect(write.status == 0, "\(write)")
            let after = try (try await engine.cli(["replica", "get", uuid, "--json"])).json()
            #expect(after["allocatedBytes"] as? Int == 8 << 20, "\(after)")
            #expect(after["thin"] as? Bool == true && after["shared"] as? Bool == true)
            let ranges = try (try await engine.cli(["replica", "ranges", uuid, "--json"])).json()
            #expect(ranges["allocatedBytes"] as? Int == 8 << 20, "\(ranges)")

            // Errors: the gRPC code name and the message, exit status 1.
            let unknownPool = try await engine.cli(["replica", "create", "--pool", "nope", "--size", "1GiB"])
            #expect(unknownPool.status == 1 && unknownPool.stderr.contains("error: notFound:") && unknownPool.stderr.contains("nope"), "\(unknownPool)")
            let misaligned = try await engine.cli(["replica", "create", "--pool", "pool-1", "--size", "1000"])
            #expect(misaligned.status == 1 && misaligned.stderr.contains("error: invalidArgument:"), "\(misaligned)")
            let conflicting = try await engine.cli(["replica", "create", "--pool", "pool-1", "--size", "64MiB", "--uuid", uuid])
            #expect(conflicting.status == 1 && conflicting.stderr.contains("error: alreadyExists:"), "\(conflicting)")
            let tooBig = try await engine.cli(["replica", "create", "--pool", "pool-1", "--size", "1GiB", "--thick"])
            #expect(tooBig.status == 1 && tooBig.stderr.contains("error: resourceExhausted:"), "\(tooBig)")
            let busy = try await engine.cli(["pool", "destroy", "pool-1"])
            #expect(busy.status == 1 && busy.stderr.contains("error: failedPrecondition:"), "\(busy)")

            // /metrics: pool usage and the replica's write counters.
            let metrics = try await engine.scrape()
            #expect(metrics.contains("halyard_pool_used_bytes{pool=\"pool-1\"} \(8 << 20)"), "\(metrics.prefix(3000))")
            #expect(metrics.contains("halyard_replica_written_bytes_total{pool=\"pool-1\",replica=\"\(uuid)\"} \(8 << 20)"))
            #expect(metrics.contains("halyard_process_resident_memory_bytes"))
            #expect(metrics.contains("halyard_grpc_requests_total{method=\"CreateReplica\",code=\"notFound\"}"))

            #expect(await engine.stop() == 0, "SIGTERM is a clean shutdown: \(engine.log)")
        } catch {
            _ = await engine.stop()
            throw error
        }

        // Restart without --create-pool: the pool (pools.json), the replica, its data and its share are back.
        let again = try ServedIOEngine(dir: dir, extra: [])
        do {
            try await again.ready()
            let replicas = try Self.jsonArray(try await again.cli(["replica", "list", "--json"]))
            #expect(replicas.count == 1)
            #expect(replicas.first?["allocatedBytes"] as? Int == 8 << 20)
            #expect(replicas.first?["shared"] as? Bool == true)
            let nqn = "nqn.2026-11.io.halyard:replica:6f1e3c2a-0d4b-4e8f-9a7c-5b2d1e0f3a4c"
            let read = try await halyard(["nvme", "read", "-a", "127.0.0.1", "-s", again.nvmfPort, "-n", nqn,
                                          "--lba", "4096", "--blocks", "1", "--output", dir.file("block")], stateDir: dir.file("host"))
            #expect(read.status == 0, "\(read)")
            let block = try Data(contentsOf: URL(fileURLWithPath: dir.file("block")))
            #expect(block.count == 4096 && block.allSatisfy { $0 == 0x5A })
            #expect(await again.stop() == 0)
        } catch {
            _ = await again.stop()
            throw error
        }
    }

    @Test("an unreachable io-engine: exit 1 and 'error: unavailable'")
    func unreachable() async throws {
        let dir = try TemporaryDirectory()
        let run = try await halyard(["pool", "list", "--io-engine", "127.0.0.1:1"], stateDir: dir.path)
        #expect(run.status == 1 && run.stderr.contains("error: unavailable"), "\(run)")
    }
}
