import NIOCore
import NVMe

extension NVMeController {
    /// The block ranges of namespace `namespaceID` that hold data, read from the vendor-specific
    /// log page C0h "Halyard allocated ranges" (``AllocatedRangesLogPage``; docs/notes/nexus-plan.md),
    /// or nil when the target cannot tell: Invalid Log Page (SCT 1h, SC 09h), or Invalid Field,
    /// which targets that know no LID C0h (Linux nvmet, SPDK) answer.
    ///
    /// Paged like any log page: a 4 KiB read first; a page up to MDTS is then read again whole in
    /// one command (one consistent snapshot); a larger one in MDTS-sized pieces by LPO, after which
    /// the count is read again and the whole read repeated (at most 3 times) if it moved meanwhile.
    /// Throws ``NVMeHostError`` for other errors, and `.protocolError` for a malformed page.
    public func allocatedRanges(namespaceID: UInt32) async throws -> [Range<UInt64>]? {
        let lid = LogPageIdentifier.allocatedRanges.rawValue
        let maxChunk = max(4096, maxTransferSize) & ~3
        func read(offset: UInt64, length: Int) async throws -> ByteBuffer? {
            do {
                return try await adminCommand(.getLogPage(lid, length: length, offset: offset, nsid: namespaceID), readLength: length).data
            } catch NVMeHostError.status(let status, _)
                where status.codeType == NVMeStatus.invalidLogPage.codeType && status.code == NVMeStatus.invalidLogPage.code
                || status.codeType == NVMeStatus.invalidField.codeType && status.code == NVMeStatus.invalidField.code {
                return nil
            }
        }
        func decode(_ page: ByteBuffer) throws -> [Range<UInt64>] {
            var page = page
            do {
                return try AllocatedRangesLogPage(decoding: &page).ranges
            } catch {
                throw NVMeHostError.protocolError("allocated ranges log page: \(error)")
            }
        }
        func size(_ count: UInt64) throws -> Int {
            // 2^24 ranges (256 MiB of page): far more than any replica's extent map holds.
            guard count <= 1 << 24 else {
                throw NVMeHostError.protocolError("allocated ranges log page claims \(count) entries")
            }
            return AllocatedRangesLogPage.encodedSize(rangeCount: Int(count))
        }

        guard let first = try await read(offset: 0, length: 4096) else { return nil }
        var total = try size(try AllocatedRangesLogPage.decodeCount(first))
        if total <= 4096 { return try decode(first) }
        for _ in 0..<3 {
            if total <= maxChunk {
                // One command: the target builds the page once, so the snapshot is consistent.
                guard let whole = try await read(offset: 0, length: total) else { return nil }
                let now = try size(try AllocatedRangesLogPage.decodeCount(whole))
                if now <= total { return try decode(whole) }
                total = now
                continue
            }
            var page = ByteBufferAllocator().buffer(capacity: total)
            while page.readableBytes < total {
                let length = min(maxChunk, total - page.readableBytes)
                guard var part = try await read(offset: UInt64(page.readableBytes), length: length) else { return nil }
                page.writeBuffer(&part)
            }
            let count = try AllocatedRangesLogPage.decodeCount(page)
            guard let header = try await read(offset: 0, length: 8) else { return nil }
            let again = try AllocatedRangesLogPage.decodeCount(header)
            if count == again, try size(count) == total, let ranges = try? decode(page) { return ranges }
            total = try size(again)
        }
        throw NVMeHostError.protocolError("allocated ranges log page kept changing while it was read")
    }
}
