import NIOCore

/// Asymmetric Namespace Access log page 0Ch (NVMe 2.0 base spec §5.16.1.12, Figures 225/226).
///
/// Layout: a 16-byte header {CHGCNT u64, NGRPS u16, 6 reserved}, then NGRPS group descriptors of
/// 32 + 4·NNSIDS bytes each {ANAGRPID u32, NNSIDS u32, CHGCNT u64, ANAS u8 (b3:0), 15 reserved,
/// NSID[NNSIDS] u32 ascending}. With LSP bit 0 (RGO, "return groups only") set, every NNSIDS is 0
/// and no NSIDs follow: encode with `includeNamespaceIDs: false`.
public struct ANALogPage: Hashable, Sendable {
    /// One ANA Group Descriptor (Figure 226).
    public struct GroupDescriptor: Hashable, Sendable {
        /// ANA Group ID (≠ 0).
        public var anaGroupID: UInt32
        /// Change count of this group's state.
        public var changeCount: UInt64
        /// The group's state through the controller that reports it.
        public var state: ANAState
        /// Member NSIDs; encoded in ascending order.
        public var namespaceIDs: [UInt32]

        public static let headerSize = 32

        public init(anaGroupID: UInt32, changeCount: UInt64 = 0, state: ANAState, namespaceIDs: [UInt32] = []) {
            self.anaGroupID = anaGroupID
            self.changeCount = changeCount
            self.state = state
            self.namespaceIDs = namespaceIDs
        }

        public func encodedSize(includeNamespaceIDs: Bool = true) -> Int {
            Self.headerSize + (includeNamespaceIDs ? 4 * namespaceIDs.count : 0)
        }

        /// Writes 32 bytes, plus 4 per NSID (sorted ascending) when `includeNamespaceIDs`.
        public func encode(into buffer: inout ByteBuffer, includeNamespaceIDs: Bool = true) {
            let ids = includeNamespaceIDs ? namespaceIDs.sorted() : []
            buffer.writeInteger(anaGroupID, endianness: .little)  // 0
            buffer.writeInteger(UInt32(ids.count), endianness: .little)  // 4
            buffer.writeInteger(changeCount, endianness: .little)  // 8
            buffer.writeInteger(state.rawValue, endianness: .little)  // 16
            buffer.writeZeros(15)  // 17..31
            for nsid in ids {
                buffer.writeInteger(nsid, endianness: .little)
            }
        }
    }

    /// Header change count (bytes 0..7).
    public var changeCount: UInt64
    /// Group descriptors, in the order encoded.
    public var groups: [GroupDescriptor]

    public static let headerSize = 16

    public init(changeCount: UInt64 = 0, groups: [GroupDescriptor] = []) {
        self.changeCount = changeCount
        self.groups = groups
    }

    /// Bytes `encode(into:includeNamespaceIDs:)` writes.
    public func encodedSize(includeNamespaceIDs: Bool = true) -> Int {
        groups.reduce(Self.headerSize) { $0 + $1.encodedSize(includeNamespaceIDs: includeNamespaceIDs) }
    }

    /// Writes the header and every descriptor (no padding). `includeNamespaceIDs: false` is the
    /// RGO form (LSP bit 0 set).
    public func encode(into buffer: inout ByteBuffer, includeNamespaceIDs: Bool = true) {
        precondition(groups.count <= Int(UInt16.max), "NGRPS is 16 bits")
        buffer.writeInteger(changeCount, endianness: .little)  // 0
        buffer.writeInteger(UInt16(groups.count), endianness: .little)  // 8
        buffer.writeZeros(6)  // 10..15
        for group in groups {
            group.encode(into: &buffer, includeNamespaceIDs: includeNamespaceIDs)
        }
    }

    /// The bytes a Get Log Page with this LPO and length returns: exactly `length` bytes from
    /// `offset`, zero-padded past the end of the page.
    public func encodeRange(offset: UInt64, length: Int, includeNamespaceIDs: Bool = true) -> ByteBuffer {
        var page = ByteBuffer()
        page.reserveCapacity(encodedSize(includeNamespaceIDs: includeNamespaceIDs))
        encode(into: &page, includeNamespaceIDs: includeNamespaceIDs)
        return GetLogPageCommandFields.window(of: page, offset: offset, length: length)
    }

    /// Reads the header and NGRPS descriptors (bytes after the last descriptor, such as zero
    /// padding, are left unread). Throws `.truncated` when the page is shorter than its counts
    /// say, and `.invalidField` for ANAGRPID 0 or an ANAS value outside 1h/2h/3h/4h/Fh; on error
    /// nothing is consumed.
    public init(decoding input: inout ByteBuffer) throws(NVMeWireError) {
        var buffer = input  // consumed from `input` only on success
        let start = buffer.readerIndex
        guard buffer.readableBytes >= Self.headerSize else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "ANA log header needs 16 bytes, have \(buffer.readableBytes)")
        }
        let changeCount = buffer.readInteger(endianness: .little, as: UInt64.self)!
        let groupCount = Int(buffer.readInteger(endianness: .little, as: UInt16.self)!)
        buffer.moveReaderIndex(forwardBy: 6)
        var groups: [GroupDescriptor] = []
        groups.reserveCapacity(groupCount)
        for index in 0..<groupCount {
            let descriptorOffset = buffer.readerIndex - start
            guard buffer.readableBytes >= GroupDescriptor.headerSize else {
                throw NVMeWireError(
                    .truncated, offset: descriptorOffset + buffer.readableBytes,
                    "ANA group descriptor \(index) needs 32 bytes, have \(buffer.readableBytes)")
            }
            let groupID = buffer.readInteger(endianness: .little, as: UInt32.self)!
            let nsidCount = Int(buffer.readInteger(endianness: .little, as: UInt32.self)!)
            let groupChangeCount = buffer.readInteger(endianness: .little, as: UInt64.self)!
            let rawState = buffer.readInteger(endianness: .little, as: UInt8.self)! & 0x0F
            buffer.moveReaderIndex(forwardBy: 15)
            guard groupID != 0 else {
                throw NVMeWireError(.invalidField, offset: descriptorOffset, "ANA group descriptor \(index) has ANAGRPID 0")
            }
            guard let state = ANAState(rawValue: rawState) else {
                throw NVMeWireError(
                    .invalidField, offset: descriptorOffset + 16,
                    "ANA group \(groupID) has invalid ANA state \(rawState)")
            }
            guard buffer.readableBytes >= 4 * nsidCount else {
                throw NVMeWireError(
                    .truncated, offset: buffer.readerIndex - start + buffer.readableBytes,
                    "ANA group \(groupID) lists \(nsidCount) NSIDs, only \(buffer.readableBytes) bytes left")
            }
            var ids: [UInt32] = []
            ids.reserveCapacity(nsidCount)
            for _ in 0..<nsidCount {
                ids.append(buffer.readInteger(endianness: .little, as: UInt32.self)!)
            }
            groups.append(GroupDescriptor(anaGroupID: groupID, changeCount: groupChangeCount, state: state, namespaceIDs: ids))
        }
        self.changeCount = changeCount
        self.groups = groups
        input = buffer
    }
}
