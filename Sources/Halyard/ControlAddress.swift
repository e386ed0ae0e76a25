import ArgumentParser

/// Where `halyard nvmf-target`'s control interface listens and where `ana`/`hosts`/`stats` reach
/// it: `unix:PATH` (a unix socket) or `HOST:PORT` on a loopback address (127.0.0.0/8 or [::1]).
/// Anything else is refused: the interface has no authentication, so it never leaves the machine.
enum ControlAddress: Hashable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case loopback(host: String, port: Int)

    init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard !path.isEmpty else { throw ValidationError("invalid control address '\(text)': expected unix:PATH") }
            // sun_path holds 108 bytes including the terminating NUL.
            guard path.utf8.count < 108 else { throw ValidationError("control socket path '\(path)' is longer than 107 bytes") }
            self = .unix(path: path)
            return
        }
        let (host, port) = try AddressParser.parse(text)
        guard Self.isLoopback(host) else {
            throw ValidationError("control address '\(text)' is not a loopback address: use unix:PATH, 127.0.0.1:PORT or [::1]:PORT")
        }
        self = .loopback(host: host, port: port)
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets[0] == "127" else { return false }
        return octets.allSatisfy { UInt8($0) != nil }
    }

    var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .loopback(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
