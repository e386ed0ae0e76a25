import ArgumentParser
import Foundation
import GRPCCore
import IOEngineAPI

/// `halyard nexus …`: the nexuses of a running io-engine, over its gRPC API (NexusService). The
/// forms are a contract (docs/notes/nexus-plan.md "CLI").
struct NexusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nexus",
        abstract: "Create, publish, shut down and destroy the nexuses of an io-engine; manage their children and rebuilds.",
        discussion: """
            A nexus is a volume's target: it mirrors writes to its children (replica URIs nvmf://HOST:PORT/SUBNQN), \
            fences itself with NVMe reservations, rebuilds children, and is published as \
            nqn.2026-11.io.halyard:<volume-uuid>.
            Nexuses live in the io-engine's memory: a restart forgets them (the health record stays in the store).
            """,
        subcommands: [NexusCreateCommand.self, NexusDestroyCommand.self, NexusShutdownCommand.self, NexusPublishCommand.self,
                      NexusUnpublishCommand.self, NexusListCommand.self, NexusGetCommand.self, NexusHealthCommand.self,
                      NexusChildCommand.self, NexusRebuildCommand.self])
}

/// The NexusService client of one CLI call.
typealias NexusClient = Halyard_Ioengine_V1_NexusService.Client<IOEngineClient.Transport>

func withNexusService<T: Sendable>(_ options: IOEngineClientOptions,
                                           _ body: @Sendable (NexusClient) async throws -> T) async throws -> T {
    try await IOEngineClient.call(options) { client in try await body(NexusClient(wrapping: client)) }
}

/// Parses a 64-bit key: decimal or 0x-prefixed hexadecimal.
enum KeyParser {
    static func parse(_ text: String, option: String) throws -> UInt64 {
        let value: UInt64?
        if text.lowercased().hasPrefix("0x") { value = UInt64(text.dropFirst(2), radix: 16) } else { value = UInt64(text) }
        guard let value else { throw ValidationError("\(option) \(text): expected a 64-bit number (decimal or 0x…)") }
        return value
    }
}

// MARK: Output

/// A rebuild as `--json` prints it.
struct RebuildOutput: Encodable {
    var id, nexusUuid, childUri, childUuid, sourceUri, kind, state: String
    var error: String?
    var segmentBytes, segmentsTotal, segmentsCopied, segmentsSkipped, bytesCopied: UInt64
    var startedAtUnixNanos: Int64?
    var finishedAtUnixNanos: Int64?

    init(_ r: Halyard_Ioengine_V1_RebuildProgress) {
        id = r.id
        nexusUuid = r.nexusUuid
        childUri = r.childUri
        childUuid = r.childUuid
        sourceUri = r.sourceUri
        kind = r.partial ? "partial" : "full"
        state = r.state
        error = r.error.isEmpty ? nil : r.error
        segmentBytes = r.segmentBytes
        segmentsTotal = r.segmentsTotal
        segmentsCopied = r.segmentsCopied
        segmentsSkipped = r.segmentsSkipped
        bytesCopied = r.bytesCopied
        startedAtUnixNanos = r.startedAtUnixNanos == 0 ? nil : r.startedAtUnixNanos
        finishedAtUnixNanos = r.finishedAtUnixNanos == 0 ? nil : r.finishedAtUnixNanos
    }

    /// "37% (370/1000 segments)".
    static func progress(_ r: Halyard_Ioengine_V1_RebuildProgress) -> String {
        let done = r.segmentsCopied + r.segmentsSkipped
        let percent = r.segmentsTotal == 0 ? 100 : Int(Double(done) * 100 / Double(r.segmentsTotal))
        return "\(percent)% (\(done)/\(r.segmentsTotal) segments)"
    }

    static func print(_ rebuilds: [Halyard_Ioengine_V1_RebuildProgress], json: Bool) throws {
        if json { try TableOutput.printJSON(rebuilds.map(RebuildOutput.init)); return }
        TableOutput.print(
            headers: ["CHILD", "KIND", "STATE", "PROGRESS", "COPIED", "STARTED", "FINISHED", "SOURCE"],
            rows: rebuilds.map { r in
                [r.childUri, r.partial ? "partial" : "full", r.state + (r.error.isEmpty ? "" : " (\(r.error))"), progress(r),
                 TableOutput.bytes(r.bytesCopied), NexusOutput.time(r.startedAtUnixNanos), NexusOutput.time(r.finishedAtUnixNanos),
                 r.sourceUri]
            })
    }
}

