import ArgumentParser
import Foundation
import NIOHTTP1
import NVMe
import NVMeTarget

/// `halyard nvmf-target`: serving is the default subcommand (`halyard nvmf-target --listen …`
/// works as always); `ana`, `hosts` and `stats` talk to a running target's control interface
/// (`--control`, see `ControlAPI`).
struct NVMfTargetGroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmf-target",
        abstract: "Serve NVMe/TCP subsystems (a standalone Halyard target), or control a running one.",
        discussion: """
            halyard nvmf-target --listen 127.0.0.1:4420 --nqn NQN --memory 1GiB [--control unix:PATH]
            halyard nvmf-target ana   --control ADDRESS --nqn NQN --listener HOST:PORT --state STATE [--group N]
            halyard nvmf-target hosts --control ADDRESS --nqn NQN (--allow HOSTNQN | --deny HOSTNQN | ...)
            halyard nvmf-target stats --control ADDRESS [--json]
            """,
        subcommands: [NVMfTargetCommand.self, NVMfTargetANACommand.self, NVMfTargetHostsCommand.self, NVMfTargetStatsCommand.self],
        defaultSubcommand: NVMfTargetCommand.self)
}

/// The `--control ADDRESS` of the control subcommands.
struct ControlClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The target's control interface: unix:PATH or 127.0.0.1:PORT.", valueName: "ADDRESS"))
    var control: String

    func address() throws -> ControlAddress { try ControlAddress(parsing: control) }

    func validate() throws { _ = try address() }
}

/// A control request the target refused, or a control interface that could not be reached.
struct ControlCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension ControlClient {
    /// Makes the request; a non-2xx answer becomes a `ControlCommandError` with the target's message.
    static func call<Body: Encodable>(_ method: HTTPMethod, _ path: String, body: Body?, options: ControlClientOptions) async throws -> Data {
        let answer: Answer
        do {
            answer = try await request(method, path, body: body, to: options.address())
        } catch let error as ControlClientError {
            throw ControlCommandError(error.description)
        }
        guard (200..<300).contains(answer.status.code) else {
            throw ControlCommandError("\(answer.errorMessage) (HTTP \(answer.status.code))")
        }
        return answer.body
    }
}

/// `halyard nvmf-target ana`: sets the ANA state of one group on one listener.
struct NVMfTargetANACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ana",
        abstract: "Set the ANA state of an ANA group on one listener of a running target.")

    @OptionGroup var options: ControlClientOptions

    @Option(help: "Subsystem NQN.")
    var nqn: String

    @Option(help: ArgumentHelp("The listener (path) whose state changes, as the target binds it.", valueName: "HOST:PORT"))
    var listener: String

    @Option(help: ArgumentHelp("optimized, non-optimized, inaccessible, persistent-loss or change.", valueName: "STATE"))
    var state: String

    @Option(help: "ANA group ID.")
    var group: UInt32 = 1

    @Flag(help: "Print the answer as JSON.")
    var json = false

    func validate() throws {
        guard ANAState(name: state) != nil else {
            throw ValidationError("unknown --state '\(state)': optimized, non-optimized, inaccessible, persistent-loss or change")
        }
        guard ListenerAddress(parsing: listener) != nil else { throw ValidationError("invalid --listener '\(listener)': expected HOST:PORT") }
    }

    func run() async throws {
        let body = ANABody(nqn: nqn, listener: listener, state: state, group: group)
        let data = try await ControlClient.call(.POST, "/v1/ana", body: body, options: options)
        if json { FileHandle.standardOutput.write(data); return }
        let change = try JSONDecoder().decode(ANAStateChange.self, from: data)
        if change.changed {
            print("\(change.subsystemNQN): ANA group \(change.group) on \(change.listener) is now \(change.state) (change count \(change.changeCount), \(change.controllersNotified) controller(s) notified)")
        } else {
            print("\(change.subsystemNQN): ANA group \(change.group) on \(change.listener) was already \(change.state) (change count \(change.changeCount))")
        }
    }

    struct ANABody: Encodable {
        var nqn: String
        var listener: String
        var state: String
        var group: UInt32
    }
}

