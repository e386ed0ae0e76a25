import NIOCore
import Synchronization

/// A ``BlockDevice`` wrapper for tests that injects latency and errors, reconfigurable at
/// run time from any thread.
///
/// - Latency: ``addLatency(_:to:lbas:)`` delays matching operations by scheduling them on the
///   caller's event loop (`scheduleTask`); no thread ever sleeps. Restricting latency to an
///   LBA range makes one I/O slow while others proceed.
/// - Errors: ``injectFailure(_:into:lbas:trigger:)`` fails matching operations always, for the
///   next N calls, or with a probability drawn from a seeded generator (deterministic).
///   A failed operation never reaches the wrapped device.
///
/// Calls are validated (range, alignment, closed) before any rule is consulted, so invalid
/// calls do not use up failure budgets.
public final class FaultInjectingBlockDevice: BlockDevice {
    /// The device every call is forwarded to.
    public let wrapped: any BlockDevice

    public var blockSize: Int { wrapped.blockSize }
    public var blockCount: UInt64 { wrapped.blockCount }
    public var hasVolatileWriteCache: Bool { wrapped.hasVolatileWriteCache }

    private let geometryValue: BlockDeviceGeometry
    private let state: Mutex<State>

    /// Wraps `device`, initially injecting nothing. `seed` seeds the generator used by
    /// ``FaultTrigger/probability(_:)`` rules.
    public init(wrapping device: any BlockDevice, seed: UInt64 = 0) {
        self.wrapped = device
        self.geometryValue = device.geometry
        self.state = Mutex(State(random: SplitMix64(seed: seed)))
    }

    // MARK: Configuration

    /// Delays every operation in `operations` by `delay`; with `lbas`, only operations whose
    /// block range overlaps `lbas` (flush, having no range, is then never delayed). Rules add
    /// up as a maximum: an operation matching several waits for the longest.
    public func addLatency(_ delay: TimeAmount, to operations: BlockDeviceOperations = .all, lbas: Range<UInt64>? = nil) {
        state.withLock { $0.latencyRules.append(LatencyRule(delay: delay, operations: operations, lbas: lbas)) }
    }

    /// Removes every latency rule.
    public func removeAllLatency() {
        state.withLock { $0.latencyRules.removeAll() }
    }

    /// Makes operations in `operations` (optionally only those overlapping `lbas`) fail with
    /// `error` when `trigger` says so. Rules are consulted in the order they were added; the
    /// first one that fires decides the error.
    public func injectFailure(
        _ error: any Error = BlockDeviceError.injected,
        into operations: BlockDeviceOperations = .io,
        lbas: Range<UInt64>? = nil,
        trigger: FaultTrigger
    ) {
        let remaining: Int?
        if case .nextCalls(let count) = trigger {
            remaining = max(0, count)
        } else {
            remaining = nil
        }
        state.withLock {
            $0.failureRules.append(
                FailureRule(error: error, operations: operations, lbas: lbas, trigger: trigger, remaining: remaining)
            )
        }
    }

    /// Fails the next `count` operations in `operations` with `error`.
    public func failNext(
        _ count: Int,
        of operations: BlockDeviceOperations = .io,
        with error: any Error = BlockDeviceError.injected
    ) {
        injectFailure(error, into: operations, trigger: .nextCalls(count))
    }

    /// Removes every failure rule.
    public func removeAllFailures() {
        state.withLock { $0.failureRules.removeAll() }
    }

    /// Removes every latency and failure rule (counters are kept).
    public func reset() {
        state.withLock { state in
            state.latencyRules.removeAll()
            state.failureRules.removeAll()
        }
    }

    /// How many operations have failed with an injected error so far.
    public var injectedFailureCount: Int {
        state.withLock { $0.injectedFailures }
    }

    /// How many operations have been delayed by a latency rule so far.
    public var delayedOperationCount: Int {
        state.withLock { $0.delayedOperations }
    }

    // MARK: BlockDevice

