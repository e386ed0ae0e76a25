import NIOCore

/// The 4096-byte page of little-endian namespace IDs ended by a zero entry that both the Active
/// Namespace ID list (Identify CNS 02h) and the Changed Namespace List log page (LID 04h) use
/// (NVMe base spec 2.0 Figures 277 and 209).
enum NamespaceIDPage {
    static let encodedSize = 4096

    /// Writes `ids` and zero-fills the rest of the page.
    static func encode(_ ids: some Collection<UInt32>, into buffer: inout ByteBuffer) {
        for nsid in ids { buffer.writeInteger(nsid, endianness: .little) }
        buffer.writeZeros(encodedSize - 4 * ids.count)
    }

    /// Reads a whole page and returns the IDs before the first zero; `stop` may end the list early.
    static func decode(from buffer: inout ByteBuffer, name: String,
                       stop: ([UInt32]) -> Bool = { _ in false }) throws(NVMeWireError) -> [UInt32] {
        guard var page = buffer.readSlice(length: encodedSize) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "\(name) needs 4096 bytes, have \(buffer.readableBytes)")
        }
        var ids: [UInt32] = []
        while let nsid = page.readInteger(endianness: .little, as: UInt32.self), nsid != 0 {
            ids.append(nsid)
            if stop(ids) { break }
        }
        return ids
    }
}
