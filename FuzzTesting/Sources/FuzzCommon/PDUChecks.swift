import NIOCore
import NVMe

/// Properties every NVMe/TCP PDU decode must satisfy, checked by both fuzz targets.
public enum PDUChecks {
    /// All four (header digest, data digest) choices.
    static let digestChoices: [(Bool, Bool)] = [(false, false), (true, false), (false, true), (true, true)]

    /// `NVMeTCPPDU.decode` plus its contracts:
    /// - nil or a thrown error consume nothing; success consumes exactly PLEN bytes;
    /// - a thrown error's offset (the FEI of a termination request) lies inside the PDU header;
    /// - every decoded PDU passes `checkRoundTrip`, or, with `canonical`, re-encodes to exactly
    ///   the bytes it was decoded from (what every encoder-produced PDU must do; much cheaper).
    public static func decode(_ buffer: inout ByteBuffer, maximumLength: Int, canonical: Bool = false) throws(NVMeWireError) -> DecodedPDU? {
        let before = buffer
        let result: DecodedPDU?
        do {
            result = try NVMeTCPPDU.decode(from: &buffer, maximumLength: maximumLength)
        } catch {
            fuzzCheck(buffer == before && buffer.readerIndex == before.readerIndex,
                      "decode threw \(error) but consumed bytes; input \(hex(before))")
            fuzzCheck(error.offset >= 0 && error.offset < 128, "decode error offset \(error.offset) outside the header: \(error); input \(hex(before))")
            throw error
        }
        guard let decoded = result else {
            fuzzCheck(buffer.readerIndex == before.readerIndex, "decode returned nil but consumed bytes; input \(hex(before))")
            return nil
        }
        let consumed = buffer.readerIndex - before.readerIndex
        let plen = Int(before.getInteger(at: before.readerIndex + 4, endianness: .little, as: UInt32.self)!)
        fuzzCheck(consumed == plen, "decode consumed \(consumed) bytes of a PDU with PLEN \(plen); input \(hex(before))")
        let wire = before.getSlice(at: before.readerIndex, length: consumed)!
        if canonical {
            var encoded = ByteBuffer()
            decoded.encode(into: &encoded)
            fuzzCheck(encoded == wire, "PDU is not in canonical form\n wire    \(hex(wire))\n encoded \(hex(encoded))")
        } else {
            checkRoundTrip(decoded, wire: wire, maximumLength: maximumLength)
        }
        return decoded
    }

    /// For a PDU `decoded` from the bytes `wire`:
    /// 1. streaming: every strict prefix of `wire` decodes to nil (never throws), so a PDU split
    ///    across TCP segments is never rejected;
    /// 2. `decoded.encode` (same digests) decodes again to an equal value (a failed data digest
    ///    comes back valid: encoding recomputes it) and consumes exactly the encoded bytes;
    /// 3. encode(decode(encode(x))) == encode(x);
    /// 4. with any other digest choice, the PDU value survives encode → decode;
    /// 5. `encodeHeader` + data + data digest (the zero-copy C2HData send path) writes the same
    ///    bytes as `encode`.
    public static func checkRoundTrip(_ decoded: DecodedPDU, wire: ByteBuffer, maximumLength: Int) {
        // 1. Prefixes.
        let hlen = decoded.pdu.type.headerLength
        for length in Set([0, 1, 7, 8, 9, hlen - 1, hlen, hlen + 3, wire.readableBytes / 2, wire.readableBytes - 1])
        where length >= 0 && length < wire.readableBytes {
            var prefix = wire.getSlice(at: wire.readerIndex, length: length)!
            do {
                let r = try NVMeTCPPDU.decode(from: &prefix, maximumLength: maximumLength)
                fuzzCheck(r == nil, "a \(length)-byte prefix of a \(wire.readableBytes)-byte PDU decoded to \(r!); PDU \(hex(wire))")
            } catch {
                fuzzViolation("a \(length)-byte prefix of a valid \(wire.readableBytes)-byte PDU threw \(error); PDU \(hex(wire))")
            }
        }

        // 2. Same digests.
        var encoded = ByteBuffer()
        decoded.encode(into: &encoded)
        var again = encoded
        let second: DecodedPDU?
        do {
            second = try NVMeTCPPDU.decode(from: &again, maximumLength: maximumLength)
        } catch {
            fuzzViolation("re-encoded PDU does not decode: \(error)\n original \(hex(wire))\n re-encoded \(hex(encoded))")
        }
        guard let second else {
            fuzzViolation("re-encoded PDU decodes as incomplete\n original \(hex(wire))\n re-encoded \(hex(encoded))")
        }
        fuzzCheck(again.readableBytes == 0, "re-encoded PDU has \(again.readableBytes) bytes left over after decoding\n re-encoded \(hex(encoded))")
        fuzzCheck(encoded.readableBytes <= wire.readableBytes, "re-encoding grew the PDU from \(wire.readableBytes) to \(encoded.readableBytes) bytes")
        var expected = decoded
        expected.dataDigestValid = true
        fuzzCheck(second == expected, "decode(encode(x)) != x\n x = \(decoded)\n got \(second)\n original \(hex(wire))\n re-encoded \(hex(encoded))")

        // 3. Encoding is a fixed point after one round.
        var encoded2 = ByteBuffer()
        second.encode(into: &encoded2)
        fuzzCheck(encoded2 == encoded, "encode(decode(encode(x))) != encode(x)\n first \(hex(encoded))\n second \(hex(encoded2))")

        // 4 and 5. Other digest choices, and the header-only encoder.
        let pdu = decoded.pdu
        let type = pdu.type
        let data = pdu.data ?? ByteBuffer()
        for (hd, dd) in digestChoices {
            var b = ByteBuffer()
            pdu.encode(into: &b, headerDigest: hd, dataDigest: dd)
            var copy = b
            let d: DecodedPDU?
            do {
                d = try NVMeTCPPDU.decode(from: &copy, maximumLength: Int(UInt32.max))
            } catch {
                fuzzViolation("PDU encoded with hd=\(hd) dd=\(dd) does not decode: \(error)\n \(pdu)\n \(hex(b))")
            }
            guard let d else { fuzzViolation("PDU encoded with hd=\(hd) dd=\(dd) decodes as incomplete: \(hex(b))") }
            fuzzCheck(copy.readableBytes == 0, "PDU encoded with hd=\(hd) dd=\(dd) leaves \(copy.readableBytes) bytes")
            fuzzCheck(d.pdu == pdu, "PDU value changed when encoded with hd=\(hd) dd=\(dd)\n x = \(pdu)\n got \(d.pdu)")
            fuzzCheck(d.headerDigest == (hd && type.allowsDigests), "header digest flag \(d.headerDigest) after encoding with hd=\(hd) (\(type))")
            fuzzCheck(d.dataDigest == (dd && type.allowsDigests && data.readableBytes > 0),
                      "data digest flag \(d.dataDigest) after encoding with dd=\(dd) (\(type), \(data.readableBytes) data bytes)")
            fuzzCheck(d.dataDigestValid, "freshly encoded data digest does not verify: \(hex(b))")

            var split = ByteBuffer()
            pdu.encodeHeader(into: &split, headerDigest: hd, dataDigest: dd, dataLength: data.readableBytes)
            split.writeImmutableBuffer(data)
            if dd && type.allowsDigests && data.readableBytes > 0 {
                split.writeInteger(CRC32C.checksum(data), endianness: .little)
            }
            fuzzCheck(split == b, "encodeHeader + data differs from encode (hd=\(hd) dd=\(dd))\n encode \(hex(b))\n header+data \(hex(split))")
        }
    }
}
