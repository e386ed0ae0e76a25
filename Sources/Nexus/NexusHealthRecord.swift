#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Store

/// A nexus's health record in the store (DESIGN.md §4.4; Mayastor's NexusInfo,
/// research/mayastor.md §6): whether it shut down cleanly, and which children are in sync. It is
/// written *before* a child is retired, so after a crash only replicas recorded healthy may serve
/// or be a rebuild source. The last healthy child is never recorded unhealthy.
public struct NexusHealthRecord: Codable, Hashable, Sendable {
    /// One child's entry: `healthy` means it holds every acknowledged write.
    public struct Child: Codable, Hashable, Sendable {
        public var uuid: String
        public var healthy: Bool

        public init(uuid: String, healthy: Bool) {
            self.uuid = uuid
            self.healthy = healthy
        }
    }

    public var cleanShutdown: Bool
    public var children: [Child]

    public init(cleanShutdown: Bool, children: [Child]) {
        self.cleanShutdown = cleanShutdown
        self.children = children
    }

    enum CodingKeys: String, CodingKey {
        case cleanShutdown = "clean_shutdown"
        case children
    }

    /// The store key of a nexus's record.
    public static func key(volume: UUID, nexus: UUID) -> String {
        "/halyard/v1/volumes/\(volume.uuidString.lowercased())/nexus/\(nexus.uuidString.lowercased())/health"
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) throws -> NexusHealthRecord {
        try JSONDecoder().decode(NexusHealthRecord.self, from: Data(bytes))
    }
}

/// Where a nexus writes its health record. ``StoreHealthRecorder`` is the real one; tests may
/// inject failures to prove a store outage does not stop I/O that needs no health change.
public protocol NexusHealthRecorder: Sendable {
    func write(_ record: NexusHealthRecord) async throws
}

/// Writes the health record to the cluster store (etcd or embedded) under
/// ``NexusHealthRecord/key(volume:nexus:)``.
public struct StoreHealthRecorder: NexusHealthRecorder {
    public let store: any Store
    public let key: String

    public init(store: any Store, volume: UUID, nexus: UUID) {
        self.store = store
        self.key = NexusHealthRecord.key(volume: volume, nexus: nexus)
    }

    public func write(_ record: NexusHealthRecord) async throws {
        _ = try await store.transaction(Transaction(success: [.put(key, record.encoded())]))
    }
}