/// A nexus as `--json` prints it (numbers as numbers; times as Unix nanoseconds, absent when unset).
struct NexusOutput: Encodable {
    struct Child: Encodable {
        var uri, uuid, state: String
        var reason: String?
        var healthy, local, hasRebuildLog: Bool
        var sinceUnixNanos: Int64
        var rebuild: RebuildOutput?
    }

    struct IO: Encodable {
        var readOps, writeOps, readBytes, writtenBytes, readErrors, writeErrors: UInt64
    }

    var uuid, volumeUuid, nqn, state: String
    var uri: String?
    var sizeBytes: UInt64
    var blockSize: UInt32
    var shutdownReason: String?
    var children: [Child]
    var reservationKey: String
    var preemptPolicy: String
    var preemptKey: String?
    var minCntlid, maxCntlid: UInt32
    var stateChangedAtUnixNanos: Int64
    var fencedAtUnixNanos, shutdownCompletedAtUnixNanos, preemptedAtUnixNanos: Int64?
    var published: Bool
    var allowedHosts: [String]
    var rebuilds: [RebuildOutput]
    var io: IO

    init(_ n: Halyard_Ioengine_V1_Nexus) {
        uuid = n.uuid
        volumeUuid = n.volumeUuid
        nqn = n.nqn
        state = n.state
        uri = n.uri.isEmpty ? nil : n.uri
        sizeBytes = n.sizeBytes
        blockSize = n.blockSize
        shutdownReason = n.shutdownReason.isEmpty ? nil : n.shutdownReason
        children = n.children.map { c in
            Child(uri: c.uri, uuid: c.uuid, state: c.state, reason: c.reason.isEmpty ? nil : c.reason, healthy: c.healthy, local: c.local,
                  hasRebuildLog: c.hasRebuildLog_p, sinceUnixNanos: c.sinceUnixNanos, rebuild: c.hasRebuild ? RebuildOutput(c.rebuild) : nil)
        }
        reservationKey = Self.hex(n.reservationKey)
        preemptPolicy = n.preemptPolicy == .argkey ? "argkey" : "holder"
        preemptKey = n.preemptPolicy == .argkey ? Self.hex(n.preemptKey) : nil
        minCntlid = n.minCntlid
        maxCntlid = n.maxCntlid
        stateChangedAtUnixNanos = n.stateChangedAtUnixNanos
        fencedAtUnixNanos = n.fencedAtUnixNanos == 0 ? nil : n.fencedAtUnixNanos
        shutdownCompletedAtUnixNanos = n.shutdownCompletedAtUnixNanos == 0 ? nil : n.shutdownCompletedAtUnixNanos
        preemptedAtUnixNanos = n.preemptedAtUnixNanos == 0 ? nil : n.preemptedAtUnixNanos
        published = n.published
        allowedHosts = n.allowedHosts
        rebuilds = n.rebuilds.map(RebuildOutput.init)
        io = IO(readOps: n.io.readOps, writeOps: n.io.writeOps, readBytes: n.io.readBytes, writtenBytes: n.io.writtenBytes,
                readErrors: n.io.readErrors, writeErrors: n.io.writeErrors)
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    /// Unix nanoseconds as ISO 8601 (UTC with Z, milliseconds); "-" for 0.
    static func time(_ nanos: Int64) -> String {
        guard nanos != 0 else { return "-" }
        let date = Date(timeIntervalSince1970: Double(nanos) / 1e9)
        return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    /// "2/2 online".
    static func childSummary(_ n: Halyard_Ioengine_V1_Nexus) -> String {
        "\(n.children.filter { $0.state == "Online" }.count)/\(n.children.count) online"
    }

    static func printList(_ nexuses: [Halyard_Ioengine_V1_Nexus], json: Bool) throws {
        if json { try TableOutput.printJSON(nexuses.map(NexusOutput.init)); return }
        TableOutput.print(
            headers: ["UUID", "VOLUME", "STATE", "SIZE", "CHILDREN", "REBUILDS", "URI"],
            rows: nexuses.map { n in
                [n.uuid, n.volumeUuid, n.state, TableOutput.bytes(n.sizeBytes), childSummary(n), String(n.rebuilds.count),
                 n.uri.isEmpty ? "-" : n.uri]
            })
    }

    /// One nexus in detail: its fields, then its children.
    static func printOne(_ n: Halyard_Ioengine_V1_Nexus, json: Bool) throws {
        if json { try TableOutput.printJSON(NexusOutput(n)); return }
        var fields: [(String, String)] = [
            ("uuid", n.uuid), ("volume", n.volumeUuid), ("state", n.state + (n.shutdownReason.isEmpty ? "" : " (\(n.shutdownReason))")),
            ("size", "\(TableOutput.bytes(n.sizeBytes)) (\(n.sizeBytes) bytes, \(n.blockSize)-byte blocks)"),
            ("nqn", n.nqn), ("published", n.published ? "yes" : "no"),
        ]
        if n.published {
            fields.append(("uri", n.uri))
            fields.append(("allowed hosts", n.allowedHosts.isEmpty ? "any" : n.allowedHosts.joined(separator: ",")))
        }
        fields += [
            ("reservation key", hex(n.reservationKey)),
            ("preempt policy", n.preemptPolicy == .argkey ? "argkey \(hex(n.preemptKey))" : "holder"),
            ("controller IDs", "\(n.minCntlid)-\(n.maxCntlid)"),
            ("state changed", time(n.stateChangedAtUnixNanos)),
        ]
        if n.fencedAtUnixNanos != 0 { fields.append(("fenced", time(n.fencedAtUnixNanos))) }
        if n.shutdownCompletedAtUnixNanos != 0 { fields.append(("shut down", time(n.shutdownCompletedAtUnixNanos))) }
        if n.preemptedAtUnixNanos != 0 { fields.append(("preempted another", time(n.preemptedAtUnixNanos))) }
        fields.append(("I/O", "\(n.io.readOps) reads (\(TableOutput.bytes(n.io.readBytes))), \(n.io.writeOps) writes "
            + "(\(TableOutput.bytes(n.io.writtenBytes))), \(n.io.readErrors + n.io.writeErrors) errors"))
        let width = fields.map(\.0.count).max() ?? 0
        for (name, value) in fields { Swift.print("\((name + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0))  \(value)") }
        Swift.print("")
        TableOutput.print(
            headers: ["CHILD", "STATE", "HEALTHY", "LOCAL", "REBUILD", "SINCE"],
            rows: n.children.map { c in
                [c.uri, c.state + (c.reason.isEmpty ? "" : " (\(c.reason))"), c.healthy ? "yes" : "no", c.local ? "yes" : "no",
                 c.hasRebuild ? RebuildOutput.progress(c.rebuild) : (c.hasRebuildLog_p ? "log" : "-"), time(c.sinceUnixNanos)]
            })
    }
}

// MARK: Commands

struct NexusCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a nexus over replicas (and publish it with --publish).",
        discussion: "Repeating a create with the same parameters returns the existing nexus.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String
    @Option(help: ArgumentHelp("The volume's UUID (its subsystem is nqn.2026-11.io.halyard:<volume-uuid>).", valueName: "VOLUME-UUID"))
    var volume: String
    @Option(help: ArgumentHelp("Volume size, e.g. 1GiB (at most the smallest child).", valueName: "SIZE")) var size: String
    @Option(name: .customLong("child"), help: ArgumentHelp("A replica URI nvmf://HOST:PORT/SUBNQN (repeatable).", valueName: "URI"))
    var children: [String] = []
    @Option(name: .customLong("min-cntlid"), help: "Lowest controller ID of the published subsystem (with --max-cntlid; default 1).")
    var minCntlid: UInt32?
    @Option(name: .customLong("max-cntlid"), help: "Highest controller ID (default 65519).") var maxCntlid: UInt32?
    @Option(name: .customLong("resv-key"), help: ArgumentHelp("Reservation key (decimal or 0x…; default: derived from the UUID).", valueName: "K"))
    var resvKey: String?
    @Option(name: .customLong("preempt-policy"), help: ArgumentHelp("Which reservation holder may be preempted: holder (any) or argkey (only --preempt-key).",
                                                                   valueName: "holder|argkey"))
    var preemptPolicy = "holder"
    @Option(name: .customLong("preempt-key"), help: ArgumentHelp("The holder key argkey may preempt.", valueName: "K")) var preemptKey: String?
    @Flag(help: "Publish it at once.") var publish = false
    @Option(name: .customLong("allow-host"), help: ArgumentHelp("A host NQN allowed to connect when published (repeatable; default: any host).",
                                                               valueName: "NQN"))
    var allowHosts: [String] = []

    func validate() throws {
        guard !children.isEmpty else { throw ValidationError("give at least one --child URI") }
        guard ["holder", "argkey"].contains(preemptPolicy) else { throw ValidationError("--preempt-policy must be holder or argkey") }
        guard (minCntlid == nil) == (maxCntlid == nil) else { throw ValidationError("--min-cntlid and --max-cntlid go together") }
    }

    func run() async throws {
        var request = Halyard_Ioengine_V1_CreateNexusRequest()
        request.uuid = uuid
        request.volumeUuid = volume
        request.sizeBytes = try SizeParser.parseAllowingZero(size)  // 0 is the io-engine's to refuse (invalidArgument)
        request.children = children
        request.minCntlid = minCntlid ?? 0
        request.maxCntlid = maxCntlid ?? 0
        request.resvKey = try resvKey.map { try KeyParser.parse($0, option: "--resv-key") } ?? 0
        request.preemptPolicy = preemptPolicy == "argkey" ? .argkey : .holder
        request.preemptKey = try preemptKey.map { try KeyParser.parse($0, option: "--preempt-key") } ?? 0
        request.publish = publish
        request.allowedHosts = allowHosts
        let nexus = try await withNexusService(client) { [request] s in try await s.createNexus(request, options: IOEngineClient.callOptions) }
        try NexusOutput.printOne(nexus, json: client.json)
    }
}

struct NexusDestroyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "destroy", abstract: "Shut a nexus down, unpublish it and forget it.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_DestroyNexusRequest()
        request.uuid = uuid
        _ = try await withNexusService(client) { [request] s in try await s.destroyNexus(request, options: IOEngineClient.callOptions) }
        if client.json { try TableOutput.printJSON(["destroyed": uuid]) } else { print("nexus \(uuid) destroyed") }
    }
}

