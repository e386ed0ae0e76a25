#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NVMeTarget
import Storage
import StoragePool
import Synchronization

/// The NVMe/TCP shares of replicas on the engine's target: one subsystem per shared replica,
/// `nqn.2026-11.io.halyard:replica:<uuid>`, namespace 1 = the replica's device wrapped in a
/// ``MeteredBlockDevice``, identity derived from NQN and namespace ID (stable across restarts),
/// controller IDs 1…0xFFEF, no ANA groups beyond the default one, reservation state kept in the
/// pool (``PoolReservationPersistence``).
///
/// Only what is served lives here; whether a replica *should* be shared is recorded in its
/// pool (`Pool.setShare`). Callers serialize changes per replica (the engine serializes all).
final class ReplicaShares: Sendable {
    /// A served replica: the device handle its namespace uses (closed when unshared).
    private struct Served: Sendable {
        var device: ReplicaDevice
    }

    let target: NVMeTCPTarget
    private let logger: Logger
    private let served = Mutex<[UUID: Served]>([:])
    private let stats = Mutex<[UUID: ReplicaIOStats]>([:])

    /// See ``IOEngineConfiguration/emulatedMediaLatency``.
    let emulatedMediaLatency: TimeAmount

    init(target: NVMeTCPTarget, emulatedMediaLatency: TimeAmount = .zero, logger: Logger) {
        self.emulatedMediaLatency = emulatedMediaLatency
        self.target = target
        self.logger = logger
    }

    /// The subsystem NQN of a replica's share.
    static func nqn(for uuid: UUID) -> String { nqnPrefix + uuid.lowercased }

    /// What every replica share's NQN starts with.
    /// The replica's device as shared: itself, or behind the emulated media latency.
    private func servedDevice(_ device: ReplicaDevice) -> any BlockDevice {
        guard emulatedMediaLatency > .zero else { return device }
        let slowed = FaultInjectingBlockDevice(wrapping: device)
        slowed.addLatency(emulatedMediaLatency, to: [.read, .write])
        return slowed
    }

    static let nqnPrefix = "nqn.2026-11.io.halyard:replica:"

    /// The replica's I/O counters, created on first use and kept for the process lifetime.
    func stats(for uuid: UUID) -> ReplicaIOStats {
        stats.withLock { table in
            if let existing = table[uuid] { return existing }
            let made = ReplicaIOStats()
            table[uuid] = made
            return made
        }
    }

    /// Whether the replica's subsystem is on the target.
    func isServed(_ uuid: UUID) -> Bool { served.withLock { $0[uuid] != nil } }

    /// Controllers (hosts) connected to the replica's share.
    func connectedControllers(_ uuid: UUID) -> Int {
        target.subsystems[Self.nqn(for: uuid)]?.controllers.count ?? 0
    }

    /// Serves the replica to `allowedHosts` (empty: any host). Already served: replaces its
    /// allowed hosts, and hosts that lost access are disconnected before this returns.
    func serve(pool: Pool, poolName: String, uuid: UUID, allowedHosts: [String]) async throws(IOEngineError) {
        let nqn = Self.nqn(for: uuid)
        let allowed: Set<String>? = allowedHosts.isEmpty ? nil : Set(allowedHosts)
        if isServed(uuid) {
            do {
                let update = try await target.updateHostAccess(subsystemNQN: nqn, .replace(allowed: allowed, denied: []))
                if !update.disconnected.isEmpty {
                    logger.notice("replica share hosts replaced; hosts that lost access disconnected", metadata: [
                        "replica": "\(uuid.lowercased)", "disconnected": "\(update.disconnected.map(\.hostNQN))",
                    ])
                }
            } catch {
                throw .invalidArgument("replica \(uuid.lowercased) allowed hosts \(allowedHosts): \(error)")
            }
            return
        }
        let device: ReplicaDevice
        do {
            device = try pool.device(uuid: uuid)
        } catch {
            throw IOEngineError(error)
        }
        let namespace = NamespaceConfiguration(
            namespaceID: 1, device: MeteredBlockDevice(wrapping: servedDevice(device), stats: stats(for: uuid)),
            identity: .derived(subsystemNQN: nqn, namespaceID: 1), anaGroupID: 1,
            reservationState: .custom(PoolReservationPersistence(pool: pool, uuid: uuid, poolName: poolName)))
        let configuration = SubsystemConfiguration(nqn: nqn, controllerIDRange: 1...0xFFEF, allowedHosts: allowed,
                                                   namespaces: [namespace])
        do {
            try target.addSubsystem(configuration)
        } catch {
            try? device.close()
            throw .internal("sharing replica \(uuid.lowercased) as \(nqn): \(error)")
        }
        served.withLock { $0[uuid] = Served(device: device) }
        logger.info("replica shared", metadata: [
            "replica": "\(uuid.lowercased)", "pool": "\(poolName)", "subnqn": "\(nqn)",
            "allowedHosts": "\(allowedHosts.isEmpty ? "any" : allowedHosts.joined(separator: ","))",
        ])
    }

    /// Stops serving the replica: connected hosts are disconnected before this returns, then
    /// its device handle is closed. Not served: nothing happens.
    func stop(_ uuid: UUID) async {
        guard let entry = served.withLock({ $0.removeValue(forKey: uuid) }) else { return }
        let nqn = Self.nqn(for: uuid)
        let disconnected = (try? await target.removeSubsystem(nqn: nqn)) ?? 0
        try? entry.device.close()
        logger.info("replica unshared", metadata: ["replica": "\(uuid.lowercased)", "subnqn": "\(nqn)",
                                                   "disconnected": "\(disconnected)"])
    }
}
