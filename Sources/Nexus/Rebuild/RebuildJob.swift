#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import Synchronization

/// One rebuild: copies segments from a healthy `source` child to a `destination` child, either
/// every allocated segment (``RebuildKind/full``) or the segments of the destination's dirty log
/// (``RebuildKind/partial(segments:)``).
///
/// Correct under concurrent host writes when the nexus sends every host write to the destination
/// too (it is a writer while it rebuilds) and holds ``SegmentLocks`` for it: each copy holds its
/// segment exclusively from before its source read until its destination write completed, so a
/// copy either reads the source after a host write to the segment landed everywhere, or lands on
/// the destination before that write starts — never old source data over newer host data.
///
/// Up to ``RebuildLimits/concurrency`` segments are in flight; with ``RebuildLimits/bytesPerSecond``
/// each segment first waits for its bytes in a token bucket (before taking its hold, so a
/// throttled copy never blocks host writes). The first failed source read or destination write
/// ends the job as failed (segments in flight finish, no new one starts); the nexus decides what
/// to fault. On success the destination is flushed before the job reports completion.
///
/// ``progress`` may be read at any time from any task; ``cancel()`` too.
public final class RebuildJob: Sendable {
    public let id: UUID
    /// What the job copies (a partial job's segments sorted and without duplicates).
    public let kind: RebuildKind
    public let source: any ChildDevice
    public let destination: any ChildDevice
    public let limits: RebuildLimits
    /// The holds shared with the nexus's host writes; their geometry is the job's.
    public let locks: SegmentLocks

    private let origin = ContinuousClock.now
    private let state: Mutex<State>

    /// The segment layout copied: the locks' geometry (the nexus's block count).
    public var geometry: SegmentGeometry { locks.geometry }

    /// Checks that the children, the limits and the locks agree on the geometry, and that a
    /// partial job's segments exist.
    public init(
        id: UUID = UUID(), kind: RebuildKind, source: any ChildDevice, destination: any ChildDevice,
        limits: RebuildLimits, locks: SegmentLocks
    ) throws(RebuildJobError) {
        let geometry = locks.geometry
        guard limits.segmentBytes == geometry.segmentBytes else {
            throw .segmentSizeMismatch(limits: limits.segmentBytes, locks: geometry.segmentBytes)
        }
        for child in [source, destination] {
            guard child.blockSize == geometry.blockSize else {
                throw .blockSizeMismatch(uri: child.uri, blockSize: child.blockSize, expected: geometry.blockSize)
            }
            guard child.blockCount >= geometry.blockCount else {
                throw .tooSmall(uri: child.uri, blockCount: child.blockCount, needed: geometry.blockCount)
            }
        }
        let normalized: RebuildKind
        let total: UInt64
        switch kind {
        case .full:
            normalized = .full
            total = geometry.segmentCount
        case .partial(let segments):
            let sorted = Array(Set(segments)).sorted()
            if let last = sorted.last, last >= geometry.segmentCount {
                throw .segmentOutOfRange(last, segmentCount: geometry.segmentCount)
            }
            normalized = .partial(segments: sorted)
            total = UInt64(sorted.count)
        }
        self.id = id
        self.kind = normalized
        self.source = source
        self.destination = destination
        self.limits = limits
        self.locks = locks
        let progress = RebuildProgress(id: id, source: source.uri, destination: destination.uri, kind: normalized,
                                       state: .pending, segmentBytes: geometry.segmentBytes, totalSegments: total)
        let bucket = limits.bytesPerSecond.map {
            TokenBucket(bytesPerSecond: $0, capacity: UInt64(limits.segmentBytes), now: .zero)
        }
        self.state = Mutex(State(progress: progress, bucket: bucket))
    }

    /// A snapshot of the job.
    public var progress: RebuildProgress {
        state.withLock { $0.progress }
    }

