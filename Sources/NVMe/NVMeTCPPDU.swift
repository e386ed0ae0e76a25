import NIOCore

/// One NVMe/TCP PDU (NVMe/TCP transport spec 1.0 §3.6): the common header, a type-specific header,
/// optional header digest, optional data and optional data digest.
///
/// Values are pure: `encode` writes wire bytes, `decode` reads them. Whether digests are present on
/// the wire is a property of the connection (negotiated in ICReq/ICResp), so it is passed to
/// `encode` and reported by `decode` in a `DecodedPDU`.
public enum NVMeTCPPDU: Hashable, Sendable {
    case icReq(ICReq)
    case icResp(ICResp)
    case h2cTermReq(TerminationRequest)
    case c2hTermReq(TerminationRequest)
    case capsuleCommand(CapsuleCommand)
    case capsuleResponse(CapsuleResponse)
    case h2cData(DataTransfer)
    case c2hData(DataTransfer)
    case r2t(ReadyToTransfer)

    public var type: PDUType {
        switch self {
        case .icReq: .icReq
        case .icResp: .icResp
        case .h2cTermReq: .h2cTermReq
        case .c2hTermReq: .c2hTermReq
        case .capsuleCommand: .capsuleCommand
        case .capsuleResponse: .capsuleResponse
        case .h2cData: .h2cData
        case .c2hData: .c2hData
        case .r2t: .r2t
        }
    }

    /// The PDU's payload (in-capsule data, data chunk, or a termination request's header copy).
    public var data: ByteBuffer? {
        switch self {
        case .capsuleCommand(let c): c.data
        case .h2cData(let d), .c2hData(let d): d.data
        case .h2cTermReq(let t), .c2hTermReq(let t): t.offendingHeader
        default: nil
        }
    }

    /// Size of the common header.
    public static let commonHeaderSize = 8
    /// Size of a digest.
    public static let digestSize = 4

    // MARK: Encoding

    /// Writes the PDU. Digests are added only where the type allows them; a data digest only when
    /// there is data.
    public func encode(into buffer: inout ByteBuffer, headerDigest: Bool = false, dataDigest: Bool = false) {
        let data = self.data
        let dataLength = data?.readableBytes ?? 0
        encodeHeader(into: &buffer, headerDigest: headerDigest, dataDigest: dataDigest, dataLength: dataLength)
        if let data, dataLength > 0 {
            buffer.writeImmutableBuffer(data)
            if dataDigest && type.allowsDigests {
                buffer.writeInteger(CRC32C.checksum(data), endianness: .little)
            }
        }
    }

