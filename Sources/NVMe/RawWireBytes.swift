/// Little-endian field access on raw bytes, for the fixed-layout structures of the hot path (PDU
/// headers, SQE, CQE, SGL): one capacity/bounds check per structure instead of one per field.
/// NVMe and NVMe/TCP put every multi-byte field little-endian (NVMe base spec 2.0 §1.5).
extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadLittleEndian<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
