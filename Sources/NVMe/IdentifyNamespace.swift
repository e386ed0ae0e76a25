import NIOCore

/// One LBA Format Data Structure of Identify Namespace (NVMe 2.0 NVM Command Set spec §4.1.5.1,
/// Figure 116): 4 bytes {MS u16, LBADS u8, RP u8 b1:0}.
public struct LBAFormat: Hashable, Sendable {
    /// Metadata bytes per logical block (0 = none).
    public var metadataSize: UInt16
    /// LBA data size as a power of two: 9 = 512 bytes, 12 = 4 KiB (0 = format not supported).
    public var lbaDataSizeShift: UInt8
    /// Relative Performance (b1:0; 0 = best).
    public var relativePerformance: UInt8

    public static let encodedSize = 4

    public init(metadataSize: UInt16 = 0, lbaDataSizeShift: UInt8, relativePerformance: UInt8 = 0) {
        self.metadataSize = metadataSize
        self.lbaDataSizeShift = lbaDataSizeShift
        self.relativePerformance = relativePerformance
    }

    /// Logical block size in bytes (1 << LBADS; 0 when LBADS is 0).
    public var dataSize: Int { lbaDataSizeShift == 0 ? 0 : 1 << Int(lbaDataSizeShift) }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(metadataSize, endianness: .little)
        buffer.writeInteger(lbaDataSizeShift, endianness: .little)
        buffer.writeInteger(relativePerformance, endianness: .little)
    }

    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "LBA format needs 4 bytes, have \(buffer.readableBytes)")
        }
        metadataSize = buffer.readInteger(endianness: .little, as: UInt16.self)!
        lbaDataSizeShift = buffer.readInteger(endianness: .little, as: UInt8.self)!
        relativePerformance = buffer.readInteger(endianness: .little, as: UInt8.self)!
    }
}

/// Identify Namespace data structure for the NVM command set, CNS 00h (NVMe 2.0 NVM Command Set
/// spec §4.1.5.1, Figure 114; base spec §5.17.2.1). 4096 bytes; unmodelled fields are zero.
///
/// An inactive namespace is reported as all zeros (NCAP 0). NLBAF is not stored: it is
/// `lbaFormats.count - 1`, and decoding returns NLBAF+1 formats (at most 64).
public struct IdentifyNamespace: Hashable, Sendable {
    /// Byte 0: Namespace Size (logical blocks).
    public var nsze: UInt64
    /// Byte 8: Namespace Capacity (logical blocks); 0 ⇒ Linux treats the namespace as gone.
    public var ncap: UInt64
    /// Byte 16: Namespace Utilization (logical blocks).
    public var nuse: UInt64
    /// Byte 24: Namespace Features.
    public var nsfeat: UInt8
    /// Byte 26: Formatted LBA Size (b3:0 format index low bits, b4 metadata at end of LBA, b6:5 index high bits).
    public var flbas: UInt8
    /// Byte 27: Metadata Capabilities.
    public var mc: UInt8
    /// Byte 28: End-to-end Data Protection Capabilities.
    public var dpc: UInt8
    /// Byte 29: End-to-end Data Protection Type Settings.
    public var dps: UInt8
    /// Byte 30: Namespace Multi-path I/O and Sharing Capabilities (b0 shared).
    public var nmic: UInt8
    /// Byte 31: Reservation Capabilities (b0 PTPL, b1..b6 types, b7 IEKEY semantics).
    public var rescap: UInt8
    /// Byte 32: Format Progress Indicator.
    public var fpi: UInt8
    /// Byte 33: Deallocate Logical Block Features.
    public var dlfeat: UInt8
    /// Byte 34: Namespace Atomic Write Unit Normal (0's based).
    public var nawun: UInt16
    /// Byte 36: Namespace Atomic Write Unit Power Fail (0's based).
    public var nawupf: UInt16
    /// Byte 38: Namespace Atomic Compare & Write Unit (0's based).
    public var nacwu: UInt16
    /// Byte 40: Namespace Atomic Boundary Size Normal.
    public var nabsn: UInt16
    /// Byte 42: Namespace Atomic Boundary Offset.
    public var nabo: UInt16
    /// Byte 44: Namespace Atomic Boundary Size Power Fail.
    public var nabspf: UInt16
    /// Byte 46: Namespace Optimal I/O Boundary.
    public var noiob: UInt16
    /// Bytes 48..63: NVM Capacity in bytes. A 128-bit field; only the low 64 bits are modelled
    /// (the high half is written as 0; decoding saturates to `UInt64.max` if it is non-zero).
    public var nvmcap: UInt64
    /// Byte 92: ANA Group Identifier (≠ 0 when ANA is reported; same on every path).
    public var anagrpid: UInt32
    /// Byte 99: Namespace Attributes (b0 write protected).
    public var nsattr: UInt8
    /// Byte 100: NVM Set Identifier.
    public var nvmsetid: UInt16
    /// Byte 102: Endurance Group Identifier.
    public var endgid: UInt16
    /// Bytes 104..119: Namespace Globally Unique Identifier.
    public var nguid: NGUID
    /// Bytes 120..127: IEEE Extended Unique Identifier.
    public var eui64: EUI64
    /// Bytes 128..383: LBA formats (1...64 entries; entry `i` at 128 + 4·i).
    public var lbaFormats: [LBAFormat]

    public static let encodedSize = 4096
    public static let maximumLBAFormats = 64

