import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import NVMeTarget
import ServiceLifecycle
import Storage

/// `halyard nvmf-target [serve]`: serves NVMe/TCP subsystems from flags or a config file until
/// SIGTERM; the default subcommand of `NVMfTargetGroupCommand`.
struct NVMfTargetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve NVMe/TCP subsystems (the default: `halyard nvmf-target --listen ...`).",
        discussion: """
            One subsystem from flags:
              halyard nvmf-target --listen 127.0.0.1:4420 --discovery 127.0.0.1:8009 \\
                  --nqn nqn.2026-11.io.halyard:demo --memory 1GiB
            Several subsystems or namespaces: --config FILE (JSON; see README.md).
            The namespace ID is 1. No --allow-host means any host may connect.
            --control unix:PATH (or 127.0.0.1:PORT) serves the control interface used by
            `halyard nvmf-target ana|hosts|stats` (HTTP/1.1 + JSON; see README.md).
            """)

    @Option(name: .customLong("listen"), help: ArgumentHelp("Listener address (repeatable).", valueName: "HOST:PORT"))
    var listen: [String] = []

    @Option(help: ArgumentHelp("Discovery controller listener.", valueName: "HOST:PORT"))
    var discovery: String?

    @Option(help: ArgumentHelp("Address put in discovery log entries (each keeps its listener's port).", valueName: "HOST"))
    var advertise: String?

    @Option(help: "Subsystem NQN.")
    var nqn: String?

    @Option(help: ArgumentHelp("Serve a RAM namespace of this size (bytes or 64MiB, 1GiB).", valueName: "SIZE"))
    var memory: String?

    @Option(help: ArgumentHelp("Serve a sparse file namespace (created if missing; an existing file of another size is refused).", valueName: "PATH"))
    var file: String?

    @Option(help: ArgumentHelp("Size of the --file namespace.", valueName: "SIZE"))
    var size: String?

    @Option(help: "Logical block size: 512 or 4096.")
    var blockSize: Int = 512

    @Option(name: .customLong("allow-host"), help: ArgumentHelp("Host NQN allowed to connect (repeatable; none = any host).", valueName: "HOSTNQN"))
    var allowHosts: [String] = []

    @Option(name: .customLong("controller-ids"), help: ArgumentHelp("Controller IDs this target hands out (disjoint per node serving the same NQN).", valueName: "MIN-MAX"))
    var controllerIDs: String = "1-65519"

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory for file namespaces' reservation state (default: beside each backing file).", valueName: "DIR"))
    var stateDir: String?

    @Option(help: ArgumentHelp("Config file (JSON) with several subsystems/namespaces.", valueName: "FILE"))
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("Serve the control interface (ANA states, host access, statistics) here: unix:PATH or 127.0.0.1:PORT.", valueName: "ADDRESS"))
    var control: String?

    func validate() throws {
        if config != nil {
            guard nqn == nil, memory == nil, file == nil, listen.isEmpty else {
                throw ValidationError("--config cannot be combined with --listen/--nqn/--memory/--file")
            }
            return
        }
        guard !listen.isEmpty else { throw ValidationError("give at least one --listen HOST:PORT (or --config FILE)") }
        guard nqn != nil else { throw ValidationError("--nqn is required") }
        guard (memory == nil) != (file == nil) else { throw ValidationError("give exactly one of --memory SIZE or --file PATH --size SIZE") }
        if file != nil && size == nil { throw ValidationError("--file needs --size SIZE") }
        guard blockSize == 512 || blockSize == 4096 else { throw ValidationError("--block-size must be 512 or 4096") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        if let control { _ = try ControlAddress(parsing: control) }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "halyard.nvmf-target")
        let threadPool = NIOThreadPool(numberOfThreads: max(4, System.coreCount * 2))
        threadPool.start()
        let configuration: TargetConfiguration
        do {
            configuration = try makeConfiguration(threadPool: threadPool)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw ConfigError("\(error)")
        }
        let target = NVMeTCPTarget(configuration: configuration, logger: logger)
        let service = TargetService(target: target, control: try control.map(ControlAddress.init(parsing:)), logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            for s in configuration.subsystems { for ns in s.namespaces { try? ns.device.close() } }
            try? await threadPool.shutdownGracefully()
            throw error
        }
        for s in configuration.subsystems { for ns in s.namespaces { try? ns.device.close() } }
        try? await threadPool.shutdownGracefully()
        logger.info("stopped")
    }

    func makeConfiguration(threadPool: NIOThreadPool) throws -> TargetConfiguration {
        if let config {
            let file = try TargetConfigFile.load(path: config)
            let listeners = try file.listen.map { try listener($0, advertise: file.advertise) }
            guard !listeners.isEmpty else { throw ConfigError("\(config): \"listen\" is empty") }
            let subsystems = try file.subsystems.map { s -> SubsystemConfiguration in
                let namespaces = try s.namespaces.enumerated().map { index, ns -> NamespaceConfiguration in
                    let bs = ns.blockSize ?? 512
                    let device: any BlockDevice
                    if let memory = ns.memory {
                        device = try memoryDevice(size: SizeParser.parse(memory), blockSize: bs)
                    } else if let path = ns.file {
                        device = try FileBlockDevice.open(path: path, size: try ns.size.map(SizeParser.parse), blockSize: bs, threadPool: threadPool)
                    } else {
                        throw ConfigError("\(config): namespace \(index + 1) of \(s.nqn) needs \"memory\" or \"file\"")
                    }
                    let anaGroup = ns.anaGroup ?? 1
                    guard (1...16).contains(anaGroup) else {
                        throw ConfigError("\(config): namespace \(index + 1) of \(s.nqn): \"anaGroup\" must be 1-16, not \(anaGroup)")
                    }
                    let nsid = ns.nsid ?? UInt32(index + 1)
                    return NamespaceConfiguration(namespaceID: nsid, device: device, anaGroupID: anaGroup,
                                                  reservationState: try reservationState(nqn: s.nqn, namespaceID: nsid, fileBacked: ns.file != nil))
                }
                var subsystem = SubsystemConfiguration(
                    nqn: s.nqn, serialNumber: s.serial, modelNumber: s.model ?? "Halyard NVMe/TCP",
                    controllerIDRange: try controllerIDRange(s.controllerIDs ?? "1-65519"),
                    allowedHosts: s.allowHosts.map(Set.init), namespaces: namespaces)
                subsystem.deniedHosts = Set(s.denyHosts ?? [])
                return subsystem
            }
            return TargetConfiguration(
                listeners: listeners, discoveryListener: try file.discovery.map { try listener($0, advertise: file.advertise) },
                subsystems: subsystems)
        }
        let device: any BlockDevice
        if let memory {
            device = try memoryDevice(size: SizeParser.parse(memory), blockSize: blockSize)
        } else {
            device = try FileBlockDevice.open(path: file!, size: try SizeParser.parse(size!), blockSize: blockSize, threadPool: threadPool)
        }
        let subsystem = SubsystemConfiguration(
            nqn: nqn!, controllerIDRange: try controllerIDRange(controllerIDs),
            allowedHosts: allowHosts.isEmpty ? nil : Set(allowHosts),
            namespaces: [NamespaceConfiguration(namespaceID: 1, device: device,
                                                reservationState: try reservationState(nqn: nqn!, namespaceID: 1, fileBacked: file != nil))])
        return TargetConfiguration(
            listeners: try listen.map { try listener($0, advertise: advertise) },
            discoveryListener: try discovery.map { try listener($0, advertise: advertise) },
            subsystems: [subsystem])
    }

    private func listener(_ text: String, advertise: String?) throws -> ListenerConfiguration {
        let (host, port) = try AddressParser.parse(text)
        return ListenerConfiguration(host: host, port: port, advertisedHost: advertise)
    }

    private func memoryDevice(size: UInt64, blockSize: Int) throws -> any BlockDevice {
        guard blockSize == 512 || blockSize == 4096 else { throw ConfigError("block size must be 512 or 4096, not \(blockSize)") }
        guard size % UInt64(blockSize) == 0 else { throw ConfigError("size \(size) is not a multiple of the block size \(blockSize)") }
        return MemoryBlockDevice(blockSize: blockSize, blockCount: size / UInt64(blockSize))
    }

    private func controllerIDRange(_ text: String) throws -> ClosedRange<UInt16> {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let lo = UInt16(parts[0]), let hi = UInt16(parts[1]), lo >= 1, lo <= hi, hi <= 0xFFEF else {
            throw ConfigError("controller ID range '\(text)' must be MIN-MAX within 1-65519")
        }
        return lo...hi
    }
}

/// Runs an `NVMeTCPTarget` as a service: start (then its control interface, if any), wait for
/// graceful shutdown (SIGTERM), stop.
struct TargetService: Service {
    let target: NVMeTCPTarget
    var control: ControlAddress? = nil
    let logger: Logger

    func run() async throws {
        try await target.start()
        var server: ControlServer?
        if let control {
            do {
                server = try await ControlServer.start(address: control, api: ControlAPI(target: target), group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            } catch {
                await target.stop()
                throw ConfigError("cannot serve the control interface on \(control): \(error)")
            }
        }
        try? await gracefulShutdown()
        logger.info("shutting down")
        await server?.stop()
        await target.stop()
    }
}