    /// Writes the common header, the PDU header and its digest, for a PDU whose data (of
    /// `dataLength` bytes, with its digest when `dataDigest`) the caller writes next. Lets a sender
    /// pass a data buffer on without copying it.
    public func encodeHeader(into buffer: inout ByteBuffer, headerDigest: Bool, dataDigest: Bool, dataLength: Int) {
        let type = self.type
        let hd = headerDigest && type.allowsDigests
        let dd = dataDigest && type.allowsDigests && dataLength > 0
        var flags = PDUFlags()
        if hd { flags.insert(.headerDigest) }
        if dd { flags.insert(.dataDigest) }
        switch self {
        case .h2cData(let d), .c2hData(let d):
            if d.last { flags.insert(.lastPDU) }
            // SUCCESS is legal only on the last C2HData (NVMe/TCP transport spec 1.0 §3.6.2.7).
            assert(!d.success || (type == .c2hData && d.last), "SUCCESS flag only on the last C2HData")
            if d.success && type == .c2hData && d.last { flags.insert(.success) }
        default: break
        }
        let hlen = type.headerLength
        let dataStart = hlen + (hd ? Self.digestSize : 0)
        // TermReq carries its header copy right after the header with PDO 0.
        let pdo = dataLength > 0 && type != .h2cTermReq && type != .c2hTermReq ? dataStart : 0
        let plen = dataStart + dataLength + (dd ? Self.digestSize : 0)

        let pdu = self
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: dataStart) { bytes in
            // Reserved bytes are zero; the fields below overwrite the rest.
            UnsafeMutableRawBufferPointer(rebasing: bytes[0..<hlen]).initializeMemory(as: UInt8.self, repeating: 0)
            bytes.storeLittleEndian(type.rawValue, at: 0)
            bytes.storeLittleEndian(flags.rawValue, at: 1)
            bytes.storeLittleEndian(UInt8(hlen), at: 2)
            bytes.storeLittleEndian(UInt8(pdo), at: 3)
            bytes.storeLittleEndian(UInt32(plen), at: 4)
            switch pdu {
            case .icReq(let r):
                bytes.storeLittleEndian(r.pduFormatVersion, at: 8)
                bytes.storeLittleEndian(r.hostPDUDataAlignment, at: 10)
                bytes.storeLittleEndian(UInt8((r.headerDigest ? 1 : 0) | (r.dataDigest ? 2 : 0)), at: 11)
                bytes.storeLittleEndian(r.maxR2T, at: 12)
            case .icResp(let r):
                bytes.storeLittleEndian(r.pduFormatVersion, at: 8)
                bytes.storeLittleEndian(r.controllerPDUDataAlignment, at: 10)
                bytes.storeLittleEndian(UInt8((r.headerDigest ? 1 : 0) | (r.dataDigest ? 2 : 0)), at: 11)
                bytes.storeLittleEndian(r.maxH2CData, at: 12)
            case .h2cTermReq(let t), .c2hTermReq(let t):
                bytes.storeLittleEndian(t.status, at: 8)
                bytes.storeLittleEndian(t.information, at: 10)
            case .capsuleCommand(let c):
                c.command.store(into: bytes, at: 8)
            case .capsuleResponse(let r):
                r.completion.store(into: bytes, at: 8)
            case .h2cData(let d), .c2hData(let d):
                bytes.storeLittleEndian(d.commandID, at: 8)
                bytes.storeLittleEndian(d.transferTag, at: 10)
                bytes.storeLittleEndian(d.dataOffset, at: 12)
                bytes.storeLittleEndian(UInt32(dataLength), at: 16)
            case .r2t(let r):
                bytes.storeLittleEndian(r.commandID, at: 8)
                bytes.storeLittleEndian(r.transferTag, at: 10)
                bytes.storeLittleEndian(r.offset, at: 12)
                bytes.storeLittleEndian(r.length, at: 16)
            }
            if hd {
                bytes.storeLittleEndian(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<hlen])), at: hlen)
            }
            return dataStart
        }
    }

    // MARK: Decoding

    /// Decodes one PDU from the front of `buffer`. Returns nil, consuming nothing, while the
    /// buffer does not yet hold the whole PDU. Throws when the bytes can never form a valid PDU;
    /// the error's offset is the FEI a termination request reports.
    ///
    /// - Parameter maximumLength: the largest PLEN accepted (bounds memory per connection).
    public static func decode(from buffer: inout ByteBuffer, maximumLength: Int) throws(NVMeWireError) -> DecodedPDU? {
        guard buffer.readableBytes >= commonHeaderSize else { return nil }
        let start = buffer.readerIndex
        let common = buffer.withUnsafeReadableBytes { $0.loadLittleEndian(at: 0, as: UInt64.self) }
        let rawType = UInt8(truncatingIfNeeded: common)
        let flags = PDUFlags(rawValue: UInt8(truncatingIfNeeded: common >> 8))
        let hlen = Int(UInt8(truncatingIfNeeded: common >> 16))
        let pdo = Int(UInt8(truncatingIfNeeded: common >> 24))
        let plen = Int(UInt32(truncatingIfNeeded: common >> 32))

        guard let type = PDUType(rawValue: rawType) else {
            throw NVMeWireError(.unsupportedPDUType, offset: 0, "unknown PDU type 0x\(String(rawType, radix: 16))")
        }
        guard hlen == type.headerLength else {
            throw NVMeWireError(.invalidField, offset: 2, "\(type) needs HLEN \(type.headerLength), got \(hlen)")
        }
        let hd = flags.contains(.headerDigest)
        let dd = flags.contains(.dataDigest)
        if (hd || dd) && !type.allowsDigests {
            throw NVMeWireError(.invalidField, offset: 1, "\(type) must not carry digests (flags 0x\(String(flags.rawValue, radix: 16)))")
        }
        let headerEnd = hlen + (hd ? digestSize : 0)
        guard plen >= headerEnd else {
            throw NVMeWireError(.invalidField, offset: 4, "PLEN \(plen) shorter than the header (\(headerEnd))")
        }
        guard plen <= maximumLength else {
            throw NVMeWireError(.pduTooLarge, offset: 4, "PLEN \(plen) exceeds the limit \(maximumLength)")
        }
        switch type {
        case .icReq, .icResp:
            guard plen == 128 else { throw NVMeWireError(.invalidField, offset: 4, "\(type) PLEN must be 128, got \(plen)") }
        case .capsuleResponse, .r2t:
            guard plen == headerEnd else {
                throw NVMeWireError(.invalidField, offset: 4, "\(type) carries no data, PLEN must be \(headerEnd), got \(plen)")
            }
        default: break
        }
        // Where data starts and how long it is.
        var dataStart = headerEnd
        var dataLength = 0
        if plen > headerEnd {
            if type == .h2cTermReq || type == .c2hTermReq {
                guard plen - headerEnd <= TerminationRequest.maximumOffendingHeader else {
                    throw NVMeWireError(.invalidField, offset: 4, "termination request PLEN \(plen) too large")
                }
                dataLength = plen - headerEnd
            } else {
                guard pdo >= headerEnd, pdo <= plen else {
                    throw NVMeWireError(.invalidField, offset: 3, "PDO \(pdo) outside \(headerEnd)...\(plen)")
                }
                dataStart = pdo
                dataLength = plen - pdo - (dd ? digestSize : 0)
                guard dataLength > 0 else {
                    throw NVMeWireError(.invalidField, offset: 4, "PLEN \(plen) leaves no room for data after PDO \(pdo)")
                }
            }
        } else if dd {
            throw NVMeWireError(.invalidField, offset: 1, "DDGSTF set on a PDU without data")
        } else if pdo != 0 && type != .capsuleCommand {
            // Some hosts set PDO on data-less capsules; it is meaningless then. Elsewhere it must be 0.
            throw NVMeWireError(.invalidField, offset: 3, "PDO \(pdo) on a PDU without data")
        }
        guard buffer.readableBytes >= plen else { return nil }

        // Header digest.
        if hd {
            let expected = buffer.getInteger(at: start + hlen, endianness: .little, as: UInt32.self)!
            let actual = buffer.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<hlen])) }
            guard expected == actual else {
                throw NVMeWireError(.headerDigestMismatch, offset: hlen, "header digest 0x\(String(expected, radix: 16)) != computed 0x\(String(actual, radix: 16))")
            }
        }
        let data = dataLength > 0 ? buffer.getSlice(at: start + dataStart, length: dataLength)! : ByteBuffer()
        var dataDigestValid = true
        if dd {
            let expected = buffer.getInteger(at: start + plen - digestSize, endianness: .little, as: UInt32.self)!
            dataDigestValid = CRC32C.checksum(data) == expected
        }

        // The type-specific header, read in place (hlen bytes are there: plen >= hlen was checked).
        let (pdu, datal) = buffer.withUnsafeReadableBytes { bytes -> (NVMeTCPPDU, UInt32) in
            let h = UnsafeRawBufferPointer(rebasing: bytes[0..<hlen])
            switch type {
            case .icReq, .icResp:
                let pfv = h.loadLittleEndian(at: 8, as: UInt16.self)
                let alignment = h.loadLittleEndian(at: 10, as: UInt8.self)
                let digest = h.loadLittleEndian(at: 11, as: UInt8.self)
                let value = h.loadLittleEndian(at: 12, as: UInt32.self)
                if type == .icReq {
                    return (.icReq(ICReq(pduFormatVersion: pfv, hostPDUDataAlignment: alignment, headerDigest: digest & 1 != 0,
                                         dataDigest: digest & 2 != 0, maxR2T: value)), 0)
                }
                return (.icResp(ICResp(pduFormatVersion: pfv, controllerPDUDataAlignment: alignment,
                                       headerDigest: digest & 1 != 0, dataDigest: digest & 2 != 0, maxH2CData: value)), 0)
            case .h2cTermReq, .c2hTermReq:
                let t = TerminationRequest(rawStatus: h.loadLittleEndian(at: 8), information: h.loadLittleEndian(at: 10),
                                           offendingHeader: data)
                return (type == .h2cTermReq ? .h2cTermReq(t) : .c2hTermReq(t), 0)
            case .capsuleCommand:
                return (.capsuleCommand(CapsuleCommand(command: SubmissionQueueEntry(loading: h, at: 8), data: data)), 0)
            case .capsuleResponse:
                return (.capsuleResponse(CapsuleResponse(completion: CompletionQueueEntry(loading: h, at: 8))), 0)
            case .h2cData, .c2hData:
                let d = DataTransfer(commandID: h.loadLittleEndian(at: 8), transferTag: h.loadLittleEndian(at: 10),
                                     dataOffset: h.loadLittleEndian(at: 12), last: flags.contains(.lastPDU),
                                     success: flags.contains(.success), data: data)
                return (type == .h2cData ? .h2cData(d) : .c2hData(d), h.loadLittleEndian(at: 16))
            case .r2t:
                let r = ReadyToTransfer(commandID: h.loadLittleEndian(at: 8), transferTag: h.loadLittleEndian(at: 10),
                                        offset: h.loadLittleEndian(at: 12), length: h.loadLittleEndian(at: 16))
                return (.r2t(r), 0)
            }
        }
        switch pdu {
        case .h2cData, .c2hData:
            guard datal == dataLength else {
                throw NVMeWireError(.invalidField, offset: 16, "DATAL \(datal) but the PDU holds \(dataLength) data bytes")
            }
            if flags.contains(.success) && (type == .h2cData || !flags.contains(.lastPDU)) {
                throw NVMeWireError(.invalidField, offset: 1, "SUCCESS flag only on the last C2HData")
            }
        case .r2t(let r):
            guard r.length > 0 else { throw NVMeWireError(.invalidField, offset: 16, "R2TL must not be 0") }
        default:
            break
        }
        buffer.moveReaderIndex(forwardBy: plen)
        return DecodedPDU(pdu: pdu, headerDigest: hd, dataDigest: dd, dataDigestValid: dataDigestValid)
    }
}

