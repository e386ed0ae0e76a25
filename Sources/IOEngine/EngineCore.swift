#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Nexus
import NIOPosix
import NVMeTarget
import Store
import StoragePool
import Synchronization

/// The engine's tables and the operations the gRPC services run on them.
///
/// Concurrency: every change (pool create/import/export/destroy, replica create/destroy/resize/
/// share…) runs through one ``AsyncSerializer``, so it sees the state the previous change left
/// and the tables, the pools' records and the target's subsystems always agree. Reads (Get,
/// List, metrics) take a snapshot of the tables under a short lock and never wait for a change.
/// Blocking file I/O (`pools.json`) runs on the engine's own one-thread pool; nothing blocks an
/// event loop or the cooperative pool.
final class EngineCore: Sendable {
    let configuration: IOEngineConfiguration
    let logger: Logger
    let shares: ReplicaShares
    let registry: PoolRegistry
    let serializer = AsyncSerializer()
    private struct Tables {
        /// Pools by name.
        var slots: [String: PoolSlot] = [:]
        /// Pools not written to `pools.json`: start-up disks that failed to import (named by
        /// their disk, their pool's name being unknown).
        var unrecorded: Set<String> = []
    }

    private let tables = Mutex(Tables())
    /// The bound NVMe/TCP port (0 until started).
    let boundPort = Atomic<Int>(0)
    /// Blocking file I/O.
    let blockingPool: NIOThreadPool
    /// The nexuses (in memory only; see ``NexusTable``).
    let nexuses = NexusTable()
    /// Serializes nexus table changes (create, publish, unpublish, shutdown, destroy).
    let nexusSerializer = AsyncSerializer()
    /// Rebuild limits of nexuses created from now on.
    let rebuildDefaults = Mutex(RebuildLimits.default)
    private let storeSlot = Mutex<(any Store)?>(nil)

    init(configuration: IOEngineConfiguration, target: NVMeTCPTarget, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        shares = ReplicaShares(target: target, emulatedMediaLatency: configuration.emulatedMediaLatency, logger: logger)
        registry = PoolRegistry(stateDirectory: configuration.stateDirectory)
        blockingPool = NIOThreadPool(numberOfThreads: 1)
        blockingPool.start()
    }

    /// The cluster store nexus health records are written to (set at start).
    var store: (any Store)? {
        get { storeSlot.withLock { $0 } }
        set { storeSlot.withLock { $0 = newValue } }
    }

    // MARK: Tables

    /// Every pool slot, by name.
    var slots: [(name: String, slot: PoolSlot)] {
        tables.withLock { $0.slots.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    func slot(named name: String) throws(IOEngineError) -> PoolSlot {
        let (slot, known) = tables.withLock { ($0.slots[name], $0.slots.keys.sorted()) }
        guard let slot else {
            throw .notFound("pool '\(name)' not found (pools: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        return slot
    }

    /// The imported pool `name`; an unavailable one is UNAVAILABLE with its reason.
    func importedPool(named name: String) throws(IOEngineError) -> Pool {
        switch try slot(named: name) {
        case .imported(let pool): return pool
        case .unavailable(_, let disk, let reason): throw .unavailable("pool '\(name)' on '\(disk)' is unavailable: \(reason)")
        }
    }

    /// The pool holding replica `uuid`.
    func locate(_ uuid: UUID) throws(IOEngineError) -> (name: String, pool: Pool, replica: ReplicaInfo) {
        for (name, slot) in slots {
            guard let pool = slot.pool, let replica = try? pool.replica(uuid: uuid) else { continue }
            return (name, pool, replica)
        }
        throw .notFound("replica \(uuid.lowercased) not found in any pool")
    }

    /// Sets (nil: removes) the slot of `name`; `recorded` false keeps it out of `pools.json`.
    func setSlot(_ slot: PoolSlot?, name: String, recorded: Bool = true) {
        tables.withLock { t in
            t.slots[name] = slot
            if slot != nil && !recorded { t.unrecorded.insert(name) } else { t.unrecorded.remove(name) }
        }
    }

    /// The slot whose disk is `disk` (compared canonically).
    func slot(onDisk disk: String) -> (name: String, slot: PoolSlot)? {
        let wanted = Self.canonical(disk)
        return slots.first { Self.canonical($0.slot.disk) == wanted }
    }

    /// A disk path with symlinks and `.`/`..` resolved when it exists; as given otherwise.
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Writes `pools.json` from the tables (on the blocking pool).
    func saveRegistry() async throws(IOEngineError) {
        let entries = tables.withLock { t in
            t.slots.sorted { $0.key < $1.key }.filter { !t.unrecorded.contains($0.key) }
                .map { PoolRegistry.Entry(name: $0.key, disk: $0.value.disk) }
        }
        let registry = self.registry
        do {
            try await blockingPool.runIfActive { () throws -> Void in try registry.save(entries) }
        } catch let error as IOEngineError {
            throw error
        } catch {
            throw .internal("pool registry \(registry.path): \(error)")
        }
    }

    func loadRegistry() async throws(IOEngineError) -> [PoolRegistry.Entry] {
        let registry = self.registry
        do {
            return try await blockingPool.runIfActive { () throws -> [PoolRegistry.Entry] in try registry.load() }
        } catch let error as IOEngineError {
            throw error
        } catch {
            throw .internal("pool registry \(registry.path): \(error)")
        }
    }

    // MARK: Replica views

    /// The replica as the API reports it, with its share's NQN and URI when shared.
    func view(_ replica: ReplicaInfo, poolName: String, pool: Pool) -> ReplicaView {
        let nqn = ReplicaShares.nqn(for: replica.uuid)
        let port = boundPort.load(ordering: .relaxed)
        let host = configuration.uriHost
        let uriHost = host.contains(":") ? "[\(host)]" : host
        return ReplicaView(info: replica, poolName: poolName, poolUUID: pool.info.uuid,
                           nqn: replica.shared ? nqn : "", uri: replica.shared ? "nvmf://\(uriHost):\(port)/\(nqn)" : "")
    }
}

/// A replica with where it lives and how it is shared.
struct ReplicaView: Sendable {
    var info: ReplicaInfo
    var poolName: String
    var poolUUID: UUID
    var nqn: String
    var uri: String
}
