import ArgumentParser

/// The one Halyard executable: every daemon and tool is a subcommand.
@main
struct Halyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "halyard",
        abstract: "Highly available NVMe/TCP block storage.",
        version: "0.1.0",
        subcommands: [IOEngineCommand.self, PoolCommand.self, ReplicaCommand.self, NexusCommand.self, NVMfTargetGroupCommand.self, NVMeCommand.self, StoreCommand.self]
    )
}
