#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The running rebuilds of one nexus, by destination URI (finished ones go to its ``RebuildHistory``).
struct RebuildBook: Sendable {
    var running: [String: RebuildJob] = [:]
}

/// A child's missed-segment log as the nexus holds it: opened in the background when the child
/// stops receiving writes; a write that misses the child waits for its segments to be durable
/// in it. Any failure (the log cannot be created or written, a flush the child missed) makes it
/// invalid: the child then needs a full rebuild.
final class RebuildLogSlot: Sendable {
    private let opening: Task<RebuildLog?, Never>
    private let valid = Atomic<Bool>(true)
    /// The log file, removed by ``discard()`` even when it could not be opened.
    private let path: String

    init(path: String, opening: Task<RebuildLog?, Never>) {
        self.path = path
        self.opening = opening
    }

    var isValid: Bool { valid.load(ordering: .acquiring) }

    func invalidate() { valid.store(false, ordering: .releasing) }

    func markDirty(_ segments: ClosedRange<UInt64>) async {
        guard isValid else { return }
        guard let log = await opening.value else {
            invalidate()
            return
        }
        do {
            try await log.markDirty(segments: segments)
        } catch {
            invalidate()
        }
    }

    /// The logged segments, nil when the log is invalid.
    func dirtySegments() async -> [UInt64]? {
        guard isValid, let log = await opening.value, isValid else { return nil }
        return log.dirtySegments
    }

    /// Closes the file and keeps it: a later nexus of the volume on this node continues it.
    func close() async {
        if let log = await opening.value { await log.close() }
    }

    func discard() async {
        invalidate()
        if let log = await opening.value {
            try? await log.discard()
        } else {
            _ = unlink(path)
        }
    }
}

extension Nexus {
    /// Gives a child that stopped receiving writes a missed-segment log (when the nexus keeps
    /// logs and the child has none yet). An existing log file of the same volume and child is
    /// continued: what it holds was missed too.
    func startLog(for uri: String) {
        guard let directory = configuration.rebuildLogDirectory else { return }
        let geometry = self.geometry
        let volume = configuration.volumeUUID
        let logger = self.logger
        core.withLock { core in
            guard let i = core.index(of: uri), core.children[i].log == nil else { return }
            let child = core.children[i].uuid
            let path = RebuildLog.path(directory: directory, volume: volume, child: child)
            core.children[i].log = RebuildLogSlot(path: path, opening: Task {
                do throws(RebuildLogError) {
                    return try await RebuildLog.open(directory: directory, volume: volume, child: child,
                                                     segmentBytes: geometry.segmentBytes, blockCount: geometry.blockCount,
                                                     blockSize: geometry.blockSize)
                } catch {
                    logger.error("missed-segment log unavailable; the child will need a full rebuild",
                                 metadata: ["child": "\(uri)", "error": "\(error)"])
                    return nil
                }
            })
        }
    }

    /// A child that opened at create but has a missed-segment log on this node (a nexus of the
    /// same volume faulted it, then this io-engine restarted) is not in sync: it is rebuilt from
    /// that log instead of serving stale data — provided another child is online without one.
    func adoptExistingLogs() async {
        guard let directory = configuration.rebuildLogDirectory else { return }
        let volume = configuration.volumeUUID
        let stale = core.withLock { core in
            core.children.filter { $0.state == .online && RebuildLog.exists(directory: directory, volume: volume, child: $0.uuid) }
                .map(\.uri)
        }
        guard !stale.isEmpty else { return }
        let inSync = core.withLock { core in core.children.filter { $0.state == .online && !stale.contains($0.uri) }.count }
        guard inSync > 0 else {
            // Nobody to copy from: every online child has a log; they hold what the last nexus had.
            for uri in stale {
                startLog(for: uri)
                await discardLog(of: uri)
            }
            return
        }
        for uri in stale {
            let version = core.withLock { core -> UInt64 in
                guard let i = core.index(of: uri) else { return core.healthWanted }
                core.children[i].state = .offline
                core.children[i].recordedHealthy = false
                core.healthWanted += 1
                return core.healthWanted
            }
            startLog(for: uri)
            schedulePersist()
            await waitHealthDurable(version)
            logger.notice("child has a missed-segment log from an earlier nexus: rebuilding it", metadata: ["child": "\(uri)"])
            await beginRebuild(uri, fromLog: true)
        }
    }

    /// The segments a returning child missed, nil when it needs a full rebuild.
    func loggedSegments(of uri: String) async -> [UInt64]? {
        guard let slot = core.withLock({ core in core.index(of: uri).flatMap { core.children[$0].log } }) else { return nil }
        return await slot.dirtySegments()
    }

    func discardLog(of uri: String) async {
        let slot = core.withLock { core -> RebuildLogSlot? in
            guard let i = core.index(of: uri) else { return nil }
            defer { core.children[i].log = nil }
            return core.children[i].log
        }
        await slot?.discard()
    }

