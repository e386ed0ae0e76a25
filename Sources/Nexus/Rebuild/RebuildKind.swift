/// What a rebuild copies.
public enum RebuildKind: Hashable, Sendable, CustomStringConvertible {
    /// Every segment, except those the source reports as unallocated (``ChildDevice/allocatedRanges()``),
    /// which are not written at all: the destination must read zeroes there (a new replica).
    case full
    /// Only these segments (the child's ``RebuildLog``): a child that came back after missing writes.
    case partial(segments: [UInt64])

    public var description: String {
        switch self {
        case .full: "full"
        case .partial(let segments): "partial (\(segments.count) segments)"
        }
    }
}
