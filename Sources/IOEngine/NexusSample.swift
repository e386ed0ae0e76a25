#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nexus

/// One nexus as `/metrics` renders it: its state, its children's states, running rebuilds,
/// finished rebuilds by outcome and its host I/O counters (atomics of the published device).
public struct NexusSample: Sendable {
    public var uuid: UUID
    public var volumeUUID: UUID
    public var state: NexusState
    public var published: Bool
    public var children: [ChildSnapshot]
    public var rebuilds: [RebuildProgress]
    /// Finished rebuilds by outcome: `completed`, `failed`, `cancelled`.
    public var finishedRebuilds: [String: UInt64]
    public var stats: ReplicaIOStats
}

extension IOEngine {
    /// Every nexus with its counters (for `/metrics`).
    public func nexusSamples() -> [NexusSample] {
        core.nexuses.all.map { entry in
            let snapshot = entry.nexus.snapshot
            return NexusSample(uuid: snapshot.uuid, volumeUUID: snapshot.volumeUUID, state: snapshot.state,
                               published: entry.publication != nil, children: snapshot.children, rebuilds: snapshot.rebuilds,
                               finishedRebuilds: entry.finishedRebuilds(), stats: entry.stats)
        }
    }
}