/// A decoded PDU and what its wire form carried besides the fields.
public struct DecodedPDU: Hashable, Sendable {
    public var pdu: NVMeTCPPDU
    /// HDGSTF was set (and the digest matched: a mismatch is a decoding error).
    public var headerDigest: Bool
    /// DDGSTF was set.
    public var dataDigest: Bool
    /// False when the data digest did not match the data. The command then fails with Transient
    /// Transport Error (NVMe/TCP transport spec 1.0 §3.6.2.6).
    public var dataDigestValid: Bool

    public init(pdu: NVMeTCPPDU, headerDigest: Bool = false, dataDigest: Bool = false, dataDigestValid: Bool = true) {
        self.pdu = pdu
        self.headerDigest = headerDigest
        self.dataDigest = dataDigest
        self.dataDigestValid = dataDigestValid
    }

    /// Writes the PDU back in the same wire form (same digests).
    public func encode(into buffer: inout ByteBuffer) {
        pdu.encode(into: &buffer, headerDigest: headerDigest, dataDigest: dataDigest)
    }
}

/// A `ByteToMessageDecoder` framing a byte stream into NVMe/TCP PDUs.
public struct NVMeTCPPDUDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = DecodedPDU
    public let maximumLength: Int

    public init(maximumLength: Int) { self.maximumLength = maximumLength }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let pdu = try NVMeTCPPDU.decode(from: &buffer, maximumLength: maximumLength) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(pdu))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
