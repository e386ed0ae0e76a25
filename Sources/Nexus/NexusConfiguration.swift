#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NVMe

/// What a nexus is created with (the io-engine's CreateNexus request; Mayastor's
/// CreateNexusV2, research/mayastor.md §2).
public struct NexusConfiguration: Sendable {
    public var uuid: UUID
    public var volumeUUID: UUID
    /// The volume size in bytes: a multiple of the children's block size, at most the smallest child.
    public var sizeBytes: UInt64
    /// Child URIs, `nvmf://HOST:PORT/SUBNQN`.
    public var children: [String]
    /// Controller IDs the published subsystem hands out (distinct per nexus generation, so a host
    /// moving to a new nexus never sees a controller ID reused).
    public var controllerIDRange: ClosedRange<UInt16> = 1...0xFFEF
    /// The reservation key; nil derives it from the nexus UUID.
    public var reservationKey: UInt64?
    public var preemptPolicy: PreemptPolicy = .holder
    /// Exclusive Access by default: a fenced nexus can neither write nor serve stale reads.
    public var reservationType: ReservationType = .exclusiveAccess
    /// Where missed-segment logs are kept (`<dir>/<volume>/<child>.seglog`); nil: none, a
    /// returning child gets a full rebuild.
    public var rebuildLogDirectory: String?
    public var rebuildLimits: RebuildLimits = .default

    public init(uuid: UUID, volumeUUID: UUID, sizeBytes: UInt64, children: [String]) {
        self.uuid = uuid
        self.volumeUUID = volumeUUID
        self.sizeBytes = sizeBytes
        self.children = children
    }
}

/// Opens a child by URI for a nexus identity: the io-engine opens a ``LocalChild`` for a replica it
/// serves itself and a ``RemoteChild`` otherwise.
public protocol ChildConnector: Sendable {
    func open(uri: String, identity: NexusIdentity) async throws(ChildIOError) -> any ChildDevice
}

/// The host-facing side of a nexus (its published subsystem): held means every listener of the
/// subsystem reports ANA Inaccessible, so the Linux host queues I/O instead of failing it.
public protocol NexusFrontend: Sendable {
    func setHeld(_ held: Bool) async
}
