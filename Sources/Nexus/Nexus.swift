#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NVMe
import Synchronization

/// A volume's target (DESIGN.md §2; Mayastor's nexus, research/mayastor.md §2–§6): it mirrors
/// every write to its healthy children in parallel and acknowledges it when all completed, reads
/// round robin from online children, faults a child that fails (recording it unhealthy in the
/// store first), fences itself — shuts down at once — when a child answers Reservation Conflict,
/// holds the host (ANA inaccessible) instead of failing I/O while it cannot serve, and rebuilds
/// returning or new children while I/O continues.
///
/// Concurrency: all state is one ``NexusCore`` value in a `Mutex`; I/O runs on the caller's
/// task and never waits for management operations, which are serialized by an
/// ``AsyncSerializer``. Store writes of the health record run in one background persister.
public final class Nexus: Sendable {
    public let configuration: NexusConfiguration
    public let identity: NexusIdentity
    public let blockSize: Int
    public let blockCount: UInt64
    public var uuid: UUID { configuration.uuid }

    let core: Mutex<NexusCore>
    let connector: any ChildConnector
    let recorder: any NexusHealthRecorder
    let logger: Logger
    let management = AsyncSerializer()
    let segmentLocks: SegmentLocks
    let geometry: SegmentGeometry
    let limits: Mutex<RebuildLimits>
    let rebuildState = Mutex(RebuildBook())
    let history = RebuildHistory()
    private let frontend = Mutex<(any NexusFrontend)?>(nil)
    private let shutdownTask = Mutex<Task<Void, Never>?>(nil)
    private let times = Mutex(Times())

    /// Wall-clock marks of the fencing path, for the API and the fencing-latency report.
    struct Times: Sendable {
        var stateChangedAt = Date()
        var fencedAt: Date?
        var shutdownCompletedAt: Date?
        /// See ``NexusSnapshot/preemptedAt``.
        var preemptedAt: Date?
    }

    private init(configuration: NexusConfiguration, identity: NexusIdentity, blockSize: Int, children: [NexusCore.Child],
                 connector: any ChildConnector, recorder: any NexusHealthRecorder, logger: Logger) {
        self.configuration = configuration
        self.identity = identity
        self.blockSize = blockSize
        self.blockCount = configuration.sizeBytes / UInt64(blockSize)
        var core = NexusCore()
        core.children = children
        core.healthWanted = 1
        self.core = Mutex(core)
        self.connector = connector
        self.recorder = recorder
        self.logger = logger
        self.limits = Mutex(configuration.rebuildLimits)
        self.geometry = SegmentGeometry(segmentBytes: configuration.rebuildLimits.segmentBytes, blockSize: blockSize,
                                        blockCount: configuration.sizeBytes / UInt64(blockSize))
        self.segmentLocks = SegmentLocks(geometry: geometry)
    }

    // MARK: Create

