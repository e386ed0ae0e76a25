import ArgumentParser
import Foundation
import NVMeHost

/// `halyard nvme verify`: writes self-describing blocks for a while (through every path given,
/// with failover), then reads everything back and checks that every acknowledged write is there.
struct NVMeVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Write stamped blocks, survive path failures, read back and check every acknowledged write.",
        discussion: """
              halyard nvme verify -a 127.0.0.1 -s 4420 -n NQN [--seed N] [--size BYTES] [--duration SECONDS]
            Each block holds (seed, LBA, generation) and a checksum of its contents. At the end every
            block must hold its last acknowledged generation; a write in flight at a failure may hold
            the old or the new one, never anything else. Lost or corrupt blocks are listed with their
            LBA and the command exits 1.
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(help: "Seed of the block contents (default: random, printed).")
    var seed: UInt64?

    @Option(help: ArgumentHelp("Bytes of the namespace to cover, from --offset (default 64MiB or the whole namespace if smaller).", valueName: "BYTES"))
    var size: String?

    @Option(help: ArgumentHelp("Byte offset of the region.", valueName: "BYTES"))
    var offset: String = "0"

    @Option(help: "Seconds of writing before the read-back.")
    var duration: Double = 10

    @Option(name: [.customShort("q"), .customLong("queue-depth")], help: "Writes in flight.")
    var queueDepth: Int = 16

    @Option(help: "Blocks per write.")
    var blocksPerWrite: Int = 8

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard (1...4096).contains(queueDepth) else { throw ValidationError("--queue-depth must be 1-4096") }
        guard (1...2048).contains(blocksPerWrite) else { throw ValidationError("--blocks-per-write must be 1-2048") }
    }

    struct JSONReport: Encodable {
        var passed: Bool
        var seed: UInt64
        var firstLBA: UInt64
        var blocks: UInt64
        var blockSize: Int
        var writesIssued: Int
        var writesAcknowledged: Int
        var writesFailed: Int
        var outcomes: [String: Int]
        var problems: [Problem]
        struct Problem: Encodable {
            var lba: UInt64
            var outcome: String
            var expectedGeneration: UInt32
            var foundGeneration: UInt32?
            var detail: String
        }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let seed = self.seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
            let offsetBytes = try SizeParser.parseAllowingZero(offset)
            let session = try NVMeCLISession(common, threads: 2)
            let report = try await session.run { session in
                let device = try await session.connectMultipath(common.paths(defaultPort: 4420), nqn: nqn, nsid: common.nsid, common: common)
                let requested = try size.map(SizeParser.parse) ?? min(64 << 20, device.blockCount * UInt64(device.blockSize))
                var options = VerifyOptions(seed: seed, size: requested, duration: .milliseconds(Int64(duration * 1000)),
                                            queueDepth: queueDepth, blocksPerWrite: blocksPerWrite)
                options.offset = offsetBytes
                if !json { writeStdout("verify: seed \(seed), \(requested) bytes at offset \(offsetBytes), \(duration) s, queue depth \(queueDepth)\n") }
                return try await Verify.run(device, options: options)
            }
            if json {
                try printJSON(JSONReport(
                    passed: report.passed, seed: report.seed, firstLBA: report.firstLBA, blocks: report.blockCount,
                    blockSize: report.blockSize, writesIssued: report.writesIssued, writesAcknowledged: report.writesAcknowledged,
                    writesFailed: report.writesFailed,
                    outcomes: Dictionary(uniqueKeysWithValues: VerifyOutcome.allCases.map { ($0.rawValue, report.count($0)) }),
                    problems: report.problems.map {
                        .init(lba: $0.lba, outcome: $0.outcome.rawValue, expectedGeneration: $0.expectedGeneration,
                              foundGeneration: $0.foundGeneration, detail: $0.detail)
                    }))
            } else {
                writeStdout(report.description + "\n")
            }
            if !report.passed { throw ExitCode.failure }
        }
    }
}
