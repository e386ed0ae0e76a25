import ArgumentParser
import NVMe
import NVMeHost

/// `halyard nvme connect-all`: discovers (NVMeHost's `NVMeDiscovery`), connects every NVM
/// subsystem entry on every path with a multipath device per namespace (`SubsystemConnection`),
/// reports each subsystem like `connect` plus the entries skipped, then disconnects everything.
struct NVMeConnectAllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect-all",
        abstract: "Discover, then connect to every NVM subsystem on every path, show each like connect, disconnect.",
        discussion: """
              halyard nvme connect-all -a HOST -s PORT [-a HOST -s PORT ...] [--use-discovery-address] [--json]
            Reads the discovery log page of each discovery controller (port 8009 by default; -n for \
            another discovery NQN), follows referral entries one level deep, and connects every TCP \
            NVM subsystem entry: a controller per path and, per namespace, a multipath device over \
            the paths that connected. The same subsystem and address from several discovery \
            controllers is one path. Entries not used (the current discovery subsystem, other \
            transports or address families, TLS, deeper referrals) are listed as skipped with why.
            Exits 1 if a discovery controller cannot be read, or a path, a namespace or its \
            multipath device fails (everything that connected is still reported).
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: ArgumentHelp("Connect to the host each discovery controller was reached at, not the entries' TRADDR (their TRSVCID is kept).",
                             discussion: "For targets that advertise an address this host cannot reach (e.g. 10.0.2.2 of a QEMU guest)."))
    var useDiscoveryAddress = false

    @Flag(help: "Print one JSON object.")
    var json = false

    struct DiscoveryOutput: Encodable {
        var traddr: String
        var trsvcid: String
        var subnqn: String
        var referredBy: String?
        var genctr: UInt64?
        var records: Int?
        var error: String?

        enum CodingKeys: String, CodingKey {
            case traddr, trsvcid, subnqn, genctr, records, error
            case referredBy = "referred_by"
        }
    }

    /// A skipped entry: `discover --json`'s record, the discovery controller that listed it, why.
    struct SkippedOutput: Encodable {
        var record: NVMeDiscoverCommand.Record
        var source: String
        var reason: String

        func encode(to encoder: any Encoder) throws {
            try record.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(source, forKey: .source)
            try c.encode(reason, forKey: .reason)
        }
        enum Key: String, CodingKey { case source, reason }
    }

    struct Output: Encodable {
        var hostnqn: String
        var hostid: String
        var discovery: [DiscoveryOutput]
        var subsystems: [SubsystemSummary]
        var skipped: [SkippedOutput]
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let discoveryNQN = common.nqn ?? NVMeDiscovery.discoveryNQN
            let options = DiscoveryOptions(useDiscoveryAddress: useDiscoveryAddress, controller: common.controllerOptions())
            let session = try NVMeCLISession(common)
            let (output, failures) = try await session.run { session in
                let report = await NVMeDiscovery.discover(common.paths(defaultPort: 8009), subsystemNQN: discoveryNQN,
                                                          identity: session.identity, options: options, group: session.group,
                                                          logger: NVMeCLISession.multipathLogger())
                var failures = report.failures.map { describe($0) }
                var subsystems: [SubsystemSummary] = []
                for connection in await session.connectAll(report.subsystems, common: common) {
                    let (summary, lines) = await SubsystemSummary.build(connection, identity: session.identity)
                    subsystems.append(summary)
                    failures += lines
                }
                let discovery = report.controllers.map { c in
                    DiscoveryOutput(traddr: c.address.host, trsvcid: String(c.address.port), subnqn: c.subsystemNQN,
                                    referredBy: c.referredBy?.description, genctr: c.generationCounter, records: c.recordCount,
                                    error: c.error.map { describe($0) })
                }
                let skipped = report.skipped.map {
                    SkippedOutput(record: NVMeDiscoverCommand.record($0.entry), source: $0.source.description, reason: $0.reason)
                }
                let output = Output(hostnqn: session.identity.hostNQN, hostid: NamespaceUUID(session.identity.hostID).description,
                                    discovery: discovery, subsystems: subsystems, skipped: skipped)
                return (output, failures)
            }
            if json {
                try printJSON(output)
            } else {
                writeStdout(Self.text(output))
            }
            for failure in failures { printError(failure) }
            if !failures.isEmpty { throw ExitCode.failure }
        }
    }

    static func text(_ output: Output) -> String {
        var text = ""
        for d in output.discovery {
            let address = TransportAddress(host: d.traddr, port: Int(d.trsvcid) ?? 0)
            text += "discovery \(address)\(d.referredBy.map { " (referral from \($0))" } ?? ""): "
            if let error = d.error {
                text += "FAILED: \(error)\n"
            } else {
                text += "\(d.records ?? 0) records, generation counter \(d.genctr ?? 0)\n"
            }
        }
        text += "host \(output.hostnqn) (hostid \(output.hostid))\n"
        if output.subsystems.isEmpty { text += "no NVM subsystem to connect\n" }
        for s in output.subsystems { text += s.text(withHost: false) }
        for s in output.skipped {
            let r = s.record
            text += "skipped \(r.subtype) \(r.subnqn.isEmpty ? "-" : r.subnqn) at \(r.trtype) \(r.traddr):\(r.trsvcid) (from \(s.source)): \(s.reason)\n"
        }
        return text
    }
}
