import ArgumentParser
import NVMe
import NVMeHost

/// `halyard nvme discover`: reads the discovery log page of each given discovery controller.
struct NVMeDiscoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discover",
        abstract: "List the subsystems a discovery controller offers (like nvme discover).",
        discussion: """
              halyard nvme discover -a 127.0.0.1 -s 8009 [--json]
            The NQN defaults to the well-known discovery NQN; the port to 8009. With several \
            -a/-s paths every discovery controller is asked and the entries are merged.
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    static let discoveryNQN = NVMeDiscovery.discoveryNQN

    struct Record: Encodable, Hashable {
        var trtype: String
        var adrfam: String
        var subtype: String
        var treq: String
        var portid: UInt16
        var trsvcid: String
        var subnqn: String
        var traddr: String
        var eflags: UInt16
        var sectype: String
        var cntlid: UInt16
        var asqsz: UInt16
    }

    struct Output: Encodable {
        var genctr: UInt64
        var records: [Record]
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = common.nqn ?? Self.discoveryNQN
            let options = DiscoveryOptions(controller: common.controllerOptions()).controller
            let session = try NVMeCLISession(common)
            let output = try await session.run { session in
                var genctr: UInt64 = 0
                var records: [Record] = []
                for (i, path) in common.paths(defaultPort: 8009).enumerated() {
                    let controller = try await session.connect(path, nqn: nqn, options: options)
                    let page: DiscoveryLogPage
                    do {
                        page = try await controller.discoveryLogPage()
                    } catch {
                        throw CLIError("discovery log page from \(path) failed: \(describe(error))")
                    }
                    if i == 0 { genctr = page.generationCounter }
                    for entry in page.entries {
                        let record = Self.record(entry)
                        if !records.contains(record) { records.append(record) }
                    }
                }
                return Output(genctr: genctr, records: records)
            }
            if json {
                try printJSON(output)
            } else {
                var text = "Discovery Log Number of Records \(output.records.count), Generation counter \(output.genctr)\n"
                for (i, r) in output.records.enumerated() {
                    text += """
                        =====Discovery Log Entry \(i)======
                        trtype:  \(r.trtype)
                        adrfam:  \(r.adrfam)
                        subtype: \(r.subtype)
                        treq:    \(r.treq)
                        portid:  \(r.portid)
                        trsvcid: \(r.trsvcid)
                        subnqn:  \(r.subnqn)
                        traddr:  \(r.traddr)
                        eflags:  \(r.eflags == 0 ? "none" : "0x" + String(r.eflags, radix: 16))
                        sectype: \(r.sectype)

                        """
                }
                writeStdout(text)
            }
        }
    }

    static func record(_ e: DiscoveryLogEntry) -> Record {
        let trtype = e.transportType.name
        let adrfam = e.addressFamily.name
        let subtype = e.subsystemType.name
        let treq = switch e.transportRequirements & 0x3 {
        case 0: "not specified"
        case 1: "required"
        case 2: "not required"
        default: "reserved"
        }
        let sectype = switch e.tcpSecurityType {
        case 0: "none"
        case 1: "tls1.2"
        case 2: "tls1.3"
        default: "unrecognized (\(e.tcpSecurityType))"
        }
        return Record(trtype: trtype, adrfam: adrfam, subtype: subtype,
                      treq: treq + (e.transportRequirements & 0x4 != 0 ? ", sq flow control disable supported" : ""),
                      portid: e.portID, trsvcid: e.transportServiceID, subnqn: e.subsystemNQN, traddr: e.transportAddress,
                      eflags: e.entryFlags, sectype: sectype, cntlid: e.controllerID, asqsz: e.adminMaxSubmissionQueueSize)
    }
}
