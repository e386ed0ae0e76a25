import Foundation
import NVMe

/// Who the host is to a target: its NQN and 128-bit host identifier (NVMe over Fabrics spec 1.1
/// §3.3). Reservations key registrations on the host ID, so it must be the same on every path and
/// across restarts.
public struct HostIdentity: Hashable, Sendable {
    public var hostNQN: String
    /// 16 bytes.
    public var hostID: [UInt8]

    public init(hostNQN: String, hostID: [UInt8]) {
        precondition(hostID.count == 16, "host ID is 16 bytes")
        self.hostNQN = hostNQN
        self.hostID = hostID
    }

    /// A host NQN in the standard UUID form for `hostID`.
    public static func uuidNQN(_ hostID: [UInt8]) -> String {
        "nqn.2014-08.org.nvmexpress:uuid:\(NamespaceUUID(hostID))"
    }

    /// The identity the CLI uses by default, like nvme-cli: `/etc/nvme/hostnqn` and
    /// `/etc/nvme/hostid` when present; otherwise one generated once and kept in
    /// `stateDirectory` (`hostnqn`, `hostid`), so every invocation presents the same identity.
    public static func systemDefault(stateDirectory: String, etcDirectory: String = "/etc/nvme") throws -> HostIdentity {
        func read(_ path: String) -> String? {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? nil : t
        }
        if let nqn = read("\(etcDirectory)/hostnqn") {
            if let idText = read("\(etcDirectory)/hostid"), let id = NamespaceUUID(string: idText) {
                return HostIdentity(hostNQN: nqn, hostID: id.bytes)
            }
            // A UUID-form NQN carries its ID.
            if let range = nqn.range(of: ":uuid:"), let id = NamespaceUUID(string: String(nqn[range.upperBound...])) {
                return HostIdentity(hostNQN: nqn, hostID: id.bytes)
            }
        }
        if let nqn = read("\(stateDirectory)/hostnqn"), let idText = read("\(stateDirectory)/hostid"),
           let id = NamespaceUUID(string: idText) {
            return HostIdentity(hostNQN: nqn, hostID: id.bytes)
        }
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let identity = HostIdentity(hostNQN: uuidNQN(bytes), hostID: bytes)
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        try (identity.hostNQN + "\n").write(toFile: "\(stateDirectory)/hostnqn", atomically: true, encoding: .utf8)
        try ("\(NamespaceUUID(bytes))\n").write(toFile: "\(stateDirectory)/hostid", atomically: true, encoding: .utf8)
        return identity
    }
}
