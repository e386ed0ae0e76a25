#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nexus

/// What CreateNexus asks for, validated before anything is touched. Two requests are the same
/// nexus (an idempotent repeat) when ``sameNexus(as:)`` holds; the publish part is compared apart.
struct NexusCreateRequest: Sendable, Hashable {
    var uuid: UUID
    var volumeUUID: UUID
    var sizeBytes: UInt64
    var children: [String]
    var controllerIDRange: ClosedRange<UInt16>
    /// nil: derived from the nexus UUID.
    var reservationKey: UInt64?
    var preemptPolicy: PreemptPolicy
    var publish: Bool
    var allowedHosts: [String]

    /// The controller IDs a subsystem may hand out (0xFFF0… are reserved, NVMe base spec 2.0 §5.27).
    static let controllerIDs: ClosedRange<UInt16> = 1...0xFFEF

    init(uuid: String, volumeUUID: String, sizeBytes: UInt64, children: [String], minControllerID: UInt32, maxControllerID: UInt32,
         reservationKey: UInt64, preemptArgKey: Bool, preemptKey: UInt64, publish: Bool, allowedHosts: [String]) throws(IOEngineError)
    {
        let nexus = try NexusValidation.uuid(uuid)
        self.uuid = nexus
        guard !volumeUUID.isEmpty else { throw .invalidArgument("nexus \(nexus.lowercased): volume uuid is empty") }
        guard let volume = UUID(uuidString: volumeUUID) else {
            throw .invalidArgument("nexus \(nexus.lowercased): volume uuid '\(volumeUUID)' is not a UUID")
        }
        self.volumeUUID = volume
        guard sizeBytes > 0 else { throw .invalidArgument("nexus \(nexus.lowercased) size 0 bytes: must be a non-zero multiple of the block size") }
        self.sizeBytes = sizeBytes
        guard !children.isEmpty else { throw .invalidArgument("nexus \(nexus.lowercased): no child (give at least one replica URI)") }
        var seen = Set<String>()
        for child in children {
            try NexusValidation.childURI(child, nexus: nexus)
            guard seen.insert(child).inserted else { throw .invalidArgument("nexus \(nexus.lowercased): child \(child) is listed twice") }
        }
        self.children = children
        switch (minControllerID, maxControllerID) {
        case (0, 0):
            controllerIDRange = Self.controllerIDs
        default:
            guard minControllerID >= 1, minControllerID <= maxControllerID, maxControllerID <= UInt32(Self.controllerIDs.upperBound) else {
                throw .invalidArgument("nexus \(nexus.lowercased) controller IDs \(minControllerID)...\(maxControllerID): "
                    + "must satisfy 1 <= min <= max <= 65519 (0xFFEF)")
            }
            controllerIDRange = UInt16(minControllerID)...UInt16(maxControllerID)
        }
        self.reservationKey = reservationKey == 0 ? nil : reservationKey
        if preemptArgKey {
            guard preemptKey != 0 else {
                throw .invalidArgument("nexus \(nexus.lowercased): preempt policy argkey needs a non-zero preempt key")
            }
            preemptPolicy = .argKey(preemptKey)
        } else {
            guard preemptKey == 0 else {
                throw .invalidArgument("nexus \(nexus.lowercased): a preempt key (0x\(String(preemptKey, radix: 16))) needs preempt policy argkey")
            }
            preemptPolicy = .holder
        }
        self.publish = publish
        self.allowedHosts = try NexusValidation.hosts(allowedHosts, nexus: nexus)
    }

    /// The same nexus: every parameter but the publish ones equal.
    func sameNexus(as other: NexusCreateRequest) -> Bool {
        var a = self, b = other
        a.publish = false; a.allowedHosts = []
        b.publish = false; b.allowedHosts = []
        return a == b
    }

    /// What differs from `other` (for the ALREADY_EXISTS message).
    func differences(from other: NexusCreateRequest) -> [String] {
        var out: [String] = []
        if volumeUUID != other.volumeUUID { out.append("volume \(volumeUUID.lowercased), requested \(other.volumeUUID.lowercased)") }
        if sizeBytes != other.sizeBytes { out.append("size \(sizeBytes), requested \(other.sizeBytes)") }
        if children != other.children { out.append("children \(children), requested \(other.children)") }
        if controllerIDRange != other.controllerIDRange {
            out.append("controller IDs \(controllerIDRange), requested \(other.controllerIDRange)")
        }
        if reservationKey != other.reservationKey {
            out.append("reservation key \(reservationKey.map { "0x" + String($0, radix: 16) } ?? "derived"), requested "
                + "\(other.reservationKey.map { "0x" + String($0, radix: 16) } ?? "derived")")
        }
        if preemptPolicy != other.preemptPolicy { out.append("preempt policy \(preemptPolicy), requested \(other.preemptPolicy)") }
        return out
    }

    /// The nexus's configuration (rebuild logs under `rebuildLogDirectory`).
    func configuration(rebuildLogDirectory: String, limits: RebuildLimits) -> NexusConfiguration {
        var configuration = NexusConfiguration(uuid: uuid, volumeUUID: volumeUUID, sizeBytes: sizeBytes, children: children)
        configuration.controllerIDRange = controllerIDRange
        configuration.reservationKey = reservationKey
        configuration.preemptPolicy = preemptPolicy
        configuration.rebuildLogDirectory = rebuildLogDirectory
        configuration.rebuildLimits = limits
        return configuration
    }
}

/// Input checks shared by the nexus calls.
enum NexusValidation {
    static func uuid(_ text: String) throws(IOEngineError) -> UUID {
        guard !text.isEmpty else { throw .invalidArgument("nexus uuid is empty") }
        guard let uuid = UUID(uuidString: text) else { throw .invalidArgument("nexus uuid '\(text)' is not a UUID") }
        return uuid
    }

    /// A child URI `nvmf://HOST:PORT/SUBNQN`.
    static func childURI(_ uri: String, nexus: UUID) throws(IOEngineError) {
        do {
            _ = try ChildURI(parsing: uri)
        } catch {
            if case .invalidRequest(let why) = error { throw .invalidArgument("nexus \(nexus.lowercased): \(why)") }
            throw .invalidArgument("nexus \(nexus.lowercased): child URI '\(uri)': \(error)")
        }
    }

    /// Allowed host NQNs: 1…223 printable ASCII characters each, at most 256, duplicates dropped.
    static func hosts(_ hosts: [String], nexus: UUID) throws(IOEngineError) -> [String] {
        var unique: [String] = []
        for host in hosts {
            guard !host.isEmpty, host.utf8.count <= 223, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw .invalidArgument("nexus \(nexus.lowercased): allowed host '\(host)' is not an NQN (1 to 223 printable ASCII characters)")
            }
            if !unique.contains(host) { unique.append(host) }
        }
        guard unique.count <= 256 else { throw .invalidArgument("nexus \(nexus.lowercased): \(unique.count) allowed hosts, at most 256") }
        return unique
    }
}

extension IOEngineError {
    /// The API class of a nexus error (its message kept).
    init(_ error: NexusError) {
        switch error {
        case .invalidArgument(let m): self.init(.invalidArgument, m)
        case .notFound(let m): self.init(.notFound, m)
        case .failedPrecondition(let m): self.init(.failedPrecondition, m)
        case .unavailable(let m): self.init(.unavailable, m)
        }
    }
}
