import Logging
import NIOCore
import NIOPosix
import NVMe
import Synchronization

/// An NVMe/TCP target: listeners for its NVM subsystems and, optionally, a discovery controller
/// (NVMe/TCP transport spec 1.0; NVMe over Fabrics spec 1.1 §5). Embeddable: the io-engine runs
/// one; `halyard nvmf-target` wraps one in a command.
///
/// Each accepted connection is one queue, served on one event loop for its whole life.
public final class NVMeTCPTarget: Sendable {
    public let configuration: TargetConfiguration
    let context: TargetContext
    let group: any EventLoopGroup
    let ownsGroup: Bool
    private let channels = Mutex<[any Channel]>([])

    /// The event loops the target's connections run on (the io-engine runs its nexuses'
    /// child connections there too, so a mirrored write hops as few threads as it can).
    public var eventLoopGroup: any EventLoopGroup { group }

    /// Subsystems by NQN.
    public var subsystems: [String: Subsystem] { context.subsystems }

    public init(configuration: TargetConfiguration, group: (any EventLoopGroup)? = nil, logger: Logger = Logger(label: "halyard.nvmf-target")) {
        self.configuration = configuration
        if let group {
            self.group = group
            ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
            ownsGroup = true
        }
        let subsystems = configuration.subsystems.map { Subsystem(configuration: $0, listenerCount: configuration.listeners.count) }
        let discovery = configuration.discoveryListener.map { _ in Subsystem(discoveryControllerIDRange: 1...0xFFEF) }
        context = TargetContext(subsystems: subsystems, discovery: discovery, listeners: configuration.listeners,
                                limits: configuration.limits, logger: logger)
        for subsystem in subsystems { subsystem.prepareReservations(logger: logger) }
    }

    /// Binds every listener (SO_REUSEADDR, so a restarted target gets its port at once).
    /// Returns the bound addresses, in the order listeners were configured, discovery last.
    @discardableResult
    public func start() async throws -> [SocketAddress] {
        var bound: [SocketAddress] = []
        var listeners = configuration.listeners.map { ($0, false) }
        if let d = configuration.discoveryListener { listeners.append((d, true)) }
        for (index, (listener, isDiscovery)) in listeners.enumerated() {
            let context = self.context
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                // Reads up to 256 KiB, so large H2CData PDUs are mostly sliced, not reassembled.
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 << 10))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(QueueConnection(context: context, listener: listener, listenerIndex: index, isDiscoveryListener: isDiscovery))
                    }
                }
                .bind(host: listener.host, port: listener.port).get()
            channels.withLock { $0.append(channel) }
            let address = channel.localAddress!
            bound.append(address)
            if !isDiscovery, let port = address.port {
                context.boundListeners.withLock { $0[index].port = port }
            }
            context.logger.info("listening on \(address)\(isDiscovery ? " (discovery)" : "")")
        }
        return bound
    }

    /// Closes the listeners, then every controller (their queues close), then the event loops if
    /// the target made them.
    public func stop() async {
        let listening = channels.withLock { c -> [any Channel] in defer { c = [] }; return c }
        for channel in listening { try? await channel.close() }
        var all = Array(context.subsystems.values)
        if let d = context.discovery { all.append(d) }
        for subsystem in all {
            for controller in subsystem.controllers { controller.tearDown(reason: "target stopping") }
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

extension NVMeTCPTarget {
    /// A fresh connection handler for one queue arriving on `listener`, for embedding the target's
    /// protocol engine in another channel (tests, fuzzing). `start()` installs the same handler on
    /// every accepted connection.
    public func makeConnectionHandler(listener: ListenerConfiguration) -> any ChannelHandler {
        let index = configuration.listeners.firstIndex(where: { $0.host == listener.host && $0.port == listener.port }) ?? 0
        return QueueConnection(context: context, listener: listener, listenerIndex: index)
    }
}
