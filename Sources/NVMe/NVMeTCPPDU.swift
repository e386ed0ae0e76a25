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

        let headerStart = buffer.writerIndex
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(UInt8(hlen))
        buffer.writeInteger(UInt8(pdo))
        buffer.writeInteger(UInt32(plen), endianness: .little)
        switch self {
        case .icReq(let r):
            buffer.writeInteger(r.pduFormatVersion, endianness: .little)
            buffer.writeInteger(r.hostPDUDataAlignment)
            buffer.writeInteger(UInt8((r.headerDigest ? 1 : 0) | (r.dataDigest ? 2 : 0)))
            buffer.writeInteger(r.maxR2T, endianness: .little)
            buffer.writeZeros(128 - 16)
        case .icResp(let r):
            buffer.writeInteger(r.pduFormatVersion, endianness: .little)
            buffer.writeInteger(r.controllerPDUDataAlignment)
            buffer.writeInteger(UInt8((r.headerDigest ? 1 : 0) | (r.dataDigest ? 2 : 0)))
            buffer.writeInteger(r.maxH2CData, endianness: .little)
            buffer.writeZeros(128 - 16)
        case .h2cTermReq(let t), .c2hTermReq(let t):
            buffer.writeInteger(t.status, endianness: .little)
            buffer.writeInteger(t.information, endianness: .little)
            buffer.writeZeros(24 - 14)
        case .capsuleCommand(let c):
            c.command.encode(into: &buffer)
        case .capsuleResponse(let r):
            r.completion.encode(into: &buffer)
        case .h2cData(let d), .c2hData(let d):
            buffer.writeInteger(d.commandID, endianness: .little)
            buffer.writeInteger(d.transferTag, endianness: .little)
            buffer.writeInteger(d.dataOffset, endianness: .little)
            buffer.writeInteger(UInt32(dataLength), endianness: .little)
            buffer.writeZeros(4)
        case .r2t(let r):
            buffer.writeInteger(r.commandID, endianness: .little)
            buffer.writeInteger(r.transferTag, endianness: .little)
            buffer.writeInteger(r.offset, endianness: .little)
            buffer.writeInteger(r.length, endianness: .little)
            buffer.writeZeros(4)
        }
        assert(buffer.writerIndex - headerStart == hlen, "PDU header of \(type) has \(buffer.writerIndex - headerStart) bytes")
        if hd {
            let crc = buffer.withUnsafeReadableBytes { all in
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[(headerStart - buffer.readerIndex)...]))
            }
            buffer.writeInteger(crc, endianness: .little)
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
        let rawType = buffer.getInteger(at: start, as: UInt8.self)!
        let flags = PDUFlags(rawValue: buffer.getInteger(at: start + 1, as: UInt8.self)!)
        let hlen = Int(buffer.getInteger(at: start + 2, as: UInt8.self)!)
        let pdo = Int(buffer.getInteger(at: start + 3, as: UInt8.self)!)
        let plen = Int(buffer.getInteger(at: start + 4, endianness: .little, as: UInt32.self)!)

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

        var header = buffer.getSlice(at: start + commonHeaderSize, length: hlen - commonHeaderSize)!
        let pdu: NVMeTCPPDU
        switch type {
        case .icReq, .icResp:
            let pfv = header.readInteger(endianness: .little, as: UInt16.self)!
            let alignment = header.readInteger(as: UInt8.self)!
            let digest = header.readInteger(as: UInt8.self)!
            let value = header.readInteger(endianness: .little, as: UInt32.self)!
            if type == .icReq {
                pdu = .icReq(ICReq(pduFormatVersion: pfv, hostPDUDataAlignment: alignment, headerDigest: digest & 1 != 0,
                                   dataDigest: digest & 2 != 0, maxR2T: value))
            } else {
                pdu = .icResp(ICResp(pduFormatVersion: pfv, controllerPDUDataAlignment: alignment,
                                     headerDigest: digest & 1 != 0, dataDigest: digest & 2 != 0, maxH2CData: value))
            }
        case .h2cTermReq, .c2hTermReq:
            let status = header.readInteger(endianness: .little, as: UInt16.self)!
            let information = header.readInteger(endianness: .little, as: UInt32.self)!
            let t = TerminationRequest(rawStatus: status, information: information, offendingHeader: data)
            pdu = type == .h2cTermReq ? .h2cTermReq(t) : .c2hTermReq(t)
        case .capsuleCommand:
            let sqe = try SubmissionQueueEntry(decoding: &header)
            pdu = .capsuleCommand(CapsuleCommand(command: sqe, data: data))
        case .capsuleResponse:
            let cqe = try CompletionQueueEntry(decoding: &header)
            pdu = .capsuleResponse(CapsuleResponse(completion: cqe))
        case .h2cData, .c2hData:
            let cid = header.readInteger(endianness: .little, as: UInt16.self)!
            let ttag = header.readInteger(endianness: .little, as: UInt16.self)!
            let datao = header.readInteger(endianness: .little, as: UInt32.self)!
            let datal = header.readInteger(endianness: .little, as: UInt32.self)!
            guard datal == dataLength else {
                throw NVMeWireError(.invalidField, offset: 16, "DATAL \(datal) but the PDU holds \(dataLength) data bytes")
            }
            if flags.contains(.success) && (type == .h2cData || !flags.contains(.lastPDU)) {
                throw NVMeWireError(.invalidField, offset: 1, "SUCCESS flag only on the last C2HData")
            }
            let d = DataTransfer(commandID: cid, transferTag: ttag, dataOffset: datao, last: flags.contains(.lastPDU),
                                 success: flags.contains(.success), data: data)
            pdu = type == .h2cData ? .h2cData(d) : .c2hData(d)
        case .r2t:
            let cid = header.readInteger(endianness: .little, as: UInt16.self)!
            let ttag = header.readInteger(endianness: .little, as: UInt16.self)!
            let offset = header.readInteger(endianness: .little, as: UInt32.self)!
            let length = header.readInteger(endianness: .little, as: UInt32.self)!
            guard length > 0 else { throw NVMeWireError(.invalidField, offset: 16, "R2TL must not be 0") }
            pdu = .r2t(ReadyToTransfer(commandID: cid, transferTag: ttag, offset: offset, length: length))
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