    /// Runs the job to its end and returns how it ended. Cancelling the calling task cancels
    /// the job. A second call (or a call after ``cancel()``) waits for / returns the same outcome.
    public func run() async -> RebuildOutcome {
        enum Start {
            case running(Task<RebuildOutcome, Never>)
            case finished(RebuildOutcome)
        }
        let started = state.withLock { state -> Start in
            if let task = state.task { return .running(task) }
            switch state.progress.state {
            case .pending:
                state.progress.state = .running
                state.progress.startedAt = Date()
                let task = Task { await self.execute() }
                state.task = task
                return .running(task)
            case .cancelled:
                return .finished(.cancelled)
            case .running, .completed, .failed:
                preconditionFailure("rebuild job \(id) is \(state.progress.state) without a task")
            }
        }
        switch started {
        case .finished(let outcome):
            return outcome
        case .running(let task):
            return await withTaskCancellationHandler {
                await task.value
            } onCancel: {
                task.cancel()
            }
        }
    }

    /// Stops the job: no new segment starts, segments in flight finish, ``run()`` returns
    /// ``RebuildOutcome/cancelled``. A job not started yet never runs. No effect once finished.
    public func cancel() {
        let task = state.withLock { state -> Task<RebuildOutcome, Never>? in
            if case .pending = state.progress.state {
                state.progress.state = .cancelled
                state.progress.finishedAt = Date()
                return nil
            }
            return state.task
        }
        task?.cancel()
    }

    // MARK: Running

    private func execute() async -> RebuildOutcome {
        let outcome = await copyAll()
        state.withLock { state in
            switch outcome {
            case .completed: state.progress.state = .completed
            case .failed(let failure): state.progress.state = .failed(failure)
            case .cancelled: state.progress.state = .cancelled
            }
            state.progress.finishedAt = Date()
        }
        return outcome
    }

    private func copyAll() async -> RebuildOutcome {
        let geometry = self.geometry
        let plan: [ClosedRange<UInt64>]
        switch kind {
        case .full:
            let allocated: [Range<UInt64>]?
            do {
                allocated = try await source.allocatedRanges()
            } catch {
                return .failed(RebuildFailure(side: .source, error: error))
            }
            if let allocated {
                plan = Self.segmentSpans(covering: allocated, geometry: geometry)
            } else {
                plan = geometry.segmentCount == 0 ? [] : [0...(geometry.segmentCount - 1)]
            }
            let planned = plan.reduce(UInt64(0)) { $0 + ($1.upperBound - $1.lowerBound + 1) }
            state.withLock { $0.progress.segmentsSkipped = geometry.segmentCount - planned }
        case .partial(let segments):
            plan = Self.spans(ofSorted: segments)
        }
        if Task.isCancelled { return .cancelled }

        var failure: RebuildFailure?
        var cancelled = false
        await withTaskGroup(of: SegmentResult.self) { group in
            var segments = plan.lazy.flatMap { $0 }.makeIterator()
            for _ in 0..<limits.concurrency {
                guard let segment = segments.next() else { break }
                group.addTask { await self.copy(segment: segment) }
            }
            while let result = await group.next() {
                switch result {
                case .copied: break
                case .cancelled: cancelled = true
                case .failed(let segmentFailure):
                    if failure == nil { failure = segmentFailure }
                    group.cancelAll()
                }
                guard failure == nil, !cancelled else { continue }
                if Task.isCancelled {
                    cancelled = true
                } else if let segment = segments.next() {
                    group.addTask { await self.copy(segment: segment) }
                }
            }
            // Every segment handed out and copied, unless stopped.
            assert(failure != nil || cancelled || segments.next() == nil)
        }
        if let failure { return .failed(failure) }
        if cancelled { return .cancelled }
        do {
            try await destination.flush()
        } catch {
            return .failed(RebuildFailure(side: .destination, error: error))
        }
        return .completed
    }

    private enum SegmentResult: Sendable {
        case copied
        case cancelled
        case failed(RebuildFailure)
    }

