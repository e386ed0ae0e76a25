#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCCore
import Logging
import NIOCore
import NVMeTarget
import Store
import StoragePool

/// The io-engine: the data plane of a storage node. It owns an NVMe/TCP target, imports the
/// pools recorded in `<stateDirectory>/pools.json` (and ``IOEngineConfiguration/importDisks``),
/// shares replicas as their own subsystems, runs nexuses over replicas (published as the
/// volume's subsystem), and offers the gRPC services (``services``) the control plane and the
/// `halyard pool|replica|nexus` commands drive. The daemon command wraps it with the gRPC server,
/// `/metrics` and node registration.
///
/// Nexuses are not persisted: a restart forgets them (the control plane creates them again; their
/// health records stay in the store and their missed-segment logs under
/// `<stateDirectory>/rebuild-logs`, so a re-created nexus finds both).
///
/// One instance serves once: ``start()``, then ``stop()``; a restart is a new instance on the
/// same state directory.
public final class IOEngine: Sendable {
    public let configuration: IOEngineConfiguration
    let core: EngineCore
    let target: NVMeTCPTarget
    private let logger: Logger
    /// The store given at init (nil: an in-memory store is opened at start and closed at stop).
    private let givenStore: (any Store)?

    /// `store` keeps the nexuses' health records; nil opens an in-memory store (single-process
    /// tests and tools: the records do not survive the process).
    public init(configuration: IOEngineConfiguration, store: (any Store)? = nil, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        givenStore = store
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
        if let givenStore {
            core.store = givenStore
        } else {
            do {
                core.store = try await EmbeddedStore.open(directory: nil)
            } catch {
                throw IOEngineError.internal("in-memory store: \(error)")
            }
        }
        let bound: [SocketAddress]
        do {
            bound = try await target.start()
        } catch {
            if givenStore == nil, let store = core.store { await store.close() }
            throw error
        }
        core.boundPort.store(bound.first?.port ?? configuration.nvmfPort, ordering: .relaxed)
        logger.info("io-engine NVMe/TCP target listening", metadata: ["node": "\(configuration.nodeName)", "address": "\(bound.first.map { "\($0)" } ?? "?")"])
        do {
            try await core.startUp()
        } catch {
            await target.stop()
            if givenStore == nil, let store = core.store { await store.close() }
            throw error
        }
    }

    /// Shuts every nexus down (clean shutdown recorded) and unpublishes it, stops serving
    /// replicas (what is recorded as shared is unchanged), exports every pool and stops the target.
    public func stop() async {
        await core.shutDownNexuses()
        await core.shutDown()
        await target.stop()
        if givenStore == nil, let store = core.store { await store.close() }
        logger.info("io-engine stopped", metadata: ["node": "\(configuration.nodeName)"])
    }

    /// The bound NVMe/TCP port (after ``start()``).
    public var nvmfPort: Int { core.boundPort.load(ordering: .relaxed) }

    /// PoolService, ReplicaService, NexusService and NodeService, for a `GRPCServer`.
    public var services: [any RegistrableRPCService] {
        [PoolService(core: core), ReplicaService(core: core), NexusService(core: core), NodeService(core: core)]
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
