import ArgumentParser

/// The `halyard nvme` subcommands; each lives in its own file.
enum NVMeSubcommands {
    static let all: [any ParsableCommand.Type] = [
        NVMeDiscoverCommand.self,
        NVMeConnectCommand.self,
        NVMeConnectAllCommand.self,
        NVMeIdentifyCommand.self,
        NVMeReadCommand.self,
        NVMeWriteCommand.self,
        NVMePerfCommand.self,
        NVMeVerifyCommand.self,  // the multipath engineer's command; built on NVMeConnectionOptions and NVMeCLISession
        NVMeReservationRegisterCommand.self,
        NVMeReservationAcquireCommand.self,
        NVMeReservationReleaseCommand.self,
        NVMeReservationReportCommand.self,
    ]
}
