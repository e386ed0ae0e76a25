import NIOCore

/// Frames an NVMe/TCP byte stream into PDUs (NVMe/TCP transport spec 1.0 §3.6.1: every PDU starts
/// with its common header, PLEN gives its length). Bytes are kept as they arrive — a PDU whose
/// bytes came in one read is decoded from that buffer without a copy — and a partial PDU waits for
/// the rest. Used by both the target's and the host's connection handlers.
public struct PDUFramer: Sendable {
    /// The largest PLEN accepted.
    public let maximumLength: Int
    private var pending: ByteBuffer?
    /// The most reserved ahead for a PDU whose header announced it (a peer cannot make us
    /// allocate more than this before sending the bytes).
    static let maximumReservation = 1 << 20

    public init(maximumLength: Int) {
        self.maximumLength = maximumLength
    }

    /// Bytes received and not yet framed.
    public var bufferedBytes: Int { pending?.readableBytes ?? 0 }

    public mutating func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if var buffer = pending {
            pending = nil  // keep the storage uniquely referenced while appending
            var incoming = bytes
            // Room for the whole PDU at once (when its header is here), so a large PDU arriving
            // in many reads is copied once instead of being regrown read after read.
            var want = buffer.readableBytes + incoming.readableBytes
            if buffer.readableBytes >= 8, let plen = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .little, as: UInt32.self) {
                want = max(want, min(Int(plen), maximumLength, Self.maximumReservation))
            }
            if buffer.writableBytes < want - buffer.readableBytes {
                buffer.reserveCapacity(minimumWritableBytes: want - buffer.readableBytes)
            }
            buffer.writeBuffer(&incoming)
            pending = buffer
        } else {
            pending = bytes
        }
    }

    /// The next whole PDU, or nil when more bytes are needed. After an error the stream cannot be
    /// resynchronised: the framer drops everything and the error carries the offending bytes
    /// (for a termination request's header copy).
    public mutating func next() throws(PDUFramingError) -> DecodedPDU? {
        guard var buffer = pending, buffer.readableBytes > 0 else { return nil }
        pending = nil
        let decoded: DecodedPDU?
        do {
            decoded = try NVMeTCPPDU.decode(from: &buffer, maximumLength: maximumLength)
        } catch {
            throw PDUFramingError(error: error, offendingBytes: buffer)
        }
        guard let decoded else {
            // Keep the partial PDU; drop consumed bytes so the buffer does not grow without bound.
            buffer.discardReadBytes()
            pending = buffer
            return nil
        }
        pending = buffer.readableBytes > 0 ? buffer : nil
        return decoded
    }
}

/// A byte stream that cannot be framed: why, and the bytes from the offending PDU on.
public struct PDUFramingError: Error, Sendable {
    public var error: NVMeWireError
    public var offendingBytes: ByteBuffer
}
