import ArgumentParser
import Foundation
import GRPCCore
import IOEngineAPI

/// `halyard pool …`: pools of a running io-engine, over its gRPC API (PoolService).
struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Create, import, export, destroy and list the pools of an io-engine.",
        subcommands: [PoolCreateCommand.self, PoolImportCommand.self, PoolExportCommand.self, PoolDestroyCommand.self,
                      PoolListCommand.self, PoolGetCommand.self])
}

/// A pool as `--json` prints it (numbers as numbers).
struct PoolOutput: Encodable {
    var name, uuid, disk, state: String
    var capacityBytes, usedBytes, committedBytes: UInt64
    var blockSize, extentSize, replicaCount: UInt32
    var fault: String?

    init(_ pool: Halyard_Ioengine_V1_Pool) {
        name = pool.name
        uuid = pool.uuid
        disk = pool.disk
        state = PoolOutput.stateName(pool.state)
        capacityBytes = pool.capacityBytes
        usedBytes = pool.usedBytes
        committedBytes = pool.committedBytes
        blockSize = pool.blockSize
        extentSize = pool.extentSize
        replicaCount = pool.replicaCount
        fault = pool.fault.isEmpty ? nil : pool.fault
    }

    static func stateName(_ state: Halyard_Ioengine_V1_PoolState) -> String {
        switch state {
        case .online: "online"
        case .faulted: "faulted"
        default: "unknown"
        }
    }

    static func print(_ pools: [Halyard_Ioengine_V1_Pool], json: Bool, single: Bool = false) throws {
        if json {
            if single, let pool = pools.first { try TableOutput.printJSON(PoolOutput(pool)) } else { try TableOutput.printJSON(pools.map(PoolOutput.init)) }
            return
        }
        TableOutput.print(
            headers: ["NAME", "STATE", "CAPACITY", "USED", "COMMITTED", "REPLICAS", "EXTENT", "DISK", "UUID"],
            rows: pools.map { p in
                [p.name, stateName(p.state) + (p.fault.isEmpty ? "" : " (\(p.fault))"), TableOutput.bytes(p.capacityBytes),
                 TableOutput.bytes(p.usedBytes), TableOutput.bytes(p.committedBytes), String(p.replicaCount),
                 TableOutput.bytes(UInt64(p.extentSize)), p.disk, p.uuid]
            })
    }
}

struct PoolCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a pool on a file or block device.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Pool name.") var name: String
    @Argument(help: "Backing file or block device.") var disk: String
    @Option(help: ArgumentHelp("Create DISK as a sparse file of this size if it does not exist (e.g. 10GiB).", valueName: "SIZE"))
    var size: String?
    @Option(help: "Pool UUID (default: generated).") var uuid: String?
    @Option(name: .customLong("extent-size"), help: ArgumentHelp("Allocation unit, a power of two from 64KiB to 64MiB.", valueName: "SIZE"))
    var extentSize: String = "1MiB"
    @Option(name: .customLong("block-size"), help: "Logical block size: 512 or 4096.") var blockSize: UInt32 = 4096

    func run() async throws {
        var request = Halyard_Ioengine_V1_CreatePoolRequest()
        request.name = name
        request.disk = disk
        request.uuid = uuid ?? ""
        request.sizeBytes = try size.map(SizeParser.parse) ?? 0
        let extent = try SizeParser.parse(extentSize)
        guard extent <= UInt64(UInt32.max) else { throw ValidationError("--extent-size \(extentSize) is too large") }
        request.extentSize = UInt32(extent)
        request.blockSize = blockSize
        let pool = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).createPool(request, options: IOEngineClient.callOptions)
        }
        try PoolOutput.print([pool], json: client.json, single: true)
    }
}

struct PoolImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Import the pool found on a disk.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Backing file or block device.") var disk: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_ImportPoolRequest()
        request.disk = disk
        let pool = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).importPool(request, options: IOEngineClient.callOptions)
        }
        try PoolOutput.print([pool], json: client.json, single: true)
    }
}

struct PoolExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Stop using a pool, keeping its data (import it again later).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Pool name.") var name: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_ExportPoolRequest()
        request.name = name
        let pool = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).exportPool(request, options: IOEngineClient.callOptions)
        }
        try PoolOutput.print([pool], json: client.json, single: true)
    }
}

struct PoolDestroyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "destroy", abstract: "Destroy a pool (refused while it has replicas, unless --force).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Pool name.") var name: String
    @Flag(help: "Destroy its replicas too.") var force = false

    func run() async throws {
        var request = Halyard_Ioengine_V1_DestroyPoolRequest()
        request.name = name
        request.force = force
        _ = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).destroyPool(request, options: IOEngineClient.callOptions)
        }
        if client.json { try TableOutput.printJSON(["destroyed": name]) } else { print("pool \(name) destroyed") }
    }
}

struct PoolListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the io-engine's pools.")
    @OptionGroup var client: IOEngineClientOptions

    func run() async throws {
        let response = try await IOEngineClient.call(client) { c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).listPools(.init(), options: IOEngineClient.callOptions)
        }
        try PoolOutput.print(response.pools, json: client.json)
    }
}

struct PoolGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show one pool.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Pool name.") var name: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_GetPoolRequest()
        request.name = name
        let pool = try await IOEngineClient.call(client) { [request] c in
            try await Halyard_Ioengine_V1_PoolService.Client(wrapping: c).getPool(request, options: IOEngineClient.callOptions)
        }
        try PoolOutput.print([pool], json: client.json, single: true)
    }
}