    public func read(lba: UInt64, blocks: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        do {
            _ = try geometryValue.checkRead(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return perform(.read, lbas: lba..<(lba + UInt64(blocks)), on: eventLoop) { [wrapped] in
            wrapped.read(lba: lba, blocks: blocks, on: eventLoop)
        }
    }

    public func write(lba: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let blocks: UInt64
        do {
            blocks = try geometryValue.checkWrite(lba: lba, byteCount: data.readableBytes)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return perform(.write, lbas: lba..<(lba + blocks), on: eventLoop) { [wrapped] in
            wrapped.write(lba: lba, data: data, fua: fua, on: eventLoop)
        }
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        perform(.flush, lbas: nil, on: eventLoop) { [wrapped] in
            wrapped.flush(on: eventLoop)
        }
    }

    public func writeZeroes(
        lba: UInt64,
        blocks: UInt64,
        deallocate: Bool,
        fua: Bool,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        do {
            try geometryValue.checkRange(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return perform(.writeZeroes, lbas: lba..<(lba + blocks), on: eventLoop) { [wrapped] in
            wrapped.writeZeroes(lba: lba, blocks: blocks, deallocate: deallocate, fua: fua, on: eventLoop)
        }
    }

    public func deallocate(lba: UInt64, blocks: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do {
            try geometryValue.checkRange(lba: lba, blocks: blocks)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return perform(.deallocate, lbas: lba..<(lba + blocks), on: eventLoop) { [wrapped] in
            wrapped.deallocate(lba: lba, blocks: blocks, on: eventLoop)
        }
    }

    /// Closes this wrapper and the wrapped device. Idempotent.
    public func close() throws {
        state.withLock { $0.closed = true }
        try wrapped.close()
    }

    // MARK: Injection

    /// Applies the rules to one validated operation, then forwards it (or fails it), after
    /// the configured delay if any.
    private func perform<T: Sendable>(
        _ operation: BlockDeviceOperations,
        lbas: Range<UInt64>?,
        on eventLoop: any EventLoop,
        _ forward: @escaping @Sendable () -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        let decision = state.withLock { $0.decide(operation, lbas: lbas) }
        switch decision {
        case .closed:
            return eventLoop.makeFailedFuture(BlockDeviceError.closed)
        case .proceed(let delay, let failure):
            guard let delay else {
                if let failure {
                    return eventLoop.makeFailedFuture(failure)
                }
                return forward()
            }
            return eventLoop.flatScheduleTask(in: delay) {
                if let failure { throw failure }
                return forward()
            }.futureResult
        }
    }
}

extension FaultInjectingBlockDevice {
    private struct LatencyRule {
        var delay: TimeAmount
        var operations: BlockDeviceOperations
        var lbas: Range<UInt64>?
    }

    private struct FailureRule {
        var error: any Error
        var operations: BlockDeviceOperations
        var lbas: Range<UInt64>?
        var trigger: FaultTrigger
        /// Calls left to fail, for ``FaultTrigger/nextCalls(_:)``.
        var remaining: Int?
    }

    private enum Decision {
        case closed
        case proceed(delay: TimeAmount?, failure: (any Error)?)
    }

    /// The rules, the generator and the counters, guarded by the mutex.
    private struct State {
        var random: SplitMix64
        var latencyRules: [LatencyRule] = []
        var failureRules: [FailureRule] = []
        var closed = false
        var injectedFailures = 0
        var delayedOperations = 0

        mutating func decide(_ operation: BlockDeviceOperations, lbas: Range<UInt64>?) -> Decision {
            guard !closed else { return .closed }
            var delay: TimeAmount?
            for rule in latencyRules where rule.operations.contains(operation) && Self.matches(rule.lbas, lbas) {
                if rule.delay > .zero, delay.map({ rule.delay > $0 }) ?? true {
                    delay = rule.delay
                }
            }
            if delay != nil {
                delayedOperations += 1
            }
            var failure: (any Error)?
            for index in failureRules.indices {
                let rule = failureRules[index]
                guard rule.operations.contains(operation), Self.matches(rule.lbas, lbas) else { continue }
                let fires: Bool
                switch rule.trigger {
                case .always:
                    fires = true
                case .nextCalls:
                    let remaining = rule.remaining ?? 0
                    fires = remaining > 0
                    if fires {
                        failureRules[index].remaining = remaining - 1
                    }
                case .probability(let probability):
                    fires = Double.random(in: 0..<1, using: &random) < probability
                }
                if fires {
                    failure = rule.error
                    injectedFailures += 1
                    break
                }
            }
            return .proceed(delay: delay, failure: failure)
        }

        /// Whether an operation on `operation` (nil: no LBAs, i.e. flush) falls under a rule
        /// restricted to `rule` (nil: every operation).
        private static func matches(_ rule: Range<UInt64>?, _ operation: Range<UInt64>?) -> Bool {
            guard let rule else { return true }
            guard let operation else { return false }
            return operation.isEmpty ? rule.contains(operation.lowerBound) : rule.overlaps(operation)
        }
    }
}

extension FaultInjectingBlockDevice: AllocationReporting {
    /// Forwards to the wrapped device (no fault rule applies); ``AllocationReportingError/notSupported``
    /// when it cannot tell.
    public func allocatedBlockRanges() throws -> [Range<UInt64>] {
        guard let reporting = wrapped as? any AllocationReporting else { throw AllocationReportingError.notSupported }
        return try reporting.allocatedBlockRanges()
    }
}
