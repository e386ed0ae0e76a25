#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The pool label, kept in two 4 KiB slots at byte 0 and 4 KiB. Every update writes the slot
/// that does not hold the current one with `generation + 1`; import takes the valid slot (magic,
/// version, CRC32C) with the higher generation, so a torn superblock write leaves the other.
///
/// Encoding (little endian, 512 bytes, the rest of the slot zero):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic "HLYDPOOL" |
/// | 8 | 4 | version (1) |
/// | 12 | 4 | flags (bit 0: the pool created its backing file) |
/// | 16 | 16 | pool UUID |
/// | 32 | 8 | generation |
/// | 40 | 4 | block size |
/// | 44 | 8 | extent size |
/// | 52 | 8 | device size |
/// | 60 | 8 | journal offset |
/// | 68 | 8 | journal size |
/// | 76 | 8 | checkpoint slot A offset |
/// | 84 | 8 | checkpoint slot B offset |
/// | 92 | 8 | checkpoint slot size |
/// | 100 | 1 | active checkpoint slot (0 = A, 1 = B) |
/// | 101 | 8 | checkpoint sequence (the last journal seq the checkpoint holds) |
/// | 109 | 8 | journal start (ring offset of record seq checkpointSeq + 1) |
/// | 117 | 8 | data offset |
/// | 125 | 8 | extent count |
/// | 133 | 2+n | name (u16 length, UTF-8) |
/// | 508 | 4 | CRC32C of bytes 0..<508 |
struct Superblock: Equatable, Sendable {
    static let magic: [UInt8] = Array("HLYDPOOL".utf8)
    static let version: UInt32 = 1
    static let encodedSize = 512
    static let crcOffset = 508
    /// Byte offsets of the two slots.
    static let slotOffsets: [UInt64] = [0, 4096]
    static let slotSize = 4096
    static let maximumNameBytes = 128

    static let flagCreatedFile: UInt32 = 1

    var uuid: UUID
    var name: String
    var generation: UInt64
    var flags: UInt32
    var blockSize: Int
    var extentSize: UInt64
    var deviceSize: UInt64
    var journalOffset: UInt64
    var journalSize: UInt64
    var checkpointOffsets: [UInt64]
    var checkpointSize: UInt64
    var activeCheckpoint: Int
    var checkpointSeq: UInt64
    var journalStart: UInt64
    var dataOffset: UInt64
    var extentCount: UInt64

    var createdFile: Bool { flags & Self.flagCreatedFile != 0 }

