#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NVMe

/// Which segments a failed child missed, for its rebuild log.
enum DirtyRange: Sendable {
    /// Nothing the log must learn (a failed read).
    case none
    /// These segments.
    case segments(ClosedRange<UInt64>)
    /// Unknown (a failed flush): the log cannot be trusted, the child needs a full rebuild.
    case unknown
}

extension Nexus {
    // MARK: Reads

    /// Reads from one online child, round robin; a child that fails is faulted and the read is
    /// retried on another. Held (``NexusIOError/held``) when no online child is left or the
    /// nexus is fenced or shutting down.
    public func read(lba: UInt64, blocks: UInt32) async throws(NexusIOError) -> ByteBuffer {
        try check(lba: lba, blocks: UInt64(blocks))
        var excluded = Set<String>()
        while true {
            let pick = core.withLock { core -> (uri: String, device: any ChildDevice, gen: UInt64)? in
                guard core.acceptsIO, let child = core.nextReadChild(excluding: excluded) else { return nil }
                return (child.uri, child.device, core.beginIO())
            }
            guard let pick else { throw .held }
            do {
                let data = try await pick.device.read(lba: lba, blocks: blocks)
                endIO(pick.gen)
                return data
            } catch {
                endIO(pick.gen)
                if error == .reservationConflict {
                    fence(by: pick.uri)
                    throw .held
                }
                excluded.insert(pick.uri)
                _ = await childFailed(pick.uri, error, dirty: .none)
            }
        }
    }

    // MARK: Writes

    /// Writes to every child that receives writes (online and rebuilding), in parallel, and
    /// returns when all completed; marks the segments in the logs of children that miss it.
    /// A child that fails is faulted — recorded unhealthy before this returns — unless it is the
    /// last healthy one, in which case the nexus faults and the write is held, not failed.
    public func write(lba: UInt64, data: ByteBuffer, fua: Bool) async throws(NexusIOError) {
        guard data.readableBytes % blockSize == 0 else { throw .misaligned }
        let blocks = UInt64(data.readableBytes / blockSize)
        try await mirrored(lba: lba, blocks: blocks) { device throws(ChildIOError) in
            try await device.write(lba: lba, data: data, fua: fua)
        }
    }

