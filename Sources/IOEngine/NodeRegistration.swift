import Foundation
import Logging
import ServiceLifecycle
import Store

/// Keeps this io-engine's record `/halyard/v1/nodes/<name>` in the cluster store, attached to a
/// lease it keeps alive (Mayastor's registration: MS §5.7; TTL 30 s there, 10 s here). If the
/// node dies the lease expires and the record goes; if the store is unreachable the record is
/// re-created once it is back — the data path never waits for the store. On graceful shutdown
/// the lease is revoked, so the record goes at once.
public struct NodeRegistration: Service {
    /// What the record holds (JSON).
    public struct Record: Codable, Sendable, Hashable {
        public var name: String
        public var version: String
        public var nvmfEndpoint: String
        public var grpcEndpoint: String
        public var metricsEndpoint: String?
        public var registeredAt: String

        public init(name: String, version: String, nvmfEndpoint: String, grpcEndpoint: String, metricsEndpoint: String?,
                    registeredAt: String) {
            self.name = name
            self.version = version
            self.nvmfEndpoint = nvmfEndpoint
            self.grpcEndpoint = grpcEndpoint
            self.metricsEndpoint = metricsEndpoint
            self.registeredAt = registeredAt
        }
    }

    public static func key(node: String) -> String { "/halyard/v1/nodes/\(node)" }

    let store: any Store
    let record: @Sendable () -> Record
    let ttlSeconds: Int64
    let logger: Logger

    public init(store: any Store, ttlSeconds: Int64 = 10, logger: Logger, record: @escaping @Sendable () -> Record) {
        self.store = store
        self.record = record
        self.ttlSeconds = ttlSeconds
        self.logger = logger
    }

    public func run() async throws {
        var lease: Lease?
        var retry: Duration = .milliseconds(200)
        let key = Self.key(node: record().name)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                if let current = lease {
                    _ = try await store.keepAlive(current.id)
                } else {
                    let granted = try await store.grantLease(ttlSeconds: ttlSeconds)
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = .sortedKeys
                    try await store.put(key, Array(try encoder.encode(record())), lease: granted.id)
                    lease = granted
                    logger.info("registered in the store", metadata: ["key": "\(key)", "lease": "\(granted.id)", "ttl": "\(granted.ttlSeconds)s"])
                }
                retry = .milliseconds(200)
                try await gracefulShutdownSleep(.seconds(max(1, (lease?.ttlSeconds ?? ttlSeconds) / 3)))
            } catch StoreError.leaseNotFound {
                logger.warning("node lease expired; registering again", metadata: ["key": "\(key)"])
                lease = nil
            } catch is CancellationError {
                break
            } catch {
                logger.warning("store unreachable; node registration retries", metadata: ["error": "\(error)", "retry": "\(retry)"])
                try? await gracefulShutdownSleep(retry)
                retry = min(retry * 2, .seconds(5))
            }
        }
        if let lease {
            do {
                try await store.revokeLease(lease.id)
                logger.info("unregistered from the store", metadata: ["key": "\(key)"])
            } catch {
                logger.warning("could not revoke the node lease (the record expires with it)", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sleeps, returning early (without throwing) on graceful shutdown.
    private func gracefulShutdownSleep(_ duration: Duration) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }
}
