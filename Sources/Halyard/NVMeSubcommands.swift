import ArgumentParser

/// The `halyard nvme` subcommands; each lives in its own file.
enum NVMeSubcommands {
    static let all: [any ParsableCommand.Type] = []
}
