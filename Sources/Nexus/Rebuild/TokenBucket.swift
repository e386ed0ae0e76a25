/// A token bucket over bytes: the rate limit of a rebuild job. Pure arithmetic on a caller's
/// time line (a `Duration` since some origin), so the math is testable without a clock.
///
/// The bucket holds at most `capacity` bytes of credit and refills at `bytesPerSecond`. A take
/// always succeeds at once on the books — the credit may go negative — and returns how long the
/// caller must wait before moving the bytes: the time the refill needs to pay the debt. So takes
/// larger than the capacity work, callers are served in the order they took, and the bytes
/// released by time `t` never exceed `capacity + bytesPerSecond * (t - start)`.
struct TokenBucket: Sendable {
    let bytesPerSecond: Double
    let capacity: Double
    /// Credit in bytes at `updated`; negative when takes ran ahead of the refill.
    private(set) var tokens: Double
    private(set) var updated: Duration

    /// A full bucket at `now`.
    init(bytesPerSecond: UInt64, capacity: UInt64, now: Duration) {
        precondition(bytesPerSecond > 0 && capacity > 0, "token bucket needs a positive rate and capacity")
        self.bytesPerSecond = Double(bytesPerSecond)
        self.capacity = Double(capacity)
        self.tokens = Double(capacity)
        self.updated = now
    }

    /// Debits `bytes` at `now`; returns the wait before they may be moved (zero when the credit covers them).
    mutating func take(_ bytes: UInt64, now: Duration) -> Duration {
        if now > updated {
            tokens = min(capacity, tokens + Self.seconds(now - updated) * bytesPerSecond)
            updated = now
        }
        tokens -= Double(bytes)
        // The books are at `updated`, later than `now` when this caller read the time before
        // another caller's take: wait for that moment too.
        let lag = now < updated ? updated - now : .zero
        guard tokens < 0 else { return lag }
        return lag + .nanoseconds(Int64((-tokens / bytesPerSecond * 1e9).rounded(.up)))
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
