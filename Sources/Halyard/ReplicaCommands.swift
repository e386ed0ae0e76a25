import ArgumentParser
import Foundation
import GRPCCore
import IOEngineAPI

/// `halyard replica …`: replicas of a running io-engine, over its gRPC API (ReplicaService).
struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Create, resize, share and destroy the replicas of an io-engine.",
        subcommands: [ReplicaCreateCommand.self, ReplicaDestroyCommand.self, ReplicaResizeCommand.self, ReplicaListCommand.self,
                      ReplicaGetCommand.self, ReplicaShareCommand.self, ReplicaUnshareCommand.self, ReplicaHostsCommand.self,
                      ReplicaRangesCommand.self])
}

/// A replica as `--json` prints it (numbers as numbers).
struct ReplicaOutput: Encodable {
    var uuid, name, poolName, poolUuid: String
    var sizeBytes, allocatedBytes: UInt64
    var thin, shared: Bool
    var nqn, uri: String?
    var allowedHosts: [String]

    init(_ r: Halyard_Ioengine_V1_Replica) {
        uuid = r.uuid
        name = r.name
        poolName = r.poolName
        poolUuid = r.poolUuid
        sizeBytes = r.sizeBytes
        allocatedBytes = r.allocatedBytes
        thin = r.thin
        shared = r.shared
        nqn = r.nqn.isEmpty ? nil : r.nqn
        uri = r.uri.isEmpty ? nil : r.uri
        allowedHosts = r.allowedHosts
    }

    static func print(_ replicas: [Halyard_Ioengine_V1_Replica], json: Bool, single: Bool = false) throws {
        if json {
            if single, let r = replicas.first { try TableOutput.printJSON(ReplicaOutput(r)) } else { try TableOutput.printJSON(replicas.map(ReplicaOutput.init)) }
            return
        }
        TableOutput.print(
            headers: ["UUID", "NAME", "POOL", "SIZE", "ALLOCATED", "THIN", "SHARED", "ALLOWED HOSTS", "URI"],
            rows: replicas.map { r in
                [r.uuid, r.name, r.poolName, TableOutput.bytes(r.sizeBytes), TableOutput.bytes(r.allocatedBytes),
                 r.thin ? "yes" : "no", r.shared ? "yes" : "no",
                 r.shared ? (r.allowedHosts.isEmpty ? "any" : r.allowedHosts.joined(separator: ",")) : "-",
                 r.uri.isEmpty ? "-" : r.uri]
            })
    }
}

struct ReplicaCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a replica in a pool.")
    @OptionGroup var client: IOEngineClientOptions
    @Option(help: "Pool name.") var pool: String
    @Option(help: ArgumentHelp("Size, e.g. 1GiB (a multiple of the pool's block size).", valueName: "SIZE")) var size: String
    @Option(help: "Replica UUID (default: generated). Repeating a create with the same UUID and parameters is a no-op.") var uuid: String?
    @Option(help: "Name (default: the UUID).") var name: String?
    @Flag(help: "Allocate every extent now (default: thin, allocated on first write).") var thick = false
    @Flag(help: "Share it over NVMe/TCP at once.") var share = false
    @Option(name: .customLong("allow-host"), help: ArgumentHelp("A host NQN allowed to connect (repeatable; default: any host).", valueName: "NQN"))
    var allowHosts: [String] = []

    func run() async throws {
        var request = Halyard_Ioengine_V1_CreateReplicaRequest()
        request.uuid = uuid ?? UUID().uuidString.lowercased()
        request.pool = pool
        request.name = name ?? ""
        request.sizeBytes = try SizeParser.parseAllowingZero(size)  // 0 is the io-engine's to refuse (invalidArgument)
        request.thin = !thick
        request.share = share
        request.allowedHosts = allowHosts
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).createReplica(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaDestroyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "destroy", abstract: "Destroy a replica (connected hosts are disconnected).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_DestroyReplicaRequest()
        request.uuid = uuid
        _ = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).destroyReplica(request, options: IOEngineClient.callOptions)
        }
        if client.json { try TableOutput.printJSON(["destroyed": uuid]) } else { print("replica \(uuid) destroyed") }
    }
}

struct ReplicaResizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resize", abstract: "Grow a replica.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String
    @Argument(help: "New size, e.g. 2GiB (never smaller).") var size: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_ResizeReplicaRequest()
        request.uuid = uuid
        request.sizeBytes = try SizeParser.parseAllowingZero(size)  // 0 is the io-engine's to refuse (invalidArgument)
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).resizeReplica(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List replicas.")
    @OptionGroup var client: IOEngineClientOptions
    @Option(help: "Only this pool's replicas.") var pool: String?

    func run() async throws {
        var request = Halyard_Ioengine_V1_ListReplicasRequest()
        request.pool = pool ?? ""
        let response = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).listReplicas(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print(response.replicas, json: client.json)
    }
}

struct ReplicaGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show one replica.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_GetReplicaRequest()
        request.uuid = uuid
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).getReplica(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaShareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "share", abstract: "Serve a replica over NVMe/TCP.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String
    @Option(name: .customLong("allow-host"), help: ArgumentHelp("A host NQN allowed to connect (repeatable; default: any host).", valueName: "NQN"))
    var allowHosts: [String] = []

    func run() async throws {
        var request = Halyard_Ioengine_V1_ShareReplicaRequest()
        request.uuid = uuid
        request.allowedHosts = allowHosts
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).shareReplica(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaUnshareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unshare", abstract: "Stop serving a replica (connected hosts are disconnected).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_UnshareReplicaRequest()
        request.uuid = uuid
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).unshareReplica(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaHostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts",
        abstract: "Replace the hosts allowed to use a shared replica; hosts that lose access are disconnected.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String
    @Option(name: .customLong("set"), parsing: .upToNextOption, help: ArgumentHelp("The allowed host NQNs (none: any host).", valueName: "NQN"))
    var hosts: [String] = []

    func run() async throws {
        var request = Halyard_Ioengine_V1_SetReplicaAllowedHostsRequest()
        request.uuid = uuid
        request.allowedHosts = hosts
        let replica = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).setReplicaAllowedHosts(request, options: IOEngineClient.callOptions)
        }
        try ReplicaOutput.print([replica], json: client.json, single: true)
    }
}

struct ReplicaRangesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ranges", abstract: "Show the byte ranges of a replica that hold data.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Replica UUID.") var uuid: String

    struct Output: Encodable {
        struct Range: Encodable { var offset, length: UInt64 }
        var uuid: String
        var sizeBytes: UInt64
        var allocatedBytes: UInt64
        var ranges: [Range]
    }

    func run() async throws {
        var request = Halyard_Ioengine_V1_GetAllocatedRangesRequest()
        request.uuid = uuid
        let answer = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_ReplicaService.Client(wrapping: c).getAllocatedRanges(request, options: IOEngineClient.callOptions)
        }
        let output = Output(uuid: answer.uuid, sizeBytes: answer.sizeBytes,
                            allocatedBytes: answer.ranges.reduce(0) { $0 + $1.length },
                            ranges: answer.ranges.map { .init(offset: $0.offset, length: $0.length) })
        if client.json { try TableOutput.printJSON(output); return }
        TableOutput.print(headers: ["OFFSET", "LENGTH"], rows: output.ranges.map { [String($0.offset), String($0.length)] })
        print("\(output.ranges.count) range(s), \(TableOutput.bytes(output.allocatedBytes)) of \(TableOutput.bytes(output.sizeBytes)) allocated")
    }
}
