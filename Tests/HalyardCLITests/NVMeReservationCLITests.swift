import Foundation
import Testing

/// `halyard nvme resv-*` as subprocesses, two host identities (--hostnqn/--hostid), against an
/// in-process target.
@Suite("halyard nvme resv-* CLI")
struct NVMeReservationCLITests {
    static let hostA = ["--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a",
                        "--hostid", "aaaaaaaa-0000-4000-8000-00000000000a"]
    static let hostB = ["--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-00000000000b",
                        "--hostid", "bbbbbbbb-0000-4000-8000-00000000000b"]

    @Test("register both hosts, acquire, report --json and text, conflict exit 1 naming the status, preempt, release, bad arguments")
    func lifecycle() async throws {
        try await withTarget { t, dir in
            func run(_ host: [String], _ args: [String]) async throws -> CLIRun {
                try await halyard(["nvme"] + args + t.connectArgs + host, stateDir: dir.path)
            }
            var r = try await run(Self.hostA, ["resv-register", "--nrkey", "0xa1", "--cptpl", "no-change"])
            #expect(r.status == 0 && r.stdoutText.contains("success"), "\(r)")
            r = try await run(Self.hostB, ["resv-register", "--nrkey", "178"])  // 0xb2
            #expect(r.status == 0, "\(r)")
            r = try await run(Self.hostA, ["resv-acquire", "--crkey", "0xa1", "--rtype", "exclusive-access"])
            #expect(r.status == 0, "\(r)")

            r = try await run(Self.hostB, ["resv-report", "--json"])
            #expect(r.status == 0, "\(r)")
            let json = try r.json()
            #expect(json["rtype"] as? Int == 2 && json["regctl"] as? Int == 2, "\(r)")
            let registrants = try #require(json["registrants"] as? [[String: Any]])
            let holder = registrants.first { $0["rcsts"] as? Int == 1 }
            #expect(holder?["rkey"] as? String == "0xa1")
            #expect(holder?["hostid"] as? String == "aaaaaaaa00004000800000000000000a", "\(r)")
            r = try await run(Self.hostB, ["resv-report"])
            #expect(r.status == 0 && r.stdoutText.contains("rtype     : 2 (Exclusive Access)") && r.stdoutText.contains("rkey       : 0xb2"), "\(r)")

            // B is not the holder: its acquire is a Reservation Conflict, exit 1, named on stderr.
            r = try await run(Self.hostB, ["resv-acquire", "--crkey", "0xb2", "--rtype", "2"])
            #expect(r.status == 1 && r.stderr.lowercased().contains("reservation conflict"), "\(r)")
            // …and so is its write.
            r = try await run(Self.hostB, ["write", "--lba", "0", "--blocks", "1", "--pattern", "0x11"])
            #expect(r.status != 0 && r.stderr.lowercased().contains("reservation conflict"), "\(r)")

            r = try await run(Self.hostB, ["resv-acquire", "--crkey", "0xb2", "--prkey", "0xa1", "--rtype", "2", "--racqa", "preempt-abort"])
            #expect(r.status == 0, "\(r)")
            r = try await run(Self.hostA, ["resv-report", "--json"])
            let after = try #require(try r.json()["registrants"] as? [[String: Any]])
            #expect(after.count == 1 && after.first?["rkey"] as? String == "0xb2", "\(r)")
            r = try await run(Self.hostB, ["resv-release", "--crkey", "0xb2", "--rtype", "2"])
            #expect(r.status == 0, "\(r)")
            r = try await run(Self.hostB, ["resv-release", "--crkey", "0xb2", "--rrela", "clear"])
            #expect(r.status == 0, "\(r)")
            r = try await run(Self.hostA, ["resv-report", "--json"])
            #expect(try r.json()["regctl"] as? Int == 0 && r.json()["rtype"] as? Int == 0, "\(r)")

            // Bad arguments: refused before anything is sent.
            r = try await run(Self.hostA, ["resv-acquire", "--crkey", "1", "--rtype", "7"])
            #expect(r.status != 0 && r.stderr.contains("--rtype"), "\(r)")
            r = try await run(Self.hostA, ["resv-register", "--nrkey", "0xZZ"])
            #expect(r.status != 0 && r.stderr.contains("--nrkey"), "\(r)")
            r = try await run(Self.hostA, ["resv-release", "--crkey", "1"])
            #expect(r.status != 0 && r.stderr.contains("--rtype"), "\(r)")
        }
    }
}
