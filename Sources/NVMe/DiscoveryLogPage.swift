import NIOCore

/// One Discovery Log Page Entry (NVMe over Fabrics 1.1 §5.3, Figure 39; NVMe 2.0 base spec
/// §5.16.1.23, Figure 259): 1024 bytes describing one (subsystem, port) a host may connect to.
public struct DiscoveryLogEntry: Hashable, Sendable {
    /// TRTYPE values (byte 0).
    public struct TransportType: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let rdma = TransportType(rawValue: 1)
        public static let fibreChannel = TransportType(rawValue: 2)
        public static let tcp = TransportType(rawValue: 3)
        public static let loop = TransportType(rawValue: 254)
    }

    /// ADRFAM values (byte 1).
    public struct AddressFamily: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let pci = AddressFamily(rawValue: 0)
        public static let ipv4 = AddressFamily(rawValue: 1)
        public static let ipv6 = AddressFamily(rawValue: 2)
        public static let infiniBand = AddressFamily(rawValue: 3)
        public static let fibreChannel = AddressFamily(rawValue: 4)
    }

    /// SUBTYPE values (byte 2).
    public struct SubsystemType: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// 1: a referral to another discovery service.
        public static let referral = SubsystemType(rawValue: 1)
        /// 2: an NVM subsystem.
        public static let nvmSubsystem = SubsystemType(rawValue: 2)
        /// 3: the discovery subsystem answering this request.
        public static let currentDiscoverySubsystem = SubsystemType(rawValue: 3)
    }

    /// Byte 0: TRTYPE.
    public var transportType: TransportType
    /// Byte 1: ADRFAM.
    public var addressFamily: AddressFamily
    /// Byte 2: SUBTYPE.
    public var subsystemType: SubsystemType
    /// Byte 3: TREQ (b1:0 secure channel: 0 not specified, 1 required, 2 not required; b2 SQ flow
    /// control disable supported).
    public var transportRequirements: UInt8
    /// Byte 4: PORTID.
    public var portID: UInt16
    /// Byte 6: CNTLID (0xFFFF = dynamic controller model).
    public var controllerID: UInt16
    /// Byte 8: ASQSZ, maximum admin submission queue size.
    public var adminMaxSubmissionQueueSize: UInt16
    /// Byte 10: EFLAGS.
    public var entryFlags: UInt16
    /// Bytes 32..63: TRSVCID, ASCII (TCP port, e.g. "4420"), NUL padded.
    public var transportServiceID: String
    /// Bytes 256..511: SUBNQN, NUL padded.
    public var subsystemNQN: String
    /// Bytes 512..767: TRADDR, ASCII address, NUL padded.
    public var transportAddress: String
    /// Bytes 768..1023: TSAS, transport specific. For TCP, byte 0 is SECTYPE (0 = no security).
    /// Trailing zero bytes are dropped on decode (so an all-zero TSAS is `[]`).
    public var transportSpecificAddressSubtype: [UInt8]

    public static let encodedSize = 1024

    public init(
        transportType: TransportType = .tcp, addressFamily: AddressFamily = .ipv4,
        subsystemType: SubsystemType = .nvmSubsystem, transportRequirements: UInt8 = 0, portID: UInt16 = 0,
        controllerID: UInt16 = 0xFFFF, adminMaxSubmissionQueueSize: UInt16 = 32, entryFlags: UInt16 = 0,
        transportServiceID: String, subsystemNQN: String, transportAddress: String,
        transportSpecificAddressSubtype: [UInt8] = []
    ) {
        precondition(transportSpecificAddressSubtype.count <= 256, "TSAS is 256 bytes")
        self.transportType = transportType
        self.addressFamily = addressFamily
        self.subsystemType = subsystemType
        self.transportRequirements = transportRequirements
        self.portID = portID
        self.controllerID = controllerID
        self.adminMaxSubmissionQueueSize = adminMaxSubmissionQueueSize
        self.entryFlags = entryFlags
        self.transportServiceID = transportServiceID
        self.subsystemNQN = subsystemNQN
        self.transportAddress = transportAddress
        self.transportSpecificAddressSubtype = transportSpecificAddressSubtype
    }

    /// TCP SECTYPE: TSAS byte 0 (0 = no security, 1 = TLS 1.2, 2 = TLS 1.3).
    public var tcpSecurityType: UInt8 {
        get { transportSpecificAddressSubtype.first ?? 0 }
        set {
            if transportSpecificAddressSubtype.isEmpty {
                if newValue != 0 { transportSpecificAddressSubtype = [newValue] }
            } else {
                transportSpecificAddressSubtype[0] = newValue
                while transportSpecificAddressSubtype.last == 0 { transportSpecificAddressSubtype.removeLast() }
            }
        }
    }

    /// Writes exactly 1024 bytes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(transportType.rawValue, endianness: .little)  // 0
        buffer.writeInteger(addressFamily.rawValue, endianness: .little)  // 1
        buffer.writeInteger(subsystemType.rawValue, endianness: .little)  // 2
        buffer.writeInteger(transportRequirements, endianness: .little)  // 3
        buffer.writeInteger(portID, endianness: .little)  // 4
        buffer.writeInteger(controllerID, endianness: .little)  // 6
        buffer.writeInteger(adminMaxSubmissionQueueSize, endianness: .little)  // 8
        buffer.writeInteger(entryFlags, endianness: .little)  // 10
        buffer.writeZeros(32 - 12)  // 12..31 reserved
        buffer.writeFixedASCII(transportServiceID, width: 32, pad: 0)  // 32
        buffer.writeZeros(256 - 64)  // 64..255 reserved
        buffer.writeFixedASCII(subsystemNQN, width: 256, pad: 0)  // 256
        buffer.writeFixedASCII(transportAddress, width: 256, pad: 0)  // 512
        let tsas = transportSpecificAddressSubtype.prefix(256)
        buffer.writeBytes(tsas)  // 768
        buffer.writeZeros(256 - tsas.count)
    }

    /// Reads exactly 1024 bytes; throws `.truncated` if fewer are readable.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard buffer.readableBytes >= Self.encodedSize else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Discovery log entry needs 1024 bytes, have \(buffer.readableBytes)")
        }
        transportType = TransportType(rawValue: buffer.readInteger(endianness: .little, as: UInt8.self)!)
        addressFamily = AddressFamily(rawValue: buffer.readInteger(endianness: .little, as: UInt8.self)!)
        subsystemType = SubsystemType(rawValue: buffer.readInteger(endianness: .little, as: UInt8.self)!)
        transportRequirements = buffer.readInteger(endianness: .little, as: UInt8.self)!
        portID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        controllerID = buffer.readInteger(endianness: .little, as: UInt16.self)!
        adminMaxSubmissionQueueSize = buffer.readInteger(endianness: .little, as: UInt16.self)!
        entryFlags = buffer.readInteger(endianness: .little, as: UInt16.self)!
        buffer.moveReaderIndex(forwardBy: 32 - 12)
        transportServiceID = buffer.readFixedASCII(width: 32)!
        buffer.moveReaderIndex(forwardBy: 256 - 64)
        subsystemNQN = buffer.readFixedASCII(width: 256)!
        transportAddress = buffer.readFixedASCII(width: 256)!
        var tsas = buffer.readBytes(length: 256)!
        while tsas.last == 0 { tsas.removeLast() }
        transportSpecificAddressSubtype = tsas
    }
}

