import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import IOEngine
import IOEngineAPI
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Store
import StoreEtcd

/// `halyard io-engine`: the storage-node daemon (DESIGN.md §2). Pools on files or block devices,
/// thin replicas served over NVMe/TCP as `nqn.2026-11.io.halyard:replica:<uuid>`, nexuses
/// published as `nqn.2026-11.io.halyard:<volume-uuid>`, the gRPC API (PoolService, ReplicaService,
/// NexusService, NodeService), Prometheus `/metrics`, and the node's record in the cluster store.
/// SIGTERM/SIGINT shut it down gracefully.
struct IOEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io-engine",
        abstract: "Run a storage node: pools, replicas over NVMe/TCP, the gRPC API and /metrics.",
        discussion: """
            halyard io-engine --node node-1 --state-dir /var/lib/halyard --create-pool pool-1:/var/lib/halyard/pool-1.img:10GiB
            halyard io-engine --state-dir /tmp/halyard --demo-volume 1GiB     (prints the `nvme connect` line)
            halyard io-engine --node node-2 --nvmf 127.0.0.1:4421 --grpc 127.0.0.1:10125 --metrics 127.0.0.1:9503 \\
                              --state-dir DIR --store etcd://127.0.0.1:2379 --pool /dev/sdb
            Prints one line "ready node=… nvmf=… grpc=… metrics=…" on stdout once everything serves
            (after "demo volume: nqn=… uri=…" and the nvme connect line with --demo-volume).
            """)

    @Option(help: "Node name (default: the host name).") var node: String?
    @Option(help: ArgumentHelp("NVMe/TCP listener for replica shares.", valueName: "HOST:PORT")) var nvmf = "127.0.0.1:4420"
    @Option(help: ArgumentHelp("The host replica URIs advertise (default: the --nvmf host).", valueName: "HOST")) var advertise: String?
    @Option(help: ArgumentHelp("gRPC API listener (loopback or a private network: no TLS).", valueName: "HOST:PORT")) var grpc = "127.0.0.1:10124"
    @Option(help: ArgumentHelp("Prometheus /metrics listener, or 'off'.", valueName: "HOST:PORT")) var metrics = "127.0.0.1:9502"
    @Option(name: .customLong("state-dir"), help: "Directory for pools.json and the embedded store.") var stateDir: String
    @Option(help: ArgumentHelp("The cluster store: etcd://HOST:PORT, or 'embedded' (a single node, in --state-dir/store).", valueName: "STORE"))
    var store = "embedded"
    @Option(name: .customLong("pool"), help: ArgumentHelp("Import the pool on this disk at start (repeatable).", valueName: "DISK"))
    var pools: [String] = []
    @Option(name: .customLong("create-pool"),
            help: ArgumentHelp("Create this pool at start unless it exists (repeatable); SIZE makes DISK a sparse file.", valueName: "NAME:DISK[:SIZE]"))
    var createPools: [String] = []
    @Option(name: .customLong("demo-volume"),
            help: ArgumentHelp("At start, create (or reuse) a pool 'demo' (a file in --state-dir unless a pool is given), a replica and a "
                + "one-child nexus of this size published to any host; print its NQN and the nvme connect line.", valueName: "SIZE"))
    var demoVolume: String?
    @Option(name: .customLong("emulated-media-latency"),
            help: ArgumentHelp("For benchmarks: add this much to every read and write of every replica this engine shares "
                + "(e.g. 100us, 2ms), modelling media and a network slower than the page cache. Default: 0.", valueName: "DURATION"))
    var emulatedMediaLatency: String?
    @Option(name: .customLong("log-format"), help: "text or json (one JSON object per line on stderr).") var logFormat = "text"
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    struct PoolSpec { var name: String; var disk: String; var size: UInt64? }

    func validate() throws {
        _ = try AddressParser.parse(nvmf)
        _ = try AddressParser.parse(grpc)
        if metrics != "off" { _ = try AddressParser.parse(metrics) }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
        guard store == "embedded" || store.hasPrefix("etcd://") else { throw ValidationError("--store must be etcd://HOST:PORT or embedded") }
        _ = try poolSpecs()
        _ = try mediaLatency()
        if let demoVolume {
            let size = try SizeParser.parse(demoVolume)
            guard size % 4096 == 0 else { throw ValidationError("--demo-volume \(demoVolume): must be a multiple of 4096 bytes") }
        }
    }

    /// `--emulated-media-latency`: a whole number with the unit us, ms or s.
    func mediaLatency() throws -> TimeAmount {
        guard let text = emulatedMediaLatency?.lowercased() else { return .zero }
        for (unit, scale) in [("us", Int64(1_000)), ("ms", 1_000_000), ("s", 1_000_000_000)] where text.hasSuffix(unit) {
            if let value = Int64(text.dropLast(unit.count)), value >= 0, value <= 10_000_000_000 / scale {
                return .nanoseconds(value * scale)
            }
        }
        throw ValidationError("--emulated-media-latency \(text): expected a whole number of us, ms or s, at most 10 s (e.g. 100us)")
    }

    func poolSpecs() throws -> [PoolSpec] {
        try createPools.map { text in
            let parts = text.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--create-pool \(text): expected NAME:DISK[:SIZE]")
            }
            return PoolSpec(name: parts[0], disk: parts[1], size: try parts.count == 3 ? SizeParser.parse(parts[2]) : nil)
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let nodeName = node ?? ProcessInfo.processInfo.hostName
        let logger = Logger(label: "halyard.io-engine")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let (nvmfHost, nvmfPort) = try AddressParser.parse(nvmf)
        let (grpcHost, grpcPort) = try AddressParser.parse(grpc)

        // The cluster store.
        let clusterStore: any Store
        do {
            if store == "embedded" {
                clusterStore = try await EmbeddedStore.open(directory: stateDir + "/store")
            } else {
                clusterStore = try EtcdStore(endpoint: store)
            }
        } catch {
            throw ValidationError("cannot open the store \(store): \(error)")
        }

        let metricsExposition = IOEngineMetrics(nodeName: nodeName, version: Halyard.configuration.version)
        let engine = IOEngine(configuration: IOEngineConfiguration(
            nodeName: nodeName, nvmfHost: nvmfHost, nvmfPort: nvmfPort, advertisedHost: advertise, stateDirectory: stateDir,
            importDisks: pools, version: Halyard.configuration.version, grpcEndpoint: grpc,
            metricsEndpoint: metrics == "off" ? nil : metrics, storeDescription: store, emulatedMediaLatency: try mediaLatency()),
                              store: clusterStore, logger: logger)
        do {
            try await engine.start()
        } catch {
            await clusterStore.close()
            throw ValidationError("io-engine did not start: \(error)")
        }

        let server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: grpcHost, port: grpcPort), transportSecurity: .plaintext),
            services: engine.services, interceptors: [metricsExposition.interceptor])
        var metricsServer: ControlServer?
        if metrics != "off" {
            let (host, port) = try AddressParser.parse(metrics)
            do {
                metricsServer = try await ControlServer.start(
                    address: .loopback(host: host, port: port), group: MultiThreadedEventLoopGroup.singleton,
                    logger: logger, name: "metrics") { method, uri, _ in
                        guard method == .GET, uri == "/metrics" || uri.hasPrefix("/metrics?") else {
                            return .init(status: .notFound, contentType: "text/plain", body: Data("only GET /metrics here\n".utf8))
                        }
                        return .init(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                     body: Data(metricsExposition.render(engine: engine).utf8))
                    }
            } catch {
                await engine.stop()
                await clusterStore.close()
                throw ValidationError("cannot serve /metrics on \(metrics): \(error)")
            }
        }
        let metricsBound = metricsServer?.boundAddress
        let specs = try poolSpecs()
        let grpcEndpoint = grpc
        let registration = NodeRegistration(store: clusterStore, logger: logger) {
            NodeRegistration.Record(name: nodeName, version: Halyard.configuration.version,
                                    nvmfEndpoint: "\(advertise ?? nvmfHost):\(engine.nvmfPort)", grpcEndpoint: grpcEndpoint,
                                    metricsEndpoint: metricsBound, registeredAt: Date().formatted(.iso8601))
        }
        let startup = StartupService(server: server, pools: specs, importedPools: pools, nodeName: nodeName, nvmfHost: nvmfHost,
                                     engine: engine, metrics: metricsBound, demoVolume: try demoVolume.map(SizeParser.parse),
                                     stateDirectory: stateDir, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: GRPCServerService(server: server), successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: registration, successTerminationBehavior: .ignore),
                .init(service: startup, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }
        logger.info("shutting down")
        await metricsServer?.stop()
        await engine.stop()
        await clusterStore.close()
        logger.info("stopped")
        if let failure { throw failure }
    }
}

