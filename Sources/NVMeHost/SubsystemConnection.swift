import Logging
import NIOCore
import NVMe

/// One NVM subsystem connected on every path, like Linux's `nvme connect` / `nvme connect-all`: a
/// controller per path (with its ANA log when it reports ANA, CMIC bit 3), the active namespace
/// list (from the first path that connected) and, with `multipath`, one ``MultipathDevice`` per
/// namespace over the paths that connected. A path that fails is recorded with its error; the
/// others still connect. Nothing throws: every failure is in ``errors``.
///
/// A ``MultipathDevice`` keeps its own session per path, so with `multipath` each path carries
/// one controller for the subsystem plus one per namespace.
public final class SubsystemConnection: Sendable {
    /// One path: its controller, or why it failed.
    public struct Path: Sendable {
        public let address: TransportAddress
        public let controller: NVMeController?
        /// The controller's ANA log page (nil without ANA reporting, or on failure).
        public let anaLog: ANALogPage?
        public let error: SubsystemConnectionError?
    }

    /// One active namespace: its multipath device, or why it could not be made (both nil
    /// without `multipath`).
    public struct Namespace: Sendable {
        public let nsid: UInt32
        public let device: MultipathDevice?
        public let error: SubsystemConnectionError?
    }

    public let subsystemNQN: String
    /// In the order given.
    public let paths: [Path]
    /// The active namespaces, in NSID order (empty if no path connected).
    public let namespaces: [Namespace]
    /// Why the active namespace list could not be read.
    public let namespaceListError: SubsystemConnectionError?

    private init(subsystemNQN: String, paths: [Path], namespaces: [Namespace], namespaceListError: SubsystemConnectionError?) {
        self.subsystemNQN = subsystemNQN
        self.paths = paths
        self.namespaces = namespaces
        self.namespaceListError = namespaceListError
    }

    /// Every failure: paths, the namespace list, multipath devices.
    public var errors: [SubsystemConnectionError] {
        paths.compactMap(\.error) + (namespaceListError.map { [$0] } ?? []) + namespaces.compactMap(\.error)
    }

    /// The paths whose controller is up, in order.
    public var connectedPaths: [(address: TransportAddress, controller: NVMeController)] {
        paths.compactMap { p in p.controller.map { (p.address, $0) } }
    }

    /// Connects `subsystemNQN` on every path in `paths` (at once), then reads the namespace list
    /// and, with `multipath`, connects a ``MultipathDevice`` per namespace.
    public static func connect(subsystemNQN: String, paths: [TransportAddress], identity: HostIdentity,
                               options: ControllerOptions = ControllerOptions(),
                               sessionOptions: ControllerSessionOptions = ControllerSessionOptions(),
                               multipath: Bool = true, policy: PathPolicy = .roundRobin, group: any EventLoopGroup,
                               logger: Logger = Logger(label: "halyard.nvme-host")) async -> SubsystemConnection {
        let connected = await withTaskGroup(of: (Int, Path).self) { tasks in
            for (i, address) in paths.enumerated() {
                tasks.addTask {
                    (i, await connectPath(address, subsystemNQN: subsystemNQN, identity: identity, options: options, group: group, logger: logger))
                }
            }
            var result = [Path?](repeating: nil, count: paths.count)
            for await (i, path) in tasks { result[i] = path }
            return result.compactMap { $0 }
        }
        guard let first = connected.first(where: { $0.controller != nil }), let controller = first.controller else {
            return SubsystemConnection(subsystemNQN: subsystemNQN, paths: connected, namespaces: [], namespaceListError: nil)
        }
        let nsids: [UInt32]
        do {
            nsids = try await controller.activeNamespaces()
        } catch {
            return SubsystemConnection(subsystemNQN: subsystemNQN, paths: connected, namespaces: [],
                                       namespaceListError: .namespaceList(first.address, error))
        }
        var namespaces: [Namespace] = []
        let up = connected.filter { $0.controller != nil }.map(\.address)
        for nsid in nsids {
            guard multipath else {
                namespaces.append(Namespace(nsid: nsid, device: nil, error: nil))
                continue
            }
            do {
                let device = try await MultipathDevice.connect(paths: up, subsystemNQN: subsystemNQN, namespaceID: nsid, identity: identity,
                                                               options: options, sessionOptions: sessionOptions, policy: policy,
                                                               group: group, logger: logger)
                namespaces.append(Namespace(nsid: nsid, device: device, error: nil))
            } catch {
                namespaces.append(Namespace(nsid: nsid, device: nil, error: .multipath(subsystemNQN: subsystemNQN, namespaceID: nsid, error)))
            }
        }
        return SubsystemConnection(subsystemNQN: subsystemNQN, paths: connected, namespaces: namespaces, namespaceListError: nil)
    }

