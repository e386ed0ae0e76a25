#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The state of one nexus in one value, guarded by the nexus's mutex: the lifecycle, the
/// children, the I/O in flight by generation, and the health record's wanted version. Every
/// transition is a method here, so the rules sit in one place (TigerBeetle style); the ``Nexus``
/// performs the I/O and store writes these transitions ask for.
struct NexusCore: Sendable {
    enum Lifecycle: Hashable, Sendable {
        case open
        case shuttingDown(ShutdownReason)
        case shutdown(ShutdownReason)
    }

    /// One child slot.
    struct Child: Sendable {
        let uri: String
        let uuid: UUID
        var device: (any ChildDevice)?
        var state: ChildState
        /// What the health record says (or will say once ``NexusCore/healthWanted`` is durable).
        var recordedHealthy: Bool
        /// The durable log of segments this child misses, when it is faulted/offline and the
        /// nexus keeps logs (nil: a return needs a full rebuild).
        var log: RebuildLogSlot?
        /// Wall-clock time of the last state change.
        var since: Date
    }

    var lifecycle: Lifecycle = .open
    var children: [Child] = []
    var readCursor = 0
    /// Rebuilds running: host writes take segment holds while > 0.
    var rebuildsRunning = 0

    // In-flight I/O by generation: `drain` bumps the generation and waits for older ones.
    var generation: UInt64 = 0
    var inflight: [UInt64: Int] = [:]
    var drainWaiters: [(generation: UInt64, continuation: CheckedContinuation<Void, Never>)] = []

    // Health record versions: a write that skipped a child may be acknowledged only once the
    // record marking it unhealthy is durable.
    var healthWanted: UInt64 = 0
    var healthDurable: UInt64 = 0
    var healthWaiters: [(version: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    /// The background persister is running.
    var persisting = false

    // MARK: Derived state

    var state: NexusState {
        switch lifecycle {
        case .shuttingDown: return .shuttingDown
        case .shutdown: return .shutdown
        case .open:
            let online = children.filter { $0.state == .online }.count
            if online == 0 { return .faulted }
            return online == children.count ? .online : .degraded
        }
    }

    /// I/O is accepted only while open with an online child; otherwise it is held.
    var acceptsIO: Bool { lifecycle == .open && children.contains { $0.state == .online } }

    var isHeld: Bool { !acceptsIO }

    func index(of uri: String) -> Int? { children.firstIndex { $0.uri == uri } }

    // MARK: I/O tracking

    mutating func beginIO() -> UInt64 {
        inflight[generation, default: 0] += 1
        return generation
    }

    /// Ends one I/O; returns the drain waiters it released.
    mutating func endIO(_ gen: UInt64) -> [CheckedContinuation<Void, Never>] {
        guard let count = inflight[gen] else {
            assertionFailure("endIO without beginIO")
            return []
        }
        if count == 1 { inflight[gen] = nil } else { inflight[gen] = count - 1 }
        return releasableDrains()
    }

    /// True when no I/O of a generation below `gen` is in flight.
    func drained(below gen: UInt64) -> Bool { !inflight.keys.contains { $0 < gen } }

    mutating func releasableDrains() -> [CheckedContinuation<Void, Never>] {
        var ready: [CheckedContinuation<Void, Never>] = []
        var waiting: [(generation: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in drainWaiters {
            if drained(below: waiter.generation) { ready.append(waiter.continuation) } else { waiting.append(waiter) }
        }
        drainWaiters = waiting
        return ready
    }

    // MARK: Routing

    /// The children a write goes to, and the logs of those that miss it.
    /// `online`: the target is in sync (a write on it alone may be acknowledged), not rebuilding.
    func writeTargets() -> (targets: [(uri: String, device: any ChildDevice, online: Bool)], logs: [RebuildLogSlot]) {
        var targets: [(uri: String, device: any ChildDevice, online: Bool)] = []
        var logs: [RebuildLogSlot] = []
        for child in children {
            if child.state.receivesWrites, let device = child.device {
                targets.append((child.uri, device, child.state == .online))
            } else if let log = child.log {
                logs.append(log)
            }
        }
        return (targets, logs)
    }

    /// The next online child for a read, round robin, skipping `excluded`.
    mutating func nextReadChild(excluding excluded: Set<String>) -> (uri: String, device: any ChildDevice)? {
        let n = children.count
        guard n > 0 else { return nil }
        for step in 0..<n {
            let i = (readCursor + step) % n
            let child = children[i]
            if child.state == .online, let device = child.device, !excluded.contains(child.uri) {
                readCursor = (i + 1) % n
                return (child.uri, device)
            }
        }
        return nil
    }

    // MARK: Health

    /// The record as it should read now.
    func healthRecord() -> NexusHealthRecord {
        NexusHealthRecord(cleanShutdown: {
            if case .shutdown = lifecycle { return true }
            return false
        }(), children: children.map { .init(uuid: $0.uuid.uuidString.lowercased(), healthy: $0.recordedHealthy) })
    }

    /// Whether `uri` is the only child recorded healthy: it must never be recorded unhealthy.
    func isLastHealthy(_ uri: String) -> Bool {
        let healthy = children.filter(\.recordedHealthy)
        return healthy.count == 1 && healthy[0].uri == uri
    }

    // MARK: Transitions

    /// Retires a child that failed (or is faulted/offlined by request): it stops receiving
    /// writes; recorded unhealthy unless it is the last healthy one. Returns whether the record
    /// changed (the caller persists it) — nil when the child was not receiving I/O anyway.
    mutating func retire(_ uri: String, to newState: ChildState, now: Date) -> Bool? {
        guard let i = index(of: uri) else { return nil }
        switch children[i].state {
        case .online, .rebuilding: break
        default: return nil
        }
        precondition(newState == .offline || { if case .faulted = newState { return true }; return false }(),
                     "retire to \(newState)")
        let wasRebuilding = children[i].state == .rebuilding
        let last = isLastHealthy(uri) && !wasRebuilding
        children[i].state = newState
        children[i].since = now
        if children[i].recordedHealthy && !last {
            children[i].recordedHealthy = false
            healthWanted += 1
            return true
        }
        return false
    }

    mutating func beginShutdown(_ reason: ShutdownReason) -> Bool {
        guard lifecycle == .open else { return false }
        lifecycle = .shuttingDown(reason)
        return true
    }
}
