import ArgumentParser
import NVMe
import NVMeHost

/// `halyard nvme connect`: connects a controller on every given path, reports the controllers,
/// the namespaces and each path's ANA state, then disconnects (a connectivity check; Halyard has
/// no kernel block device to leave behind).
struct NVMeConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connect to a subsystem on every path, show controllers, namespaces and ANA states, disconnect.",
        discussion: """
              halyard nvme connect -a HOST -s PORT [-a HOST -s PORT ...] -n NQN [--json]
            Exits 1 if any path fails to connect (the paths that did are still reported).
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let session = try NVMeCLISession(common)
            let (output, failures) = try await session.run { session in
                let connection = await session.connectSubsystem(nqn, paths: common.paths(defaultPort: 4420), multipath: false, common: common)
                return await SubsystemSummary.build(connection, identity: session.identity)
            }
            if json {
                try printJSON(output)
            } else {
                writeStdout(output.text())
            }
            for failure in failures { printError(failure) }
            if !failures.isEmpty { throw ExitCode.failure }
        }
    }
}