    /// Puts `uri` (holding its reopened device) into Rebuilding and copies from an online child
    /// in the background: the segments in its log when `fromLog` and the log is intact, else all.
    /// The child receives writes from this moment; writes that began before (routed to its log,
    /// without segment holds) are drained first, so the log is read only once it is complete.
    func beginRebuild(_ uri: String, fromLog: Bool) async {
        let picked = core.withLock { core -> (source: any ChildDevice, sourceURI: String, destination: any ChildDevice)? in
            guard let i = core.index(of: uri), let destination = core.children[i].device else { return nil }
            guard let source = core.children.first(where: { $0.state == .online && $0.uri != uri && $0.device != nil }) else {
                core.children[i].state = .faulted(.rebuildFailed("no online child to copy from"))
                return nil
            }
            core.children[i].state = .rebuilding
            core.children[i].since = Date()
            core.rebuildsRunning += 1
            return (source.device!, source.uri, destination)
        }
        guard let picked else {
            logger.error("rebuild not started: no online source", metadata: ["child": "\(uri)"])
            return
        }
        await drain()
        let kind: RebuildKind = if fromLog, let segments = await loggedSegments(of: uri) {
            .partial(segments: segments)
        } else {
            .full
        }
        let job: RebuildJob
        do {
            job = try RebuildJob(kind: kind, source: picked.source, destination: picked.destination,
                                 limits: limits.withLock { $0 }, locks: segmentLocks)
        } catch {
            core.withLock { core in
                core.rebuildsRunning -= 1
                if let i = core.index(of: uri), core.children[i].state == .rebuilding {
                    core.children[i].state = .faulted(.rebuildFailed("\(error)"))
                }
            }
            logger.error("rebuild not started", metadata: ["child": "\(uri)", "error": "\(error)"])
            return
        }
        rebuildState.withLock { $0.running[uri] = job }
        logger.info("rebuild started", metadata: ["child": "\(uri)", "source": "\(picked.sourceURI)", "kind": "\(kind)"])
        Task {
            let outcome = await job.run()
            await self.finishRebuild(uri, job: job, outcome: outcome)
        }
    }

    private func finishRebuild(_ uri: String, job: RebuildJob, outcome: RebuildOutcome) async {
        rebuildState.withLock { book in
            if book.running[uri] === job { book.running[uri] = nil }
        }
        history.record(job.progress)
        let succeeded: Bool
        if case .completed = outcome { succeeded = true } else { succeeded = false }
        let (promoted, slot) = core.withLock { core -> (Bool, RebuildLogSlot?) in
            core.rebuildsRunning -= 1
            assert(core.rebuildsRunning >= 0)
            guard let i = core.index(of: uri), core.children[i].state == .rebuilding,
                  core.children[i].device === job.destination else { return (false, nil) }
            if succeeded {
                core.children[i].state = .online
                core.children[i].recordedHealthy = true
                core.children[i].since = Date()
                core.healthWanted += 1
                defer { core.children[i].log = nil }
                return (true, core.children[i].log)
            }
            // It stops receiving writes. A partial rebuild's log still holds every segment it
            // has not copied, and takes the writes it misses from now on; a full rebuild has no
            // log, so the child will need a full one again.
            core.children[i].state = .faulted(.rebuildFailed("\(outcome)"))
            core.children[i].since = Date()
            return (false, nil)
        }
        if promoted {
            schedulePersist()
            await slot?.discard()
            logger.info("rebuild completed; child online", metadata: ["child": "\(uri)", "copiedBytes": "\(job.progress.bytesCopied)"])
        } else if !succeeded {
            logger.error("rebuild ended without success", metadata: ["child": "\(uri)", "outcome": "\(outcome)"])
        }
    }

    func cancelRebuild(destination uri: String) {
        rebuildState.withLock { $0.running[uri] }?.cancel()
    }

    func cancelRebuilds() {
        for job in rebuildState.withLock({ Array($0.running.values) }) { job.cancel() }
    }

    /// Running rebuilds.
    public var rebuildProgress: [RebuildProgress] {
        rebuildState.withLock { $0.running.values.map(\.progress) }
    }

    /// Finished rebuilds, oldest first (the last 32).
    public var rebuildHistory: [RebuildProgress] {
        history.entries
    }

    /// Rebuild concurrency and rate for the rebuilds started from now on (running ones keep
    /// theirs; the segment size is fixed at create).
    public var rebuildLimits: RebuildLimits { limits.withLock { $0 } }

    public func setRebuildLimits(_ new: RebuildLimits) throws(NexusError) {
        guard new.segmentBytes == geometry.segmentBytes else {
            throw .invalidArgument("the segment size is fixed at \(geometry.segmentBytes) bytes for this nexus (logs depend on it)")
        }
        limits.withLock { $0 = new }
    }

    /// Shuts the nexus down and stops its background work; the io-engine forgets it afterwards.
    public func destroy() async {
        await shutdown(reason: .requested)
    }
}