struct NexusShutdownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown", abstract: "Shut a nexus down: I/O held (ANA inaccessible), children closed, clean shutdown recorded.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_ShutdownNexusRequest()
        request.uuid = uuid
        let nexus = try await withNexusService(client) { [request] s in try await s.shutdownNexus(request, options: IOEngineClient.callOptions) }
        try NexusOutput.printOne(nexus, json: client.json)
    }
}

struct NexusPublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Publish a nexus over NVMe/TCP (prints its NQN and nvmf URI); again: replace the allowed hosts.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String
    @Option(name: .customLong("allow-host"), help: ArgumentHelp("A host NQN allowed to connect (repeatable; default: any host).", valueName: "NQN"))
    var allowHosts: [String] = []

    func run() async throws {
        var request = Halyard_Ioengine_V1_PublishNexusRequest()
        request.uuid = uuid
        request.allowedHosts = allowHosts
        let nexus = try await withNexusService(client) { [request] s in try await s.publishNexus(request, options: IOEngineClient.callOptions) }
        if client.json { try NexusOutput.printOne(nexus, json: true); return }
        print("nqn: \(nexus.nqn)")
        print("uri: \(nexus.uri)")
        print("allowed hosts: \(nexus.allowedHosts.isEmpty ? "any" : nexus.allowedHosts.joined(separator: ","))")
    }
}