    /// Opens every child and takes its reservation (``Fencing``), then writes the health record.
    /// Children that cannot be opened start Faulted; none opened, a child smaller than the
    /// volume, mixed block sizes, or a holder the policy may not preempt fail the create.
    public static func create(_ configuration: NexusConfiguration, connector: any ChildConnector,
                              health recorder: any NexusHealthRecorder,
                              logger: Logger = Logger(label: "halyard.nexus")) async throws(NexusError) -> Nexus {
        guard !configuration.children.isEmpty else { throw .invalidArgument("a nexus needs at least one child") }
        guard configuration.sizeBytes > 0 else { throw .invalidArgument("nexus size must be greater than 0") }
        guard Set(configuration.children).count == configuration.children.count else {
            throw .invalidArgument("duplicate child URI in \(configuration.children)")
        }
        let identity = NexusIdentity(nexusUUID: configuration.uuid, volumeUUID: configuration.volumeUUID,
                                     reservationKey: configuration.reservationKey)
        var logger = logger
        logger[metadataKey: "nexus"] = "\(configuration.uuid.uuidString.lowercased())"

        // Open and fence every child concurrently.
        let preempted = EarliestDate()
        let opened = await withTaskGroup(of: (Int, Result<any ChildDevice, NexusError>).self) { group in
            for (i, uri) in configuration.children.enumerated() {
                group.addTask {
                    (i, await openAndFence(uri: uri, identity: identity, configuration: configuration,
                                           connector: connector, preempted: { at in preempted.note(at) }))
                }
            }
            var results = [Result<any ChildDevice, NexusError>?](repeating: nil, count: configuration.children.count)
            for await (i, result) in group { results[i] = result }
            return results.map { $0! }
        }
        func closeAll() async {
            for case .success(let device) in opened { await device.close() }
        }
        var blockSize: Int?
        for (i, result) in opened.enumerated() {
            guard case .success(let device) = result else { continue }
            if let known = blockSize, known != device.blockSize {
                await closeAll()
                throw .invalidArgument("child \(configuration.children[i]) has \(device.blockSize)-byte blocks, others \(known)")
            }
            blockSize = device.blockSize
            if device.byteCountValue < configuration.sizeBytes {
                await closeAll()
                throw .invalidArgument("child \(configuration.children[i]) holds \(device.byteCountValue) bytes, less than the nexus size \(configuration.sizeBytes)")
            }
        }
        // The argkey policy refusing a holder fails the create: it is the caller's compare-and-swap.
        for case .failure(let error) in opened {
            if case .unavailable(let message) = error, message.contains("may not preempt") {
                await closeAll()
                throw error
            }
        }
        guard let blockSize else {
            let reasons = opened.compactMap { r -> String? in if case .failure(let e) = r { return "\(e)" }; return nil }
            throw .unavailable("no child could be opened: \(reasons.joined(separator: "; "))")
        }
        guard configuration.sizeBytes % UInt64(blockSize) == 0 else {
            await closeAll()
            throw .invalidArgument("nexus size \(configuration.sizeBytes) is not a multiple of the \(blockSize)-byte block size")
        }
        let now = Date()
        let children = configuration.children.enumerated().map { i, uri -> NexusCore.Child in
            switch opened[i] {
            case .success(let device):
                return .init(uri: uri, uuid: NexusIdentity.childUUID(uri: uri), device: device, state: .online,
                             recordedHealthy: true, log: nil, since: now)
            case .failure(let error):
                return .init(uri: uri, uuid: NexusIdentity.childUUID(uri: uri), device: nil,
                             state: .faulted(.cannotOpen("\(error)")), recordedHealthy: false, log: nil, since: now)
            }
        }
        let nexus = Nexus(configuration: configuration, identity: identity, blockSize: blockSize, children: children,
                          connector: connector, recorder: recorder, logger: logger)
        if let at = preempted.value { nexus.notePreempt(at) }
        do {
            try await recorder.write(nexus.core.withLock { $0.healthRecord() })
            nexus.core.withLock { $0.healthDurable = 1 }
        } catch {
            // Not fatal: writes wait for the record only if they skip a child (see NexusCore).
            logger.warning("health record not written at create; retrying in the background", metadata: ["error": "\(error)"])
            nexus.schedulePersist()
        }
        for case .success(let device) in opened { nexus.watchNotices(device) }
        for child in children where child.state != .online {
            nexus.startLog(for: child.uri)
        }
        await nexus.adoptExistingLogs()
        logger.info("nexus created", metadata: [
            "volume": "\(configuration.volumeUUID.uuidString.lowercased())", "size": "\(configuration.sizeBytes)",
            "children": "\(children.map { "\($0.uri)=\($0.state)" })", "key": "0x\(String(identity.reservationKey, radix: 16))",
        ])
        return nexus
    }

    /// Opens one child and takes its reservation; `preempted` learns when it preempted another
    /// nexus's reservation.
    static func openAndFence(uri: String, identity: NexusIdentity, configuration: NexusConfiguration,
                             connector: any ChildConnector,
                             preempted: @Sendable (Date) -> Void) async -> Result<any ChildDevice, NexusError> {
        let device: any ChildDevice
        do {
            device = try await connector.open(uri: uri, identity: identity)
        } catch {
            return .failure(.unavailable("\(uri): \(error)"))
        }
        do {
            let outcome = try await Fencing.acquire(device, key: identity.reservationKey, type: configuration.reservationType,
                                                    policy: configuration.preemptPolicy)
            if case .preempted(let previous, let sentAt) = outcome, previous != identity.reservationKey { preempted(sentAt) }
        } catch {
            await device.close()
            return .failure(error)
        }
        return .success(device)
    }

    // MARK: State

    public var state: NexusState { core.withLock { $0.state } }

    /// Attaches the published subsystem: it is held at once if the nexus cannot serve.
    public func attach(frontend: (any NexusFrontend)?) async {
        self.frontend.withLock { $0 = frontend }
        if let frontend, core.withLock({ $0.isHeld }) { await frontend.setHeld(true) }
    }

    func setFrontendHeld(_ held: Bool) async {
        if let frontend = frontend.withLock({ $0 }) { await frontend.setHeld(held) }
    }

    // MARK: Shutdown and fencing

    /// Shuts the nexus down (idempotent): I/O is held (the frontend goes ANA inaccessible),
    /// rebuilds stop, in-flight child I/O drains, children are closed, a clean shutdown is
    /// recorded. Returns when all of that is done.
    public func shutdown(reason: ShutdownReason = .requested) async {
        _ = core.withLock { $0.beginShutdown(reason) }
        await finishShutdown()
    }

