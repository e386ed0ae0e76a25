import NIOCore

/// Changed Namespace List, log page 04h (NVMe 2.0 base spec §5.16.1.5, Figure 210): 4096 bytes
/// holding up to 1024 u32 NSIDs whose Identify Namespace data changed since the last read, the rest
/// zero. When more than 1024 changed, the first entry is 0xFFFFFFFF and the rest zero.
public struct ChangedNamespaceList: Hashable, Sendable {
    /// Changed NSIDs. More than 1024 encodes as the overflow marker; a decoded overflowed list is
    /// `[0xFFFFFFFF]`.
    public var namespaceIDs: [UInt32]

    public static let encodedSize = 4096
    public static let maximumCount = 1024
    /// First-entry value meaning "more than 1024 namespaces changed".
    public static let overflowMarker: UInt32 = 0xFFFF_FFFF

    public init(namespaceIDs: [UInt32] = []) {
        self.namespaceIDs = namespaceIDs
    }

    /// True when the list is (or encodes as) the overflow form.
    public var isOverflow: Bool {
        namespaceIDs.count > Self.maximumCount || namespaceIDs.first == Self.overflowMarker
    }

    /// Writes exactly 4096 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        NamespaceIDPage.encode(isOverflow ? [Self.overflowMarker] : namespaceIDs[...], into: &buffer)
    }

    /// Reads exactly 4096 bytes (the list ends at the first zero); throws `.truncated` if fewer are
    /// readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        let ids = try NamespaceIDPage.decode(from: &buffer, name: "Changed Namespace List") { $0.count == 1 && $0[0] == Self.overflowMarker }
        self.namespaceIDs = ids
    }
}
