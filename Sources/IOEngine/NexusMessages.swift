#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import IOEngineAPI
import Nexus

/// Nexus values as the API's protobuf messages.
extension Halyard_Ioengine_V1_Nexus {
    init(_ view: NexusView) {
        self.init()
        let s = view.snapshot
        uuid = s.uuid.lowercased
        volumeUuid = s.volumeUUID.lowercased
        nqn = s.nqn
        uri = view.uri
        sizeBytes = s.sizeBytes
        blockSize = UInt32(clamping: s.blockSize)
        state = s.state.rawValue
        shutdownReason = s.shutdownReason.map { "\($0)" } ?? ""
        let running = Dictionary(s.rebuilds.map { ($0.destination, $0) }, uniquingKeysWith: { a, _ in a })
        children = s.children.map { child in
            var c = Halyard_Ioengine_V1_NexusChild()
            c.uri = child.uri
            c.uuid = child.uuid.lowercased
            c.state = child.state.name
            if case .faulted(let reason) = child.state { c.reason = "\(reason)" }
            c.healthy = child.healthy
            c.sinceUnixNanos = Self.nanos(child.since)
            c.hasRebuildLog_p = child.hasRebuildLog
            if let progress = running[child.uri] { c.rebuild = .init(progress, nexus: s.uuid) }
            c.local = view.localChildren.contains(child.uri)
            return c
        }
        reservationKey = s.reservationKey
        switch s.preemptPolicy {
        case .holder:
            preemptPolicy = .holder
        case .argKey(let key):
            preemptPolicy = .argkey
            preemptKey = key
        }
        minCntlid = UInt32(s.controllerIDRange.lowerBound)
        maxCntlid = UInt32(s.controllerIDRange.upperBound)
        stateChangedAtUnixNanos = Self.nanos(s.stateChangedAt)
        fencedAtUnixNanos = s.fencedAt.map(Self.nanos) ?? 0
        preemptedAtUnixNanos = s.preemptedAt.map(Self.nanos) ?? 0
        shutdownCompletedAtUnixNanos = s.shutdownCompletedAt.map(Self.nanos) ?? 0
        published = view.publication != nil
        allowedHosts = view.publication?.allowedHosts ?? []
        rebuilds = s.rebuilds.sorted { $0.destination < $1.destination }.map { .init($0, nexus: s.uuid) }
        var stats = Halyard_Ioengine_V1_NexusIOStats()
        let reads = view.stats.reads.snapshot, writes = view.stats.writes.snapshot
        stats.readOps = reads.operations
        stats.writeOps = writes.operations
        stats.readBytes = reads.bytes
        stats.writtenBytes = writes.bytes
        stats.readErrors = reads.errors
        stats.writeErrors = writes.errors
        io = stats
    }

    static func nanos(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1e9).rounded())
    }
}

extension Halyard_Ioengine_V1_RebuildProgress {
    init(_ p: RebuildProgress, nexus: UUID) {
        self.init()
        id = p.id.lowercased
        nexusUuid = nexus.lowercased
        childUri = p.destination
        childUuid = NexusIdentity.childUUID(uri: p.destination).lowercased
        sourceUri = p.source
        if case .partial = p.kind { partial = true }
        switch p.state {
        case .pending: state = "Pending"
        case .running: state = "Running"
        case .completed: state = "Completed"
        case .failed(let failure):
            state = "Failed"
            error = failure.description
        case .cancelled: state = "Cancelled"
        }
        segmentBytes = UInt64(p.segmentBytes)
        segmentsTotal = p.totalSegments
        segmentsCopied = p.segmentsCopied
        segmentsSkipped = p.segmentsSkipped
        bytesCopied = p.bytesCopied
        startedAtUnixNanos = p.startedAt.map(Halyard_Ioengine_V1_Nexus.nanos) ?? 0
        finishedAtUnixNanos = p.finishedAt.map(Halyard_Ioengine_V1_Nexus.nanos) ?? 0
    }
}

extension Halyard_Ioengine_V1_RebuildLimits {
    init(_ limits: RebuildLimits) {
        self.init()
        concurrency = UInt32(limits.concurrency)
        bytesPerSecond = limits.bytesPerSecond ?? 0
        segmentBytes = UInt64(limits.segmentBytes)
    }
}

extension Halyard_Ioengine_V1_HealthRecord {
    init(_ view: HealthRecordView) {
        self.init()
        key = view.key
        volumeUuid = view.volume.lowercased
        nexusUuid = view.nexus.lowercased
        cleanShutdown = view.record.cleanShutdown
        children = view.record.children.map { child in
            var c = Halyard_Ioengine_V1_HealthRecordChild()
            c.uuid = child.uuid
            c.healthy = child.healthy
            return c
        }
        modRevision = view.modRevision
    }
}