/// Once the gRPC server listens: creates the `--create-pool` pools that do not exist yet (over
/// the io-engine's own API, so they are recorded like any other), sets up the `--demo-volume`,
/// then prints the ready line.
struct StartupService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let pools: [IOEngineCommand.PoolSpec]
    /// The `--pool` disks.
    let importedPools: [String]
    let nodeName: String
    let nvmfHost: String
    let engine: IOEngine
    let metrics: String?
    /// `--demo-volume` in bytes.
    let demoVolume: UInt64?
    let stateDirectory: String
    let logger: Logger

    func run() async throws {
        guard let address = try await server.listeningAddress?.ipv4 else {
            throw ValidationError("the gRPC server is not listening")
        }
        let grpcBound = "\(address.host):\(address.port)"
        if !pools.isEmpty {
            try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: address.host, port: address.port),
                                                                transportSecurity: .plaintext)) { client in
                let service = Halyard_Ioengine_V1_PoolService.Client(wrapping: client)
                let existing = Set(try await service.listPools(.init()).pools.map(\.name))
                for spec in pools where !existing.contains(spec.name) {
                    var request = Halyard_Ioengine_V1_CreatePoolRequest()
                    request.name = spec.name
                    request.disk = spec.disk
                    request.sizeBytes = spec.size ?? 0
                    do {
                        let pool = try await service.createPool(request)
                        logger.info("pool created", metadata: ["pool": "\(pool.name)", "disk": "\(pool.disk)", "capacity": "\(pool.capacityBytes)"])
                    } catch let error as RPCError where error.code == .alreadyExists {
                        // The disk already holds this pool (e.g. exported earlier): import it instead.
                        var importRequest = Halyard_Ioengine_V1_ImportPoolRequest()
                        importRequest.disk = spec.disk
                        let pool = try await service.importPool(importRequest)
                        guard pool.name == spec.name else {
                            throw ValidationError("--create-pool \(spec.name):\(spec.disk): the disk holds pool \(pool.name)")
                        }
                        logger.info("pool imported", metadata: ["pool": "\(pool.name)", "disk": "\(pool.disk)"])
                    }
                }
            }
        }
        if let demoVolume {
            let imported = importedPools
            let published = try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: address.host, port: address.port),
                                                                                transportSecurity: .plaintext)) { client in
                let given = pools.map(\.name) + engine.poolInfos().filter { info in imported.contains(info.path) }.map(\.name)
                return try await DemoVolume.setUp(client: client, size: demoVolume, stateDirectory: stateDirectory, givenPools: given,
                                                  logger: logger)
            }
            let lines = "demo volume: nqn=\(published.nqn) uri=\(published.uri)\n"
                + "nvme connect -t tcp -a \(published.host) -s \(published.port) -n \(published.nqn)\n"
            FileHandle.standardOutput.write(Data(lines.utf8))
        }
        let line = "ready node=\(nodeName) nvmf=\(nvmfHost):\(engine.nvmfPort) grpc=\(grpcBound) metrics=\(metrics ?? "off")\n"
        FileHandle.standardOutput.write(Data(line.utf8))
        try? await gracefulShutdown()
    }
}