/// `halyard nvmf-target hosts`: changes which hosts may use a subsystem.
struct NVMfTargetHostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts",
        abstract: "Change which hosts may use a subsystem of a running target (deny wins; a host that loses access is disconnected at once).",
        discussion: """
            Exactly one of:
              --allow HOSTNQN         the host may connect (off the deny list; onto the allow list if one is in force)
              --deny HOSTNQN          the host may not connect; its controllers are disconnected
              --remove-allow HOSTNQN  off the allow list (refused while any host is allowed)
              --remove-deny HOSTNQN   off the deny list
              --allow-any             no allow list: any host not denied may connect
              --allow-only HOSTNQN    replace the allow list (repeatable); the deny list stays
            """)

    @OptionGroup var options: ControlClientOptions

    @Option(help: "Subsystem NQN.")
    var nqn: String

    @Option(help: ArgumentHelp("Let this host connect.", valueName: "HOSTNQN"))
    var allow: String?

    @Option(help: ArgumentHelp("Refuse this host and disconnect it.", valueName: "HOSTNQN"))
    var deny: String?

    @Option(name: .customLong("remove-allow"), help: ArgumentHelp("Take this host off the allow list.", valueName: "HOSTNQN"))
    var removeAllow: String?

    @Option(name: .customLong("remove-deny"), help: ArgumentHelp("Take this host off the deny list.", valueName: "HOSTNQN"))
    var removeDeny: String?

    @Flag(name: .customLong("allow-any"), help: "Drop the allow list: any host not denied may connect.")
    var allowAny = false

    @Option(name: .customLong("allow-only"), help: ArgumentHelp("Replace the allow list with these hosts (repeatable).", valueName: "HOSTNQN"))
    var allowOnly: [String] = []

    @Flag(help: "Print the answer as JSON.")
    var json = false

    func validate() throws {
        let given = [allow != nil, deny != nil, removeAllow != nil, removeDeny != nil, allowAny, !allowOnly.isEmpty].filter { $0 }.count
        guard given == 1 else {
            throw ValidationError("give exactly one of --allow, --deny, --remove-allow, --remove-deny, --allow-any, --allow-only")
        }
    }

    func run() async throws {
        let data: Data
        if !allowOnly.isEmpty {
            // Keep the deny list: read it first (a concurrent change in between is the caller's race).
            let stats = try JSONDecoder().decode(TargetStatistics.self, from: try await ControlClient.call(.GET, "/v1/stats", body: Optional<ReplaceBody>.none, options: options))
            guard let subsystem = stats.subsystems.first(where: { $0.nqn == nqn }) else {
                throw ControlCommandError("unknown subsystem NQN \(nqn) (served: \(stats.subsystems.map(\.nqn).joined(separator: ", ")))")
            }
            data = try await ControlClient.call(.PUT, "/v1/hosts", body: ReplaceBody(nqn: nqn, allowHosts: allowOnly, denyHosts: subsystem.denyHosts), options: options)
        } else {
            let (action, host): (String, String?) =
                if let allow { ("allow", allow) } else if let deny { ("deny", deny) } else if let removeAllow { ("remove-allow", removeAllow) }
                else if let removeDeny { ("remove-deny", removeDeny) } else { ("allow-any", nil) }
            data = try await ControlClient.call(.POST, "/v1/hosts", body: ChangeBody(nqn: nqn, action: action, host: host), options: options)
        }
        if json { FileHandle.standardOutput.write(data); return }
        let update = try JSONDecoder().decode(HostAccessUpdate.self, from: data)
        let allowed = update.allowedHosts.map { $0.isEmpty ? "no host" : $0.joined(separator: ", ") } ?? "any host"
        let denied = update.deniedHosts.isEmpty ? "none" : update.deniedHosts.joined(separator: ", ")
        print("\(update.subsystemNQN): allow \(allowed); deny \(denied)")
        for c in update.disconnected {
            print("disconnected controller \(c.controllerID) of \(c.hostNQN)")
        }
    }

    struct ChangeBody: Encodable {
        var nqn: String
        var action: String
        var host: String?
    }

    struct ReplaceBody: Encodable {
        var nqn: String
        var allowHosts: [String]
        var denyHosts: [String]
    }
}

/// `halyard nvmf-target stats`: per-listener and per-controller I/O counters, ANA states and host
/// lists of a running target.
struct NVMfTargetStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show a running target's I/O counters per listener and per controller, ANA states and host lists.")

    @OptionGroup var options: ControlClientOptions

    @Flag(help: "Print JSON (the GET /v1/stats answer).")
    var json = false

    func run() async throws {
        let data = try await ControlClient.call(.GET, "/v1/stats", body: Optional<NVMfTargetHostsCommand.ReplaceBody>.none, options: options)
        if json { FileHandle.standardOutput.write(data); return }
        let stats = try JSONDecoder().decode(TargetStatistics.self, from: data)
        for l in stats.listeners {
            print("listener \(l.address): \(Self.describe(l.io))")
        }
        for s in stats.subsystems {
            print("subsystem \(s.nqn): ANA change count \(s.anaChangeCount)")
            for g in s.anaGroups {
                let paths = g.paths.map { "\($0.listener) \($0.state)" }.joined(separator: ", ")
                print("  ANA group \(g.group) (namespaces \(g.namespaces.map(String.init).joined(separator: ","))): \(paths)")
            }
            let allowed = s.allowHosts.map { $0.isEmpty ? "no host" : $0.joined(separator: ", ") } ?? "any host"
            print("  hosts: allow \(allowed); deny \(s.denyHosts.isEmpty ? "none" : s.denyHosts.joined(separator: ", "))")
            for c in s.controllers {
                print("  controller \(c.controllerID) \(c.hostNQN) via \(c.listener), \(c.ioQueues) I/O queue(s): \(Self.describe(c.io))")
            }
        }
    }

    static func describe(_ io: IOCounters) -> String {
        "\(io.readCommands) reads (\(io.readBytes) bytes), \(io.writeCommands) writes (\(io.writtenBytes) bytes)"
    }
}