/// Discovery log page 70h (NVMe over Fabrics 1.1 §5.3, Figure 38; NVMe 2.0 base spec §5.16.1.23,
/// Figure 258): a 1024-byte header {GENCTR u64, NUMREC u64, RECFMT u16, reserved} followed by
/// NUMREC 1024-byte entries (entry i at byte 1024·(i+1)).
///
/// Hosts read it in pieces (libnvme: the header, then the entries from LPO 1024 in ≤ 4 KiB chunks,
/// then the header again to check GENCTR): answer each read with `encodeRange(offset:length:)`.
public struct DiscoveryLogPage: Hashable, Sendable {
    /// GENCTR: bumped whenever the set of entries changes.
    public var generationCounter: UInt64
    /// RECFMT: record format, 0.
    public var recordFormat: UInt16
    /// The entries; NUMREC is their count.
    public var entries: [DiscoveryLogEntry]

    public static let headerSize = 1024

    public init(generationCounter: UInt64 = 0, recordFormat: UInt16 = 0, entries: [DiscoveryLogEntry] = []) {
        self.generationCounter = generationCounter
        self.recordFormat = recordFormat
        self.entries = entries
    }

    /// NUMREC.
    public var numberOfRecords: UInt64 { UInt64(entries.count) }

    /// Size of the whole page: 1024 · (NUMREC + 1).
    public var encodedSize: Int { Self.headerSize + DiscoveryLogEntry.encodedSize * entries.count }

