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

    /// ``read(lba:blocks:)`` for the NVMe/TCP target's I/O path: the chosen child is read
    /// through its callback form (``ChildDevice/submitRead(lba:blocks:on:completion:)``); a
    /// failure faults it and the read continues on the async path. `completion` runs on `eventLoop`.
    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop,
                     completion: @escaping @Sendable (Result<ByteBuffer, NexusIOError>) -> Void) {
        do {
            try check(lba: lba, blocks: UInt64(blocks))
        } catch {
            return completion(.failure(error))
        }
        let pick = core.withLock { core -> (uri: String, device: any ChildDevice, gen: UInt64)? in
            guard core.acceptsIO, let child = core.nextReadChild(excluding: []) else { return nil }
            return (child.uri, child.device, core.beginIO())
        }
        guard let pick else { return completion(.failure(.held)) }
        pick.device.submitRead(lba: lba, blocks: blocks, on: eventLoop) { [self] result in
            endIO(pick.gen)
            let deliver: @Sendable (Result<ByteBuffer, NexusIOError>) -> Void = { result in
                if eventLoop.inEventLoop { completion(result) } else { eventLoop.execute { completion(result) } }
            }
            switch result {
            case .success(let data):
                deliver(.success(data))
            case .failure(.reservationConflict):
                fence(by: pick.uri)
                deliver(.failure(.held))
            case .failure(let error):
                Task {
                    _ = await childFailed(pick.uri, error, dirty: .none)
                    do throws(NexusIOError) {
                        deliver(.success(try await read(lba: lba, blocks: blocks)))
                    } catch {
                        deliver(.failure(error))
                    }
                }
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
        let segments = try mirroredSegments(lba: lba, blocks: blocks)
        guard let plan = takeMirrorPlan() else { throw .held }
        try await runMirrored(plan, segments: segments, operation)
    }

    /// The segments a mirrored command touches (nil: a flush or an empty range), range checked.
    private func mirroredSegments(lba: UInt64?, blocks: UInt64) throws(NexusIOError) -> ClosedRange<UInt64>? {
        guard let lba else { return nil }
        try check(lba: lba, blocks: blocks)
        return blocks == 0 ? nil : self.segments(lba: lba, blocks: blocks)
    }

    /// Routes one mirrored command under the lock and counts it in flight (nil: held). The
    /// caller ends the I/O (``endIO(_:)``) once the command is settled.
    private func takeMirrorPlan() -> MirrorPlan? {
        core.withLock { core -> MirrorPlan? in
            guard core.acceptsIO else { return nil }
            let routing = core.writeTargets()
            let skipsAChild = routing.targets.count < core.children.count
            return MirrorPlan(gen: core.beginIO(), targets: routing.targets, logs: routing.logs,
                              requiredHealth: skipsAChild ? core.healthWanted : 0, takeLocks: core.rebuildsRunning > 0)
        }
    }

    /// Runs a planned command on its targets in parallel (tasks), then ``settle(_:segments:failures:)``.
    private func runMirrored(_ plan: MirrorPlan, segments: ClosedRange<UInt64>?,
                             _ operation: @escaping @Sendable (any ChildDevice) async throws(ChildIOError) -> Void) async throws(NexusIOError) {
        defer { endIO(plan.gen) }
        let hold: SegmentLocks.WriteHold? = if plan.takeLocks, let segments {
            await segmentLocks.holdForWrite(segments: segments)
        } else {
            nil
        }
        let failures: [ChildFailure] = await withTaskGroup(of: ChildFailure?.self) { group in
            for target in plan.targets {
                group.addTask {
                    do throws(ChildIOError) {
                        try await operation(target.device)
                        return nil
                    } catch {
                        return ChildFailure(uri: target.uri, online: target.online, error: error)
                    }
                }
            }
            var failures: [ChildFailure] = []
            for await failure in group {
                if let failure { failures.append(failure) }
            }
            return failures
        }
        if let hold { segmentLocks.release(hold) }
        try await settle(plan, segments: segments, failures: failures)
    }

    /// What must happen after the children answered and before the command is acknowledged:
    /// children that miss it learn its segments, a Reservation Conflict fences, failed children
    /// are faulted, and the health record that says so must be durable. Throws
    /// ``NexusIOError/held`` when the command may not be acknowledged.
    private func settle(_ plan: MirrorPlan, segments: ClosedRange<UInt64>?, failures: [ChildFailure]) async throws(NexusIOError) {
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

    // MARK: Callback I/O path (the target's)

    /// ``write(lba:data:fua:)`` for the NVMe/TCP target's I/O path: while no rebuild runs, no
    /// child misses writes and none fails, the children are written through their callback forms
    /// (``ChildDevice/submitWrite(lba:data:fua:on:completion:)``) — no task, no future — and the
    /// write is acknowledged when the last answers. Anything else (segment holds, rebuild logs, a
    /// health version to wait for, a failed child) takes the same steps as the async path.
    /// `completion` runs on `eventLoop`.
    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop,
                      completion: @escaping @Sendable (Result<Void, NexusIOError>) -> Void) {
        let deliver: @Sendable (Result<Void, NexusIOError>) -> Void = { result in
            if eventLoop.inEventLoop { completion(result) } else { eventLoop.execute { completion(result) } }
        }
        let segments: ClosedRange<UInt64>?
        do throws(NexusIOError) {
            guard data.readableBytes % blockSize == 0 else { throw .misaligned }
            segments = try mirroredSegments(lba: lba, blocks: UInt64(data.readableBytes / blockSize))
        } catch {
            return completion(.failure(error))
        }
        guard let plan = takeMirrorPlan() else { return completion(.failure(.held)) }
        guard plan.isDirect else {
            Task {
                do throws(NexusIOError) {
                    try await runMirrored(plan, segments: segments) { device throws(ChildIOError) in
                        try await device.write(lba: lba, data: data, fua: fua)
                    }
                    deliver(.success(()))
                } catch {
                    deliver(.failure(error))
                }
            }
            return
        }
        let fanout = MirrorFanout(plan.targets.count)
        for target in plan.targets {
            target.device.submitWrite(lba: lba, data: data, fua: fua, on: eventLoop) { [self] error in
                guard let failures = fanout.answered(error.map { ChildFailure(uri: target.uri, online: target.online, error: $0) })
                else { return }
                guard !failures.isEmpty else {
                    endIO(plan.gen)
                    return deliver(.success(()))
                }
                Task {
                    defer { endIO(plan.gen) }
                    do throws(NexusIOError) {
                        try await settle(plan, segments: segments, failures: failures)
                        deliver(.success(()))
                    } catch {
                        deliver(.failure(error))
                    }
                }
            }
        }
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
