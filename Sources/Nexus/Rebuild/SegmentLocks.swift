import Synchronization

/// Per-segment ordering between host writes and rebuild copies while a child rebuilds.
///
/// A host write holds every segment its LBA range touches *shared* for the whole of its fan-out to
/// the children; a rebuild copy holds one segment *exclusively* from before it reads the source
/// until its write to the destination has completed. So a copy never reads the source while a
/// host write to that segment may still be landing on the destination, and a host write never
/// lands on the destination between a copy's source read and its destination write: the
/// destination never ends up with source data older than a write the host has seen complete.
///
/// Fairness: a copy waiting for a segment blocks new host writes to that segment (writes already
/// holding it finish first), so copies are not starved by a stream of writes; host writes wait
/// at most for the copies queued on their segments (copies of one segment go in arrival order,
/// ahead of the writes waiting for it). Writes never wait for each other. A write
/// takes all its segments at once or waits, and a copy holds one segment, so there is no lock
/// order to get wrong and no deadlock.
///
/// State is one `Mutex`; waiting suspends on a checked continuation (waits are not cancellable,
/// and are bounded by the copy and write I/O they wait for). The uncontended write path — no copy
/// holding or waiting — is a lock, a scan of the (usually empty) copy table and an append to an
/// array whose storage is reused, whatever the length of the write. The nexus needs holds only
/// while a rebuild runs, but every host write that reaches the destination while copies run must
/// hold: a write started before the locks were in use must have completed before the first copy.
public final class SegmentLocks: Sendable {
    /// A host write's shared hold over a range of segments; give it back with ``release(_:)-(WriteHold)``.
    public struct WriteHold: Hashable, Sendable {
        /// 0 for the empty hold of a zero-length range.
        fileprivate let id: UInt64
        /// The segments held, nil for an empty hold (nothing to release).
        public let segments: ClosedRange<UInt64>?
    }

    /// A copy's exclusive hold on one segment; give it back with ``release(_:)-(CopyHold)``.
    public struct CopyHold: Hashable, Sendable {
        /// The segment held.
        public let segment: UInt64
    }

    /// The segment layout the holds are expressed in (the nexus's and every rebuild job's).
    public let geometry: SegmentGeometry
    private let state = Mutex(State())

    public init(geometry: SegmentGeometry) {
        self.geometry = geometry
    }

    // MARK: Host writes

    /// Waits until no copy holds or waits for any of `segments`, then holds them all shared.
    public func holdForWrite(segments: ClosedRange<UInt64>) async -> WriteHold {
        let immediate = state.withLock { state -> WriteHold? in
            state.blocksWrite(segments) ? nil : state.activateWrite(segments)
        }
        if let immediate { return immediate }
        return await withCheckedContinuation { (continuation: CheckedContinuation<WriteHold, Never>) in
            let hold = state.withLock { state -> WriteHold? in
                if state.blocksWrite(segments) {
                    state.waitingWrites.append(WaitingWrite(segments: segments, continuation: continuation))
                    return nil
                }
                return state.activateWrite(segments)
            }
            if let hold { continuation.resume(returning: hold) }
        }
    }

    /// ``holdForWrite(segments:)`` for the blocks `lba ..< lba + blocks` (an empty hold for 0 blocks).
    public func holdForWrite(lba: UInt64, blocks: UInt64) async -> WriteHold {
        guard let segments = geometry.segments(lba: lba, blocks: blocks) else { return WriteHold(id: 0, segments: nil) }
        return await holdForWrite(segments: segments)
    }

    /// Ends a write's hold; copies waiting only for it start.
    public func release(_ hold: WriteHold) {
        guard let segments = hold.segments else { return }
        let granted = state.withLock { state -> [(CheckedContinuation<CopyHold, Never>, UInt64)] in
            guard let index = state.activeWrites.lastIndex(where: { $0.id == hold.id }) else {
                assertionFailure("release of write hold \(hold.id) that is not held")
                return []
            }
            state.activeWrites.swapAt(index, state.activeWrites.count - 1)
            state.activeWrites.removeLast()
            return state.grantWaitingCopies(in: segments)
        }
        for (continuation, segment) in granted { continuation.resume(returning: CopyHold(segment: segment)) }
    }

    /// Runs `body` holding the blocks `lba ..< lba + blocks` for a write.
    public func withWriteHold<T, E: Error>(
        lba: UInt64, blocks: UInt64, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws(E) -> T
    ) async throws(E) -> T {
        let hold = await holdForWrite(lba: lba, blocks: blocks)
        defer { release(hold) }
        return try await body()
    }

    // MARK: Copies

    /// Waits until no write holds `segment` and no other copy holds it (copies queued on it
    /// before go first), then holds it exclusively. New writes to the segment wait from the
    /// moment this call starts waiting.
    public func holdForCopy(segment: UInt64) async -> CopyHold {
        let immediate = state.withLock { state -> Bool in
            guard state.copies[segment] == nil, !state.writeHolds(segment) else { return false }
            state.copies[segment] = CopySlot(held: true)
            return true
        }
        if immediate { return CopyHold(segment: segment) }
        return await withCheckedContinuation { (continuation: CheckedContinuation<CopyHold, Never>) in
            let now = state.withLock { state -> Bool in
                if state.copies[segment] != nil {
                    state.copies[segment]!.waiters.append(continuation)
                    return false
                }
                if state.writeHolds(segment) {
                    state.copies[segment] = CopySlot(held: false, waiters: [continuation])
                    return false
                }
                state.copies[segment] = CopySlot(held: true)
                return true
            }
            if now { continuation.resume(returning: CopyHold(segment: segment)) }
        }
    }