    /// A child told us another nexus owns the volume: stop serving at once (no child retired).
    func fence(by uri: String) {
        let first = core.withLock { $0.beginShutdown(.fenced(childURI: uri)) }
        guard first else { return }
        times.withLock { $0.fencedAt = Date() }
        logger.warning("reservation conflict: another nexus owns the volume; shutting down", metadata: ["child": "\(uri)"])
        Task { await self.finishShutdown() }
    }

    private func finishShutdown() async {
        let task = shutdownTask.withLock { slot -> Task<Void, Never> in
            if let existing = slot { return existing }
            let made = Task { await self.runShutdown() }
            slot = made
            return made
        }
        await task.value
    }

    private func runShutdown() async {
        times.withLock { $0.stateChangedAt = Date() }
        await setFrontendHeld(true)
        cancelRebuilds()
        releaseHealthWaiters()
        await drain()
        let devices = core.withLock { core -> [any ChildDevice] in
            let devices = core.children.compactMap(\.device)
            for i in core.children.indices {
                core.children[i].device = nil
                if core.children[i].state.receivesWrites { core.children[i].state = .closed }
            }
            return devices
        }
        for device in devices { await device.close() }
        for log in core.withLock({ $0.children.compactMap(\.log) }) { await log.close() }
        let reason = core.withLock { core -> ShutdownReason in
            guard case .shuttingDown(let reason) = core.lifecycle else { return .requested }
            core.lifecycle = .shutdown(reason)
            core.healthWanted += 1
            return reason
        }
        let now = Date()
        times.withLock {
            $0.shutdownCompletedAt = now
            $0.stateChangedAt = now
        }
        var fields: Logger.Metadata = ["reason": "\(reason)"]
        if let fencedAt = times.withLock({ $0.fencedAt }) {
            fields["fencedToShutdownMs"] = "\(Int(now.timeIntervalSince(fencedAt) * 1000))"
        }
        logger.notice("nexus shut down", metadata: fields)
        // Record the clean shutdown, bounded: a store outage must not hang the shutdown.
        let record = core.withLock { $0.healthRecord() }
        let recorder = self.recorder
        let written = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await recorder.write(record)) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !written { logger.warning("clean shutdown not recorded: the store did not answer") }
    }

    /// Waits until every I/O that began before this call has ended.
    func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = core.withLock { core -> Bool in
                core.generation += 1
                if core.drained(below: core.generation) { return true }
                core.drainWaiters.append((core.generation, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Remembers a Preempt and Abort of another nexus sent at `at` (``NexusSnapshot/preemptedAt``).
    func notePreempt(_ at: Date) {
        times.withLock { $0.preemptedAt = max($0.preemptedAt ?? at, at) }
        logger.notice("preempted another nexus's reservation", metadata: ["sentAt": "\(at)"])
    }

    func endIO(_ gen: UInt64) {
        let ready = core.withLock { $0.endIO(gen) }
        for continuation in ready { continuation.resume() }
    }

    // MARK: Notices

    func watchNotices(_ device: any ChildDevice) {
        let uri = device.uri
        Task { [weak self] in
            for await notice in device.notices {
                guard let self else { return }
                switch notice {
                case .registrationPreempted:
                    self.fence(by: uri)
                case .connectionLost(let why):
                    let current = self.core.withLock { core -> Bool in
                        guard let i = core.index(of: uri) else { return false }
                        return core.children[i].device === device && core.children[i].state.receivesWrites
                    }
                    if current { _ = await self.childFailed(uri, .unreachable(why), dirty: .none) }
                case .reservationReleased:
                    break
                }
            }
        }
    }

    // MARK: Health record

    /// Starts the background persister if it is not running; it writes the latest record until
    /// the durable version catches up with the wanted one, retrying a failing store with backoff.
    func schedulePersist() {
        let start = core.withLock { core -> Bool in
            guard !core.persisting, core.healthDurable < core.healthWanted else { return false }
            core.persisting = true
            return true
        }
        guard start else { return }
        Task {
            var delay: Duration = .milliseconds(100)
            while true {
                let (version, record) = core.withLock { ($0.healthWanted, $0.healthRecord()) }
                do {
                    try await recorder.write(record)
                    let (ready, done) = core.withLock { core -> ([CheckedContinuation<Void, Never>], Bool) in
                        core.healthDurable = max(core.healthDurable, version)
                        var ready: [CheckedContinuation<Void, Never>] = []
                        core.healthWaiters.removeAll { waiter in
                            if waiter.version <= core.healthDurable {
                                ready.append(waiter.continuation)
                                return true
                            }
                            return false
                        }
                        let done = core.healthDurable >= core.healthWanted
                        if done { core.persisting = false }
                        return (ready, done)
                    }
                    for continuation in ready { continuation.resume() }
                    if done { return }
                    delay = .milliseconds(100)
                } catch {
                    let over = core.withLock { core -> Bool in
                        guard case .shutdown = core.lifecycle else { return false }
                        core.persisting = false
                        return true
                    }
                    if over { return }  // the shutdown path made its own bounded attempt
                    logger.warning("health record not written; retrying", metadata: ["error": "\(error)", "retryInMs": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(2))
                }
            }
        }
    }

    /// Waits until the health record of `version` (or later) is durable; false when the nexus
    /// shut down first (the caller holds its I/O instead of acknowledging it).
    @discardableResult
    func waitHealthDurable(_ version: UInt64) async -> Bool {
        guard version > 0 else { return true }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = core.withLock { core -> Bool in
                if core.healthDurable >= version || core.lifecycle != .open { return true }
                core.healthWaiters.append((version, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
        return core.withLock { $0.healthDurable >= version }
    }

    /// Releases every I/O waiting for a health record (at shutdown: they are held, not acknowledged).
    func releaseHealthWaiters() {
        let waiting = core.withLock { core -> [CheckedContinuation<Void, Never>] in
            defer { core.healthWaiters = [] }
            return core.healthWaiters.map(\.continuation)
        }
        for continuation in waiting { continuation.resume() }
    }

    /// The record as it stands (for the API and tests).
    public var healthRecord: NexusHealthRecord { core.withLock { $0.healthRecord() } }

    // MARK: Snapshot

    public var snapshot: NexusSnapshot {
        let (state, reason, children) = core.withLock { core -> (NexusState, ShutdownReason?, [ChildSnapshot]) in
            let reason: ShutdownReason? = switch core.lifecycle {
            case .open: nil
            case .shuttingDown(let r), .shutdown(let r): r
            }
            return (core.state, reason, core.children.map {
                ChildSnapshot(uri: $0.uri, uuid: $0.uuid, state: $0.state, healthy: $0.recordedHealthy, since: $0.since,
                              hasRebuildLog: $0.log != nil)
            })
        }
        let t = times.withLock { $0 }
        return NexusSnapshot(uuid: configuration.uuid, volumeUUID: configuration.volumeUUID, nqn: identity.volumeNQN,
                             sizeBytes: blockCount * UInt64(blockSize), blockSize: blockSize, state: state,
                             shutdownReason: reason, children: children, reservationKey: identity.reservationKey,
                             preemptPolicy: configuration.preemptPolicy, controllerIDRange: configuration.controllerIDRange,
                             stateChangedAt: t.stateChangedAt, fencedAt: t.fencedAt, shutdownCompletedAt: t.shutdownCompletedAt,
                             preemptedAt: t.preemptedAt, rebuilds: rebuildProgress)
    }
}

/// A nexus as the API reports it.
public struct NexusSnapshot: Sendable {
    public var uuid: UUID
    public var volumeUUID: UUID
    public var nqn: String
    public var sizeBytes: UInt64
    public var blockSize: Int
    public var state: NexusState
    public var shutdownReason: ShutdownReason?
    public var children: [ChildSnapshot]
    public var reservationKey: UInt64
    public var preemptPolicy: PreemptPolicy
    public var controllerIDRange: ClosedRange<UInt16>
    public var stateChangedAt: Date
    /// When a child's Reservation Conflict (or preempted notice) reached the nexus.
    public var fencedAt: Date?
    public var shutdownCompletedAt: Date?
    /// When this nexus began fencing another nexus: its first Preempt and Abort of another
    /// holder's reservation in the latest create, child add or online that preempted. With the
    /// old nexus's ``shutdownCompletedAt``: the preempt → shutdown time.
    public var preemptedAt: Date?
    /// Running rebuilds.
    public var rebuilds: [RebuildProgress]
}

/// One child as the API reports it.
public struct ChildSnapshot: Sendable {
    public var uri: String
    public var uuid: UUID
    public var state: ChildState
    /// Healthy in the health record.
    public var healthy: Bool
    public var since: Date
    /// A missed-segment log exists (an online will be a partial rebuild).
    public var hasRebuildLog: Bool
}

extension ChildDevice {
    var byteCountValue: UInt64 { blockCount &* UInt64(blockSize) }
}

/// The earliest of the dates noted, from any task.
private final class EarliestDate: Sendable {
    private let earliest = Mutex<Date?>(nil)
    var value: Date? { earliest.withLock { $0 } }
    func note(_ date: Date) { earliest.withLock { $0 = min($0 ?? date, date) } }
}