    /// Writes the whole page: exactly `encodedSize` bytes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(generationCounter, endianness: .little)  // 0
        buffer.writeInteger(numberOfRecords, endianness: .little)  // 8
        buffer.writeInteger(recordFormat, endianness: .little)  // 16
        buffer.writeZeros(Self.headerSize - 18)
        for entry in entries {
            entry.encode(into: &buffer)
        }
    }

    /// The bytes a Get Log Page with LPO `offset` and length `length` returns: exactly `length`
    /// bytes of the page starting at byte `offset`, zero-padded past its end.
    public func encodeRange(offset: UInt64, length: Int) -> ByteBuffer {
        var page = ByteBuffer()
        page.reserveCapacity(encodedSize)
        encode(into: &page)
        return GetLogPageCommandFields.window(of: page, offset: offset, length: length)
    }

    /// Reads the header fields (GENCTR, NUMREC, RECFMT) from the first 18 bytes of `buffer`
    /// without consuming anything — enough for a host that read only the start of the header.
    public static func decodeHeader(
        _ buffer: ByteBuffer
    ) throws(NVMeWireError) -> (generationCounter: UInt64, numberOfRecords: UInt64, recordFormat: UInt16) {
        guard buffer.readableBytes >= 18 else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Discovery log header fields need 18 bytes, have \(buffer.readableBytes)")
        }
        let base = buffer.readerIndex
        return (
            buffer.getInteger(at: base, endianness: .little, as: UInt64.self)!,
            buffer.getInteger(at: base + 8, endianness: .little, as: UInt64.self)!,
            buffer.getInteger(at: base + 16, endianness: .little, as: UInt16.self)!
        )
    }

    /// Reads the 1024-byte header and NUMREC entries; throws `.truncated` (consuming nothing) if
    /// the buffer holds less than 1024 · (NUMREC + 1) bytes.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        let header = try Self.decodeHeader(buffer)
        let available = UInt64(buffer.readableBytes)
        guard available >= UInt64(Self.headerSize),
              header.numberOfRecords <= (available - UInt64(Self.headerSize)) / UInt64(DiscoveryLogEntry.encodedSize)
        else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Discovery log with \(header.numberOfRecords) records needs more than \(buffer.readableBytes) bytes")
        }
        buffer.moveReaderIndex(forwardBy: Self.headerSize)
        var entries: [DiscoveryLogEntry] = []
        entries.reserveCapacity(Int(header.numberOfRecords))
        for _ in 0..<Int(header.numberOfRecords) {
            entries.append(try DiscoveryLogEntry(decoding: &buffer))
        }
        self.generationCounter = header.generationCounter
        self.recordFormat = header.recordFormat
        self.entries = entries
    }
}
