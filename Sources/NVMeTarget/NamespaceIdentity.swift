import NVMe

/// The identity a namespace and a subsystem present to hosts: NGUID, UUID, EUI-64 and the
/// controller serial number. Every value is derived from the subsystem NQN (and namespace ID)
/// alone, as name-based version 5 UUIDs (RFC 9562 §5.5) under a fixed Halyard namespace, so it is
/// identical after a restart and on every node that serves the same NQN — the Linux host treats
/// two controllers as paths of one namespace only when these match (NVMe base spec 2.0 §4.5.2;
/// research/nvme-tcp.md §6.1).
public struct NamespaceIdentity: Hashable, Sendable {
    public var nguid: NGUID
    public var uuid: NamespaceUUID

    public init(nguid: NGUID, uuid: NamespaceUUID) {
        self.nguid = nguid
        self.uuid = uuid
    }

    /// Halyard's UUID namespace for v5 names ("halyard.io" under the DNS namespace).
    static let halyardNamespace: [UInt8] = nameBasedUUID(
        namespace: [0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8],
        name: "halyard.io")

    /// The identity of namespace `namespaceID` of subsystem `subsystemNQN`.
    public static func derived(subsystemNQN: String, namespaceID: UInt32) -> NamespaceIdentity {
        let uuid = nameBasedUUID(namespace: halyardNamespace, name: "uuid:\(subsystemNQN):\(namespaceID)")
        // NGUID: 16 bytes of another name; it needs no version bits.
        let nguid = Array(SHA1.hash(halyardNamespace + Array("nguid:\(subsystemNQN):\(namespaceID)".utf8)).prefix(16))
        return NamespaceIdentity(nguid: NGUID(nguid), uuid: NamespaceUUID(uuid))
    }

    /// A 20-character serial number for the subsystem's controllers, from its NQN.
    public static func serialNumber(subsystemNQN: String) -> String {
        let digest = SHA1.hash(halyardNamespace + Array("serial:\(subsystemNQN)".utf8))
        let hex = digest.prefix(9).map { byte -> String in
            let s = String(byte, radix: 16, uppercase: true)
            return s.count == 1 ? "0" + s : s
        }.joined()
        return "HY" + hex
    }

    static func nameBasedUUID(namespace: [UInt8], name: String) -> [UInt8] {
        var bytes = Array(SHA1.hash(namespace + Array(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return bytes
    }
}
