/// When a ``FaultInjectingBlockDevice`` failure rule fires for a matching operation.
public enum FaultTrigger: Hashable, Sendable {
    /// Every matching call fails.
    case always
    /// The next `n` matching calls fail; then the rule is used up.
    case nextCalls(Int)
    /// Each matching call fails with this probability (0...1), drawn from the device's seeded
    /// generator, so a given seed and call sequence always fail the same calls.
    case probability(Double)
}
