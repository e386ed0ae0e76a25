import ArgumentParser
import NVMe
import NVMeHost

/// `halyard nvme connect`: connects a controller on every given path, reports the controllers,
/// the namespaces and each path's ANA state, then disconnects (a connectivity check; Halyard has
/// no kernel block device to leave behind).
struct NVMeConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connect to a subsystem on every path, show controllers, namespaces and ANA states, disconnect.",
        discussion: """
              halyard nvme connect -a HOST -s PORT [-a HOST -s PORT ...] -n NQN [--json]
            Exits 1 if any path fails to connect (the paths that did are still reported).
            """)

    @OptionGroup var common: NVMeConnectionOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    struct PathANA: Encodable {
        var path: String
        var state: String?
    }

    struct NamespaceOutput: Encodable {
        var namespace: NamespaceInfo
        var paths: [PathANA]

        func encode(to encoder: any Encoder) throws {
            try namespace.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(paths, forKey: .paths)
        }
        enum Key: String, CodingKey { case paths }
    }

    struct ANAGroupOutput: Encodable {
        var grpid: UInt32
        var state: String
        var nsids: [UInt32]
    }

    struct ControllerOutput: Encodable {
        var traddr: String
        var trsvcid: String
        var cntlid: UInt16?
        var model: String?
        var serial: String?
        var firmware: String?
        var ioQueues: Int?
        var ioQueueDepth: Int?
        var ana: [ANAGroupOutput]?
        var error: String?

        enum CodingKeys: String, CodingKey {
            case traddr, trsvcid, cntlid, model, serial, firmware, ana, error
            case ioQueues = "io_queues", ioQueueDepth = "io_queue_depth"
        }
    }

    struct Output: Encodable {
        var subnqn: String
        var hostnqn: String
        var hostid: String
        var controllers: [ControllerOutput]
        var namespaces: [NamespaceOutput]
    }

    func run() async throws {
        try await runNVMeCommand(logLevel: common.logLevel) {
            let nqn = try common.requireNQN()
            let session = try NVMeCLISession(common)
            let (output, failures) = try await session.run { session in
                var controllers: [ControllerOutput] = []
                var connected: [(TransportAddress, NVMeController, ANALogPage?)] = []
                var failures: [String] = []
                for path in common.paths(defaultPort: 4420) {
                    do {
                        let c = try await session.connect(path, nqn: nqn)
                        var ana: ANALogPage? = nil
                        var out = ControllerOutput(
                            traddr: path.host, trsvcid: String(path.port), cntlid: c.controllerID,
                            model: c.identify.modelNumber, serial: c.identify.serialNumber, firmware: c.identify.firmwareRevision,
                            ioQueues: c.ioQueues.count, ioQueueDepth: c.ioQueues.first?.depth)
                        if c.identify.cmic & 0x08 != 0 {
                            do {
                                ana = try await c.anaLogPage()
                                out.ana = ana!.groups.map { ANAGroupOutput(grpid: $0.anaGroupID, state: $0.state.name, nsids: $0.namespaceIDs) }
                            } catch {
                                throw CLIError("ANA log page from \(path) failed: \(describe(error))")
                            }
                        }
                        controllers.append(out)
                        connected.append((path, c, ana))
                    } catch {
                        let line = describe(error)
                        failures.append(line)
                        controllers.append(ControllerOutput(traddr: path.host, trsvcid: String(path.port), error: line))
                    }
                }
                var namespaces: [NamespaceOutput] = []
                if let (firstPath, first, _) = connected.first {
                    let nsids: [UInt32]
                    do {
                        nsids = try await first.activeNamespaces()
                    } catch {
                        throw CLIError("active namespace list from \(firstPath) failed: \(describe(error))")
                    }
                    for nsid in nsids {
                        let (info, _) = try await NamespaceInfo.load(first, nsid: nsid)
                        var paths: [PathANA] = []
                        for (path, c, ana) in connected {
                            // Each path's own view: its ANA group state for this namespace.
                            var group = info.anaGroupID
                            if c !== first, let ns = try? await c.identifyNamespace(nsid) { group = ns.anagrpid }
                            let state = (ana?.groups.first { $0.namespaceIDs.contains(nsid) } ?? ana?.groups.first { $0.anaGroupID == group })?.state
                            paths.append(PathANA(path: path.description, state: state?.name))
                        }
                        namespaces.append(NamespaceOutput(namespace: info, paths: paths))
                    }
                }
                let output = Output(subnqn: nqn, hostnqn: session.identity.hostNQN,
                                    hostid: NamespaceUUID(session.identity.hostID).description,
                                    controllers: controllers, namespaces: namespaces)
                return (output, failures)
            }
            if json {
                try printJSON(output)
            } else {
                var text = "subsystem \(output.subnqn)\nhost \(output.hostnqn) (hostid \(output.hostid))\n"
                for c in output.controllers {
                    let path = TransportAddress(host: c.traddr, port: Int(c.trsvcid) ?? 0)
                    if let error = c.error {
                        text += "path \(path): FAILED: \(error)\n"
                        continue
                    }
                    text += "path \(path): controller \(c.cntlid!), model \"\(c.model!)\", serial \"\(c.serial!)\", firmware \"\(c.firmware!)\", \(c.ioQueues!) I/O queues × \(c.ioQueueDepth ?? 0)\n"
                    for g in c.ana ?? [] {
                        text += "  ANA group \(g.grpid): \(g.state), namespaces \(g.nsids.map(String.init).joined(separator: ","))\n"
                    }
                }
                for n in output.namespaces {
                    let ns = n.namespace
                    text += "namespace \(ns.nsid): \(ns.sizeBytes) bytes (\(ns.blocks) blocks × \(ns.blockSize)), NGUID \(ns.nguid ?? "-"), UUID \(ns.uuid ?? "-")\n"
                    for p in n.paths { text += "  \(p.path): \(p.state ?? "no ANA")\n" }
                }
                writeStdout(text)
            }
            for failure in failures { printError(failure) }
            if !failures.isEmpty { throw ExitCode.failure }
        }
    }
}