struct NexusUnpublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpublish", abstract: "Stop publishing a nexus (connected hosts are disconnected).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_UnpublishNexusRequest()
        request.uuid = uuid
        let nexus = try await withNexusService(client) { [request] s in try await s.unpublishNexus(request, options: IOEngineClient.callOptions) }
        if client.json { try NexusOutput.printOne(nexus, json: true) } else { print("nexus \(uuid) unpublished") }
    }
}

struct NexusListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List nexuses.")
    @OptionGroup var client: IOEngineClientOptions

    func run() async throws {
        let response = try await withNexusService(client) { s in try await s.listNexuses(.init(), options: IOEngineClient.callOptions) }
        try NexusOutput.printList(response.nexuses, json: client.json)
    }
}

struct NexusGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show one nexus with its children.")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String

    func run() async throws {
        var request = Halyard_Ioengine_V1_GetNexusRequest()
        request.uuid = uuid
        let nexus = try await withNexusService(client) { [request] s in try await s.getNexus(request, options: IOEngineClient.callOptions) }
        try NexusOutput.printOne(nexus, json: client.json)
    }
}

struct NexusHealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Show a nexus's health record as the cluster store holds it (also after it is gone).")
    @OptionGroup var client: IOEngineClientOptions
    @Argument(help: "Nexus UUID.") var uuid: String

    struct Output: Encodable {
        struct Child: Encodable { var uuid: String; var healthy: Bool }
        var key, volumeUuid, nexusUuid: String
        var cleanShutdown: Bool
        var children: [Child]
        var modRevision: Int64
    }

    func run() async throws {
        var request = Halyard_Ioengine_V1_GetHealthRecordRequest()
        request.uuid = uuid
        let record = try await withNexusService(client) { [request] s in try await s.getHealthRecord(request, options: IOEngineClient.callOptions) }
        if client.json {
            try TableOutput.printJSON(Output(key: record.key, volumeUuid: record.volumeUuid, nexusUuid: record.nexusUuid,
                                             cleanShutdown: record.cleanShutdown,
                                             children: record.children.map { .init(uuid: $0.uuid, healthy: $0.healthy) },
                                             modRevision: record.modRevision))
            return
        }
        print("key:            \(record.key)")
        print("clean shutdown: \(record.cleanShutdown ? "yes" : "no")")
        print("revision:       \(record.modRevision)")
        print("")
        TableOutput.print(headers: ["CHILD", "HEALTHY"], rows: record.children.map { [$0.uuid, $0.healthy ? "yes" : "no"] })
    }
}

