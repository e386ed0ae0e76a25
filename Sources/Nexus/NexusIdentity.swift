#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NVMe

/// Who a nexus instance is to its children and to the host (DESIGN.md §2 "Fencing details"):
/// its own host NQN `nqn.2026-11.io.halyard:nexus:<nexus-uuid>` and host ID (the nexus UUID's
/// 16 bytes), so two nexuses on one node are distinct registrants; its reservation key; and the
/// volume's subsystem NQN `nqn.2026-11.io.halyard:<volume-uuid>`, identical on every node.
public struct NexusIdentity: Hashable, Sendable {
    public let nexusUUID: UUID
    public let volumeUUID: UUID
    /// The reservation key this nexus registers on every child (never 0).
    public let reservationKey: UInt64

    public init(nexusUUID: UUID, volumeUUID: UUID, reservationKey: UInt64? = nil) {
        self.nexusUUID = nexusUUID
        self.volumeUUID = volumeUUID
        self.reservationKey = reservationKey ?? Self.derivedKey(nexusUUID)
        precondition(self.reservationKey != 0, "reservation key 0 is not a key")
    }

    /// The host NQN the nexus connects to its children with.
    public var hostNQN: String { "nqn.2026-11.io.halyard:nexus:\(nexusUUID.uuidString.lowercased())" }

    /// The 16-byte host ID (the nexus UUID).
    public var hostID: [UInt8] { Self.bytes(nexusUUID) }

    /// The host ID as the target's reservation gate identifies a host.
    public var hostIdentifier: HostIdentifier {
        let b = hostID
        var low: UInt64 = 0
        var high: UInt64 = 0
        for i in 0..<8 { low |= UInt64(b[i]) << (8 * UInt64(i)) }
        for i in 0..<8 { high |= UInt64(b[8 + i]) << (8 * UInt64(i)) }
        return HostIdentifier(low: low, high: high)
    }

    /// The subsystem NQN the volume is published as.
    public var volumeNQN: String { Self.volumeNQN(volumeUUID) }

    public static func volumeNQN(_ volume: UUID) -> String { "nqn.2026-11.io.halyard:\(volume.uuidString.lowercased())" }

    /// The default reservation key: the nexus UUID's last 8 bytes, big-endian; 1 if they are 0.
    public static func derivedKey(_ uuid: UUID) -> UInt64 {
        let b = bytes(uuid)
        var key: UInt64 = 0
        for i in 8..<16 { key = key << 8 | UInt64(b[i]) }
        return key == 0 ? 1 : key
    }

    static func bytes(_ uuid: UUID) -> [UInt8] {
        withUnsafeBytes(of: uuid.uuid) { Array($0) }
    }

    /// The UUID a child is known by in the health record and rebuild logs: the replica UUID of a
    /// Halyard replica NQN (`nqn.2026-11.io.halyard:replica:<uuid>`), else a name-based UUID of the URI.
    public static func childUUID(uri: String) -> UUID {
        let marker = ":replica:"
        if let range = uri.range(of: marker, options: .backwards),
           let uuid = UUID(uuidString: String(uri[range.upperBound...].prefix(36))) {
            return uuid
        }
        // FNV-1a over the URI, twice with different offsets, shaped as a version-8 UUID.
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash: UInt64 = seed
            for byte in uri.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
        var b = [UInt8](repeating: 0, count: 16)
        let a = fnv(0xcbf2_9ce4_8422_2325), c = fnv(0x8422_2325_cbf2_9ce4)
        for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: a >> (8 * UInt64(i))); b[8 + i] = UInt8(truncatingIfNeeded: c >> (8 * UInt64(i))) }
        b[6] = (b[6] & 0x0F) | 0x80
        b[8] = (b[8] & 0x3F) | 0x80
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}
