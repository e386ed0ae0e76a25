/// A key or a half-open range of keys `[start, end)`, compared as bytes (etcd's `key` /
/// `range_end`). `end == nil` means the single key `start`; an empty `end` means every key
/// from `start` on.
public struct KeyRange: Sendable, Hashable, CustomStringConvertible {
    /// The first key of the range (inclusive).
    public var start: [UInt8]
    /// The end of the range (exclusive); nil = only `start`; empty = no upper bound.
    public var end: [UInt8]?

    public init(start: [UInt8], end: [UInt8]?) {
        self.start = start
        self.end = end
    }

    /// Exactly one key.
    public static func key(_ key: String) -> KeyRange { KeyRange(start: Array(key.utf8), end: nil) }

    /// Every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`): `a/` matches `a/x` but not `a0`.
    public static func prefix(_ prefix: String) -> KeyRange {
        let start = Array(prefix.utf8)
        if start.isEmpty { return .all }
        return KeyRange(start: start, end: prefixEnd(start))
    }

    /// Every key (etcd's `key "\0", range_end "\0"` … here `[\0, ∞)`).
    public static let all = KeyRange(start: [0], end: [])

    /// `[from, to)`.
    public static func between(_ from: String, _ to: String) -> KeyRange {
        KeyRange(start: Array(from.utf8), end: Array(to.utf8))
    }

    /// The smallest key greater than every key with this prefix; empty (no bound) when the
    /// prefix is empty or all 0xFF.
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return []  // no upper bound
    }

    /// True when `key` falls in this range.
    public func contains(_ key: [UInt8]) -> Bool {
        guard let end else { return key == start }
        if key.lexicographicallyPrecedes(start) { return false }
        return end.isEmpty || key.lexicographicallyPrecedes(end)
    }

    public var description: String {
        let s = String(decoding: start, as: UTF8.self)
        switch end {
        case nil: return s
        case let e? where e.isEmpty: return "[\(s), ∞)"
        case let e?: return "[\(s), \(String(decoding: e, as: UTF8.self)))"
        }
    }
}
