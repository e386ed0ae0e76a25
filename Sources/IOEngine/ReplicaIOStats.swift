import Synchronization

/// Read/write counters and latency histograms of one replica, as the NVMe/TCP target sees its
/// I/O (``MeteredBlockDevice``): plain relaxed atomics on the I/O path, rendered into Prometheus
/// text only when `/metrics` is scraped (never a metrics-library call per I/O).
public final class ReplicaIOStats: Sendable {
    /// Histogram bucket upper bounds in seconds (25 µs … 4 s), Prometheus `le` labels.
    public static let bucketBounds: [Double] = [
        0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 4,
    ]
    private static let boundsNanoseconds: [UInt64] = bucketBounds.map { UInt64($0 * 1e9) }

    /// One direction's counters.
    public final class Direction: Sendable {
        let operations = Atomic<UInt64>(0)
        let bytes = Atomic<UInt64>(0)
        let errors = Atomic<UInt64>(0)
        let latencySumNanoseconds = Atomic<UInt64>(0)
        /// Non-cumulative counts per bucket; the last slot is +Inf.
        let buckets: [Counter]

        init() {
            buckets = (0...ReplicaIOStats.bucketBounds.count).map { _ in Counter() }
        }

        /// Records one completed I/O.
        func record(bytes count: Int, nanoseconds: UInt64, failed: Bool) {
            operations.wrappingAdd(1, ordering: .relaxed)
            if failed {
                errors.wrappingAdd(1, ordering: .relaxed)
            } else {
                bytes.wrappingAdd(UInt64(count), ordering: .relaxed)
            }
            latencySumNanoseconds.wrappingAdd(nanoseconds, ordering: .relaxed)
            var index = 0
            let bounds = ReplicaIOStats.boundsNanoseconds
            while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
            buckets[index].value.wrappingAdd(1, ordering: .relaxed)
        }

        /// A consistent-enough copy for rendering (each counter read once).
        public var snapshot: Snapshot {
            Snapshot(operations: operations.load(ordering: .relaxed), bytes: bytes.load(ordering: .relaxed),
                     errors: errors.load(ordering: .relaxed),
                     latencySumSeconds: Double(latencySumNanoseconds.load(ordering: .relaxed)) / 1e9,
                     bucketCounts: buckets.map { $0.value.load(ordering: .relaxed) })
        }
    }

    /// One atomic counter (arrays of `Atomic` are not allowed).
    final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    /// Counter values at one instant.
    public struct Snapshot: Sendable, Hashable {
        public var operations: UInt64
        public var bytes: UInt64
        public var errors: UInt64
        public var latencySumSeconds: Double
        /// Per bucket (not cumulative), the last one +Inf.
        public var bucketCounts: [UInt64]
    }

    public let reads = Direction()
    public let writes = Direction()

    public init() {}
}
