import FuzzCommon
import NIOCore
import NVMe

/// Round-trip checks for the fixed-layout NVMe structures (`Sources/NVMe`).
///
/// For a structure T decoded from bytes B:
/// - a failed decode consumes nothing (unless `failureMayConsume`: the NIDL decoder takes its
///   4096-byte page before validating the descriptors, and documents no such promise);
/// - a successful decode consumes exactly as many bytes as `encode` writes back;
/// - decode(encode(x)) == normalize(x), consuming all of encode(x);
/// - encode(decode(encode(x))) == encode(x) (when normalization changed x: encode∘decode settles
///   within a few rounds).
/// `normalize` is the identity except where the canonical form is legitimately lossy (documented
/// at each use below).
func checkStructure<T: Hashable>(
    _ name: String, _ input: ByteBuffer,
    decode: (inout ByteBuffer) throws -> T,
    encode: (T, inout ByteBuffer) -> Void,
    normalize: (T) -> T = { $0 },
    failureMayConsume: Bool = false
) {
    var buffer = input
    let first: T
    do {
        first = try decode(&buffer)
    } catch {
        fuzzCheck(failureMayConsume || buffer.readerIndex == input.readerIndex, "\(name): failed decode (\(error)) consumed \(buffer.readerIndex - input.readerIndex) bytes")
        return
    }
    let consumed = buffer.readerIndex - input.readerIndex
    var encoded = ByteBufferAllocator().buffer(capacity: consumed)
    encode(first, &encoded)
    fuzzCheck(consumed == encoded.readableBytes,
              "\(name): decode consumed \(consumed) bytes but encode writes \(encoded.readableBytes)\n input \(hex(input))")
    var again = encoded
    let second: T
    do {
        second = try decode(&again)
    } catch {
        fuzzViolation("\(name): encode(decode(B)) does not decode: \(error)\n input \(hex(input))\n encoded \(hex(encoded))")
    }
    fuzzCheck(again.readableBytes == 0, "\(name): decoding encode(x) left \(again.readableBytes) bytes")
    let expected = normalize(first)
    fuzzCheck(second == expected, "\(name): decode(encode(x)) != x\n x   = \(expected)\n got = \(second)\n input \(hex(input))")
    var encoded2 = ByteBufferAllocator().buffer(capacity: encoded.readableBytes)
    encode(second, &encoded2)
    if expected == first {
        fuzzCheck(encoded2 == encoded, "\(name): encode(decode(encode(x))) != encode(x)\n first  \(hex(encoded))\n second \(hex(encoded2))")
    } else {
        // A lossy field was normalized: its encoding may take another round to settle (e.g. a
        // truncated U+FFFD run that now ends in a space, which the next decode strips as padding),
        // but it must settle.
        var previous = encoded
        var current = encoded2
        var rounds = 1
        while current != previous {
            fuzzCheck(rounds < 4, "\(name): encode∘decode does not settle after \(rounds) rounds\n input \(hex(input))")
            var copy = current
            guard let value = try? decode(&copy) else {
                fuzzViolation("\(name): round \(rounds) encoding does not decode: \(hex(current))")
            }
            previous = current
            current = ByteBuffer()
            encode(value, &current)
            rounds += 1
        }
    }
}

/// Whether `HALYARD_FUZZ_STRICT` is set: known, reported lossy cases of the sources are then
/// violations too (see README.md, "Known issues").
let strict = environmentFlag("HALYARD_FUZZ_STRICT")

/// What decoding the encoding of the fixed-width text field `s` should give back.
///
/// Exactly `s`, except:
/// - (legitimately lossy) `s` holds U+FFFD: the field held bytes that are not UTF-8 (the fields
///   are ASCII by spec). Each bad byte became a 3-byte U+FFFD, so the re-encoded text may no
///   longer fit the width and is truncated, possibly mid-character.
func expectedText(_ s: String, width: Int, pad: UInt8) -> String {
    var field = ByteBuffer()
    field.writeFixedASCII(s, width: width, pad: pad)
    let canonical = field.readFixedASCII(width: width)!
    if canonical == s { return s }
    if s.unicodeScalars.contains("\u{FFFD}") { return canonical }
    return s
}

/// The inputs for a structure of `size` bytes (at least `size` for variable-size ones): `input`
/// itself, and when it is shorter (which only reaches the truncation path) and `padded`, `input`
/// zero-padded to `size`.
func candidates(_ input: ByteBuffer, _ size: Int, padded: Bool) -> [ByteBuffer] {
    input.readableBytes >= size || !padded ? [input] : [input, input.zeroPaddedPrefix(size)]
}