// MARK: Children

struct NexusChildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "child", abstract: "Add, remove, offline, online or fault a nexus's child.",
        subcommands: [Add.self, Remove.self, Offline.self, Online.self, Fault.self])

    /// UUID URI, the io-engine call, the answer printed.
    struct Arguments: ParsableArguments {
        @OptionGroup var client: IOEngineClientOptions
        @Argument(help: "Nexus UUID.") var uuid: String
        @Argument(help: "The child's URI, nvmf://HOST:PORT/SUBNQN.") var uri: String

        var request: Halyard_Ioengine_V1_ChildRequest {
            var request = Halyard_Ioengine_V1_ChildRequest()
            request.uuid = uuid
            request.uri = uri
            return request
        }

        func run(_ call: @escaping @Sendable (NexusClient, Halyard_Ioengine_V1_ChildRequest) async throws -> Halyard_Ioengine_V1_Nexus)
            async throws
        {
            let request = self.request
            let nexus = try await withNexusService(client) { s in try await call(s, request) }
            try NexusOutput.printOne(nexus, json: client.json)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a child; it is rebuilt from the healthy children.")
        @OptionGroup var arguments: Arguments
        func run() async throws { try await arguments.run { try await $0.addChild($1, options: IOEngineClient.callOptions) } }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a child (not the last healthy one).")
        @OptionGroup var arguments: Arguments
        func run() async throws { try await arguments.run { try await $0.removeChild($1, options: IOEngineClient.callOptions) } }
    }

    struct Offline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "offline", abstract: "Take a child offline (its missed segments are logged for a partial rebuild).")
        @OptionGroup var arguments: Arguments
        func run() async throws { try await arguments.run { try await $0.offlineChild($1, options: IOEngineClient.callOptions) } }
    }

    struct Online: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "online", abstract: "Bring an offline or faulted child back (rebuilt).")
        @OptionGroup var arguments: Arguments
        func run() async throws { try await arguments.run { try await $0.onlineChild($1, options: IOEngineClient.callOptions) } }
    }

    struct Fault: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "fault", abstract: "Fault a child as an I/O error would.")
        @OptionGroup var arguments: Arguments
        func run() async throws { try await arguments.run { try await $0.faultChild($1, options: IOEngineClient.callOptions) } }
    }
}

