import NVMe
import NVMeHost

/// What `halyard nvme connect` and `connect-all` report of one connected subsystem: each path's
/// controller (or its error) with its ANA groups, and each namespace with its state on every
/// path. JSON keys are `connect --json`'s.
struct SubsystemSummary: Encodable {
    struct PathANA: Encodable {
        var path: String
        var state: String?
        /// Only for a multipath device's path: whether I/O may be sent there.
        var usable: Bool?
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

    var subnqn: String
    var hostnqn: String
    var hostid: String
    var controllers: [ControllerOutput]
    var namespaces: [NamespaceOutput]

    /// The summary of `connection`, and one line per failure (a path, the namespace list, a
    /// namespace that cannot be identified or grouped into a multipath device).
    static func build(_ connection: SubsystemConnection, identity: HostIdentity) async -> (SubsystemSummary, failures: [String]) {
        var failures: [String] = []
        var controllers: [ControllerOutput] = []
        for path in connection.paths {
            let traddr = path.address.host, trsvcid = String(path.address.port)
            guard let c = path.controller else {
                let line = path.error.map { describe($0) } ?? "path \(path.address) did not connect"
                failures.append(line)
                controllers.append(ControllerOutput(traddr: traddr, trsvcid: trsvcid, error: line))
                continue
            }
            controllers.append(ControllerOutput(
                traddr: traddr, trsvcid: trsvcid, cntlid: c.controllerID,
                model: c.identify.modelNumber, serial: c.identify.serialNumber, firmware: c.identify.firmwareRevision,
                ioQueues: c.ioQueues.count, ioQueueDepth: c.ioQueues.first?.depth,
                ana: path.anaLog?.groups.map { ANAGroupOutput(grpid: $0.anaGroupID, state: $0.state.name, nsids: $0.namespaceIDs) }))
        }
        if let error = connection.namespaceListError { failures.append(describe(error)) }
        var namespaces: [NamespaceOutput] = []
        if let first = connection.connectedPaths.first?.controller {
            for ns in connection.namespaces {
                let nsid = ns.nsid
                if let error = ns.error { failures.append(describe(error)) }
                let info: NamespaceInfo
                do {
                    info = try await NamespaceInfo.load(first, nsid: nsid).0
                } catch {
                    failures.append(describe(error))
                    continue
                }
                var paths: [PathANA] = []
                if let device = ns.device {
                    // The multipath device's view: each path's ANA state and whether it takes I/O.
                    paths = device.paths.map { PathANA(path: $0.address.description, state: $0.anaState?.name, usable: $0.isUsable) }
                } else {
                    for path in connection.paths {
                        guard let c = path.controller else { continue }
                        // Each path's own view: its ANA group state for this namespace.
                        let ana = path.anaLog
                        var group = info.anaGroupID
                        if c !== first, let ns = try? await c.identifyNamespace(nsid) { group = ns.anagrpid }
                        let state = (ana?.groups.first { $0.namespaceIDs.contains(nsid) } ?? ana?.groups.first { $0.anaGroupID == group })?.state
                        paths.append(PathANA(path: path.address.description, state: state?.name))
                    }
                }
                namespaces.append(NamespaceOutput(namespace: info, paths: paths))
            }
        }
        let summary = SubsystemSummary(subnqn: connection.subsystemNQN, hostnqn: identity.hostNQN,
                                       hostid: NamespaceUUID(identity.hostID).description,
                                       controllers: controllers, namespaces: namespaces)
        return (summary, failures)
    }

    /// `connect`'s text form.
    func text(withHost: Bool = true) -> String {
        var text = "subsystem \(subnqn)\n"
        if withHost { text += "host \(hostnqn) (hostid \(hostid))\n" }
        for c in controllers {
            let path = TransportAddress(host: c.traddr, port: Int(c.trsvcid) ?? 0)
            if let error = c.error {
                text += "path \(path): FAILED: \(error)\n"
                continue
            }
            text += "path \(path): controller \(c.cntlid.map(String.init) ?? "-"), model \"\(c.model ?? "")\", serial \"\(c.serial ?? "")\", "
                + "firmware \"\(c.firmware ?? "")\", \(c.ioQueues ?? 0) I/O queues × \(c.ioQueueDepth ?? 0)\n"
            for g in c.ana ?? [] {
                text += "  ANA group \(g.grpid): \(g.state), namespaces \(g.nsids.map(String.init).joined(separator: ","))\n"
            }
        }
        for n in namespaces {
            let ns = n.namespace
            text += "namespace \(ns.nsid): \(ns.sizeBytes) bytes (\(ns.blocks) blocks × \(ns.blockSize)), NGUID \(ns.nguid ?? "-"), UUID \(ns.uuid ?? "-")\n"
            for p in n.paths { text += "  \(p.path): \(p.state ?? "no ANA")\(p.usable == false ? " (not usable)" : "")\n" }
        }
        return text
    }
}