    public init(
        nsze: UInt64 = 0, ncap: UInt64 = 0, nuse: UInt64 = 0, nsfeat: UInt8 = 0, flbas: UInt8 = 0,
        mc: UInt8 = 0, dpc: UInt8 = 0, dps: UInt8 = 0, nmic: UInt8 = 0, rescap: UInt8 = 0, fpi: UInt8 = 0,
        dlfeat: UInt8 = 0, nawun: UInt16 = 0, nawupf: UInt16 = 0, nacwu: UInt16 = 0, nabsn: UInt16 = 0,
        nabo: UInt16 = 0, nabspf: UInt16 = 0, noiob: UInt16 = 0, nvmcap: UInt64 = 0, anagrpid: UInt32 = 0,
        nsattr: UInt8 = 0, nvmsetid: UInt16 = 0, endgid: UInt16 = 0, nguid: NGUID = .zero, eui64: EUI64 = .zero,
        lbaFormats: [LBAFormat] = [LBAFormat(lbaDataSizeShift: 9)]
    ) {
        precondition(!lbaFormats.isEmpty && lbaFormats.count <= Self.maximumLBAFormats, "1...64 LBA formats")
        self.nsze = nsze
        self.ncap = ncap
        self.nuse = nuse
        self.nsfeat = nsfeat
        self.flbas = flbas
        self.mc = mc
        self.dpc = dpc
        self.dps = dps
        self.nmic = nmic
        self.rescap = rescap
        self.fpi = fpi
        self.dlfeat = dlfeat
        self.nawun = nawun
        self.nawupf = nawupf
        self.nacwu = nacwu
        self.nabsn = nabsn
        self.nabo = nabo
        self.nabspf = nabspf
        self.noiob = noiob
        self.nvmcap = nvmcap
        self.anagrpid = anagrpid
        self.nsattr = nsattr
        self.nvmsetid = nvmsetid
        self.endgid = endgid
        self.nguid = nguid
        self.eui64 = eui64
        self.lbaFormats = lbaFormats
    }

    /// Byte 25: Number of LBA Formats, 0's based (`lbaFormats.count - 1`).
    public var nlbaf: UInt8 { UInt8(clamping: max(lbaFormats.count, 1) - 1) }

    /// The LBA format in use (index from FLBAS b3:0 and b6:5), or nil if out of range.
    public var formattedLBAFormat: LBAFormat? {
        let index = Int(flbas & 0x0F) | Int((flbas >> 5) & 0x03) << 4
        return index < lbaFormats.count ? lbaFormats[index] : nil
    }

    /// Writes exactly 4096 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        let base = buffer.writerIndex
        buffer.writeZeros(Self.encodedSize)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            buffer.setInteger(value, at: base + offset, endianness: .little)
        }
        put(nsze, 0)
        put(ncap, 8)
        put(nuse, 16)
        put(nsfeat, 24)
        put(nlbaf, 25)
        put(flbas, 26)
        put(mc, 27)
        put(dpc, 28)
        put(dps, 29)
        put(nmic, 30)
        put(rescap, 31)
        put(fpi, 32)
        put(dlfeat, 33)
        put(nawun, 34)
        put(nawupf, 36)
        put(nacwu, 38)
        put(nabsn, 40)
        put(nabo, 42)
        put(nabspf, 44)
        put(noiob, 46)
        put(nvmcap, 48)  // high 64 bits (56..63) stay zero
        put(anagrpid, 92)
        put(nsattr, 99)
        put(nvmsetid, 100)
        put(endgid, 102)
        buffer.setBytes(nguid.bytes, at: base + 104)
        buffer.setBytes(eui64.bytes, at: base + 120)
        for (index, format) in lbaFormats.prefix(Self.maximumLBAFormats).enumerated() {
            let offset = 128 + LBAFormat.encodedSize * index
            put(format.metadataSize, offset)
            put(format.lbaDataSizeShift, offset + 2)
            put(format.relativePerformance, offset + 3)
        }
    }

    /// Reads exactly 4096 bytes; throws `.truncated` if fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard let page = buffer.readSlice(length: Self.encodedSize) else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Identify Namespace data needs 4096 bytes, have \(buffer.readableBytes)")
        }
        func get<T: FixedWidthInteger>(_ offset: Int, as type: T.Type = T.self) -> T {
            page.getInteger(at: offset, endianness: .little, as: T.self)!
        }
        nsze = get(0)
        ncap = get(8)
        nuse = get(16)
        nsfeat = get(24)
        let nlbaf: UInt8 = get(25)
        flbas = get(26)
        mc = get(27)
        dpc = get(28)
        dps = get(29)
        nmic = get(30)
        rescap = get(31)
        fpi = get(32)
        dlfeat = get(33)
        nawun = get(34)
        nawupf = get(36)
        nacwu = get(38)
        nabsn = get(40)
        nabo = get(42)
        nabspf = get(44)
        noiob = get(46)
        let nvmcapHigh: UInt64 = get(56)
        nvmcap = nvmcapHigh == 0 ? get(48) : .max
        anagrpid = get(92)
        nsattr = get(99)
        nvmsetid = get(100)
        endgid = get(102)
        nguid = NGUID(page.getBytes(at: 104, length: 16)!)
        eui64 = EUI64(page.getBytes(at: 120, length: 8)!)
        let count = min(Int(nlbaf) + 1, Self.maximumLBAFormats)
        var formats: [LBAFormat] = []
        formats.reserveCapacity(count)
        for index in 0..<count {
            let offset = 128 + LBAFormat.encodedSize * index
            formats.append(LBAFormat(
                metadataSize: get(offset), lbaDataSizeShift: get(offset + 2), relativePerformance: get(offset + 3)))
        }
        lbaFormats = formats
    }
}