// MARK: Rebuilds

struct NexusRebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild", abstract: "Show running and finished rebuilds; show or set the rebuild limits.",
        subcommands: [List.self, History.self, Limits.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The rebuilds running in a nexus.")
        @OptionGroup var client: IOEngineClientOptions
        @Argument(help: "Nexus UUID.") var uuid: String

        func run() async throws {
            var request = Halyard_Ioengine_V1_ListRebuildsRequest()
            request.uuid = uuid
            let response = try await withNexusService(client) { [request] s in try await s.listRebuilds(request, options: IOEngineClient.callOptions) }
            try RebuildOutput.print(response.rebuilds, json: client.json)
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "history", abstract: "The rebuilds a nexus finished, oldest first.")
        @OptionGroup var client: IOEngineClientOptions
        @Argument(help: "Nexus UUID.") var uuid: String

        func run() async throws {
            var request = Halyard_Ioengine_V1_GetRebuildHistoryRequest()
            request.uuid = uuid
            let response = try await withNexusService(client) { [request] s in
                try await s.getRebuildHistory(request, options: IOEngineClient.callOptions)
            }
            try RebuildOutput.print(response.rebuilds, json: client.json)
        }
    }

    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "limits",
            abstract: "Show the io-engine's rebuild limits, or set them (the defaults of new nexuses, and every nexus's concurrency and rate).")
        @OptionGroup var client: IOEngineClientOptions
        @Option(help: "Segments copied at once per rebuild (1-64).") var concurrency: UInt32?
        @Option(help: ArgumentHelp("Bytes per second per rebuild, e.g. 100MiB; 0 or 'unlimited' for no limit.", valueName: "BYTES/s"))
        var rate: String?
        @Option(help: ArgumentHelp("Segment size for nexuses created from now on, a power of two from 64KiB to 64MiB.", valueName: "SIZE"))
        var segment: String?

        struct Output: Encodable {
            var concurrency: UInt32
            var bytesPerSecond: UInt64?
            var segmentBytes: UInt64
        }

        func run() async throws {
            let limits: Halyard_Ioengine_V1_RebuildLimits
            if concurrency == nil && rate == nil && segment == nil {
                limits = try await withNexusService(client) { s in try await s.getRebuildLimits(.init(), options: IOEngineClient.callOptions) }
            } else {
                var request = Halyard_Ioengine_V1_SetRebuildLimitsRequest()
                if let concurrency { request.concurrency = concurrency }
                if let rate {
                    let text = rate.hasSuffix("/s") ? String(rate.dropLast(2)) : rate
                    request.bytesPerSecond = text.lowercased() == "unlimited" ? 0 : try SizeParser.parseAllowingZero(text)
                }
                if let segment { request.segmentBytes = try SizeParser.parse(segment) }
                limits = try await withNexusService(client) { [request] s in try await s.setRebuildLimits(request, options: IOEngineClient.callOptions) }
            }
            if client.json {
                try TableOutput.printJSON(Output(concurrency: limits.concurrency,
                                                 bytesPerSecond: limits.bytesPerSecond == 0 ? nil : limits.bytesPerSecond,
                                                 segmentBytes: limits.segmentBytes))
                return
            }
            TableOutput.print(headers: ["CONCURRENCY", "RATE", "SEGMENT"],
                              rows: [[String(limits.concurrency),
                                      limits.bytesPerSecond == 0 ? "unlimited" : TableOutput.bytes(limits.bytesPerSecond) + "/s",
                                      TableOutput.bytes(limits.segmentBytes)]])
        }
    }
}