/// Feeds `input` to every structure decoder, raw (to reach the truncation paths) and zero-padded
/// to the structure's size (so fixed-size structures decode from short inputs too).
///
/// Short inputs are zero-padded for one of the 4 KiB-class structures only (Identify Controller,
/// Identify Namespace, Discovery log, NIDL, Active/Changed NS lists), chosen by the input length:
/// padding all of them on every input made this fuzzer several times slower.
func checkStructures(_ input: ByteBuffer) {
    let pick = input.readableBytes % 6
    // SQE: 64 bytes, every bit kept (reserved SGL bytes included): encode(decode(B)) == B.
    checkStructure("SubmissionQueueEntry", input.zeroPaddedPrefix(64),
                   decode: { try SubmissionQueueEntry(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    do {
        var b = input.zeroPaddedPrefix(64)
        let original = b
        if let sqe = try? SubmissionQueueEntry(decoding: &b) {
            var out = ByteBuffer()
            sqe.encode(into: &out)
            fuzzCheck(out == original, "SubmissionQueueEntry is not bit-exact\n in  \(hex(original))\n out \(hex(out))")
            // Typed views never trap.
            _ = ConnectCommand(sqe)
            _ = PropertyCommand(sqe)
            _ = GetLogPageCommandFields(cdw10: sqe.cdw10, cdw11: sqe.cdw11, cdw12: sqe.cdw12, cdw13: sqe.cdw13, cdw14: sqe.cdw14).lengthInBytes
            _ = IdentifyCommandFields(cdw10: sqe.cdw10, cdw11: sqe.cdw11)
            _ = FeatureCommandFields(cdw10: sqe.cdw10)
        } else {
            fuzzViolation("SubmissionQueueEntry failed on 64 bytes")
        }
    }
    var raw = input
    _ = try? SubmissionQueueEntry(decoding: &raw)

    // CQE: 16 bytes, every bit but the phase tag (bit 0 of byte 14) kept.
    checkStructure("CompletionQueueEntry", input.zeroPaddedPrefix(16),
                   decode: { try CompletionQueueEntry(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    do {
        var b = input.zeroPaddedPrefix(16)
        var original = b
        if let cqe = try? CompletionQueueEntry(decoding: &b) {
            var out = ByteBuffer()
            cqe.encode(into: &out)
            original.setInteger(original.getInteger(at: 14, as: UInt8.self)! & 0xFE, at: 14)
            fuzzCheck(out == original, "CompletionQueueEntry is not bit-exact (phase aside)\n in  \(hex(original))\n out \(hex(out))")
        }
    }

    checkReservationStructures(input)

    // Connect data: NQNs are fixed-width text fields.
    for candidate in candidates(input, ConnectData.encodedSize, padded: true) {
        checkStructure("ConnectData", candidate,
                       decode: { try ConnectData(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                       normalize: { d in
                           var d = d
                           d.subsystemNQN = expectedText(d.subsystemNQN, width: 256, pad: 0)
                           d.hostNQN = expectedText(d.hostNQN, width: 256, pad: 0)
                           return d
                       })
    }

    // Identify Controller: fields not modelled are dropped (encode writes zeros), so only the
    // decoded value is compared, plus the text fields as above.
    for candidate in candidates(input, IdentifyController.encodedSize, padded: pick == 0) {
        checkStructure("IdentifyController", candidate,
                       decode: { try IdentifyController(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                       normalize: { c in
                           var c = c
                           c.serialNumber = expectedText(c.serialNumber, width: 20, pad: 0x20)
                           c.modelNumber = expectedText(c.modelNumber, width: 40, pad: 0x20)
                           c.firmwareRevision = expectedText(c.firmwareRevision, width: 8, pad: 0x20)
                           c.subnqn = expectedText(c.subnqn, width: 256, pad: 0)
                           return c
                       })
    }

    for candidate in candidates(input, IdentifyNamespace.encodedSize, padded: pick == 1) {
        checkStructure("IdentifyNamespace", candidate,
                       decode: { try IdentifyNamespace(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    }

    // ANA log page: `encode` writes each group's NSIDs sorted ascending (the spec requires
    // ascending order), while `decode` keeps the order on the wire, so an unsorted list comes back
    // sorted: legitimately lossy, normalized by sorting.
    checkStructure("ANALogPage", input,
                   decode: { try ANALogPage(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                   normalize: { page in
                       var page = page
                       for i in page.groups.indices { page.groups[i].namespaceIDs.sort() }
                       return page
                   })
    // The RGO form: every NNSIDS 0.
    do {
        var b = input
        if let page = try? ANALogPage(decoding: &b) {
            var rgo = ByteBuffer()
            page.encode(into: &rgo, includeNamespaceIDs: false)
            fuzzCheck(rgo.readableBytes == page.encodedSize(includeNamespaceIDs: false), "ANALogPage RGO size mismatch")
            var c = rgo
            guard let back = try? ANALogPage(decoding: &c) else { fuzzViolation("ANALogPage RGO form does not decode: \(hex(rgo))") }
            fuzzCheck(back.groups.count == page.groups.count && back.groups.allSatisfy(\.namespaceIDs.isEmpty), "ANALogPage RGO form kept NSIDs")
            var full = ByteBuffer()
            page.encode(into: &full)
            fuzzCheck(full.readableBytes == page.encodedSize(), "ANALogPage encodedSize \(page.encodedSize()) != \(full.readableBytes)")
        }
    }

    // Discovery log page: entries have fixed-width text fields; TSAS drops trailing zeros on
    // decode and encode pads them back, so it round-trips.
    for candidate in candidates(input, DiscoveryLogPage.headerSize + DiscoveryLogEntry.encodedSize, padded: pick == 2) {
        checkStructure("DiscoveryLogPage", candidate,
                       decode: { try DiscoveryLogPage(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                       normalize: { page in
                           var page = page
                           for i in page.entries.indices {
                               page.entries[i].transportServiceID = expectedText(page.entries[i].transportServiceID, width: 32, pad: 0)
                               page.entries[i].subsystemNQN = expectedText(page.entries[i].subsystemNQN, width: 256, pad: 0)
                               page.entries[i].transportAddress = expectedText(page.entries[i].transportAddress, width: 256, pad: 0)
                           }
                           return page
                       })
        var b = candidate
        if let page = try? DiscoveryLogPage(decoding: &b) {
            fuzzCheck(page.encodedSize == DiscoveryLogPage.headerSize + DiscoveryLogEntry.encodedSize * page.entries.count, "DiscoveryLogPage encodedSize")
            let header = try? DiscoveryLogPage.decodeHeader(candidate)
            fuzzCheck(header?.numberOfRecords == page.numberOfRecords, "DiscoveryLogPage header NUMREC != entries")
        }
    }

    for candidate in candidates(input, NamespaceIdentificationDescriptorList.encodedSize, padded: pick == 3) {
        checkStructure("NamespaceIdentificationDescriptorList", candidate,
                       decode: { try NamespaceIdentificationDescriptorList(decoding: &$0) }, encode: { $0.encode(into: &$1) },
                       failureMayConsume: true)
    }

    for candidate in candidates(input, ActiveNamespaceList.encodedSize, padded: pick == 4) {
        checkStructure("ActiveNamespaceList", candidate,
                       decode: { try ActiveNamespaceList(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    }
    for candidate in candidates(input, ChangedNamespaceList.encodedSize, padded: pick == 5) {
        checkStructure("ChangedNamespaceList", candidate,
                       decode: { try ChangedNamespaceList(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    }
    for candidate in candidates(input, 64, padded: true) {
        checkStructure("ErrorLogEntry", candidate,
                       decode: { try ErrorLogEntry(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    }
    for candidate in candidates(input, 512, padded: true) {
        checkStructure("SMARTLog", candidate,
                       decode: { try SMARTLog(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    }
    checkAllocatedRanges(input)
}

/// The vendor log page C0h (allocated ranges): the round trip, and the page's own promises: the
/// count field is the entry count; the ranges are ascending, disjoint and non-empty; a windowed
/// read (`encodeRange`, what Get Log Page serves) is the window of the whole encoding, zero-padded.
/// The window's offset and length come from the input's last 10 bytes.
func checkAllocatedRanges(_ input: ByteBuffer) {
    checkStructure("AllocatedRangesLogPage", input,
                   decode: { try AllocatedRangesLogPage(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    var b = input
    guard let page = try? AllocatedRangesLogPage(decoding: &b) else { return }
    let count = try? AllocatedRangesLogPage.decodeCount(input)
    fuzzCheck(count == UInt64(page.ranges.count), "AllocatedRangesLogPage count field \(String(describing: count)), \(page.ranges.count) ranges")
    fuzzCheck(page.ranges.allSatisfy { !$0.isEmpty } && zip(page.ranges, page.ranges.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound },
              "AllocatedRangesLogPage ranges not ascending, disjoint and non-empty: \(page.ranges)")
    var whole = ByteBuffer()
    page.encode(into: &whole)
    fuzzCheck(whole.readableBytes == page.encodedSize, "AllocatedRangesLogPage encodedSize \(page.encodedSize) != \(whole.readableBytes)")
    guard input.readableBytes >= 10 else { return }
    let tail = input.readerIndex + input.readableBytes - 10
    let raw = input.getInteger(at: tail, endianness: .little, as: UInt64.self)!
    let length = Int(input.getInteger(at: tail + 8, endianness: .little, as: UInt16.self)! % 1024)
    // Mostly offsets in or just past the page (4-byte aligned as LPOL requires, and not), sometimes the raw value.
    let offsets = [raw % UInt64(whole.readableBytes + 64), raw % UInt64(whole.readableBytes + 64) & ~3, raw]
    for offset in offsets {
        let window = page.encodeRange(offset: offset, length: length)
        let expected = GetLogPageCommandFields.window(of: whole, offset: offset, length: length)
        fuzzCheck(window == expected, "AllocatedRangesLogPage.encodeRange(offset: \(offset), length: \(length)) differs from the window of the page\n got      \(hex(window))\n expected \(hex(expected))")
    }
}

/// CRC32C: the SSE4.2 and table implementations agree, and continuing a checksum over a split
/// equals the checksum of the whole (the data-digest code relies on both).
func checkCRC(_ bytes: UnsafeRawBufferPointer) {
    let whole = CRC32C.checksum(bytes)
    let portable = CRC32C.portableChecksum(bytes)
    fuzzCheck(whole == portable, "CRC32C \(whole) != portable \(portable) over \(bytes.count) bytes")
    if let hardware = CRC32C.hardwareChecksum(bytes) {
        fuzzCheck(hardware == portable, "CRC32C hardware \(hardware) != portable \(portable) over \(bytes.count) bytes")
    }
    if bytes.count > 1 {
        let cut = Int(bytes[0]) % bytes.count
        let head = UnsafeRawBufferPointer(rebasing: bytes[..<cut])
        let tail = UnsafeRawBufferPointer(rebasing: bytes[cut...])
        fuzzCheck(CRC32C.checksum(tail, continuing: CRC32C.checksum(head)) == whole, "CRC32C continuation at \(cut) of \(bytes.count)")
        fuzzCheck(CRC32C.portableChecksum(tail, continuing: CRC32C.portableChecksum(head)) == whole, "portable CRC32C continuation at \(cut)")
    }
}

/// The reservation structures (NVMe base spec 2.0 §7.3, §8.19): command data of Register /
/// Acquire / Release, and the Reservation Report status structures a target returns.
func checkReservationStructures(_ input: ByteBuffer) {
    checkStructure("ReservationRegisterData", input.zeroPaddedPrefix(16),
                   decode: { try ReservationRegisterData(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    checkStructure("ReservationAcquireData", input.zeroPaddedPrefix(16),
                   decode: { try ReservationAcquireData(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    checkStructure("ReservationReleaseData", input.zeroPaddedPrefix(8),
                   decode: { try ReservationReleaseData(decoding: &$0) }, encode: { $0.encode(into: &$1) })
    for candidate in candidates(input, ReservationStatus.extendedHeaderSize, padded: true) {
        // REGCTL may name more registrants than the bytes hold (a truncated report): the entries
        // that are there decode, REGCTL is kept; encoding writes the same header and entries.
        checkStructure("ReservationStatus(extended)", candidate,
                       decode: { try ReservationStatus(decodingExtended: &$0) },
                       encode: { $0.encodeExtended(into: &$1, length: $0.extendedSize) })
        var raw = candidate
        _ = try? ReservationStatus(decodingStandard: &raw)
    }
    // Typed command views never trap on any dword.
    if input.readableBytes >= 8, let cdw10 = input.getInteger(at: input.readerIndex, endianness: .little, as: UInt32.self),
       let cdw11 = input.getInteger(at: input.readerIndex + 4, endianness: .little, as: UInt32.self) {
        let register = ReservationRegisterCommand(cdw10: cdw10)
        _ = (register.action, register.persistenceChange, register.cdw10)
        let acquire = ReservationAcquireCommand(cdw10: cdw10)
        _ = (acquire.action, acquire.type, acquire.cdw10)
        let release = ReservationReleaseCommand(cdw10: cdw10)
        _ = (release.action, release.type, release.cdw10)
        let report = ReservationReportCommand(cdw10: cdw10, cdw11: cdw11)
        _ = (report.lengthInBytes, report.extendedDataStructure)
    }
}
