import Logging
import NIOCore
import NIOPosix
import Nexus
import NVMeTarget

/// Opens a nexus's children for the io-engine (docs/notes/nexus-plan.md "Child URIs"): a URI whose
/// HOST:PORT is one of this engine's NVMe/TCP addresses (the listen or the advertised host, with
/// the bound port) and whose NQN is a replica subsystem this engine serves is a ``LocalChild``
/// over that subsystem's namespace 1 (no connection; the same reservation gate as the wire);
/// anything else is a ``RemoteChild`` over NVMe/TCP with the fail-fast options.
struct EngineChildConnector: ChildConnector {
    let target: NVMeTCPTarget
    /// The hosts this engine's listener answers to (listen host, advertised host).
    let hosts: [String]
    /// The bound NVMe/TCP port, read when a child is opened.
    let port: @Sendable () -> Int
    let options: ChildOpenOptions

    init(target: NVMeTCPTarget, configuration: IOEngineConfiguration, port: @escaping @Sendable () -> Int, logger: Logger) {
        self.target = target
        var hosts = [configuration.nvmfHost]
        if let advertised = configuration.advertisedHost, !hosts.contains(advertised) { hosts.append(advertised) }
        self.hosts = hosts.map { $0.lowercased() }
        self.port = port
        var options = ChildOpenOptions()
        options.logger = logger
        options.eventLoopGroup = target.eventLoopGroup
        self.options = options
    }

    /// The served replica namespace `uri` names on this engine, or nil when it is remote.
    func localNamespace(uri: String) -> Namespace? {
        guard let parsed = try? ChildURI(parsing: uri),
              parsed.port == port(), hosts.contains(parsed.host.lowercased()),
              parsed.subsystemNQN.hasPrefix(ReplicaShares.nqnPrefix),
              let subsystem = target.subsystems[parsed.subsystemNQN]
        else { return nil }
        return subsystem.namespace(1)
    }

    func open(uri: String, identity: NexusIdentity) async throws(ChildIOError) -> any ChildDevice {
        if let namespace = localNamespace(uri: uri) {
            return try LocalChild.open(namespace: namespace, uri: uri, hostID: identity.hostIdentifier,
                                       eventLoop: options.eventLoopGroup.next())
        }
        return try await RemoteChild.open(uri: uri, identity: identity, options: options)
    }
}
