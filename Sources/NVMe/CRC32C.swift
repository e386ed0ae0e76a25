import CCRC32C
import NIOCore

/// CRC32C (Castagnoli), the NVMe/TCP header and data digest (NVMe/TCP transport spec §3.6.2.6):
/// reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF, sent little-endian.
/// Uses the SSE4.2 `crc32` instruction when the CPU has it, else a slicing-by-8 table.
public enum CRC32C {
    /// CRC32C of `bytes`, continuing from `crc` (0 to start).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        halyard_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    /// CRC32C of the readable bytes of `buffer`.
    @inlinable
    public static func checksum(_ buffer: ByteBuffer, continuing crc: UInt32 = 0) -> UInt32 {
        buffer.withUnsafeReadableBytes { checksum($0, continuing: crc) }
    }

    /// CRC32C of `bytes`.
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        Array(bytes).withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// The portable table implementation, for tests comparing it with the hardware path.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        halyard_crc32c_portable(crc, bytes.baseAddress, bytes.count)
    }

    /// The SSE4.2 implementation, or nil when this CPU lacks it.
    public static func hardwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32? {
        guard hasHardwareSupport else { return nil }
        return halyard_crc32c_hardware(crc, bytes.baseAddress, bytes.count)
    }

    /// Whether the CPU has the SSE4.2 `crc32` instruction.
    public static var hasHardwareSupport: Bool { halyard_crc32c_has_hardware() != 0 }
}