    /// Write Zeroes on every child that receives writes.
    public func writeZeroes(lba: UInt64, blocks: UInt32, deallocate: Bool) async throws(NexusIOError) {
        try await mirrored(lba: lba, blocks: UInt64(blocks)) { device throws(ChildIOError) in
            try await device.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate)
        }
    }

    /// Deallocate on every child that receives writes.
    public func deallocate(lba: UInt64, blocks: UInt32) async throws(NexusIOError) {
        try await mirrored(lba: lba, blocks: UInt64(blocks)) { device throws(ChildIOError) in
            try await device.deallocate(lba: lba, blocks: blocks)
        }
    }

    /// Flush on every child that receives writes.
    public func flush() async throws(NexusIOError) {
        try await mirrored(lba: nil, blocks: 0) { device throws(ChildIOError) in
            try await device.flush()
        }
    }

    /// The mirrored path every modifying command takes. `lba` nil: a flush (no segments).
    private func mirrored(lba: UInt64?, blocks: UInt64,
                          _ operation: @escaping @Sendable (any ChildDevice) async throws(ChildIOError) -> Void) async throws(NexusIOError) {
        var segments: ClosedRange<UInt64>?
        if let lba {
            try check(lba: lba, blocks: blocks)
            segments = blocks == 0 ? nil : self.segments(lba: lba, blocks: blocks)
        }
        struct Plan {
            var gen: UInt64
            var targets: [(uri: String, device: any ChildDevice, online: Bool)]
            var logs: [RebuildLogSlot]
            var requiredHealth: UInt64
            var takeLocks: Bool
        }
        let planned = core.withLock { core -> Plan? in
            guard core.acceptsIO else { return nil }
            let routing = core.writeTargets()
            let skipsAChild = routing.targets.count < core.children.count
            return Plan(gen: core.beginIO(),
                        targets: routing.targets,
                        logs: routing.logs, requiredHealth: skipsAChild ? core.healthWanted : 0,
                        takeLocks: core.rebuildsRunning > 0)
        }
        guard let plan = planned else { throw .held }
        defer { endIO(plan.gen) }

        let hold: SegmentLocks.WriteHold? = if plan.takeLocks, let segments {
            await segmentLocks.holdForWrite(segments: segments)
        } else {
            nil
        }
        let failures: [(uri: String, online: Bool, error: ChildIOError)] = await withTaskGroup(
            of: (String, Bool, ChildIOError?).self
        ) { group in
            for target in plan.targets {
                group.addTask {
                    do throws(ChildIOError) {
                        try await operation(target.device)
                        return (target.uri, target.online, nil)
                    } catch {
                        return (target.uri, target.online, error)
                    }
                }
            }
            var failures: [(uri: String, online: Bool, error: ChildIOError)] = []
            for await (uri, online, error) in group {
                if let error { failures.append((uri, online, error)) }
            }
            return failures
        }
        if let hold { segmentLocks.release(hold) }

        // Children that miss the write learn its segments before it is acknowledged.
        for log in plan.logs {
            if let segments { await log.markDirty(segments) } else { log.invalidate() }
        }
        if let conflict = failures.first(where: { $0.error == .reservationConflict }) {
            fence(by: conflict.uri)
            throw .held
        }
        var requiredHealth = plan.requiredHealth
        for failure in failures {
            let dirty: DirtyRange = segments.map { .segments($0) } ?? .unknown
            if let version = await childFailed(failure.uri, failure.error, dirty: dirty) {
                requiredHealth = max(requiredHealth, version)
            }
        }
        if !failures.isEmpty {
            // Acknowledge only if an in-sync (online) child holds the data.
            let onlineSucceeded = plan.targets.contains { t in t.online && !failures.contains { $0.uri == t.uri } }
            guard onlineSucceeded else { throw .held }
        }
        guard await waitHealthDurable(requiredHealth) else { throw .held }
    }

    // MARK: Child failure

    /// Faults `uri` after `error`: it stops receiving writes at once, its missed segments go to its
    /// log, and the health record marks it unhealthy (unless it is the last healthy child — then
    /// the nexus faults and holds I/O). Returns the health version the caller must wait for,
    /// nil when the record did not change. The device is closed once the record is durable.
    @discardableResult
    func childFailed(_ uri: String, _ error: ChildIOError, dirty: DirtyRange) async -> UInt64? {
        let now = Date()
        let (changed, version, log, device, nowHeld, wasRebuilding) = core.withLock { core
            -> (Bool?, UInt64, RebuildLogSlot?, (any ChildDevice)?, Bool, Bool) in
            let wasRebuilding = core.index(of: uri).map { core.children[$0].state == .rebuilding } ?? false
            let changed = core.retire(uri, to: .faulted(.ioError("\(error)")), now: now)
            let i = core.index(of: uri)
            return (changed, core.healthWanted, i.flatMap { core.children[$0].log }, i.flatMap { core.children[$0].device },
                    core.isHeld, wasRebuilding)
        }
        if changed != nil {
            logger.error("child faulted", metadata: ["child": "\(uri)", "error": "\(error)"])
            // A rebuilding child keeps the log it had (a partial rebuild's log still holds every
            // segment not yet copied); a child in a full rebuild gets none: it needs a full one again.
            if wasRebuilding { cancelRebuild(destination: uri) } else { startLog(for: uri) }
            if nowHeld { await setFrontendHeld(true) }
        }
        let slot = log ?? core.withLock { core in core.index(of: uri).flatMap { core.children[$0].log } }
        switch dirty {
        case .none: break
        case .segments(let range): await slot?.markDirty(range)
        case .unknown: slot?.invalidate()
        }
        guard changed == true else {
            if changed == false, let device { retireDevice(uri, device, after: 0) }
            return nil
        }
        schedulePersist()
        if let device { retireDevice(uri, device, after: version) }
        return version
    }

    /// Closes a retired child's device once the record of `version` is durable.
    func retireDevice(_ uri: String, _ device: any ChildDevice, after version: UInt64) {
        Task {
            await self.waitHealthDurable(version)
            let stillRetired = self.core.withLock { core -> Bool in
                guard let i = core.index(of: uri), core.children[i].device === device else { return false }
                guard !core.children[i].state.receivesWrites else { return false }
                core.children[i].device = nil
                return true
            }
            if stillRetired { await device.close() }
        }
    }

    // MARK: Geometry

    func check(lba: UInt64, blocks: UInt64) throws(NexusIOError) {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        guard !overflow, end <= blockCount else { throw .outOfRange }
    }

    /// The rebuild segments blocks [lba, lba+blocks) touch (blocks > 0).
    func segments(lba: UInt64, blocks: UInt64) -> ClosedRange<UInt64> {
        geometry.segments(lba: lba, blocks: blocks)!
    }
}
