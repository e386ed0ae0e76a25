import NIOCore

/// Active Namespace ID list, Identify CNS 02h (NVMe 2.0 base spec §5.17.2.2, Figure 274 "Namespace
/// List"): 4096 bytes holding up to 1024 u32 NSIDs greater than the command's NSID, ascending, the
/// rest zero (an NSID of 0 ends the list).
public struct ActiveNamespaceList: Hashable, Sendable {
    /// Ascending, non-zero NSIDs; only the first 1024 are encoded.
    public var namespaceIDs: [UInt32]

    public static let encodedSize = 4096
    public static let maximumCount = 1024

    public init(namespaceIDs: [UInt32] = []) {
        self.namespaceIDs = namespaceIDs
    }

    /// The list a controller returns for Identify CNS 02h with SQE NSID `startingAfter`: the
    /// active NSIDs strictly greater than it, sorted, de-duplicated, at most 1024 of them.
    public init(activeNamespaceIDs: some Sequence<UInt32>, startingAfter nsid: UInt32) {
        let ids = Set(activeNamespaceIDs.filter { $0 > nsid && $0 != 0xFFFF_FFFF })
        self.namespaceIDs = Array(ids.sorted().prefix(Self.maximumCount))
    }

    /// Writes exactly 4096 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        NamespaceIDPage.encode(namespaceIDs.prefix(Self.maximumCount), into: &buffer)
    }

    /// Reads exactly 4096 bytes (stopping the list at the first zero); throws `.truncated` if fewer
    /// are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        let ids = try NamespaceIDPage.decode(from: &buffer, name: "Active Namespace ID list")
        self.namespaceIDs = ids
    }
}
