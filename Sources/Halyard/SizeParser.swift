import ArgumentParser

/// Parses sizes given on the command line or in a config file: plain bytes or an IEC suffix
/// (KiB, MiB, GiB, TiB; K/M/G/T accepted as the same powers of 1024).
enum SizeParser {
    static func parse(_ text: String) throws -> UInt64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, UInt64)] = [
            ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
            ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1),
        ]
        var number = trimmed
        var multiplier: UInt64 = 1
        for (suffix, value) in units where trimmed.hasSuffix(suffix) {
            number = String(trimmed.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
            multiplier = value
            break
        }
        guard let n = UInt64(number), n > 0 else {
            throw ValidationError("invalid size '\(text)': use bytes or an IEC suffix, e.g. 64MiB or 1GiB")
        }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw ValidationError("size '\(text)' is too large") }
        return bytes
    }

    /// Like `parse`, but "0" is allowed (offsets).
    static func parseAllowingZero(_ text: String) throws -> UInt64 {
        text.trimmingCharacters(in: .whitespaces) == "0" ? 0 : try parse(text)
    }
}

/// Parses "HOST:PORT" or "[IPv6]:PORT".
enum AddressParser {
    static func parse(_ text: String) throws -> (host: String, port: Int) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("invalid address '\(text)': expected [IPv6]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ValidationError("invalid address '\(text)': expected HOST:PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("invalid address '\(text)': expected HOST:PORT with a port 0-65535")
        }
        return (String(host), port)
    }
}

import Foundation
