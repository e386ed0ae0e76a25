import ArgumentParser

/// `halyard nvme`: Halyard's userspace NVMe/TCP initiator as a tool (discover, connect,
/// connect-all, identify, read, write, verify, perf).
struct NVMeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvme",
        abstract: "Userspace NVMe/TCP initiator tools.",
        subcommands: NVMeSubcommands.all
    )
}