    /// Ends a copy's hold: the next copy queued on the segment, else the writes waiting for it, go on.
    public func release(_ hold: CopyHold) {
        let (copy, writes) = state.withLock { state -> (CheckedContinuation<CopyHold, Never>?, [(CheckedContinuation<WriteHold, Never>, WriteHold)]) in
            guard var slot = state.copies.removeValue(forKey: hold.segment), slot.held else {
                assertionFailure("release of copy hold on segment \(hold.segment) that is not held")
                return (nil, [])
            }
            if !slot.waiters.isEmpty {
                // New writes were blocked while this slot existed, so none holds the segment.
                assert(!state.writeHolds(hold.segment), "a write entered a segment a copy held")
                let next = slot.waiters.removeFirst()
                state.copies[hold.segment] = slot
                return (next, [])
            }
            return (nil, state.activateUnblockedWrites())
        }
        copy?.resume(returning: hold)
        for (continuation, writeHold) in writes { continuation.resume(returning: writeHold) }
    }

    /// Runs `body` holding `segment` for a copy.
    public func withCopyHold<T, E: Error>(
        segment: UInt64, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws(E) -> T
    ) async throws(E) -> T {
        let hold = await holdForCopy(segment: segment)
        defer { release(hold) }
        return try await body()
    }

    // MARK: Observation (tests)

    /// What the locks hold and who waits, for tests and diagnostics.
    struct Counts: Hashable, Sendable {
        var activeWrites = 0
        var waitingWrites = 0
        var heldCopies = 0
        var waitingCopies = 0
    }

    var counts: Counts {
        state.withLock { state in
            var counts = Counts(activeWrites: state.activeWrites.count, waitingWrites: state.waitingWrites.count)
            for slot in state.copies.values {
                counts.heldCopies += slot.held ? 1 : 0
                counts.waitingCopies += slot.waiters.count
            }
            return counts
        }
    }
}

extension SegmentLocks {
    private struct ActiveWrite {
        var id: UInt64
        var segments: ClosedRange<UInt64>
    }

    private struct WaitingWrite {
        var segments: ClosedRange<UInt64>
        var continuation: CheckedContinuation<WriteHold, Never>
    }

    /// The copies of one segment: the one holding it (`held`) and those queued, first first.
    /// When not held, `waiters[0]` waits for the writes holding the segment to end.
    private struct CopySlot {
        var held: Bool
        var waiters: [CheckedContinuation<CopyHold, Never>] = []
    }

    private struct State {
        var nextWriteID: UInt64 = 1
        var activeWrites: [ActiveWrite] = []
        var waitingWrites: [WaitingWrite] = []
        /// Segments a copy holds or waits for; a segment in here blocks new writes.
        var copies: [UInt64: CopySlot] = [:]

        init() {
            activeWrites.reserveCapacity(64)
        }

        /// Whether a copy holds or waits for any of `segments`.
        func blocksWrite(_ segments: ClosedRange<UInt64>) -> Bool {
            if copies.isEmpty { return false }
            if UInt64(copies.count) <= segments.upperBound - segments.lowerBound {
                return copies.keys.contains { segments.contains($0) }
            }
            return segments.contains { copies[$0] != nil }
        }

        /// Whether an active write holds `segment`.
        func writeHolds(_ segment: UInt64) -> Bool {
            activeWrites.contains { $0.segments.contains(segment) }
        }

        mutating func activateWrite(_ segments: ClosedRange<UInt64>) -> WriteHold {
            let id = nextWriteID
            nextWriteID &+= 1
            if nextWriteID == 0 { nextWriteID = 1 }
            activeWrites.append(ActiveWrite(id: id, segments: segments))
            return WriteHold(id: id, segments: segments)
        }

        /// Gives the segments of `released` that a copy waits for (and no write still holds) to
        /// their first waiting copy.
        mutating func grantWaitingCopies(in released: ClosedRange<UInt64>) -> [(CheckedContinuation<CopyHold, Never>, UInt64)] {
            guard !copies.isEmpty else { return [] }
            let ready = copies.compactMap { segment, slot in
                !slot.held && released.contains(segment) && !writeHolds(segment) ? segment : nil
            }
            var granted: [(CheckedContinuation<CopyHold, Never>, UInt64)] = []
            for segment in ready {
                assert(!copies[segment]!.waiters.isEmpty, "a copy slot that is neither held nor waited for")
                copies[segment]!.held = true
                granted.append((copies[segment]!.waiters.removeFirst(), segment))
            }
            return granted
        }

        /// Activates the waiting writes no copy blocks any more, in arrival order.
        mutating func activateUnblockedWrites() -> [(CheckedContinuation<WriteHold, Never>, WriteHold)] {
            guard !waitingWrites.isEmpty else { return [] }
            var activated: [(CheckedContinuation<WriteHold, Never>, WriteHold)] = []
            var stillWaiting: [WaitingWrite] = []
            for waiting in waitingWrites {
                if blocksWrite(waiting.segments) {
                    stillWaiting.append(waiting)
                } else {
                    activated.append((waiting.continuation, activateWrite(waiting.segments)))
                }
            }
            waitingWrites = stillWaiting
            return activated
        }
    }
}
