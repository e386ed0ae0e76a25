import ArgumentParser
import Foundation
import NIOCore
import NVMe
import NVMeHost

/// `halyard nvme read`: reads blocks and prints a hex dump, or writes them raw to a file.
struct NVMeReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read blocks: hex dump to stdout, or raw to a file.",
        discussion: """
              halyard nvme read -a HOST -s PORT -n NQN --lba L --blocks N [--output FILE]
            With several -a/-s paths the namespace is read through all of them (multipath: ANA \
            states respected, I/O failed over). Transfers larger than MDTS are split.
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Option(help: "First logical block.")
    var lba: UInt64

    @Option(help: "Number of logical blocks.")
    var blocks: UInt64 = 1

    @Option(help: ArgumentHelp("Write the data raw to FILE instead of a hex dump on stdout ('-' = raw to stdout).", valueName: "FILE"))
    var output: String?

    func validate() throws {
        guard blocks >= 1 else { throw ValidationError("--blocks must be ≥ 1") }
        guard blocks <= 1 << 24 else { throw ValidationError("--blocks must be ≤ 16777216") }
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let session = try NVMeCLISession(common)
            let (data, namespace) = try await session.run { session in
                let target = try await CLIBlockTarget.open(session, common: common, nqn: nqn)
                return (try await target.read(lba: lba, blocks: blocks), target.namespace)
            }
            if let output {
                let bytes = Data(data.readableBytesView)
                if output == "-" {
                    FileHandle.standardOutput.write(bytes)
                } else {
                    do {
                        try bytes.write(to: URL(fileURLWithPath: output))
                    } catch {
                        throw CLIError("cannot write \(output): \(error.localizedDescription)")
                    }
                }
            } else {
                hexDump(data, baseOffset: lba * UInt64(namespace.blockSize), emit: writeStdout)
            }
        }
    }
}