    /// ``connect(subsystemNQN:paths:identity:options:sessionOptions:multipath:policy:group:logger:)``
    /// for every subsystem discovery found (all at once), in the order given.
    public static func connectAll(_ subsystems: [DiscoveredSubsystem], identity: HostIdentity,
                                  options: ControllerOptions = ControllerOptions(),
                                  sessionOptions: ControllerSessionOptions = ControllerSessionOptions(),
                                  multipath: Bool = true, policy: PathPolicy = .roundRobin, group: any EventLoopGroup,
                                  logger: Logger = Logger(label: "halyard.nvme-host")) async -> [SubsystemConnection] {
        await withTaskGroup(of: (Int, SubsystemConnection).self) { tasks in
            for (i, subsystem) in subsystems.enumerated() {
                tasks.addTask {
                    (i, await connect(subsystemNQN: subsystem.nqn, paths: subsystem.addresses, identity: identity, options: options,
                                      sessionOptions: sessionOptions, multipath: multipath, policy: policy, group: group, logger: logger))
                }
            }
            var result = [SubsystemConnection?](repeating: nil, count: subsystems.count)
            for await (i, connection) in tasks { result[i] = connection }
            return result.compactMap { $0 }
        }
    }

    /// Closes the multipath devices, then shuts every path's controller down (CC.SHN).
    public func close() async {
        await withTaskGroup(of: Void.self) { tasks in
            for device in namespaces.compactMap(\.device) { tasks.addTask { await device.close() } }
        }
        await withTaskGroup(of: Void.self) { tasks in
            for controller in paths.compactMap(\.controller) { tasks.addTask { await controller.shutdown() } }
        }
    }

    private static func connectPath(_ address: TransportAddress, subsystemNQN: String, identity: HostIdentity, options: ControllerOptions,
                                    group: any EventLoopGroup, logger: Logger) async -> Path {
        let controller: NVMeController
        do {
            controller = try await NVMeController.connect(to: address, subsystemNQN: subsystemNQN, identity: identity, options: options,
                                                          group: group, logger: logger)
        } catch {
            return Path(address: address, controller: nil, anaLog: nil, error: .connect(address, error))
        }
        guard controller.identify.cmic & 0x08 != 0 else {
            return Path(address: address, controller: controller, anaLog: nil, error: nil)
        }
        do {
            return Path(address: address, controller: controller, anaLog: try await controller.anaLogPage(), error: nil)
        } catch {
            await controller.shutdown()
            return Path(address: address, controller: nil, anaLog: nil, error: .anaLog(address, error))
        }
    }
}

/// Why part of a ``SubsystemConnection`` failed.
public enum SubsystemConnectionError: Error, CustomStringConvertible {
    /// The path's controller did not connect.
    case connect(TransportAddress, any Error)
    /// The path's ANA log page could not be read (its controller was shut down).
    case anaLog(TransportAddress, any Error)
    /// The active namespace list could not be read.
    case namespaceList(TransportAddress, any Error)
    /// The namespace's ``MultipathDevice`` could not be connected.
    case multipath(subsystemNQN: String, namespaceID: UInt32, any Error)

    /// The path the failure is about, if it is about one.
    public var address: TransportAddress? {
        switch self {
        case .connect(let a, _), .anaLog(let a, _), .namespaceList(let a, _): a
        case .multipath: nil
        }
    }

    public var underlying: any Error {
        switch self {
        case .connect(_, let e), .anaLog(_, let e), .namespaceList(_, let e), .multipath(_, _, let e): e
        }
    }

    /// The failure without the underlying error, e.g. "connect to 127.0.0.1:4420 failed".
    public var summary: String {
        switch self {
        case .connect(let a, _): "connect to \(a) failed"
        case .anaLog(let a, _): "ANA log page from \(a) failed"
        case .namespaceList(let a, _): "active namespace list from \(a) failed"
        case .multipath(let nqn, let nsid, _): "multipath connect of namespace \(nsid) of \(nqn) failed"
        }
    }

    public var description: String { "\(summary): \(underlying)" }
}