    /// The 4 KiB slot image.
    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.slotSize)
        w.raw(Self.magic)
        w.u32(Self.version)
        w.u32(flags)
        w.uuid(uuid)
        w.u64(generation)
        w.u32(UInt32(blockSize))
        w.u64(extentSize)
        w.u64(deviceSize)
        w.u64(journalOffset)
        w.u64(journalSize)
        w.u64(checkpointOffsets[0])
        w.u64(checkpointOffsets[1])
        w.u64(checkpointSize)
        w.u8(UInt8(activeCheckpoint))
        w.u64(checkpointSeq)
        w.u64(journalStart)
        w.u64(dataOffset)
        w.u64(extentCount)
        w.string(name)
        var bytes = w.bytes
        bytes += [UInt8](repeating: 0, count: Self.slotSize - bytes.count)
        let crc = Checksum.crc32c(bytes, range: 0..<Self.crcOffset)
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { bytes[Self.crcOffset + i] = $0[i] } }
        return bytes
    }

    /// Whether `bytes` start with the superblock magic (a pool label, valid or not).
    static func hasMagic(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 8 && Array(bytes[0..<8]) == magic
    }

    /// Decodes and validates a slot image.
    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Superblock {
        guard bytes.count >= encodedSize else { throw DecodeError("superblock: \(bytes.count) bytes, need \(encodedSize)") }
        guard hasMagic(bytes) else { throw DecodeError("superblock: bad magic") }
        var stored: UInt32 = 0
        for i in 0..<4 { stored |= UInt32(bytes[crcOffset + i]) << (i * 8) }
        let computed = Checksum.crc32c(bytes, range: 0..<crcOffset)
        guard stored == computed else {
            throw DecodeError("superblock: CRC mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        var r = ByteReader(bytes, offset: 8, end: crcOffset)
        let version = try r.u32("version")
        guard version == Self.version else { throw DecodeError("superblock: unsupported version \(version)") }
        let flags = try r.u32("flags")
        let uuid = try r.uuid()
        let generation = try r.u64("generation")
        let blockSize = Int(try r.u32("block size"))
        let extentSize = try r.u64("extent size")
        let deviceSize = try r.u64("device size")
        let journalOffset = try r.u64("journal offset")
        let journalSize = try r.u64("journal size")
        let checkpointA = try r.u64("checkpoint A")
        let checkpointB = try r.u64("checkpoint B")
        let checkpointSize = try r.u64("checkpoint size")
        let active = Int(try r.u8("active checkpoint"))
        let checkpointSeq = try r.u64("checkpoint seq")
        let journalStart = try r.u64("journal start")
        let dataOffset = try r.u64("data offset")
        let extentCount = try r.u64("extent count")
        let name = try r.string("name")
        let sb = Superblock(
            uuid: uuid, name: name, generation: generation, flags: flags, blockSize: blockSize, extentSize: extentSize,
            deviceSize: deviceSize, journalOffset: journalOffset, journalSize: journalSize,
            checkpointOffsets: [checkpointA, checkpointB], checkpointSize: checkpointSize, activeCheckpoint: active,
            checkpointSeq: checkpointSeq, journalStart: journalStart, dataOffset: dataOffset, extentCount: extentCount)
        try sb.validateLayout()
        return sb
    }

    /// Checks that the regions are sane and do not overlap (a CRC-valid label written by a
    /// buggy build must not make import read out of range).
    func validateLayout() throws(DecodeError) {
        guard blockSize == 512 || blockSize == 4096 else { throw DecodeError("superblock: block size \(blockSize)") }
        guard extentSize >= PoolCreateOptions.minimumExtentSize, extentSize <= PoolCreateOptions.maximumExtentSize,
            extentSize & (extentSize - 1) == 0
        else { throw DecodeError("superblock: extent size \(extentSize)") }
        guard activeCheckpoint == 0 || activeCheckpoint == 1 else { throw DecodeError("superblock: active checkpoint \(activeCheckpoint)") }
        let block: UInt64 = 4096
        for value in [journalOffset, journalSize, checkpointOffsets[0], checkpointOffsets[1], checkpointSize, journalStart] {
            guard value % block == 0 else { throw DecodeError("superblock: region offset/size \(value) not 4 KiB aligned") }
        }
        guard journalSize > 0, checkpointSize > 0, journalStart < journalSize else {
            throw DecodeError("superblock: empty journal/checkpoint or journal start \(journalStart) ≥ size \(journalSize)")
        }
        // Sums that wrap around are overlaps too (a wrapped journal end passed this check, and
        // import then tried to read a journal of ~2^64 bytes).
        let (journalEnd, journalWraps) = journalOffset.addingReportingOverflow(journalSize)
        let (endA, aWraps) = checkpointOffsets[0].addingReportingOverflow(checkpointSize)
        let (endB, bWraps) = checkpointOffsets[1].addingReportingOverflow(checkpointSize)
        guard journalOffset >= 8192, !journalWraps, !aWraps, !bWraps,
            journalEnd <= checkpointOffsets[0],
            endA <= checkpointOffsets[1],
            endB <= dataOffset,
            dataOffset % extentSize == 0
        else { throw DecodeError("superblock: overlapping regions") }
        let (dataBytes, overflow) = extentCount.multipliedReportingOverflow(by: extentSize)
        guard !overflow, extentCount <= UInt64(UInt32.max) - 1, dataOffset <= deviceSize, dataBytes <= deviceSize - dataOffset else {
            throw DecodeError("superblock: \(extentCount) extents of \(extentSize) bytes do not fit in \(deviceSize) bytes")
        }
    }

    /// Computes the layout of a new pool on a device of `deviceSize` bytes.
    static func layout(
        uuid: UUID, name: String, deviceSize: UInt64, blockSize: Int, extentSize: UInt64, journalSize requestedJournal: UInt64?,
        createdFile: Bool
    ) throws(PoolError) -> Superblock {
        let block: UInt64 = 4096
        let journalOffset: UInt64 = 1 << 20
        let journalSize: UInt64
        if let requestedJournal {
            guard requestedJournal >= 64 << 10, requestedJournal % block == 0, requestedJournal <= 1 << 30 else {
                throw .invalidArgument("journal size \(requestedJournal) bytes: must be a multiple of 4096 from 64 KiB to 1 GiB")
            }
            journalSize = requestedJournal
        } else {
            journalSize = min(max(deviceSize / 1000 / block * block, 4 << 20), 64 << 20)
        }
        // Checkpoint slot: 8 bytes per mapped extent + a budget for the replica table.
        let maximumExtents = deviceSize / extentSize
        let tableBudget: UInt64 = deviceSize >= 16 << 30 ? 8 << 20 : 1 << 20
        let checkpointSize = alignUp(maximumExtents * 8 + tableBudget, block)
        let checkpointA = journalOffset + journalSize
        let checkpointB = checkpointA + checkpointSize
        let dataOffset = alignUp(checkpointB + checkpointSize, extentSize)
        guard dataOffset < deviceSize, (deviceSize - dataOffset) / extentSize >= 1 else {
            throw .invalidArgument(
                "device of \(deviceSize) bytes is too small: metadata needs \(dataOffset) bytes plus at least one \(extentSize)-byte extent")
        }
        let extentCount = (deviceSize - dataOffset) / extentSize
        return Superblock(
            uuid: uuid, name: name, generation: 1, flags: createdFile ? flagCreatedFile : 0, blockSize: blockSize,
            extentSize: extentSize, deviceSize: deviceSize, journalOffset: journalOffset, journalSize: journalSize,
            checkpointOffsets: [checkpointA, checkpointB], checkpointSize: checkpointSize, activeCheckpoint: 0, checkpointSeq: 0,
            journalStart: 0, dataOffset: dataOffset, extentCount: extentCount)
    }
}
