import NIOCore
import NVMe
import Testing

/// The PDU framer both connection handlers use: any split of the byte stream frames the same PDUs.
@Suite("PDU framer")
struct PDUFramerTests {
    /// A stream of every data shape: an in-capsule write, a 128 KiB C2HData with SUCCESS, a
    /// CapsuleResp, an R2T, and the same again with digests.
    static func stream(digests: Bool) -> (ByteBuffer, [NVMeTCPPDU]) {
        var data4k = ByteBuffer()
        var data128k = ByteBuffer()
        for i in 0..<(128 << 10) { data128k.writeInteger(UInt8(truncatingIfNeeded: i &* 31 &+ 7)) }
        for i in 0..<4096 { data4k.writeInteger(UInt8(truncatingIfNeeded: i &* 13)) }
        var write = SubmissionQueueEntry(opcode: 0x01, commandID: 0x1234, namespaceID: 1, dataPointer: .inCapsule(length: 4096), cdw12: 7)
        write.cdw10 = 0xDEAD_BEEF
        let pdus: [NVMeTCPPDU] = [
            .capsuleCommand(CapsuleCommand(command: write, data: data4k)),
            .c2hData(DataTransfer(commandID: 0x2001, dataOffset: 0, last: true, success: true, data: data128k)),
            .capsuleResponse(CapsuleResponse(completion: CompletionQueueEntry(dw0: 9, submissionQueueHead: 3, submissionQueueID: 1,
                                                                               commandID: 0x1234, status: .lbaOutOfRange))),
            .r2t(ReadyToTransfer(commandID: 0x0042, transferTag: 7, offset: 0, length: 65536)),
        ]
        var bytes = ByteBuffer()
        for pdu in pdus { pdu.encode(into: &bytes, headerDigest: digests, dataDigest: digests) }
        return (bytes, pdus)
    }

    @Test("any split of the stream, from 1-byte reads to 300 KiB ones, frames the same PDUs", arguments: [false, true])
    func anySplit(digests: Bool) throws {
        let (bytes, pdus) = Self.stream(digests: digests)
        var rng: UInt64 = 0x5EED
        for maxRead in [1, 7, 24, 72, 100, 4096, 65536, 300 << 10] {
            var framer = PDUFramer(maximumLength: 1 << 20)
            var decoded: [DecodedPDU] = []
            var offset = 0
            while offset < bytes.readableBytes {
                rng = rng &* 6364136223846793005 &+ 1442695040888963407
                let n = min(bytes.readableBytes - offset, 1 + Int(rng >> 33) % maxRead)
                framer.append(bytes.getSlice(at: offset, length: n)!)
                offset += n
                while let pdu = try framer.next() { decoded.append(pdu) }
            }
            #expect(decoded.map(\.pdu) == pdus, "reads of up to \(maxRead) bytes")
            #expect(decoded.allSatisfy { $0.headerDigest == digests && $0.dataDigestValid }, "reads of up to \(maxRead) bytes")
            #expect(framer.bufferedBytes == 0)
        }
    }

    @Test("a header announcing more than the limit fails with the offending bytes; a partial PDU waits")
    func limits() throws {
        var framer = PDUFramer(maximumLength: 8192)
        let (bytes, _) = Self.stream(digests: false)
        // The 4 KiB write capsule fits; the 128 KiB C2HData does not.
        framer.append(bytes.getSlice(at: 0, length: 72 + 4096 + 5)!)
        let first = try #require(try framer.next())
        #expect(first.pdu.type == .capsuleCommand)
        #expect(try framer.next() == nil, "5 bytes of the next common header: wait for more")
        #expect(framer.bufferedBytes == 5)
        // PLEN is known as soon as the 8-byte common header is here: refused before any data.
        framer.append(bytes.getSlice(at: 72 + 4096 + 5, length: 5)!)
        let error = try #require(throws: PDUFramingError.self) { try framer.next() }
        #expect(error.error.kind == .pduTooLarge && error.error.offset == 4)
        #expect(Array(error.offendingBytes.readableBytesView.prefix(2)) == [PDUType.c2hData.rawValue, 0x0C])
        #expect(try framer.next() == nil, "the framer drops everything after an error")
    }
}
