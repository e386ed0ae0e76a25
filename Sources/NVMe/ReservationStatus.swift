import NIOCore

/// The Reservation Status data structure a Reservation Report returns (NVMe base spec 2.0 §7.5,
/// Figures 577–578 for EDS=1, Figures 575–576 for EDS=0).
///
/// Extended (EDS=1, the only form over fabrics): a 64-byte header {GEN u32 @0, RTYPE u8 @4,
/// REGCTL u16 @5, PTPLS u8 @9}, then one 64-byte Registrant entry per registrant {CNTLID u16 @0,
/// RCSTS u8 @2 (b0: holds the reservation), RKEY u64 @8, HOSTID 16 bytes @16}.
/// Standard (EDS=0): a 24-byte header (same fields), 24-byte entries {CNTLID @0, RCSTS @2,
/// HOSTID u64 @8, RKEY u64 @16}.
///
/// REGCTL counts every registrant even when the structure is truncated to the host's NUMD, so a
/// decoded status may hold fewer entries than `registrantCount`.
public struct ReservationStatus: Hashable, Sendable {
    public struct Registrant: Hashable, Sendable {
        /// Controller ID; FFFFh when the registration belongs to a host rather than one controller
        /// (every dynamic controller of the host shares it).
        public var controllerID: UInt16
        /// RCSTS b0: this registrant holds the reservation (for types 5 and 6: every registrant).
        public var holdsReservation: Bool
        public var key: UInt64
        public var hostID: HostIdentifier

        public init(controllerID: UInt16 = 0xFFFF, holdsReservation: Bool, key: UInt64, hostID: HostIdentifier) {
            self.controllerID = controllerID
            self.holdsReservation = holdsReservation
            self.key = key
            self.hostID = hostID
        }
    }

    /// GEN: incremented on every successful Register, Preempt and Clear.
    public var generation: UInt32
    /// RTYPE as reported; 0 = no reservation.
    public var rawType: UInt8
    /// REGCTL: number of registrants (all of them, not only those encoded).
    public var registrantCount: UInt16
    /// PTPLS b0: Persist Through Power Loss is on.
    public var persistThroughPowerLoss: Bool
    public var registrants: [Registrant]

    public static let extendedHeaderSize = 64
    public static let extendedEntrySize = 64
    public static let standardHeaderSize = 24
    public static let standardEntrySize = 24

    public init(generation: UInt32, type: ReservationType?, persistThroughPowerLoss: Bool, registrants: [Registrant]) {
        self.generation = generation
        self.rawType = type?.rawValue ?? 0
        self.registrantCount = UInt16(clamping: registrants.count)
        self.persistThroughPowerLoss = persistThroughPowerLoss
        self.registrants = registrants
    }

    /// The held reservation's type; nil when there is none (or RTYPE is not 1…6).
    public var type: ReservationType? { ReservationType(rawValue: rawType) }

    /// Size of the whole extended structure.
    public var extendedSize: Int { Self.extendedHeaderSize + registrants.count * Self.extendedEntrySize }

    /// Writes the extended structure, truncated to `length` bytes (a host's NUMD), so exactly
    /// `min(length, extendedSize)` bytes.
    public func encodeExtended(into buffer: inout ByteBuffer, length: Int) {
        var full = ByteBuffer()
        full.reserveCapacity(extendedSize)
        writeHeader(into: &full, size: Self.extendedHeaderSize)
        for r in registrants {
            full.writeInteger(r.controllerID, endianness: .little)
            full.writeInteger(UInt8(r.holdsReservation ? 1 : 0))
            full.writeZeros(5)
            full.writeInteger(r.key, endianness: .little)
            r.hostID.encode(into: &full)
            full.writeZeros(32)
        }
        if var prefix = full.readSlice(length: min(max(length, 0), full.readableBytes)) {
            buffer.writeBuffer(&prefix)
        }
    }

    /// Reads an extended structure: the 64-byte header, then as many whole entries as REGCTL
    /// names and the bytes hold. Throws `.truncated` when the header is incomplete.
    public init(decodingExtended buffer: inout ByteBuffer) throws(NVMeWireError) {
        try self.init(decoding: &buffer, headerSize: Self.extendedHeaderSize, entrySize: Self.extendedEntrySize) { entry in
            guard let cntlid = entry.readInteger(endianness: .little, as: UInt16.self),
                  let rcsts = entry.readInteger(as: UInt8.self) else { return nil }
            entry.moveReaderIndex(forwardBy: 5)
            guard let key = entry.readInteger(endianness: .little, as: UInt64.self),
                  let host = try? HostIdentifier(decoding: &entry) else { return nil }
            return Registrant(controllerID: cntlid, holdsReservation: rcsts & 1 != 0, key: key, hostID: host)
        }
    }

    /// Reads a standard (EDS=0) structure. Its 64-bit HOSTID becomes the low 8 bytes of
    /// `hostID` (the high 8 are zero).
    public init(decodingStandard buffer: inout ByteBuffer) throws(NVMeWireError) {
        try self.init(decoding: &buffer, headerSize: Self.standardHeaderSize, entrySize: Self.standardEntrySize) { entry in
            guard let cntlid = entry.readInteger(endianness: .little, as: UInt16.self),
                  let rcsts = entry.readInteger(as: UInt8.self) else { return nil }
            entry.moveReaderIndex(forwardBy: 5)
            guard let host = entry.readInteger(endianness: .little, as: UInt64.self),
                  let key = entry.readInteger(endianness: .little, as: UInt64.self) else { return nil }
            return Registrant(controllerID: cntlid, holdsReservation: rcsts & 1 != 0, key: key, hostID: HostIdentifier(low: host, high: 0))
        }
    }

    private func writeHeader(into buffer: inout ByteBuffer, size: Int) {
        buffer.writeInteger(generation, endianness: .little)
        buffer.writeInteger(rawType)
        buffer.writeInteger(registrantCount, endianness: .little)
        buffer.writeZeros(2)
        buffer.writeInteger(UInt8(persistThroughPowerLoss ? 1 : 0))
        buffer.writeZeros(size - 10)
    }

    private init(decoding buffer: inout ByteBuffer, headerSize: Int, entrySize: Int,
                 entry decodeEntry: (inout ByteBuffer) -> Registrant?) throws(NVMeWireError) {
        guard var header = buffer.readSlice(length: headerSize),
              let generation = header.readInteger(endianness: .little, as: UInt32.self),
              let rawType = header.readInteger(as: UInt8.self),
              let count = header.readInteger(endianness: .little, as: UInt16.self) else {
            throw NVMeWireError(.truncated, offset: buffer.readableBytes, "reservation status header needs \(headerSize) bytes, have \(buffer.readableBytes)")
        }
        header.moveReaderIndex(forwardBy: 2)
        let ptpls = header.readInteger(as: UInt8.self) ?? 0
        var registrants: [Registrant] = []
        while registrants.count < Int(count), var entry = buffer.readSlice(length: entrySize) {
            guard let r = decodeEntry(&entry) else {
                throw NVMeWireError(.truncated, offset: headerSize + registrants.count * entrySize, "registrant entry")
            }
            registrants.append(r)
        }
        self.generation = generation
        self.rawType = rawType
        self.registrantCount = count
        self.persistThroughPowerLoss = ptpls & 1 != 0
        self.registrants = registrants
    }
}