    /// Copies one segment under its exclusive hold.
    private func copy(segment: UInt64) async -> SegmentResult {
        let blocks = geometry.blocks(of: segment)
        let byteCount = UInt64(blocks.count) * UInt64(geometry.blockSize)
        let delay = state.withLock { state -> Duration in
            guard state.bucket != nil else { return .zero }
            return state.bucket!.take(byteCount, now: origin.duration(to: .now))
        }
        if delay > .zero {
            do {
                try await Task.sleep(for: delay)
            } catch {
                return .cancelled
            }
        }
        guard !Task.isCancelled else { return .cancelled }
        let hold = await locks.holdForCopy(segment: segment)
        defer { locks.release(hold) }
        guard !Task.isCancelled else { return .cancelled }
        // Once read, the segment is written even if the job is cancelled meanwhile.
        let data: ByteBuffer
        do {
            data = try await source.read(lba: blocks.lowerBound, blocks: UInt32(blocks.count))
        } catch {
            return .failed(RebuildFailure(side: .source, error: error, segment: segment))
        }
        guard data.readableBytes == Int(byteCount) else {
            return .failed(RebuildFailure(
                side: .source, error: .invalidRequest("read of \(blocks.count) blocks returned \(data.readableBytes) bytes"),
                segment: segment))
        }
        do {
            try await destination.write(lba: blocks.lowerBound, data: data, fua: false)
        } catch {
            return .failed(RebuildFailure(side: .destination, error: error, segment: segment))
        }
        state.withLock { state in
            state.progress.segmentsCopied += 1
            state.progress.bytesCopied += byteCount
        }
        return .copied
    }

    // MARK: Planning

    /// The segments touched by the block ranges (clamped to the device), as ascending disjoint
    /// spans (adjacent and overlapping spans merged).
    static func segmentSpans(covering ranges: [Range<UInt64>], geometry: SegmentGeometry) -> [ClosedRange<UInt64>] {
        var spans: [ClosedRange<UInt64>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            let clamped = range.clamped(to: 0..<geometry.blockCount)
            guard let segments = geometry.segments(blocks: clamped) else { continue }
            if let last = spans.last, segments.lowerBound <= last.upperBound + 1 {
                spans[spans.count - 1] = last.lowerBound...max(last.upperBound, segments.upperBound)
            } else {
                spans.append(segments)
            }
        }
        return spans
    }

    /// Runs of consecutive indexes in a sorted, duplicate-free list.
    static func spans(ofSorted segments: [UInt64]) -> [ClosedRange<UInt64>] {
        var spans: [ClosedRange<UInt64>] = []
        for segment in segments {
            if let last = spans.last, segment == last.upperBound + 1 {
                spans[spans.count - 1] = last.lowerBound...segment
            } else {
                spans.append(segment...segment)
            }
        }
        return spans
    }

    private struct State {
        var progress: RebuildProgress
        var bucket: TokenBucket?
        var task: Task<RebuildOutcome, Never>?
    }
}

/// Why a ``RebuildJob`` cannot be set up: the nexus passed children, limits or segments that do
/// not fit together (a bug, not a fault of a child).
public enum RebuildJobError: Error, Hashable, Sendable, CustomStringConvertible {
    /// ``RebuildLimits/segmentBytes`` differs from the ``SegmentLocks`` geometry.
    case segmentSizeMismatch(limits: Int, locks: Int)
    /// A child's block size differs from the geometry's.
    case blockSizeMismatch(uri: String, blockSize: Int, expected: Int)
    /// A child has fewer blocks than the geometry covers.
    case tooSmall(uri: String, blockCount: UInt64, needed: UInt64)
    /// A partial rebuild names a segment beyond the device.
    case segmentOutOfRange(UInt64, segmentCount: UInt64)

    public var description: String {
        switch self {
        case .segmentSizeMismatch(let limits, let locks):
            "rebuild segment size \(limits) B differs from the segment locks' \(locks) B"
        case .blockSizeMismatch(let uri, let blockSize, let expected):
            "child \(uri) has \(blockSize) B blocks, expected \(expected) B"
        case .tooSmall(let uri, let blockCount, let needed):
            "child \(uri) has \(blockCount) blocks, the rebuild covers \(needed)"
        case .segmentOutOfRange(let segment, let count):
            "segment \(segment) beyond the device's \(count) segments"
        }
    }
}
