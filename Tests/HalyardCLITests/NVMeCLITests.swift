import Foundation
import NIOCore
import NVMe
import NVMeHost
import Storage
import Synchronization
import Testing

/// `halyard nvme …` run as a subprocess (the built executable) against an in-process target.
/// Serialized: perf runs measure, and the subprocesses share two cores.
@Suite("halyard nvme CLI", .serialized)
struct NVMeCLITests {
    @Test("discover --json lists the subsystem on both listeners")
    func discover() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "discover", "-a", "127.0.0.1", "-s", String(t.discoveryPort), "--json"], stateDir: dir.path)
            #expect(run.status == 0, "\(run)")
            let records = try #require(try run.json()["records"] as? [[String: Any]])
            let ours = records.filter { $0["subnqn"] as? String == CLITarget.nqn }
            #expect(Set(ours.compactMap { $0["trsvcid"] as? String }) == Set(t.ports.map(String.init)), "\(run)")
            #expect(ours.allSatisfy { $0["trtype"] as? String == "tcp" && $0["traddr"] as? String == "127.0.0.1" })

            let text = try await halyard(["nvme", "discover", "-a", "127.0.0.1", "-s", String(t.discoveryPort)], stateDir: dir.path)
            #expect(text.status == 0 && text.stdoutText.contains("subnqn:  \(CLITarget.nqn)"), "\(text)")
        }
    }

    @Test("identify --json shows the subsystem NQN, controller ID and namespace")
    func identify() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "identify"] + t.connectArgs + ["--json"], stateDir: dir.path)
            #expect(run.status == 0, "\(run)")
            let json = try run.json()
            #expect(json["subnqn"] as? String == CLITarget.nqn)
            let cntlid = try #require(json["cntlid"] as? Int)
            #expect((1...0xFFEF).contains(cntlid))
            let namespaces = try #require(json["namespaces"] as? [[String: Any]])
            #expect(namespaces.count == 1)
            #expect(namespaces.first?["nsid"] as? Int == 1)
            #expect(namespaces.first?["block_size"] as? Int == 512)
            #expect(namespaces.first?["blocks"] as? Int == 1 << 17)
            #expect((namespaces.first?["nguid"] as? String)?.count == 32)

            let one = try await halyard(["nvme", "identify"] + t.connectArgs + ["--namespace", "1"], stateDir: dir.path)
            #expect(one.status == 0 && one.stdoutText.contains("subnqn    : \(CLITarget.nqn)"), "\(one)")
        }
    }

    @Test("connect --json over two paths: both controllers, the namespace, ANA optimized on each path")
    func connectTwoPaths() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "connect", "-a", "127.0.0.1", "-s", String(t.ports[0]), "-a", "127.0.0.1", "-s", String(t.ports[1]),
                                         "-n", CLITarget.nqn, "--json"], stateDir: dir.path)
            #expect(run.status == 0, "\(run)")
            let json = try run.json()
            let controllers = try #require(json["controllers"] as? [[String: Any]])
            #expect(controllers.count == 2)
            let ids = controllers.compactMap { $0["cntlid"] as? Int }
            #expect(ids.count == 2 && Set(ids).count == 2, "two distinct controllers")
            let namespaces = try #require(json["namespaces"] as? [[String: Any]])
            let ns = try #require(namespaces.first)
            #expect(ns["nsid"] as? Int == 1 && ns["size_bytes"] as? Int == 512 << 17 && ns["block_size"] as? Int == 512)
            #expect((ns["uuid"] as? String)?.count == 36)
            let paths = try #require(ns["paths"] as? [[String: Any]])
            #expect(paths.map { $0["state"] as? String } == ["optimized", "optimized"])

            // A path that does not answer: reported, exit 1, one error line.
            let bad = try await halyard(["nvme", "connect", "-a", "127.0.0.1", "-s", t.port, "-a", "127.0.0.1", "-s", "1",
                                         "-n", CLITarget.nqn], stateDir: dir.path)
            #expect(bad.status == 1, "\(bad)")
            #expect(bad.stderrLines.count == 1 && bad.stderr.hasPrefix("error: connect to 127.0.0.1:1 failed:"), "\(bad)")
            #expect(bad.stdoutText.contains("path 127.0.0.1:\(t.port): controller"))
        }
    }

    @Test("write --pattern, then read it back to a file and as a hex dump")
    func writePatternReadBack() async throws {
        try await withTarget { t, dir in
            let write = try await halyard(["nvme", "write"] + t.connectArgs + ["--lba", "8", "--pattern", "0xa5", "--blocks", "4"], stateDir: dir.path)
            #expect(write.status == 0, "\(write)")
            let file = dir.file("read.bin")
            let read = try await halyard(["nvme", "read"] + t.connectArgs + ["--lba", "7", "--blocks", "6", "--output", file], stateDir: dir.path)
            #expect(read.status == 0, "\(read)")
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(data.count == 6 * 512)
            #expect(data.prefix(512).allSatisfy { $0 == 0 }, "LBA 7 untouched")
            #expect(data.dropFirst(512).prefix(2048).allSatisfy { $0 == 0xA5 }, "LBAs 8-11 hold the pattern")
            #expect(data.suffix(512).allSatisfy { $0 == 0 }, "LBA 12 untouched")
            // The target's device holds it too.
            let onDevice = try await t.device.read(lba: 8, blocks: 4, on: t.group.next()).get()
            #expect(onDevice.readableBytesView.allSatisfy { $0 == 0xA5 })

            let dump = try await halyard(["nvme", "read"] + t.connectArgs + ["--lba", "8", "--blocks", "1"], stateDir: dir.path)
            #expect(dump.status == 0, "\(dump)")
            #expect(dump.stdoutText == """
                00001000  a5 a5 a5 a5 a5 a5 a5 a5  a5 a5 a5 a5 a5 a5 a5 a5  |................|
                *
                00001200

                """, "\(dump)")
        }
    }

    @Test("write --input larger than MDTS, read back byte for byte (last block zero padded)")
    func writeFileReadBack() async throws {
        try await withTarget { t, dir in
            let bytes = testBytes(1_500_000, seed: 7)  // > 1 MiB MDTS: split into several commands
            let input = dir.file("in.bin")
            try Data(bytes).write(to: URL(fileURLWithPath: input))
            let write = try await halyard(["nvme", "write"] + t.connectArgs + ["--lba", "100", "--input", input], stateDir: dir.path)
            #expect(write.status == 0, "\(write)")
            let blocks = (bytes.count + 511) / 512
            #expect(write.stdoutText.contains("wrote \(blocks) blocks"), "\(write)")
            let output = dir.file("out.bin")
            let read = try await halyard(["nvme", "read"] + t.connectArgs + ["--lba", "100", "--blocks", String(blocks), "--output", output],
                                         stateDir: dir.path)
            #expect(read.status == 0, "\(read)")
            let back = try Data(contentsOf: URL(fileURLWithPath: output))
            #expect(back.count == blocks * 512)
            #expect(back.prefix(bytes.count) == Data(bytes))
            #expect(back.dropFirst(bytes.count).allSatisfy { $0 == 0 })
        }
    }

    @Test("write and read over two paths (multipath); a dead extra path is a warning, every path dead an error")
    func multipathReadWrite() async throws {
        try await withTarget { t, dir in
            let both = ["-a", "127.0.0.1", "-s", String(t.ports[0]), "-a", "127.0.0.1", "-s", String(t.ports[1]), "-n", CLITarget.nqn]
            let bytes = testBytes(64 * 512, seed: 3)
            let input = dir.file("in.bin")
            try Data(bytes).write(to: URL(fileURLWithPath: input))
            let write = try await halyard(["nvme", "write"] + both + ["--lba", "2000", "--input", input], stateDir: dir.path)
            #expect(write.status == 0 && write.stderr.isEmpty, "\(write)")
            let output = dir.file("out.bin")
            let read = try await halyard(["nvme", "read"] + both + ["--lba", "2000", "--blocks", "64", "--output", output], stateDir: dir.path)
            #expect(read.status == 0 && read.stderr.isEmpty, "\(read)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == Data(bytes))

            let oneDead = try await halyard(["nvme", "read", "-a", "127.0.0.1", "-s", t.port, "-a", "127.0.0.1", "-s", "1", "-n", CLITarget.nqn,
                                             "--lba", "2000", "--blocks", "64", "--output", output], stateDir: dir.path)
            #expect(oneDead.status == 0, "\(oneDead)")
            #expect(oneDead.stderrLines.count == 1 && oneDead.stderr.hasPrefix("warning: path 127.0.0.1:1 is not usable"), "\(oneDead)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == Data(bytes))

            let allDead = try await halyard(["nvme", "read", "-a", "127.0.0.1", "-s", "1", "-a", "127.0.0.1", "-s", "2", "-n", CLITarget.nqn,
                                             "--lba", "0"], stateDir: dir.path)
            #expect(allDead.status == 1 && allDead.stderrLines.count == 1, "\(allDead)")
            #expect(allDead.stderr.hasPrefix("error: connect to \(CLITarget.nqn) failed: no path connected: 127.0.0.1:1: TCP connection refused"),
                    "\(allDead)")
        }
    }

    @Test("perf -t 2 --json: IOPS > 0 and no errors", arguments: ["randread", "randwrite"])
    func perf(workload: String) async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "perf"] + t.connectArgs + ["-q", "16", "-o", "4096", "-w", workload, "-t", "2", "--json"],
                                        stateDir: dir.path)
            #expect(run.status == 0, "\(run)")
            let json = try run.json()
            #expect(json["workload"] as? String == workload)
            #expect(json["queue_depth"] as? Int == 16 && json["io_size"] as? Int == 4096)
            let iops = try #require(json["iops"] as? Double)
            #expect(iops > 0)
            #expect(json["errors"] as? Int == 0)
            #expect((json["ios"] as? Int ?? 0) > 0)
            let elapsed = try #require(json["elapsed_s"] as? Double)
            #expect(abs(elapsed - 2) < 0.5)
            for key in ["lat_mean_us", "lat_p50_us", "lat_p99_us", "lat_p99_9_us", "lat_max_us", "mib_per_s", "cpu_us_per_io"] {
                #expect((json[key] as? Double ?? 0) > 0, "\(key)")
            }
            let p50 = json["lat_p50_us"] as? Double ?? 0, p99 = json["lat_p99_us"] as? Double ?? 0, max = json["lat_max_us"] as? Double ?? 0
            #expect(p50 <= p99 && p99 <= max * 1.001)
            if workload == "randwrite" {
                #expect(json["writes"] as? Int == json["ios"] as? Int)
                #expect(t.device.allocatedBytes > 0, "the writes reached the device")
            }
        }
    }

    @Test("verify --json: stamped writes read back, every acknowledged write found")
    func verify() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "verify"] + t.connectArgs + ["--seed", "7", "--size", "4MiB", "--duration", "2", "--json"],
                                        stateDir: dir.path)
            #expect(run.status == 0, "\(run)")
            let json = try run.json()
            #expect(json["passed"] as? Bool == true)
            #expect(json["seed"] as? Int == 7)
            #expect((json["writesAcknowledged"] as? Int ?? 0) > 0)
            let outcomes = try #require(json["outcomes"] as? [String: Int])
            #expect(outcomes["lost"] == 0 && outcomes["corrupt"] == 0 && (outcomes["ok"] ?? 0) > 0)
        }
    }

    @Test("perf counts failed I/Os, still reports, and exits 1")
    func perfErrors() async throws {
        let faults = Mutex<FaultInjectingBlockDevice?>(nil)
        try await withTarget(wrap: { memory in
            let f = FaultInjectingBlockDevice(wrapping: memory)
            f.failNext(5, of: .read)
            faults.withLock { $0 = f }
            return f
        }) { t, dir in
            let run = try await halyard(["nvme", "perf"] + t.connectArgs + ["-q", "4", "-t", "1", "--warmup", "0", "--json"], stateDir: dir.path)
            #expect(run.status == 1, "\(run)")
            let json = try run.json()
            #expect(json["errors"] as? Int == 5, "\(run)")
            #expect((json["ios"] as? Int ?? 0) > 0, "the other I/Os went on")
            #expect(run.stderrLines.count == 1 && run.stderr.hasPrefix("error: 5 I/O errors; first: read at LBA "), "\(run)")
            #expect(faults.withLock { $0?.injectedFailureCount } == 5)

            let badSize = try await halyard(["nvme", "perf"] + t.connectArgs + ["-o", "1000", "-t", "1"], stateDir: dir.path)
            #expect(badSize.status == 1)
            #expect(badSize.stderrLines.count == 1 && badSize.stderr.hasPrefix("error: -o 1000 must be a multiple of the block size 512"), "\(badSize)")
        }
    }

    @Test("an unknown NQN exits 1 with one error line naming the path and the status")
    func unknownNQN() async throws {
        try await withTarget { t, dir in
            let run = try await halyard(["nvme", "identify", "-a", "127.0.0.1", "-s", t.port, "-n", "nqn.2026-11.io.halyard:missing"],
                                        stateDir: dir.path)
            #expect(run.status == 1, "\(run)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderrLines.count == 1, "\(run)")
            #expect(run.stderr.hasPrefix("error: connect to 127.0.0.1:\(t.port) failed: "), "\(run)")
            #expect(run.stderr.contains("NVMe status 0x1"), "the Connect status is shown: \(run)")

            let refused = try await halyard(["nvme", "read", "-a", "127.0.0.1", "-s", "1", "-n", CLITarget.nqn, "--lba", "0"], stateDir: dir.path)
            #expect(refused.status == 1 && refused.stderrLines.count == 1, "\(refused)")
            #expect(refused.stderr.hasPrefix("error: connect to 127.0.0.1:1 failed: "), "\(refused)")

            let range = try await halyard(["nvme", "read"] + t.connectArgs + ["--lba", String(1 << 17), "--blocks", "1"], stateDir: dir.path)
            #expect(range.status == 1 && range.stderrLines.count == 1 && range.stderr.contains("beyond namespace 1"), "\(range)")
        }
    }

    @Test("host identity: stable across invocations with one state dir; --hostnqn/--hostid override; /etc/nvme wins")
    func hostIdentity() async throws {
        try await withTarget { t, dir in
            let state = dir.file("state")
            let perf = ["nvme", "perf"] + t.connectArgs + ["-q", "1", "-t", "1", "--warmup", "0"]
            let first = try await t.hostsSeen {
                let run = try await halyard(perf, stateDir: state)
                #expect(run.status == 0, "\(run)")
            }
            let second = try await t.hostsSeen {
                let run = try await halyard(perf, stateDir: state)
                #expect(run.status == 0, "\(run)")
            }
            #expect(first.count == 1, "one host identity per invocation: \(first)")
            #expect(first == second, "the same identity both times")
            let seen = try #require(first.first)
            // It is the one kept in the state directory.
            let storedNQN = try String(contentsOfFile: "\(state)/hostnqn", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let storedID = try String(contentsOfFile: "\(state)/hostid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(seen.hostNQN == storedNQN && NamespaceUUID(seen.hostID).description == storedID)
            #expect(seen.hostNQN.hasPrefix("nqn.2014-08.org.nvmexpress:uuid:"))

            // Another state directory: another identity.
            let other = try await t.hostsSeen {
                let run = try await halyard(perf, stateDir: dir.file("state2"))
                #expect(run.status == 0, "\(run)")
            }
            #expect(other.count == 1 && other != first)

            // Explicit overrides.
            let nqn = "nqn.2026-11.io.halyard:test-host"
            let id = "0f0e0d0c-0b0a-4908-8706-050403020100"
            let overridden = try await t.hostsSeen {
                let run = try await halyard(perf + ["--hostnqn", nqn, "--hostid", id], stateDir: state)
                #expect(run.status == 0, "\(run)")
            }
            #expect(overridden == [HostSeen(hostNQN: nqn, hostID: NamespaceUUID(string: id)!.bytes)])

            // /etc/nvme (here $HALYARD_NVME_ETC_DIR) wins over the state directory.
            let etc = dir.file("etc-nvme")
            try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
            let etcNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555"
            try "\(etcNQN)\n".write(toFile: "\(etc)/hostnqn", atomically: true, encoding: .utf8)
            try "11111111-2222-4333-8444-555555555555\n".write(toFile: "\(etc)/hostid", atomically: true, encoding: .utf8)
            let fromEtc = try await t.hostsSeen {
                let run = try await halyard(perf, stateDir: state, etcDir: etc)
                #expect(run.status == 0, "\(run)")
            }
            #expect(fromEtc == [HostSeen(hostNQN: etcNQN, hostID: NamespaceUUID(string: "11111111-2222-4333-8444-555555555555")!.bytes)])
        }
    }

    @Test("usage errors: missing -n, unpaired -s")
    func usageErrors() async throws {
        let dir = try TemporaryDirectory()
        let noNQN = try await halyard(["nvme", "identify", "-a", "127.0.0.1", "-s", "1"], stateDir: dir.path)
        #expect(noNQN.status == 1 && noNQN.stderr == "error: give the subsystem NQN: -n/--nqn NQN\n", "\(noNQN)")
        let unpaired = try await halyard(["nvme", "identify", "-a", "h1", "-a", "h2", "-a", "h3", "-s", "1", "-s", "2", "-n", "nqn.x"],
                                         stateDir: dir.path)
        #expect(unpaired.status != 0 && unpaired.stderr.contains("one -s/--trsvcid per -a/--traddr"), "\(unpaired)")
    }
}
