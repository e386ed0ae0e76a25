import NIOCore

/// One Namespace Identification Descriptor (NVMe 2.0 base spec §5.17.2.3, Figure 282/283):
/// {NIDT u8, NIDL u8, reserved u16, NID[NIDL]}.
public enum NamespaceIdentificationDescriptor: Hashable, Sendable {
    /// NIDT 1h, NIDL 8.
    case eui64(EUI64)
    /// NIDT 2h, NIDL 16.
    case nguid(NGUID)
    /// NIDT 3h, NIDL 16.
    case uuid(NamespaceUUID)
    /// NIDT 4h, NIDL 1: Command Set Identifier (0 = NVM).
    case commandSetIdentifier(UInt8)
    /// Any other NIDT, kept verbatim so a list decodes and re-encodes unchanged.
    case other(type: UInt8, identifier: [UInt8])

    /// Namespace Identifier Type (NIDT).
    public var type: UInt8 {
        switch self {
        case .eui64: return 0x01
        case .nguid: return 0x02
        case .uuid: return 0x03
        case .commandSetIdentifier: return 0x04
        case .other(let type, _): return type
        }
    }

    /// Namespace Identifier bytes (NID); their count is NIDL.
    public var identifier: [UInt8] {
        switch self {
        case .eui64(let value): return value.bytes
        case .nguid(let value): return value.bytes
        case .uuid(let value): return value.bytes
        case .commandSetIdentifier(let csi): return [csi]
        case .other(_, let identifier): return identifier
        }
    }

    /// Header (4 bytes) plus NIDL.
    public var encodedSize: Int { 4 + identifier.count }

    public func encode(into buffer: inout ByteBuffer) {
        let identifier = self.identifier
        precondition(!identifier.isEmpty && identifier.count <= 255, "NIDL must be 1...255")
        buffer.writeInteger(type, endianness: .little)
        buffer.writeInteger(UInt8(identifier.count), endianness: .little)
        buffer.writeInteger(UInt16(0), endianness: .little)
        buffer.writeBytes(identifier)
    }
}

/// Namespace Identification Descriptor list, Identify CNS 03h (NVMe 2.0 base spec §5.17.2.3,
/// Figure 282). 4096 bytes: descriptors back to back, the rest zero; a descriptor with NIDL 0
/// (i.e. the zero fill) ends the list.
public struct NamespaceIdentificationDescriptorList: Hashable, Sendable {
    public var descriptors: [NamespaceIdentificationDescriptor]

    public static let encodedSize = 4096

    public init(descriptors: [NamespaceIdentificationDescriptor] = []) {
        self.descriptors = descriptors
    }

    /// The usual list: EUI64 and NGUID only when non-zero, the UUID when given, then CSI.
    public init(eui64: EUI64 = .zero, nguid: NGUID = .zero, uuid: NamespaceUUID? = nil, commandSetIdentifier: UInt8? = 0) {
        var descriptors: [NamespaceIdentificationDescriptor] = []
        if !eui64.isZero { descriptors.append(.eui64(eui64)) }
        if !nguid.isZero { descriptors.append(.nguid(nguid)) }
        if let uuid { descriptors.append(.uuid(uuid)) }
        if let commandSetIdentifier { descriptors.append(.commandSetIdentifier(commandSetIdentifier)) }
        self.descriptors = descriptors
    }

    /// Writes exactly 4096 bytes. The descriptors must fit (they always do in practice).
    public func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        for descriptor in descriptors {
            descriptor.encode(into: &buffer)
        }
        let used = buffer.writerIndex - start
        precondition(used <= Self.encodedSize, "descriptors exceed 4096 bytes")
        buffer.writeZeros(Self.encodedSize - used)
    }

    /// Reads exactly 4096 bytes; throws `.truncated` if fewer are readable and `.invalidField` for
    /// a descriptor that overruns the page or has the wrong NIDL for a known NIDT.
    public init(decoding buffer: inout ByteBuffer) throws(NVMeWireError) {
        guard var page = buffer.readSlice(length: Self.encodedSize) else {
            throw NVMeWireError(
                .truncated, offset: buffer.readableBytes,
                "Namespace Identification Descriptor list needs 4096 bytes, have \(buffer.readableBytes)")
        }
        var descriptors: [NamespaceIdentificationDescriptor] = []
        while page.readableBytes >= 4 {
            let offset = page.readerIndex
            let type = page.readInteger(endianness: .little, as: UInt8.self)!
            let length = Int(page.readInteger(endianness: .little, as: UInt8.self)!)
            if length == 0 { break }
            page.moveReaderIndex(forwardBy: 2)
            guard let identifier = page.readBytes(length: length) else {
                throw NVMeWireError(.invalidField, offset: offset + 1, "descriptor NIDL \(length) overruns the page")
            }
            let expected: Int?
            switch type {
            case 0x01: expected = EUI64.byteCount
            case 0x02: expected = NGUID.byteCount
            case 0x03: expected = NamespaceUUID.byteCount
            case 0x04: expected = 1
            default: expected = nil
            }
            if let expected, expected != length {
                throw NVMeWireError(.invalidField, offset: offset + 1, "NIDT \(type) needs NIDL \(expected), got \(length)")
            }
            switch type {
            case 0x01: descriptors.append(.eui64(EUI64(identifier)))
            case 0x02: descriptors.append(.nguid(NGUID(identifier)))
            case 0x03: descriptors.append(.uuid(NamespaceUUID(identifier)))
            case 0x04: descriptors.append(.commandSetIdentifier(identifier[0]))
            default: descriptors.append(.other(type: type, identifier: identifier))
            }
        }
        self.descriptors = descriptors
    }

    public var eui64: EUI64? {
        for case .eui64(let value) in descriptors { return value }
        return nil
    }

    public var nguid: NGUID? {
        for case .nguid(let value) in descriptors { return value }
        return nil
    }

    public var uuid: NamespaceUUID? {
        for case .uuid(let value) in descriptors { return value }
        return nil
    }

    public var commandSetIdentifier: UInt8? {
        for case .commandSetIdentifier(let value) in descriptors { return value }
        return nil
    }
}
