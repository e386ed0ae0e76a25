#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCCore
import Logging
import NVMeTarget
import StoragePool

/// The io-engine: the data plane of a storage node. It owns an NVMe/TCP target, imports the
/// pools recorded in `<stateDirectory>/pools.json` (and ``IOEngineConfiguration/importDisks``),
/// shares replicas as their own subsystems, and offers the gRPC services (``services``) the
/// control plane and the `halyard pool|replica` commands drive. The daemon command wraps it
/// with the gRPC server, `/metrics` and node registration.
///
/// One instance serves once: ``start()``, then ``stop()``; a restart is a new instance on the
/// same state directory.
public final class IOEngine: Sendable {
    public let configuration: IOEngineConfiguration
    let core: EngineCore
    let target: NVMeTCPTarget
    private let logger: Logger

    public init(configuration: IOEngineConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let listener = ListenerConfiguration(host: configuration.nvmfHost, port: configuration.nvmfPort,
                                             advertisedHost: configuration.advertisedHost)
        target = NVMeTCPTarget(configuration: TargetConfiguration(listeners: [listener], subsystems: []), logger: logger)
        core = EngineCore(configuration: configuration, target: target, logger: logger)
    }

    /// Starts the NVMe/TCP target, imports every pool of `pools.json` and `importDisks` (one that
    /// fails is listed FAULTED with the reason; the engine keeps running) and shares again the
    /// replicas recorded as shared, with their allowed hosts and reservations.
    public func start() async throws {
        do {
            try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw IOEngineError.internal("state directory \(configuration.stateDirectory): \(error)")
        }
        let bound = try await target.start()
        core.boundPort.store(bound.first?.port ?? configuration.nvmfPort, ordering: .relaxed)
        logger.info("io-engine NVMe/TCP target listening", metadata: ["node": "\(configuration.nodeName)", "address": "\(bound.first.map { "\($0)" } ?? "?")"])
        do {
            try await core.startUp()
        } catch {
            await target.stop()
            throw error
        }
    }

    /// Stops serving replicas (what is recorded as shared is unchanged), exports every pool and
    /// stops the target.
    public func stop() async {
        await core.shutDown()
        await target.stop()
        logger.info("io-engine stopped", metadata: ["node": "\(configuration.nodeName)"])
    }

    /// The bound NVMe/TCP port (after ``start()``).
    public var nvmfPort: Int { core.boundPort.load(ordering: .relaxed) }

    /// PoolService, ReplicaService and NodeService, for a `GRPCServer`.
    public var services: [any RegistrableRPCService] {
        [PoolService(core: core), ReplicaService(core: core), NodeService(core: core)]
    }

    /// Every pool the engine knows of, those that failed to import included (state faulted).
    public func poolInfos() -> [PoolInfo] {
        core.slots.map(\.slot.info)
    }

    /// Every replica of every imported pool with its I/O counters (for `/metrics`).
    public func replicaSamples() -> [ReplicaSample] {
        core.slots.flatMap { name, slot -> [ReplicaSample] in
            guard let pool = slot.pool else { return [] }
            return pool.replicas().map { r in
                ReplicaSample(poolName: name, uuid: r.uuid, name: r.name, sizeBytes: r.sizeBytes, allocatedBytes: r.allocatedBytes,
                              shared: r.shared, stats: core.shares.stats(for: r.uuid))
            }
        }
    }
}
